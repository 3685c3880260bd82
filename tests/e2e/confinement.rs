//! Confinement end to end: through every channel a task's processes run
//! by — the exec agent, the scripted agent's `run` steps, `run:` checks,
//! and each real client's shell tool — `tests/fixtures/attack.sh` tries
//! everything the task's profile must not allow, while the same task's
//! allowed work lands. The canaries outside stay untouched, the listeners
//! hear nothing, and the log still verifies.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support::clients::{self, FakeModel};
use crate::support::{Omk, repo};

/// What the attacks aim at, outside the task's profile.
struct Canaries {
    outside: PathBuf,
    secret: PathBuf,
    tcp: TcpListener,
    /// On 127.0.0.2, at a port the profile allows on 127.0.0.1.
    other_address: TcpListener,
    unix: UnixListener,
    socket: PathBuf,
    readme: String,
}

const ATTACKS: [&str; 28] = [
    "write-outside",
    "write-through-symlink",
    "append-to-checkout",
    "read-secret",
    "read-event-log",
    "write-event-log",
    "write-cache",
    "tcp-connect",
    "tcp-listen",
    "tcp-listen-port",
    "udp-send",
    "unix-connect",
    "mptcp-connect",
    "sctp-connect",
    "io-uring",
    "other-loopback-address",
    "netlink-socket",
    "read-denied",
    "read-denied-via-link",
    "unmount-denied",
    "find-real-key",
    "new-user-namespace",
    "new-network-namespace",
    "kernel-keyring",
    "bpf",
    "signal-omk",
    "ptrace-omk",
    "read-omk-memory",
];

impl Canaries {
    /// A project holding `tools/attack.sh`, and the canaries around it.
    fn new(omk: &Omk) -> Canaries {
        let readme = "project\n".to_owned();
        let other_address = TcpListener::bind("127.0.0.2:0").unwrap();
        other_address.set_nonblocking(true).unwrap();
        let allowed = other_address.local_addr().unwrap().port();
        // The path gate denies reading `denied/`; the profile allows TCP
        // to 127.0.0.1 at the port the second canary listens on elsewhere.
        let gates = format!(
            "[[gate]]\nname = \"budget\"\n\n[[gate]]\nname = \"path\"\nconfig = {{ deny_read = [\"denied\"] }}\n\n\
             [[gate]]\nname = \"acceptance\"\n\n[sandbox]\nconnect = [\"127.0.0.1:{allowed}\"]\n"
        );
        omk.git_project(&[
            ("README.md", &readme),
            ("denied/key.txt", "DENIEDSECRET\n"),
            (".omk/gates.toml", &gates),
            (
                "tools/attack.sh",
                &std::fs::read_to_string(repo().join("tests/fixtures/attack.sh")).unwrap(),
            ),
        ]);
        let outside = omk.root().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let secret = omk.root().join("secret.txt");
        std::fs::write(&secret, "TOPSECRET\n").unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let socket = omk.root().join("canary.sock");
        let unix = UnixListener::bind(&socket).unwrap();
        unix.set_nonblocking(true).unwrap();
        Canaries {
            outside,
            secret,
            tcp,
            other_address,
            unix,
            socket,
            readme,
        }
    }

    /// The targets, for omk's environment (its task processes inherit it).
    fn env(&self, omk: &Omk) -> Vec<(&'static str, OsString)> {
        let cache = omk.cache_home().join("omk/components");
        std::fs::create_dir_all(&cache).unwrap();
        vec![
            ("OMK_CANARY_OUTSIDE", self.outside.clone().into()),
            ("OMK_CANARY_CHECKOUT", omk.project().into()),
            ("OMK_CANARY_SECRET", self.secret.clone().into()),
            (
                "OMK_CANARY_GOALS",
                omk.state_home().join("omk/goals").into(),
            ),
            ("OMK_CANARY_CACHE", cache.into()),
            (
                "OMK_CANARY_PORT",
                self.tcp.local_addr().unwrap().port().to_string().into(),
            ),
            ("OMK_CANARY_SOCKET", self.socket.clone().into()),
            (
                "OMK_CANARY_ALLOWED_PORT",
                self.other_address
                    .local_addr()
                    .unwrap()
                    .port()
                    .to_string()
                    .into(),
            ),
            // The user's model key, which a task must never hold.
            ("ANTHROPIC_API_KEY", crate::support::REAL_KEY.into()),
        ]
    }

    /// Nothing outside changed, nobody connected, the log verifies.
    fn assert_untouched(&self, omk: &Omk, id: &str) {
        let left: Vec<_> = std::fs::read_dir(&self.outside)
            .unwrap()
            .flatten()
            .collect();
        assert!(left.is_empty(), "written outside: {left:?}");
        assert_eq!(
            std::fs::read_to_string(omk.project().join("README.md")).unwrap(),
            self.readme,
            "the checkout was changed"
        );
        assert!(
            !omk.cache_home().join("omk/components/evil.cwasm").exists(),
            "the compiled-component cache was written"
        );
        match self.tcp.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("the TCP canary was reached: {other:?}"),
        }
        match self.other_address.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("the canary on 127.0.0.2 was reached: {other:?}"),
        }
        match self.unix.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("the UNIX socket canary was reached: {other:?}"),
        }
        omk.run(&["goal", "verify-log", id]).code(0);
    }
}

/// `results/CHANNEL.txt` of task `task`'s branch: every attack blocked,
/// every allowed step done.
fn assert_confined(omk: &Omk, id: &str, task: &str, channel: &str) {
    let text = omk.git(&["show", &format!("omk/{id}/{task}:results/{channel}.txt")]);
    assert_all_blocked(&text, channel);
}

/// What `tools/attack.sh` recorded: every attack blocked, every allowed
/// step done.
fn assert_all_blocked(text: &str, channel: &str) {
    assert!(
        text.ends_with("done\n"),
        "{channel}: the attacks did not finish:\n{text}"
    );
    for line in text.lines() {
        assert!(
            line.starts_with("ok ") || line.starts_with("blocked ") || line == "done",
            "{channel}: {line}\n{text}"
        );
    }
    for a in ATTACKS {
        assert!(
            text.lines().any(|l| l == format!("blocked {a}")),
            "{channel}: no `blocked {a}`:\n{text}"
        );
    }
}

/// The fake model server got the user's real key, put back by omk on the
/// way out: the client itself only ever held a placeholder.
fn assert_model_got_the_real_key(fake: &FakeModel) {
    let log = std::fs::read_to_string(&fake.log).unwrap_or_default();
    let requests: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|r: &Value| r["method"] == "POST")
        .collect();
    assert!(!requests.is_empty(), "the model was never asked");
    for r in &requests {
        let auth = r["auth"]
            .as_str()
            .or(r["headers"]["Authorization"].as_str())
            .or(r["headers"]["authorization"].as_str())
            .unwrap_or_default();
        assert!(
            auth.contains(crate::support::REAL_KEY),
            "a model request without the real key: {auth:?}"
        );
    }
}

/// `omk goal run NAME --agent exec --command AGENT --until-ready` with `env`.
fn exec_goal(
    omk: &Omk,
    name: &str,
    agent: &str,
    env: &[(&str, &std::ffi::OsStr)],
) -> crate::support::Run {
    omk.run_env(
        &[
            "goal",
            "run",
            name,
            "--agent",
            "exec",
            "--command",
            agent,
            "--until-ready",
        ],
        env,
    )
}

/// The task every channel runs: it may write `results/`.
fn attack_task(acceptance: &str) -> Value {
    json!({"id": "attack", "title": "Try to escape", "write_set": ["results"],
           "acceptance": [acceptance], "budget_secs": 240})
}

#[test]
fn exec_agents_and_run_checks_cannot_leave_their_profile() {
    let omk = Omk::new();
    let canaries = Canaries::new(&omk);
    let agent = omk.agent(&format!(
        "case \"$OMK_PHASE\" in\n  plan) echo 'OMK_TASK_PROPOSAL: {}' ;;\n  execute) sh tools/attack.sh exec ;;\nesac\n",
        attack_task("run: sh tools/attack.sh check")
    ));
    let env = canaries.env(&omk);
    let env: Vec<(&str, &std::ffi::OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    exec_goal(&omk, "escape", &agent, &env).code(0);
    let id = omk.latest_goal();
    assert_confined(&omk, &id, "attack", "exec");
    assert_confined(&omk, &id, "attack", "check");
    canaries.assert_untouched(&omk, &id);
    // The profile is on record, and the proof has no confinement gap.
    let events = omk.events(&id);
    let started = events.iter().find(|e| e["kind"] == "task_started").unwrap();
    let profile = &started["payload"]["sandbox"];
    assert_eq!(profile["mode"], "enforce", "{profile:#}");
    assert!(
        profile["writable"]
            .to_string()
            .contains("/worktrees/attack"),
        "{profile:#}"
    );
    let proof = omk.proof(&id);
    let gaps = proof["known_gaps"].to_string();
    assert!(!gaps.contains("unconfined"), "{gaps}");
    assert_eq!(proof["task_work"][0]["sandbox"]["mode"], "enforce");
    let report = omk.root().join("report.html");
    omk.run(&["goal", "report", &id, "--html", report.to_str().unwrap()])
        .code(0);
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("confined: writes"),
        "the report shows no profile"
    );
    // The check was judged as a command before it ran.
    assert!(
        events.iter().any(|e| e["kind"] == "agent_action"
            && e["payload"]["action"]["kind"] == "run_command"
            && e["payload"]["action"]["target"] == "sh tools/attack.sh check"),
        "the check was not judged"
    );
}

#[test]
fn without_namespaces_the_profile_falls_back_and_the_proof_says_what_is_lost() {
    // OMK_NAMESPACES=off: as on a kernel that refuses them.
    let omk = Omk::new();
    let canaries = Canaries::new(&omk);
    let agent = omk.agent(&format!(
        "case \"$OMK_PHASE\" in\n  plan) echo 'OMK_TASK_PROPOSAL: {}' ;;\n  execute) sh tools/attack.sh exec ;;\nesac\n",
        attack_task("run: test -s results/exec.txt")
    ));
    let mut env = canaries.env(&omk);
    env.push(("OMK_NAMESPACES", "off".into()));
    let env: Vec<(&str, &std::ffi::OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    exec_goal(&omk, "escape", &agent, &env).code(0);
    let id = omk.latest_goal();
    let text = omk.git(&["show", &format!("omk/{id}/attack:results/exec.txt")]);
    // What the namespaces hold is lost, and only that: the other canaries
    // still see nothing.
    for lost in [
        "other-loopback-address",
        "read-denied",
        "read-denied-via-link",
    ] {
        assert!(
            text.contains(&format!("ESCAPED {lost}\n")),
            "{lost}:\n{text}"
        );
    }
    for kept in [
        "mptcp-connect",
        "io-uring",
        "tcp-connect",
        "find-real-key",
        "write-outside",
    ] {
        assert!(
            text.contains(&format!("blocked {kept}\n")),
            "{kept}:\n{text}"
        );
    }
    let events = omk.events(&id);
    let started = events.iter().find(|e| e["kind"] == "task_started").unwrap();
    let profile = &started["payload"]["sandbox"];
    assert!(profile.get("network").is_none(), "{profile:#}");
    assert_eq!(profile["network_fallback"], "OMK_NAMESPACES=off");
    let gaps = omk.proof(&id)["known_gaps"].to_string();
    assert!(
        gaps.contains("could reach any address on their allowed TCP ports"),
        "{gaps}"
    );
    assert!(
        gaps.contains("`deny_read` was judged but not hidden"),
        "{gaps}"
    );
    // With namespaces, neither gap.
    let with = exec_goal(&omk, "again", &agent, &env[..env.len() - 1]);
    with.code(0);
    let again = with
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("goal-") && *w != id)
        .expect("the second goal's id")
        .to_owned();
    let gaps = omk.proof(&again)["known_gaps"].to_string();
    assert!(
        !gaps.contains("allowed TCP ports") && !gaps.contains("deny_read"),
        "{gaps}"
    );
}

#[test]
fn scripted_run_steps_cannot_leave_their_profile() {
    let omk = Omk::new();
    let canaries = Canaries::new(&omk);
    let script = json!({
        "plan": [attack_task("results/scripted.txt records every attempt")],
        "tasks": {"attack": [{
            "steps": [{"run": "sh tools/attack.sh scripted"}],
            "evidence": [{"kind": "note", "summary": "ran the attacks",
                          "criterion": "results/scripted.txt records every attempt"}]
        }]}
    });
    let path = omk.write("script.json", script.to_string());
    let env = canaries.env(&omk);
    let env: Vec<(&str, &std::ffi::OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    let run = omk.run_env(
        &[
            "goal",
            "run",
            "escape",
            "--agent",
            "scripted",
            "--script",
            path.to_str().unwrap(),
            "--until-ready",
        ],
        &env,
    );
    run.code(0);
    let id = omk.latest_goal();
    assert_confined(&omk, &id, "attack", "scripted");
    canaries.assert_untouched(&omk, &id);
}

#[test]
fn a_check_that_writes_outside_the_write_set_fails_the_task() {
    let omk = Omk::new();
    omk.git_project(&[("README.md", "project\n")]);
    let task = json!({"id": "sly", "write_set": ["src"], "budget_secs": 60,
                      "acceptance": ["run: mkdir -p .github/workflows && echo pwn > .github/workflows/pwn.yml; mkdir -p .omk && echo x > .omk/gates.toml; echo x > elsewhere.txt"]});
    let agent = omk.agent(&format!(
        "case \"$OMK_PHASE\" in\n  plan) echo 'OMK_TASK_PROPOSAL: {task}' ;;\n  execute) mkdir -p src && echo ok > src/a.txt ;;\nesac\n"
    ));
    let run = omk.run(&[
        "goal",
        "run",
        "sly",
        "--agent",
        "exec",
        "--command",
        &agent,
        "--until-ready",
    ]);
    run.code(1);
    let id = omk.latest_goal();
    let show = omk.run(&["goal", "show", &id, "--json"]).json();
    let t = &show["graph"]["tasks"][0];
    assert_eq!(t["status"], "failed", "{t:#}");
    let integration = format!("omk/{id}/integration");
    for f in [
        ".github/workflows/pwn.yml",
        ".omk/gates.toml",
        "elsewhere.txt",
    ] {
        assert_eq!(
            omk.git(&["show", &format!("{integration}:{f}")]),
            "",
            "{f} reached the integration branch"
        );
    }
}

#[test]
fn the_egress_proxy_judges_and_logs_every_destination() {
    let omk = Omk::new();
    omk.git_project(&[("README.md", "project\n")]);
    // Two local servers: one the project lets tasks reach, one it does not.
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = TcpListener::bind("127.0.0.1:0").unwrap();
    let (ap, rp) = (
        allowed.local_addr().unwrap().port(),
        refused.local_addr().unwrap().port(),
    );
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in allowed.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n");
        }
    });
    // In `hosts`, not `connect`: reached only through the proxy.
    omk.sandbox_add("hosts", &format!("localhost:{ap}"));
    let fetch = |port: u16, name: &str| {
        format!(
            "python3 -c 'import os, urllib.request as u; print(u.urlopen(\"http://localhost:{port}/x\", timeout=5).read().decode())' > results/{name}.txt 2>&1; true"
        )
    };
    let task = json!({"id": "net", "write_set": ["results"], "budget_secs": 60,
                      "acceptance": ["run: test -s results/allowed.txt"]});
    let agent = omk.agent(&format!(
        "case \"$OMK_PHASE\" in\n  plan) echo 'OMK_TASK_PROPOSAL: {task}' ;;\n  execute) mkdir -p results; {}; {} ;;\nesac\n",
        fetch(ap, "allowed"),
        fetch(rp, "refused")
    ));
    omk.run(&[
        "goal",
        "run",
        "net",
        "--agent",
        "exec",
        "--command",
        &agent,
        "--until-ready",
    ])
    .code(0);
    let id = omk.latest_goal();
    let show = |f: &str| omk.git(&["show", &format!("omk/{id}/net:results/{f}.txt")]);
    assert_eq!(show("allowed"), "hello\n\n");
    assert!(show("refused").contains("403"), "{}", show("refused"));
    refused.set_nonblocking(true).unwrap();
    assert!(refused.accept().is_err(), "the refused host was reached");
    let fetches: Vec<Value> = omk
        .events(&id)
        .into_iter()
        .filter(|e| e["kind"] == "agent_action" && e["payload"]["action"]["kind"] == "fetch_url")
        .collect();
    let judged = |port: u16| {
        fetches
            .iter()
            .find(|e| {
                e["payload"]["action"]["target"]
                    .as_str()
                    .is_some_and(|t| t.contains(&format!(":{port}/")))
            })
            .unwrap_or_else(|| panic!("no fetch of port {port} logged: {fetches:#?}"))
            .clone()
    };
    assert_eq!(judged(ap)["payload"]["allowed"], true);
    let no = judged(rp);
    assert_eq!(no["payload"]["allowed"], false);
    assert_eq!(no["payload"]["code"], "omk.sandbox-host", "{no:#}");
    // And gate decisions were recorded for the allowed one.
    assert!(
        omk.events(&id)
            .iter()
            .any(|e| e["kind"] == "gate_decision" && e["payload"]["action"]["kind"] == "fetch_url"),
        "the gates did not judge the fetch"
    );
}

#[test]
fn a_kernel_without_landlock_stops_the_goal_unless_confinement_is_off() {
    // The kernel here has Landlock: what `mode = "off"` records instead.
    let omk = Omk::new();
    omk.git_project(&[("README.md", "project\n")]);
    omk.write(".omk/gates.toml", "[sandbox]\nmode = \"off\"\n");
    let task = json!({"id": "free", "write_set": ["a.txt"], "budget_secs": 60,
                      "acceptance": ["run: test -f a.txt"]});
    let agent = omk.agent(&format!(
        "case \"$OMK_PHASE\" in\n  plan) echo 'OMK_TASK_PROPOSAL: {task}' ;;\n  execute) echo a > a.txt ;;\nesac\n"
    ));
    omk.run(&[
        "goal",
        "run",
        "free",
        "--agent",
        "exec",
        "--command",
        &agent,
        "--until-ready",
    ])
    .code(0);
    let id = omk.latest_goal();
    let gaps = omk.proof(&id)["known_gaps"].to_string();
    assert!(gaps.contains("ran unconfined"), "{gaps}");
    let doctor = omk.run(&["doctor", "--json"]).json();
    assert!(
        doctor["sandbox"]["landlock_abi"].as_i64().unwrap() >= 6,
        "{doctor:#}"
    );
    assert_eq!(doctor["sandbox"]["usable"], true);
    // Rule by rule, namespaces included; without them, confinement still
    // works and says what falls back.
    let rule = |d: &Value, what: &str| {
        d["sandbox"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"].as_str().unwrap().starts_with(what))
            .unwrap_or_else(|| panic!("no rule `{what}`: {d:#}"))
            .clone()
    };
    for what in [
        "system calls: an allow-list",
        "TCP by address",
        "`deny_read` hidden",
        "credentials outside",
    ] {
        assert_eq!(rule(&doctor, what)["usable"], true, "{what}: {doctor:#}");
    }
    let without = omk
        .run_env(&["doctor", "--json"], &[("OMK_NAMESPACES", "off".as_ref())])
        .json();
    assert_eq!(without["sandbox"]["usable"], true);
    let tcp = rule(&without, "TCP by address");
    assert_eq!(tcp["usable"], false);
    assert!(tcp["why"].as_str().unwrap().contains("falls back"), "{tcp}");
}

#[test]
fn a_client_under_guard_run_cannot_leave_the_profile() {
    let omk = Omk::new();
    let canaries = Canaries::new(&omk);
    let script = json!({"turns": [
        {"tool_call": {"name": "Bash", "arguments": {"command": "sh tools/attack.sh guard"}}},
        {"text": "Done: tried everything."}],
        "usage": {"input_tokens": 10, "output_tokens": 2}});
    let Some(hand) = crate::guard::claude_with(&omk, &script) else {
        return;
    };
    let mut env = canaries.env(&omk);
    env.extend(hand.env.iter().cloned());
    // The session's tree is the project itself, writable: the checkout to
    // tamper with is another one.
    let other = omk.root().join("other-checkout");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("README.md"), "other\n").unwrap();
    env.push(("OMK_CANARY_CHECKOUT", other.clone().into()));
    let out = omk
        .command()
        .args(["guard", "run", "--"])
        .arg(&hand.program)
        .args(&hand.args)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = std::fs::read_to_string(omk.project().join("results/guard.txt"))
        .unwrap_or_else(|e| panic!("no results ({e}): {out:?}"));
    assert_all_blocked(&text, "guard");
    assert_eq!(
        std::fs::read_to_string(other.join("README.md")).unwrap(),
        "other\n"
    );
    canaries.assert_untouched(&omk, &crate::guard::the_session(&omk, "claude"));
    assert_model_got_the_real_key(&hand.fake);
}

// --- the real clients' shell tools ---------------------------------------

/// The plan of a client's session, then one shell call running the attacks
/// as `channel`, then a final message.
fn client_script(shell: impl Fn(&str) -> Value, channel: &str) -> Value {
    let task = attack_task(&format!("run: test -s results/{channel}.txt"));
    json!({"plan": format!("One task.\nOMK_TASK_PROPOSAL: {task}\n"),
           "turns": [
               {"tool_call": shell(&format!("sh tools/attack.sh {channel}"))},
               {"text": "Done: tried everything."}],
           "usage": {"prompt_tokens": 10, "completion_tokens": 2,
                     "input_tokens": 10, "output_tokens": 2}})
}

/// Runs a goal for `agent` with the canaries' targets and `env`.
fn client_goal(
    omk: &Omk,
    canaries: &Canaries,
    agent: &[&str],
    env: Vec<(&str, OsString)>,
) -> String {
    let mut all = canaries.env(omk);
    all.extend(env);
    let (id, run) = crate::agents::run_goal(omk, agent, &all);
    run.code(0);
    id
}

#[test]
fn claude_codes_bash_cannot_leave_the_profile() {
    let Some(claude) = clients::claude() else {
        return;
    };
    let omk = Omk::new();
    let canaries = Canaries::new(&omk);
    let home = omk.root().to_path_buf();
    let fake = FakeModel::start(
        "fake_anthropic",
        &home,
        &client_script(
            |c| json!({"name": "Bash", "arguments": {"command": c}}),
            "claude",
        ),
        &[],
    );
    let env = crate::agents::claude_env(fake.port);
    let id = client_goal(
        &omk,
        &canaries,
        &["--agent", "claude", "--command", &claude],
        env,
    );
    assert_confined(&omk, &id, "attack", "claude");
    assert_model_got_the_real_key(&fake);
    canaries.assert_untouched(&omk, &id);
}

#[test]
fn kimi_codes_shell_over_acp_cannot_leave_the_profile() {
    let Some(kimi) = clients::kimi() else { return };
    let omk = Omk::new();
    let canaries = Canaries::new(&omk);
    let script = client_script(
        |c| json!({"name": "Bash", "arguments": {"command": c}}),
        "kimi",
    );
    let (fake, env) = crate::agents::kimi_setup_with(&omk, &script);
    let id = client_goal(
        &omk,
        &canaries,
        &["--agent", "kimi", "--command", &kimi],
        env,
    );
    assert_confined(&omk, &id, "attack", "kimi");
    assert_model_got_the_real_key(&fake);
    canaries.assert_untouched(&omk, &id);
}

#[test]
fn opencodes_bash_over_acp_cannot_leave_the_profile() {
    let omk = Omk::new();
    let canaries = Canaries::new(&omk);
    let script = client_script(
        |c| json!({"name": "bash", "arguments": {"command": c, "description": "run it"}}),
        "opencode",
    );
    let fake = FakeModel::start("fake_openai_chat", omk.root(), &script, &[]);
    let Some((opencode, env)) = crate::agents::opencode_env(&omk, fake.port) else {
        return;
    };
    let _ = std::fs::remove_dir_all(omk.project().join(".opencode"));
    let id = client_goal(
        &omk,
        &canaries,
        &["--agent", "opencode", "--command", &opencode],
        env,
    );
    assert_confined(&omk, &id, "attack", "opencode");
    canaries.assert_untouched(&omk, &id);
}

#[test]
fn the_kimi_clis_shell_cannot_leave_the_profile() {
    let omk = Omk::new();
    let canaries = Canaries::new(&omk);
    let wire = crate::agents::Wire::default();
    let script = client_script(
        |c| json!({"name": "Shell", "arguments": {"command": c}}),
        "kimi-wire",
    );
    let (fake, env) = crate::agents::wire_env(&omk, &script, wire);
    let kimi = crate::agents::kimi_cli(wire);
    let id = client_goal(
        &omk,
        &canaries,
        &["--agent", "kimi-wire", "--command", &kimi],
        env,
    );
    assert_confined(&omk, &id, "attack", "kimi-wire");
    assert_model_got_the_real_key(&fake);
    canaries.assert_untouched(&omk, &id);
}

#[test]
fn codexs_commands_cannot_leave_the_profile() {
    let Some(codex) = clients::codex() else {
        return;
    };
    let omk = Omk::new();
    let canaries = Canaries::new(&omk);
    let home = omk.root().to_path_buf();
    let fake = FakeModel::start(
        "fake_responses",
        &home,
        &client_script(
            |c| json!({"name": "exec_command", "arguments": {"cmd": c}}),
            "codex",
        ),
        &[],
    );
    let env = crate::agents::codex_env(&home, fake.port);
    let id = client_goal(
        &omk,
        &canaries,
        &["--agent", "codex", "--command", &codex],
        env,
    );
    assert_confined(&omk, &id, "attack", "codex");
    assert_model_got_the_real_key(&fake);
    canaries.assert_untouched(&omk, &id);
}

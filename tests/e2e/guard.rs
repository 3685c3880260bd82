//! Guard mode: the project's gates on sessions people run by hand.
//! `omk hook` answered directly (each client's event, and every way it
//! fails closed), `omk guard install|uninstall|status` on the clients' own
//! files, and the real clients — Claude Code, Codex, the Kimi CLI — run as
//! their users run them, with the hooks `omk guard install` wrote, against
//! fake model servers on 127.0.0.1.

use std::ffi::OsString;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::clients::{self, FakeModel};
use crate::support::components::{self, ActionBody};
use crate::support::{Omk, Run, of_kind, refusals};

/// Inside `[guard] write_roots`: the write lands.
const ALLOWED: &str = "src/ok.txt";
/// Outside them: the path gate refuses.
const OUTSIDE: &str = "docs/out.txt";
/// A command the project's own gate refuses.
const COMMAND: &str = "touch ran.txt";

/// A file no session may read, and what is in it.
const SECRET: &str = "private/key.txt";
const CONTENT: &str = "TOPSECRET-4242";

/// A git project whose gates are the std gates (the path gate denying
/// reads of `private/`) and a project gate that refuses every command, and
/// whose guarded sessions may write `src/`.
fn guarded_project(omk: &Omk) {
    omk.git_project(&[
        ("README.md", "project\n"),
        ("src/README.md", "src\n"),
        ("docs/README.md", "docs\n"),
        (SECRET, &format!("{CONTENT}\n")),
    ]);
    omk.write(
        "gates/no-commands.wasm",
        components::action_gate(ActionBody::RefuseCommands),
    );
    omk.write(
        ".omk/gates.toml",
        "[guard]\nwrite_roots = [\"src\"]\n\n[[gate]]\nname = \"budget\"\n\n[[gate]]\nname = \"path\"\nconfig = { deny_read = [\"private\"] }\n\n\
         [[gate]]\nname = \"acceptance\"\n\n[[gate]]\npath = \"gates/no-commands.wasm\"\n",
    );
}

/// A PreToolUse event as the clients send it.
fn event(omk: &Omk, session: &str, tool: &str, input: Value) -> Vec<u8> {
    json!({"hook_event_name": "PreToolUse", "session_id": session,
           "cwd": omk.project(), "tool_name": tool, "tool_input": input})
    .to_string()
    .into_bytes()
}

fn hook(omk: &Omk, client: &str, input: &[u8]) -> Run {
    omk.run_stdin(&["hook", client], input)
}

/// The guarded sessions in the store, as `goal list --json` shows them.
fn sessions(omk: &Omk) -> Vec<Value> {
    let list = omk.run(&["goal", "list", "--json"]);
    list.code(0);
    list.json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["guarded"].is_object())
        .cloned()
        .collect()
}

/// The one guarded session's id, its log verified.
pub(crate) fn the_session(omk: &Omk, client: &str) -> String {
    let all = sessions(omk);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["guarded"]["client"], client);
    let id = all[0]["id"].as_str().unwrap().to_owned();
    omk.run(&["goal", "verify-log", &id]).code(0);
    id
}

#[test]
fn each_call_is_judged_recorded_and_replayed() {
    let omk = Omk::new();
    guarded_project(&omk);
    let abs = |rel: &str| omk.project().join(rel).display().to_string();
    let calls = [
        (
            "Write",
            json!({"file_path": abs(ALLOWED), "content": "x"}),
            0,
        ),
        (
            "Write",
            json!({"file_path": abs(OUTSIDE), "content": "x"}),
            2,
        ),
        ("Edit", json!({"file_path": "/etc/passwd"}), 2),
        ("Write", json!({"file_path": "src/../docs/x"}), 2),
        ("Bash", json!({"command": COMMAND}), 2),
        ("Read", json!({"file_path": abs("README.md")}), 0),
    ];
    for (tool, input, code) in calls {
        let run = hook(&omk, "claude", &event(&omk, "s-1", tool, input.clone()));
        run.code(code);
        assert_eq!(run.stdout, "", "{input}");
        if code == 2 {
            assert!(
                run.stderr
                    .starts_with("refused by omk guard (claude hook): "),
                "{}",
                run.stderr
            );
        }
    }
    let outside = hook(
        &omk,
        "claude",
        &event(&omk, "s-1", "Write", json!({"file_path": abs(OUTSIDE)})),
    );
    assert!(
        outside.stderr.contains("path.outside-roots")
            || outside.stderr.contains("path.outside-write-set"),
        "the model is told the gate's code and reason: {}",
        outside.stderr
    );
    let command = hook(
        &omk,
        "codex",
        &event(&omk, "c-1", "Bash", json!({"command": COMMAND})),
    );
    assert!(
        command
            .stderr
            .contains("hostile.no-commands): commands are not run in this project"),
        "{}",
        command.stderr
    );

    let id = sessions(&omk)
        .iter()
        .find(|g| g["guarded"]["client"] == "claude")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    omk.run(&["goal", "verify-log", &id]).code(0);
    let events = omk.events(&id);
    let refused = refusals(&events);
    assert_eq!(
        refused.iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>(),
        [
            "path.outside-roots",
            "omk.outside-project",
            "omk.outside-project",
            "hostile.no-commands",
            "path.outside-roots"
        ],
        "{refused:?}"
    );
    let allowed = of_kind(&events, "agent_action")
        .into_iter()
        .filter(|e| e["payload"]["allowed"] == true)
        .count();
    assert_eq!(allowed, 2, "the allowed write and the read");
    // Every gate decision has its input: the project's gates reproduce
    // them, and the std gates alone would have let the command run.
    omk.run(&[
        "goal",
        "replay",
        &id,
        "--gates",
        "project",
        "--fail-on-change",
    ])
    .code(0);
    let std = omk.run(&["goal", "replay", &id, "--gates", "std", "--json"]);
    let what_if = std.json();
    let changed = what_if["changes"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{what_if:#}");
    assert!(changed[0].to_string().contains(COMMAND), "{what_if:#}");
    let proof = omk.run(&["goal", "proof", &id, "--json"]).json();
    assert_eq!(proof["readiness"]["ready"], true, "{proof:#}");
    assert!(
        proof["readiness"]["why"][0]
            .as_str()
            .unwrap()
            .contains("claude session run by hand"),
        "{proof:#}"
    );
}

/// The user's judge as `omk guard status --json` shows it, waiting up to
/// `wait` for one that answers (`Value::Null`: none).
fn judge(omk: &Omk, wait: std::time::Duration) -> Value {
    let until = std::time::Instant::now() + wait;
    loop {
        let status = omk.run(&["guard", "status", "--json"]);
        status.code(0);
        let judge = status.json()["judge"].clone();
        if judge.is_object() || std::time::Instant::now() >= until {
            return judge;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn the_users_judge_answers_later_calls_as_the_hook_itself_would() {
    use std::time::Duration;
    let omk = Omk::new();
    guarded_project(&omk);
    let write = |path: &str| {
        event(
            &omk,
            "s-judge",
            "Write",
            json!({"file_path": omk.project().join(path), "content": "x"}),
        )
    };
    // Off: every call in its own process, and no judge starts.
    let off = |input: &[u8]| omk.run_stdin_env(&["hook", "claude"], input, &[("OMK_JUDGE", "off")]);
    off(&write(ALLOWED)).code(0);
    std::thread::sleep(Duration::from_millis(500));
    assert!(judge(&omk, Duration::ZERO).is_null(), "a judge started");
    // The first call judges in its own process and starts the judge.
    hook(&omk, "claude", &write(ALLOWED)).code(0);
    let first = judge(&omk, Duration::from_secs(30));
    assert!(first["pid"].as_u64().unwrap() > 0, "no judge: {first}");
    assert_eq!(first["judged"], 0, "{first}");
    // It answers what the hook would: the allowed write, the refusal with
    // the gate's reason, the project gate's refusal of a command.
    hook(&omk, "claude", &write(ALLOWED)).code(0);
    let refused = hook(&omk, "claude", &write(OUTSIDE));
    refused.code(2);
    assert!(
        refused.stderr.contains("path.outside"),
        "{}",
        refused.stderr
    );
    let command = hook(
        &omk,
        "codex",
        &event(&omk, "s-judge-codex", "Bash", json!({"command": COMMAND})),
    );
    command.code(2);
    assert!(
        command.stderr.contains("hostile.no-commands"),
        "{}",
        command.stderr
    );
    // A change to the project's gates holds from the next call.
    let toml = std::fs::read_to_string(omk.project().join(".omk/gates.toml")).unwrap();
    omk.write(
        ".omk/gates.toml",
        toml.replace("write_roots = [\"src\"]", "write_roots = [\"docs\"]"),
    );
    hook(&omk, "claude", &write(OUTSIDE)).code(0);
    let refused = hook(&omk, "claude", &write(ALLOWED));
    refused.code(2);
    let now = judge(&omk, Duration::ZERO);
    assert_eq!(now["pid"], first["pid"], "{now}");
    assert_eq!(now["judged"], 5, "{now}");
    // Every call, whoever judged it, is in the session's one record.
    let sessions = sessions(&omk);
    let claude = sessions
        .iter()
        .find(|s| s["guarded"]["client"] == "claude")
        .unwrap();
    let id = claude["id"].as_str().unwrap();
    omk.run(&["goal", "verify-log", id]).code(0);
    let judged: Vec<bool> = of_kind(&omk.events(id), "agent_action")
        .iter()
        .map(|e| e["payload"]["allowed"] == true)
        .collect();
    assert_eq!(judged, [true, true, true, false, true, false]);
    // A judge that is gone: the next call is still answered, in its own
    // process, and starts another.
    let pid = first["pid"].as_u64().unwrap() as i32;
    // SAFETY: kill has no memory effects; the pid is the judge's.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    std::thread::sleep(Duration::from_millis(200));
    hook(&omk, "claude", &write(OUTSIDE)).code(0);
    let again = judge(&omk, Duration::from_secs(30));
    assert!(again.is_object() && again["pid"] != first["pid"], "{again}");
    // A judge whose binary was replaced exits at the next call, which is
    // answered in its own process and starts a judge of the new binary.
    let exe = omk.root().join("bin/omk");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_omk"), &exe).unwrap();
    // SAFETY: kill has no memory effects; the pid is the judge's.
    unsafe { libc::kill(again["pid"].as_u64().unwrap() as i32, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(200));
    let by_copy = |input: &[u8]| {
        use std::io::Write;
        let mut child = omk
            .command_of(&exe)
            .args(["hook", "claude"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    assert_eq!(by_copy(&write(OUTSIDE)).status.code(), Some(0));
    let of_copy = judge(&omk, Duration::from_secs(30));
    assert!(of_copy.is_object(), "the copy started no judge");
    let replacement = omk.root().join("bin/omk.new");
    std::fs::copy(env!("CARGO_BIN_EXE_omk"), &replacement).unwrap();
    std::fs::rename(&replacement, &exe).unwrap();
    assert_eq!(by_copy(&write(OUTSIDE)).status.code(), Some(0));
    let renewed = judge(&omk, Duration::from_secs(30));
    assert!(
        renewed.is_object() && renewed["pid"] != of_copy["pid"],
        "{of_copy} then {renewed}"
    );
    assert_eq!(renewed["judged"], 0, "the old judge answered: {renewed}");
}

#[test]
fn the_users_judge_leaves_when_idle_or_when_its_socket_is_gone() {
    use std::time::Duration;
    let omk = Omk::new();
    guarded_project(&omk);
    let input = event(
        &omk,
        "s-idle",
        "Write",
        json!({"file_path": omk.project().join(ALLOWED), "content": "x"}),
    );
    // Running (a zombie waiting to be reaped has left).
    let alive = |pid: &Value| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
    };
    let gone_within = |pid: &Value, secs: u64| {
        let until = std::time::Instant::now() + Duration::from_secs(secs);
        while alive(pid) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
        }
        !alive(pid)
    };
    // Idle for its time: it leaves.
    let idle = [("OMK_JUDGE_IDLE_SECS", "1")];
    omk.run_stdin_env(&["hook", "claude"], &input, &idle)
        .code(0);
    let first = judge(&omk, Duration::from_secs(30));
    assert!(first.is_object(), "no judge");
    assert!(gone_within(&first["pid"], 20), "still there: {first}");
    // Its socket removed: it leaves, whatever its idle time.
    hook(&omk, "claude", &input).code(0);
    let second = judge(&omk, Duration::from_secs(30));
    assert!(
        second.is_object() && second["pid"] != first["pid"],
        "{second}"
    );
    let socket = omk.state_home().join("omk/guard/judge/socket");
    std::fs::remove_file(&socket).unwrap();
    assert!(gone_within(&second["pid"], 20), "still there: {second}");
}

#[test]
fn every_failure_denies_with_its_reason() {
    let omk = Omk::new();
    guarded_project(&omk);
    let write = |session: &str| {
        event(
            &omk,
            session,
            "Write",
            json!({"file_path": "src/a.txt", "content": "x"}),
        )
    };
    for (input, says) in [
        (b"not json".to_vec(), "not JSON"),
        (br#"{"tool_name":"Write"}"#.to_vec(), "session_id"),
        (
            br#"{"hook_event_name":"PostToolUse","session_id":"s","tool_name":"Write"}"#.to_vec(),
            "PostToolUse",
        ),
        (vec![b' '; (16 << 20) + 10], "larger than omk reads"),
    ] {
        let run = hook(&omk, "kimi", &input);
        run.code(2);
        assert!(run.stderr.contains(says), "{says}: {}", run.stderr);
    }
    // A gates.toml that does not load: refused, naming the file and line.
    let good = std::fs::read_to_string(omk.project().join(".omk/gates.toml")).unwrap();
    omk.write(
        ".omk/gates.toml",
        format!("{good}\n[[gate]]\nname = \"nope\"\n"),
    );
    let run = hook(&omk, "claude", &write("broken"));
    run.code(2);
    assert!(run.stderr.contains("gates.toml:"), "{}", run.stderr);
    assert!(run.stderr.contains("nope"), "{}", run.stderr);
    // A gate that traps on every action: refused, and the fault recorded.
    omk.write(
        "gates/no-commands.wasm",
        components::action_gate(ActionBody::Trap),
    );
    omk.write(".omk/gates.toml", &good);
    let run = hook(&omk, "codex", &write("faulty"));
    run.code(2);
    assert!(run.stderr.contains("gate.fault.trap"), "{}", run.stderr);
    let id = the_session(&omk, "codex");
    let faults: Vec<Value> = of_kind(&omk.events(&id), "gate_decision")
        .into_iter()
        .filter(|e| e["payload"]["fault"].is_string())
        .cloned()
        .collect();
    assert_eq!(faults.len(), 1, "{faults:#?}");
    // No state directory it can write: still an answer, and a refusal.
    let blocked = omk.root().join("state-file");
    std::fs::write(&blocked, "not a directory").unwrap();
    let out = omk
        .command()
        .args(["hook", "claude"])
        .env("XDG_STATE_HOME", &blocked)
        .stdin(std::fs::File::open(omk.root().join("state-file")).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn install_merges_and_uninstall_restores_every_byte() {
    let omk = Omk::new();
    guarded_project(&omk);
    let settings = omk.write(
        ".claude/settings.json",
        "{\n  \"permissions\": {\"allow\": [\"Bash(ls)\"]},\n  \"hooks\": {\"PreToolUse\": [{\"matcher\": \"Bash\", \"hooks\": [{\"type\": \"command\", \"command\": \"mine.sh\"}]}]}\n}\n",
    );
    let before = std::fs::read(&settings).unwrap();
    omk.run(&["guard", "install", "claude"]).code(0);
    let merged: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    let groups = merged["hooks"]["PreToolUse"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "the user's hook is kept: {merged:#}");
    assert_eq!(groups[0]["hooks"][0]["command"], "mine.sh");
    let command = groups[1]["hooks"][0]["command"].as_str().unwrap();
    assert!(command.ends_with(" hook claude || exit 2"), "{command}");
    assert_eq!(merged["permissions"]["allow"][0], "Bash(ls)");
    let again = omk.run(&["guard", "install", "claude", "--json"]);
    assert_eq!(again.json()["changes"][0]["what"], "already");
    let status = omk.run(&["guard", "status", "--json"]).json();
    let claude = status["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["client"] == "claude" && h["scope"] == "project")
        .unwrap()
        .clone();
    assert_eq!(claude["installed"], true, "{status:#}");
    assert_eq!(claude["problems"], json!([]), "{status:#}");
    omk.run(&["guard", "uninstall", "claude"]).code(0);
    assert_eq!(std::fs::read(&settings).unwrap(), before);

    // Changed after the install: only omk's entry goes.
    omk.run(&["guard", "install", "claude"]).code(0);
    let mut edited: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    edited["model"] = json!("mine");
    std::fs::write(&settings, edited.to_string()).unwrap();
    let removed = omk.run(&["guard", "uninstall", "claude", "--json"]).json();
    assert_eq!(removed["changes"][0]["what"], "removed-entries");
    let left: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    assert_eq!(left["model"], "mine");
    assert_eq!(left["hooks"]["PreToolUse"].as_array().unwrap().len(), 1);

    // The Gemini CLI: its `BeforeTool` group, and the folder's trust
    // without which it skips a project's hooks; both undone byte for byte.
    let home = omk.root().join("gemini-home");
    let trusted = home.join(".gemini/trustedFolders.json");
    std::fs::create_dir_all(trusted.parent().unwrap()).unwrap();
    std::fs::write(&trusted, "{\n  \"/elsewhere\": \"TRUST_FOLDER\"\n}").unwrap();
    let trusted_before = std::fs::read(&trusted).unwrap();
    let gemini_env = [("GEMINI_CLI_HOME", home.as_os_str())];
    let gemini_settings = omk.write(".gemini/settings.json", "{\"model\": {\"name\": \"x\"}}\n");
    let gemini_before = std::fs::read(&gemini_settings).unwrap();
    omk.run_env(&["guard", "install", "gemini"], &gemini_env)
        .code(0);
    let merged: Value = serde_json::from_slice(&std::fs::read(&gemini_settings).unwrap()).unwrap();
    let hook = &merged["hooks"]["BeforeTool"][0]["hooks"][0];
    assert!(
        hook["command"]
            .as_str()
            .unwrap()
            .ends_with(" hook gemini || exit 2"),
        "{merged:#}"
    );
    assert_eq!(hook["timeout"], 60_000, "milliseconds: {merged:#}");
    let trust: Value = serde_json::from_slice(&std::fs::read(&trusted).unwrap()).unwrap();
    let root = omk.project().canonicalize().unwrap();
    assert_eq!(
        trust[root.display().to_string()],
        "TRUST_FOLDER",
        "{trust:#}"
    );
    let status = omk
        .run_env(&["guard", "status", "--json"], &gemini_env)
        .json();
    let gemini = status["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["client"] == "gemini" && h["scope"] == "project")
        .unwrap()
        .clone();
    assert_eq!(
        (&gemini["installed"], &gemini["problems"]),
        (&json!(true), &json!([])),
        "{status:#}"
    );
    omk.run_env(&["guard", "uninstall", "gemini"], &gemini_env)
        .code(0);
    assert_eq!(std::fs::read(&gemini_settings).unwrap(), gemini_before);
    assert_eq!(std::fs::read(&trusted).unwrap(), trusted_before);
    // A folder the user distrusts: refused, nothing written.
    std::fs::write(
        &trusted,
        json!({root.display().to_string(): "DO_NOT_TRUST"}).to_string(),
    )
    .unwrap();
    let distrusted = omk.run_env(&["guard", "install", "gemini"], &gemini_env);
    distrusted.code(2);
    assert!(
        distrusted.stderr.contains("DO_NOT_TRUST"),
        "{}",
        distrusted.stderr
    );
    assert!(
        distrusted.stderr.contains("--user"),
        "{}",
        distrusted.stderr
    );
    assert_eq!(std::fs::read(&gemini_settings).unwrap(), gemini_before);

    // The Kimi CLI has no project hooks: said so, with the fix.
    let kimi = omk.run(&["guard", "install", "kimi"]);
    kimi.code(2);
    assert!(kimi.stderr.contains("--user"), "{}", kimi.stderr);
}

/// The environment a client runs in: the test's home and omk directories,
/// so the hook it starts records where the test reads.
pub(crate) fn client(omk: &Omk, program: &str, env: &[(&str, OsString)]) -> Command {
    let mut words = program.split(' ');
    let mut c = Command::new(words.next().unwrap());
    c.args(words)
        .current_dir(omk.project())
        .env("HOME", omk.root())
        .env("XDG_CACHE_HOME", omk.cache_home())
        .env("XDG_STATE_HOME", omk.state_home())
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdin(std::process::Stdio::null());
    c
}

/// What every client must show after its session: the allowed write
/// landed, the write outside the roots and the forbidden command did not
/// happen, a client with a read tool did not read the secret, the model
/// was told why, the session's log verifies and replays, and uninstalling
/// leaves the client's file as it was.
fn assert_guarded(
    omk: &Omk,
    name: &str,
    fake: &FakeModel,
    reads: bool,
    out: &std::process::Output,
) {
    let shown = crate::support::shown(out);
    assert_eq!(
        std::fs::read_to_string(omk.project().join(ALLOWED))
            .ok()
            .as_deref(),
        Some("hello\n"),
        "the allowed write did not land: {shown}"
    );
    assert!(!omk.project().join(OUTSIDE).exists(), "{shown}");
    assert!(!omk.project().join("ran.txt").exists(), "{shown}");
    let requests = fake
        .requests()
        .iter()
        .map(Value::to_string)
        .collect::<String>();
    let mut told = vec!["path.outside-roots", "commands are not run in this project"];
    let mut expected = vec!["path.outside-roots", "hostile.no-commands"];
    if reads {
        told.push("the project denies reading `private`");
        expected.push("path.read-denied");
    }
    for told in told {
        assert!(
            requests.contains(told),
            "the model never saw `{told}`: {shown}"
        );
    }
    assert!(
        !requests.contains(CONTENT),
        "the model saw the secret: {shown}"
    );
    let id = the_session(omk, name);
    let refused = refusals(&omk.events(&id));
    let codes: Vec<&str> = refused.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(codes, expected, "{shown}");
    omk.run(&[
        "goal",
        "replay",
        &id,
        "--gates",
        "project",
        "--fail-on-change",
    ])
    .code(0);
}

/// A client ready to run by hand in a guarded project: its fake model
/// server, its command line and environment, how `omk guard install`
/// reaches its configuration, and the configuration file omk must leave
/// as it found it.
pub(crate) struct Hand {
    pub(crate) name: &'static str,
    pub(crate) fake: FakeModel,
    pub(crate) program: String,
    pub(crate) args: Vec<&'static str>,
    pub(crate) env: Vec<(&'static str, OsString)>,
    pub(crate) install: &'static [&'static str],
    config: std::path::PathBuf,
    /// Whether the client has a read tool (its script reads the secret).
    reads: bool,
}

/// How the hook reaches the client.
#[derive(Clone, Copy)]
enum Hooked {
    /// `omk guard install`, the client run, `omk guard uninstall`.
    Installed,
    /// `omk guard run -- CLIENT …`.
    ForOneRun,
}

impl Hand {
    /// Runs the client with the hook `how` says, checks the session with
    /// [`assert_guarded`], and that its configuration is as it was.
    fn run(self, omk: &Omk, how: Hooked) {
        let before = std::fs::read(&self.config).ok();
        let envs: Vec<(&str, &std::ffi::OsStr)> =
            self.env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
        let with = |verb: &'static str| [&["guard", verb, self.name][..], self.install].concat();
        let out = match how {
            Hooked::Installed => {
                omk.run_env(&with("install"), &envs).code(0);
                let out = client(omk, &self.program, &self.env)
                    .args(&self.args)
                    .output()
                    .unwrap();
                omk.run_env(&with("uninstall"), &envs).code(0);
                out
            }
            Hooked::ForOneRun => omk
                .command()
                .args(["guard", "run", "--"])
                .args(self.program.split(' '))
                .args(&self.args)
                .envs(envs.iter().copied())
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap(),
        };
        assert_guarded(omk, self.name, &self.fake, self.reads, &out);
        assert_eq!(
            std::fs::read(&self.config).ok(),
            before,
            "{} changed",
            self.config.display()
        );
    }
}

/// The model's turns: the allowed write, the write outside the roots, the
/// forbidden command, the read of the secret (for a client with a read
/// tool), then a last word.
fn turns(
    write: impl Fn(&str) -> Value,
    command: Value,
    read: Option<Value>,
    usage: Value,
) -> Value {
    let mut turns = vec![
        json!({"tool_call": write(ALLOWED)}),
        json!({"tool_call": write(OUTSIDE)}),
        json!({"tool_call": command}),
    ];
    turns.extend(read.map(|r| json!({"tool_call": r})));
    turns.push(json!({"text": "Done."}));
    json!({"turns": turns, "usage": usage})
}

/// Claude Code in print mode, writes accepted by its own permissions.
fn claude(omk: &Omk) -> Option<Hand> {
    let abs = |rel: &str| omk.project().join(rel).display().to_string();
    claude_with(
        omk,
        &turns(
            |p| json!({"name": "Write", "arguments": {"file_path": abs(p), "content": "hello\n"}}),
            json!({"name": "Bash", "arguments": {"command": COMMAND}}),
            Some(json!({"name": "Read", "arguments": {"file_path": abs(SECRET)}})),
            json!({"input_tokens": 100, "output_tokens": 20}),
        ),
    )
}

/// [`claude`], its model server playing `script`.
pub(crate) fn claude_with(omk: &Omk, script: &Value) -> Option<Hand> {
    let program = clients::claude()?;
    let fake = FakeModel::start("fake_anthropic", omk.root(), script, &[]);
    let env = crate::agents::claude_env(fake.port);
    Some(Hand {
        name: "claude",
        fake,
        program,
        args: vec![
            "-p",
            "write the notes",
            "--permission-mode",
            "acceptEdits",
            "--allowedTools",
            "Bash",
        ],
        env,
        install: &[],
        config: omk.project().join(".claude/settings.json"),
        reads: script["turns"].to_string().contains(SECRET),
    })
}

/// Codex's `exec`, its own sandbox and approvals off.
fn codex(omk: &Omk) -> Option<Hand> {
    codex_with(
        omk,
        &turns(
            |p| {
                json!({"name": "apply_patch",
                       "input": format!("*** Begin Patch\n*** Add File: {p}\n+hello\n*** End Patch\n")})
            },
            json!({"name": "exec_command", "arguments": {"cmd": COMMAND}}),
            None,
            json!({"input_tokens": 100, "output_tokens": 20}),
        ),
    )
}

/// `codex exec` by hand, with no prompts and no sandbox of its own.
pub(crate) const CODEX_EXEC: &[&str] = &[
    "exec",
    "--skip-git-repo-check",
    "--json",
    "-c",
    "approval_policy=\"never\"",
    "-c",
    "sandbox_mode=\"danger-full-access\"",
    "write the notes",
];

/// [`codex`], its model server playing `script`.
pub(crate) fn codex_with(omk: &Omk, script: &Value) -> Option<Hand> {
    let program = clients::codex()?;
    let fake = FakeModel::start("fake_responses", omk.root(), script, &[]);
    let env = crate::agents::codex_env(omk.root(), fake.port);
    Some(Hand {
        name: "codex",
        fake,
        program,
        args: CODEX_EXEC.to_vec(),
        env,
        install: &[],
        config: omk.root().join("codex-home/config.toml"),
        reads: false,
    })
}

/// The legacy Kimi CLI in print mode, which approves its own tools.
fn kimi(omk: &Omk) -> Option<Hand> {
    let script = turns(
        |p| json!({"name": "WriteFile", "arguments": {"path": p, "content": "hello\n"}}),
        json!({"name": "Shell", "arguments": {"command": COMMAND}}),
        Some(json!({"name": "ReadFile", "arguments": {"path": SECRET}})),
        json!({"prompt_tokens": 100, "completion_tokens": 20}),
    );
    kimi_with(omk, &script)
}

/// [`kimi`], its model server playing `script`.
pub(crate) fn kimi_with(omk: &Omk, script: &Value) -> Option<Hand> {
    let program = clients::kimi_cli()?;
    let (fake, env) = crate::agents::wire_env(
        omk,
        script,
        crate::agents::Wire {
            yolo: false,
            before_hooks: false,
        },
    );
    Some(Hand {
        name: "kimi",
        fake,
        program,
        args: vec!["--print", "-p", "write the notes"],
        env,
        install: &["--user"],
        config: omk.root().join("kimi-share/config.toml"),
        reads: script["turns"].to_string().contains(SECRET),
    })
}

/// The Gemini CLI headless, its own approvals off (`--yolo`), on its
/// model server; `one_run`: under `omk guard run`, where nothing trusts
/// the folder but `--skip-trust` (installed, `omk guard install` does).
fn gemini(omk: &Omk, one_run: bool) -> Option<Hand> {
    let script = turns(
        |p| json!({"name": "write_file", "arguments": {"file_path": p, "content": "hello\n"}}),
        json!({"name": "run_shell_command", "arguments": {"command": COMMAND}}),
        Some(json!({"name": "read_file", "arguments": {"file_path": SECRET}})),
        json!({"input_tokens": 100, "output_tokens": 20}),
    );
    let mut hand = gemini_with(omk, &script)?;
    if one_run {
        hand.args.push("--skip-trust");
    }
    Some(hand)
}

/// [`gemini`], its model server playing `script`.
pub(crate) fn gemini_with(omk: &Omk, script: &Value) -> Option<Hand> {
    let (program, env) = crate::agents::gemini_env(omk)?;
    let fake = FakeModel::start("fake_gemini", omk.root(), script, &[]);
    let mut env = env;
    env.push((
        "GOOGLE_GEMINI_BASE_URL",
        format!("http://127.0.0.1:{}", fake.port).into(),
    ));
    Some(Hand {
        name: "gemini",
        fake,
        program,
        args: vec![
            "-p",
            "write the notes",
            "-m",
            "gemini-2.5-pro",
            "-o",
            "json",
            "--yolo",
        ],
        env,
        install: &[],
        config: omk.project().join(".gemini/settings.json"),
        reads: script["turns"].to_string().contains(SECRET),
    })
}

/// OpenCode's `run`, which asks no one about its tools.
fn opencode(omk: &Omk) -> Option<Hand> {
    let script = turns(
        |p| json!({"name": "write", "arguments": {"filePath": p, "content": "hello\n"}}),
        json!({"name": "bash", "arguments": {"command": COMMAND, "description": "make it"}}),
        Some(json!({"name": "read", "arguments": {"filePath": SECRET}})),
        json!({"prompt_tokens": 100, "completion_tokens": 20}),
    );
    opencode_with(omk, &script)
}

/// [`opencode`], its model server playing `script`.
pub(crate) fn opencode_with(omk: &Omk, script: &Value) -> Option<Hand> {
    let fake = FakeModel::start("fake_openai_chat", omk.root(), script, &[]);
    let (program, env) = crate::agents::opencode_env(omk, fake.port)?;
    Some(Hand {
        name: "opencode",
        fake,
        program,
        args: vec!["run", "--format", "json", "write the notes"],
        env,
        install: &[],
        config: omk.project().join(".opencode/plugins/omk-guard.js"),
        reads: script["turns"].to_string().contains(SECRET),
    })
}

/// Runs `client` by hand in a fresh guarded project, hooked `how`.
fn guarded(client: fn(&Omk) -> Option<Hand>, how: Hooked) {
    let omk = Omk::new();
    guarded_project(&omk);
    if let Some(hand) = client(&omk) {
        hand.run(&omk, how);
    }
}

#[test]
fn claude_code_run_by_hand_is_guarded() {
    guarded(claude, Hooked::Installed);
    guarded(claude, Hooked::ForOneRun);
}

#[test]
fn codex_run_by_hand_is_guarded() {
    guarded(codex, Hooked::Installed);
    guarded(codex, Hooked::ForOneRun);
}

#[test]
fn the_kimi_cli_run_by_hand_is_guarded() {
    guarded(kimi, Hooked::Installed);
    guarded(kimi, Hooked::ForOneRun);
}

#[test]
fn the_gemini_cli_run_by_hand_is_guarded() {
    guarded(|omk| gemini(omk, false), Hooked::Installed);
    guarded(|omk| gemini(omk, true), Hooked::ForOneRun);
}

#[test]
fn opencode_run_by_hand_is_guarded() {
    guarded(opencode, Hooked::Installed);
    guarded(opencode, Hooked::ForOneRun);
}

#[test]
fn a_client_under_guard_run_cannot_write_outside_the_project() {
    confined_command_stays_inside(
        "claude",
        claude_with,
        |c| json!({"name": "Bash", "arguments": {"command": c}}),
        &[],
    );
    confined_command_stays_inside(
        "gemini",
        gemini_with,
        |c| json!({"name": "run_shell_command", "arguments": {"command": c}}),
        &["--skip-trust"],
    );
    confined_command_stays_inside(
        "opencode",
        opencode_with,
        |c| json!({"name": "bash", "arguments": {"command": c, "description": "run it"}}),
        &[],
    );
}

/// Under `omk guard run`, a command the gates allow writes inside the
/// project and not outside: `client` (made by `hand`, its shell tool
/// called by `shell`, run with `extra` arguments).
fn confined_command_stays_inside(
    client: &str,
    hand: fn(&Omk, &Value) -> Option<Hand>,
    shell: fn(&str) -> Value,
    extra: &[&str],
) {
    let omk = Omk::new();
    omk.git_project(&[("README.md", "project\n")]);
    let outside = omk.root().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    // A write the gates cannot see in the command line (a program's own):
    // the kernel holds it. (A redirection there is judged as the write it
    // is, and refused before anything runs.)
    let command = format!(
        "python3 -c 'open(\"{}/OUT.txt\", \"w\")'; echo kept > inside.txt",
        outside.display()
    );
    let script = json!({"turns": [
        {"tool_call": shell(&command)},
        {"text": "Done."}],
        "usage": {"input_tokens": 100, "output_tokens": 20}});
    let Some(hand) = hand(&omk, &script) else {
        return;
    };
    let out = omk
        .command()
        .args(["guard", "run", "--"])
        .arg(&hand.program)
        .args(&hand.args)
        .args(extra)
        .envs(hand.env.iter().map(|(k, v)| (*k, v)))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let shown = format!("{out:?}");
    assert_eq!(
        std::fs::read_to_string(omk.project().join("inside.txt"))
            .ok()
            .as_deref(),
        Some("kept\n"),
        "{shown}"
    );
    assert!(
        !outside.join("OUT.txt").exists(),
        "the write escaped: {shown}"
    );
    let id = the_session(&omk, client);
    let allowed = of_kind(&omk.events(&id), "agent_action")
        .into_iter()
        .any(|e| e["payload"]["allowed"] == true && e["payload"]["action"]["target"] == command);
    assert!(allowed, "the gates allowed the command: {shown}");
    let runs = omk.state_home().join("omk/guard/runs");
    let left: Vec<_> = std::fs::read_dir(&runs)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "the private home is removed: {left:?}");
}

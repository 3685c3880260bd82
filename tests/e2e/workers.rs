//! Tasks run by `omk worker`s through a real NATS JetStream server
//! (Debian's `nats-server`, started here on 127.0.0.1 ports): many
//! workers, each a process with a state directory of its own; a worker
//! killed mid-task; a three-node cluster losing a node; a coordinator
//! killed and run again; a worker that does not trust the gates.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Omk, of_kind, skip};

/// A `nats-server` with JetStream, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `nats-server`: on `PATH`, or where Debian puts it (`/usr/sbin`, which
/// a user's `PATH` may lack).
fn nats_server() -> Option<PathBuf> {
    ["nats-server", "/usr/sbin/nats-server"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(PathBuf::from)
}

/// Whether `nats-server` is here; a skip (a failure in CI) if not.
fn have_nats() -> bool {
    let found = nats_server().is_some();
    if !found {
        skip("nats-server is not installed (Debian package `nats-server`)");
    }
    found
}

impl Server {
    /// A server on a free port, its store under `dir`; one of a cluster
    /// when `cluster` gives its route port and the others'.
    fn start(dir: &Path, name: &str, port: u16, cluster: Option<(u16, &[u16])>) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        let mut c = Command::new(nats_server().expect("nats-server"));
        c.args([
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-n",
            name,
        ])
        .arg("-sd")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("server.log")).unwrap(),
        ));
        if let Some((route, others)) = cluster {
            let routes: Vec<String> = others
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect();
            c.args([
                "--cluster_name",
                "omk",
                "--cluster",
                &format!("nats://127.0.0.1:{route}"),
                "--routes",
                &routes.join(","),
            ]);
        }
        let child = c.spawn().expect("nats-server starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, port }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// An `omk worker` with a home and state of its own, its stderr in `log`;
/// killed (`SIGKILL`) when dropped.
struct Worker {
    child: Child,
    log: PathBuf,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn worker(omk: &Omk, url: &str, name: &str, extra: &[&str], env: &[(&str, &str)]) -> Worker {
    let home = omk.root().join(format!("worker-{name}"));
    std::fs::create_dir_all(&home).unwrap();
    let log = home.join("worker.log");
    let child = omk
        .command()
        .args(["worker", "--nats", url, "--name", name, "--max-agents", "2"])
        .args(extra)
        .env("HOME", &home)
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .expect("omk worker starts");
    Worker { child, log }
}

impl Worker {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `text`; the log.
    fn wait_for(&self, text: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let log = self.log();
            if log.contains(text) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "`{text}` not in the worker's log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A plan of `n` tasks, each writing its own note (after `sleep_ms`), and
/// the script that does them.
fn script(n: usize, sleep_ms: u64) -> Value {
    let ids: Vec<String> = (0..n).map(|i| format!("t{i:02}")).collect();
    let plan: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"id": id, "title": format!("note {id}"), "write_set": [format!("notes/{id}.md")],
                   "acceptance": [format!("run: test -f notes/{id}.md")], "budget_secs": 120})
        })
        .collect();
    let tasks: serde_json::Map<String, Value> = ids
        .iter()
        .map(|id| {
            (
                id.clone(),
                json!([{"steps": [{"sleep_ms": sleep_ms},
                                  {"write": format!("notes/{id}.md"), "content": format!("{id}\n")},
                                  {"write": "elsewhere.md", "content": "refused\n"}],
                        "tokens": 100}]),
            )
        })
        .collect();
    json!({"plan": plan, "tasks": tasks})
}

/// A git project, and a goal planned from `script` (not yet executed).
fn planned(omk: &Omk, script: &Value) -> String {
    omk.git_project(&[("README.md", "project\n"), ("notes/README.md", "notes\n")]);
    let file = omk.root().join("script.json");
    std::fs::write(&file, script.to_string()).unwrap();
    let run = omk.run(&[
        "goal",
        "run",
        "write the notes",
        "--agent",
        "scripted",
        "--script",
        file.to_str().unwrap(),
        "--max-agents",
        "6",
        "--json",
    ]);
    run.code(0);
    run.json()["id"].as_str().unwrap().to_owned()
}

/// A coordinator running in the background, its output in files.
struct Coordinator {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

/// `omk goal execute ID --dispatch URL` in the background.
fn coordinator(omk: &Omk, id: &str, url: &str, env: &[(&str, &str)]) -> Coordinator {
    let n = std::fs::read_dir(omk.root())
        .map(|d| d.count())
        .unwrap_or(0);
    let (out, err) = (
        omk.root().join(format!("coordinator-{n}.out")),
        omk.root().join(format!("coordinator-{n}.err")),
    );
    let child = omk
        .command()
        .args(["goal", "execute", id, "--dispatch", url, "--json"])
        .envs(env.iter().copied())
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .expect("the coordinator starts");
    Coordinator { child, out, err }
}

/// Waits for the coordinator (killed after `within`); its exit code,
/// stdout and stderr.
fn finish(mut c: Coordinator, within: Duration) -> (i32, String, String) {
    let deadline = Instant::now() + within;
    let code = loop {
        if let Some(status) = c.child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = c.child.kill();
            let _ = c.child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (code, read(&c.out), read(&c.err))
}

/// What a coordinator's `--json` output says went wrong, short enough to
/// leave room for the logs in a failed assertion: the goal's failure and
/// each task not done (or the output itself, cut, when it is not JSON).
fn gist(stdout: &str) -> String {
    let Ok(out) = serde_json::from_str::<Value>(stdout) else {
        return stdout.chars().take(2000).collect();
    };
    let mut lines = vec![format!("goal: {}", out["goal"]["failure"])];
    for t in out["graph"]["tasks"].as_array().into_iter().flatten() {
        if t["status"] != "done" {
            lines.push(format!("{}: {} ({})", t["id"], t["status"], t["failure"]));
        }
    }
    lines.join("\n")
}

/// Every gate decision of a goal, as what was judged and how, sorted.
fn decisions(events: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = of_kind(events, "gate_decision")
        .into_iter()
        .map(|e| {
            let p = &e["payload"];
            format!(
                "{} {} {} {} {} {}",
                p["stage"], p["task_id"], p["action"]["target"], p["gate"], p["verdict"], p["code"]
            )
        })
        .collect();
    out.sort();
    out
}

/// How many times each task's completion was logged.
fn completions(events: &[Value]) -> std::collections::BTreeMap<String, usize> {
    let mut n = std::collections::BTreeMap::new();
    for e in of_kind(events, "task_completed") {
        *n.entry(e["payload"]["task_id"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    n
}

/// The workers each attempt ran on, from `task_started`.
fn ran_on(events: &[Value]) -> Vec<String> {
    of_kind(events, "task_started")
        .into_iter()
        .map(|e| {
            let wt = e["payload"]["worktree"].as_str().unwrap();
            wt.split(':').next().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn a_goal_of_30_tasks_runs_on_three_workers_as_it_runs_here() {
    if !have_nats() {
        return;
    }
    let omk = Omk::new();
    let server = Server::start(&omk.root().join("nats"), "n1", free_port(), None);
    let workers: Vec<Worker> = ["w1", "w2", "w3"]
        .iter()
        .map(|n| worker(&omk, &server.url(), n, &[], &[]))
        .collect();
    let id = planned(&omk, &script(30, 200));
    let (code, stdout, stderr) = finish(
        coordinator(&omk, &id, &server.url(), &[]),
        Duration::from_secs(300),
    );
    let logs: String = workers.iter().map(Worker::log).collect();
    assert_eq!(code, 0, "{}\n{stderr}\n{logs}", gist(&stdout));
    let out: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["goal"]["status"], "ready", "{stderr}");
    omk.run(&["goal", "verify-log", &id]).code(0);
    let events = omk.events(&id);
    let done = completions(&events);
    assert_eq!(done.len(), 30);
    assert!(done.values().all(|n| *n == 1), "{done:?}");
    let on = ran_on(&events);
    assert_eq!(on.len(), 30, "one attempt each: {on:?}");
    let mut used = on.clone();
    used.sort();
    used.dedup();
    assert!(used.len() >= 2, "the work was spread: {used:?}");
    // Every write outside its task's write set was refused on the worker,
    // and the proof has no gap.
    let refused = crate::support::refusals(&events);
    assert_eq!(refused.len(), 30, "{refused:?}");
    assert_eq!(omk.proof(&id)["known_gaps"], json!([]));
    assert!(
        omk.git(&["show", &format!("omk/{id}/integration:notes/t29.md")])
            .contains("t29")
    );

    // The same goal run here, without workers: the same decisions.
    let here = Omk::new();
    let local = planned(&here, &script(30, 0));
    here.run(&["goal", "execute", &local, "--json"]).code(0);
    let (remote, local) = (decisions(&events), decisions(&here.events(&local)));
    assert_eq!(remote.len(), local.len());
    assert_eq!(remote, local);
}

/// A connection speaking NATS's text protocol (its `INFO` read,
/// `CONNECT` sent), and a reader of its lines.
fn raw(port: u16) -> (TcpStream, BufReader<TcpStream>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap(); // INFO
    s.write_all(b"CONNECT {\"verbose\":false}\r\n").unwrap();
    (s, r)
}

/// Publishes `payload` on `subject`: what a worker that was killed would
/// have sent, had it lived.
fn publish_raw(port: u16, subject: &str, payload: &[u8]) {
    let (mut s, mut r) = raw(port);
    write!(s, "PUB {subject} {}\r\n", payload.len()).unwrap();
    s.write_all(payload).unwrap();
    s.write_all(b"\r\nPING\r\n").unwrap();
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.starts_with("PONG") || line.is_empty() {
            break;
        }
    }
}

/// Sends a request on `subject` and returns the reply's payload (as
/// JSON): what the JetStream API answers.
fn request_raw(port: u16, subject: &str, payload: &Value) -> Value {
    let (mut s, mut r) = raw(port);
    let body = payload.to_string();
    write!(
        s,
        "SUB _INBOX.test 1\r\nPUB {subject} _INBOX.test {}\r\n{body}\r\n",
        body.len()
    )
    .unwrap();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "no reply on {subject}");
        if line.starts_with("PING") {
            s.write_all(b"PONG\r\n").unwrap();
        }
        if let Some(head) = line.strip_prefix("MSG ") {
            let len: usize = head.split_whitespace().last().unwrap().parse().unwrap();
            let mut reply = vec![0; len + 2];
            std::io::Read::read_exact(&mut r, &mut reply).unwrap();
            return serde_json::from_slice(&reply[..len]).unwrap();
        }
    }
}

#[test]
fn a_claims_bucket_made_with_direct_reads_is_turned_to_read_from_its_leader() {
    if !have_nats() {
        return;
    }
    let omk = Omk::new();
    let server = Server::start(&omk.root().join("nats"), "n1", free_port(), None);
    // The bucket as an earlier omk made it: any replica answers a read,
    // and a lagging one would have a result taken as late.
    let made = request_raw(
        server.port,
        "$JS.API.STREAM.CREATE.KV_omk-leases",
        &json!({"name": "KV_omk-leases", "subjects": ["$KV.omk-leases.>"],
                "max_msgs_per_subject": 1, "discard": "new", "allow_rollup_hdrs": true,
                "deny_delete": true, "allow_direct": true, "storage": "file",
                "num_replicas": 1}),
    );
    assert_eq!(made["config"]["allow_direct"], true, "{made}");
    let w = worker(&omk, &server.url(), "w", &[], &[]);
    w.wait_for("agents at once", Duration::from_secs(60));
    let info = request_raw(server.port, "$JS.API.STREAM.INFO.KV_omk-leases", &json!({}));
    assert_eq!(info["config"]["allow_direct"], false, "{info}");
}

#[test]
fn a_worker_killed_mid_task_hands_it_to_another_and_it_counts_once() {
    if !have_nats() {
        return;
    }
    let omk = Omk::new();
    let server = Server::start(&omk.root().join("nats"), "n1", free_port(), None);
    // Offers come back 2 s after their worker stops acknowledging them.
    let fast = [("OMK_NATS_ACK_WAIT_SECS", "2")];
    let first = worker(&omk, &server.url(), "first", &[], &fast);
    let id = planned(&omk, &script(1, 6000));
    let key = format!("{id}.t00.1");
    let coord = coordinator(&omk, &id, &server.url(), &fast);
    let log = first.wait_for(&format!("running {key}"), Duration::from_secs(60));
    let claim = log
        .split(&format!("running {key} (claim "))
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap()
        .to_owned();
    drop(first); // kill -9, mid-task
    let second = worker(&omk, &server.url(), "second", &[], &fast);
    second.wait_for(&format!("running {key}"), Duration::from_secs(60));
    // The dead attempt's result arrives late: it must change nothing.
    let graph: Value = serde_json::from_str(
        &std::fs::read_to_string(omk.goal_dir(&id).join("task-graph.json")).unwrap(),
    )
    .unwrap();
    let token = graph["tasks"][0]["lease_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let late = json!({"wire": 1, "goal_id": id, "task_id": "t00", "attempt": 1, "token": token,
                      "claim": claim, "worker": "first",
                      "body": {"kind": "ran", "events": [], "inputs": [], "started": null,
                               "end": {"kind": "done", "commit": null, "object": null, "follow_ups": []}}});
    publish_raw(
        server.port,
        &format!("omk.results.{id}"),
        late.to_string().as_bytes(),
    );
    let (code, stdout, stderr) = finish(coord, Duration::from_secs(120));
    assert_eq!(code, 0, "{}\n{stderr}\n{}", gist(&stdout), second.log());
    let events = omk.events(&id);
    assert_eq!(completions(&events)["t00"], 1);
    assert_eq!(ran_on(&events), ["second"]);
    let ignored: Vec<&Value> = of_kind(&events, "agent_note")
        .into_iter()
        .filter(|e| e["payload"]["note"] == "late_result_ignored")
        .collect();
    assert_eq!(ignored.len(), 1, "{ignored:?}");
    assert_eq!(ignored[0]["payload"]["detail"]["claim"], json!(claim));
    assert!(omk.project().join("notes/README.md").exists());
    assert_eq!(
        omk.git(&["show", &format!("omk/{id}/integration:notes/t00.md")]),
        "t00\n"
    );
    omk.run(&["goal", "verify-log", &id]).code(0);
}

#[test]
fn a_three_node_cluster_loses_a_node_mid_goal_and_the_goal_completes() {
    if !have_nats() {
        return;
    }
    let omk = Omk::new();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut servers: Vec<Option<Server>> = (0..3)
        .map(|i| {
            let others: Vec<u16> = (0..3).filter(|j| *j != i).map(|j| routes[j]).collect();
            Some(Server::start(
                &omk.root().join(format!("nats-{i}")),
                &format!("n{i}"),
                ports[i],
                Some((routes[i], &others)),
            ))
        })
        .collect();
    let url = ports
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let replicated = [("OMK_NATS_REPLICAS", "3")];
    let w1 = worker(&omk, &url, "w1", &[], &replicated);
    let w2 = worker(&omk, &url, "w2", &[], &replicated);
    let id = planned(&omk, &script(12, 700));
    let coord = coordinator(&omk, &id, &url, &replicated);
    // Some work done, then a node dies.
    let deadline = Instant::now() + Duration::from_secs(120);
    while (w1.log() + &w2.log()).matches(" sent").count() < 3 {
        assert!(Instant::now() < deadline, "{}\n{}", w1.log(), w2.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    servers[1] = None;
    let (code, stdout, stderr) = finish(coord, Duration::from_secs(240));
    assert_eq!(
        code,
        0,
        "{}\n{stderr}\n{}\n{}",
        gist(&stdout),
        w1.log(),
        w2.log()
    );
    let events = omk.events(&id);
    let done = completions(&events);
    assert_eq!(done.len(), 12);
    assert!(done.values().all(|n| *n == 1), "{done:?}");
    omk.run(&["goal", "verify-log", &id]).code(0);
    drop(servers);
}

#[test]
fn a_coordinator_killed_mid_goal_resumes_and_runs_nothing_twice() {
    if !have_nats() {
        return;
    }
    let omk = Omk::new();
    let server = Server::start(&omk.root().join("nats"), "n1", free_port(), None);
    let w1 = worker(&omk, &server.url(), "w1", &[], &[]);
    let w2 = worker(&omk, &server.url(), "w2", &[], &[]);
    let id = planned(&omk, &script(10, 800));
    let mut coord = coordinator(&omk, &id, &server.url(), &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while (w1.log() + &w2.log()).matches(" sent").count() < 3 {
        assert!(Instant::now() < deadline, "{}\n{}", w1.log(), w2.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    coord.child.kill().unwrap(); // SIGKILL, mid-goal
    coord.child.wait().unwrap();
    let (code, stdout, stderr) = finish(
        coordinator(&omk, &id, &server.url(), &[]),
        Duration::from_secs(180),
    );
    assert_eq!(code, 0, "{}\n{stderr}", gist(&stdout));
    let events = omk.events(&id);
    let done = completions(&events);
    assert_eq!(done.len(), 10);
    assert!(done.values().all(|n| *n == 1), "{done:?}");
    assert!(
        of_kind(&events, "task_failed").is_empty(),
        "nothing ran again"
    );
    // Each attempt ran on one worker, once.
    let logs = w1.log() + &w2.log();
    for i in 0..10 {
        let key = format!("running {id}.t{i:02}.1 ");
        assert_eq!(logs.matches(&key).count(), 1, "{key}\n{logs}");
    }
    omk.run(&["goal", "verify-log", &id]).code(0);
}

#[test]
fn a_worker_refuses_gates_it_does_not_trust_and_the_coordinator_says_why() {
    if !have_nats() {
        return;
    }
    let omk = Omk::new();
    let server = Server::start(&omk.root().join("nats"), "n1", free_port(), None);
    let id = {
        let id = planned(&omk, &script(1, 0));
        // The project's policy comes from a bundle its team signed.
        let (key, public) = crate::bundles::keygen(&omk, "team");
        let archive = crate::bundles::packed(
            &omk,
            &crate::bundles::bundle_dir(&omk, "team", "0.2.0"),
            &[&key],
        );
        omk.write(
            ".omk/gates.toml",
            format!(
                "[trust]\nkeys = [\"{}\"]\n\n[[gate]]\nbundle = \"team\"\nname = \"strict-path\"\nconfig = {{ roots = [\".\"] }}\n\n[[gate]]\nname = \"budget\"\n",
                Path::new(&public).file_name().unwrap().to_string_lossy()
            ),
        );
        omk.run(&["bundle", "install", &archive]).code(0);
        id
    };
    let (_, stranger) = crate::bundles::keygen(&omk, "stranger");
    let doubter = worker(&omk, &server.url(), "doubter", &["--trust", &stranger], &[]);
    let (code, stdout, stderr) = finish(
        coordinator(&omk, &id, &server.url(), &[]),
        Duration::from_secs(120),
    );
    assert_eq!(code, 1, "{}\n{stderr}\n{}", gist(&stdout), doubter.log());
    let events = omk.events(&id);
    let refusals: Vec<&Value> = of_kind(&events, "agent_note")
        .into_iter()
        .filter(|e| e["payload"]["note"] == "worker_refused")
        .collect();
    assert!(!refusals.is_empty());
    let reason = refusals[0]["payload"]["detail"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("does not trust bundle `team`") && reason.contains("--trust"),
        "{reason}"
    );
    let failed = of_kind(&events, "task_failed");
    let last = failed.last().unwrap();
    assert_eq!(last["payload"]["code"], "omk.worker-refused");
    assert!(
        last["payload"]["reason"]
            .as_str()
            .unwrap()
            .contains("worker `doubter` refused it"),
        "{last}"
    );
    assert!(of_kind(&events, "task_started").is_empty(), "nothing ran");
    omk.run(&["goal", "verify-log", &id]).code(0);
}

#[test]
fn a_worker_stopped_with_sigterm_finishes_its_attempt_first() {
    if !have_nats() {
        return;
    }
    let omk = Omk::new();
    let server = Server::start(&omk.root().join("nats"), "n1", free_port(), None);
    let mut w = worker(&omk, &server.url(), "w1", &[], &[]);
    let id = planned(&omk, &script(1, 3000));
    let coord = coordinator(&omk, &id, &server.url(), &[]);
    let key = format!("{id}.t00.1");
    w.wait_for(&format!("running {key}"), Duration::from_secs(60));
    // SAFETY: kill(2) on the worker this test started, still running.
    unsafe {
        libc::kill(w.child.id() as i32, libc::SIGTERM);
    }
    let status = w.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", w.log());
    let log = w.log();
    assert!(
        log.contains("stopping; finishing 1 attempt(s)") && log.contains(&format!("{key} sent")),
        "{log}"
    );
    let (code, stdout, stderr) = finish(coord, Duration::from_secs(60));
    assert_eq!(code, 0, "{}\n{stderr}", gist(&stdout));
    assert_eq!(completions(&omk.events(&id))["t00"], 1);
}

#[test]
fn doctor_checks_a_nats_server() {
    if !have_nats() {
        return;
    }
    let omk = Omk::new();
    let server = Server::start(&omk.root().join("nats"), "n1", free_port(), None);
    let ok = omk.run(&["doctor", "--nats", &server.url(), "--json"]);
    ok.code(0);
    let n = &ok.json()["nats"];
    assert_eq!(
        (n["reachable"].clone(), n["jetstream"].clone()),
        (json!(true), json!(true)),
        "{n}"
    );
    assert_eq!(n["streams"]["OMK_TASKS"], false, "made on first use: {n}");
    let text = omk.run(&["doctor", "--nats", &server.url()]);
    assert!(text.stdout.contains("ok  JetStream"), "{}", text.stdout);
    // Nothing listens there.
    let nowhere = format!("nats://127.0.0.1:{}", free_port());
    let bad = omk.run(&["doctor", "--nats", &nowhere, "--json"]);
    bad.code(1);
    assert_eq!(bad.json()["nats"]["reachable"], false);
    // A worker that cannot reach its server says so and exits 4.
    let run = omk.run(&["worker", "--nats", &nowhere, "--name", "lost"]);
    run.code(4);
    assert!(
        run.stderr.contains("cannot connect") && run.stderr.contains("help:"),
        "{}",
        run.stderr
    );
}

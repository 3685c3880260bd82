//! Workers through NATS JetStream: a goal of 24 tasks whose scripted agent
//! sleeps 2 s each, run by 1, 2 and 4 `omk worker`s of 2 agents against a
//! `nats-server` started here; the wall time and the speed-up; and what
//! dispatch adds per task against the same goal run here with as many
//! agents.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::figures::Figures;
use crate::ms;

const TASKS: usize = 24;
const SLEEP_MS: u64 = 2000;
const AGENTS_PER_WORKER: usize = 2;

/// Kills its process when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

/// A git project, the script, and a planned goal; its id.
fn planned(omk: &Path, dir: &Path, sleep_ms: u64, agents: usize) -> Option<String> {
    let project = dir.join("project");
    std::fs::create_dir_all(project.join("notes")).ok()?;
    std::fs::write(project.join("notes/README.md"), "notes\n").ok()?;
    let git = |args: &[&str]| {
        Command::new("git")
            .args(["-c", "user.name=b", "-c", "user.email=b@b"])
            .args(args)
            .current_dir(&project)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(git(&["init", "-q"]) && git(&["add", "-A"]) && git(&["commit", "-qm", "init"])) {
        return None;
    }
    let plan: Vec<serde_json::Value> = (0..TASKS)
        .map(|i| {
            serde_json::json!({"id": format!("t{i:02}"), "write_set": [format!("notes/t{i:02}.md")],
                               "acceptance": ["a note"], "budget_secs": 60})
        })
        .collect();
    let tasks: serde_json::Map<String, serde_json::Value> = (0..TASKS)
        .map(|i| {
            let id = format!("t{i:02}");
            let steps = serde_json::json!([{"sleep_ms": sleep_ms},
                {"write": format!("notes/{id}.md"), "content": "x\n"}]);
            (
                id,
                serde_json::json!([{"steps": steps,
                "evidence": [{"kind": "note", "summary": "written", "criterion": "a note"}]}]),
            )
        })
        .collect();
    let script = dir.join("script.json");
    std::fs::write(
        &script,
        serde_json::json!({"plan": plan, "tasks": tasks}).to_string(),
    )
    .ok()?;
    let mut c = Command::new(omk);
    let out = env(&mut c, dir)
        .args(["goal", "run", "bench", "--agent", "scripted", "--script"])
        .arg(&script)
        .args(["--max-agents", &agents.to_string(), "--json"])
        .output()
        .ok()?;
    let goal: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    goal["id"].as_str().map(str::to_owned)
}

fn env<'a>(c: &'a mut Command, dir: &Path) -> &'a mut Command {
    c.current_dir(dir.join("project"))
        .env("HOME", dir)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("XDG_STATE_HOME", dir.join("state"))
}

/// The wall time of executing the planned goal, with `--dispatch` when
/// given; `None` if it did not end ready.
fn execute(omk: &Path, dir: &Path, id: &str, dispatch: Option<&str>) -> Option<Duration> {
    let mut c = Command::new(omk);
    env(&mut c, dir)
        .args(["goal", "execute", id, "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(url) = dispatch {
        c.args(["--dispatch", url]);
    }
    let start = Instant::now();
    let ok = c.status().ok()?.success();
    ok.then(|| start.elapsed())
}

pub fn dispatch(tmp: &Path, omk: Option<&Path>, figs: &mut Figures) {
    let (Some(omk), Some(server)) = (omk, nats_server()) else {
        figs.table(
            "bench.dispatch",
            "(not measured: needs the release `omk` and `nats-server`)".into(),
        );
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(14999);
    let url = format!("nats://127.0.0.1:{port}");
    let store = tmp.join("nats");
    let _server = match Command::new(&server)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => Killed(c),
        Err(e) => {
            figs.table("bench.dispatch", format!("(not measured: {e})"));
            return;
        }
    };
    std::thread::sleep(Duration::from_millis(500));
    let mut rows = Vec::new();
    let mut one = None;
    for workers in [1usize, 2, 4] {
        let agents = workers * AGENTS_PER_WORKER;
        let dir = tmp.join(format!("dispatch-{workers}"));
        let Some(id) = planned(omk, &dir, SLEEP_MS, agents) else {
            rows.push(format!(
                "| {workers} | (the goal could not be planned) | | |"
            ));
            continue;
        };
        let _running: Vec<Killed> = (0..workers)
            .filter_map(|w| {
                let home = dir.join(format!("worker-{w}"));
                Command::new(omk)
                    .args(["worker", "--nats", &url, "--name", &format!("w{w}")])
                    .args(["--max-agents", &AGENTS_PER_WORKER.to_string()])
                    .env("HOME", &home)
                    .env("XDG_CACHE_HOME", dir.join("cache"))
                    .env("XDG_STATE_HOME", home.join("state"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .ok()
                    .map(Killed)
            })
            .collect();
        let took = execute(omk, &dir, &id, Some(&url));
        let Some(took) = took else {
            rows.push(format!("| {workers} | (did not finish ready) | | |"));
            continue;
        };
        let base = *one.get_or_insert(took);
        let ideal = Duration::from_millis(SLEEP_MS * (TASKS / agents) as u64);
        rows.push(format!(
            "| {workers} × {AGENTS_PER_WORKER} agents | {} | {:.2}× | {} |",
            ms(took),
            base.as_secs_f64() / took.as_secs_f64(),
            ms(ideal)
        ));
    }
    // What dispatch adds per task: the same goal, tasks that do not sleep,
    // 2 agents here against 1 worker of 2 agents.
    let overhead = (|| {
        let local_dir = tmp.join("dispatch-local");
        let id = planned(omk, &local_dir, 0, AGENTS_PER_WORKER)?;
        let local = execute(omk, &local_dir, &id, None)?;
        let remote_dir = tmp.join("dispatch-remote");
        let id = planned(omk, &remote_dir, 0, AGENTS_PER_WORKER)?;
        let home = remote_dir.join("worker");
        let _w = Command::new(omk)
            .args(["worker", "--nats", &url, "--name", "solo"])
            .args(["--max-agents", &AGENTS_PER_WORKER.to_string()])
            .env("HOME", &home)
            .env("XDG_CACHE_HOME", remote_dir.join("cache"))
            .env("XDG_STATE_HOME", home.join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
            .map(Killed)?;
        let remote = execute(omk, &remote_dir, &id, Some(&url))?;
        Some((local, remote))
    })();
    let mut table = format!(
        "| workers (a goal of {TASKS} tasks, each {} s of agent) | wall time | speed-up over 1 worker | the sleeps alone |\n|---|---|---|---|\n{}",
        SLEEP_MS / 1000,
        rows.join("\n")
    );
    if let Some((local, remote)) = overhead {
        let per = |d: Duration| d / TASKS as u32;
        table.push_str(&format!(
            "\n\n| {TASKS} tasks that do no work, {AGENTS_PER_WORKER} agents | per task |\n|---|---|\n| run here | {} |\n| dispatched to one worker | {} |\n| added by dispatch | {} |",
            ms(per(local)),
            ms(per(remote)),
            ms(per(remote.saturating_sub(local)))
        ));
    }
    figs.table("bench.dispatch", table);
}

//! Whole processes: loading the std bundle cold and warm, `omk gate check`
//! and `omk hook` as processes, whole waves through `omk goal propose`,
//! and what confinement adds to starting a task's process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use omk::gates::{CacheDirs, GateEngine, GateSet, GatesConfig, Limits};
use omk_gate_sdk::{GoalContext, TaskProposal};

use crate::figures::Figures;
use crate::{ms, us};

/// The release `omk` beside this bench, if it was built.
pub fn omk_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.join("omk");
    candidate.exists().then_some(candidate)
}

pub const NO_BINARY: &str =
    "(not measured: build the binary first, `cargo build --release -p omk`)";

/// What start-up measured, for the targets.
#[derive(Default)]
pub struct Startup {
    /// The first decision with a warm compile cache.
    pub warm_first: Duration,
    /// `omk hook` per call, answered by the user's judge (median).
    pub hook: Option<Duration>,
    /// `omk hook` per call in its own process, warm cache (median).
    pub hook_own: Option<Duration>,
    /// Starting the binary alone (median).
    pub process_floor: Option<Duration>,
}

/// Start-up: the std bundle loaded with an empty compile cache, then a
/// warm one; `omk gate check` as a whole process; `omk hook claude` as a
/// client runs it, `hook_calls` times.
pub fn startup(tmp: &Path, hook_calls: usize, figs: &mut Figures) -> Startup {
    let cache = tmp.join("cold-cache");
    let proposal: TaskProposal = serde_json::from_value(
        serde_json::json!({"id": "a", "acceptance": ["x"], "budget_secs": 1}),
    )
    .expect("proposal");
    let first = || {
        let start = Instant::now();
        let engine = GateEngine::new(Some(CacheDirs::under(&cache))).expect("engine");
        let set = GateSet::load(&GatesConfig::std(Limits::default()), &engine).expect("load");
        let v = set.judge_proposal(&GoalContext::default(), &proposal);
        assert!(v.accepted);
        (start.elapsed(), engine.stats().compiled())
    };
    let (cold, compiled) = first();
    let (warm, _) = first();
    let mut rows = vec![
        format!(
            "| std bundle loaded, empty compile cache ({compiled} components compiled in parallel), to the first decision | {} |",
            ms(cold)
        ),
        format!(
            "| std bundle loaded, warm cache, to the first decision | {} |",
            ms(warm)
        ),
    ];
    let mut out = Startup {
        warm_first: warm,
        ..Startup::default()
    };
    match omk_binary() {
        None => rows.push(format!("| whole processes | {NO_BINARY} |")),
        Some(omk) => {
            let (cold, warm) = gate_check(&omk, tmp);
            rows.push(format!(
                "| `omk gate check` as a whole process, empty cache | {} |",
                ms(cold)
            ));
            rows.push(format!(
                "| `omk gate check` as a whole process, warm cache (median of 10) | {} |",
                ms(warm)
            ));
            let floor = process_start(&omk);
            rows.push(format!(
                "| the floor: starting the `omk` binary and reaping it (`omk --version`, median of 100) | {} |",
                ms(floor)
            ));
            let own = guard_hook(&omk, &tmp.join("own-process"), hook_calls, false);
            let judged = guard_hook(&omk, &tmp.join("judge"), hook_calls, true);
            rows.push(format!(
                "| `omk hook claude`, a session's first call (compiles the std gates, creates its record, starts the user's judge) | {} |",
                ms(judged.0)
            ));
            rows.push(format!(
                "| `omk hook claude` per tool call, answered by the user's judge, judged and recorded (median / p90 of {hook_calls}) | {} / {} |",
                ms(judged.1),
                ms(judged.2)
            ));
            rows.push(format!(
                "| `omk hook claude` per tool call, judged in its own process (`OMK_JUDGE=off`), warm cache (median / p90 of {hook_calls}) | {} / {} |",
                ms(own.1),
                ms(own.2)
            ));
            out.hook = Some(judged.1);
            out.hook_own = Some(own.1);
            out.process_floor = Some(floor);
        }
    }
    figs.table(
        "bench.startup",
        format!("| start-up | figure |\n|---|---|\n{}", rows.join("\n")),
    );
    out
}

/// `omk gate check` with an empty cache, then its median of 10 warm runs.
fn gate_check(omk: &Path, tmp: &Path) -> (Duration, Duration) {
    let dir = tmp.join("proc");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("p.json");
    std::fs::write(&file, r#"{"id":"a","acceptance":["x"],"budget_secs":1}"#).expect("write");
    let run = || {
        let start = Instant::now();
        let ok = Command::new(omk)
            .args(["gate", "check", "--proposal"])
            .arg(&file)
            .current_dir(&dir)
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .env("XDG_STATE_HOME", dir.join("state"))
            .output()
            .expect("omk runs")
            .status
            .success();
        assert!(ok);
        start.elapsed()
    };
    let cold = run();
    let mut warm: Vec<Duration> = (0..10).map(|_| run()).collect();
    warm.sort();
    (cold, warm[5])
}

/// The median time to start `omk --version` and reap it: what any hook
/// call costs at least.
fn process_start(omk: &Path) -> Duration {
    let mut times: Vec<Duration> = (0..100)
        .map(|_| {
            let start = Instant::now();
            let ok = Command::new(omk)
                .arg("--version")
                .stdout(std::process::Stdio::null())
                .status()
                .expect("omk runs")
                .success();
            assert!(ok);
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// `omk hook claude` as a client runs it: a new process per tool call,
/// each judged by the std gates and recorded in the session's log (with
/// fsync); half the calls are refused. With `judge`, as omk runs by
/// default: the first call starts the user's judge and the later ones are
/// answered by it; else (`OMK_JUDGE=off`) each judges in its own process.
/// The first call, then the median and p90 of `n` more.
fn guard_hook(omk: &Path, tmp: &Path, n: usize, judge: bool) -> (Duration, Duration, Duration) {
    let dir = tmp.join("guarded");
    std::fs::create_dir_all(dir.join(".omk")).expect("dir");
    std::fs::write(
        dir.join(".omk/gates.toml"),
        "[guard]\nwrite_roots = [\"src\"]\n",
    )
    .expect("gates.toml");
    let call = |i: usize| {
        let file = if i.is_multiple_of(2) {
            "src/a.rs"
        } else {
            "docs/b.md"
        };
        let event = serde_json::json!({"hook_event_name": "PreToolUse", "session_id": "bench",
            "cwd": dir, "tool_name": "Write",
            "tool_input": {"file_path": dir.join(file), "content": "x"}});
        let start = Instant::now();
        let mut child = Command::new(omk)
            .args(["hook", "claude"])
            .current_dir(&dir)
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .env("XDG_STATE_HOME", dir.join("state"))
            .env("OMK_JUDGE", if judge { "on" } else { "off" })
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("omk runs");
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin
                .write_all(event.to_string().as_bytes())
                .expect("stdin");
        }
        let code = child.wait().expect("omk ends").code();
        let want = if i.is_multiple_of(2) { 0 } else { 2 };
        assert_eq!(code, Some(want), "call {i}");
        start.elapsed()
    };
    let first = call(0);
    if judge {
        // Until the judge it started answers.
        let socket = dir.join("state/omk/guard/judge/socket");
        let until = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < until, "the judge did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut times: Vec<Duration> = (1..=n).map(call).collect();
    times.sort();
    (first, times[times.len() / 2], times[times.len() * 9 / 10])
}

/// Whole waves through `omk goal propose` (gates, omk's checks, the event
/// log, fsync) at each size: wall time, proposals per second and peak
/// memory. Returns the wall time of each size.
pub fn waves(tmp: &Path, sizes: &[usize], figs: &mut Figures) -> Vec<(usize, Duration)> {
    let Some(omk) = omk_binary() else {
        figs.table("bench.waves", NO_BINARY.into());
        return Vec::new();
    };
    let mut rows = Vec::new();
    let mut took_each = Vec::new();
    for &n in sizes {
        let dir = tmp.join(format!("wave-{n}"));
        std::fs::create_dir_all(&dir).expect("dir");
        let env = |c: &mut Command| {
            c.current_dir(&dir)
                .env("XDG_CACHE_HOME", tmp.join("cache"))
                .env("XDG_STATE_HOME", dir.join("state"));
        };
        let mut c = Command::new(&omk);
        c.args(["goal", "run", "bench", "--json"]);
        env(&mut c);
        let out = c.output().expect("goal run");
        let goal: serde_json::Value = serde_json::from_slice(&out.stdout).expect("goal json");
        let id = goal["id"].as_str().expect("id").to_owned();
        // Distinct paths, so that most are accepted and the wave grows.
        let props: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                serde_json::json!({"id": format!("t{i}"), "write_set": [format!("src/m{}/f{i}.rs", i % 97)],
                    "read_set": [format!("docs/d{}.md", i % 13)], "acceptance": ["run: cargo test"], "budget_secs": 60})
            })
            .collect();
        let plan = dir.join("plan.json");
        std::fs::write(
            &plan,
            serde_json::json!({"run_key": "bench", "kind": "initial", "proposals": props})
                .to_string(),
        )
        .expect("plan");
        let mut c = Command::new(&omk);
        c.args(["goal", "propose", &id, "--plan"])
            .arg(&plan)
            .arg("--json");
        env(&mut c);
        let start = Instant::now();
        c.stdout(std::process::Stdio::null());
        let status = c.status().expect("propose");
        let took = start.elapsed();
        took_each.push((n, took));
        let rss_kib = children_max_rss_kib();
        let log = dir.join("state/omk/goals").join(&id).join("events.jsonl");
        let events = std::fs::read_to_string(&log)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        rows.push(format!(
            "| {n} | {} | {:.0} | {:.1} MiB | {events} | {:.1} MiB |{}",
            ms(took),
            n as f64 / took.as_secs_f64(),
            rss_kib as f64 / 1024.0,
            size as f64 / (1 << 20) as f64,
            if status.success() {
                ""
            } else {
                " (some rejected)"
            }
        ));
    }
    figs.table(
        "bench.waves",
        format!(
            "| proposals in one wave (`omk goal propose`) | wall time | proposals / s | peak RSS (of every omk process so far) | events | log size |\n|---|---|---|---|---|---|\n{}",
            rows.join("\n")
        ),
    );
    took_each
}

fn children_max_rss_kib() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u.ru_maxrss
    }
}

/// What confinement adds to starting a task's process: `sh -c true` run
/// `n` times through omk's process runner, unconfined and confined to a
/// task's profile (prepared once, as for a task attempt), medians compared.
pub fn confined_start(tmp: &Path, n: usize, figs: &mut Figures) {
    use omk::sandbox::{ClientState, Confinement, Profile, ProfileInputs, SandboxSettings};
    let wt = tmp.join("confined-worktree");
    std::fs::create_dir_all(&wt).expect("worktree");
    let settings = SandboxSettings::new();
    let profile = Profile::derive(&ProfileInputs {
        settings: &settings,
        worktree: Some(&wt),
        read_only_tree: None,
        git_dir: None,
        task_dir: &tmp.join("confined-task"),
        commands: vec!["sh -c true".into()],
        client: ClientState::default(),
        proxy: None,
        private: vec![tmp.to_owned()],
        env: std::env::vars().collect(),
        deny_read: Vec::new(),
    })
    .expect("profile");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let confined = match rt.block_on(async { Confinement::prepare(&profile) }) {
        Ok(c) => c,
        Err(e) => {
            figs.table(
                "bench.confined",
                format!("(confined process start not measured: {e})"),
            );
            return;
        }
    };
    let time = |c: &Confinement| -> Duration {
        let mut t: Vec<Duration> = (0..n)
            .map(|_| {
                let start = Instant::now();
                let f = rt.block_on(omk::agents::process::run_shell(
                    "true",
                    &wt,
                    &[],
                    c,
                    None,
                    omk::agents::process::deadline_in(10),
                    &|_| {},
                    &mut |_| {},
                ));
                assert!(f.success(), "{f:?}");
                start.elapsed()
            })
            .collect();
        t.sort();
        t[t.len() / 2]
    };
    let plain = time(&Confinement::none());
    let sandboxed = time(&confined);
    figs.table(
        "bench.confined",
        format!(
            "| starting a task's process (`sh -c true`, median of {n}) | figure |\n|---|---|\n| unconfined | {} |\n| confined (Landlock + seccomp) | {} |\n| added by confinement | {} |",
            us(plain),
            us(sandboxed),
            us(sandboxed.saturating_sub(plain))
        ),
    );
}

//! omk's benchmark: the same generated proposals judged by the std gates
//! natively, as sandboxed components (a fresh instance per decision, and
//! one instance reused per wave), and by a peer policy engine (regorus,
//! with `--features peers`); then cold and warm start, whole waves through
//! the `omk` binary with the event log, and the example gate built in each
//! language whose toolchain is installed.
//!
//! ```text
//! cargo build --release -p omk
//! cargo run --release -p omk-bench --features peers            # 10,000 proposals
//! cargo run --release -p omk-bench -- --quick                  # a smoke run
//! ```
//!
//! Every engine's decisions are checked against the native ones before any
//! figure is printed: a fast wrong answer does not count.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use omk::gates::{CacheDirs, GateEngine, GateSet, GatesConfig, Limits};
use omk::wave::relevant::Accepted;
use omk_gate_acceptance::AcceptanceGate;
use omk_gate_budget::BudgetGate;
use omk_gate_path::PathGate;
use omk_gate_sdk::{AcceptedTask, Budget, Decision, GoalContext, Policy, TaskProposal};

#[cfg(feature = "peers")]
mod rego;

/// A deterministic pseudo-random stream (no dependency, same every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A realistic mix: mostly accepted, some over budget, bad paths, paths
/// outside the roots, conflicts with the wave, missing acceptance.
fn proposals(n: usize) -> Vec<TaskProposal> {
    let mut r = Lcg(42);
    (0..n)
        .map(|i| {
            let kind = r.below(100);
            let dir = ["src", "docs", "tests"][r.below(3) as usize];
            let mut write = vec![format!("{dir}/area{}/file{i}.rs", r.below(50))];
            let mut read = vec![
                format!("src/lib{}.rs", r.below(20)),
                format!("docs/guide{}.md", r.below(10)),
            ];
            let mut budget = 60 + r.below(600);
            let mut acceptance = vec!["run: cargo test".to_owned(), "docs updated".to_owned()];
            match kind {
                0..=59 => {}
                60..=67 => budget = 900_000,
                68..=71 => write.push("/etc/passwd".into()),
                72..=75 => write.push(format!("src/../../{i}")),
                76..=78 => read.push(".git/config".into()),
                79..=82 => write.push(format!("deploy/{i}.env")),
                83..=90 => write.push(format!("src/wave{}/shared.rs", r.below(16))),
                91..=95 => acceptance.clear(),
                _ => acceptance = vec!["run:   ".into()],
            }
            TaskProposal {
                id: format!("task-{i}"),
                title: format!("Task {i}"),
                description: "generated".into(),
                dependencies: vec![],
                read_set: read,
                write_set: write,
                risk: "low".into(),
                acceptance,
                budget_secs: budget,
                priority: 0,
            }
        })
        .collect()
}

/// A wave in progress: 16 tasks accepted, some time committed. The
/// accepted tasks are given to each proposal as omk gives them: only those
/// it could conflict with (see `omk::wave::relevant`).
fn context() -> GoalContext {
    GoalContext {
        goal_id: "goal-bench".into(),
        goal_text: "benchmark".into(),
        phase: "planning".into(),
        now_ms: 1_700_000_000_000,
        budget: Budget {
            time_limit_secs: Some(1_000_000),
            time_spent_secs: 10_000,
            time_committed_secs: 90_000,
            ..Default::default()
        },
        policy_roots: vec!["src".into(), "docs".into(), "tests".into()],
        accepted_in_wave: (0..16)
            .map(|i| AcceptedTask {
                id: format!("accepted-{i}"),
                read_set: vec![format!("docs/area{i}")],
                write_set: vec![format!("src/wave{i}")],
                dependencies: vec![],
            })
            .collect(),
        existing_task_ids: (0..16).map(|i| format!("accepted-{i}")).collect(),
    }
}

fn native(ctx: &GoalContext, p: &TaskProposal) -> [Decision; 3] {
    [
        BudgetGate::check_proposal(ctx, p, "{}"),
        PathGate::check_proposal(ctx, p, "{}"),
        AcceptanceGate::check_proposal(ctx, p, "{}"),
    ]
}

/// Timings of one engine.
struct Run {
    name: String,
    per_op: Vec<Duration>,
    total: Duration,
}

impl Run {
    fn median(&self) -> Duration {
        let mut v = self.per_op.clone();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }
    fn p99(&self) -> Duration {
        let mut v = self.per_op.clone();
        v.sort();
        v.get(v.len() * 99 / 100).copied().unwrap_or_default()
    }
}

/// A proposal with the context it is judged in.
type Case = (GoalContext, TaskProposal);

/// Each proposal with the wave's context narrowed to the accepted tasks it
/// could conflict with, as omk narrows it.
fn cases(items: Vec<TaskProposal>) -> Vec<Case> {
    let wave = context();
    let mut accepted = Accepted::default();
    for t in &wave.accepted_in_wave {
        accepted.push(t.clone());
    }
    items
        .into_iter()
        .map(|p| {
            let ctx = GoalContext {
                accepted_in_wave: accepted.relevant_to(&p),
                ..wave.clone()
            };
            (ctx, p)
        })
        .collect()
}

fn measure<T>(
    name: &str,
    items: &[Case],
    mut f: impl FnMut(&GoalContext, &TaskProposal) -> T,
    check: impl Fn(usize, &T),
) -> Run {
    // One warm-up pass, then the measured one.
    for (c, p) in items.iter().take(100) {
        let _ = f(c, p);
    }
    let mut per_op = Vec::with_capacity(items.len());
    let start = Instant::now();
    for (i, (c, p)) in items.iter().enumerate() {
        let t = Instant::now();
        let out = f(c, p);
        per_op.push(t.elapsed());
        check(i, &out);
    }
    Run {
        name: name.into(),
        per_op,
        total: start.elapsed(),
    }
}

fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let n = if quick { 500 } else { 10_000 };
    println!("omk benchmark — {n} generated proposals, one process, one thread");
    println!(
        "build: {}, {} cores\n",
        if cfg!(debug_assertions) {
            "DEBUG (figures are not meaningful; use --release)"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let items = cases(proposals(n));
    let expected: Vec<[Decision; 3]> = items.iter().map(|(c, p)| native(c, p)).collect();
    let accepted = expected
        .iter()
        .filter(|d| d.iter().all(Decision::is_accept))
        .count();
    println!("mix: {accepted} of {n} accepted by all three gates\n");

    let tmp = tempfile::tempdir().expect("temp dir");
    let engine =
        GateEngine::new(Some(CacheDirs::under(&tmp.path().join("cache")))).expect("engine");
    let std_config = GatesConfig::std(Limits::default());
    let set = GateSet::load(&std_config, &engine).expect("std gates load");

    let mut runs = Vec::new();
    runs.push(measure(
        "native Rust (the limit)",
        &items,
        native,
        |i, d| assert_eq!(d, &expected[i]),
    ));
    runs.push(measure(
        "omk, fresh instance per decision",
        &items,
        |c, p| set.judge_proposal(c, p),
        |i, v| {
            let got: Vec<&Decision> = v.decisions.iter().map(|d| &d.decision).collect();
            assert_eq!(got, expected[i].iter().collect::<Vec<_>>(), "proposal {i}");
        },
    ));
    let mut reused: Vec<_> = set
        .entries()
        .iter()
        .map(|e| (e.gate.reuse(e.limits), e.config_json.clone()))
        .collect();
    runs.push(measure(
        "omk, one instance reused per wave",
        &items,
        |ctx, p| {
            reused
                .iter_mut()
                .map(|(r, c)| r.check_proposal(ctx, p, c).expect("no fault"))
                .collect::<Vec<_>>()
        },
        |i, d| assert_eq!(d.as_slice(), &expected[i]),
    ));
    #[cfg(feature = "peers")]
    {
        let engine = rego::Rego::new();
        runs.push(measure(
            "regorus 0.14 RVM (OPA-compatible), same rules",
            &items,
            |c, p| engine.eval(c, p),
            |i, verdict| {
                let want = [
                    !expected[i][0].is_accept(),
                    !expected[i][1].is_accept(),
                    !expected[i][2].is_accept(),
                ];
                assert_eq!(
                    verdict, &want,
                    "regorus disagrees on proposal {i}: {:?}",
                    items[i].1
                );
            },
        ));
    }

    let native_median = runs[0].median();
    println!("| engine | median / proposal | p99 | total | × native |");
    println!("|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} | {} | {} | {} | {:.0}× |",
            r.name,
            us(r.median()),
            us(r.p99()),
            ms(r.total),
            r.median().as_secs_f64() / native_median.as_secs_f64().max(1e-12)
        );
    }
    #[cfg(feature = "peers")]
    {
        let fresh = runs[1].median().as_secs_f64();
        let rego = runs[3].median().as_secs_f64();
        println!(
            "\nregorus / omk fresh instance: {:.1}× (omk is {} per decision, sandboxed)",
            rego / fresh,
            if rego > fresh { "faster" } else { "slower" }
        );
    }
    #[cfg(not(feature = "peers"))]
    println!("\n(peer engine skipped: run with `--features peers` to compare against regorus)");

    cold_start(tmp.path());
    guard_hook(tmp.path(), if quick { 20 } else { 200 });
    confined_start(tmp.path(), if quick { 20 } else { 100 });
    waves(
        tmp.path(),
        if quick { &[100, 500] } else { &[1_000, 10_000] },
    );
    languages(tmp.path(), if quick { 50 } else { 500 });
}

/// What confinement adds to starting a task's process: `sh -c true` run
/// `n` times through omk's process runner, unconfined and confined to a
/// task's profile (prepared once, as for a task attempt), medians compared.
fn confined_start(tmp: &Path, n: usize) {
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
    })
    .expect("profile");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let confined = match rt.block_on(async { Confinement::prepare(&profile) }) {
        Ok(c) => c,
        Err(e) => {
            println!("\nconfined process start: not measured ({e})");
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
    println!(
        "
| starting a task's process (`sh -c true`, median of {n}) | figure |\n|---|---|\n| unconfined | {} |\n| confined (Landlock + seccomp) | {} |\n| added by confinement | {} |",
        us(plain),
        us(sandboxed),
        us(sandboxed.saturating_sub(plain))
    );
}

/// The `change-control` example gate in each language: built with
/// `omk gate build` (a language whose toolchain is missing is skipped),
/// then its size, compile-and-load time with no cache, and per decision a
/// fresh instance plus call, and a call on a reused instance.
fn languages(tmp: &Path, n: usize) {
    println!("\n## The example gate in each language (`plugins/examples/change-control`)\n");
    let Some(omk) = omk_binary() else {
        println!("skipped (build it first: cargo build --release -p omk)");
        return;
    };
    println!(
        "| language | component | compile + load, no cache | fresh instance + call | call, reused instance | instantiate (difference) |"
    );
    println!("|---|---|---|---|---|---|");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/examples/change-control");
    let ctx = GoalContext::default();
    let p: TaskProposal = serde_json::from_value(serde_json::json!({
        "id": "m", "risk": "high", "write_set": ["migrations/001.sql", "src/db.rs"],
        "acceptance": ["run: make test-migrations"], "budget_secs": 60
    }))
    .expect("proposal");
    for lang in ["rust", "js", "c", "python"] {
        let dir = tmp.join(format!("lang-{lang}"));
        if let Err(e) = copy_dir(&examples.join(lang), &dir) {
            println!("| {lang} | skipped: cannot copy the example ({e}) | | | | |");
            continue;
        }
        let built = Command::new(&omk)
            .args(["gate", "build"])
            .arg(&dir)
            .stdin(std::process::Stdio::null())
            .output();
        match built {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                let why = String::from_utf8_lossy(&o.stderr);
                let first = why
                    .lines()
                    .find(|l| l.starts_with("error"))
                    .unwrap_or("build failed");
                println!("| {lang} | skipped: {first} | | | | |");
                continue;
            }
            Err(e) => {
                println!("| {lang} | skipped: {e} | | | | |");
                continue;
            }
        }
        let bytes = std::fs::read(dir.join("change-control.wasm")).expect("built component");
        let engine = GateEngine::new(None).expect("engine");
        let limits = Limits::default();
        let start = Instant::now();
        let gate = omk::gates::LoadedGate::load_granting(
            &engine,
            &bytes,
            lang,
            &limits,
            &omk::gates::wasi::Grant::sealed(),
        )
        .expect("the example loads");
        let load = start.elapsed();
        let mut fresh: Vec<Duration> = (0..n)
            .map(|_| {
                let t = Instant::now();
                let j = gate.check_proposal(&ctx, &p, "{}", &limits);
                assert!(
                    matches!(j.result, Ok(Decision::Accept)),
                    "{lang}: {:?}",
                    j.result
                );
                t.elapsed()
            })
            .collect();
        let mut reused_gate = gate.reuse(limits);
        let mut reused: Vec<Duration> = (0..n)
            .map(|_| {
                let t = Instant::now();
                let d = reused_gate
                    .check_proposal(&ctx, &p, "{}")
                    .expect("no fault");
                assert!(d.is_accept());
                t.elapsed()
            })
            .collect();
        fresh.sort();
        reused.sort();
        let (f, r) = (fresh[n / 2], reused[n / 2]);
        println!(
            "| {lang} | {:.1} KiB | {} | {} | {} | {} |",
            bytes.len() as f64 / 1024.0,
            ms(load),
            us(f),
            us(r),
            us(f.saturating_sub(r)),
        );
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}

/// Loading the std bundle with an empty compile cache, then a warm one;
/// and the whole `omk gate check` process with a warm cache.
fn cold_start(tmp: &Path) {
    println!("\n## Start-up\n");
    let cache = tmp.join("cold-cache");
    let proposal: TaskProposal = serde_json::from_value(
        serde_json::json!({"id": "a", "acceptance": ["x"], "budget_secs": 1}),
    )
    .expect("proposal");
    let first = |label: &str| {
        let start = Instant::now();
        let engine = GateEngine::new(Some(CacheDirs::under(&cache))).expect("engine");
        let set = GateSet::load(&GatesConfig::std(Limits::default()), &engine).expect("load");
        let loaded = start.elapsed();
        let v = set.judge_proposal(&GoalContext::default(), &proposal);
        let decided = start.elapsed();
        assert!(v.accepted);
        println!(
            "- {label}: std bundle loaded in {}, first decision at {} ({} compiled, {} from cache)",
            ms(loaded),
            ms(decided),
            engine.stats().compiled(),
            engine.stats().cache_hits()
        );
    };
    first("empty cache (compiles the 3 components in parallel)");
    first("warm cache");

    let Some(omk) = omk_binary() else {
        println!(
            "- `omk gate check` process: skipped (build it first: cargo build --release -p omk)"
        );
        return;
    };
    let dir = tmp.join("proc");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("p.json");
    std::fs::write(&file, r#"{"id":"a","acceptance":["x"],"budget_secs":1}"#).expect("write");
    let run = || {
        let start = Instant::now();
        let ok = Command::new(&omk)
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
    println!(
        "- `omk gate check` as a whole process: {} with an empty cache, {} median warm (10 runs)",
        ms(cold),
        ms(warm[5])
    );
}

/// `omk hook claude` as a client runs it: a new process per tool call,
/// the compile cache warm, each call judged by the std gates and recorded
/// in the session's log (with fsync). Half the calls are refused.
fn guard_hook(tmp: &Path, n: usize) {
    println!("\n## Guard mode: one `omk hook` process per tool call\n");
    let Some(omk) = omk_binary() else {
        println!("skipped (build it first: cargo build --release -p omk)");
        return;
    };
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
        let mut child = Command::new(&omk)
            .args(["hook", "claude"])
            .current_dir(&dir)
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .env("XDG_STATE_HOME", dir.join("state"))
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
        assert_eq!(
            code,
            Some(if i.is_multiple_of(2) { 0 } else { 2 }),
            "call {i}"
        );
        start.elapsed()
    };
    let first = call(0);
    let mut times: Vec<Duration> = (1..=n).map(call).collect();
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "- first call (compiles the std gates, creates the session's record): {}",
        ms(first)
    );
    println!(
        "- warm cache: {} median, {} p90 per call ({n} calls; target 20 ms: {:.2}× of it)",
        ms(median),
        ms(times[times.len() * 9 / 10]),
        median.as_secs_f64() / 0.020
    );
}

fn omk_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.join("omk");
    candidate.exists().then_some(candidate)
}

/// Whole waves through `omk goal propose`: proposals per second and peak
/// memory, at two sizes.
fn waves(tmp: &Path, sizes: &[usize]) {
    println!(
        "\n## Whole waves through `omk goal propose` (gates, omk's checks, event log, fsync)\n"
    );
    let Some(omk) = omk_binary() else {
        println!("skipped (build it first: cargo build --release -p omk)");
        return;
    };
    println!("| proposals | wall time | proposals / s | peak RSS | events | log size |");
    println!("|---|---|---|---|---|---|");
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
        let rss_kib = children_max_rss_kib();
        let log = dir.join("state/omk/goals").join(&id).join("events.jsonl");
        let events = std::fs::read_to_string(&log)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        println!(
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
        );
    }
    println!("\n(peak RSS is the largest of all omk processes this benchmark ran so far)");
}

fn children_max_rss_kib() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u.ru_maxrss
    }
}

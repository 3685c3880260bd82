//! omk's benchmark: the same generated proposals judged by the std gates
//! natively (called directly, and from inputs parsed out of JSON), as
//! sandboxed components built for `omk:gate@0.3.0` and — through the
//! adapters — for `0.2.0` and `0.1.0` (a fresh instance per decision, and one instance
//! reused per wave), and by a peer policy engine (regorus, with
//! `--features peers`); then cold and warm start, whole waves through the
//! `omk` binary with the event log, the example gate built in each
//! language whose toolchain is installed, and a goal's tasks run by 1, 2
//! and 4 `omk worker`s through NATS JetStream.
//!
//! ```text
//! cargo build --release -p omk
//! cargo run --release -p omk-bench --features peers            # 10,000 proposals
//! cargo run --release -p omk-bench -- --quick                  # a smoke run
//! cargo run --release -p omk-bench -- --only readers           # one section
//! ```
//!
//! `--only` runs some of the sections — the engines table (`engines`,
//! quick to run), a loop that only makes and drops the std gates'
//! instances (`instances`, to profile) or those that work at scale (`readers`,
//! `workspaces`, `whole-run`) — comma separated, and nothing else; it cannot
//! write the figures file, which needs every section. With `--keep` it
//! leaves what they made (the long goal's state, the repositories) in
//! place and says where.
//!
//! Every engine's decisions are checked against the native ones before any
//! figure is printed: a fast wrong answer does not count.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use omk::gates::{CacheDirs, GateEngine, GateSet, GatesConfig, Limits};
use omk::wave::relevant::Accepted;
use omk_gate_acceptance::AcceptanceGate;
use omk_gate_budget::BudgetGate;
use omk_gate_path::PathGate;
use omk_gate_sdk::{AcceptedTask, Budget, Decision, GoalContext, Policy, TaskProposal};

mod dispatch;
mod figures;
mod languages;
mod process;
#[cfg(feature = "peers")]
mod rego;
mod scale;

use figures::Figures;

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
                accepted_in_wave: accepted.relevant_to(&p).into(),
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
    for (i, (c, p)) in items.iter().enumerate() {
        let t = Instant::now();
        let out = f(c, p);
        per_op.push(t.elapsed());
        check(i, &out);
    }
    Run {
        name: name.into(),
        per_op,
    }
}

fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    // Errors are control flow in a peer engine's interpreter: they do not
    // capture backtraces here, whatever RUST_BACKTRACE says for panics.
    // SAFETY: the process has one thread, and nothing reads the
    // environment concurrently.
    unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    // First, while this process has one thread: the workspace bench mounts
    // overlays, as `omk goal run` does.
    omk::worktree::overlay::enter();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let figures_file = args
        .iter()
        .position(|a| a == "--figures")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| args.get(i + 1).map_or("", String::as_str))
        .map(|s| s.split(',').map(str::to_owned).collect());
    if let Some(only) = &only {
        let known = ["engines", "instances", "readers", "workspaces", "whole-run"];
        if let Some(bad) = only.iter().find(|o| !known.contains(&o.as_str())) {
            eprintln!(
                "error: `--only {bad}` names no section\nhelp: one or more of {}, comma separated",
                known.join(", ")
            );
            std::process::exit(2);
        }
        if figures_file.is_some() {
            eprintln!(
                "error: `--only` runs part of the bench, and the figures file needs all of it\nhelp: drop `--only` or `--figures`"
            );
            std::process::exit(2);
        }
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut figs = Figures::new(String::new());
        if only.iter().any(|o| o == "engines") {
            engines(if quick { 500 } else { 10_000 }, tmp.path(), &mut figs);
        }
        if only.iter().any(|o| o == "instances") {
            instances(tmp.path(), if quick { 20_000 } else { 200_000 });
        }
        at_scale(
            tmp.path(),
            quick,
            |name| only.iter().any(|o| o == name),
            &mut figs,
        );
        if args.iter().any(|a| a == "--keep") {
            // What it made, to look at or profile against (the long goal:
            // `XDG_STATE_HOME=<kept>/long-goal omk goal …`).
            println!("\nkept what the sections made: {}", tmp.keep().display());
        }
        return;
    }
    let n = if quick { 500 } else { 10_000 };
    let build = if cfg!(debug_assertions) {
        "a DEBUG build (not meaningful: use --release)"
    } else {
        "a release build"
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut figs = Figures::new(format!(
        "cargo run --release -p omk-bench{} -- {}",
        if cfg!(feature = "peers") {
            " --features peers"
        } else {
            ""
        },
        args.join(" ")
    ));
    figs.table(
        "bench.run",
        format!(
            "One run of `{}`: {build}, {n} generated proposals, {cores} cores, {}.",
            figs.command(),
            chrono::Utc::now().format("%Y-%m-%d")
        ),
    );

    let tmp = tempfile::tempdir().expect("temp dir");
    let runs = engines(n, tmp.path(), &mut figs);

    let startup = process::startup(tmp.path(), if quick { 20 } else { 200 }, &mut figs);
    process::confined_start(tmp.path(), if quick { 20 } else { 100 }, &mut figs);
    let waves = process::waves(
        tmp.path(),
        if quick { &[100, 500] } else { &[1_000, 10_000] },
        &mut figs,
    );
    languages::languages(tmp.path(), if quick { 50 } else { 500 }, &mut figs);
    dispatch::dispatch(tmp.path(), process::omk_binary().as_deref(), &mut figs);
    let (readers, whole_run) = at_scale(tmp.path(), quick, |_| true, &mut figs);
    targets(&runs, &startup, &waves, &readers, whole_run, &mut figs);

    if let Some(path) = figures_file {
        match figs.write(&path) {
            Ok(()) => println!("\nfigures written to {}", path.display()),
            Err(e) => {
                eprintln!("cannot write {}: {e}", path.display());
                std::process::exit(1);
            }
        }
    }
}

/// The engines table: the same `n` proposals judged natively, by the std
/// gates as components of each `omk:gate` version (fresh and reused
/// instances) and by the peer engines, every decision checked against the
/// native one. The runs come back in the order of [`NATIVE`] and the rest.
fn engines(n: usize, tmp: &std::path::Path, figs: &mut Figures) -> Vec<Run> {
    let items = cases(proposals(n));
    let expected: Vec<[Decision; 3]> = items.iter().map(|(c, p)| native(c, p)).collect();
    let accepted = expected
        .iter()
        .filter(|d| d.iter().all(Decision::is_accept))
        .count();
    println!("mix: {accepted} of {n} accepted by all three gates\n");

    let engine = GateEngine::new(Some(CacheDirs::under(&tmp.join("cache")))).expect("engine");
    let std_config = GatesConfig::std(Limits::default());
    let set = GateSet::load(&std_config, &engine).expect("std gates load");
    let v2_set = GateSet::load(&std_of("0.2.0"), &engine).expect("0.2.0 std gates load");
    let v1_set = GateSet::load(&std_of("0.1.0"), &engine).expect("0.1.0 std gates load");

    let mut runs = Vec::new();
    runs.push(measure(
        "native Rust, the gates' logic called directly (the limit)",
        &items,
        native,
        |i, d| assert_eq!(d, &expected[i]),
    ));
    // What a policy service outside the process would do at least: parse
    // the decision's inputs from JSON, then decide.
    let json: std::collections::HashMap<&str, String> = items
        .iter()
        .map(|c| {
            (
                c.1.id.as_str(),
                serde_json::to_string(c).expect("inputs serialize"),
            )
        })
        .collect();
    runs.push(measure(
        "native Rust, the inputs parsed from JSON first",
        &items,
        |_, p| {
            let (c, p): Case = serde_json::from_str(&json[p.id.as_str()]).expect("inputs parse");
            native(&c, &p)
        },
        |i, d| assert_eq!(d, &expected[i]),
    ));
    for (version, set) in [
        ("`omk:gate@0.3.0`", &set),
        ("`omk:gate@0.2.0` through the adapter", &v2_set),
        ("`omk:gate@0.1.0` through the adapter", &v1_set),
    ] {
        runs.push(measure(
            &format!(
                "omk, {version}, a fresh sandboxed instance per gate and decision (the default)"
            ),
            &items,
            |c, p| set.judge_proposal(c, p),
            |i, v| {
                // The gates that judge proposals (the command gate judges
                // actions only, and is not called).
                let got: Vec<&Decision> = v
                    .decisions
                    .iter()
                    .filter(|d| d.called)
                    .map(|d| &d.decision)
                    .collect();
                assert_eq!(got, expected[i].iter().collect::<Vec<_>>(), "proposal {i}");
            },
        ));
        let mut reused: Vec<_> = set
            .entries()
            .iter()
            .filter(|e| e.gate.judges(omk_gate_sdk::Stage::Proposal))
            .map(|e| (e.gate.reuse(e.limits), e.config_json.clone()))
            .collect();
        runs.push(measure(
            &format!("omk, {version}, one instance per gate reused across the wave"),
            &items,
            |ctx, p| {
                reused
                    .iter_mut()
                    .map(|(r, c)| r.check_proposal(ctx, p, c).expect("no fault"))
                    .collect::<Vec<_>>()
            },
            |i, d| assert_eq!(d.as_slice(), &expected[i]),
        ));
    }
    #[cfg(feature = "peers")]
    for (mode, name) in [
        (
            rego::Mode::Rvm,
            "regorus 0.14, its RVM (OPA-compatible Rego compiled for its VM: its fastest), the same rules and codes",
        ),
        (
            rego::Mode::Interpreter,
            "regorus 0.14, its interpreter, the same policy",
        ),
    ] {
        let mut engine = rego::Rego::new(mode);
        runs.push(measure(
            name,
            &items,
            |c, p| engine.eval(c, p),
            |i, verdict| {
                let want = expected[i]
                    .clone()
                    .map(|d| d.rejection().map_or(String::new(), |r| r.code.clone()));
                assert_eq!(
                    verdict, &want,
                    "regorus ({mode:?}) disagrees on proposal {i}: {:?}",
                    items[i].1
                );
            },
        ));
    }
    fresh_breakdown(&items, &set, &runs, figs);
    let native_median = runs[NATIVE].median();
    let rows: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "| {} | {} | {} | {:.0}× |",
                r.name,
                us(r.median()),
                us(r.p99()),
                r.median().as_secs_f64() / native_median.as_secs_f64().max(1e-12)
            )
        })
        .collect();
    figs.table(
        "bench.engines",
        format!(
            "| engine | median / proposal | p99 | × native |\n|---|---|---|---|\n{}",
            rows.join("\n")
        ),
    );
    #[cfg(not(feature = "peers"))]
    println!("\n(peer engine skipped: run with `--features peers` to compare against regorus)");
    runs
}

/// Makes and drops the std gates' instances `n` times and nothing else:
/// a loop to profile (`perf record … --only instances`).
fn instances(tmp: &std::path::Path, n: usize) {
    let engine = GateEngine::new(Some(CacheDirs::under(&tmp.join("cache")))).expect("engine");
    let set = GateSet::load(&GatesConfig::std(Limits::default()), &engine).expect("std gates load");
    let start = Instant::now();
    for _ in 0..n {
        for e in set.entries() {
            e.gate.instantiate_only(&e.limits).expect("instantiates");
        }
    }
    let each = start.elapsed() / (n * set.entries().len()) as u32;
    println!(
        "{n} × {} gates made and dropped: {} each",
        set.entries().len(),
        us(each)
    );
}

/// Where a fresh decision's time goes (`omk:gate@0.3.0`, the gates that
/// judge proposals): making and dropping the instances alone, the calls
/// (on reused instances), and the rest (the verdict: each decision's
/// record, its timing).
fn fresh_breakdown(items: &[Case], set: &GateSet, runs: &[Run], figs: &mut Figures) {
    let gates: Vec<_> = set
        .entries()
        .iter()
        .filter(|e| e.gate.judges(omk_gate_sdk::Stage::Proposal))
        .collect();
    let instantiate = measure(
        "instantiate",
        items,
        |_, _| {
            for e in &gates {
                e.gate.instantiate_only(&e.limits).expect("instantiates");
            }
        },
        |_, _| {},
    );
    let fresh = runs[FRESH].median();
    let reused = runs[REUSED].median();
    let made = instantiate.median();
    let rest = fresh.saturating_sub(made + reused);
    let share = |d: Duration| 100.0 * d.as_secs_f64() / fresh.as_secs_f64().max(1e-12);
    let n = gates.len();
    figs.table(
        "bench.fresh",
        format!(
            "| a fresh decision of {n} std gates (0.3.0), median | time | share |\n|---|---|---|\n\
             | a store and an instance from the pool per gate, made and dropped (no call) | {} | {:.0} % |\n\
             | the {n} calls, on instances kept (lowering the inputs, the gates' code, lifting the answers) | {} | {:.0} % |\n\
             | the rest: the verdict (each decision's record and timing) | {} | {:.0} % |\n\
             | **in all** (the fresh row above) | **{}** | 100 % |",
            us(made),
            share(made),
            us(reused),
            share(reused),
            us(rest),
            share(rest),
            us(fresh),
        ),
    );
}

/// The sections that work at scale, those `wants` names: the log's
/// readers (their ratios to hashing the log, and peak RSS), task
/// workspaces, and a whole run (its ratio to plain git).
fn at_scale(
    tmp: &std::path::Path,
    quick: bool,
    wants: impl Fn(&str) -> bool,
    figs: &mut Figures,
) -> (Vec<(String, f64, i64)>, Option<f64>) {
    let readers = if wants("readers") {
        scale::readers(tmp, if quick { 20_000 } else { 1_000_000 }, figs)
    } else {
        Vec::new()
    };
    if wants("workspaces") {
        scale::workspaces(tmp, if quick { 10_000 } else { 100_000 }, 4, figs);
    }
    let whole_run = if wants("whole-run") {
        scale::whole_run(tmp, 12, 3, figs)
    } else {
        None
    };
    (readers, whole_run)
}

/// The std gates as built for an older `omk:gate` (`0.1.0`, `0.2.0`), kept
/// in the tests.
fn std_of(version: &str) -> GatesConfig {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = ["budget", "path", "acceptance"]
        .map(|g| {
            format!("[[gate]]\npath = \"tests/fixtures/gates-{version}/std-bundle/{g}.wasm\"\n")
        })
        .concat();
    GatesConfig::parse(&text, &repo.join(".omk/gates.toml"), &repo).expect("old gates config")
}

/// The runs' order in `main`.
const NATIVE: usize = 0;
const NATIVE_JSON: usize = 1;
const FRESH: usize = 2;
const REUSED: usize = 3;
const PEER: usize = 8;

/// Each figure that has a target, against it.
fn targets(
    runs: &[Run],
    startup: &process::Startup,
    waves: &[(usize, Duration)],
    readers: &[(String, f64, i64)],
    whole_run: Option<f64>,
    figs: &mut Figures,
) {
    let row = |what: &str, target: Duration, got: Duration, show: fn(Duration) -> String| {
        format!(
            "| {what} | {} | {} | {:.2}× |",
            show(target),
            show(got),
            got.as_secs_f64() / target.as_secs_f64()
        )
    };
    let mut rows = vec![
        row(
            "a fresh instance per decision, three std gates (0.3.0)",
            Duration::from_micros(15),
            runs[FRESH].median(),
            us,
        ),
        row(
            "a reused instance per decision, three std gates (0.3.0)",
            Duration::from_micros(4),
            runs[REUSED].median(),
            us,
        ),
        format!(
            "| a reused instance (0.3.0) against native with JSON parsing, per decision | 5 × {} | {} | {:.2}× |",
            us(runs[NATIVE_JSON].median()),
            us(runs[REUSED].median()),
            runs[REUSED].median().as_secs_f64() / (5.0 * runs[NATIVE_JSON].median().as_secs_f64())
        ),
        row(
            "the first decision, warm cache",
            Duration::from_millis(20),
            startup.warm_first,
            ms,
        ),
    ];
    if let Some(hook) = startup.hook {
        rows.push(row(
            "`omk hook` per tool call, answered by the user's judge",
            Duration::from_millis(3),
            hook,
            ms,
        ));
    }
    if let Some(own) = startup.hook_own {
        rows.push(row(
            "`omk hook` per tool call in its own process (`OMK_JUDGE=off`), warm cache",
            Duration::from_millis(20),
            own,
            ms,
        ));
    }
    if let Some((_, took)) = waves.iter().find(|(n, _)| *n == 10_000) {
        rows.push(row(
            "a 10,000-proposal wave through `omk goal propose`",
            Duration::from_millis(1000),
            *took,
            ms,
        ));
    }
    for (name, ratio, rss_kib) in readers {
        // Replaying every decision through the std gates within twice the
        // hashing; every other reader within three times.
        let target = if name.contains("--gates std") {
            2.0
        } else {
            3.0
        };
        rows.push(format!(
            "| {name} on a long goal, against hashing its log once | {target}× | {ratio:.2}× | {:.2}× |",
            ratio / target
        ));
        rows.push(format!(
            "| {name}, peak RSS | 150 MiB | {:.0} MiB | {:.2}× |",
            *rss_kib as f64 / 1024.0,
            *rss_kib as f64 / 1024.0 / 150.0
        ));
    }
    if let Some(ratio) = whole_run {
        rows.push(format!(
            "| a 12-task run on a real repository, against plain git serially ÷ agents + 10 % | 1× | {ratio:.2}× | {ratio:.2}× |"
        ));
    }
    if let Some(peer) = runs.get(PEER) {
        rows.push(format!(
            "| a fresh instance (0.3.0) against regorus's RVM, per decision | regorus's {} | {} | {:.2}× |",
            us(peer.median()),
            us(runs[FRESH].median()),
            runs[FRESH].median().as_secs_f64() / peer.median().as_secs_f64()
        ));
        rows.push(format!(
            "| a reused instance (0.3.0) against regorus's RVM, per decision | regorus's {} | {} | {:.2}× |",
            us(peer.median()),
            us(runs[REUSED].median()),
            runs[REUSED].median().as_secs_f64() / peer.median().as_secs_f64()
        ));
    }
    figs.table(
        "bench.targets",
        format!(
            "| against its target | target | measured | × target |\n|---|---|---|---|\n{}",
            rows.join("\n")
        ),
    );
}

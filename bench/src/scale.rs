//! Cost that grows with the work: the log's readers on a long goal against
//! hashing its log once, and task workspaces on a large repository against
//! plain git doing the same steps; peak memory of each.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use omk::gates::{GateEngine, GateSet, GatesConfig};
use omk::goal::{GoalStore, Limits, NewGoal, Session};
use omk::proof::events::{self, About};
use omk::proof::inputs::Subject;
use omk::wave::{DispatchPlan, WaveKind};
use omk::worktree::{self, overlay};
use omk_gate_sdk::{ActionKind, AgentAction, GoalContext, TaskProposal};

use crate::figures::Figures;
use crate::ms;
use crate::process::omk_binary;

/// Runs `cmd` and returns its wall time, its peak RSS (KiB) and whether it
/// exited 0 or 1. The peak is the kernel's high-water mark of the process's
/// own memory (`VmHWM`), read every 2 ms while it runs: what `wait4`
/// reports would include this bench's memory, shared until `exec`.
fn measure(cmd: &mut Command) -> (Duration, i64, bool) {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let start = Instant::now();
    let Ok(mut child) = cmd.spawn() else {
        return (Duration::ZERO, 0, false);
    };
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Some(hwm) = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<i64>().ok())
        }) {
            peak = peak.max(hwm);
        }
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => break None,
        }
    };
    let ok = status.and_then(|s| s.code()).is_some_and(|c| c <= 1);
    (start.elapsed(), peak, ok)
}

/// A goal of `tasks` tasks, each started and given `actions` actions
/// judged by the std gates (one in 50 refused), then completed: about
/// `tasks × (4 × actions + 8)` events, every input recorded.
fn long_goal(state: &Path, tasks: usize, actions: usize) -> (String, u64) {
    let store = GoalStore::new(state.join("omk/goals"));
    let spec = NewGoal {
        text: "a goal that ran for days".into(),
        limits: Limits::default(),
        max_agents: 4,
        project_dir: state.to_owned(),
        policy_roots: vec![],
        agent: None,
        base_commit: None,
        merge_policy: Default::default(),
        guarded: None,
    };
    let mut s = Session::create(&store, spec, Utc::now()).expect("goal");
    let engine = GateEngine::new(None).expect("engine");
    let gates = GateSet::load(&GatesConfig::std(Default::default()), &engine).expect("gates");
    let proposals: Vec<TaskProposal> = (0..tasks)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "id": format!("t{i}"), "write_set": [format!("src/m{i}/")],
                "acceptance": ["run: true"], "budget_secs": 60
            }))
            .expect("proposal")
        })
        .collect();
    for (w, chunk) in proposals.chunks(1000).enumerate() {
        let plan = DispatchPlan {
            run_key: format!("run-{w}"),
            kind: WaveKind::Initial,
            proposals: chunk.to_vec(),
            allow_existing_task_ids: false,
        };
        omk::wave::run_wave(&mut s, &gates, &plan, Utc::now()).expect("wave");
    }
    let ctx = GoalContext {
        goal_id: s.goal.id.clone(),
        ..GoalContext::default()
    };
    for (i, task) in proposals.iter().enumerate() {
        s.log
            .record(
                events::OMK,
                &events::TaskStarted {
                    task_id: task.id.clone(),
                    attempt: 1,
                    branch: format!("omk/g/{}", task.id),
                    worktree: format!("/w/{}", task.id).into(),
                    lease_expires_at: None,
                    agent: "scripted".into(),
                    live_gating: true,
                    sandbox: None,
                    workspace: Some("overlay".into()),
                },
            )
            .expect("log");
        for a in 0..actions {
            let target = if a % 50 == 49 {
                "src/elsewhere.rs".to_owned()
            } else {
                format!("src/m{i}/f{a}.rs")
            };
            let action = AgentAction {
                task_id: task.id.clone(),
                kind: ActionKind::WriteFile,
                target,
                detail: String::new(),
                command: None,
                tool: None,
            };
            let verdict = gates.judge_action(&ctx, task, &action);
            let input = s
                .inputs
                .record(
                    &ctx,
                    None,
                    Subject::Action {
                        task: task.clone(),
                        action: action.clone(),
                    },
                )
                .expect("input");
            omk::wave::record_verdict(
                &mut s,
                &verdict,
                &input,
                About {
                    task_id: task.id.clone(),
                    action: Some(action.clone()),
                    ..About::default()
                },
            )
            .expect("decisions");
            let blocked = verdict.rejection();
            s.log
                .record(
                    &events::agent_actor("scripted"),
                    &events::AgentAction {
                        task_id: task.id.clone(),
                        action,
                        allowed: blocked.is_none(),
                        gate: blocked.as_ref().map(|b| b.gate.clone()),
                        code: blocked.as_ref().map(|b| b.code.clone()),
                        reason: blocked.map(|b| b.reason),
                        approval: None,
                    },
                )
                .expect("log");
        }
        s.log
            .record(
                events::OMK,
                &events::TaskCompleted {
                    task_id: task.id.clone(),
                    attempt: 1,
                    commit: None,
                    merged: false,
                    changed_files: vec![],
                    follow_ups: 0,
                },
            )
            .expect("log");
    }
    s.log.sync().expect("sync");
    s.inputs.sync().expect("sync");
    let id = s.goal.id.clone();
    let events = s.log.last_id();
    drop(s);
    (id, events)
}

/// The log's readers on a goal of about `target` events, each against
/// `sha256sum` of the same log.
pub fn readers(tmp: &Path, target: usize, figs: &mut Figures) -> Vec<(String, f64, i64)> {
    let Some(omk) = omk_binary() else {
        figs.table("bench.readers", crate::process::NO_BINARY.into());
        return Vec::new();
    };
    let state = tmp.join("long-goal");
    let actions = 120;
    let tasks = (target / (4 * actions + 8)).max(1);
    let made = Instant::now();
    let (id, events) = long_goal(&state, tasks, actions);
    println!(
        "\ngenerated a goal of {tasks} tasks and {events} events in {}",
        ms(made.elapsed())
    );
    let log = state.join("omk/goals").join(&id).join("events.jsonl");
    let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let (floor, floor_rss, _) = measure(Command::new("sha256sum").arg(&log));
    let report = tmp.join("long-goal.html");
    let report = report.to_string_lossy().into_owned();
    let runs: [(&str, Vec<&str>); 5] = [
        (
            "`goal verify-log`",
            vec!["goal", "verify-log", &id, "--json"],
        ),
        ("`goal proof --json`", vec!["goal", "proof", &id, "--json"]),
        (
            "`goal report --html`",
            vec!["goal", "report", &id, "--html", &report],
        ),
        (
            "`goal replay` (the timeline)",
            vec!["goal", "replay", &id, "--json"],
        ),
        (
            "`goal replay --gates std`",
            vec!["goal", "replay", &id, "--gates", "std", "--json"],
        ),
    ];
    let mut rows = vec![format!(
        "| `sha256sum` of the log (the floor) | {} | 1.00× | {:.1} MiB |",
        ms(floor),
        floor_rss as f64 / 1024.0
    )];
    let mut out = Vec::new();
    for (name, args) in runs {
        let mut c = Command::new(&omk);
        c.args(&args)
            .env("XDG_STATE_HOME", &state)
            .env("XDG_CACHE_HOME", tmp.join("cache"));
        let (took, rss, ok) = measure(&mut c);
        let ratio = took.as_secs_f64() / floor.as_secs_f64().max(1e-9);
        rows.push(format!(
            "| {name} | {} | {ratio:.2}× | {:.1} MiB |{}",
            ms(took),
            rss as f64 / 1024.0,
            if ok { "" } else { " (failed)" }
        ));
        out.push((name.to_owned(), ratio, rss));
    }
    figs.table(
        "bench.readers",
        format!(
            "A goal of {tasks} tasks with {actions} judged actions each: {events} events, a {:.0} MiB log.\n\n| reader | wall time | × hashing the log | peak RSS (`VmHWM`) |\n|---|---|---|---|\n{}",
            size as f64 / (1 << 20) as f64,
            rows.join("\n")
        ),
    );
    out
}

/// Disk used under `dir`, in KiB (`du -sk`).
fn disk_kib(dirs: &[&Path]) -> u64 {
    let out = Command::new("du").arg("-skc").args(dirs).output();
    out.ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .last()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args([
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "-c",
            "core.hooksPath=/dev/null",
        ])
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "git {args:?} in {}", dir.display());
}

/// `git worktree add -b BRANCH PATH BASE`, plain.
fn worktree_add(repo: &Path, branch: &str, path: &Path, base: &str) {
    git(
        repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            branch,
            &path.to_string_lossy(),
            base,
        ],
    );
}

/// One task done with plain git: a worktree of `base` in `dir`, `file`
/// written, committed, merged into the worktree `integ` if given, removed.
fn plain_task(repo: &Path, dir: &Path, base: &str, file: &str, t: usize, integ: Option<&Path>) {
    let wt = dir.join(format!("t{t}"));
    let p = wt.to_string_lossy();
    let branch = format!("plain/t{t}");
    worktree_add(repo, &branch, &wt, base);
    let file = wt.join(file);
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).expect("dir");
    }
    std::fs::write(&file, "changed\n").expect("write");
    git(&wt, &["add", "-A"]);
    git(&wt, &["commit", "-qm", "task"]);
    if let Some(integ) = integ {
        git(integ, &["merge", "-q", "--no-ff", "--no-edit", &branch]);
    }
    git(repo, &["worktree", "remove", "--force", &p]);
}

/// A repository of `files` small files in folders of 100.
fn big_repo(dir: &Path, files: usize) -> String {
    for i in 0..files {
        let d = dir.join(format!("pkg{:04}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&d).expect("dir");
        }
        std::fs::write(d.join(format!("f{i}.txt")), format!("file {i}\n")).expect("file");
    }
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "base"]);
    worktree::head_commit(dir).expect("head")
}

/// Task workspaces on a repository of `files` files: starting one (time
/// and disk before the agent writes), and `tasks` tasks each started,
/// changed, committed and removed — omk's copy-on-write workspaces against
/// plain `git worktree` doing the same steps.
pub fn workspaces(tmp: &Path, files: usize, tasks: usize, figs: &mut Figures) {
    if let Err(why) = overlay::available() {
        figs.table(
            "bench.workspaces",
            format!("(not measured: no overlays here: {why})"),
        );
        return;
    }
    let repo = tmp.join("big-repo");
    std::fs::create_dir_all(&repo).expect("repo");
    let made = Instant::now();
    let base = big_repo(&repo, files);
    println!(
        "\ngenerated a repository of {files} files in {}",
        ms(made.elapsed())
    );
    let wts = tmp.join("goal/worktrees");
    std::fs::create_dir_all(&wts).expect("worktrees");
    let admin = repo.join(".git/worktrees");

    // The one full checkout a goal makes, on its first task.
    let start = Instant::now();
    worktree::create(&repo, &wts.join("first"), "omk/g/first", &base).expect("first");
    let first = start.elapsed();
    worktree::remove(&repo, &wts.join("first")).expect("remove");

    let one = wts.join("one");
    let before = disk_kib(&[&wts.join(".layers"), &admin]);
    let start = Instant::now();
    worktree::create(&repo, &one, "omk/g/one", &base).expect("create");
    let overlay_start = start.elapsed();
    let overlay_disk = disk_kib(&[&wts.join(".layers"), &admin]).saturating_sub(before);
    worktree::remove(&repo, &one).expect("remove");

    let plain = tmp.join("plain");
    std::fs::create_dir_all(&plain).expect("plain");
    let before = disk_kib(&[&plain, &admin]);
    let start = Instant::now();
    worktree_add(&repo, "plain/one", &plain.join("one"), &base);
    let plain_start = start.elapsed();
    let plain_disk = disk_kib(&[&plain, &admin]).saturating_sub(before);
    git(
        &repo,
        &[
            "worktree",
            "remove",
            "--force",
            &plain.join("one").to_string_lossy(),
        ],
    );

    // Whole tasks: start, change a file, commit, remove.
    let start = Instant::now();
    for t in 0..tasks {
        let wt = wts.join(format!("t{t}"));
        worktree::create(&repo, &wt, &format!("omk/g/t{t}"), &base).expect("create");
        std::fs::write(wt.join(format!("pkg0000/f{t}.txt")), "changed\n").expect("write");
        worktree::commit(&repo, &wt, "task")
            .expect("commit")
            .expect("a commit");
        worktree::remove(&repo, &wt).expect("remove");
    }
    let overlay_tasks = start.elapsed();
    let start = Instant::now();
    for t in 0..tasks {
        let file = format!("pkg0000/f{t}.txt");
        plain_task(&repo, &plain, &base, &file, t, None);
    }
    let plain_tasks = start.elapsed();
    figs.table(
        "bench.workspaces",
        format!(
            "A generated repository of {files} files. The goal's one full checkout of its base (its first task): {}.\n\n| | omk (copy-on-write) | plain `git worktree` | ratio |\n|---|---|---|---|\n| a task's workspace started | {} | {} | {:.3}× |\n| its disk before the agent writes | {} KiB | {} KiB | {:.4}× |\n| {tasks} tasks started, one file changed, committed, removed (serially) | {} | {} | {:.2}× |",
            ms(first),
            ms(overlay_start),
            ms(plain_start),
            overlay_start.as_secs_f64() / plain_start.as_secs_f64().max(1e-9),
            overlay_disk,
            plain_disk,
            overlay_disk as f64 / (plain_disk as f64).max(1.0),
            ms(overlay_tasks),
            ms(plain_tasks),
            overlay_tasks.as_secs_f64() / plain_tasks.as_secs_f64().max(1e-9),
        ),
    );
}

/// A real repository of at least `files` files: the sources of this
/// workspace's dependencies as cargo unpacked them, whole crates in name
/// order.
fn real_repo(dir: &Path, files: usize) -> Option<usize> {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    let src = std::fs::read_dir(home.join("registry/src"))
        .ok()?
        .flatten()
        .next()?
        .path();
    let mut crates: Vec<_> = std::fs::read_dir(&src)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    crates.sort();
    std::fs::create_dir_all(dir).ok()?;
    let mut copied = 0;
    for c in crates {
        if copied >= files {
            break;
        }
        let to = dir.join(c.file_name()?);
        let ok = Command::new("cp")
            .arg("-r")
            .arg(&c)
            .arg(&to)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        copied += Command::new("find")
            .arg(&to)
            .args(["-type", "f"])
            .output()
            .map(|o| o.stdout.iter().filter(|&&b| b == b'\n').count())
            .unwrap_or(0);
    }
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A", "-f"]);
    git(dir, &["commit", "-qm", "base"]);
    Some(copied)
}

/// A whole run of `tasks` scripted tasks, `agents` at a time, on a real
/// repository of a few thousand files (`omk goal run --until-ready`: gates,
/// workspaces, checks, commits, merges), against plain git doing each
/// task's worktree, commit, merge and removal serially.
pub fn whole_run(tmp: &Path, tasks: usize, agents: usize, figs: &mut Figures) -> Option<f64> {
    let Some(omk) = omk_binary() else {
        figs.table("bench.whole-run", crate::process::NO_BINARY.into());
        return None;
    };
    let repo = tmp.join("real-repo");
    let Some(files) = real_repo(&repo, 7_000) else {
        figs.table(
            "bench.whole-run",
            "(not measured: no cargo registry sources to copy)".into(),
        );
        return None;
    };
    let size = disk_kib(&[&repo]).saturating_sub(disk_kib(&[&repo.join(".git")]));
    let plan: Vec<serde_json::Value> = (0..tasks)
        .map(|t| {
            serde_json::json!({"id": format!("t{t}"), "write_set": [format!("notes/t{t}.md")],
            "acceptance": [format!("run: test -s notes/t{t}.md")], "budget_secs": 120})
        })
        .collect();
    let steps: serde_json::Map<String, serde_json::Value> = (0..tasks)
        .map(|t| {
            (
                format!("t{t}"),
                serde_json::json!([{"steps": [{"write": format!("notes/t{t}.md"), "content": "done\n"}]}]),
            )
        })
        .collect();
    let script = tmp.join("whole-run.json");
    std::fs::write(
        &script,
        serde_json::json!({"plan": plan, "tasks": steps}).to_string(),
    )
    .ok()?;
    let mut c = Command::new(&omk);
    c.args([
        "goal",
        "run",
        "twelve tasks",
        "--agent",
        "scripted",
        "--script",
    ])
    .arg(&script)
    .args(["--max-agents", &agents.to_string(), "--until-ready"])
    .current_dir(&repo)
    .env("XDG_STATE_HOME", tmp.join("whole-run-state"))
    .env("XDG_CACHE_HOME", tmp.join("cache"));
    let (omk_took, rss, ok) = measure(&mut c);

    let plain = tmp.join("whole-run-plain");
    std::fs::create_dir_all(&plain).ok()?;
    let start = Instant::now();
    let integ = plain.join("integration");
    worktree_add(&repo, "plain/integration", &integ, "main");
    for t in 0..tasks {
        plain_task(
            &repo,
            &plain,
            "main",
            &format!("notes/t{t}.md"),
            t,
            Some(&integ),
        );
    }
    let plain_took = start.elapsed();
    let floor = plain_took.as_secs_f64() / agents as f64 * 1.1;
    let ratio = omk_took.as_secs_f64() / floor;
    figs.table(
        "bench.whole-run",
        format!(
            "A real repository: the sources of this workspace's dependencies as cargo unpacked them, {files} files ({:.0} MiB).\n\n| | wall time | peak RSS |\n|---|---|---|\n| `omk goal run --until-ready`, {tasks} scripted tasks, {agents} at a time (gates, workspaces, checks, commits, merges){} | {} | {:.0} MiB |\n| plain git, the same tasks serially (worktree add, commit, merge, worktree remove) | {} | |\n| omk against plain git ÷ {agents} agents + 10 % | {ratio:.2}× | |",
            size as f64 / 1024.0,
            if ok { "" } else { " (FAILED)" },
            ms(omk_took),
            rss as f64 / 1024.0,
            ms(plain_took),
        ),
    );
    Some(ratio)
}

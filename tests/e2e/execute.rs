//! Execution end to end: real git repositories, real agent processes, the
//! std gates judging proposals, actions and outcomes.

use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Omk, of_kind, refusals};

/// An exec agent: plans `proposals`, and for each task runs the shell
/// snippet under its id in `tasks` (in the task's worktree).
fn agent(omk: &Omk, proposals: &[Value], tasks: &[(&str, &str)]) -> String {
    let mut plan = String::new();
    for p in proposals {
        plan.push_str(&format!("    echo 'OMK_TASK_PROPOSAL: {}'\n", p));
    }
    let mut cases = String::new();
    for (id, body) in tasks {
        cases.push_str(&format!("      {id}) {body} ;;\n"));
    }
    omk.agent(&format!(
        "TRACE={trace}\ncase \"$OMK_PHASE\" in\n  plan)\n{plan}    ;;\n  execute)\n    case \"$OMK_TASK_ID\" in\n{cases}      *) echo \"no such task\"; exit 9 ;;\n    esac ;;\nesac\n",
        trace = omk.trace_file().display()
    ))
}

fn task(id: &str, write: &[&str], acceptance: &[&str], budget: u64) -> Value {
    json!({"id": id, "title": format!("Task {id}"), "write_set": write, "acceptance": acceptance, "budget_secs": budget})
}

fn run_goal(omk: &Omk, command: &str, extra: &[&str]) -> (crate::support::Run, String) {
    run_goal_env(omk, command, extra, &[])
}

/// [`run_goal`] with `env` set for omk.
fn run_goal_env(
    omk: &Omk,
    command: &str,
    extra: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> (crate::support::Run, String) {
    let mut args = vec![
        "goal",
        "run",
        "exec goal",
        "--agent",
        "exec",
        "--command",
        command,
        "--until-ready",
    ];
    args.extend_from_slice(extra);
    let run = omk.run_env(&args, env);
    let id = omk.latest_goal();
    (run, id)
}

fn task_json(omk: &Omk, id: &str, task: &str) -> Value {
    let show = omk.run(&["goal", "show", id, "--json"]).json();
    show["graph"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == task)
        .cloned()
        .unwrap()
}

fn trace(omk: &Omk) -> Vec<String> {
    std::fs::read_to_string(omk.trace_file())
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_demo_shows_rejections_a_live_refusal_a_retry_and_merges() {
    let omk = Omk::new();
    let run = omk.run(&[
        "demo",
        "--dir",
        omk.project().join("demo").to_str().unwrap(),
    ]);
    run.code(0);
    let out = &run.stdout;
    for expected in [
        "rejected  set-prod-secrets by `path` [path.outside-roots]",
        "rejected  rewrite-in-rust by `budget` [budget.time-exceeded]",
        "would exceed goal time budget",
        "rejected  make-it-nicer by `acceptance` [acceptance.missing]",
        "refused   add-subtract live, writing `src/add.sh`",
        "outside the task's write set",
        "retried   add-divide",
        "the integration branch passes `sh tests/run.sh`",
        "is ready",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let merged = out
        .lines()
        .find(|l| l.trim_start().starts_with("merged"))
        .unwrap();
    for t in [
        "add-multiply",
        "add-subtract",
        "add-divide",
        "write-usage-docs",
    ] {
        assert!(merged.contains(t), "{merged}");
    }
    let id = omk.latest_goal();
    omk.run(&["goal", "verify-log", &id]).code(0);
}

#[test]
fn parallel_tasks_run_in_separate_worktrees_and_respect_dependencies() {
    let omk = Omk::new();
    omk.git_project(&[]);
    let mut c = task("c", &["c.txt"], &["run: test -f c.txt"], 30);
    c["dependencies"] = json!(["a"]);
    let record = |name: &str| {
        format!(
            "echo \"start {name} $(date +%s%N) $PWD\" >> $TRACE; sleep 0.6; echo {name} > {name}.txt; echo \"end {name} $(date +%s%N)\" >> $TRACE"
        )
    };
    let (ra, rb, rc) = (record("a"), record("b"), record("c"));
    let cmd = agent(
        &omk,
        &[
            task("a", &["a.txt"], &["run: test -f a.txt"], 30),
            task("b", &["b.txt"], &["run: test -f b.txt"], 30),
            c,
        ],
        &[("a", &ra), ("b", &rb), ("c", &rc)],
    );
    let (run, id) = run_goal(&omk, &cmd, &["--max-agents", "2"]);
    run.code(0);
    let lines = trace(&omk);
    let field = |kind: &str, name: &str, i: usize| -> String {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{kind} {name} ")))
            .unwrap_or_else(|| panic!("no {kind} {name} in {lines:?}"))
            .split(' ')
            .nth(i)
            .unwrap()
            .to_owned()
    };
    let t = |kind: &str, name: &str| field(kind, name, 2).parse::<u128>().unwrap();
    // a and b overlapped; c started after a ended.
    assert!(
        t("start", "b") < t("end", "a") && t("start", "a") < t("end", "b"),
        "{lines:?}"
    );
    assert!(t("start", "c") > t("end", "a"), "{lines:?}");
    let dirs: std::collections::HashSet<String> = ["a", "b", "c"]
        .iter()
        .map(|n| field("start", n, 3))
        .collect();
    assert_eq!(dirs.len(), 3, "each task had its own worktree: {dirs:?}");
    assert!(dirs.iter().all(|d| d.contains("/worktrees/")), "{dirs:?}");
    // The work is on the task branches and merged; the checkout is untouched.
    let integration = format!("omk/{id}/integration");
    let files = omk.git(&["ls-tree", "--name-only", &integration]);
    for f in ["a.txt", "b.txt", "c.txt", "README.md"] {
        assert!(files.lines().any(|l| l == f), "{f} not merged: {files}");
    }
    assert!(!omk.project().join("a.txt").exists());
    // (The test's own `.omk/gates.toml`, granting the trace folder, aside.)
    assert_eq!(
        omk.git(&["status", "--porcelain", "--", ".", ":(exclude).omk"]),
        ""
    );
    assert_eq!(task_json(&omk, &id, "a")["status"], "done");
    omk.run(&["goal", "verify-log", &id]).code(0);
}

#[test]
fn the_deadline_kills_a_sleeping_agents_whole_process_group() {
    let omk = Omk::new();
    omk.git_project(&[]);
    let marker = omk.trace_file().with_file_name("survivor");
    let body = format!("(sleep 3; touch {}) & sleep 30", marker.display());
    let cmd = agent(
        &omk,
        &[task("slow", &["x.txt"], &["run: true"], 1)],
        &[("slow", &body)],
    );
    let start = Instant::now();
    let (run, id) = run_goal(&omk, &cmd, &[]);
    run.code(1);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    let t = task_json(&omk, &id, "slow");
    assert_eq!(t["status"], "failed");
    assert!(t["failure"].as_str().unwrap().contains("timed out"), "{t}");
    let failed = of_kind(&omk.events(&id), "task_failed")
        .iter()
        .map(|e| e["payload"]["code"].clone())
        .collect::<Vec<_>>();
    assert_eq!(
        failed,
        [json!("omk.timeout"), json!("omk.timeout")],
        "retried once, then failed"
    );
    std::thread::sleep(Duration::from_millis(3500));
    assert!(
        !marker.exists(),
        "a child of the agent outlived the deadline"
    );
}

#[test]
fn an_agents_writes_through_dots_home_or_absolute_paths_are_refused_live() {
    let omk = Omk::new();
    omk.git_project(&[]);
    let targets = [
        "../outside.txt",
        "src/../../up.txt",
        "~/home.txt",
        "~root/x.txt",
        "/tmp/omk-absolute-write.txt",
    ];
    let mut steps: Vec<Value> = targets
        .iter()
        .map(|t| json!({"write": t, "content": "escaped"}))
        .collect();
    steps.push(json!({"write": "src/a.txt", "content": "a"}));
    let script = json!({
        "plan": [task("t", &["src"], &["run: test -f src/a.txt"], 30)],
        "tasks": {"t": [{"steps": steps}]}
    });
    let run = omk.run_script(&script);
    run.code(0);
    let id = omk.latest_goal();
    let events = omk.events(&id);
    let refused = refusals(&events);
    assert_eq!(refused.len(), targets.len(), "{refused:?}");
    for (target, code) in &refused {
        assert!(
            [
                "omk.outside-worktree",
                "path.parent-dir",
                "path.home",
                "path.absolute"
            ]
            .contains(&code.as_str()),
            "{target}: {code}"
        );
    }
    // Nothing reached the disk outside the worktree.
    let home = omk.root();
    for escaped in [
        omk.project().parent().unwrap().join("outside.txt"),
        omk.goal_dir(&id).join("worktrees/up.txt"),
        home.join("home.txt"),
        std::path::PathBuf::from("/tmp/omk-absolute-write.txt"),
    ] {
        assert!(!escaped.exists(), "{} was written", escaped.display());
    }
    assert_eq!(task_json(&omk, &id, "t")["status"], "done");
}

#[test]
fn writes_outside_the_write_set_are_refused_live_and_rejected_at_outcome() {
    // Scripted: asks first, and is refused.
    let omk = Omk::new();
    omk.git_project(&[("README.md", "original\n")]);
    let script = json!({
        "plan": [task("t", &["src/a.txt"], &["run: test -f src/a.txt"], 30)],
        "tasks": {"t": [{"steps": [{"write": "src/a.txt", "content": "a"}, {"write": "README.md", "content": "changed"}]}]}
    });
    let run = omk.run_script(&script);
    run.code(0);
    assert!(
        run.stdout.contains("REFUSED  t: `README.md`"),
        "{}",
        run.stdout
    );
    let id = omk.latest_goal();
    let events = omk.events(&id);
    let refused: Vec<&Value> = of_kind(&events, "agent_action")
        .into_iter()
        .filter(|e| e["payload"]["allowed"] == false)
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["payload"]["code"], "path.outside-write-set");
    let branch = format!("omk/{id}/t");
    assert_eq!(
        omk.git(&["show", &format!("{branch}:README.md")]),
        "original\n"
    );
    // Looked for in the worktree when the agent stopped, before cleanup.
    let checked = crate::support::refused_changes_checked(&events);
    assert_eq!(
        checked,
        json!({"task_id": "t", "unchanged": ["README.md"], "changed": []})
    );

    // Exec: cannot be asked, so the outcome gate rejects the change.
    let omk = Omk::new();
    omk.git_project(&[("README.md", "original\n")]);
    let cmd = agent(
        &omk,
        &[task("t", &["src/a.txt"], &["run: true"], 30)],
        &[(
            "t",
            "mkdir -p src; echo a > src/a.txt; echo changed > README.md",
        )],
    );
    let (run, id) = run_goal(&omk, &cmd, &[]);
    run.code(1);
    let t = task_json(&omk, &id, "t");
    assert_eq!(t["status"], "failed");
    assert!(
        t["failure"]
            .as_str()
            .unwrap()
            .contains("outside the task's write set"),
        "{t}"
    );
    let codes: Vec<Value> = of_kind(&omk.events(&id), "task_failed")
        .iter()
        .map(|e| e["payload"]["code"].clone())
        .collect();
    assert_eq!(
        codes,
        [
            json!("path.outside-write-set"),
            json!("path.outside-write-set")
        ]
    );
    assert!(
        omk.git(&["branch", "--list", &format!("omk/{id}/integration")])
            .is_empty(),
        "nothing was merged"
    );
}

#[test]
fn a_failing_check_fails_the_task_and_a_retry_can_succeed() {
    let omk = Omk::new();
    omk.git_project(&[]);
    let cmd = agent(
        &omk,
        &[
            task("never", &["n.txt"], &["run: test -s n.txt"], 30),
            task("second-time", &["s.txt"], &["run: grep -q good s.txt"], 30),
        ],
        &[
            ("never", "touch n.txt"),
            (
                "second-time",
                "if [ \"$OMK_TASK_ATTEMPT\" = 1 ]; then echo bad > s.txt; else echo good > s.txt; fi",
            ),
        ],
    );
    let (run, id) = run_goal(&omk, &cmd, &[]);
    run.code(1);
    assert_eq!(task_json(&omk, &id, "never")["status"], "failed");
    let never = task_json(&omk, &id, "never");
    assert!(
        never["failure"]
            .as_str()
            .unwrap()
            .contains("check `run: test -s n.txt` failed"),
        "{never}"
    );
    let second = task_json(&omk, &id, "second-time");
    assert_eq!(
        (second["status"].as_str(), second["retry_count"].as_u64()),
        (Some("done"), Some(1))
    );
    let status = omk.run(&["goal", "status", &id, "--json"]).json();
    assert_eq!(status["status"], "not_ready");
}

#[test]
fn a_merge_conflict_fails_the_task_and_keeps_both_branches() {
    let omk = Omk::new();
    omk.git_project(&[("shared.txt", "base\n")]);
    let mut second = task("second", &["shared.txt"], &["run: true"], 30);
    second["dependencies"] = json!(["first"]);
    let cmd = agent(
        &omk,
        &[task("first", &["shared.txt"], &["run: true"], 30), second],
        &[
            ("first", "echo first > shared.txt"),
            ("second", "echo second > shared.txt"),
        ],
    );
    let (run, id) = run_goal(&omk, &cmd, &[]);
    run.code(1);
    let t = task_json(&omk, &id, "second");
    assert_eq!(t["status"], "failed");
    assert!(
        t["failure"]
            .as_str()
            .unwrap()
            .contains("conflicts with the integration branch in shared.txt"),
        "{t}"
    );
    assert_eq!(t["evidence"][0]["kind"], "merge-conflict");
    assert_eq!(
        omk.git(&["show", &format!("omk/{id}/integration:shared.txt")]),
        "first\n"
    );
    assert_eq!(
        omk.git(&["show", &format!("omk/{id}/second:shared.txt")]),
        "second\n"
    );
    let codes: Vec<Value> = of_kind(&omk.events(&id), "task_failed")
        .iter()
        .map(|e| e["payload"]["code"].clone())
        .collect();
    assert_eq!(
        codes,
        [json!("omk.merge-conflict")],
        "a conflict is not retried"
    );
}

#[test]
fn follow_up_proposals_become_a_gated_wave() {
    let omk = Omk::new();
    omk.git_project(&[]);
    let next = json!({"id": "next", "write_set": ["next.txt"], "acceptance": ["run: test -f next.txt"], "budget_secs": 30});
    let bad = json!({"id": "escape", "write_set": ["/etc/passwd"], "acceptance": ["x"], "budget_secs": 30});
    let first = format!(
        "echo 1 > one.txt; echo 'OMK_TASK_PROPOSAL: {next}'; echo 'OMK_TASK_PROPOSAL: {bad}'"
    );
    let cmd = agent(
        &omk,
        &[task("first", &["one.txt"], &["run: true"], 30)],
        &[("first", &first), ("next", "echo 2 > next.txt")],
    );
    let (run, id) = run_goal(&omk, &cmd, &[]);
    run.code(0);
    assert!(
        run.stdout.contains("wave `follow-up/first/1`"),
        "{}",
        run.stdout
    );
    let events = omk.events(&id);
    let waves: Vec<&Value> = of_kind(&events, "wave_completed");
    let follow = waves
        .iter()
        .find(|w| w["payload"]["run_key"] == "follow-up/first/1")
        .unwrap();
    assert_eq!(follow["payload"]["evidence"]["kind"], "follow_up");
    assert_eq!(follow["payload"]["evidence"]["accepted"], json!(["next"]));
    assert_eq!(
        follow["payload"]["evidence"]["rejected"][0]["code"],
        "path.absolute"
    );
    assert_eq!(task_json(&omk, &id, "next")["status"], "done");
}

#[test]
fn a_killed_run_resumes_and_the_task_completes_once() {
    let omk = Omk::new();
    omk.git_project(&[]);
    let body = "echo \"start $OMK_TASK_ATTEMPT\" >> $TRACE; sleep 3; echo done > w.txt; echo \"end $OMK_TASK_ATTEMPT\" >> $TRACE";
    let cmd = agent(
        &omk,
        &[task("work", &["w.txt"], &["run: test -f w.txt"], 60)],
        &[("work", body)],
    );
    let id = omk.new_goal("resume me", &["--agent", "exec", "--command", &cmd]);
    let spawn = || {
        omk.spawn(
            &["goal", "execute", &id],
            &[("OMK_GOAL_AGENT_LEASE_SECS", "1")],
        )
    };
    let mut first = spawn();
    wait_for_first_task(&omk, &mut first);
    assert_eq!(trace(&omk), ["start 1"]);
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert_eq!(task_json(&omk, &id, "work")["status"], "running");

    let second = spawn().wait_with_output().unwrap();
    assert!(second.status.success(), "{second:?}");
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(
        trace(&omk),
        ["start 1", "start 2", "end 2"],
        "the first run's agent was stopped, the task ran to the end once"
    );
    let events = omk.events(&id);
    assert_eq!(of_kind(&events, "task_reclaimed").len(), 1);
    assert_eq!(of_kind(&events, "task_completed").len(), 1);
    assert_eq!(task_json(&omk, &id, "work")["status"], "done");
    assert_eq!(
        omk.run(&["goal", "status", &id, "--json"]).json()["status"],
        "ready"
    );
    omk.run(&["goal", "verify-log", &id]).code(0);
}

#[test]
fn a_refusal_worked_around_is_seen_before_cleanup_and_named_in_the_proof() {
    let omk = Omk::new();
    omk.git_project(&[("README.md", "original\n")]);
    // Refused as a write, then done anyway by a command the gates allow
    // (a redirection would be judged as the write it is: not this).
    let script = json!({
        "plan": [task("t", &["src/a.txt"], &["run: test -f src/a.txt"], 30)],
        "tasks": {"t": [{"steps": [
            {"write": "src/a.txt", "content": "a"},
            {"write": "README.md", "content": "changed"},
            {"run": "python3 -c \"open('README.md', 'w').write('changed')\""}]}]}
    });
    omk.run_script(&script);
    let id = omk.latest_goal();
    let events = omk.events(&id);
    let checked = crate::support::refused_changes_checked(&events);
    assert_eq!(checked["changed"], json!(["README.md"]));
    assert_eq!(task_json(&omk, &id, "t")["status"], "failed");
    let proof = omk.run(&["goal", "proof", &id, "--json"]).json();
    let gaps = proof["known_gaps"].to_string();
    assert!(gaps.contains("worked around"), "{gaps}");
    // The outcome gate rejected it: nothing merged, the checkout as it was.
    assert_eq!(of_kind(&events, "task_merged").len(), 0);
    assert_eq!(
        std::fs::read_to_string(omk.project().join("README.md")).unwrap(),
        "original\n"
    );
}

/// Waits until the spawned execution's first task has started (its
/// trace); an execution that ended first, or two minutes without a
/// start (a loaded 2-core CI machine once needed more than 30 s), fails
/// with what it printed.
fn wait_for_first_task(omk: &Omk, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while trace(omk).is_empty() {
        let ended = child.try_wait().unwrap();
        if ended.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let mut out = String::new();
            for pipe in [
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read>),
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read>),
            ]
            .into_iter()
            .flatten()
            {
                let mut pipe = pipe;
                let _ = pipe.read_to_string(&mut out);
            }
            panic!("the first task never started ({ended:?}):\n{out}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pause_and_cancel_reach_a_running_goal_between_tasks() {
    let omk = Omk::new();
    omk.git_project(&[]);
    let mut later = task("later", &["l.txt"], &["run: true"], 30);
    later["dependencies"] = json!(["slow"]);
    let cmd = agent(
        &omk,
        &[task("slow", &["s.txt"], &["run: true"], 30), later],
        &[
            ("slow", "echo started >> $TRACE; sleep 1.5; echo s > s.txt"),
            ("later", "echo l > l.txt"),
        ],
    );
    let id = omk.new_goal("pausable", &["--agent", "exec", "--command", &cmd]);
    let mut child = omk.spawn(&["goal", "execute", &id], &[]);
    wait_for_first_task(&omk, &mut child);
    let pause = omk.run(&["goal", "pause", &id]);
    pause.code(0);
    assert!(pause.stdout.contains("pause requested"), "{}", pause.stdout);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(task_json(&omk, &id, "slow")["status"], "done");
    assert_eq!(task_json(&omk, &id, "later")["status"], "pending");
    assert_eq!(
        omk.run(&["goal", "status", &id, "--json"]).json()["status"],
        "paused"
    );

    omk.run(&["goal", "resume", &id]).code(0);
    omk.run(&["goal", "execute", &id]).code(0);
    assert_eq!(task_json(&omk, &id, "later")["status"], "done");

    // Cancelled while its first task runs: that task ends, nothing else
    // starts, and the goal is cancelled for good.
    std::fs::write(omk.trace_file(), "").unwrap();
    let id = omk.new_goal("cancellable", &["--agent", "exec", "--command", &cmd]);
    let mut child = omk.spawn(&["goal", "execute", &id], &[]);
    wait_for_first_task(&omk, &mut child);
    let cancel = omk.run(&["goal", "cancel", &id]);
    cancel.code(0);
    assert!(
        cancel.stdout.contains("cancel requested"),
        "{}",
        cancel.stdout
    );
    // A cancelled goal did not reach its end: exit 1, as a goal not ready.
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("is cancelled"),
        "{out:?}"
    );
    assert_eq!(task_json(&omk, &id, "slow")["status"], "done");
    assert_eq!(task_json(&omk, &id, "later")["status"], "cancelled");
    assert_eq!(trace(&omk), ["started"], "nothing started after the cancel");
    assert_eq!(
        omk.run(&["goal", "status", &id, "--json"]).json()["status"],
        "cancelled"
    );
    omk.run(&["goal", "execute", &id]).code(1);
    assert_eq!(task_json(&omk, &id, "later")["status"], "cancelled");
    omk.run(&["goal", "verify-log", &id]).code(0);
}

#[test]
fn a_spent_budget_stops_the_goal_cleanly() {
    let omk = Omk::new();
    omk.git_project(&[]);
    let mut second = task("second", &["b.txt"], &["run: true"], 5);
    second["dependencies"] = json!(["first"]);
    let cmd = agent(
        &omk,
        &[task("first", &["a.txt"], &["run: true"], 5), second],
        &[
            (
                "first",
                "echo a > a.txt; echo 'OMK_USAGE: {\"tokens\": 600}'",
            ),
            ("second", "echo b > b.txt"),
        ],
    );
    let (run, id) = run_goal(&omk, &cmd, &["--budget-tokens", "500"]);
    run.code(1);
    let s = omk.run(&["goal", "status", &id, "--json"]).json();
    assert_eq!(s["status"], "needs_more_budget");
    assert_eq!(s["spent"]["tokens"], 600);
    assert_eq!(task_json(&omk, &id, "second")["status"], "pending");
    omk.run(&["goal", "budget-add", &id, "--tokens", "1000"])
        .code(0);
    assert!(run.stdout.contains("start    first"), "{}", run.stdout);
    // `--quiet`: no line per event, only the result.
    let quiet = omk.run(&["goal", "execute", &id, "--quiet"]);
    quiet.code(0);
    assert!(!quiet.stdout.contains("start "), "{}", quiet.stdout);
    assert!(quiet.stdout.contains(&id), "{}", quiet.stdout);
    assert_eq!(task_json(&omk, &id, "second")["status"], "done");
}

#[test]
fn execution_needs_a_git_repository_and_a_known_agent() {
    let omk = Omk::new();
    let run = omk.run(&["goal", "run", "g", "--agent", "exec", "--command", "true"]);
    run.code(2);
    assert!(run.stderr.contains("git"), "{}", run.stderr);
    omk.git_project(&[]);
    let run = omk.run(&["goal", "run", "g", "--agent", "nope"]);
    run.code(2);
    assert!(
        run.stderr.contains("no agent called `nope`"),
        "{}",
        run.stderr
    );
    omk.run(&["goal", "run", "g", "--agent", "scripted"])
        .code(2);
    omk.write("bad.json", "{\"plan\": 3}");
    omk.run(&[
        "goal", "run", "g", "--agent", "scripted", "--script", "bad.json",
    ])
    .code(2);
    let id = omk.new_goal("no agent", &[]);
    let run = omk.run(&["goal", "execute", &id]);
    run.code(2);
    assert!(run.stderr.contains("has no agent"), "{}", run.stderr);
}

/// Whether this kernel lets an unprivileged process mount an overlay in a
/// user namespace (CI's does).
fn overlays_here() -> bool {
    std::process::Command::new("unshare")
        .args(["-Urm", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// On a repository of 10,000 files, a task's workspace is an overlay: when
/// its agent starts, the upper layer holds only the task's `.git` file,
/// its index is the base's (hard-linked: nothing was checked out or
/// indexed per file) and git sees a clean tree; what it changed is
/// committed, exactly, and its layers are gone once it is done.
#[test]
fn a_task_workspace_costs_what_it_changes() {
    if !overlays_here() {
        crate::support::skip("no user namespaces here (`unshare -Urm true` fails)");
        return;
    }
    let omk = Omk::new();
    let files: Vec<(String, String)> = (0..10_000)
        .map(|i| (format!("pkg{}/f{i}.txt", i / 100), format!("{i}\n")))
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    omk.git_project(&files);
    // Unconfined, so that the agent may look at its own layers.
    omk.write(".omk/gates.toml", "[sandbox]\nmode = \"off\"\n");
    let look = r#"up="../.layers/$(basename "$PWD")/upper"; links=$(stat -c %h "$(git rev-parse --git-dir)/index"); [ "$links" -gt 1 ] && index=shared || index=own; echo "$OMK_TASK_ID index=$index upper=$(find "$up" -mindepth 1 | wc -l) status=$(git status --porcelain | wc -l)" >> "$TRACE""#;
    let cmd = agent(
        &omk,
        &[
            task("a", &["pkg0/f1.txt"], &["run: test -s pkg0/f1.txt"], 120),
            task(
                "b",
                &["pkg99/new.txt"],
                &["run: test -s pkg99/new.txt"],
                120,
            ),
        ],
        &[
            ("a", &format!("{look}; echo changed > pkg0/f1.txt")),
            ("b", &format!("{look}; echo new > pkg99/new.txt")),
        ],
    );
    let (run, id) = run_goal(&omk, &cmd, &[]);
    run.code(0);
    let mut seen = trace(&omk);
    seen.sort();
    assert_eq!(
        seen,
        [
            "a index=shared upper=1 status=0",
            "b index=shared upper=1 status=0"
        ],
        "what each agent saw of its workspace when it started"
    );
    let events = omk.events(&id);
    let started = of_kind(&events, "task_started");
    assert_eq!(started.len(), 2);
    assert!(
        started
            .iter()
            .all(|e| e["payload"]["workspace"] == "overlay"),
        "{started:?}"
    );
    let proof = omk.proof(&id);
    let changed: Vec<Value> = proof["task_work"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["changed_files"].clone())
        .collect();
    assert_eq!(changed, [json!(["pkg0/f1.txt"]), json!(["pkg99/new.txt"])]);
    let worktrees = omk.goal_dir(&id).join("worktrees");
    for gone in [".layers", ".base"] {
        assert!(
            !worktrees.join(gone).exists(),
            "`{gone}` is removed once the goal is done"
        );
    }
}

/// With overlays turned off, tasks get full git worktrees, and say so.
#[test]
fn with_overlays_off_tasks_get_worktrees() {
    let omk = Omk::new();
    omk.git_project(&[("README.md", "x\n")]);
    let cmd = agent(
        &omk,
        &[task("a", &["a.txt"], &["run: test -s a.txt"], 120)],
        &[("a", "echo a > a.txt")],
    );
    let (run, id) = run_goal_env(&omk, &cmd, &[], &[("OMK_WORKSPACES", "worktree".as_ref())]);
    run.code(0);

    let events = omk.events(&id);
    let started = of_kind(&events, "task_started");
    assert_eq!(started[0]["payload"]["workspace"], "worktree");
    assert!(!omk.goal_dir(&id).join("worktrees/.base").exists());
}

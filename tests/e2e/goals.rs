//! Goals and waves through the CLI: the seed's scenarios, budgets, host
//! checks, idempotency, the event log's chain, crashes and concurrency.

use serde_json::{Value, json};

use crate::support::{Omk, proposal};

fn kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

#[test]
fn seed_over_budget_task_is_rejected_with_the_time_budget_reason() {
    let omk = Omk::new();
    let id = omk.new_goal("test goal", &["--budget-time", "10s"]);
    let plan = omk.plan("run-1", json!([proposal("task-a", 120, &["README.md"])]));
    let run = omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"]);
    run.code(1);
    let ev = run.json();
    assert_eq!(
        (
            ev["accepted_task_count"].as_u64(),
            ev["rejected_task_count"].as_u64()
        ),
        (Some(0), Some(1))
    );
    assert!(
        ev["worker_summary"]
            .as_str()
            .unwrap()
            .contains("rejected all proposed agent tasks")
    );

    let events = omk.events(&id);
    assert_eq!(
        kind(&events, "task_proposed")[0]["payload"]["task_id"],
        "task-a"
    );
    let rejected = kind(&events, "task_rejected");
    assert_eq!(rejected[0]["payload"]["task_id"], "task-a");
    let reason = rejected[0]["payload"]["reason"].as_str().unwrap();
    assert!(reason.contains("would exceed goal time budget"), "{reason}");
    assert_eq!(rejected[0]["payload"]["gate"], "budget");
    assert_eq!(rejected[0]["payload"]["code"], "budget.time-exceeded");
}

#[test]
fn seed_absolute_write_path_is_outside_the_policy_roots() {
    let omk = Omk::new();
    let id = omk.new_goal("test goal", &[]);
    let plan = omk.plan(
        "run-2",
        json!([proposal("task-b", 120, &["/absolute/path.md"])]),
    );
    let run = omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"]);
    run.code(1);
    assert_eq!(run.json()["accepted_task_count"], 0);
    let events = omk.events(&id);
    let reason = kind(&events, "task_rejected")[0]["payload"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("outside the allowed goal policy roots"),
        "{reason}"
    );
}

#[test]
fn seed_accepted_task_records_its_budget_snapshot() {
    let omk = Omk::new();
    let id = omk.new_goal("test goal", &["--budget-time", "1h"]);
    let plan = omk.plan("run-3", json!([proposal("task-c", 120, &["README.md"])]));
    let run = omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"]);
    run.code(0);
    let ev = run.json();
    assert_eq!(
        (
            ev["accepted_task_count"].as_u64(),
            ev["rejected_task_count"].as_u64()
        ),
        (Some(1), Some(0))
    );
    let events = omk.events(&id);
    let accepted = kind(&events, "task_accepted");
    assert_eq!(accepted[0]["payload"]["task_id"], "task-c");
    let snap = &accepted[0]["payload"]["budget_snapshot"];
    assert!(snap.is_object());
    assert_eq!(snap["task_budget_secs"], 120);
    assert_eq!(snap["goal_time_budget_secs"], 3600);
    assert_eq!(snap["remaining_secs"], 3480);
    // One gate decision per gate, with digest and verdict.
    let decisions = kind(&events, "gate_decision");
    let gates: Vec<&str> = decisions
        .iter()
        .map(|d| d["payload"]["gate"].as_str().unwrap())
        .collect();
    assert_eq!(gates, ["budget", "path", "command", "acceptance"]);
    assert!(
        decisions
            .iter()
            .all(|d| d["payload"]["sha256"].as_str().unwrap().len() == 64)
    );
    // The task is pending in the graph.
    let show = omk.run(&["goal", "show", &id, "--json"]);
    show.code(0);
    let task = &show.json()["graph"]["tasks"][0];
    assert_eq!(
        (task["id"].as_str(), task["status"].as_str()),
        (Some("task-c"), Some("pending"))
    );
}

#[test]
fn seed_rejected_task_counts_as_failed_not_completed() {
    let omk = Omk::new();
    let id = omk.new_goal("test goal", &["--budget-time", "10s"]);
    let plan = omk.plan("run-4", json!([proposal("task-d", 120, &["README.md"])]));
    let run = omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"]);
    run.code(1);
    let ev = run.json();
    assert_eq!(
        ev["summary"],
        json!({"completed": 0, "failed": 1, "total": 1})
    );
    assert_eq!(ev["accepted_task_count"], 0);
}

#[test]
fn budget_committed_earlier_in_the_wave_counts() {
    let omk = Omk::new();
    let id = omk.new_goal("two long tasks", &["--budget-time", "1h"]);
    let plan = omk.plan(
        "wave-1",
        json!([
            proposal("first", 2400, &["a.md"]),
            proposal("second", 2400, &["b.md"])
        ]),
    );
    let run = omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"]);
    run.code(1);
    let ev = run.json();
    assert_eq!(ev["accepted"], json!(["first"]));
    assert_eq!(ev["rejected"][0]["task_id"], "second");
    assert_eq!(ev["rejected"][0]["code"], "budget.time-exceeded");

    // The next wave sees the committed time too; budget-add makes room.
    let plan = omk.plan("wave-2", json!([proposal("third", 1800, &["c.md"])]));
    omk.run(&["goal", "propose", &id, "--plan", &plan]).code(1);
    omk.run(&["goal", "budget-add", &id, "--time", "30m"])
        .code(0);
    let plan = omk.plan("wave-3", json!([proposal("third", 1800, &["c.md"])]));
    omk.run(&["goal", "propose", &id, "--plan", &plan]).code(0);
    let status = omk.run(&["goal", "status", &id, "--json"]);
    status.code(0);
    let s = status.json();
    assert_eq!(s["committed_time_secs"], 4200);
    assert_eq!(s["remaining_time_secs"], 5400 - 4200);
    assert_eq!(s["tasks"]["pending"], 2);
}

#[test]
fn conflicts_dependencies_duplicates_and_existing_ids() {
    let omk = Omk::new();
    let id = omk.new_goal("many rules", &[]);
    let mut dep_ok = proposal("docs", 60, &["docs/a.md"]);
    dep_ok["dependencies"] = json!(["base"]);
    dep_ok["read_set"] = json!(["src/lib.rs"]);
    let mut dep_missing = proposal("orphan", 60, &["x.md"]);
    dep_missing["dependencies"] = json!(["ghost"]);
    let mut dep_rejected = proposal("after-clash", 60, &["y.md"]);
    dep_rejected["dependencies"] = json!(["clash"]);
    let mut selfish = proposal("selfish", 60, &["z.md"]);
    selfish["dependencies"] = json!(["selfish"]);
    let plan = omk.plan(
        "wave-1",
        json!([
            proposal("base", 60, &["src/lib.rs"]),
            proposal("clash", 60, &["src"]),
            dep_ok,
            dep_missing,
            dep_rejected,
            selfish,
            proposal("base", 60, &["other.md"]),
        ]),
    );
    let run = omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"]);
    run.code(1);
    let ev = run.json();
    assert_eq!(ev["accepted"], json!(["base", "docs"]));
    let codes: Vec<(String, String)> = ev["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["task_id"].as_str().unwrap().into(),
                r["code"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("clash", "path.conflict"),
        ("orphan", "omk.unmet-dependency"),
        ("after-clash", "omk.unmet-dependency"),
        ("selfish", "omk.self-dependency"),
        ("base", "omk.duplicate-id"),
    ];
    assert_eq!(codes, want.map(|(a, b)| (a.to_owned(), b.to_owned())));
    assert_eq!(
        ev["summary"],
        json!({"completed": 0, "failed": 5, "total": 7})
    );

    // A later wave may not reuse an id, unless the plan allows re-planning.
    let plan = omk.plan("wave-2", json!([proposal("base", 90, &["src/lib.rs"])]));
    let run = omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"]);
    run.code(1);
    assert_eq!(run.json()["rejected"][0]["code"], "omk.task-exists");
    let replan = json!({"run_key": "wave-3", "kind": "follow_up", "allow_existing_task_ids": true,
                        "proposals": [proposal("base", 90, &["src/lib.rs"])]});
    let path = omk.write("plans/wave-3.json", replan.to_string());
    let run = omk.run(&[
        "goal",
        "propose",
        &id,
        "--plan",
        path.to_str().unwrap(),
        "--json",
    ]);
    run.code(0);
    let show = omk.run(&["goal", "show", &id, "--json"]).json();
    let base = show["graph"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "base")
        .unwrap()
        .clone();
    assert_eq!(
        (base["budget_secs"].as_u64(), base["run_key"].as_str()),
        (Some(90), Some("wave-3"))
    );
}

#[test]
fn a_run_key_is_judged_once() {
    let omk = Omk::new();
    let id = omk.new_goal("idempotent", &[]);
    let plan = omk.plan(
        "once",
        json!([proposal("a", 60, &["a.md"]), proposal("b", 60, &["/b"])]),
    );
    let first = omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"]);
    first.code(1);
    let count = omk.events(&id).len();
    let again = omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"]);
    again.code(1);
    let (mut a, b) = (first.json(), again.json());
    assert_eq!(b["replayed"], true);
    a["replayed"] = json!(true);
    assert_eq!(a, b);
    assert_eq!(omk.events(&id).len(), count, "nothing was judged twice");

    // The same key for another plan is refused.
    let other = omk.plan("once", json!([proposal("c", 60, &["c.md"])]));
    let run = omk.run(&["goal", "propose", &id, "--plan", &other]);
    run.code(2);
    assert!(
        run.stderr.contains("already used for a different plan"),
        "{}",
        run.stderr
    );
}

#[test]
fn empty_and_malformed_plans_are_usage_errors() {
    let omk = Omk::new();
    let id = omk.new_goal("plans", &[]);
    let empty = omk.plan("empty", json!([]));
    let run = omk.run(&["goal", "propose", &id, "--plan", &empty]);
    run.code(2);
    assert!(run.stderr.contains("has no proposals"), "{}", run.stderr);
    let bad = omk.write(
        "plans/bad.json",
        r#"{"run_key":"x","kind":"initial","proposals":[],"extra":1}"#,
    );
    let run = omk.run(&["goal", "propose", &id, "--plan", bad.to_str().unwrap()]);
    run.code(2);
    assert!(run.stderr.contains("extra"), "{}", run.stderr);
    omk.run(&["goal", "propose", "goal-nope", "--plan", &empty])
        .code(2);
}

#[test]
fn the_log_verifies_and_a_changed_byte_is_named() {
    let omk = Omk::new();
    let id = omk.new_goal("tamper", &["--budget-time", "1h"]);
    let plan = omk.plan(
        "w",
        json!([proposal("a", 60, &["a.md"]), proposal("b", 60, &["b.md"])]),
    );
    omk.run(&["goal", "propose", &id, "--plan", &plan]).code(0);
    let ok = omk.run(&["goal", "verify-log", &id]);
    ok.code(0);
    assert!(ok.stdout.starts_with("OK"), "{}", ok.stdout);

    let path = omk.goal_dir(&id).join("events.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("\"task_accepted\""))
        .unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[line] = lines[line].replacen("\"task_budget_secs\":60", "\"task_budget_secs\":6", 1);
    assert_ne!(lines.join("\n") + "\n", text, "the test changed a byte");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let broken = omk.run(&["goal", "verify-log", &id, "--json"]);
    broken.code(1);
    let v = broken.json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_bad"]["line"], line + 1);
    let text = omk.run(&["goal", "verify-log", &id]);
    text.code(1);
    assert!(
        text.stdout.contains(&format!("events.jsonl:{}:", line + 1)),
        "{}",
        text.stdout
    );
}

#[test]
fn a_torn_last_line_and_a_half_written_temp_file_are_survived() {
    let omk = Omk::new();
    let id = omk.new_goal("crash", &[]);
    let dir = omk.goal_dir(&id);
    // A crash mid-append, and one mid-way through replacing goal.json.
    let torn_line = std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .count()
        + 1;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("events.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"id\":2,\"run_id\":\"run-x\",\"ts\":\"2026").unwrap();
    drop(f);
    std::fs::write(dir.join(".omk-tmpAbC123"), b"{\"schema\":1,\"id\":\"goal-").unwrap();

    omk.run(&["goal", "status", &id]).code(0);
    let list = omk.run(&["goal", "list", "--json"]);
    list.code(0);
    assert_eq!(list.json().as_array().unwrap().len(), 1);
    let events = omk.run(&["goal", "events", &id]);
    events.code(0);
    assert!(
        events.stderr.contains("could not be read"),
        "{}",
        events.stderr
    );
    omk.run(&["goal", "verify-log", &id]).code(0);

    let plan = omk.plan("after", json!([proposal("a", 60, &["a.md"])]));
    omk.run(&["goal", "propose", &id, "--plan", &plan]).code(0);
    let v = omk.run(&["goal", "verify-log", &id, "--json"]);
    v.code(0);
    let v = v.json();
    assert_eq!(v["torn"], json!([torn_line]));
    assert!(v["events"].as_u64().unwrap() > 4);
    // Nothing before the torn line was lost.
    assert_eq!(omk.events(&id)[0]["kind"], "goal_created");
}

#[test]
fn a_locked_goal_is_refused_naming_the_holder() {
    let omk = Omk::new();
    let id = omk.new_goal("locked", &[]);
    let lock_path = omk.goal_dir(&id).join("lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&lock_path)
        .unwrap();
    file.lock().unwrap();
    std::fs::write(&lock_path, "4242\n").unwrap();
    let plan = omk.plan("w", json!([proposal("a", 60, &["a.md"])]));
    // A lock held elsewhere is the machine's state, not bad input (exit 4).
    let run = omk.run(&["goal", "propose", &id, "--plan", &plan]);
    run.code(4);
    assert!(
        run.stderr
            .contains(&format!("goal `{id}` is locked by pid 4242")),
        "{}",
        run.stderr
    );
    // Readers are not blocked.
    omk.run(&["goal", "status", &id]).code(0);
    drop(file);
    omk.run(&["goal", "propose", &id, "--plan", &plan]).code(0);
}

#[test]
fn a_log_the_disk_refuses_is_a_system_failure_not_a_usage_error() {
    use std::os::unix::process::CommandExt;
    let omk = Omk::new();
    let id = omk.new_goal("full disk", &[]);
    let log = omk.goal_dir(&id).join("events.jsonl");
    let cap = std::fs::metadata(&log).unwrap().len();
    let plan = omk.plan("w", json!([proposal("a", 60, &["a.md"])]));
    // No file may grow past the log's size (as on a full disk): the first
    // append fails with EFBIG.
    let mut cmd = omk.command();
    cmd.args(["goal", "propose", &id, "--plan", &plan]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: cap,
                rlim_max: cap,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("events.jsonl"), "{stderr}");
    // With room again, the goal goes on from where it was.
    omk.run(&["goal", "verify-log", &id]).code(0);
    omk.run(&["goal", "propose", &id, "--plan", &plan]).code(0);
    omk.run(&["goal", "verify-log", &id]).code(0);
}

#[test]
fn two_processes_proposing_at_once_keep_the_chain_valid() {
    let omk = Omk::new();
    let id = omk.new_goal("race", &[]);
    let proposals: Vec<Value> = (0..200)
        .map(|i| proposal(&format!("t{i}"), 1, &[&format!("f{i}.md")]))
        .collect();
    let a = omk.plan("race-a", json!(proposals));
    let proposals: Vec<Value> = (0..200)
        .map(|i| proposal(&format!("u{i}"), 1, &[&format!("g{i}.md")]))
        .collect();
    let b = omk.plan("race-b", json!(proposals));
    let spawn = |plan: &str| omk.spawn(&["goal", "propose", &id, "--plan", plan], &[]);
    let (pa, pb) = (spawn(&a), spawn(&b));
    let (oa, ob) = (
        pa.wait_with_output().unwrap(),
        pb.wait_with_output().unwrap(),
    );
    for out in [&oa, &ob] {
        let code = out.status.code().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            code == 0 || (code == 4 && stderr.contains("is locked by")),
            "exit {code}: {stderr}"
        );
    }
    assert!(
        oa.status.success() || ob.status.success(),
        "one of them got the goal"
    );
    omk.run(&["goal", "verify-log", &id]).code(0);
}

#[test]
fn lifecycle_pause_resume_cancel_and_latest() {
    let omk = Omk::new();
    let id = omk.new_goal("lifecycle", &["--budget-time", "2h", "--budget-usd", "5"]);
    let list = omk.run(&["goal", "list"]);
    list.code(0);
    assert!(
        list.stdout.contains(&id) && list.stdout.contains("running"),
        "{}",
        list.stdout
    );

    omk.run(&["goal", "pause", "latest"]).code(0);
    let plan = omk.plan("w", json!([proposal("a", 60, &["a.md"])]));
    let paused = omk.run(&["goal", "propose", "latest", "--plan", &plan]);
    paused.code(2);
    assert!(
        paused.stderr.contains("is paused") && paused.stderr.contains("omk goal resume"),
        "{}",
        paused.stderr
    );
    omk.run(&["goal", "pause", &id]).code(2);
    omk.run(&["goal", "resume", &id]).code(0);
    omk.run(&["goal", "propose", &id, "--plan", &plan]).code(0);

    let added = omk.run(&["goal", "budget-add", &id, "--usd", "2.5", "--json"]);
    added.code(0);
    assert_eq!(added.json()["limits"]["usd_micros"], 7_500_000);
    let zero = omk.run(&["goal", "budget-add", &id, "--time", "0"]);
    zero.code(2);
    assert!(zero.stderr.contains("positive"), "{}", zero.stderr);
    omk.run(&["goal", "budget-add", &id, "--tokens", "100"])
        .code(2);
    omk.run(&["goal", "budget-add", &id]).code(2);

    omk.run(&["goal", "cancel", &id]).code(0);
    let status = omk.run(&["goal", "status", &id, "--json"]).json();
    assert_eq!(status["status"], "cancelled");
    omk.run(&["goal", "resume", &id]).code(2);
    let kinds: Vec<String> = omk
        .events(&id)
        .iter()
        .filter(|e| e["kind"] == "goal_status_changed")
        .map(|e| e["payload"]["to"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["paused", "running", "cancelled"]);
    let events = omk.run(&["goal", "events", &id, "--kind", "budget_added"]);
    events.code(0);
    assert_eq!(events.stdout.lines().count(), 1);
}

#[test]
fn budget_flags_explain_what_they_accept() {
    let omk = Omk::new();
    for bad in ["1.5h", "-5m", "10w", ""] {
        let run = omk.run(&["goal", "run", "x", "--budget-time", bad]);
        run.code(2);
        assert!(
            run.stderr.contains("`30s`, `15m`, `8h`, `7d`"),
            "{bad}: {}",
            run.stderr
        );
    }
    omk.run(&["goal", "run", "x", "--budget-usd", "abc"])
        .code(2);
    omk.run(&["goal", "run", "x", "--budget-tokens", "1e3"])
        .code(2);
    omk.run(&["goal", "run", "   "]).code(2);
    omk.run(&["goal", "run", "x", "--root", "../up"]).code(2);
    let id = omk.new_goal("x", &["--budget-time", "8H", "--root", "./src/"]);
    let show = omk.run(&["goal", "show", &id, "--json"]).json();
    assert_eq!(show["goal"]["limits"]["time_secs"], 28_800);
    assert_eq!(show["goal"]["policy_roots"], json!(["src"]));
    assert!(show["goal"]["id"].as_str().unwrap().starts_with("goal-"));
    let empty = Omk::new();
    let run = empty.run(&["goal", "status", "latest"]);
    run.code(2);
    assert!(run.stderr.contains("no goals yet"), "{}", run.stderr);
}

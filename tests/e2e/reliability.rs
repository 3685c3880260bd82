//! Reliability: bad input everywhere, concurrent writers, big waves, and
//! omk killed at random points, then resumed.
//!
//! `OMK_LONG_TESTS=1` multiplies the kill iterations.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Omk, components, of_kind, proposal};

/// How many times the long mode repeats the randomised tests.
fn scale() -> usize {
    if std::env::var_os("OMK_LONG_TESTS").is_some() {
        10
    } else {
        1
    }
}

/// A deterministic stream for kill points.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn every_bad_input_is_a_clear_error_with_exit_two() {
    let omk = Omk::new();
    let id = omk.new_goal("bad inputs", &[]);
    let big = "x".repeat(8 << 20);
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    // (what, file, contents, the command's args, text the error must hold)
    let plan_cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "malformed JSON",
            b"{\"run_key\": \"x\",\n  \"kind\": ".to_vec(),
            "plan.json`:2:",
        ),
        (
            "wrong type",
            br#"{"run_key": 7, "kind": "initial", "proposals": []}"#.to_vec(),
            "invalid type",
        ),
        (
            "unknown field",
            br#"{"run_key": "x", "kind": "initial", "proposals": [], "extra": 1}"#.to_vec(),
            "extra",
        ),
        (
            "unknown kind",
            br#"{"run_key": "x", "kind": "sideways", "proposals": []}"#.to_vec(),
            "sideways",
        ),
        (
            "proposal typo",
            br#"{"run_key": "x", "kind": "initial", "proposals": [{"id": "a", "writeset": []}]}"#
                .to_vec(),
            "writeset",
        ),
        (
            "huge file",
            format!("{{\"run_key\": \"{big}").into_bytes(),
            "plan.json`:1:",
        ),
        ("binary garbage", garbage.clone(), "plan.json"),
        ("empty file", Vec::new(), "plan.json`:1:"),
        (
            "empty plan",
            br#"{"run_key": "x", "kind": "initial", "proposals": []}"#.to_vec(),
            "has no proposals",
        ),
        (
            "empty run key",
            br#"{"run_key": " ", "kind": "initial", "proposals": [{"id": "a"}]}"#.to_vec(),
            "run_key",
        ),
    ];
    let mut rejected = 0;
    for (what, bytes, must) in &plan_cases {
        omk.write("plan.json", bytes);
        let run = omk.run(&["goal", "propose", &id, "--plan", "plan.json"]);
        run.code(2);
        assert!(run.stderr.contains(must), "{what}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{what}");
        rejected += 1;
    }
    omk.write("p.json", r#"{"id":"a","budget_secs":1}"#);
    let config_cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "wrong type",
            b"[limits]\nfuel = \"lots\"\n".to_vec(),
            "gates.toml:2:",
        ),
        (
            "unknown key",
            b"[[gate]]\nname = \"path\"\nconfgi = {}\n".to_vec(),
            "gates.toml:3:",
        ),
        ("binary garbage", garbage.clone(), "gates.toml"),
        ("not toml", b"[[gate]\nname=".to_vec(), "gates.toml:1:"),
        (
            "outside the project",
            b"[[gate]]\npath = \"../../etc/gate.wasm\"\n".to_vec(),
            "is not a path inside the project",
        ),
        (
            "absolute path",
            b"[[gate]]\npath = \"/etc/gate.wasm\"\n".to_vec(),
            "is not a path inside the project",
        ),
        (
            "key outside",
            b"[trust]\nkeys = [\"../k.pub\"]\n".to_vec(),
            "is not a path inside the project",
        ),
        (
            "bad key",
            b"[trust]\nkeys = [\"ed25519:zz\"]\n".to_vec(),
            "gates.toml:2:",
        ),
        (
            "limits out of range",
            b"[limits]\nmemory_mib = 99999\n".to_vec(),
            "memory_mib",
        ),
        (
            "missing bundle",
            b"[[gate]]\nbundle = \"nope\"\nname = \"x\"\n".to_vec(),
            "bundle `nope",
        ),
    ];
    for (what, bytes, must) in &config_cases {
        omk.write(".omk/gates.toml", bytes);
        let run = omk.run(&["gate", "check", "--proposal", "p.json"]);
        run.code(2);
        assert!(run.stderr.contains(must), "{what}: {}", run.stderr);
        assert!(
            run.stderr.contains("help:") || *what == "binary garbage",
            "{what}: {}",
            run.stderr
        );
        rejected += 1;
    }
    std::fs::remove_file(omk.project().join(".omk/gates.toml")).unwrap();
    // Components and bundles.
    let component_cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "truncated component",
            components::gate(components::Body::Accept)[..200].to_vec(),
        ),
        ("wrong world", components::other_world()),
        ("garbage", garbage.clone()),
    ];
    for (what, bytes) in &component_cases {
        omk.write("x.wasm", bytes);
        omk.write(".omk/gates.toml", "[[gate]]\npath = \"x.wasm\"\n");
        let run = omk.run(&["gate", "check", "--proposal", "p.json"]);
        run.code(2);
        assert!(run.stderr.contains("x.wasm"), "{what}: {}", run.stderr);
        rejected += 1;
    }
    std::fs::remove_file(omk.project().join(".omk/gates.toml")).unwrap();
    let archive =
        std::fs::read(crate::support::repo().join("plugins/std-bundle/budget.wasm")).unwrap();
    for (what, bytes) in [
        ("truncated bundle", archive[..100].to_vec()),
        ("garbage bundle", garbage),
    ] {
        omk.write("b.tar.gz", &bytes);
        let run = omk.run(&["bundle", "verify", "b.tar.gz"]);
        run.code(2);
        assert!(run.stderr.contains("b.tar.gz"), "{what}: {}", run.stderr);
        rejected += 1;
    }
    // Budgets and ids.
    for args in [
        &["goal", "run", "x", "--budget-time", "1.5h"][..],
        &["goal", "run", "x", "--budget-usd", "-3"],
        &["goal", "status", "goal-../../etc"],
        &["goal", "status", "nonsense"],
    ] {
        let run = omk.run(args);
        run.code(2);
        assert!(run.stderr.contains("help:"), "{args:?}: {}", run.stderr);
        rejected += 1;
    }
    println!("bad inputs: {rejected} malformed inputs rejected with exit 2 and a clear error");
    crate::support::figure(
        "bad-input",
        format!(
            "| bad input everywhere (`tests/e2e/reliability.rs`) | malformed and truncated plans, wrong types, unknown fields, 8 MiB and binary files, damaged configs, truncated bundles, wrong-world components, `gates.toml` paths outside the project, bad budgets and ids | {rejected} of {rejected} a clear error with its fix, exit 2, no panic |"
        ),
    );
}

#[test]
fn eight_processes_proposing_at_once_lose_and_duplicate_nothing() {
    let omk = Omk::new();
    let id = omk.new_goal("eight writers", &[]);
    let plans: Vec<String> = (0..8)
        .map(|w| {
            let props: Vec<Value> = (0..40)
                .map(|i| proposal(&format!("w{w}-t{i}"), 1, &[&format!("w{w}/f{i}.md")]))
                .collect();
            omk.plan(&format!("writer-{w}"), json!(props))
        })
        .collect();
    let children: Vec<_> = plans
        .iter()
        .map(|p| omk.spawn(&["goal", "propose", &id, "--plan", p, "--wait", "120"], &[]))
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    omk.run(&["goal", "verify-log", &id]).code(0);
    let events = omk.events(&id);
    assert_eq!(of_kind(&events, "wave_completed").len(), 8);
    assert_eq!(of_kind(&events, "task_accepted").len(), 320);
    let ids: std::collections::HashSet<u64> =
        events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "no duplicated event ids");
    let max = ids.iter().max().copied().unwrap();
    assert_eq!(max as usize, events.len(), "no gaps");
    let graph = omk.run(&["goal", "show", &id, "--json"]).json();
    assert_eq!(graph["graph"]["tasks"].as_array().unwrap().len(), 320);
    crate::support::figure(
        "load-processes",
        format!(
            "| load, writers | 8 processes proposing 40 tasks each to one goal at once | {} of 320 tasks accepted once; event ids without a gap or a repeat, the chain intact |",
            graph["graph"]["tasks"].as_array().map_or(0, Vec::len)
        ),
    );
}

#[test]
fn a_wave_of_ten_thousand_proposals_keeps_the_chain() {
    let omk = Omk::new();
    let id = omk.new_goal("big wave", &[]);
    let n = 10_000;
    let props: Vec<Value> = (0..n)
        .map(|i| proposal(&format!("t{i}"), 1, &[&format!("src/m{}/f{i}.rs", i % 97)]))
        .collect();
    let plan = omk.plan("big", json!(props));
    let start = Instant::now();
    let run = omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"]);
    run.code(0);
    println!(
        "a {n}-proposal wave took {:?} (debug build of omk's own code)",
        start.elapsed()
    );
    assert_eq!(run.json()["accepted_task_count"], n);
    let v = omk.run(&["goal", "verify-log", &id, "--json"]).json();
    assert_eq!(v["ok"], true);
    assert!(v["events"].as_u64().unwrap() >= (n * 5) as u64);
    crate::support::figure(
        "load-wave",
        format!(
            "| load, one wave | {n} proposals in one `omk goal propose` | {n} of {n} accepted, the log verifies |"
        ),
    );
}

/// Waits for `child` up to a point picked by `rng`, then SIGKILLs it.
fn kill_at_random(mut child: std::process::Child, rng: &mut Lcg, max_ms: u64) -> bool {
    let at = Instant::now() + Duration::from_millis(rng.below(max_ms));
    while Instant::now() < at {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    true
}

/// Reads a JSON state file, which must never be torn.
fn whole(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is torn: {e}", path.display()))
}

// 40 waves killed at seeded random points, as four goals of ten waves run
// side by side.
#[test]
fn killed_waves_resume_without_losing_or_repeating_a_decision_seed_7() {
    killed_waves_resume(7);
}

#[test]
fn killed_waves_resume_without_losing_or_repeating_a_decision_seed_8() {
    killed_waves_resume(8);
}

#[test]
fn killed_waves_resume_without_losing_or_repeating_a_decision_seed_9() {
    killed_waves_resume(9);
}

#[test]
fn killed_waves_resume_without_losing_or_repeating_a_decision_seed_10() {
    killed_waves_resume(10);
}

/// Ten waves of one goal, each killed at a random point drawn from `seed`
/// and then submitted again: every proposal is decided exactly once.
fn killed_waves_resume(seed: u64) {
    let omk = Omk::new();
    let id = omk.new_goal("kill waves", &[]);
    let dir = omk.goal_dir(&id);
    let mut rng = Lcg(seed);
    let iterations = 10 * scale();
    let mut killed = 0;
    for it in 0..iterations {
        let props: Vec<Value> = (0..150)
            .map(|i| {
                // A few rejections in every wave.
                let path = if i % 17 == 0 {
                    "/abs".to_owned()
                } else {
                    format!("k{it}/f{i}.md")
                };
                proposal(&format!("k{it}-t{i}"), 1, &[&path])
            })
            .collect();
        let plan = omk.plan(&format!("kill-{it}"), json!(props));
        let child = omk.spawn(&["goal", "propose", &id, "--plan", &plan], &[]);
        if kill_at_random(child, &mut rng, 400) {
            killed += 1;
        }
        whole(&dir.join("goal.json"));
        whole(&dir.join("task-graph.json"));
        // Resume: the same plan again.
        let run = omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"]);
        assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
        let ev = run.json();
        assert_eq!(
            ev["accepted_task_count"].as_u64().unwrap()
                + ev["rejected_task_count"].as_u64().unwrap(),
            150
        );
    }
    omk.run(&["goal", "verify-log", &id]).code(0);
    let events = omk.events(&id);
    // One decision per proposal, never two.
    let mut decided = std::collections::HashMap::new();
    for e in events
        .iter()
        .filter(|e| e["kind"] == "task_accepted" || e["kind"] == "task_rejected")
    {
        let key = (
            e["payload"]["run_key"].as_str().unwrap().to_owned(),
            e["payload"]["index"].as_u64().unwrap(),
        );
        assert!(
            decided.insert(key.clone(), e["kind"].clone()).is_none(),
            "{key:?} decided twice"
        );
    }
    assert_eq!(decided.len(), iterations * 150);
    let accepted = decided.values().filter(|k| *k == "task_accepted").count();
    let graph = whole(&dir.join("task-graph.json"));
    assert_eq!(
        graph["tasks"].as_array().unwrap().len(),
        accepted,
        "every accepted task is in the graph once"
    );
    assert!(
        killed > 0,
        "no wave was killed mid-way: the test proved nothing"
    );
    println!(
        "kill/resume (waves, seed {seed}): {iterations} iterations, {killed} killed mid-wave, all resumed"
    );
    crate::support::figure(
        &format!("kill-waves-{seed}"),
        format!(
            "| kill and resume, waves (seed {seed}) | SIGKILL at seeded random points of {iterations} waves of one goal, then resume | {iterations} of {iterations} resumed (some killed mid-wave, as the test requires): the log verifies, no decision repeated or lost, no torn `goal.json` or `task-graph.json` |"
        ),
    );
}

#[test]
fn killed_executions_resume_and_no_task_runs_twice() {
    let omk = Omk::new();
    omk.git_project(&[]);
    let mut rng = Lcg(11);
    let iterations = 10 * scale();
    let trace = omk.trace_file();
    let agent = omk.agent(&format!(
        "TRACE={}\ncase \"$OMK_PHASE\" in\n  plan) for i in 1 2 3; do echo \"OMK_TASK_PROPOSAL: {{\\\"id\\\":\\\"t$i\\\",\\\"write_set\\\":[\\\"f$i\\\"],\\\"acceptance\\\":[\\\"run: test -f f$i\\\"],\\\"budget_secs\\\":30}}\"; done ;;\n  execute) echo \"start $OMK_TASK_ID $OMK_TASK_ATTEMPT\" >> $TRACE; sleep 0.3; echo x > f${{OMK_TASK_ID#t}}; echo \"end $OMK_TASK_ID $OMK_TASK_ATTEMPT\" >> $TRACE ;;\nesac\n",
        trace.display()
    ));
    let mut killed = 0;
    for it in 0..iterations {
        let _ = std::fs::remove_file(&trace);
        let id = omk.new_goal(
            &format!("kill exec {it}"),
            &["--agent", "exec", "--command", &agent, "--max-agents", "2"],
        );
        let child = omk.spawn(
            &["goal", "execute", &id],
            &[("OMK_GOAL_AGENT_LEASE_SECS", "1")],
        );
        if kill_at_random(child, &mut rng, 900) {
            killed += 1;
        }
        let dir = omk.goal_dir(&id);
        whole(&dir.join("goal.json"));
        whole(&dir.join("task-graph.json"));
        let out = omk
            .spawn(
                &["goal", "execute", &id, "--wait", "20"],
                &[("OMK_GOAL_AGENT_LEASE_SECS", "1")],
            )
            .wait_with_output()
            .unwrap();
        // Who holds the lock, if the resume could not take it.
        let holder = std::fs::read_to_string(dir.join("lock"))
            .ok()
            .and_then(|pid| std::fs::read(format!("/proc/{}/cmdline", pid.trim())).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        assert!(
            out.status.success(),
            "resume of iteration {it} failed:\n{}\n{}\nlock holder: {holder}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            omk.run(&["goal", "events", &id]).stdout
        );
        // Agents of the killed run were stopped when their tasks were reclaimed.
        std::thread::sleep(Duration::from_millis(400));
        let lines = std::fs::read_to_string(&trace).unwrap_or_default();
        for t in ["t1", "t2", "t3"] {
            let ends = lines
                .lines()
                .filter(|l| l.starts_with(&format!("end {t} ")))
                .count();
            assert!(ends >= 1, "{t} never finished: {lines}");
            // Never two attempts at once: no attempt ends after a later one
            // started (a killed run's agent was stopped before the retry).
            let mut latest_start = 0;
            for l in lines.lines() {
                let f: Vec<&str> = l.split(' ').collect();
                let (Some(&what), Some(&task), Some(attempt)) = (
                    f.first(),
                    f.get(1),
                    f.get(2).and_then(|a| a.parse::<u32>().ok()),
                ) else {
                    continue;
                };
                if task != t {
                    continue;
                }
                match what {
                    "start" => latest_start = latest_start.max(attempt),
                    _ => assert!(
                        attempt >= latest_start,
                        "{t}: attempt {attempt} was still running when attempt {latest_start} started:\n{lines}"
                    ),
                }
            }
            let done = of_kind(&omk.events(&id), "task_completed")
                .iter()
                .filter(|e| e["payload"]["task_id"] == t)
                .count();
            assert_eq!(done, 1, "{t} completed {done} times");
        }
        omk.run(&["goal", "verify-log", &id]).code(0);
        assert_eq!(
            omk.run(&["goal", "status", &id, "--json"]).json()["status"],
            "ready"
        );
    }
    assert!(
        killed > 0,
        "no run was killed mid-way: the test proved nothing"
    );
    println!(
        "kill/resume (execution): {iterations} iterations, {killed} killed mid-run, all resumed, no task completed twice or ran twice at once"
    );
    crate::support::figure(
        "kill-executions",
        format!(
            "| kill and resume, executions | SIGKILL at random points of {iterations} executions, then resume | {iterations} of {iterations} resumed (some killed mid-run, as the test requires): no task completed twice or ran twice at once, the goal ready |"
        ),
    );
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` reads it) at `at`;
    /// `None` where this process may not mount (not root, no capability).
    fn mount(at: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_owned()))
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_is_a_clear_error_and_keeps_the_last_good_state() {
    let omk = Omk::new();
    let Some(disk) = Tmpfs::mount(&omk.state_home(), "160k") else {
        crate::support::skip("this process cannot mount a tmpfs (run as root)");
        return;
    };
    let id = omk.new_goal("disk full", &[]);
    let dir = omk.goal_dir(&id);
    let mut failed = None;
    for w in 0..200 {
        let props: Vec<Value> = (0..20)
            .map(|i| proposal(&format!("w{w}-t{i}"), 1, &[&format!("d{w}/f{i}.md")]))
            .collect();
        let plan = omk.plan(&format!("disk-{w}"), json!(props));
        let run = omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"]);
        if run.code != 0 {
            failed = Some((w, plan, run));
            break;
        }
    }
    let (w, plan, run) = failed.expect("a 160 KiB file system fills up");
    assert!(w > 0, "the first wave already failed: {}", run.stderr);
    assert!(
        run.stderr.contains("No space left on device")
            && run.stderr.contains(&*dir.to_string_lossy()),
        "the error names the cause and the file:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    // The last good state: whole files, a log that verifies, the goal readable.
    whole(&dir.join("goal.json"));
    let graph = whole(&dir.join("task-graph.json"));
    omk.run(&["goal", "verify-log", &id]).code(0);
    omk.run(&["goal", "status", &id, "--json"]).code(0);
    // With room again, the failed wave completes, each decision once.
    disk.resize("64m");
    let ev = omk
        .run(&["goal", "propose", &id, "--plan", &plan, "--json"])
        .code(0)
        .json();
    assert_eq!(ev["accepted_task_count"], 20);
    omk.run(&["goal", "verify-log", &id]).code(0);
    let events = omk.events(&id);
    let accepted = of_kind(&events, "task_accepted").len();
    assert_eq!(accepted, (w + 1) * 20, "every accepted task once");
    let graph_after = whole(&dir.join("task-graph.json"));
    assert!(
        graph_after["tasks"].as_array().unwrap().len() >= graph["tasks"].as_array().unwrap().len()
    );
    assert_eq!(graph_after["tasks"].as_array().unwrap().len(), (w + 1) * 20);
    println!(
        "disk full: wave {w} hit ENOSPC, the goal kept its last good state, and the wave completed once space returned"
    );
    crate::support::figure(
        "disk-full",
        "| disk full | the goal's state on a 160 KiB tmpfs until a wave fails | `No space left on device` naming the file; the last good state kept; the same wave completes once there is room |".into(),
    );
}

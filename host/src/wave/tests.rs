//! The seed's four scenarios, at library level.

use super::*;
use crate::gates::{GateEngine, GatesConfig};
use crate::goal::{GoalStore, Limits, NewGoal};
use crate::graph::TaskStatus;
use crate::proof::events::{Payload, TaskAccepted, TaskProposed, TaskRejected, WaveStarted};
use serde_json::json;

/// An open goal with `time` seconds of budget, and the std gates.
pub(crate) fn setup(time: Option<u64>) -> (tempfile::TempDir, Session, GateSet) {
    let tmp = tempfile::tempdir().unwrap();
    let store = GoalStore::new(tmp.path().join("goals"));
    let spec = NewGoal {
        text: "test goal".into(),
        limits: Limits {
            time_secs: time,
            ..Default::default()
        },
        max_agents: 1,
        project_dir: tmp.path().to_owned(),
        policy_roots: vec![],
        agent: None,
        base_commit: None,
        merge_policy: Default::default(),
        guarded: None,
    };
    let session = Session::create(&store, spec, Utc::now()).unwrap();
    let engine = GateEngine::new(None).unwrap();
    let gates = GateSet::load(&GatesConfig::std(Default::default()), &engine).unwrap();
    (tmp, session, gates)
}

fn plan(run_key: &str, id: &str, budget_secs: u64, write: &str) -> DispatchPlan {
    let p: TaskProposal = serde_json::from_value(json!({
        "id": id, "title": format!("Task {id}"), "description": "d", "dependencies": [],
        "read_set": [], "write_set": [write], "risk": "low", "acceptance": ["accept"],
        "budget_secs": budget_secs, "priority": 0
    }))
    .unwrap();
    DispatchPlan {
        run_key: run_key.into(),
        kind: WaveKind::Initial,
        proposals: vec![p],
        allow_existing_task_ids: false,
    }
}

/// The session's events of `P`'s kind, read as `P`.
fn events<P: Payload>(session: &Session) -> Vec<P> {
    log::read(session.dir())
        .unwrap()
        .0
        .iter()
        .filter_map(|e| e.decode::<P>())
        .map(Result::unwrap)
        .collect()
}

#[test]
fn over_budget_is_rejected_and_logged() {
    let (_t, mut s, gates) = setup(Some(10));
    let ev = run_wave(
        &mut s,
        &gates,
        &plan("run-1", "task-a", 120, "README.md"),
        Utc::now(),
    )
    .unwrap();
    assert_eq!((ev.accepted_task_count, ev.rejected_task_count), (0, 1));
    assert!(
        ev.worker_summary
            .unwrap()
            .contains("rejected all proposed agent tasks")
    );
    assert_eq!(events::<TaskProposed>(&s)[0].task_id, "task-a");
    let rejected = &events::<TaskRejected>(&s)[0];
    assert_eq!(rejected.task_id, "task-a");
    assert!(rejected.reason.contains("would exceed goal time budget"));
}

#[test]
fn absolute_path_is_outside_the_roots() {
    let (_t, mut s, gates) = setup(None);
    let ev = run_wave(
        &mut s,
        &gates,
        &plan("run-2", "task-b", 120, "/absolute/path.md"),
        Utc::now(),
    )
    .unwrap();
    assert_eq!((ev.accepted_task_count, ev.rejected_task_count), (0, 1));
    let rejected = &events::<TaskRejected>(&s)[0];
    assert!(
        rejected
            .reason
            .contains("outside the allowed goal policy roots")
    );
}

#[test]
fn accepted_task_has_its_budget_snapshot() {
    let (_t, mut s, gates) = setup(Some(3600));
    let ev = run_wave(
        &mut s,
        &gates,
        &plan("run-3", "task-c", 120, "README.md"),
        Utc::now(),
    )
    .unwrap();
    assert_eq!((ev.accepted_task_count, ev.rejected_task_count), (1, 0));
    let accepted = &events::<TaskAccepted>(&s)[0];
    assert_eq!(accepted.task_id, "task-c");
    assert_eq!(accepted.budget_snapshot.task_budget_secs, 120);
    assert_eq!(s.graph.get("task-c").unwrap().status, TaskStatus::Pending);
}

#[test]
fn rejected_task_is_failed_not_completed() {
    let (_t, mut s, gates) = setup(Some(10));
    let ev = run_wave(
        &mut s,
        &gates,
        &plan("run-4", "task-d", 120, "README.md"),
        Utc::now(),
    )
    .unwrap();
    assert_eq!(
        ev.summary,
        WaveSummary {
            completed: 0,
            failed: 1,
            total: 1
        }
    );
    assert_eq!(ev.accepted_task_count, 0);
    assert!(s.graph.tasks().is_empty());
}

#[test]
fn an_interrupted_wave_resumes_without_judging_twice() {
    let (_t, mut s, gates) = setup(Some(3600));
    let mut p = plan("run-5", "a", 60, "a.md");
    let second = plan("x", "b", 60, "b.md").proposals.remove(0);
    p.proposals.push(second);
    // Simulate a crash after the first proposal was decided: run the
    // wave, then cut the log back to just after `a`'s decision and
    // forget the graph.
    run_wave(&mut s, &gates, &p, Utc::now()).unwrap();
    let path = s.dir().join(crate::proof::EVENTS_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let cut = text
        .lines()
        .position(|l| l.contains("\"task_accepted\""))
        .unwrap()
        + 1;
    let kept: String = text.lines().take(cut).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, kept).unwrap();
    s.graph = omk_core::graph::TaskGraph::new(&s.goal.id, Utc::now());
    s.save_graph(Utc::now()).unwrap();
    let dir = s.dir().to_owned();
    let store = GoalStore::new(dir.parent().unwrap().to_owned());
    let id = s.goal.id.clone();
    drop(s);

    let mut s = Session::open(&store, &id).unwrap();
    let ev = run_wave(&mut s, &gates, &p, Utc::now()).unwrap();
    assert_eq!(ev.accepted, ["a", "b"]);
    assert_eq!(
        events::<TaskProposed>(&s).len(),
        2,
        "`a` was not proposed again"
    );
    assert_eq!(events::<WaveStarted>(&s).len(), 1);
    assert_eq!(s.graph.tasks().len(), 2);
    let v = log::verify(s.dir(), &log::VerifyOptions::default()).unwrap();
    assert!(v.ok, "{v:?}");
}

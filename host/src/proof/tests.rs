//! The log's readers at a reduced scale: each reads every line once, so
//! none goes back to reading the log once per task (which made the report
//! of a 10,000-task goal take minutes). Work is counted, not timed.

use chrono::Utc;
use omk_gate_sdk::TaskProposal;
use serde_json::json;

use super::anchors::Trust;
use super::log;
use crate::gates::GateSet;
use crate::goal::Session;
use crate::wave::{DispatchPlan, WaveKind, run_wave};

/// A goal of `n` proposals in waves of 1,000, every third one writing
/// outside the policy roots (rejected): five events a proposal.
fn goal(n: usize) -> (tempfile::TempDir, Session, GateSet) {
    let (tmp, mut session, gates) = crate::wave::tests::setup(None);
    for wave in 0..n.div_ceil(1000) {
        let proposals = (wave * 1000..((wave + 1) * 1000).min(n))
            .map(|i| {
                let write = if i % 3 == 0 {
                    "/etc/x".to_owned()
                } else {
                    format!("src/x{i}.rs")
                };
                serde_json::from_value::<TaskProposal>(json!({
                    "id": format!("t{i}"), "title": "t", "description": "d",
                    "write_set": [write], "risk": "low", "acceptance": ["ok"],
                    "budget_secs": 60
                }))
                .unwrap()
            })
            .collect();
        let plan = DispatchPlan {
            run_key: format!("run-{wave}"),
            kind: WaveKind::Initial,
            proposals,
            allow_existing_task_ids: false,
        };
        run_wave(&mut session, &gates, &plan, Utc::now()).unwrap();
    }
    session.log.sync().unwrap();
    (tmp, session, gates)
}

/// How many lines `f` parsed as events.
fn parsed(f: impl FnOnce()) -> u64 {
    let before = log::lines_parsed();
    f();
    log::lines_parsed() - before
}

#[test]
fn every_reader_parses_each_line_of_the_log_once() {
    let (_tmp, s, gates) = goal(4000);
    let dir = s.dir().path().to_owned();
    let text = std::fs::read_to_string(dir.join(log::EVENTS_FILE)).unwrap();
    let lines = text.lines().count() as u64;
    // Replay reads only the decisions and the tasks proposed and accepted.
    let judged_or_tasks = text
        .lines()
        .filter(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            matches!(
                e["kind"].as_str(),
                Some("gate_decision" | "task_proposed" | "task_accepted")
            )
        })
        .count() as u64;
    assert!(judged_or_tasks < lines);
    assert!(lines > 20_000, "{lines} events");
    let trust = Trust::default();

    let mut proof = None;
    let n = parsed(|| {
        proof = Some(super::document::Proof::build(&dir, &s.goal, &s.graph, &trust).unwrap())
    });
    assert_eq!(n, lines, "proof");
    let proof = proof.unwrap();
    assert_eq!(proof.log.events as u64, lines);
    assert!(proof.log.chain_intact, "{:?}", proof.log);

    let mut page = String::new();
    let n = parsed(|| {
        page = super::report::page(&dir, &s.goal, &s.graph, &trust)
            .unwrap()
            .1
    });
    assert_eq!(n, lines, "report");
    // Folded: 1,334 rejections in one group, and the timeline's two ends.
    let grouped = page.split("id=\"refused\"").next().unwrap();
    assert!(
        grouped.contains("1334 proposals, in 1 group(s)"),
        "grouped: {}",
        &grouped[grouped.find("id=\"rejected\"").unwrap()..]
    );
    assert!(page.contains("events not shown"), "the timeline is folded");
    assert!(page.len() < 4 << 20, "{} bytes", page.len());

    let n = parsed(|| {
        super::timeline::Timeline::scan(&dir, |_| {}).unwrap();
    });
    assert_eq!(n, lines, "timeline");

    let n = parsed(|| {
        let v = log::verify(&dir, &log::VerifyOptions::default()).unwrap();
        assert_eq!(v.events as u64, lines);
    });
    assert_eq!(n, lines, "verify-log");

    let mut what_if = None;
    let n = parsed(|| what_if = Some(super::replay::what_if(&dir, &gates).unwrap()));
    assert_eq!(n, judged_or_tasks, "replay");
    let w = what_if.unwrap();
    assert_eq!(w.judged, 4000);
    assert!(w.exact(), "the same gates decide the same: {:?}", w.summary);
}

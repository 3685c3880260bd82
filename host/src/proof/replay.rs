//! Policy what-if: every recorded decision re-judged by another gate set.
//!
//! Each group of `gate_decision` events sharing an `input_sha256` is one
//! thing the gates judged (a proposal, an action or an outcome). Its input
//! is read back from [`Inputs`] and judged again, offline and without
//! agents, by the gate set given; the old and new overall verdicts are
//! compared, and each gate's own decision when it took part both times.
//! With the original gates every decision must come out the same; a gate
//! whose component and config are unchanged but whose decision differs is
//! reported as not deterministic.
//!
//! Each decision is re-judged with the context it had: a proposal that a
//! looser policy would now accept is not added to the waves that followed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, mpsc};

use omk_gate_sdk::Stage;
use serde::Serialize;

use super::events::Body;
use super::inputs::{Inputs, Subject};
use super::log::LogError;
use crate::gates::{GateDecision, GateSet, Verdict};

/// A verdict, reduced to what a policy change can alter. A gate's ask is
/// answered by the approval the log records for the same action (then it
/// is accepted, naming it), and is a rejection without one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overall {
    pub accepted: bool,
    /// The deciding gate and code, when rejected (or asked).
    pub gate: Option<String>,
    pub code: Option<String>,
    /// The recorded approval that answered an ask.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
}

impl std::fmt::Display for Overall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.accepted, &self.code) {
            (true, _) if self.approval.is_some() => write!(
                f,
                "accept (approved {})",
                self.approval.as_deref().unwrap_or_default()
            ),
            (true, _) => f.write_str("accept"),
            (false, Some(c)) => write!(f, "reject {c}"),
            (false, None) => f.write_str("reject"),
        }
    }
}

/// A decision that would change.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub task_id: String,
    pub stage: Stage,
    /// The action's target, for the action stage.
    pub target: Option<String>,
    pub old: Overall,
    pub new: Overall,
}

impl Change {
    /// The gate whose decision made the difference: the new verdict's
    /// deciding gate, else the old one's (`-` when neither names one).
    pub fn deciding_gate(&self) -> &str {
        self.new
            .gate
            .as_deref()
            .or(self.old.gate.as_deref())
            .unwrap_or("-")
    }
}

/// A gate that decided differently on the same input with the same
/// component and config.
#[derive(Debug, Clone, Serialize)]
pub struct Nondeterminism {
    pub gate: String,
    pub sha256: String,
    pub task_id: String,
    pub stage: Stage,
    pub old: String,
    pub new: String,
}

/// The result of a what-if replay.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WhatIf {
    /// Things judged in the log (proposals, actions, outcomes).
    pub judged: usize,
    /// Of those, re-judged now.
    pub rejudged: usize,
    /// Judged things whose input is not recorded (older omk, damage).
    pub missing_inputs: usize,
    /// Lines of `artifacts/inputs.jsonl` whose bytes do not match their
    /// address: changed after they were written.
    pub damaged_inputs: Vec<usize>,
    pub changes: Vec<Change>,
    pub nondeterministic: Vec<Nondeterminism>,
    /// Counts of changes by (old, new).
    pub summary: BTreeMap<String, usize>,
}

impl WhatIf {
    /// Whether every decision came out the same.
    pub fn exact(&self) -> bool {
        self.changes.is_empty()
            && self.nondeterministic.is_empty()
            && self.missing_inputs == 0
            && self.damaged_inputs.is_empty()
    }
}

/// The decisions recorded for one input.
struct Group {
    input: String,
    stage: Stage,
    task_id: String,
    decisions: Vec<GateDecision>,
}

impl Overall {
    fn new(rejected_by: Option<(String, Option<String>)>) -> Overall {
        match rejected_by {
            None => Overall {
                accepted: true,
                gate: None,
                code: None,
                approval: None,
            },
            Some((gate, code)) => Overall {
                accepted: false,
                gate: Some(gate),
                code,
                approval: None,
            },
        }
    }
}

fn old_overall(g: &Group, approval: Option<&String>) -> Overall {
    let asked = Verdict {
        accepted: false,
        decisions: g.decisions.clone(),
    };
    let blocking = asked.blocking();
    answered(
        Overall::new(blocking.map(|d| {
            (
                d.gate.clone(),
                d.decision.rejection().map(|r| r.code.clone()),
            )
        })),
        blocking.is_some_and(|d| d.decision.is_ask()),
        approval,
    )
}

fn new_overall(v: &Verdict, approval: Option<&String>) -> Overall {
    answered(
        Overall::new(v.rejection().map(|b| (b.gate, Some(b.code)))),
        v.asks(),
        approval,
    )
}

/// An ask answered by the recorded approval `approval` is accepted.
fn answered(mut o: Overall, asks: bool, approval: Option<&String>) -> Overall {
    if let (true, Some(id)) = (asks, approval) {
        o.accepted = true;
        o.approval = Some(id.clone());
    }
    o
}

/// The approvals a goal's log records: (task, action digest) -> the id of
/// the first approval of it.
fn approvals(dir: &Path) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for a in crate::approvals::Ledger::read(dir).answered {
        if a.approved {
            out.entry((a.task_id, a.digest)).or_insert(a.id);
        }
    }
    out
}

/// Groups sent to a judging thread at a time.
const BATCH: usize = 256;

/// Re-judges every recorded decision of the goal in `dir` with `gates`,
/// reading its log once, one event at a time. Reading and judging overlap:
/// complete groups of decisions go in batches to one judging thread per
/// core while the log is read on, and what they found is noted in log
/// order; memory holds a few batches, the inputs' index and what changed.
pub fn what_if(dir: &Path, gates: &GateSet) -> Result<WhatIf, LogError> {
    let inputs = RwLock::new(Inputs::open(dir)?);
    let approved = approvals(dir);
    let mut w = WhatIf {
        damaged_inputs: read(&inputs).damaged.clone(),
        ..WhatIf::default()
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        let (work, queue) = mpsc::sync_channel::<(usize, Vec<Group>)>(cores);
        // Shared by the judges: when the last one ends, sending fails.
        let queue = Arc::new(Mutex::new(queue));
        let (found, results) = mpsc::channel::<(usize, Vec<Group>, Vec<Judged>)>();
        for _ in 0..cores {
            let (queue, found, inputs) = (Arc::clone(&queue), found.clone(), &inputs);
            s.spawn(move || {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((n, batch)) = next else { return };
                    let judged = batch.iter().map(|g| judge(inputs, gates, g)).collect();
                    if found.send((n, batch, judged)).is_err() {
                        return;
                    }
                }
            });
        }
        drop((queue, found));
        let mut order = InOrder::default();
        let mut batch: Vec<Group> = Vec::with_capacity(BATCH);
        let mut open: Option<Group> = None;
        let mut sent = 0;
        let path = dir.join(super::EVENTS_FILE);
        let read_log = super::log::each_line(&path, |_, line| {
            if !wanted(line) {
                return;
            }
            let Some(e) = super::log::parse_event(line) else {
                return;
            };
            let body = Body::of(&e);
            if matches!(body, Body::TaskProposed(_) | Body::TaskAccepted(_)) {
                inputs
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .event(&body);
            }
            let Body::GateDecision(g) = body else {
                return;
            };
            let g = *g;
            let input = g.input_sha256.unwrap_or_default();
            let (stage, task_id, rec) = (g.decision.stage, g.about.task_id, g.decision);
            // Decisions on one input, one per gate, in a row are one group.
            if let Some(last) = &mut open
                && !input.is_empty()
                && last.input == input
                && last.stage == stage
                && last.task_id == task_id
                && !last.decisions.iter().any(|d| d.gate == rec.gate)
            {
                last.decisions.push(rec);
                return;
            }
            if let Some(done) = open.replace(Group {
                input,
                stage,
                task_id,
                decisions: vec![rec],
            }) {
                batch.push(done);
                if batch.len() == BATCH {
                    // A send fails only when every judge has ended (a
                    // panic, raised when the scope ends).
                    let _ = work.send((sent, std::mem::take(&mut batch)));
                    sent += 1;
                    order.take(&mut w, results.try_iter(), &approved);
                }
            }
        });
        batch.extend(open);
        let _ = work.send((sent, batch));
        drop(work);
        order.take(&mut w, results.iter(), &approved);
        read_log
    })?;
    Ok(w)
}

/// Whether a log line may be an event replay reads (a decision, a task
/// proposed or accepted). omk writes an event's own `"kind":"…"` before
/// its payload, so the first such marker names the event's kind: a line
/// of another kind is not parsed at all; a line without the marker
/// (written some other way) is.
fn wanted(line: &[u8]) -> bool {
    const KIND: &[u8] = b"\"kind\":\"";
    let Some(at) = memchr::memmem::find(line, KIND) else {
        return true;
    };
    let kind = &line[at + KIND.len()..];
    [
        &b"gate_decision\""[..],
        b"task_proposed\"",
        b"task_accepted\"",
    ]
    .iter()
    .any(|k| kind.starts_with(k))
}

fn read(inputs: &RwLock<Inputs>) -> std::sync::RwLockReadGuard<'_, Inputs> {
    inputs.read().unwrap_or_else(|e| e.into_inner())
}

/// Judged batches, noted in the order they were sent.
#[derive(Default)]
struct InOrder {
    next: usize,
    waiting: BTreeMap<usize, (Vec<Group>, Vec<Judged>)>,
}

impl InOrder {
    fn take(
        &mut self,
        w: &mut WhatIf,
        results: impl Iterator<Item = (usize, Vec<Group>, Vec<Judged>)>,
        approved: &BTreeMap<(String, String), String>,
    ) {
        for (n, batch, judged) in results {
            self.waiting.insert(n, (batch, judged));
            while let Some((batch, judged)) = self.waiting.remove(&self.next) {
                for (g, judged) in batch.into_iter().zip(judged) {
                    note(w, g, judged, approved);
                }
                self.next += 1;
            }
        }
    }
}

/// A group judged again: the verdict, and the action's target and digest.
type Judged = Option<(Verdict, Option<(String, String)>)>;

/// Group `g`'s input judged by `gates`; `None` when the input is missing.
fn judge(inputs: &RwLock<Inputs>, gates: &GateSet, g: &Group) -> Judged {
    let (ctx, subject) = read(inputs).get(&g.input)?;
    Some(match &subject {
        Subject::Proposal { proposal } => (gates.judge_proposal(&ctx, proposal), None),
        Subject::Action { task, action } => {
            // An action recorded before omk parsed commands (omk:gate@0.3.0)
            // is parsed now, as omk would have: the same parser, so the same
            // structure every time. One recorded with its parse keeps it.
            let action = crate::command::with_parse(action.clone());
            let digest = crate::approvals::digest(&action);
            (
                gates.judge_action(&ctx, task, &action),
                Some((action.target, digest)),
            )
        }
        Subject::Outcome { task, outcome } => (gates.judge_outcome(&ctx, task, outcome), None),
    })
}

/// Notes in `w` how group `g` came out when judged again, an ask answered
/// by the approval of `approved`.
fn note(w: &mut WhatIf, g: Group, judged: Judged, approved: &BTreeMap<(String, String), String>) {
    w.judged += 1;
    let Some((verdict, action)) = judged else {
        w.missing_inputs += 1;
        return;
    };
    w.rejudged += 1;
    for new in &verdict.decisions {
        let Some(old) = g.decisions.iter().find(|d| d.gate == new.gate) else {
            continue;
        };
        if old.sha256 != new.sha256 || old.config != new.config {
            continue;
        }
        if old.decision != new.decision {
            w.nondeterministic.push(Nondeterminism {
                gate: new.gate.clone(),
                sha256: new.sha256.clone(),
                task_id: g.task_id.clone(),
                stage: g.stage,
                old: match old.decision.rejection() {
                    None => "accept ".into(),
                    Some(r) => format!("reject {}", r.code),
                },
                new: match new.decision.rejection() {
                    None => "accept".into(),
                    Some(r) => format!("reject {}", r.code),
                },
            });
        }
    }
    let approval = action
        .as_ref()
        .and_then(|(_, digest)| approved.get(&(g.task_id.clone(), digest.clone())));
    let target = action.map(|(t, _)| t);
    let (old, new) = (old_overall(&g, approval), new_overall(&verdict, approval));
    if old != new {
        *w.summary
            .entry(format!("{} -> {}", verdict_word(&old), verdict_word(&new)))
            .or_default() += 1;
        w.changes.push(Change {
            task_id: g.task_id,
            stage: g.stage,
            target,
            old,
            new,
        });
    }
}

fn verdict_word(o: &Overall) -> &'static str {
    if o.accepted { "accepted" } else { "rejected" }
}

#[cfg(test)]
mod tests {
    use super::wanted;

    #[test]
    fn only_the_kinds_replay_reads_are_parsed() {
        let line = |kind: &str| {
            format!(
                r#"{{"id":7,"run_id":"r","ts":"2026-01-01T00:00:00Z","schema_version":1,"kind":"{kind}","actor":"omk","payload":{{"kind":"gate_decision"}},"prev_hash":"","hash":""}}"#
            )
        };
        for kind in ["gate_decision", "task_proposed", "task_accepted"] {
            assert!(wanted(line(kind).as_bytes()), "{kind}");
        }
        // The event's own kind decides, not one inside its payload.
        for kind in ["agent_action", "task_started", "gate_decisions"] {
            assert!(!wanted(line(kind).as_bytes()), "{kind}");
        }
        // Written some other way: parsed, to be sure.
        assert!(wanted(br#"{"kind": "agent_action"}"#));
    }
}

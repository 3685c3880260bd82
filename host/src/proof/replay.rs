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

use omk_gate_sdk::Stage;
use serde::Serialize;

use super::events::Body;
use super::inputs::{Inputs, Subject};
use super::log::LogError;
use crate::gates::{GateDecision, GateSet, Verdict};

/// A verdict, reduced to what a policy change can alter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overall {
    pub accepted: bool,
    /// The deciding gate and code, when rejected.
    pub gate: Option<String>,
    pub code: Option<String>,
}

impl std::fmt::Display for Overall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.accepted, &self.code) {
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
            },
            Some((gate, code)) => Overall {
                accepted: false,
                gate: Some(gate),
                code,
            },
        }
    }
}

fn old_overall(g: &Group) -> Overall {
    Overall::new(g.decisions.iter().find(|d| d.blocks()).map(|d| {
        (
            d.gate.clone(),
            d.decision.rejection().map(|r| r.code.clone()),
        )
    }))
}

fn new_overall(v: &Verdict) -> Overall {
    Overall::new(v.rejection().map(|b| (b.gate, Some(b.code))))
}

/// Groups re-judged together, one share per core.
const BATCH: usize = 512;

/// Re-judges every recorded decision of the goal in `dir` with `gates`,
/// reading its log once, one event at a time: complete groups of decisions
/// are re-judged in batches, spread over the cores, and noted in log
/// order, so memory holds one batch, the inputs' index and what changed.
pub fn what_if(dir: &Path, gates: &GateSet) -> Result<WhatIf, LogError> {
    let mut inputs = Inputs::open(dir)?;
    let mut w = WhatIf {
        damaged_inputs: inputs.damaged.clone(),
        ..WhatIf::default()
    };
    let mut open: Option<Group> = None;
    let mut batch: Vec<Group> = Vec::with_capacity(BATCH);
    super::log::each_event(dir, |e| {
        let body = Body::of(&e);
        inputs.event(&body);
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
                rejudge(&mut w, &inputs, gates, std::mem::take(&mut batch));
            }
        }
    })?;
    batch.extend(open);
    rejudge(&mut w, &inputs, gates, batch);
    Ok(w)
}

/// A group judged again: the verdict, and the action's target.
type Judged = Option<(Verdict, Option<String>)>;

/// Judges `batch` again with `gates` (its groups spread over the cores)
/// and notes what changed in `w`, in order.
fn rejudge(w: &mut WhatIf, inputs: &Inputs, gates: &GateSet, batch: Vec<Group>) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = batch.len().div_ceil(cores).max(1);
    let judged: Vec<Judged> = if batch.len() <= 1 || cores == 1 {
        batch.iter().map(|g| judge(inputs, gates, g)).collect()
    } else {
        std::thread::scope(|s| {
            let parts: Vec<_> = batch
                .chunks(share)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|g| judge(inputs, gates, g))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    };
    for (g, judged) in batch.into_iter().zip(judged) {
        note(w, g, judged);
    }
}

/// Group `g`'s input judged by `gates`; `None` when the input is missing.
fn judge(inputs: &Inputs, gates: &GateSet, g: &Group) -> Judged {
    let (ctx, subject) = inputs.get(&g.input)?;
    Some(match &subject {
        Subject::Proposal { proposal } => (gates.judge_proposal(&ctx, proposal), None),
        Subject::Action { task, action } => (
            gates.judge_action(&ctx, task, action),
            Some(action.target.clone()),
        ),
        Subject::Outcome { task, outcome } => (gates.judge_outcome(&ctx, task, outcome), None),
    })
}

/// Notes in `w` how group `g` came out when judged again.
fn note(w: &mut WhatIf, g: Group, judged: Judged) {
    w.judged += 1;
    let Some((verdict, target)) = judged else {
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
    let (old, new) = (old_overall(&g), new_overall(&verdict));
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

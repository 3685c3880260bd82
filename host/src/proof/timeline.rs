//! The timeline of a goal, rebuilt from its event log alone.
//!
//! [`Timeline::read`] never fails on a damaged log: lines that do not parse,
//! events seen twice and jumps in the event ids are reported beside the
//! entries, so a tampered or crashed log still shows what it holds.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Event;
use super::events::{Body, compact, word};
use super::log::{EVENTS_FILE, LogError};
use crate::gates::Mode;
use omk_gate_sdk::Decision;

/// One line of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// 1-based line of `events.jsonl`.
    pub line: usize,
    pub id: u64,
    pub ts: DateTime<Utc>,
    pub kind: String,
    pub actor: String,
    pub summary: String,
}

/// A goal's timeline and what was wrong with its log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    pub entries: Vec<Entry>,
    /// Lines that are not events (torn by a crash, or damaged).
    pub unparseable: Vec<usize>,
    /// Lines repeating an event id seen before: (line, id).
    pub duplicates: Vec<(usize, u64)>,
    /// Jumps in the ids: (last id, next id seen).
    pub gaps: Vec<(u64, u64)>,
}

impl Timeline {
    /// Reads the log of the goal in `dir`, entries and all.
    pub fn read(dir: &Path) -> Result<Timeline, LogError> {
        let mut entries = Vec::new();
        let mut t = Timeline::scan(dir, |e| entries.push(e))?;
        t.entries = entries;
        Ok(t)
    }

    /// Reads the log of the goal in `dir` one line at a time, giving `f`
    /// each entry as it is read; the timeline returned holds only what was
    /// wrong with the log, so memory does not grow with the events.
    pub fn scan(dir: &Path, mut f: impl FnMut(Entry)) -> Result<Timeline, LogError> {
        let mut t = Timeline::default();
        // Ids are written in order: one at or below the highest seen
        // repeats an event (or was moved).
        let mut top: Option<u64> = None;
        super::log::each_line(&dir.join(EVENTS_FILE), |line, raw| {
            let Some(e) = super::log::parse_event(raw) else {
                t.unparseable.push(line);
                return;
            };
            match top {
                Some(top) if e.id <= top => {
                    t.duplicates.push((line, e.id));
                    return;
                }
                Some(top) if e.id != top + 1 => t.gaps.push((top, e.id)),
                _ => {}
            }
            top = Some(e.id);
            f(Entry {
                line,
                id: e.id,
                ts: e.ts,
                summary: summarize(&e),
                kind: e.kind,
                actor: e.actor,
            });
        })?;
        Ok(t)
    }

    /// Whether the log read cleanly.
    pub fn clean(&self) -> bool {
        self.unparseable.is_empty() && self.duplicates.is_empty() && self.gaps.is_empty()
    }

    /// The problems, one line each, for people.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for l in &self.unparseable {
            out.push(format!(
                "line {l} is not an event (torn by a crash, or damaged)"
            ));
        }
        for (l, id) in &self.duplicates {
            out.push(format!("line {l} repeats event #{id}"));
        }
        for (a, b) in &self.gaps {
            out.push(format!("events #{} to #{} are missing", a + 1, b - 1));
        }
        out
    }
}

/// One line about an event, for people.
pub fn summarize(e: &Event) -> String {
    match Body::of(e) {
        Body::GoalCreated(g) => format!("\"{}\"", g.0.normalized_goal),
        Body::GoalStatusChanged(c) => {
            format!("{} -> {} ({})", word(&c.from), word(&c.to), c.reason)
        }
        Body::BudgetAdded(b) => format!("limits now {}", compact(&b.limits)),
        Body::WaveStarted(w) => format!("{} ({} proposals)", w.run_key, w.proposals),
        Body::TaskProposed(t) => t.task_id,
        Body::TaskReclaimed(t) => t.task_id,
        Body::GateDecision(g) => {
            let d = &g.decision;
            let target = g
                .about
                .action
                .as_ref()
                .map(|a| format!(" `{}`", a.target))
                .unwrap_or_default();
            let mut line = format!(
                "{}{target}  {} {} {}",
                g.about.task_id,
                word(&d.stage),
                d.gate,
                if d.decision.is_accept() {
                    "accept"
                } else {
                    "reject"
                }
            );
            if let Decision::Reject(r) = &d.decision {
                line.push_str(&format!(" {}: {}", r.code, r.reason));
                if d.mode == Mode::Audit {
                    line.push_str(" (audit: not enforced)");
                }
            }
            line
        }
        Body::TaskAccepted(t) => format!(
            "{}  budget {}s, {}s committed after",
            t.task_id, t.budget_snapshot.task_budget_secs, t.budget_snapshot.committed_after_secs
        ),
        Body::TaskRejected(t) => {
            format!("{}  by {}: {} [{}]", t.task_id, t.gate, t.reason, t.code)
        }
        Body::WaveCompleted(w) => format!(
            "{}: {}",
            w.run_key,
            w.evidence.worker_summary.as_deref().unwrap_or("")
        ),
        Body::TaskStarted(t) => format!("{} attempt {} on {}", t.task_id, t.attempt, t.branch),
        Body::AgentAction(a) => {
            let what = format!("{} `{}`", word(&a.action.kind), a.action.target);
            if a.allowed {
                format!("{}  {what} allowed", a.task_id)
            } else {
                format!(
                    "{}  {what} REFUSED by {}: {}",
                    a.task_id,
                    a.gate.as_deref().unwrap_or(""),
                    a.reason.as_deref().unwrap_or("")
                )
            }
        }
        Body::AgentFinished(f) => format!(
            "{}  exit {} after {}s{}",
            f.task_id,
            f.exit_code.map_or("null".to_owned(), |c| c.to_string()),
            f.secs,
            if f.timed_out { " (timed out)" } else { "" }
        ),
        Body::TaskOutcome(o) => format!(
            "{}  {} files changed, {} checks",
            o.task_id,
            o.outcome.changed_files.len(),
            o.outcome.checks.len()
        ),
        Body::TaskMerged(m) => format!("{} into {}", m.task_id, m.into),
        Body::TaskCompleted(c) => format!(
            "{}  commit {}",
            c.task_id,
            c.commit
                .as_deref()
                .map_or("none", |c| &c[..c.len().min(10)])
        ),
        Body::TaskFailed(f) => format!(
            "{}  {} [{}]{}",
            f.task_id,
            f.reason,
            f.code,
            if f.will_retry { " — will retry" } else { "" }
        ),
        // The rest, and kinds from a newer omk, as they are.
        _ => crate::text::clip(&e.payload.to_string(), 100),
    }
}

//! The timeline of a goal, rebuilt from its event log alone.
//!
//! [`Timeline::read`] never fails on a damaged log: lines that do not parse,
//! events seen twice and jumps in the event ids are reported beside the
//! entries, so a tampered or crashed log still shows what it holds.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::log::{EVENTS_FILE, LogError};
use super::{Event, kinds};

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
    /// Reads the log of the goal in `dir`.
    pub fn read(dir: &Path) -> Result<Timeline, LogError> {
        let path = dir.join(EVENTS_FILE);
        let data = super::log::read_file(&path)?;
        let mut t = Timeline::default();
        let mut seen = HashSet::new();
        let mut last: Option<u64> = None;
        for (i, raw) in data.split(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            if raw.is_empty() {
                continue;
            }
            let Ok(e) = serde_json::from_slice::<Event>(raw) else {
                t.unparseable.push(line);
                continue;
            };
            if !seen.insert(e.id) {
                t.duplicates.push((line, e.id));
                continue;
            }
            if let Some(prev) = last
                && e.id != prev + 1
            {
                t.gaps.push((prev, e.id));
            }
            last = Some(e.id);
            t.entries.push(Entry {
                line,
                id: e.id,
                ts: e.ts,
                summary: summarize(&e),
                kind: e.kind,
                actor: e.actor,
            });
        }
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
    let p = &e.payload;
    let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
    match e.kind.as_str() {
        kinds::GOAL_CREATED => format!("\"{}\"", s("normalized_goal")),
        kinds::GOAL_STATUS_CHANGED => format!("{} -> {} ({})", s("from"), s("to"), s("reason")),
        kinds::BUDGET_ADDED => format!("limits now {}", p["limits"]),
        kinds::WAVE_STARTED => format!("{} ({} proposals)", s("run_key"), p["proposals"]),
        kinds::TASK_PROPOSED | kinds::TASK_RECLAIMED => s("task_id").to_owned(),
        kinds::GATE_DECISION => {
            let verdict = s("verdict");
            let target = p["action"]["target"]
                .as_str()
                .map(|t| format!(" `{t}`"))
                .unwrap_or_default();
            let mut line = format!(
                "{}{target}  {} {} {verdict}",
                s("task_id"),
                s("stage"),
                s("gate")
            );
            if verdict == "reject" {
                line.push_str(&format!(" {}: {}", s("code"), s("reason")));
                if s("mode") == "audit" {
                    line.push_str(" (audit: not enforced)");
                }
            }
            line
        }
        kinds::TASK_ACCEPTED => format!(
            "{}  budget {}s, {}s committed after",
            s("task_id"),
            p["budget_snapshot"]["task_budget_secs"],
            p["budget_snapshot"]["committed_after_secs"]
        ),
        kinds::TASK_REJECTED => format!(
            "{}  by {}: {} [{}]",
            s("task_id"),
            s("gate"),
            s("reason"),
            s("code")
        ),
        kinds::WAVE_COMPLETED => format!(
            "{}: {}",
            s("run_key"),
            p["evidence"]["worker_summary"].as_str().unwrap_or("")
        ),
        kinds::TASK_STARTED => format!(
            "{} attempt {} on {}",
            s("task_id"),
            p["attempt"],
            s("branch")
        ),
        kinds::AGENT_ACTION => {
            let allowed = p["allowed"] == Value::Bool(true);
            let a = &p["action"];
            let what = format!(
                "{} `{}`",
                a["kind"].as_str().unwrap_or(""),
                a["target"].as_str().unwrap_or("")
            );
            if allowed {
                format!("{}  {what} allowed", s("task_id"))
            } else {
                format!(
                    "{}  {what} REFUSED by {}: {}",
                    s("task_id"),
                    s("gate"),
                    s("reason")
                )
            }
        }
        kinds::AGENT_FINISHED => format!(
            "{}  exit {} after {}s{}",
            s("task_id"),
            p["exit_code"],
            p["secs"],
            if p["timed_out"] == Value::Bool(true) {
                " (timed out)"
            } else {
                ""
            }
        ),
        kinds::TASK_OUTCOME => {
            let o = &p["outcome"];
            let n = |k: &str| o[k].as_array().map_or(0, Vec::len);
            format!(
                "{}  {} files changed, {} checks",
                s("task_id"),
                n("changed_files"),
                n("checks")
            )
        }
        kinds::TASK_MERGED => format!("{} into {}", s("task_id"), s("into")),
        kinds::TASK_COMPLETED => format!(
            "{}  commit {}",
            s("task_id"),
            p["commit"]
                .as_str()
                .map_or("none", |c| &c[..c.len().min(10)])
        ),
        kinds::TASK_FAILED => format!(
            "{}  {} [{}]{}",
            s("task_id"),
            s("reason"),
            s("code"),
            if p["will_retry"] == Value::Bool(true) {
                " — will retry"
            } else {
                ""
            }
        ),
        _ => crate::text::clip(&p.to_string(), 100),
    }
}

//! The picture at the top of the report: the run over time as an inline
//! SVG (no scripts) — one lane per agent slot, each task's attempts as
//! bars, live refusals, failed checks and merges marked on them — and the
//! budget spent against its limits.
//!
//! Built one event at a time ([`Picture::event`]); what it keeps grows with
//! the attempts (each keeps at most [`MARKS_PER_BAR`] marks of a kind, and
//! counts the rest), never with the events.

use std::collections::HashMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::Event;
use super::events::Body;
use crate::goal::Goal;
use crate::text::esc;

/// Marks of one kind kept per attempt; more are counted, not drawn.
pub const MARKS_PER_BAR: usize = 64;

/// Colours the screenshot test looks for (see `tests/e2e/proof.rs`).
pub mod colour {
    pub const DONE: &str = "#2e7d32";
    pub const FAILED: &str = "#c62828";
    pub const OTHER: &str = "#9e9e9e";
    pub const REFUSAL: &str = "#d500f9";
    pub const CHECK_FAILED: &str = "#ffab00";
    pub const MERGE: &str = "#1565c0";
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Running,
    Done,
    Failed,
    /// Failed, to be tried again; or taken back after a crash.
    Retried,
}

/// One attempt of one task.
#[derive(Debug)]
struct Bar {
    task: String,
    attempt: u32,
    lane: usize,
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
    how: End,
    refusals: Vec<DateTime<Utc>>,
    refused: usize,
    failed_checks: Vec<DateTime<Utc>>,
    why: Option<String>,
}

/// The picture's view of the log.
#[derive(Debug, Default)]
pub struct Picture {
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    bars: Vec<Bar>,
    /// Each task's running attempt.
    open: HashMap<String, usize>,
    /// Each lane's running attempt.
    lanes: Vec<Option<usize>>,
    merges: Vec<(DateTime<Utc>, String)>,
}

impl Picture {
    /// Takes in one event.
    pub fn event(&mut self, e: &Event, body: &Body) {
        self.first.get_or_insert(e.ts);
        self.last = Some(self.last.map_or(e.ts, |l| l.max(e.ts)));
        match body {
            Body::TaskStarted(t) => {
                self.close(&t.task_id, e.ts, End::Retried, None);
                let lane = match self.lanes.iter().position(Option::is_none) {
                    Some(l) => l,
                    None => {
                        self.lanes.push(None);
                        self.lanes.len() - 1
                    }
                };
                self.lanes[lane] = Some(self.bars.len());
                self.open.insert(t.task_id.clone(), self.bars.len());
                self.bars.push(Bar {
                    task: t.task_id.clone(),
                    attempt: t.attempt,
                    lane,
                    start: e.ts,
                    end: None,
                    how: End::Running,
                    refusals: Vec::new(),
                    refused: 0,
                    failed_checks: Vec::new(),
                    why: None,
                });
            }
            Body::AgentAction(a) if !a.allowed => {
                if let Some(bar) = self.bar(&a.task_id) {
                    bar.refused += 1;
                    if bar.refusals.len() < MARKS_PER_BAR {
                        bar.refusals.push(e.ts);
                    }
                }
            }
            Body::TaskOutcome(o) if o.outcome.checks.iter().any(|c| !c.passed) => {
                if let Some(bar) = self.bar(&o.task_id)
                    && bar.failed_checks.len() < MARKS_PER_BAR
                {
                    bar.failed_checks.push(e.ts);
                }
            }
            Body::TaskCompleted(t) => self.close(&t.task_id, e.ts, End::Done, None),
            Body::TaskFailed(t) => {
                let how = if t.will_retry {
                    End::Retried
                } else {
                    End::Failed
                };
                self.close(
                    &t.task_id,
                    e.ts,
                    how,
                    Some(format!("{}: {}", t.code, t.reason)),
                );
            }
            Body::TaskReclaimed(t) => {
                self.close(&t.task_id, e.ts, End::Retried, Some(t.reason.clone()))
            }
            Body::TaskMerged(m) => self.merges.push((e.ts, m.task_id.clone())),
            _ => {}
        }
    }

    fn bar(&mut self, task: &str) -> Option<&mut Bar> {
        let i = *self.open.get(task)?;
        self.bars.get_mut(i)
    }

    fn close(&mut self, task: &str, ts: DateTime<Utc>, how: End, why: Option<String>) {
        let Some(i) = self.open.remove(task) else {
            return;
        };
        let bar = &mut self.bars[i];
        bar.end = Some(ts);
        bar.how = how;
        bar.why = why;
        if let Some(slot) = self.lanes.get_mut(bar.lane) {
            *slot = None;
        }
    }

    /// The lanes drawn: the most attempts that ran at once.
    pub fn lanes(&self) -> usize {
        self.bars.iter().map(|b| b.lane + 1).max().unwrap_or(0)
    }

    /// The SVG of the run and the budget's bars, as HTML.
    pub fn html(&self, goal: &Goal) -> String {
        let mut h = String::new();
        h.push_str(&self.run_svg());
        h.push_str(&budget(goal));
        h
    }

    fn run_svg(&self) -> String {
        let (Some(first), Some(last)) = (self.first, self.last) else {
            return String::new();
        };
        if self.bars.is_empty() {
            return "<p class=\"muted\">no task ran</p>".into();
        }
        const LEFT: f64 = 70.0;
        const WIDTH: f64 = 1000.0;
        const LANE: f64 = 28.0;
        const TOP: f64 = 8.0;
        let span = (last - first).num_milliseconds().max(1) as f64;
        let plot = WIDTH - LEFT - 10.0;
        let x =
            |t: DateTime<Utc>| LEFT + (t - first).num_milliseconds().max(0) as f64 / span * plot;
        let lanes = self.lanes();
        let height = TOP + lanes as f64 * LANE + 30.0;
        let mut s = String::new();
        let _ = write!(
            s,
            "<svg id=\"run\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"the run over time\" style=\"font:11px system-ui,sans-serif\">"
        );
        for lane in 0..lanes {
            let y = TOP + lane as f64 * LANE;
            let _ = write!(
                s,
                "<text x=\"4\" y=\"{:.1}\" fill=\"#444\">agent {}</text><line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>",
                y + 16.0,
                lane + 1,
                WIDTH - 10.0,
                y + LANE - 2.0,
                y + LANE - 2.0
            );
        }
        for b in &self.bars {
            let y = TOP + b.lane as f64 * LANE + 4.0;
            let x0 = x(b.start);
            let x1 = x(b.end.unwrap_or(last)).max(x0 + 3.0);
            let (fill, word) = match b.how {
                End::Done => (colour::DONE, "done"),
                End::Failed => (colour::FAILED, "failed"),
                End::Retried => (colour::OTHER, "tried again"),
                End::Running => (colour::OTHER, "running when the log ends"),
            };
            let mut title = format!(
                "{} attempt {}: {word}, {}s",
                b.task,
                b.attempt,
                (b.end.unwrap_or(last) - b.start).num_seconds()
            );
            if b.refused > 0 {
                let _ = write!(title, "; {} action(s) refused", b.refused);
            }
            if let Some(why) = &b.why {
                let _ = write!(title, "; {why}");
            }
            let _ = write!(
                s,
                "<g class=\"attempt\"><title>{}</title><rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"16\" rx=\"2\" fill=\"{fill}\"/>",
                esc(&title),
                x1 - x0
            );
            for (marks, class, width, fill) in [
                (&b.refusals, "refusal", 4.0, colour::REFUSAL),
                (&b.failed_checks, "check-failed", 6.0, colour::CHECK_FAILED),
            ] {
                for t in marks {
                    let _ = write!(
                        s,
                        "<rect class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{width}\" height=\"22\" fill=\"{fill}\"/>",
                        x(*t) - width / 2.0,
                        y - 3.0
                    );
                }
            }
            s.push_str("</g>");
        }
        let axis = TOP + lanes as f64 * LANE + 14.0;
        for (t, task) in &self.merges {
            let cx = x(*t);
            let _ = write!(
                s,
                "<path class=\"merge\" d=\"M{:.1} {:.1}l6 7l-6 7l-6-7z\" fill=\"{}\"><title>merged {}</title></path>",
                cx,
                axis - 10.0,
                colour::MERGE,
                esc(task)
            );
        }
        for i in 0..=4 {
            let frac = f64::from(i) / 4.0;
            let at = span * frac / 1000.0;
            // Short runs in tenths of a second; longer ones as people write
            // durations.
            let label = if span < 60_000.0 {
                format!("{at:.1}s")
            } else {
                duration(at.round() as u64)
            };
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#666\" text-anchor=\"middle\">+{}</text>",
                LEFT + frac * plot,
                axis + 12.0,
                label
            );
        }
        s.push_str("</svg>");
        s
    }
}

/// `secs` as people write it: `45s`, `3m05s`, `2h10m`.
fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

/// One bar per budget: spent against its limit.
fn budget(goal: &Goal) -> String {
    let (l, s) = (&goal.limits, &goal.spent);
    let rows = [
        (
            "time",
            s.time_secs,
            l.time_secs,
            duration as fn(u64) -> String,
        ),
        ("tokens", s.tokens, l.tokens, |n| n.to_string()),
        ("USD", s.usd_micros, l.usd_micros, |m| {
            format!("{:.2}", m as f64 / 1e6)
        }),
    ];
    let mut h = String::from("<table class=\"budget\">");
    for (name, spent, limit, show) in rows {
        let (bar, of) = match limit {
            Some(0) | None => (String::new(), "no limit".to_owned()),
            Some(limit) => {
                let pct = (spent as f64 / limit as f64 * 100.0).min(100.0);
                let fill = if spent > limit { "#c62828" } else { "#1565c0" };
                (
                    format!(
                        "<svg width=\"300\" height=\"12\"><rect width=\"300\" height=\"12\" fill=\"#eee\"/><rect width=\"{:.1}\" height=\"12\" fill=\"{fill}\"/></svg>",
                        pct * 3.0
                    ),
                    format!("of {} ({pct:.0}%)", show(limit)),
                )
            }
        };
        let _ = write!(
            h,
            "<tr><th>{name}</th><td>{bar}</td><td>{} {of}</td></tr>",
            show(spent)
        );
    }
    h.push_str("</table>");
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(super::duration(45), "45s");
        assert_eq!(super::duration(185), "3m05s");
        assert_eq!(super::duration(7800), "2h10m");
    }
}

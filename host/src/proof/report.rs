//! `omk goal report --html`: one self-contained page — the goal, its proof,
//! a picture of the run ([`super::picture`]), every task with its
//! decisions and reasons, and the timeline — readable in any browser
//! without omk and without the network (no scripts, no external assets).
//!
//! The log is read once, beside the proof ([`page`]), and what a person
//! cannot read anyway is folded: like rejections and refusals are grouped
//! by gate and code, each task's decisions are counted behind `<details>`,
//! and the timeline shows the two ends of a long log and counts the rest.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::Event;
use super::anchors::Trust;
use super::document::Proof;
use super::events::{self, Body};
use super::log::LogError;
use super::picture::{Picture, colour};
use crate::goal::Goal;
use crate::graph::TaskGraph;
use crate::text::esc;
use omk_gate_sdk::Decision;

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1d1d1f}\
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;width:100%;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#f4f4f6}code{font:13px ui-monospace,monospace}.ok{color:#0a7d32;font-weight:600}.no{color:#b3261e;font-weight:600}\
.muted{color:#666}.badge{display:inline-block;padding:.1rem .5rem;border-radius:.6rem;background:#eee}";

/// Timeline entries shown from the start and from the end of the log; the
/// ones between are counted by kind (`omk goal replay` prints them all).
const TIMELINE_ENDS: usize = 200;
/// Examples shown of each group of like rejections or refusals.
const EXAMPLES: usize = 5;
/// Problems of the log's ids named; more are counted.
const PROBLEMS: usize = 100;

/// Rejections or refusals alike in gate and code: how many, and a few.
#[derive(Debug, Default)]
struct Group {
    count: usize,
    examples: Vec<String>,
}

/// Groups by (gate, code).
type Groups = BTreeMap<(String, String), Group>;

fn add(groups: &mut Groups, gate: &str, code: &str, example: impl FnOnce() -> String) {
    let g = groups
        .entry((gate.to_owned(), code.to_owned()))
        .or_default();
    g.count += 1;
    if g.examples.len() < EXAMPLES {
        g.examples.push(example());
    }
}

/// One task's decisions: (stage, gate, verdict) -> (how many, the first
/// reason).
type Decided = BTreeMap<(String, String, String), (usize, String)>;

/// The calls of one MCP tool (or resource read): judged, and answered.
#[derive(Debug, Default)]
struct ToolCalls {
    allowed: usize,
    refused: usize,
    answered: usize,
    errors: usize,
    answer_bytes: usize,
}

/// One line of the timeline.
#[derive(Debug)]
struct Line {
    id: u64,
    ts: DateTime<Utc>,
    kind: String,
    actor: String,
    summary: String,
}

impl Line {
    fn of(e: &Event) -> Line {
        Line {
            id: e.id,
            ts: e.ts,
            kind: e.kind.clone(),
            actor: e.actor.clone(),
            summary: super::timeline::summarize(e),
        }
    }
}

/// The report's view of the log, built one event at a time beside the
/// proof's: it keeps groups, per-task counts and the two ends of the
/// timeline, so its memory grows with the tasks, not the events.
#[derive(Debug, Default)]
pub struct Report {
    picture: Picture,
    rejected: Groups,
    refused: Groups,
    decisions: HashMap<String, Decided>,
    /// By (server, tool).
    tools: BTreeMap<(String, String), ToolCalls>,
    head: Vec<Line>,
    tail: VecDeque<Event>,
    /// Events between the head and the tail, by kind.
    between: BTreeMap<String, usize>,
    events: usize,
    last_id: Option<u64>,
    problems: Vec<String>,
    more_problems: usize,
}

impl Report {
    /// Takes in one event.
    pub fn event(&mut self, e: Event, body: &Body) {
        self.picture.event(&e, body);
        self.events += 1;
        match body {
            Body::AgentAction(a) if a.action.tool.is_some() => {
                if let Some(t) = &a.action.tool {
                    let calls = self
                        .tools
                        .entry((t.server.clone(), t.tool.clone()))
                        .or_default();
                    if a.allowed {
                        calls.allowed += 1;
                    } else {
                        calls.refused += 1;
                    }
                }
            }
            Body::AgentNote(n) => {
                if let Some(r) = n.detail_as::<events::ToolRefused>() {
                    let calls = self.tools.entry((r.server, r.tool)).or_default();
                    calls.allowed = calls.allowed.saturating_sub(1);
                    calls.refused += 1;
                }
                if let Some(a) = n.detail_as::<events::ToolAnswered>() {
                    let calls = self.tools.entry((a.server, a.tool)).or_default();
                    calls.answered += 1;
                    calls.errors += usize::from(a.is_error);
                    calls.answer_bytes += a.answer_bytes;
                }
            }
            _ => {}
        }
        match body {
            Body::TaskRejected(t) => add(&mut self.rejected, &t.gate, &t.code, || {
                format!("{}: {}", t.task_id, t.reason)
            }),
            Body::AgentAction(a) if !a.allowed => add(
                &mut self.refused,
                a.gate.as_deref().unwrap_or("-"),
                a.code.as_deref().unwrap_or("-"),
                || {
                    format!(
                        "{}: {} {} — {}",
                        a.task_id,
                        events::word(&a.action.kind),
                        a.action.target,
                        a.reason.as_deref().unwrap_or_default()
                    )
                },
            ),
            Body::GateDecision(g) if g.decision.called => {
                let d = &g.decision;
                let (verdict, reason) = match &d.decision {
                    Decision::Accept => ("accept".to_owned(), String::new()),
                    Decision::Reject(r) => (r.code.clone(), r.reason.clone()),
                    Decision::Ask(r) => (format!("ask: {}", r.code), r.reason.clone()),
                };
                let slot = self
                    .decisions
                    .entry(g.about.task_id.clone())
                    .or_default()
                    .entry((events::word(&d.stage), d.gate.clone(), verdict))
                    .or_insert((0, reason));
                slot.0 += 1;
            }
            _ => {}
        }
        // The ids run 1, 2, 3…: anything else is a problem of the log.
        match self.last_id {
            Some(last) if e.id <= last => {
                self.problem(format!("event #{} is repeated or out of order", e.id))
            }
            Some(last) if e.id > last + 1 => {
                self.problem(format!("events #{} to #{} are missing", last + 1, e.id - 1))
            }
            _ => {}
        }
        self.last_id = Some(self.last_id.map_or(e.id, |l| l.max(e.id)));
        // The tail is summarised when the page is written: most events
        // pass through it and are only counted.
        if self.head.len() < TIMELINE_ENDS {
            self.head.push(Line::of(&e));
            return;
        }
        if self.tail.len() == TIMELINE_ENDS
            && let Some(old) = self.tail.pop_front()
        {
            *self.between.entry(old.kind).or_default() += 1;
        }
        self.tail.push_back(e);
    }

    fn problem(&mut self, p: String) {
        if self.problems.len() < PROBLEMS {
            self.problems.push(p);
        } else {
            self.more_problems += 1;
        }
    }

    /// Renders the report of `goal` with its `proof`.
    pub fn html(&self, goal: &Goal, proof: &Proof) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>omk report: {}</title><style>{STYLE}</style></head><body>",
            esc(&goal.normalized_goal)
        );
        let (cls, word) = if proof.readiness.ready {
            ("ok", "ready")
        } else {
            ("no", "not ready")
        };
        let _ = write!(
            h,
            "<h1>{}</h1><p><code>{}</code> · status <span class=\"badge\">{}</span> · <span class=\"{cls}\">{word}</span></p><ul>",
            esc(&goal.normalized_goal),
            esc(&goal.id),
            esc(goal.status.as_str())
        );
        for w in &proof.readiness.why {
            let _ = write!(h, "<li>{}</li>", esc(w));
        }
        let t = &proof.tasks;
        let _ = write!(
            h,
            "</ul><p>{} tasks: {} done, {} failed, {} pending, {} cancelled · {} proposals rejected · event log: {} events, chain {}, head <code>{}</code></p>",
            t.total,
            t.done,
            t.failed,
            t.pending,
            t.cancelled,
            t.rejected_proposals,
            proof.log.events,
            if proof.log.chain_intact {
                "intact"
            } else {
                "<span class=\"no\">BROKEN</span>"
            },
            esc(&proof.log.head_hash)
        );

        h.push_str("<h2 id=\"run\">The run</h2>");
        h.push_str(&self.picture.html(goal));
        h.push_str(&format!(
            "<p class=\"muted\">bars: each attempt of a task on the agent slot it ran in (<span style=\"color:{}\">done</span>, <span style=\"color:{}\">failed</span>, <span style=\"color:{}\">tried again or unfinished</span>); marks: <span style=\"color:{}\">an action refused</span>, <span style=\"color:{}\">a check failed</span>, <span style=\"color:{}\">a merge</span></p>",
            colour::DONE,
            colour::FAILED,
            colour::OTHER,
            colour::REFUSAL,
            colour::CHECK_FAILED,
            colour::MERGE
        ));

        h.push_str("<h2 id=\"rejected\">Rejected proposals</h2>");
        groups(&mut h, &self.rejected, "proposals");
        h.push_str("<h2 id=\"refused\">Actions refused while agents worked</h2>");
        groups(&mut h, &self.refused, "actions");
        if !self.tools.is_empty() {
            h.push_str("<h2 id=\"tools\">Tool calls</h2><table><tr><th>server</th><th>tool</th><th>allowed</th><th>refused</th><th>answered</th><th>errors</th><th>answer bytes</th></tr>");
            for ((server, tool), c) in &self.tools {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(server),
                    esc(tool),
                    c.allowed,
                    c.refused,
                    c.answered,
                    c.errors,
                    c.answer_bytes
                );
            }
            h.push_str("</table><p class=\"muted\">MCP calls through a client's hook or `omk mcp run`; answered: through `omk mcp run`, which sees the answers</p>");
        }

        h.push_str("<h2 id=\"tasks\">Tasks</h2><table><tr><th>task</th><th>status</th><th>attempts</th><th>commit</th><th>merged</th><th>changed files</th><th>sandbox</th><th>decisions</th></tr>");
        for task in &proof.task_work {
            let mut decisions = String::new();
            if let Some(decided) = self.decisions.get(task.id.as_str()) {
                let (n, rejected) = decided.iter().fold((0, 0), |(n, r), ((_, _, v), (c, _))| {
                    (n + c, r + if v == "accept" { 0 } else { *c })
                });
                let _ = write!(
                    decisions,
                    "<details><summary>{n} decision(s), {rejected} rejecting</summary>"
                );
                for ((stage, gate, verdict), (count, reason)) in decided {
                    let (cls, why) = if verdict == "accept" {
                        ("ok", String::new())
                    } else {
                        ("no", format!(" {}", esc(reason)))
                    };
                    let times = if *count > 1 {
                        format!(" ×{count}")
                    } else {
                        String::new()
                    };
                    let _ = write!(
                        decisions,
                        "{} {}: <span class=\"{cls}\">{}</span>{times}{why}<br>",
                        esc(stage),
                        esc(gate),
                        esc(verdict)
                    );
                }
                decisions.push_str("</details>");
            }
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{decisions}</td></tr>",
                esc(&task.id),
                esc(task.status.as_str()),
                task.failure
                    .as_deref()
                    .map(|f| format!("<br><span class=\"muted\">{}</span>", esc(f)))
                    .unwrap_or_default(),
                task.attempts,
                esc(task
                    .commit
                    .as_deref()
                    .map_or("-", |c| &c[..c.len().min(10)])),
                if task.merged { "yes" } else { "no" },
                esc(&task.changed_files.join(", ")),
                esc(&task.sandbox_line())
            );
        }
        h.push_str("</table>");

        h.push_str("<h2 id=\"gates\">Gates</h2><table><tr><th>gate</th><th>version</th><th>sha256</th><th>bundle</th><th>decisions</th></tr>");
        for g in &proof.gates {
            let codes: Vec<String> = g
                .by_code
                .iter()
                .map(|(c, n)| format!("{}: {n}", esc(c)))
                .collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{} ({})</td></tr>",
                esc(&g.name),
                esc(&g.version),
                esc(&g.sha256),
                esc(&g.bundle),
                g.decisions,
                codes.join(", ")
            );
        }
        h.push_str("</table>");
        if !proof.known_gaps.is_empty() {
            h.push_str("<h2 id=\"gaps\">Known gaps</h2><ul>");
            for g in &proof.known_gaps {
                let _ = write!(h, "<li>{}</li>", esc(g));
            }
            h.push_str("</ul>");
        }
        self.timeline(&mut h, goal, proof);
        h.push_str("<p class=\"muted\">generated by omk from the goal's state and hash-chained event log</p></body></html>\n");
        h
    }

    fn timeline(&self, h: &mut String, goal: &Goal, proof: &Proof) {
        h.push_str("<h2 id=\"timeline\">Timeline</h2>");
        if let Some(line) = proof.log.first_bad_line {
            let _ = write!(h, "<p class=\"no\">the log breaks at line {line}</p>");
        }
        for line in &proof.log.torn_lines {
            let _ = write!(
                h,
                "<p class=\"no\">line {line} is not an event (torn by a crash, or damaged)</p>"
            );
        }
        for p in &self.problems {
            let _ = write!(h, "<p class=\"no\">{}</p>", esc(p));
        }
        if self.more_problems > 0 {
            let _ = write!(h, "<p class=\"no\">and {} more</p>", self.more_problems);
        }
        h.push_str(
            "<table><tr><th>#</th><th>time</th><th>kind</th><th>actor</th><th>what</th></tr>",
        );
        let row = |h: &mut String, e: &Line| {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e.id,
                e.ts.format("%H:%M:%S%.3f"),
                esc(&e.kind),
                esc(&e.actor),
                esc(&e.summary)
            );
        };
        for e in &self.head {
            row(h, e);
        }
        let skipped: usize = self.between.values().sum();
        if skipped > 0 {
            let kinds: Vec<String> = self
                .between
                .iter()
                .map(|(k, n)| format!("{n} {}", esc(k)))
                .collect();
            let _ = write!(
                h,
                "<tr><td colspan=\"5\" class=\"muted\">… {skipped} events not shown: {} (<code>omk goal replay {}</code> prints every one)</td></tr>",
                kinds.join(", "),
                esc(&goal.id)
            );
        }
        for e in &self.tail {
            row(h, &Line::of(e));
        }
        h.push_str("</table>");
    }
}

/// Rejections or refusals, grouped by gate and code.
fn groups(h: &mut String, groups: &Groups, what: &str) {
    if groups.is_empty() {
        h.push_str("<p class=\"muted\">none</p>");
        return;
    }
    let total: usize = groups.values().map(|g| g.count).sum();
    let _ = write!(
        h,
        "<p>{total} {what}, in {} group(s) by gate and code</p><table><tr><th>gate</th><th>code</th><th>how many</th><th>for example</th></tr>",
        groups.len()
    );
    for ((gate, code), g) in groups {
        let mut examples: Vec<String> = g.examples.iter().map(|e| esc(e)).collect();
        if g.count > g.examples.len() {
            examples.push(format!("and {} more", g.count - g.examples.len()));
        }
        let _ = write!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(gate),
            esc(code),
            g.count,
            examples.join("<br>")
        );
    }
    h.push_str("</table>");
}

/// Reads the goal in `dir` once and renders its report (with its proof,
/// which it returns too).
pub fn page(
    dir: &Path,
    goal: &Goal,
    graph: &TaskGraph,
    trust: &Trust,
) -> Result<(Proof, String), LogError> {
    let mut report = Report::default();
    let proof = Proof::scan(dir, goal, graph, trust, |e, body| report.event(e, body))?;
    let html = report.html(goal, &proof);
    Ok((proof, html))
}

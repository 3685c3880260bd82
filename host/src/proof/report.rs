//! `omk goal report --html`: one self-contained page — the goal, its proof,
//! every task with its decisions and reasons, and the timeline — readable
//! in any browser without omk and without the network (no scripts, no
//! external assets).

use std::collections::HashMap;
use std::fmt::Write;

use super::Event;
use super::document::Proof;
use super::events::{self, AgentAction, Body, TaskRejected};
use super::timeline::Timeline;
use crate::goal::Goal;
use omk_gate_sdk::Decision;

/// HTML-escapes `s`.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1d1d1f}\
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;width:100%;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#f4f4f6}code{font:13px ui-monospace,monospace}.ok{color:#0a7d32;font-weight:600}.no{color:#b3261e;font-weight:600}\
.muted{color:#666}.badge{display:inline-block;padding:.1rem .5rem;border-radius:.6rem;background:#eee}";

/// Renders the report.
pub fn html(goal: &Goal, proof: &Proof, events: &[Event], timeline: &Timeline) -> String {
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

    let bodies: Vec<Body> = events.iter().map(Body::of).collect();
    h.push_str("<h2 id=\"rejected\">Rejected proposals</h2>");
    let rejected: Vec<&TaskRejected> = bodies
        .iter()
        .filter_map(|b| match b {
            Body::TaskRejected(t) => Some(&**t),
            _ => None,
        })
        .collect();
    if rejected.is_empty() {
        h.push_str("<p class=\"muted\">none</p>");
    } else {
        h.push_str("<table><tr><th>task</th><th>gate</th><th>code</th><th>reason</th></tr>");
        for t in rejected {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(&t.task_id),
                esc(&t.gate),
                esc(&t.code),
                esc(&t.reason)
            );
        }
        h.push_str("</table>");
    }

    h.push_str("<h2 id=\"refused\">Actions refused while agents worked</h2>");
    let refused: Vec<&AgentAction> = bodies
        .iter()
        .filter_map(|b| match b {
            Body::AgentAction(a) if !a.allowed => Some(&**a),
            _ => None,
        })
        .collect();
    if refused.is_empty() {
        h.push_str("<p class=\"muted\">none</p>");
    } else {
        h.push_str("<table><tr><th>task</th><th>action</th><th>gate</th><th>reason</th></tr>");
        for a in refused {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{} <code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&a.task_id),
                esc(&events::word(&a.action.kind)),
                esc(&a.action.target),
                esc(a.gate.as_deref().unwrap_or_default()),
                esc(a.reason.as_deref().unwrap_or_default())
            );
        }
        h.push_str("</table>");
    }

    h.push_str("<h2 id=\"tasks\">Tasks</h2><table><tr><th>task</th><th>status</th><th>attempts</th><th>commit</th><th>merged</th><th>changed files</th><th>sandbox</th><th>decisions</th></tr>");
    // Each task's decisions, in one pass over the log (not one per task).
    let mut by_task: HashMap<&str, Vec<&crate::gates::GateDecision>> = HashMap::new();
    for b in &bodies {
        if let Body::GateDecision(g) = b
            && g.decision.called
        {
            by_task
                .entry(g.about.task_id.as_str())
                .or_default()
                .push(&g.decision);
        }
    }
    for task in &proof.task_work {
        let mut decisions = String::new();
        let decided = by_task.remove(task.id.as_str()).unwrap_or_default();
        for d in decided {
            let (cls, verdict, why) = match &d.decision {
                Decision::Accept => ("ok", "accept", String::new()),
                Decision::Reject(r) => (
                    "no",
                    "reject",
                    format!(" <code>{}</code> {}", esc(&r.code), esc(&r.reason)),
                ),
            };
            let _ = write!(
                decisions,
                "{} {}: <span class=\"{cls}\">{verdict}</span>{why}<br>",
                esc(&events::word(&d.stage)),
                esc(&d.gate),
            );
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

    h.push_str("<h2 id=\"timeline\">Timeline</h2>");
    for p in timeline.problems() {
        let _ = write!(h, "<p class=\"no\">{}</p>", esc(&p));
    }
    h.push_str("<table><tr><th>#</th><th>time</th><th>kind</th><th>actor</th><th>what</th></tr>");
    for e in &timeline.entries {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.id,
            e.ts.format("%H:%M:%S%.3f"),
            esc(&e.kind),
            esc(&e.actor),
            esc(&e.summary)
        );
    }
    h.push_str("</table><p class=\"muted\">generated by omk from the goal's state and hash-chained event log</p></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes() {
        assert_eq!(
            super::esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}

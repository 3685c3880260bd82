//! `omk goal report --html`: one self-contained page — the goal, its proof,
//! every task with its decisions and reasons, and the timeline — readable
//! in any browser without omk and without the network (no scripts, no
//! external assets).

use std::fmt::Write;

use serde_json::Value;

use super::document::Proof;
use super::timeline::Timeline;
use super::{Event, kinds};
use crate::goal::Goal;

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

    let s = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    h.push_str("<h2 id=\"rejected\">Rejected proposals</h2>");
    let rejected: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == kinds::TASK_REJECTED)
        .collect();
    if rejected.is_empty() {
        h.push_str("<p class=\"muted\">none</p>");
    } else {
        h.push_str("<table><tr><th>task</th><th>gate</th><th>code</th><th>reason</th></tr>");
        for e in rejected {
            let p = &e.payload;
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(&s(p, "task_id")),
                esc(&s(p, "gate")),
                esc(&s(p, "code")),
                esc(&s(p, "reason"))
            );
        }
        h.push_str("</table>");
    }

    h.push_str("<h2 id=\"refused\">Actions refused while agents worked</h2>");
    let refused: Vec<&Event> = events
        .iter()
        .filter(|e| {
            e.kind == kinds::AGENT_ACTION && e.payload.get("allowed") == Some(&Value::Bool(false))
        })
        .collect();
    if refused.is_empty() {
        h.push_str("<p class=\"muted\">none</p>");
    } else {
        h.push_str("<table><tr><th>task</th><th>action</th><th>gate</th><th>reason</th></tr>");
        for e in refused {
            let p = &e.payload;
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{} <code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&s(p, "task_id")),
                esc(&s(&p["action"], "kind")),
                esc(&s(&p["action"], "target")),
                esc(&s(p, "gate")),
                esc(&s(p, "reason"))
            );
        }
        h.push_str("</table>");
    }

    h.push_str("<h2 id=\"tasks\">Tasks</h2><table><tr><th>task</th><th>status</th><th>attempts</th><th>commit</th><th>merged</th><th>changed files</th><th>sandbox</th><th>decisions</th></tr>");
    for task in &proof.task_work {
        let mut decisions = String::new();
        let decided = |e: &&Event| {
            e.kind == kinds::GATE_DECISION
                && s(&e.payload, "task_id") == task.id
                && e.payload.get("called") != Some(&Value::Bool(false))
        };
        for e in events.iter().filter(decided) {
            let p = &e.payload;
            let verdict = s(p, "verdict");
            let cls = if verdict == "accept" { "ok" } else { "no" };
            let _ = write!(
                decisions,
                "{} {}: <span class=\"{cls}\">{}</span>{}<br>",
                esc(&s(p, "stage")),
                esc(&s(p, "gate")),
                esc(&verdict),
                if verdict == "reject" {
                    format!(
                        " <code>{}</code> {}",
                        esc(&s(p, "code")),
                        esc(&s(p, "reason"))
                    )
                } else {
                    String::new()
                }
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

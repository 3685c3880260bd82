//! The pages `omk serve` renders: every goal and session, and one goal's
//! report with what waits for a person. HTML that works without scripts;
//! [`LIVE`] only reloads the part that changes.

use std::fmt::Write;

use crate::approvals::Waiting;
use crate::goal::{Goal, GoalStore};
use crate::text::esc;

/// Reloads `#omk-live` from the server when `source` says something
/// changed: at most once a second, keeping what a person is typing.
const LIVE: &str = r#"<script>
(() => {
  const live = () => document.getElementById('omk-live');
  let due = false;
  const reload = async () => {
    due = false;
    if (document.activeElement && document.activeElement.name === 'note' && document.activeElement.value) return;
    const r = await fetch(location.pathname, {credentials: 'same-origin'});
    if (!r.ok) return;
    const next = new DOMParser().parseFromString(await r.text(), 'text/html').getElementById('omk-live');
    if (next) live().replaceWith(next);
  };
  const es = new EventSource(SOURCE);
  const changed = () => { if (!due) { due = true; setTimeout(reload, 1000); } };
  es.addEventListener('changed', changed);
  es.onmessage = changed;
})();
</script>"#;

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}\
code{font:13px ui-monospace,monospace}.muted{color:#777}\
form.approval{border:2px solid #ffab00;border-radius:6px;padding:.6em .9em;margin:.6em 0;background:#fff8e1}\
form.approval input[name=note]{width:24em}button{font:inherit;padding:.25em 1.1em;margin-left:.4em;border-radius:4px;border:1px solid #888;cursor:pointer}\
button.approve{background:#2e7d32;color:#fff;border-color:#2e7d32}button.deny{background:#c62828;color:#fff;border-color:#c62828}";

fn script(source: &str) -> String {
    LIVE.replace("SOURCE", &serde_json::Value::from(source).to_string())
}

/// The forms answering each of `waiting`.
fn approvals(waiting: &[Waiting], csrf: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<section id=\"approvals\"><h2>Waiting for a person ({})</h2>",
        waiting.len()
    );
    if waiting.is_empty() {
        h.push_str("<p class=\"muted\">nothing waits</p>");
    }
    for w in waiting {
        let whose = match &w.session_of {
            Some(client) => format!("{client} session"),
            None => format!("task <code>{}</code>", esc(&w.task)),
        };
        let what = match &w.tool {
            Some(t) => format!(
                "calls <code>{} {}</code> <code>{}</code>",
                esc(&t.server),
                esc(&t.tool),
                esc(&crate::text::clip(&t.arguments, 300))
            ),
            None => format!("{} <code>{}</code>", esc(&w.kind), esc(&w.target)),
        };
        let until = match (w.waiting_now, w.expires_at) {
            (true, Some(t)) => format!("waits until {}", t.format("%H:%M:%S UTC")),
            _ => "used when the agent asks again".into(),
        };
        let _ = write!(
            h,
            "<form class=\"approval\" method=\"post\" action=\"/approve\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"id\" value=\"{id}\">\
             <input type=\"hidden\" name=\"goal\" value=\"{goal}\">\
             <p><code>{id}</code> · <a href=\"/goal/{goal}\">{goal}</a> · {whose} · {until}</p>\
             <p>{what}</p><p>gate <code>{gate}</code> ({code}): {reason}</p>\
             <p><input name=\"note\" placeholder=\"a note, kept in the log\">\
             <button class=\"approve\" name=\"answer\" value=\"approve\">Approve</button>\
             <button class=\"deny\" name=\"answer\" value=\"deny\">Deny</button></p></form>",
            csrf = esc(csrf),
            id = esc(&w.id),
            goal = esc(&w.goal),
            gate = esc(&w.gate),
            code = esc(&w.code),
            reason = esc(&w.reason),
        );
    }
    h.push_str("</section>");
    h
}

/// One goal's budget against its limits, in a line.
fn budget(g: &Goal) -> String {
    let of = |spent: String, limit: Option<String>| match limit {
        Some(l) => format!("{spent} of {l}"),
        None => spent,
    };
    let usd = |m: u64| format!("${}.{:02}", m / 1_000_000, (m % 1_000_000) / 10_000);
    format!(
        "{} s · {} tokens · {}",
        of(
            g.spent.time_secs.to_string(),
            g.limits.time_secs.map(|t| t.to_string())
        ),
        of(
            g.spent.tokens.to_string(),
            g.limits.tokens.map(|t| t.to_string())
        ),
        of(usd(g.spent.usd_micros), g.limits.usd_micros.map(usd)),
    )
}

/// `/`: every goal and guarded session, newest first, and what waits.
pub fn index(store: &GoalStore, csrf: &str) -> Result<String, String> {
    let waiting = crate::approvals::waiting(store, None).map_err(|e| e.to_string())?;
    let mut ids = store.ids().map_err(|e| e.to_string())?;
    ids.reverse();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>omk</title>\
         <noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript><style>{STYLE}</style></head><body>\
         <div id=\"omk-live\"><h1>omk · goals and guarded sessions</h1><p class=\"muted\">{}</p>",
        esc(&store.root().display().to_string())
    );
    h.push_str(&approvals(&waiting, csrf));
    h.push_str("<h2>Goals</h2><table><tr><th>goal</th><th>status</th><th>budget</th><th>tasks</th><th>waits</th><th>updated</th></tr>");
    for id in &ids {
        let Ok(g) = store.load(id) else { continue };
        let graph = crate::graph::TaskGraph::load(&store.dir(id), id).ok();
        let tasks = graph.map_or_else(String::new, |gr| {
            let done = gr
                .tasks()
                .iter()
                .filter(|t| t.status == crate::graph::TaskStatus::Done)
                .count();
            format!("{done} of {} done", gr.tasks().len())
        });
        let what = match &g.guarded {
            Some(s) => format!("{} session (by hand)", s.client),
            None => g.normalized_goal.clone(),
        };
        let waits = waiting.iter().filter(|w| &w.goal == id).count();
        let _ = write!(
            h,
            "<tr><td><a href=\"/goal/{id}\">{what}</a><br><code class=\"muted\">{id}</code></td><td>{}</td><td>{}</td><td>{tasks}</td><td>{}</td><td>{}</td></tr>",
            esc(g.status.as_str()),
            esc(&budget(&g)),
            if waits > 0 {
                format!("<b>{waits}</b>")
            } else {
                "-".into()
            },
            g.updated_at.format("%Y-%m-%d %H:%M:%S"),
            id = esc(id),
            what = esc(&what),
        );
    }
    if ids.is_empty() {
        h.push_str("<tr><td colspan=\"6\" class=\"muted\">no goals yet</td></tr>");
    }
    h.push_str("</table></div>");
    h.push_str(&script("/events"));
    h.push_str("</body></html>");
    Ok(h)
}

/// `/goal/ID`: the goal's report (status, budgets, the picture, each
/// task's decisions, the timeline) with what waits in it, live.
pub fn goal(store: &GoalStore, id: &str, csrf: &str) -> Result<String, String> {
    let id = store.resolve(id).map_err(|e| e.to_string())?;
    let goal = store.load(&id).map_err(|e| e.to_string())?;
    let graph = crate::graph::TaskGraph::load(&store.dir(&id), &id).map_err(|e| e.to_string())?;
    let trust = crate::proof::anchors::Trust {
        keys: Vec::new(),
        allow_unanchored: true,
    };
    let (_, report) = crate::proof::report::page(&store.dir(&id), &goal, &graph, &trust)
        .map_err(|e| e.to_string())?;
    let waiting = crate::approvals::waiting(store, Some(&id)).map_err(|e| e.to_string())?;
    let head = format!(
        "<div id=\"omk-live\"><style>{STYLE}</style><p><a href=\"/\">all goals</a> · live: this page follows the log</p>{}",
        approvals(&waiting, csrf)
    );
    let Some((before, after)) = report.split_once("<body>") else {
        return Err("the report has no body".into());
    };
    let Some((inside, end)) = after.rsplit_once("</body>") else {
        return Err("the report has no end".into());
    };
    let before = before.replacen(
        "</head>",
        "<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript></head>",
        1,
    );
    Ok(format!(
        "{before}<body>{head}{inside}</div>{}</body>{end}",
        script(&format!("/goal/{id}/live"))
    ))
}

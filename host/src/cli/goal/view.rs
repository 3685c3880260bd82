//! The read-only `omk goal` commands: `list`, `status`, `show`, `events`
//! and `verify-log`.

use serde_json::json;

use super::{EventsArgs, VerifyLogArgs};
use crate::cli::{Outcome, Result, load, with_help};
use omk::goal::budget::{format_time, format_usd};
use omk::goal::{Goal, GoalStore};
use omk::graph::{TaskGraph, TaskStatus};
use omk::proof::anchors;
use omk::proof::log;

pub(super) fn list(store: &GoalStore, json: bool) -> Result<Outcome> {
    let mut goals = Vec::new();
    for id in store.ids()? {
        match store.load(&id) {
            Ok(g) => goals.push(g),
            Err(e) => eprintln!("warning: skipping goal `{id}`: {e}"),
        }
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&goals)?);
    } else if goals.is_empty() {
        outln!("no goals yet; create one with `omk goal run \"GOAL\"`");
    } else {
        for g in &goals {
            outln!(
                "{}  {:<17}  {:<10}  {}",
                g.id,
                g.status.as_str(),
                g.phase.as_str(),
                omk::text::clip(&g.normalized_goal, 60)
            );
        }
    }
    Ok(Outcome::Ok)
}

pub(super) fn counts_json(graph: &TaskGraph) -> serde_json::Value {
    let c = graph.counts();
    let n = |s| c.get(&s).copied().unwrap_or(0);
    json!({
        "total": graph.tasks().len(),
        "pending": n(TaskStatus::Pending),
        "running": n(TaskStatus::Running),
        "done": n(TaskStatus::Done),
        "failed": n(TaskStatus::Failed),
        "cancelled": n(TaskStatus::Cancelled),
    })
}

pub(super) fn budget_line(g: &Goal, graph: &TaskGraph) -> String {
    let committed = graph.committed_secs();
    let time = match g.limits.time_secs {
        Some(l) => format!(
            "time {} spent + {} committed of {}",
            format_time(g.spent.time_secs),
            format_time(committed),
            format_time(l)
        ),
        None => format!("time {} spent, unlimited", format_time(g.spent.time_secs)),
    };
    let tokens = match g.limits.tokens {
        Some(l) => format!("tokens {} of {l}", g.spent.tokens),
        None => "tokens unlimited".into(),
    };
    let usd = match g.limits.usd_micros {
        Some(l) => format!(
            "USD {} of {}",
            format_usd(g.spent.usd_micros),
            format_usd(l)
        ),
        None => "USD unlimited".into(),
    };
    format!("{time}; {tokens}; {usd}")
}

pub(super) fn status(store: &GoalStore, id: &str, json: bool) -> Result<Outcome> {
    let (g, graph) = load(store, id)?;
    let committed = graph.committed_secs();
    if json {
        let remaining = g.remaining_time_secs(committed);
        let out = json!({
            "id": g.id,
            "goal": g.normalized_goal,
            "status": g.status,
            "phase": g.phase,
            "limits": g.limits,
            "spent": g.spent,
            "committed_time_secs": committed,
            "remaining_time_secs": remaining,
            "tasks": counts_json(&graph),
            "state_dir": store.dir(&g.id),
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Ok);
    }
    let c = counts_json(&graph);
    outln!("{}  {}  ({})", g.id, g.status, g.phase.as_str());
    outln!("  goal:   {}", g.normalized_goal);
    outln!("  budget: {}", budget_line(&g, &graph));
    outln!(
        "  tasks:  {} total: {} pending, {} running, {} done, {} failed",
        c["total"],
        c["pending"],
        c["running"],
        c["done"],
        c["failed"]
    );
    if let Some(f) = &g.failure {
        outln!("  failure: {f}");
    }
    Ok(Outcome::Ok)
}

pub(super) fn show(store: &GoalStore, id: &str, json: bool) -> Result<Outcome> {
    let (g, graph) = load(store, id)?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"goal": g, "graph": graph}))?
        );
        return Ok(Outcome::Ok);
    }
    status(store, &g.id, false)?;
    outln!("  state:  {}", store.dir(&g.id).display());
    if graph.tasks().is_empty() {
        outln!("  no tasks yet");
    }
    for t in graph.tasks() {
        let deps = if t.dependencies.is_empty() {
            String::new()
        } else {
            format!("  after {}", t.dependencies.join(", "))
        };
        outln!(
            "  - {:<9} {}  {}  writes [{}]{deps}",
            t.status.as_str(),
            t.id,
            format_time(t.budget_secs),
            t.write_set.join(", ")
        );
    }
    Ok(Outcome::Ok)
}

pub(super) fn events(store: &GoalStore, a: EventsArgs) -> Result<Outcome> {
    let id = store.resolve(&a.id)?;
    if let Some(kind) = a.kind.as_deref()
        && !omk::proof::events::KINDS.contains(&kind)
    {
        return Err(with_help(
            format!("`{kind}` is not a kind of event"),
            format!("the kinds are {}", omk::proof::events::KINDS.join(", ")),
        ));
    }
    // Printed as read, one line at a time: the log is never held whole.
    let unreadable = log::each_event(&store.dir(&id), |e| {
        if a.kind.as_deref().is_some_and(|k| e.kind != k) {
            return;
        }
        if a.json {
            // JSON lines: one event a line, as the log holds them.
            outln!("{}", serde_json::to_string(&e).unwrap_or_default());
        } else {
            outln!(
                "#{:<5} {}  {:<19} {}",
                e.id,
                e.ts.format("%Y-%m-%d %H:%M:%S%.3f"),
                e.kind,
                omk::proof::timeline::summarize(&e)
            );
        }
    })?;
    if !unreadable.is_empty() {
        eprintln!(
            "warning: {} line(s) of the log could not be read (torn by a crash, or damaged): {:?}; \
             `omk goal verify-log {id}` tells which",
            unreadable.len(),
            unreadable
        );
    }
    Ok(Outcome::Ok)
}

pub(super) fn verify_log(store: &GoalStore, a: VerifyLogArgs) -> Result<Outcome> {
    let id = store.resolve(&a.id)?;
    let trust = a.trust.trust()?;
    let goal = store.load(&id).ok();
    let v = anchors::verify_goal(&store.dir(&id), goal.as_ref(), &trust)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(if v.ok { Outcome::Ok } else { Outcome::Rejected });
    }
    if let Some(bad) = &v.first_bad {
        outln!("BROKEN  {}:{}: {}", v.path.display(), bad.line, bad.problem);
        outln!("{} events verified before it", v.events);
    }
    for p in &v.anchor_problems {
        outln!("BROKEN  {p}");
    }
    if v.ok {
        outln!("OK  {} events, chain intact, head {}", v.events, v.head);
        for t in &v.torn {
            outln!(
                "note: line {t} is a torn write left by a crash, recorded when omk resumed; the chain continues past it"
            );
        }
    }
    if v.first_bad.is_none() {
        outln!(
            "anchors: {} signed checkpoint(s) by {}; events 1–{} vouched for{}{}",
            v.checkpoints,
            if v.signers.is_empty() {
                "nobody".to_owned()
            } else {
                v.signers.join(", ")
            },
            v.anchored_to,
            if v.trailers > 0 {
                format!(", {} commit trailer(s) checked", v.trailers)
            } else {
                String::new()
            },
            if v.unanchored_events > 0 {
                format!(
                    "; the last {} not yet (appended since the last checkpoint)",
                    v.unanchored_events
                )
            } else {
                String::new()
            }
        );
    }
    Ok(if v.ok { Outcome::Ok } else { Outcome::Rejected })
}

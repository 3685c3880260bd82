//! `omk approvals` and `omk approve`: what waits for a person, and the
//! answer ([`omk::approvals`]).

use clap::Args;
use omk::approvals::{self, Delivered, Waiting};
use omk::goal::GoalStore;
use serde_json::json;

use super::{Outcome, Result};

#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    /// The goal (or guarded session) to look in; every one without it.
    goal: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The ask's id (`ap-…`, as `omk approvals` lists it).
    id: String,
    /// Refuse the action instead.
    #[arg(long)]
    deny: bool,
    /// A note kept with the answer in the goal's log.
    #[arg(long)]
    note: Option<String>,
    /// The goal the ask is in (found by its id otherwise).
    #[arg(long)]
    goal: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn list(a: ApprovalsArgs) -> Result<Outcome> {
    let store = GoalStore::open_default()?;
    let waiting = approvals::waiting(&store, a.goal.as_deref())?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&waiting)?);
        return Ok(Outcome::Ok);
    }
    if waiting.is_empty() {
        outln!("nothing waits for a person");
        return Ok(Outcome::Ok);
    }
    for w in &waiting {
        print_one(w);
    }
    outln!(
        "answer with `omk approve ID` or `omk approve ID --deny --note WHY`; each answer binds to the exact action"
    );
    Ok(Outcome::Ok)
}

fn print_one(w: &Waiting) {
    let whose = match &w.session_of {
        Some(client) => format!("{client} session {}", w.goal),
        None => format!("goal {} task {}", w.goal, w.task),
    };
    outln!("{}  {whose}", w.id);
    outln!("  {} `{}`", w.kind, w.target);
    for words in &w.commands {
        outln!(
            "  runs   {}",
            serde_json::to_string(words).unwrap_or_default()
        );
    }
    if let Some(t) = &w.tool {
        outln!(
            "  calls  {} {} {}",
            t.server,
            t.tool,
            omk::text::clip(&t.arguments, 200)
        );
    }
    outln!("  gate `{}` ({}): {}", w.gate, w.code, w.reason);
    let when = match (w.waiting_now, w.expires_at) {
        (true, Some(t)) => format!("waits until {}", t.format("%Y-%m-%d %H:%M:%S UTC")),
        _ => "nothing waits now: the answer is used when the agent asks again".into(),
    };
    outln!("  {when}");
}

pub fn approve(a: ApproveArgs) -> Result<Outcome> {
    let store = GoalStore::open_default()?;
    let (goal, delivered) =
        approvals::answer(&store, a.goal.as_deref(), &a.id, !a.deny, a.note.clone())?;
    let verb = if a.deny { "denied" } else { "approved" };
    if a.json {
        outln!(
            "{}",
            json!({"id": a.id, "goal": goal, "approved": !a.deny, "note": a.note, "delivered": delivered})
        );
        return Ok(Outcome::Ok);
    }
    let then = match delivered {
        Delivered::Applied => "the waiting task has it".to_owned(),
        Delivered::Logged => {
            "recorded in the goal's log; it is used when the agent asks for the same action again"
                .to_owned()
        }
        Delivered::Left => format!(
            "left for the omk running goal {goal}, which applies it when it next looks (it has not yet)"
        ),
    };
    outln!("{verb} {} in goal {goal}: {then}", a.id);
    Ok(Outcome::Ok)
}

//! The gate `{{name}}`. `omk gate build` compiles it for
//! `wasm32-unknown-unknown` and encodes it as a component. It implements
//! `omk:gate@0.3.0` (`wit/gate.wit`): omk calls `validate_config` once at
//! load, then the checks of the stages `describe` lists. An action's
//! `command` is what omk parsed from a command line (its simple commands,
//! their words after quote removal, their redirections); its `tool` is a
//! tool call (server, tool, arguments as JSON).

wit_bindgen::generate!({ path: "wit", world: "gate" });

use exports::omk::gate::policy::{
    ActionDecision, AgentAction, Decision, GateInfo, GoalContext, Guest, Rejection, Stage,
    TaskOutcome, TaskProposal,
};

/// The folder this gate keeps agents out of.
const SECRETS: &str = "secrets";

fn under_secrets(path: &str) -> bool {
    let path = path.trim_start_matches("./");
    path == SECRETS || path.starts_with("secrets/")
}

fn refusal(path: &str) -> Rejection {
    Rejection {
        code: "{{name}}.secrets".into(),
        reason: format!("`{path}` is under `{SECRETS}/`, which no task may read or change"),
    }
}

fn reject(path: &str) -> Decision {
    Decision::Reject(refusal(path))
}

/// A path under `secrets/` the action names: its target, a word or a
/// redirection of a command it runs, or (for a tool call) its arguments.
fn secret_in(action: &AgentAction) -> Option<String> {
    if under_secrets(&action.target) {
        return Some(action.target.clone());
    }
    // Every simple command of the command line, with its words after
    // quote removal: `cat secrets/key` names it, `echo "secrets"` does not.
    for c in action.command.iter().flat_map(|p| &p.commands) {
        let named = c.words.iter().chain(c.redirections.iter().map(|r| &r.target));
        if let Some(w) = named.into_iter().find(|w| under_secrets(w)) {
            return Some(w.clone());
        }
    }
    // A tool call's arguments are JSON; this looks for the folder's name in
    // the text (a gate with a JSON parser would read the fields instead).
    if let Some(t) = &action.tool
        && (t.arguments.contains("\"secrets/") || t.arguments.contains("\"./secrets/"))
    {
        return Some(format!("{}/{} {}", t.server, t.tool, t.arguments));
    }
    None
}

struct Gate;

impl Guest for Gate {
    fn describe() -> GateInfo {
        GateInfo {
            name: "{{name}}".into(),
            version: "0.1.0".into(),
            stages: vec![Stage::Proposal, Stage::Action],
            description: "No task may read or write under secrets/".into(),
        }
    }

    /// This gate takes no settings: any but `{}` stops its load.
    fn validate_config(config: String) -> Result<(), Rejection> {
        match config.trim() {
            "" | "{}" => Ok(()),
            other => Err(Rejection {
                code: "{{name}}.config-invalid".into(),
                reason: format!("this gate takes no settings, but was given {other}"),
            }),
        }
    }

    fn check_proposal(_ctx: GoalContext, proposal: TaskProposal, _config: String) -> Decision {
        match proposal.write_set.iter().find(|p| under_secrets(p)) {
            Some(p) => reject(p),
            None => Decision::Accept,
        }
    }

    fn check_action(
        _ctx: GoalContext,
        _task: TaskProposal,
        action: AgentAction,
        _config: String,
    ) -> ActionDecision {
        match secret_in(&action) {
            Some(p) => ActionDecision::Reject(refusal(&p)),
            None => ActionDecision::Accept,
        }
    }

    fn check_outcome(
        _ctx: GoalContext,
        _task: TaskProposal,
        _outcome: TaskOutcome,
        _config: String,
    ) -> Decision {
        Decision::Accept
    }
}

export!(Gate);

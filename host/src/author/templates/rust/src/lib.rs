//! The gate `{{name}}`. `omk gate build` compiles it for
//! `wasm32-unknown-unknown` and encodes it as a component. It implements
//! `omk:gate@0.2.0` (`wit/gate.wit`): omk calls `validate_config` once at
//! load, then the checks of the stages `describe` lists.

wit_bindgen::generate!({ path: "wit", world: "gate" });

use exports::omk::gate::policy::{
    AgentAction, Decision, GateInfo, GoalContext, Guest, Rejection, Stage, TaskOutcome,
    TaskProposal,
};

/// The folder this gate keeps agents out of.
const SECRETS: &str = "secrets";

fn under_secrets(path: &str) -> bool {
    let path = path.trim_start_matches("./");
    path == SECRETS || path.starts_with("secrets/")
}

fn reject(path: &str) -> Decision {
    Decision::Reject(Rejection {
        code: "{{name}}.secrets".into(),
        reason: format!("`{path}` is under `{SECRETS}/`, which no task may read or change"),
    })
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
    ) -> Decision {
        if under_secrets(&action.target) {
            reject(&action.target)
        } else {
            Decision::Accept
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

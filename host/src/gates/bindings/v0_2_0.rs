//! `omk:gate@0.2.0`, the newest: the host's types (the SDK's) map onto it
//! one to one, and the host implements its `context` interface with
//! [`OnDemand`], the parts of a decision's context a gate asks for.

wasmtime::component::bindgen!({
    world: "gate",
    path: "../wit/v0.2.0",
});

use self::omk::gate::context as host;
use exports::omk::gate::policy as wit;
use omk_gate_sdk as sdk;

use super::OnDemand;

super::unchanged_types!();

impl host::Host for OnDemand {
    fn goal_text(&mut self) -> String {
        self.goal_text.to_string()
    }

    fn accepted_in_wave(&mut self) -> Vec<host::AcceptedTask> {
        self.accepted_in_wave
            .iter()
            .map(|t| host::AcceptedTask {
                id: t.id.clone(),
                read_set: t.read_set.clone(),
                write_set: t.write_set.clone(),
                dependencies: t.dependencies.clone(),
            })
            .collect()
    }

    fn existing_task_ids(&mut self) -> Vec<String> {
        self.existing_task_ids.to_vec()
    }
}

/// The context every decision carries; the rest is asked of [`OnDemand`].
pub fn context(c: &sdk::GoalContext) -> wit::GoalContext {
    wit::GoalContext {
        goal_id: c.goal_id.clone(),
        phase: c.phase.clone(),
        now_ms: c.now_ms,
        budget: budget(&c.budget),
        policy_roots: c.policy_roots.clone(),
    }
}

pub fn rejection(r: wit::Rejection) -> sdk::Rejection {
    sdk::Rejection {
        code: r.code,
        reason: r.reason,
    }
}

pub fn action(a: &sdk::AgentAction) -> wit::AgentAction {
    wit::AgentAction {
        task_id: a.task_id.clone(),
        kind: match a.kind {
            sdk::ActionKind::WriteFile => wit::ActionKind::WriteFile,
            sdk::ActionKind::DeleteFile => wit::ActionKind::DeleteFile,
            sdk::ActionKind::ReadFile => wit::ActionKind::ReadFile,
            sdk::ActionKind::RunCommand => wit::ActionKind::RunCommand,
            sdk::ActionKind::FetchUrl => wit::ActionKind::FetchUrl,
            sdk::ActionKind::Other => wit::ActionKind::Other,
        },
        target: a.target.clone(),
        detail: a.detail.clone(),
    }
}

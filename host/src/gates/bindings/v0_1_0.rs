//! `omk:gate@0.1.0`, frozen: served through an adapter from the host's
//! types (the SDK's, which follow the newest version).
//!
//! What 0.1.0 lacks, the adapter answers for it: it has no `validate-config`
//! (its settings are checked by a probe decision at load, see
//! `GateSet::check_configs`), and no `read-file` action kind, so 0.1.0
//! gates are not asked about reads ([`action`] gives `None`; the host counts
//! the gate as not judging that action). Its context carries every field,
//! lowered from the host's. As for 0.2.0, a tool call is an `other` action
//! and a command's parse is not passed.

wasmtime::component::bindgen!({
    world: "gate",
    path: "../wit/v0.1.0",
});

use exports::omk::gate::policy as wit;
use omk_gate_sdk as sdk;

super::unchanged_types!();

pub fn context(c: &sdk::GoalContext) -> wit::GoalContext {
    wit::GoalContext {
        goal_id: c.goal_id.clone(),
        goal_text: c.goal_text.to_string(),
        phase: c.phase.clone(),
        now_ms: c.now_ms,
        budget: budget(&c.budget),
        policy_roots: c.policy_roots.clone(),
        accepted_in_wave: c
            .accepted_in_wave
            .iter()
            .map(|t| wit::AcceptedTask {
                id: t.id.clone(),
                read_set: t.read_set.clone(),
                write_set: t.write_set.clone(),
                dependencies: t.dependencies.clone(),
            })
            .collect(),
        existing_task_ids: c.existing_task_ids.to_vec(),
    }
}

/// The action in 0.1.0's terms; `None` for a read, which 0.1.0 gates are
/// not asked about.
pub fn action(a: &sdk::AgentAction) -> Option<wit::AgentAction> {
    Some(wit::AgentAction {
        task_id: a.task_id.clone(),
        kind: match a.kind {
            sdk::ActionKind::WriteFile => wit::ActionKind::WriteFile,
            sdk::ActionKind::DeleteFile => wit::ActionKind::DeleteFile,
            sdk::ActionKind::ReadFile => return None,
            sdk::ActionKind::RunCommand => wit::ActionKind::RunCommand,
            sdk::ActionKind::FetchUrl => wit::ActionKind::FetchUrl,
            sdk::ActionKind::CallTool | sdk::ActionKind::Other => wit::ActionKind::Other,
        },
        target: super::legacy_target(a),
        detail: a.detail.clone(),
    })
}

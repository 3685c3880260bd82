//! `omk:gate@0.2.0`, frozen: served through an adapter from the host's
//! types (the SDK's, which follow the newest version). The host implements
//! its `context` interface with [`OnDemand`], as for 0.3.0.
//!
//! What 0.2.0 lacks, the adapter answers for it: a command's parse is not
//! passed (a 0.2.0 gate parses the command line itself, as it always did);
//! a tool call is an `other` action whose target is the tool's name and its
//! arguments, as omk described tool calls before 0.3.0
//! ([`super::legacy_target`]); and its answers have no `ask`.

wasmtime::component::bindgen!({
    world: "gate",
    path: "../wit/v0.2.0",
});

use exports::omk::gate::policy as wit;
use omk_gate_sdk as sdk;

super::unchanged_types!();

super::on_demand_context!();

pub fn action(a: &sdk::AgentAction) -> wit::AgentAction {
    wit::AgentAction {
        task_id: a.task_id.clone(),
        kind: match a.kind {
            sdk::ActionKind::WriteFile => wit::ActionKind::WriteFile,
            sdk::ActionKind::DeleteFile => wit::ActionKind::DeleteFile,
            sdk::ActionKind::ReadFile => wit::ActionKind::ReadFile,
            sdk::ActionKind::RunCommand => wit::ActionKind::RunCommand,
            sdk::ActionKind::FetchUrl => wit::ActionKind::FetchUrl,
            sdk::ActionKind::CallTool | sdk::ActionKind::Other => wit::ActionKind::Other,
        },
        target: super::legacy_target(a),
        detail: a.detail.clone(),
    }
}

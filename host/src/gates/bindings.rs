//! Host bindings for each supported version of the `omk:gate` WIT package,
//! and conversions between them and the SDK's plain types.
//!
//! The host works with [`omk_gate_sdk`] types only. Each supported WIT
//! version has a module here generated from its frozen file under `wit/`;
//! when `0.2` arrives, `0.1` gates keep working through a `From` adapter in
//! their module, the way Zed's extension host serves old extension APIs.

/// The WIT versions this host loads, newest first.
pub const SUPPORTED: &[&str] = omk_core::SUPPORTED_WIT_VERSIONS;

/// The interface a gate exports, without its version.
pub const INTERFACE: &str = "omk:gate/policy";

/// The four functions of `omk:gate/policy`.
pub const FUNCTIONS: [&str; 4] = [
    "describe",
    "check-proposal",
    "check-action",
    "check-outcome",
];

pub mod v0_1_0 {
    //! `omk:gate@0.1.0`.

    wasmtime::component::bindgen!({
        world: "gate",
        path: "../wit/v0.1.0",
    });

    use exports::omk::gate::policy as wit;
    use omk_gate_sdk as sdk;

    pub use wit::Decision as WitDecision;

    pub fn info(i: wit::GateInfo) -> sdk::GateInfo {
        sdk::GateInfo {
            name: i.name,
            version: i.version,
            stages: i
                .stages
                .into_iter()
                .map(|s| match s {
                    wit::Stage::Proposal => sdk::Stage::Proposal,
                    wit::Stage::Action => sdk::Stage::Action,
                    wit::Stage::Outcome => sdk::Stage::Outcome,
                })
                .collect(),
            description: i.description,
        }
    }

    pub fn decision(d: wit::Decision) -> sdk::Decision {
        match d {
            wit::Decision::Accept => sdk::Decision::Accept,
            wit::Decision::Reject(r) => sdk::Decision::reject(r.code, r.reason),
        }
    }

    pub fn context(c: &sdk::GoalContext) -> wit::GoalContext {
        let b = &c.budget;
        wit::GoalContext {
            goal_id: c.goal_id.clone(),
            goal_text: c.goal_text.clone(),
            phase: c.phase.clone(),
            now_ms: c.now_ms,
            budget: wit::Budget {
                time_limit_secs: b.time_limit_secs,
                time_spent_secs: b.time_spent_secs,
                time_committed_secs: b.time_committed_secs,
                token_limit: b.token_limit,
                tokens_spent: b.tokens_spent,
                usd_limit_micros: b.usd_limit_micros,
                usd_spent_micros: b.usd_spent_micros,
            },
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
            existing_task_ids: c.existing_task_ids.clone(),
        }
    }

    pub fn proposal(p: &sdk::TaskProposal) -> wit::TaskProposal {
        wit::TaskProposal {
            id: p.id.clone(),
            title: p.title.clone(),
            description: p.description.clone(),
            dependencies: p.dependencies.clone(),
            read_set: p.read_set.clone(),
            write_set: p.write_set.clone(),
            risk: p.risk.clone(),
            acceptance: p.acceptance.clone(),
            budget_secs: p.budget_secs,
            priority: p.priority,
        }
    }

    pub fn action(a: &sdk::AgentAction) -> wit::AgentAction {
        wit::AgentAction {
            task_id: a.task_id.clone(),
            kind: match a.kind {
                sdk::ActionKind::WriteFile => wit::ActionKind::WriteFile,
                sdk::ActionKind::DeleteFile => wit::ActionKind::DeleteFile,
                sdk::ActionKind::RunCommand => wit::ActionKind::RunCommand,
                sdk::ActionKind::FetchUrl => wit::ActionKind::FetchUrl,
                sdk::ActionKind::Other => wit::ActionKind::Other,
            },
            target: a.target.clone(),
            detail: a.detail.clone(),
        }
    }

    pub fn outcome(o: &sdk::TaskOutcome) -> wit::TaskOutcome {
        wit::TaskOutcome {
            task_id: o.task_id.clone(),
            changed_files: o.changed_files.clone(),
            evidence: o
                .evidence
                .iter()
                .map(|e| wit::Evidence {
                    kind: e.kind.clone(),
                    summary: e.summary.clone(),
                    path: e.path.clone(),
                    criterion: e.criterion.clone(),
                })
                .collect(),
            checks: o
                .checks
                .iter()
                .map(|c| wit::CheckResult {
                    name: c.name.clone(),
                    command: c.command.clone(),
                    exit_code: c.exit_code,
                    passed: c.passed,
                    output_tail: c.output_tail.clone(),
                })
                .collect(),
        }
    }
}

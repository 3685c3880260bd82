//! The component glue: `omk:gate@0.3.0` bindings and conversions between
//! them and the SDK's plain types. Only built for wasm32; gate authors use
//! [`export_gate!`](crate::export_gate) and never this module directly.

wit_bindgen::generate!({
    path: "../../wit/v0.3.0",
    world: "gate",
    default_bindings_module: "omk_gate_sdk::component",
    pub_export_macro: true,
    export_macro_name: "__export_raw",
});

use exports::omk::gate::policy as wit;
use omk::gate::context as host;

use crate::{Lazy, Policy, types};

/// Exports a [`Policy`](crate::Policy) as the component's
/// `omk:gate/policy@0.3.0`. Invoke once, in the gate's crate, when building
/// for wasm32.
#[macro_export]
macro_rules! export_gate {
    ($gate:ty) => {
        #[doc(hidden)]
        pub struct __OmkGateExport;

        impl $crate::component::exports::omk::gate::policy::Guest for __OmkGateExport {
            fn describe() -> $crate::component::exports::omk::gate::policy::GateInfo {
                $crate::component::describe::<$gate>()
            }
            fn validate_config(
                config: ::std::string::String,
            ) -> ::std::result::Result<(), $crate::component::exports::omk::gate::policy::Rejection> {
                $crate::component::validate_config::<$gate>(config)
            }
            fn check_proposal(
                ctx: $crate::component::exports::omk::gate::policy::GoalContext,
                proposal: $crate::component::exports::omk::gate::policy::TaskProposal,
                config: ::std::string::String,
            ) -> $crate::component::exports::omk::gate::policy::Decision {
                $crate::component::check_proposal::<$gate>(ctx, proposal, config)
            }
            fn check_action(
                ctx: $crate::component::exports::omk::gate::policy::GoalContext,
                task: $crate::component::exports::omk::gate::policy::TaskProposal,
                action: $crate::component::exports::omk::gate::policy::AgentAction,
                config: ::std::string::String,
            ) -> $crate::component::exports::omk::gate::policy::ActionDecision {
                $crate::component::check_action::<$gate>(ctx, task, action, config)
            }
            fn check_outcome(
                ctx: $crate::component::exports::omk::gate::policy::GoalContext,
                task: $crate::component::exports::omk::gate::policy::TaskProposal,
                outcome: $crate::component::exports::omk::gate::policy::TaskOutcome,
                config: ::std::string::String,
            ) -> $crate::component::exports::omk::gate::policy::Decision {
                $crate::component::check_outcome::<$gate>(ctx, task, outcome, config)
            }
        }

        $crate::component::__export_raw!(__OmkGateExport with_types_in $crate::component);
    };
}

#[doc(hidden)]
pub fn describe<G: Policy>() -> wit::GateInfo {
    let info = G::info();
    wit::GateInfo {
        name: info.name,
        version: info.version,
        stages: info.stages.into_iter().map(stage).collect(),
        description: info.description,
    }
}

#[doc(hidden)]
pub fn validate_config<G: Policy>(config: String) -> Result<(), wit::Rejection> {
    G::validate_config(&config).map_err(|r| wit::Rejection {
        code: r.code,
        reason: r.reason,
    })
}

#[doc(hidden)]
pub fn check_proposal<G: Policy>(
    ctx: wit::GoalContext,
    proposal: wit::TaskProposal,
    config: String,
) -> wit::Decision {
    decision(G::check_proposal(&context(ctx), &task(proposal), &config))
}

#[doc(hidden)]
pub fn check_action<G: Policy>(
    ctx: wit::GoalContext,
    t: wit::TaskProposal,
    a: wit::AgentAction,
    config: String,
) -> wit::ActionDecision {
    let rejection = |r: types::Rejection| wit::Rejection {
        code: r.code,
        reason: r.reason,
    };
    match G::check_action(&context(ctx), &task(t), &action(a), &config) {
        types::Decision::Accept => wit::ActionDecision::Accept,
        types::Decision::Reject(r) => wit::ActionDecision::Reject(rejection(r)),
        types::Decision::Ask(r) => wit::ActionDecision::Ask(rejection(r)),
    }
}

#[doc(hidden)]
pub fn check_outcome<G: Policy>(
    ctx: wit::GoalContext,
    t: wit::TaskProposal,
    o: wit::TaskOutcome,
    config: String,
) -> wit::Decision {
    decision(G::check_outcome(
        &context(ctx),
        &task(t),
        &outcome(o),
        &config,
    ))
}

fn stage(s: types::Stage) -> wit::Stage {
    match s {
        types::Stage::Proposal => wit::Stage::Proposal,
        types::Stage::Action => wit::Stage::Action,
        types::Stage::Outcome => wit::Stage::Outcome,
    }
}

/// A proposal's or an outcome's decision: no person is asked there, so an
/// ask is a rejection.
fn decision(d: types::Decision) -> wit::Decision {
    match d.without_ask() {
        types::Decision::Accept => wit::Decision::Accept,
        types::Decision::Reject(r) | types::Decision::Ask(r) => {
            wit::Decision::Reject(wit::Rejection {
                code: r.code,
                reason: r.reason,
            })
        }
    }
}

/// The context of a decision: what the record carries, and the rest asked
/// of the host on first read.
fn context(c: wit::GoalContext) -> types::GoalContext {
    let b = c.budget;
    types::GoalContext {
        goal_id: c.goal_id,
        goal_text: Lazy::on_demand(host::goal_text),
        phase: c.phase,
        now_ms: c.now_ms,
        budget: types::Budget {
            time_limit_secs: b.time_limit_secs,
            time_spent_secs: b.time_spent_secs,
            time_committed_secs: b.time_committed_secs,
            token_limit: b.token_limit,
            tokens_spent: b.tokens_spent,
            usd_limit_micros: b.usd_limit_micros,
            usd_spent_micros: b.usd_spent_micros,
        },
        policy_roots: c.policy_roots,
        accepted_in_wave: Lazy::on_demand(accepted_in_wave),
        existing_task_ids: Lazy::on_demand(host::existing_task_ids),
    }
}

fn accepted_in_wave() -> Vec<types::AcceptedTask> {
    host::accepted_in_wave()
        .into_iter()
        .map(|t| types::AcceptedTask {
            id: t.id,
            read_set: t.read_set,
            write_set: t.write_set,
            dependencies: t.dependencies,
        })
        .collect()
}

fn task(p: wit::TaskProposal) -> types::TaskProposal {
    types::TaskProposal {
        id: p.id,
        title: p.title,
        description: p.description,
        dependencies: p.dependencies,
        read_set: p.read_set,
        write_set: p.write_set,
        risk: p.risk,
        acceptance: p.acceptance,
        budget_secs: p.budget_secs,
        priority: p.priority,
    }
}

fn action(a: wit::AgentAction) -> types::AgentAction {
    types::AgentAction {
        task_id: a.task_id,
        kind: match a.kind {
            wit::ActionKind::WriteFile => types::ActionKind::WriteFile,
            wit::ActionKind::DeleteFile => types::ActionKind::DeleteFile,
            wit::ActionKind::ReadFile => types::ActionKind::ReadFile,
            wit::ActionKind::RunCommand => types::ActionKind::RunCommand,
            wit::ActionKind::FetchUrl => types::ActionKind::FetchUrl,
            wit::ActionKind::CallTool => types::ActionKind::CallTool,
            wit::ActionKind::Other => types::ActionKind::Other,
        },
        target: a.target,
        detail: a.detail,
        command: a.command.map(parsed),
        tool: a.tool.map(|t| types::ToolCall {
            server: t.server,
            tool: t.tool,
            arguments: t.arguments,
            definition_digest: t.definition_digest,
        }),
    }
}

fn parsed(c: wit::ParsedCommand) -> types::ParsedCommand {
    types::ParsedCommand {
        status: match c.status {
            wit::ParseStatus::Parsed => types::ParseStatus::Parsed,
            wit::ParseStatus::Partial => types::ParseStatus::Partial,
            wit::ParseStatus::Unparsed => types::ParseStatus::Unparsed,
        },
        notes: c.notes,
        commands: c.commands.into_iter().map(simple).collect(),
    }
}

fn simple(c: wit::SimpleCommand) -> types::SimpleCommand {
    types::SimpleCommand {
        words: c.words,
        dynamic: c.dynamic,
        assignments: c.assignments,
        redirections: c
            .redirections
            .into_iter()
            .map(|r| types::Redirection {
                fd: r.fd,
                op: match r.op {
                    wit::RedirectOp::Write => types::RedirectOp::Write,
                    wit::RedirectOp::Append => types::RedirectOp::Append,
                    wit::RedirectOp::Clobber => types::RedirectOp::Clobber,
                    wit::RedirectOp::Read => types::RedirectOp::Read,
                    wit::RedirectOp::ReadWrite => types::RedirectOp::ReadWrite,
                    wit::RedirectOp::WriteBoth => types::RedirectOp::WriteBoth,
                    wit::RedirectOp::AppendBoth => types::RedirectOp::AppendBoth,
                    wit::RedirectOp::Duplicate => types::RedirectOp::Duplicate,
                    wit::RedirectOp::Heredoc => types::RedirectOp::Heredoc,
                    wit::RedirectOp::Herestring => types::RedirectOp::Herestring,
                    wit::RedirectOp::Process => types::RedirectOp::Process,
                },
                target: r.target,
                dynamic: r.dynamic,
            })
            .collect(),
        joined: match c.joined {
            wit::Joined::First => types::Joined::First,
            wit::Joined::Pipe => types::Joined::Pipe,
            wit::Joined::And => types::Joined::And,
            wit::Joined::Or => types::Joined::Or,
            wit::Joined::Then => types::Joined::Then,
        },
        background: c.background,
        nesting: c
            .nesting
            .into_iter()
            .map(|n| match n {
                wit::Nesting::Subshell => types::Nesting::Subshell,
                wit::Nesting::Group => types::Nesting::Group,
                wit::Nesting::CommandSubstitution => types::Nesting::CommandSubstitution,
                wit::Nesting::ProcessSubstitution => types::Nesting::ProcessSubstitution,
                wit::Nesting::Compound => types::Nesting::Compound,
                wit::Nesting::Function => types::Nesting::Function,
                wit::Nesting::Wrapper => types::Nesting::Wrapper,
            })
            .collect(),
        directory: c.directory,
    }
}

fn outcome(o: wit::TaskOutcome) -> types::TaskOutcome {
    types::TaskOutcome {
        task_id: o.task_id,
        changed_files: o.changed_files,
        evidence: o
            .evidence
            .into_iter()
            .map(|e| types::Evidence {
                kind: e.kind,
                summary: e.summary,
                path: e.path,
                criterion: e.criterion,
            })
            .collect(),
        checks: o
            .checks
            .into_iter()
            .map(|c| types::CheckResult {
                name: c.name,
                command: c.command,
                exit_code: c.exit_code,
                passed: c.passed,
                output_tail: c.output_tail,
            })
            .collect(),
    }
}

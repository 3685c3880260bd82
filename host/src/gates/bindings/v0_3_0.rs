//! `omk:gate@0.3.0`, the newest: the host's types (the SDK's) map onto it
//! one to one, and the host implements its `context` interface with
//! [`OnDemand`], the parts of a decision's context a gate asks for.

wasmtime::component::bindgen!({
    world: "gate",
    path: "../wit/v0.3.0",
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
            sdk::ActionKind::CallTool => wit::ActionKind::CallTool,
            sdk::ActionKind::Other => wit::ActionKind::Other,
        },
        target: a.target.clone(),
        detail: a.detail.clone(),
        command: a.command.as_ref().map(parsed),
        tool: a.tool.as_ref().map(|t| wit::ToolCall {
            server: t.server.clone(),
            tool: t.tool.clone(),
            arguments: t.arguments.clone(),
            definition_digest: t.definition_digest.clone(),
        }),
    }
}

fn parsed(c: &sdk::ParsedCommand) -> wit::ParsedCommand {
    wit::ParsedCommand {
        status: match c.status {
            sdk::ParseStatus::Parsed => wit::ParseStatus::Parsed,
            sdk::ParseStatus::Partial => wit::ParseStatus::Partial,
            sdk::ParseStatus::Unparsed => wit::ParseStatus::Unparsed,
        },
        notes: c.notes.clone(),
        commands: c.commands.iter().map(simple).collect(),
    }
}

fn simple(c: &sdk::SimpleCommand) -> wit::SimpleCommand {
    wit::SimpleCommand {
        words: c.words.clone(),
        dynamic: c.dynamic.clone(),
        assignments: c.assignments.clone(),
        redirections: c
            .redirections
            .iter()
            .map(|r| wit::Redirection {
                fd: r.fd,
                op: match r.op {
                    sdk::RedirectOp::Write => wit::RedirectOp::Write,
                    sdk::RedirectOp::Append => wit::RedirectOp::Append,
                    sdk::RedirectOp::Clobber => wit::RedirectOp::Clobber,
                    sdk::RedirectOp::Read => wit::RedirectOp::Read,
                    sdk::RedirectOp::ReadWrite => wit::RedirectOp::ReadWrite,
                    sdk::RedirectOp::WriteBoth => wit::RedirectOp::WriteBoth,
                    sdk::RedirectOp::AppendBoth => wit::RedirectOp::AppendBoth,
                    sdk::RedirectOp::Duplicate => wit::RedirectOp::Duplicate,
                    sdk::RedirectOp::Heredoc => wit::RedirectOp::Heredoc,
                    sdk::RedirectOp::Herestring => wit::RedirectOp::Herestring,
                    sdk::RedirectOp::Process => wit::RedirectOp::Process,
                },
                target: r.target.clone(),
                dynamic: r.dynamic,
            })
            .collect(),
        joined: match c.joined {
            sdk::Joined::First => wit::Joined::First,
            sdk::Joined::Pipe => wit::Joined::Pipe,
            sdk::Joined::And => wit::Joined::And,
            sdk::Joined::Or => wit::Joined::Or,
            sdk::Joined::Then => wit::Joined::Then,
        },
        background: c.background,
        nesting: c
            .nesting
            .iter()
            .map(|n| match n {
                sdk::Nesting::Subshell => wit::Nesting::Subshell,
                sdk::Nesting::Group => wit::Nesting::Group,
                sdk::Nesting::CommandSubstitution => wit::Nesting::CommandSubstitution,
                sdk::Nesting::ProcessSubstitution => wit::Nesting::ProcessSubstitution,
                sdk::Nesting::Compound => wit::Nesting::Compound,
                sdk::Nesting::Function => wit::Nesting::Function,
                sdk::Nesting::Wrapper => wit::Nesting::Wrapper,
            })
            .collect(),
        directory: c.directory.clone(),
    }
}

/// An action's decision: accept, reject, or ask.
pub fn action_decision(d: wit::ActionDecision) -> sdk::Decision {
    match d {
        wit::ActionDecision::Accept => sdk::Decision::Accept,
        wit::ActionDecision::Reject(r) => sdk::Decision::reject(r.code, r.reason),
        wit::ActionDecision::Ask(r) => sdk::Decision::ask(r.code, r.reason),
    }
}

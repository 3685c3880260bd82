//! The legacy Kimi CLI (the Python `kimi-cli`, 1.x) over its wire protocol:
//! `kimi --wire`, JSON-RPC 2.0 on stdio, one object a line.
//!
//! omk sends `initialize` (protocol 1.10; a server older than 1.1 answers
//! "method not found" and omk goes on without the handshake) declaring no
//! questions, no plan mode and one hook subscription — `PreToolUse` for
//! every tool — then `prompt` with the task prompt. Until the prompt's
//! answer (`finished`, `cancelled`, `max_steps_reached`) the agent streams
//! `event` notifications and asks `request`s:
//!
//! - `ApprovalRequest` (a file edit, a command, anything Kimi asks the user
//!   before doing) becomes the actions the gates judge: every diff block's
//!   path, or the file the description or the tool call names, is a write;
//!   a shell block or a `Shell` call is a command; anything else is an
//!   `other` action naming the tool. omk answers `approve` (never
//!   `approve_for_session`, so Kimi asks every time) only if every action is
//!   allowed, else `reject` with `refused by omk: <reason>` as feedback,
//!   which Kimi hands the model. Kimi performs an approved write itself.
//! - `HookRequest` for `PreToolUse` (Kimi CLI ≥ 1.28, wire 1.7): the tool's
//!   name and input, judged the same way, answered `allow` or `block` with
//!   the reason. This is the second line: it holds even where Kimi approves
//!   itself (`default_yolo` in its config). Kimi lets a tool run when a
//!   hook goes unanswered, so the subscription's timeout is the task's
//!   remaining time. The approval that follows a hook is judged again: a
//!   concurrent call may have changed the worktree in between.
//! - Work in the background — `Shell` or `Agent` with `run_in_background`,
//!   an approval to "run background command" — is refused: it would run in
//!   a session of its own past the task's deadline, and a background
//!   subagent runs without hooks.
//! - `QuestionRequest` gets no answers, `ToolCallRequest` an error: omk
//!   registers no external tools.
//!
//! A file change or command that ran without omk being asked (a server
//! without hooks whose user set `default_yolo`) is recorded as an
//! `unjudged_action` note, and the proof lists it as a gap.
//!
//! Events become notes (tool calls and their results, retries) and the final
//! message (the text after the last tool call); tokens are the sum of each
//! step's `StatusUpdate.token_usage`, foreground subagents' included (Kimi
//! reports no cost). While planning, only read-only tools may run. At the
//! deadline omk sends `cancel`, rejects what is still asked, waits a few
//! seconds for the prompt's answer, then kills the process group.
//!
//! What omk cannot close: Kimi writes an approved file itself, a moment
//! after omk judged it, so a command running alongside could still swap a
//! directory for a symlink in between; the outcome gates judge what
//! changed in the worktree.

pub(crate) mod actions;
mod session;

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::rpc::{CallError, Dialect, METHOD_NOT_FOUND, Rpc};
use super::turn::{LiveClient, TurnClock, TurnEnd};
use super::{BoxFuture, Hooks, Place, launch_command};
use session::Session;

/// The wire protocol version omk speaks.
pub const PROTOCOL_VERSION: &str = "1.10";

/// The wire's JSON-RPC 2.0, with omk's ids named `omk-N`.
const DIALECT: Dialect = Dialect {
    who: "Kimi",
    jsonrpc: true,
    id_prefix: Some("omk-"),
};

/// The wire backend.
#[derive(Debug)]
pub struct KimiWire {
    command: Option<String>,
}

impl KimiWire {
    pub fn new(command: Option<&str>) -> KimiWire {
        KimiWire {
            command: command.map(str::to_owned),
        }
    }

    async fn session(
        &self,
        place: &Place<'_>,
        text: String,
        deadline: Instant,
        hooks: &dyn Hooks,
        task: Option<&str>,
    ) -> TurnEnd {
        let dir = place.dir;
        let mut launch = launch_command(
            "kimi-wire",
            &super::clients::KIMI_WIRE,
            self.command.as_deref(),
            &["--wire"],
        );
        launch
            .env
            .push(("KIMI_CLI_NO_AUTO_UPDATE".into(), "1".into()));
        let started = launch.spawn(place, hooks);
        let mut rpc = match started.and_then(|agent| Rpc::new(agent, DIALECT)) {
            Ok(rpc) => rpc,
            Err(e) => return TurnEnd::failed(e),
        };
        let mut session = Session::new(dir, hooks, task);
        let mut clock = TurnClock::new(deadline);
        // Kimi lets a tool run when a hook is not answered in time: give
        // omk until the deadline, whatever the gates' own limits.
        let hook_secs = deadline
            .saturating_duration_since(Instant::now())
            .as_secs()
            .saturating_add(60);
        let init = rpc
            .call(
                "initialize",
                json!({
                    "protocol_version": PROTOCOL_VERSION,
                    "client": {"name": "omk", "version": env!("CARGO_PKG_VERSION")},
                    "capabilities": {"supports_question": false, "supports_plan_mode": false},
                    "hooks": [{"id": "omk-pre-tool-use", "event": "PreToolUse", "matcher": "", "timeout": hook_secs}],
                }),
                clock.start_until(),
                &mut session,
            )
            .await;
        let started = match init {
            Ok(r) => {
                let hooked = r["hooks"]["supported_events"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|e| e == "PreToolUse"));
                hooks.note(
                    "agent_session",
                    json!({"task_id": task, "protocol": r["protocol_version"], "server": r["server"],
                           "pre_tool_use_hook": hooked}),
                );
                Ok(())
            }
            Err(CallError::Refused {
                code: METHOD_NOT_FOUND,
                ..
            }) => {
                hooks.note(
                    "agent_session",
                    json!({"task_id": task, "protocol": "before 1.1: no handshake, no hooks"}),
                );
                Ok(())
            }
            Err(e) => Err(e.describe("initialize")),
        };
        let prompt = match started {
            Ok(()) => rpc
                .request("prompt", json!({ "user_input": text }))
                .await
                .map_err(|e| e.describe("prompt")),
            Err(e) => Err(e),
        };
        match prompt {
            Ok(id) => session.prompt = Some(id),
            Err(e) => {
                let mut out = TurnEnd::failed(e);
                out.timed_out = clock.passed();
                let _ = rpc.agent.finish(Duration::from_secs(1)).await;
                out.stderr_tail = rpc.agent.stderr_tail();
                return out;
            }
        }
        let ending = rpc
            .turn(&mut session, &mut clock, ("cancel", json!({})))
            .await;
        if ending == super::rpc::Ending::Closed && session.status.is_none() {
            session
                .error
                .get_or_insert_with(|| "Kimi exited before the turn finished".into());
        }
        TurnEnd {
            error: session.error.take(),
            timed_out: clock.stopping(),
            status: session.status.take(),
            message: std::mem::take(&mut session.message),
            tokens: session.tokens,
            usd_micros: 0,
            exit_code: rpc.agent.finish(Duration::from_secs(2)).await,
            stderr_tail: rpc.agent.stderr_tail(),
        }
    }
}

impl LiveClient for KimiWire {
    fn name(&self) -> &'static str {
        "kimi-wire"
    }

    fn who(&self) -> &str {
        "Kimi"
    }

    fn done(&self) -> &'static str {
        "finished"
    }

    fn start(&self) -> (String, String) {
        let shown = format!(
            "{} --wire",
            super::clients::KIMI_WIRE.command(self.command.as_deref())
        );
        (shown, "start the legacy Kimi CLI in wire mode".into())
    }

    fn client(&self) -> (crate::sandbox::ClientState, Option<String>) {
        let c = &super::clients::KIMI_WIRE;
        (c.state, Some(c.command(self.command.as_deref())))
    }

    fn turn<'a>(
        &'a self,
        place: Place<'a>,
        text: String,
        deadline: Instant,
        hooks: &'a dyn Hooks,
        task: Option<&'a str>,
    ) -> BoxFuture<'a, TurnEnd> {
        Box::pin(async move { self.session(&place, text, deadline, hooks, task).await })
    }
}

//! The ACP backend: omk as the client of any Agent Client Protocol agent.
//!
//! omk starts the agent in the task's worktree, `initialize`s it (offering
//! the client file-system methods), opens a session in the agent's `default`
//! mode — the one that asks before it acts — and sends the task prompt
//! ([`super::prompt`]). While the turn runs:
//!
//! - `session/request_permission` becomes actions the gates judge live
//!   (`edit`/`delete`/`move` tool calls → file changes on every path the
//!   call names, `execute` → a command, `fetch` → a URL); the agent gets the
//!   allow-once option only if every action is allowed, a reject option
//!   otherwise, with the gate's reason in `_meta.omk`.
//! - `fs/write_text_file` is judged again as a write and, if allowed,
//!   performed through the worktree's capability handle; a refusal is a
//!   JSON-RPC error whose message carries the gate's reason, so the model
//!   sees why. `fs/read_text_file` reads through the same handle (no
//!   escape by `..` or symlinks).
//! - `session/update` tool calls, plans and usage become event-log notes;
//!   message chunks build the final message.
//!
//! At the deadline omk sends `session/cancel`, answers pending permission
//! requests `cancelled`, gives the agent a few seconds to stop, then kills
//! its process group. Tokens come from the turn's usage (or the session's
//! `usage_update`), USD from `usage_update.cost` when it is in USD.

mod session;

use std::path::PathBuf;
use std::time::Duration;

use agent_client_protocol::v1::ConnectionTo;
use agent_client_protocol::v1::schema::{
    ReadTextFileRequest, RequestPermissionRequest, SessionNotification, WriteTextFileRequest,
};
use agent_client_protocol::{Agent, ByteStreams, Client};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

use super::turn::{LiveClient, TurnEnd};
use super::{AgentError, BoxFuture, Hooks, Place, stdio};
use crate::sandbox::ClientState;
use session::{FromAgent, State};

/// How to start an ACP agent.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The backend's name in logs (`acp`, `kimi`).
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Added to the agent's environment.
    pub env: Vec<(String, String)>,
    /// The command line, for logs and the start-the-agent action.
    pub shown: String,
    /// A prompt that makes the agent report the session's token total,
    /// and how to read its answer (Kimi's `/usage`), for agents whose turn
    /// result carries no usage.
    pub usage_prompt: Option<UsagePrompt>,
    /// The client's settings and endpoint, for a confined task.
    pub state: ClientState,
    /// The command line it runs, for the task's sandbox profile.
    pub command: String,
    /// Answer a read of a file that does not exist with empty text, not
    /// an error. The Gemini CLI (0.61) checks for the file before each
    /// write, and its ACP bridge sees an error answer as a plain object it
    /// cannot tell from other failures, so every new file's write fails.
    pub missing_is_empty: bool,
    /// The flag naming the port a client that serves itself listens on
    /// (`--port`), given the confined run's port
    /// ([`crate::sandbox::Confinement::serve_port`]); unconfined, the
    /// client picks one.
    pub port_flag: Option<&'static str>,
}

/// A prompt asking for the session's token total, and its reader.
pub type UsagePrompt = (&'static str, fn(&str) -> Option<u64>);

impl Launch {
    /// Starts it in `place`, with the place's environment and its own
    /// (`env`) and the place's confinement; the process group is reported
    /// to `hooks` at once.
    pub fn spawn(&self, place: &Place<'_>, hooks: &dyn Hooks) -> Result<stdio::Agent, String> {
        let mut env = place.env.clone();
        env.extend(self.env.iter().cloned());
        let mut args = self.args.clone();
        if let (Some(flag), Some(port)) = (self.port_flag, place.confinement.serve_port()) {
            args.extend([flag.to_owned(), port.to_string()]);
        }
        stdio::spawn(
            &self.program,
            &args,
            place.dir,
            &env,
            place.confinement,
            &|pgid| hooks.process_started(pgid),
        )
    }

    /// `sh -c COMMAND`.
    pub fn shell(command: &str) -> Result<Launch, AgentError> {
        if command.trim().is_empty() {
            return Err(AgentError {
                agent: "acp".into(),
                message: "the command is empty".into(),
                help: Some("name the agent's command: `--agent \"acp:my-agent --acp\"`".into()),
            });
        }
        Ok(Launch {
            name: "acp",
            program: PathBuf::from("sh"),
            args: vec!["-c".into(), command.to_owned()],
            env: Vec::new(),
            shown: command.to_owned(),
            usage_prompt: None,
            missing_is_empty: false,
            port_flag: None,
            state: ClientState::default(),
            command: command.to_owned(),
        })
    }
}

/// The ACP backend.
#[derive(Debug)]
pub struct Acp {
    launch: Launch,
}

impl Acp {
    pub fn new(launch: Launch) -> Acp {
        Acp { launch }
    }
}

impl LiveClient for Acp {
    fn name(&self) -> &'static str {
        self.launch.name
    }

    fn who(&self) -> &str {
        self.launch.name
    }

    fn done(&self) -> &'static str {
        "end_turn"
    }

    fn start(&self) -> (String, String) {
        let detail = format!("start the {} agent", self.launch.name);
        (self.launch.shown.clone(), detail)
    }

    fn client(&self) -> (ClientState, Option<String>) {
        (self.launch.state, Some(self.launch.command.clone()))
    }

    fn turn<'a>(
        &'a self,
        place: Place<'a>,
        text: String,
        deadline: Instant,
        hooks: &'a dyn Hooks,
        task: Option<&'a str>,
    ) -> BoxFuture<'a, TurnEnd> {
        Box::pin(async move { turn(&self.launch, &place, text, deadline, hooks, task).await })
    }
}

/// Starts the agent in `dir`, runs one prompt turn to its end or the
/// deadline, and stops the agent.
pub async fn turn(
    launch: &Launch,
    place: &Place<'_>,
    text: String,
    deadline: Instant,
    hooks: &dyn Hooks,
    task: Option<&str>,
) -> TurnEnd {
    let mut agent = match launch.spawn(place, hooks) {
        Ok(a) => a,
        Err(e) => return TurnEnd::failed(e),
    };
    let (Some(stdin), Some(stdout)) = (agent.stdin.take(), agent.stdout.take()) else {
        return TurnEnd::failed("the agent's stdio is not piped".into());
    };
    let transport = ByteStreams::new(stdin.compat_write(), stdout.compat());
    let (tx, rx) = mpsc::unbounded_channel::<FromAgent>();
    let (tp, tw, tr, tu) = (tx.clone(), tx.clone(), tx.clone(), tx);
    let mut state = State {
        dir: place.dir.to_path_buf(),
        hooks,
        task,
        turn: TurnEnd::default(),
        message: String::new(),
        cancelled: false,
        calls: Default::default(),
        active: false,
        missing_is_empty: launch.missing_is_empty,
    };
    let result = Client
        .v1()
        .name("omk")
        .on_receive_request(
            async move |req: RequestPermissionRequest, responder, _cx| {
                let _ = tp.send(FromAgent::Permission(Box::new(req), responder));
                Ok(())
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |req: WriteTextFileRequest, responder, _cx| {
                let _ = tw.send(FromAgent::Write(Box::new(req), responder));
                Ok(())
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |req: ReadTextFileRequest, responder, _cx| {
                let _ = tr.send(FromAgent::Read(Box::new(req), responder));
                Ok(())
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_notification(
            async move |n: SessionNotification, _cx| {
                let _ = tu.send(FromAgent::Update(Box::new(n)));
                Ok(())
            },
            agent_client_protocol::on_receive_notification!(),
        )
        .connect_with(transport, async |cx: ConnectionTo<Agent>| {
            state
                .drive(cx, rx, text, deadline, launch.usage_prompt)
                .await;
            Ok(())
        })
        .await;
    if let Err(e) = result
        && state.turn.error.is_none()
        && state.turn.status.is_none()
    {
        state.turn.error = Some(format!("the ACP connection failed: {e}"));
    }
    let mut turn = std::mem::take(&mut state.turn);
    if turn.message.is_empty() {
        turn.message = std::mem::take(&mut state.message);
    }
    turn.exit_code = agent.finish(Duration::from_secs(2)).await;
    turn.stderr_tail = agent.stderr_tail();
    turn
}

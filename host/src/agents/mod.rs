//! Agent backends: what does a task's work, behind one trait.
//!
//! A [`Backend`] plans (proposes tasks for a goal) and runs one task in its
//! worktree. While it runs it talks to omk through [`Hooks`]: every step it
//! is about to take — a file write or delete, a command — goes to
//! [`Hooks::action`] first, which the gates judge live; what it reports
//! (tool calls, messages, usage) goes to [`Hooks::note`]. A backend that
//! cannot ask before acting says so with [`Backend::live_gating`], and the
//! proof records the gap.
//!
//! Backends here:
//! - [`scripted`]: deterministic, from a script file; for the demo and tests.
//! - [`exec`]: any command, with the task as JSON on stdin.
//! - [`acp`]: any Agent Client Protocol agent, gated live.
//! - [`kimi`]: Kimi Code over ACP (gated live) and its print mode (not).
//! - [`claude`]: Claude Code through its stdio permission channel.
//! - [`codex`]: Codex through `codex app-server` approvals.
//! - [`wire`]: the legacy Kimi CLI through its wire protocol's approvals
//!   and `PreToolUse` hooks.
//!
//! What they share: [`judge`] asks the gates about an agent's request (the
//! first refusal wins, nothing may change while planning); [`turn`] is the
//! clock of a live turn (setup limit, deadline, cancel, grace) and how it
//! ended; [`stdio`] runs a client process and reads its lines; [`rpc`] is
//! the JSON-RPC both Codex and the Kimi CLI's wire speak. [`doctor`] says
//! which backends can run here. Real agents get the prompt of [`prompt`]
//! and work on files through [`files`].

pub mod acp;
pub mod claude;
pub mod clients;
pub mod codex;
pub mod doctor;
pub mod exec;
pub mod files;
pub mod judge;
pub mod kimi;
pub mod kimi_print;
pub mod opencode;
pub mod process;
pub mod prompt;
pub mod rpc;
pub mod scripted;
pub mod stdio;
pub mod turn;
pub mod wire;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use omk_gate_sdk::{AgentAction, Evidence, TaskProposal};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::sandbox::{ClientState, Confinement};

/// How long an agent may take to plan a goal, in seconds.
pub const PLAN_SECS: u64 = 600;

/// When a planning turn starting now must end.
pub fn plan_deadline() -> tokio::time::Instant {
    process::deadline_in(PLAN_SECS)
}

/// A boxed future, for trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which backend a goal uses, and how; stored in `goal.json` so that
/// `omk goal execute` resumes with the same agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentSpec {
    /// The scripted agent, reading `script`.
    Scripted { script: PathBuf },
    /// Any command, run with `sh -c` in the task's worktree.
    Exec { command: String },
    /// Any ACP agent, started with `sh -c command`.
    Acp { command: String },
    /// Kimi Code; `command` replaces `kimi` (e.g. `node /path/main.mjs`).
    Kimi {
        mode: kimi::Mode,
        #[serde(default)]
        command: Option<String>,
    },
    /// Claude Code; `command` replaces `claude`.
    Claude {
        #[serde(default)]
        command: Option<String>,
    },
    /// Codex; `command` replaces `codex`.
    Codex {
        #[serde(default)]
        command: Option<String>,
    },
    /// The Gemini CLI over ACP (`gemini --acp`); `command` replaces
    /// `gemini`.
    Gemini {
        #[serde(default)]
        command: Option<String>,
    },
    /// OpenCode over ACP (`opencode acp`); `command` replaces `opencode`.
    #[serde(rename = "opencode")]
    OpenCode {
        #[serde(default)]
        command: Option<String>,
    },
}

impl AgentSpec {
    /// The spec `omk goal run --agent NAME [--script FILE] [--command CMD]`
    /// names; `None` without an agent. Checks what can be checked now: the
    /// script parses, the command is not empty.
    pub fn parse(
        name: Option<&str>,
        script: Option<&Path>,
        command: Option<&str>,
    ) -> Result<Option<AgentSpec>, AgentError> {
        let err = |agent: &str, message: String, help: &str| AgentError {
            agent: agent.to_owned(),
            message,
            help: Some(help.to_owned()),
        };
        let Some(name) = name else {
            if script.is_some() || command.is_some() {
                return Err(err(
                    "(none)",
                    "`--script` and `--command` need `--agent`".into(),
                    "add `--agent scripted` or `--agent exec`",
                ));
            }
            return Ok(None);
        };
        let no_script = || match script {
            Some(_) => Err(err(
                name,
                format!("`--script` is for the scripted agent, not `{name}`"),
                "drop `--script`",
            )),
            None => Ok(()),
        };
        let command = command.map(str::to_owned);
        Ok(Some(match name {
            "scripted" => {
                let script = script.ok_or_else(|| {
                    err(
                        name,
                        "the scripted agent needs a script".into(),
                        "pass `--script FILE` (see `omk demo` for one)",
                    )
                })?;
                let script = script.canonicalize().map_err(|e| {
                    err(
                        name,
                        format!("script `{}`: {e}", script.display()),
                        "pass an existing script file",
                    )
                })?;
                // Fail now, not at the first task, on a script that does not parse.
                scripted::Scripted::load(&script)?;
                AgentSpec::Scripted { script }
            }
            "exec" => {
                let command = command.ok_or_else(|| {
                    err(
                        name,
                        "the exec agent needs a command".into(),
                        "pass `--command \"CMD\"`, run with `sh -c` in each task's worktree",
                    )
                })?;
                exec::Exec::new(&command)?;
                AgentSpec::Exec { command }
            }
            "kimi" | "kimi-print" | "kimi-wire" => {
                no_script()?;
                let mode = match name {
                    "kimi" => kimi::Mode::Acp,
                    "kimi-print" => kimi::Mode::Print,
                    _ => kimi::Mode::Wire,
                };
                AgentSpec::Kimi { mode, command }
            }
            "claude" => {
                no_script()?;
                AgentSpec::Claude { command }
            }
            "codex" => {
                no_script()?;
                AgentSpec::Codex { command }
            }
            "gemini" => {
                no_script()?;
                AgentSpec::Gemini { command }
            }
            "opencode" => {
                no_script()?;
                opencode::launch(command.as_deref())?;
                AgentSpec::OpenCode { command }
            }
            acp if acp == "acp" || acp.starts_with("acp:") => {
                no_script()?;
                let inline = acp
                    .strip_prefix("acp:")
                    .map(str::trim)
                    .filter(|c| !c.is_empty());
                let command = match (inline, command) {
                    (Some(c), None) => c.to_owned(),
                    (None, Some(c)) => c,
                    (Some(_), Some(_)) => {
                        return Err(err(
                            "acp",
                            "the ACP agent's command is given twice".into(),
                            "use either `--agent acp:CMD` or `--agent acp --command CMD`",
                        ));
                    }
                    (None, None) => {
                        return Err(err(
                            "acp",
                            "the ACP agent needs a command".into(),
                            "name it: `--agent \"acp:my-agent --stdio\"`",
                        ));
                    }
                };
                acp::Launch::shell(&command)?;
                AgentSpec::Acp { command }
            }
            other => {
                return Err(err(
                    other,
                    format!("there is no agent called `{other}`"),
                    "the agents are `kimi`, `kimi-print`, `kimi-wire`, `claude`, `codex`, `gemini`, `opencode`, `acp:CMD`, `exec` and `scripted`",
                ));
            }
        }))
    }

    /// The backend's name.
    pub fn name(&self) -> &'static str {
        match self {
            AgentSpec::Scripted { .. } => "scripted",
            AgentSpec::Exec { .. } => "exec",
            AgentSpec::Acp { .. } => "acp",
            AgentSpec::Kimi { mode, .. } => mode.agent_name(),
            AgentSpec::Claude { .. } => "claude",
            AgentSpec::Codex { .. } => "codex",
            AgentSpec::Gemini { .. } => "gemini",
            AgentSpec::OpenCode { .. } => "opencode",
        }
    }
}

/// A backend that cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("agent `{agent}`: {message}")]
pub struct AgentError {
    pub agent: String,
    pub message: String,
    pub help: Option<String>,
}

impl omk_core::diagnose::Diagnose for AgentError {
    fn help(&self) -> Option<String> {
        self.help.clone()
    }
}

/// Builds the backend a spec names.
pub fn backend(spec: &AgentSpec) -> Result<Box<dyn Backend>, AgentError> {
    Ok(match spec {
        AgentSpec::Scripted { script } => Box::new(scripted::Scripted::load(script)?),
        AgentSpec::Exec { command } => Box::new(exec::Exec::new(command)?),
        AgentSpec::Acp { command } => Box::new(acp::Acp::new(acp::Launch::shell(command)?)),
        AgentSpec::Kimi { mode, command } => kimi::backend(*mode, command.as_deref())?,
        AgentSpec::Claude { command } => Box::new(claude::Claude::new(command.as_deref())?),
        AgentSpec::Codex { command } => Box::new(codex::Codex::new(command.as_deref())?),
        AgentSpec::Gemini { command } => Box::new(acp::Acp::new(acp::Launch {
            missing_is_empty: true,
            ..launch_command("gemini", &clients::GEMINI, command.as_deref(), &["--acp"])
        })),
        AgentSpec::OpenCode { command } => {
            Box::new(acp::Acp::new(opencode::launch(command.as_deref())?))
        }
    })
}

/// How to start a real client: its command line (`--command`, else
/// `$OMK_…`, else its program on `PATH`; see [`clients::Client::command`])
/// with `args` appended.
pub fn launch_command(
    name: &'static str,
    client: &clients::Client,
    explicit: Option<&str>,
    args: &[&str],
) -> acp::Launch {
    let command = client.command(explicit);
    let mut all = vec![
        "-c".to_owned(),
        format!("{command} \"$@\""),
        "sh".to_owned(),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    acp::Launch {
        name,
        program: PathBuf::from("sh"),
        args: all,
        env: Vec::new(),
        shown: format!("{command} {}", args.join(" ")),
        usage_prompt: None,
        state: client.state,
        command,
        missing_is_empty: false,
        port_flag: None,
    }
}

/// Judges starting the agent of `job` as the command `shown`; the report
/// of a refused start, which fails the attempt, or `None` to go on.
pub fn refuse_start(hooks: &dyn Hooks, job: &Job, shown: &str, detail: &str) -> Option<Report> {
    let permit = judge::Judge::new(hooks, Some(&job.task.id)).one(
        omk_gate_sdk::ActionKind::RunCommand,
        shown,
        detail,
    );
    permit.refusal().map(|reason| Report {
        output_tail: format!("refused to start the agent: {reason}"),
        ..Default::default()
    })
}

/// What the goal is, for planning.
#[derive(Debug, Clone, Serialize)]
pub struct Brief {
    pub goal_id: String,
    pub goal: String,
    /// A checkout of the goal's base commit to look at.
    pub dir: PathBuf,
    pub policy_roots: Vec<String>,
    /// How the planning session's processes are confined.
    #[serde(skip)]
    pub confinement: Confinement,
}

/// Where an agent's processes run: their folder, their environment, and
/// the confinement every process started there gets.
#[derive(Debug)]
pub struct Place<'a> {
    pub dir: &'a Path,
    pub env: Vec<(String, String)>,
    pub confinement: &'a Confinement,
}

impl Brief {
    /// Where the planning session runs.
    pub fn place(&self) -> Place<'_> {
        Place {
            dir: &self.dir,
            env: self.env(),
            confinement: &self.confinement,
        }
    }

    /// The environment of an agent's planning session.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("OMK_GOAL_ID".into(), self.goal_id.clone()),
            ("OMK_GOAL".into(), self.goal.clone()),
            ("OMK_PHASE".into(), "plan".into()),
        ]
    }
}

/// One task to run.
#[derive(Debug, Clone)]
pub struct Job {
    pub goal_id: String,
    /// The goal, in words.
    pub goal: String,
    pub task: TaskProposal,
    /// 1 for the first run, 2 for the first retry, …
    pub attempt: u32,
    /// The task's worktree; the agent works only here.
    pub worktree: PathBuf,
    /// When the task's time budget runs out.
    pub deadline: Instant,
    /// `KEY=VALUE` set in the agent's environment so a later omk can
    /// recognise its processes (see [`process::alive_with_marker`]).
    pub lease_marker: (String, String),
    /// How every process of the task is confined.
    pub confinement: Confinement,
}

impl Job {
    /// Where the task's agent runs.
    pub fn place(&self) -> Place<'_> {
        Place {
            dir: &self.worktree,
            env: self.env(),
            confinement: &self.confinement,
        }
    }

    /// The environment every agent process gets.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("OMK_GOAL_ID".into(), self.goal_id.clone()),
            ("OMK_TASK_ID".into(), self.task.id.clone()),
            ("OMK_TASK_ATTEMPT".into(), self.attempt.to_string()),
            ("OMK_WORKTREE".into(), self.worktree.display().to_string()),
            ("OMK_PHASE".into(), "execute".into()),
            self.lease_marker.clone(),
        ]
    }
}

/// omk's answer to an action: go ahead, or not and why (for the agent,
/// which should tell its model, and for the log), or — in a guarded
/// session whose client has a prompt of its own — ask the person at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permit {
    Allowed,
    Refused(String),
    /// Not yet: a gate asks that a person approve it, for the reason
    /// given. Where no one can be asked it is a refusal.
    Ask(String),
}

impl Permit {
    pub fn allowed(&self) -> bool {
        matches!(self, Permit::Allowed)
    }

    /// Why not, when refused (or waiting for a person).
    pub fn refusal(self) -> Option<String> {
        match self {
            Permit::Allowed => None,
            Permit::Refused(reason) | Permit::Ask(reason) => Some(reason),
        }
    }
}

/// How a running agent talks to omk.
pub trait Hooks: Send + Sync {
    /// Judges and records an action the agent is about to take.
    fn action(&self, action: AgentAction) -> Permit;
    /// Records something the agent reported.
    fn note(&self, kind: &str, payload: Value);
    /// Records the process group of a process the agent started.
    fn process_started(&self, pgid: u32);
    /// Which arguments of tool calls name files, per the project's gates
    /// (none by default).
    fn tool_paths(&self) -> Option<&omk_core::mcp::ToolPathTable> {
        None
    }
}

/// What an agent's run produced.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `None` when it was killed.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// Follow-up tasks the agent proposed.
    pub proposals: Vec<TaskProposal>,
    /// Evidence the agent offers for acceptance criteria.
    pub evidence: Vec<Evidence>,
    pub tokens: u64,
    pub usd_micros: u64,
    /// The last of its output, for people.
    pub output_tail: String,
}

impl Report {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// An agent backend.
pub trait Backend: Send + Sync {
    /// Its name (`scripted`, `exec`).
    fn name(&self) -> &'static str;

    /// Whether it asks before each file change and command, so the gates
    /// judge them live.
    fn live_gating(&self) -> bool;

    /// Proposes the first tasks for a goal.
    fn plan<'a>(
        &'a self,
        brief: &'a Brief,
        hooks: &'a dyn Hooks,
    ) -> BoxFuture<'a, Result<Vec<TaskProposal>, String>>;

    /// Runs one task in its worktree until it exits or its deadline.
    fn run<'a>(&'a self, job: &'a Job, hooks: &'a dyn Hooks) -> BoxFuture<'a, Report>;

    /// The client it starts, for a confined task's profile: where it keeps
    /// its settings and talks to its model, and its command line (the
    /// programs and files it names are readable). Nothing for a backend
    /// that starts no client of its own.
    fn client(&self) -> (ClientState, Option<String>) {
        (ClientState::default(), None)
    }
}

/// Lines an agent prints to talk to omk.
pub mod protocol {
    /// `OMK_TASK_PROPOSAL: {json}` — a follow-up task.
    pub const PROPOSAL: &str = "OMK_TASK_PROPOSAL:";
    /// `OMK_EVIDENCE: {json}` — evidence for a criterion.
    pub const EVIDENCE: &str = "OMK_EVIDENCE:";
    /// `OMK_USAGE: {"tokens": N, "usd_micros": M}` — spend to add.
    pub const USAGE: &str = "OMK_USAGE:";
}

/// Reads one protocol line into `report`; returns an error message for a
/// malformed one (the line is then ignored).
pub fn read_protocol_line(line: &str, report: &mut Report) -> Option<String> {
    let line = line.trim();
    let parse = |rest: &str| serde_json::from_str::<Value>(rest.trim());
    if let Some(rest) = line.strip_prefix(protocol::PROPOSAL) {
        match parse(rest).and_then(serde_json::from_value::<TaskProposal>) {
            Ok(p) => report.proposals.push(p),
            Err(e) => return Some(format!("ignored a malformed task proposal: {e}")),
        }
    } else if let Some(rest) = line.strip_prefix(protocol::EVIDENCE) {
        match parse(rest).and_then(serde_json::from_value::<Evidence>) {
            Ok(e) => report.evidence.push(e),
            Err(e) => return Some(format!("ignored malformed evidence: {e}")),
        }
    } else if let Some(rest) = line.strip_prefix(protocol::USAGE) {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Usage {
            #[serde(default)]
            tokens: u64,
            #[serde(default)]
            usd_micros: u64,
        }
        match parse(rest).and_then(serde_json::from_value::<Usage>) {
            Ok(u) => {
                report.tokens = report.tokens.saturating_add(u.tokens);
                report.usd_micros = report.usd_micros.saturating_add(u.usd_micros);
            }
            Err(e) => return Some(format!("ignored malformed usage: {e}")),
        }
    }
    None
}

/// Makes `path` (absolute, or relative to `worktree`) project-relative, for
/// gates; `None` when it lies outside the worktree. The worktree may be
/// named through a symlink: agents that report physical paths (from
/// `getcwd`) are matched against its real path too.
pub fn relative_to(worktree: &Path, path: &str) -> Option<String> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Some(path.to_owned());
    }
    let real = worktree.canonicalize().ok();
    [Some(worktree), real.as_deref()]
        .into_iter()
        .flatten()
        .find_map(|w| p.strip_prefix(w).ok())
        .map(|r| r.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_lines() {
        let mut r = Report::default();
        assert_eq!(
            read_protocol_line(
                r#"OMK_TASK_PROPOSAL: {"id":"next","budget_secs":5}"#,
                &mut r
            ),
            None
        );
        assert_eq!(
            read_protocol_line(
                r#"OMK_EVIDENCE: {"kind":"note","summary":"s","criterion":"c"}"#,
                &mut r
            ),
            None
        );
        assert_eq!(
            read_protocol_line(r#"OMK_USAGE: {"tokens":7}"#, &mut r),
            None
        );
        assert_eq!(read_protocol_line("plain output", &mut r), None);
        assert!(read_protocol_line("OMK_TASK_PROPOSAL: {oops", &mut r).is_some());
        assert_eq!((r.proposals.len(), r.evidence.len(), r.tokens), (1, 1, 7));
    }
}

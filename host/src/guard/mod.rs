//! Guard mode: the project's gates judge the agents people run by hand.
//!
//! Claude Code, Codex, the Kimi CLI and the Gemini CLI each ask a command
//! before a tool runs (a `PreToolUse` or `BeforeTool` hook); OpenCode asks
//! a plugin omk writes, which runs the same command. `omk guard install` puts `omk hook
//! <client>` there; each call of it:
//!
//! 1. reads the client's event on stdin and turns the tool call into gate
//!    actions ([`clients`]) — a file write or delete with its real target
//!    (symlinks followed; `..`, `~` and paths outside the project refused
//!    by omk itself), a command, a URL, or `other` with the tool's name;
//! 2. loads the project's gates as every omk command does (`.omk/gates.toml`,
//!    std gates, bundles, trust policy) and judges each action as one of a
//!    task whose write set is `[guard] write_roots` (default: the whole
//!    project);
//! 3. records the call in the session's own hash-chained log, a goal
//!    ([`record`]), so it replays, verifies and reports as goals do;
//! 4. answers as every client reads it: exit 0 to go on, exit 2 with
//!    the gate's reason on stderr, which the model sees.
//!
//! Calls are answered by the user's judge ([`daemon`]), which keeps the
//! gates loaded, when one runs; else in the hook's own process.
//!
//! `omk guard run` gives a client the hook for one run only
//! ([`install::one_run`]) and confines it to the project ([`confine`]);
//! its hook, confined too, asks a [`judge`] omk runs outside.
//!
//! It fails closed: an event it cannot read, a project whose gates do not
//! load, a faulting gate or a record it cannot write all deny, with the
//! reason.

pub mod clients;
pub mod confine;
pub mod daemon;
pub mod install;
pub mod judge;
mod record;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::agents::judge::Judge;
use crate::agents::{Hooks, Permit};
use crate::gates::{GateSet, GatesConfig};
use crate::goal::GoalStore;

pub use record::{Record, SESSION_TASK};

/// A client whose hooks omk answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// Claude Code (`.claude/settings.json`, `PreToolUse`).
    Claude,
    /// Codex (`.codex/hooks.json`, `PreToolUse`).
    Codex,
    /// The Kimi CLI (`[[hooks]]` in its `config.toml`, `PreToolUse`).
    Kimi,
    /// The Gemini CLI (`.gemini/settings.json`, `BeforeTool`).
    Gemini,
    /// OpenCode (a plugin omk writes, `tool.execute.before`).
    OpenCode,
}

impl Client {
    /// Every client, in the order commands list them.
    pub const ALL: [Client; 5] = [
        Client::Claude,
        Client::Codex,
        Client::Kimi,
        Client::Gemini,
        Client::OpenCode,
    ];

    /// The client called `name` (its program's or command's name).
    pub fn from_name(name: &str) -> Option<Client> {
        Client::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The client's name in commands, records and files.
    pub fn name(self) -> &'static str {
        match self {
            Client::Claude => "claude",
            Client::Codex => "codex",
            Client::Kimi => "kimi",
            Client::Gemini => "gemini",
            Client::OpenCode => "opencode",
        }
    }

    /// The hook event omk answers for the client: the one it sends
    /// before a tool runs.
    pub fn event(self) -> &'static str {
        match self {
            Client::Gemini => "BeforeTool",
            Client::OpenCode => "tool.execute.before",
            _ => "PreToolUse",
        }
    }
}

/// What `omk hook` prints and exits with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
    /// The session's record, when the call reached it.
    pub record: Option<String>,
}

/// The largest hook event omk reads (16 MiB): a tool call bigger than
/// that is refused.
pub const MAX_EVENT_BYTES: u64 = 16 << 20;

/// The answer refusing a call omk could not judge.
pub fn refuse(client: Client, reason: String) -> Reply {
    clients::reply(
        client,
        &Permit::Refused(format!("omk fails closed: {reason}")),
    )
}

/// A project's policy for guarded sessions, loaded: its gates and its
/// write roots.
pub struct Policy {
    root: PathBuf,
    gates: GateSet,
    roots: Vec<String>,
    approvals: omk_core::approvals::ApprovalSettings,
}

impl Policy {
    /// Loads the policy of the project at `root` as every omk command
    /// does (`.omk/gates.toml`, std gates, bundles, trust policy).
    pub fn load(root: &Path) -> Result<Policy, String> {
        let config = GatesConfig::for_project(root).map_err(|e| e.to_string())?;
        let gates = GateSet::for_config(&config).map_err(|e| {
            let help = crate::error::diagnose(&e).help;
            match help {
                Some(h) => format!("{e} (help: {h})"),
                None => e.to_string(),
            }
        })?;
        Ok(Policy {
            root: root.to_owned(),
            gates,
            roots: config.guard.roots(),
            approvals: config.approvals,
        })
    }
}

/// Answers one hook call of `client`: `input` is what the client wrote on
/// stdin; `cwd` is where the hook runs (the project, unless the event
/// names another directory), whose policy is loaded for the call. Never
/// fails: every error is a denial.
pub fn hook(client: Client, input: &[u8], cwd: &Path) -> Reply {
    hook_loading(client, input, cwd, |root| Policy::load(root).map(Arc::new))
}

/// [`hook`], the project's policy got from `load` (given its root).
fn hook_loading(
    client: Client,
    input: &[u8],
    cwd: &Path,
    load: impl FnOnce(&Path) -> Result<Arc<Policy>, String>,
) -> Reply {
    answer(
        client,
        parse(input).and_then(|event| {
            // A relative `cwd` is the client's, relative to where the hook
            // runs (not to a judge's own folder).
            let from = event["cwd"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map_or_else(|| cwd.to_owned(), |c| cwd.join(c));
            let policy = load(&project_root(&from))?;
            judge_event(client, &event, &policy)
        }),
    )
}

/// [`hook`], judged by `policy`, loaded once for many calls (a run's
/// judge: the policy a session started with holds for all of it).
pub fn hook_with(client: Client, input: &[u8], policy: &Policy) -> Reply {
    answer(
        client,
        parse(input).and_then(|event| judge_event(client, &event, policy)),
    )
}

fn parse(input: &[u8]) -> Result<serde_json::Value, String> {
    serde_json::from_slice(input).map_err(|e| format!("the hook's event is not JSON ({e})"))
}

/// The field of an event omk's MCP gateway writes to record one of its
/// notes in the session ([`crate::mcp`]): `{"note": …, "detail": …}`.
pub const NOTE_FIELD: &str = "omk_note";

/// The notes the gateway may record; any other is refused, so that what
/// can reach a judge cannot write, say, a worker's result into a record.
const GATEWAY_NOTES: [&str; 2] = [
    <crate::proof::events::ToolAnswered as crate::proof::events::NoteDetail>::NOTE,
    <crate::proof::events::ToolsReviewed as crate::proof::events::NoteDetail>::NOTE,
];

fn judge_event(
    client: Client,
    event: &serde_json::Value,
    policy: &Policy,
) -> Result<(Permit, String), String> {
    match event.get(NOTE_FIELD) {
        Some(note) => noted(client, event, note, policy),
        None => judge(client, clients::call(client, event)?, policy),
    }
}

fn answer(client: Client, judged: Result<(Permit, String), String>) -> Reply {
    let (permit, record) = match judged {
        Ok((p, id)) => (p, Some(id)),
        Err(reason) => (Permit::Refused(format!("omk fails closed: {reason}")), None),
    };
    let mut reply = clients::reply(client, &permit);
    reply.record = record;
    reply
}

/// Records a note of omk's MCP gateway in the session's record.
fn noted(
    client: Client,
    event: &serde_json::Value,
    note: &serde_json::Value,
    policy: &Policy,
) -> Result<(Permit, String), String> {
    let kind = note["note"].as_str().unwrap_or_default();
    if !GATEWAY_NOTES.contains(&kind) {
        return Err(format!("`{kind}` is not a note omk's MCP gateway writes"));
    }
    let session_id = event["session_id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or("the note has no `session_id`")?;
    let store = GoalStore::open_default().map_err(|e| e.to_string())?;
    let record = Record::open(&store, client, session_id, &policy.root, &policy.roots)?;
    let id = record.id().to_owned();
    let hooks = record::GuardHooks::new(record, policy, client);
    hooks.note(kind, note["detail"].clone());
    hooks.into_record().close()?;
    Ok((Permit::Allowed, id))
}

/// Judges the call under `policy`; the permit and the record's id.
fn judge(client: Client, call: clients::Call, policy: &Policy) -> Result<(Permit, String), String> {
    let store = GoalStore::open_default().map_err(|e| e.to_string())?;
    let record = Record::open(
        &store,
        client,
        &call.session_id,
        &policy.root,
        &policy.roots,
    )?;
    let mut record = record;
    if let (Client::Claude, Some(t)) = (client, &call.transcript) {
        record.read_prompt_answers(t)?;
    }
    let id = record.id().to_owned();
    let hooks = record::GuardHooks::new(record, policy, client).for_call(call.call_id.clone());
    let detail = format!("{} hook: {}", client.name(), call.tool);
    let permit = match call.actions {
        Ok(actions) => Judge::new(&hooks, Some(SESSION_TASK)).all(actions, &detail),
        Err(reason) => {
            hooks.note(
                "refused_call",
                serde_json::json!({"tool": call.tool, "reason": reason}),
            );
            Permit::Refused(reason)
        }
    };
    hooks.into_record().close()?;
    Ok((permit, id))
}

/// The project a hook call is about: the nearest folder up from `dir` that
/// holds `.omk/` or `.git`, else `dir` itself.
pub fn project_root(dir: &Path) -> PathBuf {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    dir.ancestors()
        .find(|d| d.join(".omk").is_dir() || d.join(".git").exists())
        .map_or_else(|| dir.clone(), Path::to_path_buf)
}

//! The events omk writes: one type per kind, used by every writer (through
//! [`EventLog::record`](super::EventLog::record)) and every reader (through
//! [`Body::of`]). The log stores each payload as JSON under the event's
//! `kind`; the types here are that JSON's schema, checked by the compiler.
//!
//! | kind | type | what it records |
//! |---|---|---|
//! | `goal_created` | [`GoalCreated`] | the goal, as created |
//! | `goal_status_changed` | [`GoalStatusChanged`] | `from`, `to`, `reason` |
//! | `budget_added` | [`BudgetAdded`] | the amounts added; the new `limits` |
//! | `wave_started` | [`WaveStarted`] | `run_key`, `kind`, `plan_sha256`, `now_ms`, `proposals` (count) |
//! | `task_proposed` | [`TaskProposed`] | `index`, `task_id`, `run_key`, `proposal` |
//! | `gate_decision` | [`GateDecision`] | one gate's decision (name, version, sha256, stage, mode, verdict, code, reason, fault, config, bundle, micros), its `input_sha256`, and the task (and action) it was about |
//! | `task_accepted` | [`TaskAccepted`] | `index`, `task_id`, `run_key`, `budget_snapshot` |
//! | `task_rejected` | [`TaskRejected`] | `index`, `task_id`, `run_key`, `reason`, `code`, `gate` |
//! | `wave_completed` | [`WaveCompleted`] | `run_key`, `plan_sha256`, `evidence` |
//! | `task_started` | [`TaskStarted`] | `task_id`, `attempt`, `branch`, `worktree`, `lease_expires_at`, `agent`, `live_gating`, `sandbox` (its profile), `workspace` (`overlay` or `worktree`) |
//! | `agent_action` | [`AgentAction`] | `task_id`, `action`, `allowed`, and when refused `gate`, `code`, `reason`; when a person approved it, `approval` |
//! | `approval_asked` | [`ApprovalAsked`] | `id`, `task_id`, `action`, `digest`, `gate`, `code`, `reason`, `expires_at` |
//! | `approval_answered` | [`ApprovalAnswered`] | `id`, `task_id`, `digest`, `approved`, `by`, `note`, `timed_out` |
//! | `agent_note` | [`AgentNote`] | `note`, `detail`: what the agent reported (`tool_call`, `usage`, `agent_message`, …; `unjudged_action` for a step it took without asking, which the proof lists as a gap); the notes omk writes itself have typed details ([`NoteDetail`]): [`RefusedChangesChecked`], [`WorkerResult`], [`WorkerReplyIgnored`], [`WorkerRefused`], [`LateResultIgnored`] |
//! | `agent_finished` | [`AgentFinished`] | `task_id`, `exit_code`, `timed_out`, `secs`, `tokens`, `usd_micros`, `output_tail` |
//! | `task_outcome` | [`TaskOutcome`] | `task_id`, `outcome` (changed files, evidence, checks) |
//! | `task_merged` | [`TaskMerged`] | `task_id`, `branch`, `into`, `commit` |
//! | `task_completed` | [`TaskCompleted`] | `task_id`, `attempt`, `commit`, `merged`, `changed_files`, `follow_ups` |
//! | `task_failed` | [`TaskFailed`] | `task_id`, `attempt`, `reason`, `code`, `will_retry` |
//! | `task_reclaimed` | [`TaskReclaimed`] | `task_id`, `reason` |
//! | `proof_written` | [`ProofWritten`] | `path`, `ready`, `head_hash` (of the log before this event) |
//! | `log_checkpoint` | [`Checkpoint`] | a signed checkpoint: `goal_id`, `seq` and `head` (the event before this one), `key`, `signature` |
//! | `log_repaired` | [`Repaired`] | `torn_sha256`, `torn_bytes`: the torn line a crash left just before this event |
//!
//! Readers are lenient where logs differ by age: a field added later is an
//! `Option` (or has a default), so a log written by an earlier omk reads.
//! An event of a kind this omk does not know (written by a newer one) reads
//! as [`Body::Other`] and is shown as it is, never dropped; one of a known
//! kind whose payload does not read as its type is [`Body::Malformed`].

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use omk_core::log::{Checkpoint, Payload, Repaired};

use super::Event;
use crate::goal::{Goal, GoalStatus, Limits};
use crate::sandbox::Profile;
use omk_core::plan::{WaveEvidence, WaveKind};

/// The actor of events omk itself writes.
pub const OMK: &str = "omk";
/// The actor of events a person caused through the CLI.
pub const USER: &str = "user";

/// The actor of a gate's decision.
pub fn gate_actor(gate: &str) -> String {
    format!("gate:{gate}")
}

/// The actor of what agent backend `name` did.
pub fn agent_actor(name: &str) -> String {
    format!("agent:{name}")
}

/// A value's name as the log spells it (`running`, `proposal`,
/// `write-file`).
pub fn word<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// A value as the log holds it: compact JSON, keys sorted.
pub fn compact<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// `goal_created`: the goal as it was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GoalCreated(pub Goal);

/// `goal_status_changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoalStatusChanged {
    pub from: GoalStatus,
    pub to: GoalStatus,
    pub reason: String,
}

/// `budget_added`: what was added (`None`: nothing to that budget), and
/// the limits after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetAdded {
    pub time_secs: Option<u64>,
    pub tokens: Option<u64>,
    pub usd_micros: Option<u64>,
    pub limits: Limits,
}

/// `wave_started`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveStarted {
    pub run_key: String,
    pub kind: WaveKind,
    /// The sha256 of the plan (logs from before it was recorded lack it).
    #[serde(default)]
    pub plan_sha256: Option<String>,
    /// The wave's clock: every proposal in it is judged at this time.
    pub now_ms: u64,
    /// How many proposals the plan holds.
    pub proposals: usize,
}

/// `task_proposed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskProposed {
    /// Its place in the plan.
    #[serde(default)]
    pub index: Option<usize>,
    pub task_id: String,
    pub run_key: String,
    pub proposal: omk_gate_sdk::TaskProposal,
}

/// `gate_decision`: one gate's part in a verdict, with what it judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateDecision {
    #[serde(flatten)]
    pub decision: crate::gates::GateDecision,
    /// The recorded input (`artifacts/inputs.jsonl`) it was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_sha256: Option<String>,
    #[serde(flatten)]
    pub about: About,
}

/// What a gate decided on: a task's proposal, action or outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct About {
    #[serde(default)]
    pub task_id: String,
    /// The wave, for a proposal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_key: Option<String>,
    /// The proposal's place in its plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The task's attempt, for an outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The action, for an action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<omk_gate_sdk::AgentAction>,
}

/// What a task accepted into a wave commits of the goal's time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetSnapshot {
    pub task_budget_secs: u64,
    pub goal_time_budget_secs: Option<u64>,
    pub time_spent_secs: u64,
    pub committed_before_secs: u64,
    pub committed_after_secs: u64,
    pub remaining_secs: Option<u64>,
}

/// `task_accepted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskAccepted {
    #[serde(default)]
    pub index: Option<usize>,
    pub task_id: String,
    pub run_key: String,
    pub budget_snapshot: BudgetSnapshot,
}

/// `task_rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRejected {
    #[serde(default)]
    pub index: Option<usize>,
    pub task_id: String,
    pub run_key: String,
    pub reason: String,
    pub code: String,
    /// The deciding gate (`omk` for omk's own checks).
    pub gate: String,
}

/// `wave_completed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveCompleted {
    pub run_key: String,
    #[serde(default)]
    pub plan_sha256: Option<String>,
    pub evidence: WaveEvidence,
}

/// `task_started`: one attempt of a task begins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStarted {
    pub task_id: String,
    pub attempt: u32,
    pub branch: String,
    pub worktree: PathBuf,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub agent: String,
    /// Whether the agent asks before each step (so the gates judge live).
    pub live_gating: bool,
    /// How its processes are confined (tasks from before confinement have
    /// none).
    #[serde(default)]
    pub sandbox: Option<Profile>,
    /// `overlay` (copy-on-write) or `worktree` (a full checkout); absent
    /// in logs from before overlays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

impl TaskStarted {
    /// Whether its processes were confined by the kernel.
    pub fn confined(&self) -> bool {
        self.sandbox
            .as_ref()
            .is_some_and(|p| p.mode == omk_core::sandbox::SandboxMode::Enforce)
    }
}

/// `agent_action`: an action an agent asked to take, and the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentAction {
    pub task_id: String,
    pub action: omk_gate_sdk::AgentAction,
    pub allowed: bool,
    /// When refused: the deciding gate (`omk` for omk's own refusals).
    #[serde(default)]
    pub gate: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    /// The approval that let it through, where a gate asked
    /// ([`ApprovalAnswered`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
}

/// `approval_asked`: a gate asked that a person approve an action, which
/// waits (a task's) or was refused until approved (a guarded session's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalAsked {
    /// What `omk approve` names it by.
    pub id: String,
    pub task_id: String,
    pub action: omk_gate_sdk::AgentAction,
    /// The digest an answer binds to ([`crate::approvals::digest`]).
    pub digest: String,
    pub gate: String,
    pub code: String,
    pub reason: String,
    /// When it stops waiting and is refused; `None` where nothing waits
    /// (a guarded session's ask, answered before the agent asks again).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The client's id of the tool call asked about, where its own prompt
    /// was asked (Claude Code's `tool_use_id`): the answer given there is
    /// read from its transcript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_call: Option<String>,
}

/// `approval_answered`: a person's answer to an ask (or omk's, when no one
/// answered in time), bound to the ask's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalAnswered {
    pub id: String,
    pub task_id: String,
    pub digest: String,
    pub approved: bool,
    /// Who answered: the local user's name, or `omk` for a timeout.
    pub by: String,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub timed_out: bool,
}

/// `agent_note`: something an agent reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentNote {
    pub note: String,
    #[serde(default)]
    pub detail: Value,
}

impl AgentNote {
    /// The note omk itself writes for `detail`, under its tag.
    pub fn of<D: NoteDetail>(detail: &D) -> AgentNote {
        AgentNote {
            note: D::NOTE.to_owned(),
            detail: serde_json::to_value(detail).unwrap_or_default(),
        }
    }

    /// This note's detail as `D`, when it is one (`None` for another note,
    /// or one a different omk wrote in a shape this one cannot read).
    pub fn detail_as<D: NoteDetail>(&self) -> Option<D> {
        (self.note == D::NOTE)
            .then(|| D::deserialize(&self.detail).ok())
            .flatten()
    }
}

/// The `detail` of a note omk writes itself (agents' own notes are free
/// JSON): one type per note, tagged by [`NOTE`](Self::NOTE).
pub trait NoteDetail: Serialize + serde::de::DeserializeOwned {
    const NOTE: &'static str;
}

/// The note of an action an agent took without asking: a proof gap.
pub const UNJUDGED_ACTION: &str = "unjudged_action";

/// `refused_changes_checked`: an attempt's refused file changes, looked at
/// in its worktree once its agent stopped and before anything is cleaned
/// up: `unchanged` since the refusal (as they should be) and `changed` (a
/// refusal the agent worked around, which the proof lists as a gap; the
/// outcome gates see the change too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedChangesChecked {
    pub task_id: String,
    #[serde(default)]
    pub unchanged: Vec<String>,
    #[serde(default)]
    pub changed: Vec<String>,
}

impl NoteDetail for RefusedChangesChecked {
    const NOTE: &'static str = "refused_changes_checked";
}

/// `worker_result`: a worker's events and inputs for an attempt were
/// appended to the log (once; a restarted coordinator reads these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerResult {
    pub task_id: String,
    pub attempt: u32,
    pub worker: String,
    pub claim: String,
}

impl NoteDetail for WorkerResult {
    const NOTE: &'static str = "worker_result";
}

/// `worker_reply_ignored`: a reply about another attempt than the one
/// offered (an older wire version, or another offer's token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerReplyIgnored {
    pub task_id: String,
    pub worker: String,
    pub why: String,
}

impl NoteDetail for WorkerReplyIgnored {
    const NOTE: &'static str = "worker_reply_ignored";
}

/// `worker_refused`: a worker would not run the attempt (it does not
/// trust the gates, say), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRefused {
    pub task_id: String,
    pub attempt: u32,
    pub worker: String,
    pub reason: String,
}

impl NoteDetail for WorkerRefused {
    const NOTE: &'static str = "worker_refused";
}

/// `late_result_ignored`: a result from a worker that no longer held the
/// attempt's claim (it was offered again elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateResultIgnored {
    pub task_id: String,
    pub attempt: u32,
    pub worker: String,
    pub claim: String,
    pub why: String,
}

impl NoteDetail for LateResultIgnored {
    const NOTE: &'static str = "late_result_ignored";
}

/// `tool_answered`: an MCP server answered a call omk's gateway let
/// through (`omk mcp run`): how big the call and the answer were (the
/// call's arguments themselves are in the action judged before it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolAnswered {
    pub server: String,
    pub tool: String,
    pub arguments_bytes: usize,
    /// The sha256 of the arguments as JSON.
    pub arguments_sha256: String,
    pub answer_bytes: usize,
    /// Whether the answer is an error (the tool's or the protocol's).
    pub is_error: bool,
    pub ms: u64,
}

impl NoteDetail for ToolAnswered {
    const NOTE: &'static str = "tool_answered";
}

/// `tool_refused`: a tool call the gates let through as a call, refused
/// for a file it names (its arguments, per the path gate's `tools`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRefused {
    pub server: String,
    pub tool: String,
    pub file: String,
    pub reason: String,
}

impl NoteDetail for ToolRefused {
    const NOTE: &'static str = "tool_refused";
}

/// `tools_reviewed`: a server's `tools/list`, checked against the pins
/// (`.omk/mcp/pins.json`): the tools pinned on first sight, and those
/// hidden because their definition changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolsReviewed {
    pub server: String,
    #[serde(default)]
    pub new: Vec<String>,
    #[serde(default)]
    pub changed: Vec<String>,
}

impl NoteDetail for ToolsReviewed {
    const NOTE: &'static str = "tools_reviewed";
}

/// `agent_finished`: an agent's run on a task ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFinished {
    pub task_id: String,
    /// `None` when it was killed.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub secs: u64,
    pub tokens: u64,
    pub usd_micros: u64,
    pub output_tail: String,
}

/// `task_outcome`: what an attempt came to, as the gates judge it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutcome {
    pub task_id: String,
    pub outcome: omk_gate_sdk::TaskOutcome,
}

/// `task_merged`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMerged {
    pub task_id: String,
    pub branch: String,
    pub into: String,
    pub commit: String,
}

/// `task_completed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCompleted {
    pub task_id: String,
    pub attempt: u32,
    pub commit: Option<String>,
    pub merged: bool,
    pub changed_files: Vec<String>,
    /// How many follow-up tasks the agent proposed.
    pub follow_ups: usize,
}

/// `task_failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailed {
    pub task_id: String,
    /// Absent when the task never started (a dependency failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    pub reason: String,
    pub code: String,
    pub will_retry: bool,
}

/// `task_reclaimed`: a task a stopped omk left running, taken back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReclaimed {
    pub task_id: String,
    pub reason: String,
}

/// `proof_written`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofWritten {
    pub path: PathBuf,
    pub ready: bool,
    /// The log's head before this event.
    pub head_hash: String,
}

/// Declares the kinds: each run kind's [`Payload`] impl, and [`Body`]'s
/// variants for those and the log's own, from one list.
macro_rules! kinds {
    (
        run { $($variant:ident = $kind:literal,)* }
        log { $($log_variant:ident($log_ty:ty),)* }
    ) => {
        $(impl Payload for $variant {
            const KIND: &'static str = $kind;
        })*

        /// An event's payload, read as its kind's type.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Body {
            $($variant(Box<$variant>),)*
            $($log_variant(Box<$log_ty>),)*
            /// A kind this omk does not know: written by a newer one.
            Other,
            /// A known kind whose payload does not read as its type.
            Malformed(String),
        }

        /// Every kind omk writes, the log's own included.
        pub const KINDS: &[&str] = &[$($kind,)* $(<$log_ty as Payload>::KIND,)*];

        impl Body {
            /// Reads `e`'s payload as the type of its kind.
            pub fn of(e: &Event) -> Body {
                fn read<P: Payload>(e: &Event, wrap: fn(Box<P>) -> Body) -> Body {
                    match P::deserialize(&e.payload) {
                        Ok(p) => wrap(Box::new(p)),
                        Err(err) => Body::Malformed(err.to_string()),
                    }
                }
                $(if e.kind == $kind {
                    return read(e, Body::$variant);
                })*
                $(if e.kind == <$log_ty as Payload>::KIND {
                    return read(e, Body::$log_variant);
                })*
                Body::Other
            }
        }
    };
}

kinds! {
    run {
        GoalCreated = "goal_created",
        GoalStatusChanged = "goal_status_changed",
        BudgetAdded = "budget_added",
        WaveStarted = "wave_started",
        TaskProposed = "task_proposed",
        GateDecision = "gate_decision",
        TaskAccepted = "task_accepted",
        TaskRejected = "task_rejected",
        WaveCompleted = "wave_completed",
        TaskStarted = "task_started",
        AgentAction = "agent_action",
        ApprovalAsked = "approval_asked",
        ApprovalAnswered = "approval_answered",
        AgentNote = "agent_note",
        AgentFinished = "agent_finished",
        TaskOutcome = "task_outcome",
        TaskMerged = "task_merged",
        TaskCompleted = "task_completed",
        TaskFailed = "task_failed",
        TaskReclaimed = "task_reclaimed",
        ProofWritten = "proof_written",
    }
    log {
        LogCheckpoint(Checkpoint),
        LogRepaired(Repaired),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events of the logs an earlier omk wrote (`tests/fixtures/logs`).
    fn fixture_events() -> Vec<Event> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/logs");
        let mut out = Vec::new();
        for fixture in std::fs::read_dir(&root).unwrap() {
            let fixture = fixture.unwrap().path();
            if !fixture.is_dir() {
                continue;
            }
            for goal in std::fs::read_dir(&fixture).unwrap() {
                let goal = goal.unwrap().path();
                if goal.join("events.jsonl").exists() {
                    out.extend(super::super::log::read(&goal).unwrap().0);
                }
            }
        }
        assert!(out.len() > 100, "the fixtures hold {} events", out.len());
        out
    }

    /// Serialises what `Body::of` read, as the payload it came from.
    fn payload_of(body: &Body) -> Option<Value> {
        macro_rules! back {
            ($($v:ident),*) => {
                match body {
                    $(Body::$v(p) => Some(serde_json::to_value(p).unwrap()),)*
                    _ => None,
                }
            };
        }
        back!(
            GoalCreated,
            GoalStatusChanged,
            BudgetAdded,
            WaveStarted,
            TaskProposed,
            GateDecision,
            TaskAccepted,
            TaskRejected,
            WaveCompleted,
            TaskStarted,
            AgentAction,
            ApprovalAsked,
            ApprovalAnswered,
            AgentNote,
            AgentFinished,
            TaskOutcome,
            TaskMerged,
            TaskCompleted,
            TaskFailed,
            TaskReclaimed,
            ProofWritten,
            LogCheckpoint,
            LogRepaired
        )
    }

    #[test]
    fn every_event_an_earlier_omk_wrote_reads_as_its_type_and_writes_back_the_same() {
        for e in fixture_events() {
            let body = Body::of(&e);
            let back = payload_of(&body)
                .unwrap_or_else(|| panic!("event {} ({}) read as {body:?}", e.id, e.kind));
            assert_eq!(back, e.payload, "event {} ({})", e.id, e.kind);
        }
    }

    #[test]
    fn a_kind_from_a_newer_omk_is_kept_and_a_damaged_payload_is_named() {
        let mut e = fixture_events().remove(0);
        e.kind = "task_teleported".into();
        assert_eq!(Body::of(&e), Body::Other);
        e.kind = "task_failed".into();
        e.payload = serde_json::json!({"task_id": 7});
        assert!(matches!(Body::of(&e), Body::Malformed(m) if m.contains("invalid type")));
    }
}

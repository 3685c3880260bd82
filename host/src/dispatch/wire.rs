//! What travels between a coordinator and its workers, as JSON in JetStream
//! messages: the offer of one task attempt, and what the worker sends back.
//!
//! Every message names its goal, task and attempt, and carries the
//! attempt's fencing token: the coordinator's lease token, plus the worker's
//! own claim (see [`super::lease`]). A result whose claim is not the one the
//! lease holds is a late message from an attempt that lost its lease, and
//! changes nothing.

use omk_gate_sdk::{GoalContext, TaskProposal};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agents::AgentSpec;
use omk_core::bundle::BundleRef;
use omk_core::config::Mode;
use omk_core::limits::LimitSettings;

/// The version of these messages; a worker refuses others by name.
pub const WIRE_VERSION: u32 = 1;

/// One attempt of one task, offered to whichever worker takes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Offer {
    pub wire: u32,
    pub goal_id: String,
    pub goal: String,
    pub task: TaskProposal,
    pub attempt: u32,
    /// The coordinator's lease token of this attempt.
    pub token: String,
    /// The commit the task starts from.
    pub base: String,
    /// The object (in the code store) holding a git bundle with `base`.
    pub code: String,
    /// The context every decision of the attempt is taken in, frozen when
    /// the coordinator started it (so that a worker's decisions record the
    /// inputs a local run would).
    pub context: GoalContext,
    pub agent: AgentSpec,
    /// The scripted agent's script, which the worker cannot read where the
    /// coordinator's path points.
    #[serde(default)]
    pub script: Option<String>,
    pub gates: GateManifest,
    pub check_timeout_secs: u64,
}

impl Offer {
    /// The key of the attempt in the lease store and in message ids.
    pub fn key(&self) -> String {
        attempt_key(&self.goal_id, &self.task.id, self.attempt)
    }
}

/// `<goal>.<task>.<attempt>`, with the characters NATS keys refuse replaced.
pub fn attempt_key(goal: &str, task: &str, attempt: u32) -> String {
    use super::hub::subject_token;
    format!("{}.{}.{attempt}", subject_token(goal), subject_token(task))
}

/// The gates a task is judged by, as the coordinator loaded them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateManifest {
    /// The coordinator's embedded std bundle: a worker runs std gates only
    /// if its own is the same.
    pub std: BundleRef,
    pub gates: Vec<GateItem>,
    pub bundles: Vec<BundleItem>,
}

/// One gate, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateItem {
    pub label: Option<String>,
    pub source: ItemSource,
    pub mode: Mode,
    pub config_json: String,
    pub limits: LimitSettings,
    pub wasi: bool,
}

/// Where a gate's component comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ItemSource {
    /// A gate of the std bundle, by name.
    Std { name: String },
    /// A component of the project (unsigned), in the gate store under its
    /// sha256.
    File { sha256: String },
    /// A gate of a signed bundle.
    Bundle { bundle: String, gate: String },
}

/// A signed bundle, packed, in the gate store under `object`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleItem {
    pub name: String,
    pub object: String,
    pub digest: String,
}

/// What a worker sends back about an attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub wire: u32,
    pub goal_id: String,
    pub task_id: String,
    pub attempt: u32,
    /// The coordinator's lease token, echoed.
    pub token: String,
    /// The worker's claim on the attempt (see [`super::lease`]).
    pub claim: String,
    pub worker: String,
    pub body: ReplyBody,
}

/// The end of an attempt on a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReplyBody {
    /// The worker would not run it (its gates are not ones it trusts, …).
    Refused { reason: String },
    /// It ran: what it logged, and how it ended.
    Ran(Box<Ran>),
}

/// An attempt run on a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ran {
    /// The events the attempt logged on the worker that belong in the
    /// goal's log, in order: agent actions, their gate decisions, notes, the
    /// agent's finish and the outcome.
    pub events: Vec<Shipped>,
    /// The recorded inputs those gate decisions name, as inputs-file lines.
    pub inputs: Vec<String>,
    /// `task_started` on the worker: where it ran and how it was confined.
    pub started: Value,
    pub end: End,
}

/// One event, as the worker's log holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shipped {
    pub kind: String,
    pub actor: String,
    pub payload: Value,
}

/// How an attempt ended on the worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum End {
    /// The agent finished and the work was committed: the commit (if it
    /// changed anything) is in the code store as a git bundle of `branch`.
    Done {
        commit: Option<String>,
        object: Option<String>,
        follow_ups: Vec<TaskProposal>,
    },
    /// The attempt failed on the worker.
    Failed {
        reason: String,
        code: String,
        retryable: bool,
    },
}

//! Dispatch plans: the proposed tasks of one wave, as a planner or an
//! agent writes them (`omk goal propose ID --plan PLAN.json`).
//!
//! ```json
//! {"run_key": "wave-1", "kind": "initial", "proposals": [{"id": "a", …}],
//!  "allow_existing_task_ids": false}
//! ```
//!
//! Unknown fields are refused. The `omk` crate's `wave` module judges a
//! plan (`omk::wave::run_wave`) into a [`WaveEvidence`].

use omk_gate_sdk::TaskProposal;
use serde::{Deserialize, Serialize};

/// Whether a wave opens the goal's work or follows from finished tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveKind {
    Initial,
    FollowUp,
}

/// Proposed tasks to judge as one wave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchPlan {
    /// Names the wave; the same key is never judged twice.
    pub run_key: String,
    pub kind: WaveKind,
    pub proposals: Vec<TaskProposal>,
    /// Whether a proposal may replace a task already in the graph that is
    /// neither running nor done (to re-plan it).
    #[serde(default)]
    pub allow_existing_task_ids: bool,
}

/// A rejected proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedTask {
    pub task_id: String,
    pub gate: String,
    pub code: String,
    pub reason: String,
}

/// Task counts of a wave. A rejected task counts as failed, never as
/// completed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveSummary {
    pub completed: usize,
    pub failed: usize,
    pub total: usize,
}

/// What a wave decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveEvidence {
    pub run_key: String,
    pub kind: WaveKind,
    pub accepted_task_count: usize,
    pub rejected_task_count: usize,
    pub accepted: Vec<String>,
    pub rejected: Vec<RejectedTask>,
    /// One line for people.
    pub worker_summary: Option<String>,
    pub summary: WaveSummary,
    /// True when the run key had been judged before and this is the record.
    #[serde(default)]
    pub replayed: bool,
}

//! Dispatch plans: the proposed tasks of one wave, as a planner or an
//! agent writes them (`omk goal propose ID --plan PLAN.json`).
//!
//! ```json
//! {"run_key": "wave-1", "kind": "initial", "proposals": [{"id": "a", …}],
//!  "allow_existing_task_ids": false}
//! ```
//!
//! Unknown fields are refused. The `omk` crate's `wave` module judges a
//! plan (`omk::wave::run_wave`).

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

//! The kinds of events omk writes, in one place.
//!
//! | kind | payload |
//! |---|---|
//! | `goal_created` | the goal |
//! | `goal_status_changed` | `from`, `to`, `reason` |
//! | `budget_added` | `time_secs`, `tokens`, `usd_micros` added; the new `limits` |
//! | `wave_started` | `run_key`, `kind`, `now_ms`, `proposals` (count) |
//! | `task_proposed` | `task_id`, `run_key`, `proposal` |
//! | `gate_decision` | `task_id`, `run_key`, `stage`, `gate`, `version`, `sha256`, `mode`, `called`, `verdict`, `code`, `reason`, `fault`, `micros` |
//! | `task_accepted` | `task_id`, `run_key`, `budget_snapshot` (`task_budget_secs`, …) |
//! | `task_rejected` | `task_id`, `run_key`, `reason`, `code`, `gate` |
//! | `wave_completed` | `run_key`, `evidence` |
//! | `task_started` | `task_id`, `attempt`, `branch`, `worktree`, `lease_expires_at`, `agent`, `live_gating` |
//! | `agent_action` | `task_id`, `action`, `allowed`, and when refused `gate`, `code`, `reason` |
//! | `agent_note` | `note`, `detail`: what the agent reported (`tool_call`, `usage`, `agent_message`, …; `unjudged_action` for a step it took without asking, which the proof lists as a gap) |
//! | `agent_finished` | `task_id`, `exit_code`, `timed_out`, `secs`, `tokens`, `usd_micros`, `output_tail` |
//! | `task_outcome` | `task_id`, `outcome` (changed files, evidence, checks) |
//! | `task_merged` | `task_id`, `branch`, `into`, `commit` |
//! | `task_completed` | `task_id`, `attempt`, `commit`, `merged`, `changed_files`, `follow_ups` |
//! | `task_failed` | `task_id`, `attempt`, `reason`, `code`, `will_retry` |
//! | `task_reclaimed` | `task_id`, `reason` |
//! | `proof_written` | `path`, `ready`, `head_hash` (of the log before this event) |
//! | `log_checkpoint` | a signed checkpoint: `goal_id`, `seq` and `head` (the event before this one), `key`, `signature` |
//! | `log_repaired` | `torn_sha256`, `torn_bytes`: the torn line a crash left just before this event |

pub const GOAL_CREATED: &str = "goal_created";
pub const GOAL_STATUS_CHANGED: &str = "goal_status_changed";
pub const BUDGET_ADDED: &str = "budget_added";
pub const WAVE_STARTED: &str = "wave_started";
pub const TASK_PROPOSED: &str = "task_proposed";
pub const GATE_DECISION: &str = "gate_decision";
pub const TASK_ACCEPTED: &str = "task_accepted";
pub const TASK_REJECTED: &str = "task_rejected";
pub const WAVE_COMPLETED: &str = "wave_completed";
pub const TASK_STARTED: &str = "task_started";
pub const AGENT_ACTION: &str = "agent_action";
pub const AGENT_NOTE: &str = "agent_note";
pub const AGENT_FINISHED: &str = "agent_finished";
pub const TASK_OUTCOME: &str = "task_outcome";
pub const TASK_MERGED: &str = "task_merged";
pub const TASK_COMPLETED: &str = "task_completed";
pub const TASK_FAILED: &str = "task_failed";
pub const TASK_RECLAIMED: &str = "task_reclaimed";
pub const PROOF_WRITTEN: &str = "proof_written";
pub const LOG_CHECKPOINT: &str = omk_core::log::CHECKPOINT;
pub const LOG_REPAIRED: &str = omk_core::log::REPAIRED;

/// The actor of events omk itself writes.
pub const OMK: &str = "omk";
/// The actor of events a person caused through the CLI.
pub const USER: &str = "user";

/// The actor of a gate's decision.
pub fn gate_actor(gate: &str) -> String {
    format!("gate:{gate}")
}

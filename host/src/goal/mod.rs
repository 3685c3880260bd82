//! Goals: what the user asked for, its budget, and where it stands.
//!
//! A goal lives in its own folder under the [`GoalStore`], laid out as
//! [`GoalDir`] describes.

pub mod budget;
mod dir;
mod session;
mod store;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use budget::{BudgetError, Limits, Spent};
pub use dir::GoalDir;
pub use session::{GoalError, Session, run_id};
pub use store::{GoalLock, GoalStore, REQUESTS_DIR, Request, StoreError};

/// The version of `goal.json`'s layout.
pub const GOAL_SCHEMA: u32 = 1;

/// Where a goal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalStatus {
    /// Work may proceed.
    Running,
    /// Done, and every outcome gate accepted.
    Ready,
    /// Finished without meeting its acceptance.
    NotReady,
    /// Waiting for a person.
    BlockedOnHuman,
    /// Stopped because a budget is spent; `budget-add` resumes it.
    NeedsMoreBudget,
    /// Stopped by `omk goal pause`.
    Paused,
    /// Stopped for good by `omk goal cancel`.
    Cancelled,
    /// Stopped by an error.
    Failed,
}

impl GoalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GoalStatus::Running => "running",
            GoalStatus::Ready => "ready",
            GoalStatus::NotReady => "not_ready",
            GoalStatus::BlockedOnHuman => "blocked_on_human",
            GoalStatus::NeedsMoreBudget => "needs_more_budget",
            GoalStatus::Paused => "paused",
            GoalStatus::Cancelled => "cancelled",
            GoalStatus::Failed => "failed",
        }
    }

    /// Whether the goal can never run again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            GoalStatus::Ready | GoalStatus::NotReady | GoalStatus::Cancelled | GoalStatus::Failed
        )
    }
}

impl std::fmt::Display for GoalStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a goal is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalPhase {
    Planning,
    Execution,
    Verification,
    Complete,
}

impl GoalPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            GoalPhase::Planning => "planning",
            GoalPhase::Execution => "execution",
            GoalPhase::Verification => "verification",
            GoalPhase::Complete => "complete",
        }
    }
}

/// A goal's `goal.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goal {
    pub schema: u32,
    pub id: String,
    /// The goal as the user wrote it.
    pub original_goal: String,
    /// Trimmed, with runs of whitespace collapsed to one space.
    pub normalized_goal: String,
    pub status: GoalStatus,
    pub phase: GoalPhase,
    pub limits: Limits,
    pub spent: Spent,
    /// Most tasks run at once.
    pub max_agents: u32,
    /// The project the goal works on (absolute).
    pub project_dir: PathBuf,
    /// Project-relative directories tasks may touch; empty is the whole
    /// project.
    pub policy_roots: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Why the goal failed or stopped, for people.
    pub failure: Option<String>,
    /// The agent that works on the goal's tasks.
    #[serde(default)]
    pub agent: Option<crate::agents::AgentSpec>,
    /// The commit task worktrees start from (when the project is a git
    /// repository).
    #[serde(default)]
    pub base_commit: Option<String>,
    /// What happens to accepted work.
    #[serde(default)]
    pub merge_policy: MergePolicy,
    /// Set when this is not a planned goal but a session someone runs by
    /// hand under `omk guard`: its tool calls are judged through the
    /// client's hooks and recorded here as a goal's actions are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guarded: Option<Guarded>,
}

/// The hand-run session a guarded goal records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guarded {
    /// The client whose hooks ask (`claude`, `codex`, `kimi`).
    pub client: String,
    /// The client's own id of the session.
    pub session_id: String,
}

/// What happens to a task's work once its outcome is accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergePolicy {
    /// Committed on the task's branch only.
    None,
    /// Also merged into `omk/<goal-id>/integration`.
    #[default]
    Integrate,
}

/// What a new goal is made of.
#[derive(Debug, Clone)]
pub struct NewGoal {
    pub text: String,
    pub limits: Limits,
    pub max_agents: u32,
    pub project_dir: PathBuf,
    pub policy_roots: Vec<String>,
    pub agent: Option<crate::agents::AgentSpec>,
    pub base_commit: Option<String>,
    pub merge_policy: MergePolicy,
    /// The hand-run session it records, if it is one.
    pub guarded: Option<Guarded>,
}

impl Goal {
    /// A new running goal in the planning phase, created `now`.
    pub fn new(spec: NewGoal, now: DateTime<Utc>) -> Goal {
        Goal {
            schema: GOAL_SCHEMA,
            id: new_id(now),
            normalized_goal: normalize(&spec.text),
            original_goal: spec.text,
            status: GoalStatus::Running,
            phase: GoalPhase::Planning,
            limits: spec.limits,
            spent: Spent::default(),
            max_agents: spec.max_agents,
            project_dir: spec.project_dir,
            policy_roots: spec.policy_roots,
            created_at: now,
            updated_at: now,
            completed_at: None,
            failure: None,
            agent: spec.agent,
            base_commit: spec.base_commit,
            merge_policy: spec.merge_policy,
            guarded: spec.guarded,
        }
    }
}

impl Goal {
    /// Time left once `committed` seconds are reserved; `None` when the
    /// time budget is unlimited.
    pub fn remaining_time_secs(&self, committed: u64) -> Option<u64> {
        self.limits
            .time_secs
            .map(|l| l.saturating_sub(self.spent.time_secs.saturating_add(committed)))
    }
}

/// `goal-YYYYMMDD-HHMMSS-mmm-<8 hex>`: sortable by creation time, unique
/// across processes.
pub fn new_id(now: DateTime<Utc>) -> String {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(now.timestamp_nanos_opt().unwrap_or_default().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    h.update(nanos.to_le_bytes());
    let suffix = hex::encode(&h.finalize()[..4]);
    format!("goal-{}-{suffix}", now.format("%Y%m%d-%H%M%S-%3f"))
}

/// Whether `s` has the shape of a goal id (and so is safe as a directory
/// name).
pub fn is_goal_id(s: &str) -> bool {
    s.len() <= 64
        && s.starts_with("goal-")
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The goal text trimmed, with whitespace runs collapsed.
pub fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_documented_shape_and_differ() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T21:10:27.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let a = new_id(now);
        let b = new_id(now);
        assert!(a.starts_with("goal-20261123-211027-123-"), "{a}");
        assert_eq!(a.len(), "goal-20261123-211027-123-".len() + 8);
        assert_ne!(a, b);
        assert!(is_goal_id(&a));
        assert!(!is_goal_id("goal-../x"));
        assert!(!is_goal_id("latest"));
    }

    #[test]
    fn normalizes() {
        assert_eq!(
            normalize("  Add\tthe\n\nlogin   form "),
            "Add the login form"
        );
    }
}

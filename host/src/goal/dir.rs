//! A goal's folder, and the one place that knows its layout
//! (`$XDG_STATE_HOME/omk/goals/<goal-id>/`):
//!
//! | path | what |
//! |---|---|
//! | `goal.json` | the [`Goal`](super::Goal): text, status, phase, budgets, spend |
//! | `task-graph.json` | the [`TaskGraph`](crate::graph::TaskGraph) |
//! | `events.jsonl` | the hash-chained [event log](crate::proof::EventLog) |
//! | `checkpoint.json` | the log's last signed checkpoint |
//! | `proof.json` | the [proof](crate::proof::document::Proof) |
//! | `artifacts/inputs.jsonl` | every gate input, content-addressed |
//! | `lock` | held by the one process acting on the goal |
//! | `worktrees/<task>/` | a running task's git worktree |
//! | `worktrees/_integration/` | where accepted work is merged |
//! | `worktrees/_plan/` | the checkout an agent plans in |
//! | `sandbox/<task>/`, `sandbox/_plan/` | the private home, temporary folder and handed files of a confined run |
//!
//! Every file is written atomically ([`crate::atomic`]). The file names
//! live with the code that reads each file; this type is the map.

use std::path::{Path, PathBuf};

/// A goal's folder. It dereferences to its path, and serialises as it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct GoalDir(PathBuf);

/// The names omk's own checkouts use under `worktrees/` and `sandbox/`,
/// which no task id can take (`worktree::RESERVED_NAMES`).
const INTEGRATION: &str = "_integration";
const PLAN: &str = "_plan";

impl GoalDir {
    pub fn new(path: PathBuf) -> GoalDir {
        GoalDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn goal_file(&self) -> PathBuf {
        self.0.join(super::store::GOAL_FILE)
    }

    pub fn lock_file(&self) -> PathBuf {
        self.0.join(super::store::LOCK_FILE)
    }

    pub fn graph_file(&self) -> PathBuf {
        self.0.join(crate::graph::GRAPH_FILE)
    }

    pub fn events_file(&self) -> PathBuf {
        self.0.join(crate::proof::EVENTS_FILE)
    }

    pub fn proof_file(&self) -> PathBuf {
        self.0.join(crate::proof::document::PROOF_FILE)
    }

    pub fn inputs_file(&self) -> PathBuf {
        self.0.join(crate::proof::inputs::INPUTS_FILE)
    }

    /// The worktree of task `id` (named by [`crate::worktree::branch_safe`]).
    pub fn worktree(&self, id: &str) -> PathBuf {
        self.0
            .join("worktrees")
            .join(crate::worktree::branch_safe(id))
    }

    /// Where accepted work is merged.
    pub fn integration_worktree(&self) -> PathBuf {
        self.0.join("worktrees").join(INTEGRATION)
    }

    /// The checkout an agent plans in.
    pub fn plan_checkout(&self) -> PathBuf {
        self.0.join("worktrees").join(PLAN)
    }

    /// The sandbox folder of task `id`, or of planning with `None`.
    pub fn sandbox(&self, task: Option<&str>) -> PathBuf {
        let name = task.map_or_else(|| PLAN.to_owned(), crate::worktree::branch_safe);
        self.0.join("sandbox").join(name)
    }
}

impl std::ops::Deref for GoalDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for GoalDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omks_own_checkouts_are_names_no_task_may_take() {
        let d = GoalDir::new(PathBuf::from("/g"));
        for own in [INTEGRATION, PLAN] {
            assert!(crate::worktree::RESERVED_NAMES.contains(&own));
        }
        assert_eq!(d.worktree(INTEGRATION), d.integration_worktree());
        assert_eq!(d.worktree(PLAN), d.plan_checkout());
        assert_eq!(d.sandbox(None), d.sandbox(Some(PLAN)));
    }
}

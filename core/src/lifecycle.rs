//! A task's lifecycle: the one place its status, and the fields that go
//! with each status, change.
//!
//! ```text
//!            start             complete
//!  pending ─────────▶ running ─────────▶ done
//!     ▲  │               │
//!     │  │ block, cancel │ retry_or_fail
//!     │  ▼               ▼
//!     │ failed,      pending (a retry left) or failed (none)
//!     │ cancelled
//!     └── retry_or_fail from pending (the attempt failed before it ran)
//! ```
//!
//! A later wave may re-plan a task ([`Task::replan`]): it starts over as
//! pending, keeping the retries it used.
//!
//! A running task holds a lease (renewed while its runner lives), the token
//! its processes carry and its process group; every way out of `running`
//! clears them. A move the diagram does not show is a bug in omk and is
//! refused with a [`TransitionError`].

use chrono::{DateTime, Utc};
use omk_gate_sdk::{Evidence, TaskProposal};

use crate::graph::{Task, TaskStatus};

/// A move a task's status does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task `{task}` cannot {action} while {from}")]
pub struct TransitionError {
    pub task: String,
    pub action: &'static str,
    pub from: &'static str,
}

impl crate::diagnose::Diagnose for TransitionError {
    fn kind(&self) -> crate::diagnose::Kind {
        crate::diagnose::Kind::Internal
    }
}

/// What a task's accepted attempt produced.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    /// The commit holding its work (`None`: it changed nothing).
    pub commit: Option<String>,
    pub merged: bool,
    pub changed_files: Vec<String>,
    pub evidence: Vec<Evidence>,
    pub follow_ups: Vec<TaskProposal>,
}

/// Where a failed attempt leaves its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed {
    /// The attempt that failed (1 for the first).
    pub attempt: u32,
    /// Pending again, for another attempt.
    pub will_retry: bool,
}

impl Task {
    fn require(&self, action: &'static str, ok: &[TaskStatus]) -> Result<(), TransitionError> {
        if ok.contains(&self.status) {
            Ok(())
        } else {
            Err(TransitionError {
                task: self.id.clone(),
                action,
                from: self.status.as_str(),
            })
        }
    }

    /// The attempt a start would begin, or the current one while running.
    pub fn attempt(&self) -> u32 {
        self.retry_count + 1
    }

    /// Starts an attempt on `branch`, leased until `lease` to the runner
    /// whose processes carry `token`; returns the attempt's number.
    pub fn start(
        &mut self,
        branch: &str,
        lease: DateTime<Utc>,
        token: &str,
    ) -> Result<u32, TransitionError> {
        self.require("start", &[TaskStatus::Pending])?;
        self.status = TaskStatus::Running;
        self.branch = Some(branch.to_owned());
        self.lease_expires_at = Some(lease);
        self.lease_token = Some(token.to_owned());
        Ok(self.attempt())
    }

    /// Extends a running task's lease.
    pub fn renew(&mut self, lease: DateTime<Utc>) {
        if self.status == TaskStatus::Running {
            self.lease_expires_at = Some(lease);
        }
    }

    /// Records the process group a running task's agent started.
    pub fn process_started(&mut self, pgid: u32) {
        if self.status == TaskStatus::Running {
            self.pgid = Some(pgid);
        }
    }

    /// Adds evidence to the task's record.
    pub fn add_evidence(&mut self, e: Evidence) {
        self.evidence.push(e);
    }

    /// Ends a running task's attempt as accepted.
    pub fn complete(
        &mut self,
        done: Completion,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        self.require("complete", &[TaskStatus::Running])?;
        self.release();
        self.status = TaskStatus::Done;
        self.completed_at = Some(now);
        self.failure = None;
        self.commit = done.commit;
        self.merged = done.merged;
        self.changed_files = done.changed_files;
        self.evidence.extend(done.evidence);
        self.follow_ups = done.follow_ups;
        Ok(())
    }

    /// Ends a failed attempt: pending again when `retryable` and a retry
    /// is left, else failed for good with `reason`.
    pub fn retry_or_fail(
        &mut self,
        reason: &str,
        retryable: bool,
        now: DateTime<Utc>,
    ) -> Result<Failed, TransitionError> {
        self.require("fail", &[TaskStatus::Pending, TaskStatus::Running])?;
        let attempt = self.attempt();
        let will_retry = retryable && self.retry_count < self.max_retries;
        self.release();
        if will_retry {
            self.retry_count += 1;
            self.status = TaskStatus::Pending;
        } else {
            self.status = TaskStatus::Failed;
            self.failure = Some(reason.to_owned());
            self.completed_at = Some(now);
        }
        Ok(Failed {
            attempt,
            will_retry,
        })
    }

    /// Fails a pending task that cannot run (a dependency did not finish).
    pub fn block(&mut self, reason: &str, now: DateTime<Utc>) -> Result<(), TransitionError> {
        self.require("be blocked", &[TaskStatus::Pending])?;
        self.status = TaskStatus::Failed;
        self.failure = Some(reason.to_owned());
        self.completed_at = Some(now);
        Ok(())
    }

    /// Cancels a pending task (its goal was cancelled).
    pub fn cancel(&mut self, now: DateTime<Utc>) -> Result<(), TransitionError> {
        self.require("be cancelled", &[TaskStatus::Pending])?;
        self.status = TaskStatus::Cancelled;
        self.completed_at = Some(now);
        Ok(())
    }

    /// Replaces the task by `admitted`, its re-planned version from a later
    /// wave: pending again, with the retries it has used.
    pub fn replan(&mut self, admitted: Task) {
        let retry_count = self.retry_count;
        *self = Task {
            retry_count,
            ..admitted
        };
    }

    /// Records that its follow-up proposals were judged.
    pub fn follow_ups_judged(&mut self) {
        self.follow_ups_judged = true;
    }

    /// Gives up what a running attempt holds.
    fn release(&mut self) {
        self.pgid = None;
        self.lease_expires_at = None;
        self.lease_token = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        let p: TaskProposal = serde_json::from_value(serde_json::json!({
            "id": "t", "budget_secs": 60, "acceptance": ["run: true"]
        }))
        .unwrap();
        Task::admitted(&p, "w", Utc::now())
    }

    #[test]
    fn a_task_runs_once_retries_once_then_fails_and_keeps_why() {
        let mut t = task();
        let now = Utc::now();
        assert_eq!(t.start("b", now, "tok").unwrap(), 1);
        t.process_started(42);
        let f = t.retry_or_fail("timed out", true, now).unwrap();
        assert_eq!((f.attempt, f.will_retry), (1, true));
        assert_eq!(t.status, TaskStatus::Pending);
        assert_eq!((t.pgid, t.lease_token.as_deref()), (None, None));
        assert_eq!(t.start("b", now, "tok").unwrap(), 2);
        let f = t.retry_or_fail("timed out again", true, now).unwrap();
        assert_eq!((f.attempt, f.will_retry), (2, false));
        assert_eq!(t.status, TaskStatus::Failed);
        assert_eq!(t.failure.as_deref(), Some("timed out again"));
    }

    #[test]
    fn only_a_running_task_completes_and_a_finished_one_does_not_move() {
        let mut t = task();
        let now = Utc::now();
        let err = t.complete(Completion::default(), now).unwrap_err();
        assert_eq!(err.to_string(), "task `t` cannot complete while pending");
        t.start("b", now, "tok").unwrap();
        let done = Completion {
            commit: Some("abc".into()),
            merged: true,
            changed_files: vec!["a.md".into()],
            ..Completion::default()
        };
        t.complete(done, now).unwrap();
        assert_eq!(t.status, TaskStatus::Done);
        assert_eq!(t.lease_expires_at, None);
        assert!(t.start("b", now, "tok").is_err());
        assert!(t.retry_or_fail("late", true, now).is_err());
        assert!(t.cancel(now).is_err());
        assert_eq!(t.status, TaskStatus::Done);
    }

    #[test]
    fn a_pending_task_is_blocked_or_cancelled_but_a_running_one_is_not() {
        let now = Utc::now();
        let mut t = task();
        t.block("its dependency `a` did not finish", now).unwrap();
        assert_eq!(t.status, TaskStatus::Failed);
        let mut t = task();
        t.cancel(now).unwrap();
        assert_eq!(t.status, TaskStatus::Cancelled);
        let mut t = task();
        t.start("b", now, "tok").unwrap();
        assert!(t.block("no", now).is_err());
        assert!(t.cancel(now).is_err());
    }
}

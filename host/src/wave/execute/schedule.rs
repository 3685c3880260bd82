//! Scheduling: which pending task runs next, requests from other
//! processes (pause, cancel), follow-up waves, tasks a failed dependency
//! blocks, tasks a killed omk left running, and the goal's final status.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use omk_gate_sdk::TaskProposal;
use tokio::task::JoinSet;

use super::{Executor, Progress, TaskEnd, budget_spent};
use crate::agents::process::{alive_with_marker, kill_group};
use crate::goal::{GoalError, GoalPhase, GoalStatus, Request};
use crate::graph::TaskStatus;
use crate::proof::events;
use crate::wave::{DispatchPlan, WaveKind, run_wave};
use crate::worktree;

impl Executor {
    /// Runs pending tasks until none is left or the goal stops; returns the
    /// goal's status.
    pub async fn run(self: &Arc<Self>) -> Result<GoalStatus, GoalError> {
        {
            let mut s = self.session();
            if s.goal.status.is_terminal() {
                return Ok(s.goal.status);
            }
            if s.goal.status == GoalStatus::NeedsMoreBudget && !budget_spent(&s) {
                s.set_status(GoalStatus::Running, "budget available again", events::OMK)?;
            }
        }
        let mut running: JoinSet<TaskEnd> = JoinSet::new();
        let mut active: HashSet<String> = HashSet::new();
        match self.opts.dispatch.clone() {
            None => self.reclaim().await?,
            Some(d) => {
                // On workers, not here: nothing to kill, only replies to
                // wait for again.
                self.restore_completions()?;
                for key in self.worker_results()? {
                    d.mark_appended(&key);
                }
                for id in self.remote_resumable() {
                    active.insert(id.clone());
                    let me = self.clone();
                    running.spawn(async move { me.run_task(id).await });
                }
            }
        }
        loop {
            self.apply_requests()?;
            self.judge_follow_ups()?;
            self.fail_blocked()?;
            let (status, spent) = {
                let s = self.session();
                (s.goal.status, budget_spent(&s))
            };
            if status == GoalStatus::Running && !spent {
                for id in self.ready(&active) {
                    if active.len() >= self.max_agents {
                        break;
                    }
                    active.insert(id.clone());
                    let me = self.clone();
                    running.spawn(async move { me.run_task(id).await });
                }
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            match joined {
                Ok(end) => {
                    active.remove(&end.id);
                }
                Err(e) => {
                    // A task that panicked stays `running`; its lease
                    // expires and the next run reclaims it.
                    tracing::error!("a task runner failed: {e}");
                    active.clear();
                }
            }
        }
        self.finish()
    }

    /// Pending tasks whose dependencies are done, best first.
    pub(super) fn ready(&self, active: &HashSet<String>) -> Vec<String> {
        let s = self.session();
        let done: HashSet<&str> = s
            .graph
            .tasks()
            .iter()
            .filter(|t| t.status == TaskStatus::Done)
            .map(|t| t.id.as_str())
            .collect();
        let mut ready: Vec<_> = s
            .graph
            .tasks()
            .iter()
            .enumerate()
            .filter(|(_, t)| t.status == TaskStatus::Pending && !active.contains(&t.id))
            .filter(|(_, t)| t.dependencies.iter().all(|d| done.contains(d.as_str())))
            .map(|(i, t)| (std::cmp::Reverse(t.priority), i, t.id.clone()))
            .collect();
        ready.sort();
        ready.into_iter().map(|(_, _, id)| id).collect()
    }

    pub(super) fn apply_requests(&self) -> Result<(), GoalError> {
        let mut s = self.session();
        for r in s.take_requests() {
            match (r, s.goal.status) {
                (_, st) if st.is_terminal() => {}
                (Request::Cancel, _) => {
                    s.set_status(GoalStatus::Cancelled, "cancelled by the user", events::USER)?
                }
                (Request::Pause, GoalStatus::Running) => {
                    s.set_status(GoalStatus::Paused, "paused by the user", events::USER)?
                }
                (Request::Pause, _) => {}
            }
        }
        Ok(())
    }

    /// Judges the follow-up proposals of finished tasks, one wave per task
    /// run (idempotent by run key, so a crash in between loses nothing).
    pub(super) fn judge_follow_ups(&self) -> Result<(), GoalError> {
        let mut s = self.session();
        if !matches!(s.goal.status, GoalStatus::Running) {
            return Ok(());
        }
        let todo: Vec<(String, u32, Vec<TaskProposal>)> = s
            .graph
            .tasks()
            .iter()
            .filter(|t| {
                t.status == TaskStatus::Done && !t.follow_ups.is_empty() && !t.follow_ups_judged
            })
            .map(|t| (t.id.clone(), t.attempt(), t.follow_ups.clone()))
            .collect();
        for (id, attempt, proposals) in todo {
            let plan = DispatchPlan {
                run_key: format!("follow-up/{id}/{attempt}"),
                kind: WaveKind::FollowUp,
                proposals,
                allow_existing_task_ids: false,
            };
            let evidence = super::blocking(|| run_wave(&mut s, &self.gates, &plan, Utc::now()))?;
            if let Some(t) = s.graph.get_mut(&id) {
                t.follow_ups_judged();
            }
            s.save_graph(Utc::now())?;
            self.observer.progress(&Progress::Wave(evidence));
        }
        Ok(())
    }

    /// Fails pending tasks that wait on a task that failed or was cancelled.
    pub(super) fn fail_blocked(&self) -> Result<(), GoalError> {
        let mut s = self.session();
        loop {
            let dead: HashSet<String> = s
                .graph
                .tasks()
                .iter()
                .filter(|t| matches!(t.status, TaskStatus::Failed | TaskStatus::Cancelled))
                .map(|t| t.id.clone())
                .collect();
            let blocked: Vec<(String, String)> = s
                .graph
                .tasks()
                .iter()
                .filter(|t| t.status == TaskStatus::Pending)
                .filter_map(|t| {
                    t.dependencies
                        .iter()
                        .find(|d| dead.contains(*d))
                        .map(|d| (t.id.clone(), d.clone()))
                })
                .collect();
            if blocked.is_empty() {
                return Ok(());
            }
            for (id, dep) in blocked {
                let reason = format!("its dependency `{dep}` did not finish");
                if let Some(t) = s.graph.get_mut(&id) {
                    t.block(&reason, Utc::now())?;
                }
                s.log.record(
                    events::OMK,
                    &events::TaskFailed {
                        task_id: id.clone(),
                        attempt: None,
                        reason: reason.clone(),
                        code: "omk.dependency-failed".into(),
                        will_retry: false,
                    },
                )?;
                self.observer.progress(&Progress::Failed {
                    task: id,
                    reason,
                    retry: false,
                });
            }
            s.save_graph(Utc::now())?;
        }
    }

    /// Logs the completion of each task the graph has done and the log
    /// does not: a run killed between saving the graph and logging the
    /// completion (see `attempt.rs`) left it so. Nothing runs again.
    fn restore_completions(&self) -> Result<(), GoalError> {
        let mut s = self.session();
        let done: Vec<events::TaskCompleted> = s
            .graph
            .tasks()
            .iter()
            .filter(|t| t.status == TaskStatus::Done)
            .map(|t| events::TaskCompleted {
                task_id: t.id.clone(),
                attempt: t.attempt(),
                commit: t.commit.clone(),
                merged: t.merged,
                changed_files: t.changed_files.clone(),
                follow_ups: t.follow_ups.len(),
            })
            .collect();
        if done.is_empty() {
            return Ok(());
        }
        s.sync()?;
        let mut logged: HashSet<(String, u32)> = HashSet::new();
        crate::proof::log::each_event(self.dir.path(), |e| {
            if let events::Body::TaskCompleted(c) = events::Body::of(&e) {
                logged.insert((c.task_id, c.attempt));
            }
        })?;
        let mut restored = false;
        for c in done {
            if !logged.contains(&(c.task_id.clone(), c.attempt)) {
                tracing::info!(
                    "logging the completion of task `{}`, which a stopped run saved but did not log",
                    c.task_id
                );
                s.log.record(events::OMK, &c)?;
                restored = true;
            }
        }
        if restored {
            s.checkpoint()?;
        }
        Ok(())
    }

    /// Reclaims tasks a previous run left `running`: after their lease
    /// expires, their processes are killed and they are retried.
    pub(super) async fn reclaim(&self) -> Result<(), GoalError> {
        self.restore_completions()?;
        let stale: Vec<(String, Option<chrono::DateTime<Utc>>)> = {
            let s = self.session();
            s.graph
                .tasks()
                .iter()
                .filter(|t| t.status == TaskStatus::Running)
                .map(|t| (t.id.clone(), t.lease_expires_at))
                .collect()
        };
        for (id, expires) in stale {
            if let Some(at) = expires {
                let wait = (at - Utc::now()).to_std().unwrap_or_default();
                // Never wait past one full lease, whatever the file says.
                let wait = wait.min(Duration::from_secs(self.opts.lease_secs));
                if !wait.is_zero() {
                    tracing::info!("waiting {wait:?} for the lease of task `{id}` to expire");
                    tokio::time::sleep(wait).await;
                }
            }
            let (pgid, token) = {
                let s = self.session();
                let t = s.graph.get(&id);
                (
                    t.and_then(|t| t.pgid),
                    t.and_then(|t| t.lease_token.clone()),
                )
            };
            if let (Some(pgid), Some(token)) = (pgid, token)
                && alive_with_marker(pgid, &format!("OMK_LEASE={token}"))
            {
                kill_group(pgid);
            }
            let _ = self.git(|| worktree::remove(&self.repo, &self.dir.worktree(&id)));
            self.log(
                events::OMK,
                &events::TaskReclaimed {
                    task_id: id.clone(),
                    reason: "its lease expired: the omk running it stopped".into(),
                },
            );
            self.fail_or_retry(
                &id,
                "its runner stopped before it finished (lease expired)",
                "omk.lease-expired",
                true,
            )?;
        }
        Ok(())
    }

    /// Sets the goal's final status once nothing runs.
    pub(super) fn finish(&self) -> Result<GoalStatus, GoalError> {
        let integration = self.dir.integration_worktree();
        let _ = self.git(|| worktree::remove(&self.repo, &integration));
        if let Some(worktrees) = integration.parent() {
            let _ = self.git(|| worktree::overlay::remove_bases(&self.repo, worktrees));
        }
        let mut s = self.session();
        let now = Utc::now();
        match s.goal.status {
            GoalStatus::Cancelled => {
                for t in s
                    .graph
                    .tasks_mut()
                    .iter_mut()
                    .filter(|t| t.status == TaskStatus::Pending)
                {
                    t.cancel(now)?;
                }
                s.save_graph(now)?;
            }
            GoalStatus::Running => {
                let pending = s
                    .graph
                    .tasks()
                    .iter()
                    .any(|t| t.status == TaskStatus::Pending);
                if pending && budget_spent(&s) {
                    s.goal.failure =
                        Some("a budget is spent; add budget with `omk goal budget-add`".into());
                    s.set_status(
                        GoalStatus::NeedsMoreBudget,
                        "a budget is spent",
                        events::OMK,
                    )?;
                } else if !pending {
                    let total = s.graph.tasks().len();
                    let done = s
                        .graph
                        .tasks()
                        .iter()
                        .filter(|t| t.status == TaskStatus::Done)
                        .count();
                    s.goal.phase = GoalPhase::Complete;
                    if total > 0 && done == total {
                        s.goal.failure = None;
                        s.set_status(
                            GoalStatus::Ready,
                            "every task is done and accepted",
                            events::OMK,
                        )?;
                    } else {
                        let why = if total == 0 {
                            "no task was admitted".to_owned()
                        } else {
                            format!("{} of {total} tasks did not finish", total - done)
                        };
                        s.goal.failure = Some(why.clone());
                        s.set_status(GoalStatus::NotReady, &why, events::OMK)?;
                    }
                }
            }
            _ => {}
        }
        s.sync()?;
        let status = s.goal.status;
        drop(s);
        self.observer.progress(&Progress::Stopped { status });
        Ok(status)
    }

    /// Marks a task's attempt failed: pending again if retries remain, else
    /// failed for good.
    pub(super) fn fail_or_retry(
        &self,
        id: &str,
        reason: &str,
        code: &str,
        retryable: bool,
    ) -> Result<bool, GoalError> {
        let mut s = self.session();
        let now = Utc::now();
        let Some(t) = s.graph.get_mut(id) else {
            return Ok(false);
        };
        let failed = t.retry_or_fail(reason, retryable, now)?;
        let (attempt, retry) = (failed.attempt, failed.will_retry);
        // The log first: the graph never says more than the log holds.
        s.log.record(
            events::OMK,
            &events::TaskFailed {
                task_id: id.to_owned(),
                attempt: Some(attempt),
                reason: reason.to_owned(),
                code: code.to_owned(),
                will_retry: retry,
            },
        )?;
        s.checkpoint()?;
        s.save_graph(now)?;
        drop(s);
        self.observer.progress(&Progress::Failed {
            task: id.to_owned(),
            reason: reason.to_owned(),
            retry,
        });
        Ok(retry)
    }
}

//! One attempt of one task: its sandbox and lease, its worktree, the
//! agent's run, the outcome judged, and the work committed and merged —
//! or the attempt ended, to be retried or failed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use omk_core::lifecycle::Completion;
use omk_gate_sdk::{GoalContext, TaskOutcome, TaskProposal};

use super::hooks::{TaskGate, TaskHooks};
use super::{Executor, Progress, TaskEnd, blocking};
use crate::agents::{Job, Report};
use crate::goal::GoalError;
use crate::proof::events::{self, About};
use crate::proof::inputs::Subject;
use crate::sandbox::proxy::Proxy;
use crate::sandbox::{Confinement, Profile};
use crate::wave::goal_context;
use crate::worktree;

/// A started attempt: what its steps share.
pub(super) struct Started {
    pub(super) id: String,
    pub(super) attempt: u32,
    pub(super) task: TaskProposal,
    pub(super) ctx: GoalContext,
    pub(super) wt: PathBuf,
    pub(super) branch: String,
    pub(super) token: String,
    pub(super) profile: Profile,
    /// The egress proxy's judge, and the proxy (stopped when dropped).
    pub(super) gate: Arc<TaskGate>,
    pub(super) _proxy: Option<Proxy>,
}

impl Executor {
    /// Runs one task to its end. Errors are recorded on the task, never
    /// returned: one task's trouble must not stop the others.
    pub(super) async fn run_task(self: Arc<Self>, id: String) -> TaskEnd {
        if let Err(e) = self.try_run_task(&id).await {
            tracing::error!("task `{id}`: {e}");
            let _ = self.fail_or_retry(
                &id,
                &format!("omk could not run it: {e}"),
                "omk.internal",
                false,
            );
        }
        TaskEnd { id }
    }

    /// Runs one attempt of pending task `id` here, whatever else is
    /// pending: what a worker does with the one task of its record of an
    /// offered attempt.
    pub async fn run_one(self: &Arc<Self>, id: &str) {
        let _ = self.clone().run_task(id.to_owned()).await;
    }

    /// One attempt, step by step; each step that ends the attempt records
    /// why and returns `None`.
    async fn try_run_task(self: &Arc<Self>, id: &str) -> Result<(), GoalError> {
        if let Some(dispatch) = self.opts.dispatch.clone() {
            return self.run_remote(id, &dispatch).await;
        }
        let Some(started) = self.begin(id).await? else {
            return Ok(());
        };
        let Some((report, hooks, confinement)) = self.work(&started).await? else {
            return Ok(());
        };
        let Some(outcome) = self.judge(&started, &report, &hooks, &confinement).await? else {
            return Ok(());
        };
        let Some((commit, merged)) = self.land(&started).await? else {
            return Ok(());
        };
        self.complete(started, commit, merged, outcome, report.proposals)
    }

    /// Records a landed attempt's task as done.
    pub(super) fn complete(
        &self,
        started: Started,
        commit: Option<String>,
        merged: bool,
        outcome: TaskOutcome,
        follow_ups: Vec<TaskProposal>,
    ) -> Result<(), GoalError> {
        let Started {
            id, attempt, wt, ..
        } = started;
        let merged_into = merged;
        let proposed = follow_ups.len();
        {
            let mut s = self.session();
            let now = Utc::now();
            if let Some(t) = s.graph.get_mut(&id) {
                t.complete(
                    Completion {
                        commit: commit.clone(),
                        merged: merged_into,
                        changed_files: outcome.changed_files.clone(),
                        evidence: outcome.evidence.clone(),
                        follow_ups,
                    },
                    now,
                )?;
            }
            // Everything logged so far is durable, then the graph says
            // done, then the log: a kill between the two leaves a task the
            // graph has done and the log not yet, which the next start
            // logs from the graph (`restore_completions`) instead of
            // running it again.
            s.sync()?;
            s.save_graph(now)?;
            s.log.record(
                events::OMK,
                &events::TaskCompleted {
                    task_id: id.clone(),
                    attempt,
                    commit: commit.clone(),
                    merged: merged_into,
                    changed_files: outcome.changed_files.clone(),
                    follow_ups: proposed,
                },
            )?;
            s.checkpoint()?;
        }
        let _ = self.git(|| worktree::remove(&self.repo, &wt));
        self.observer.progress(&Progress::Done {
            task: id,
            commit,
            merged: merged_into,
        });
        Ok(())
    }

    /// Prepares the task's sandbox, then starts it: running, leased, its
    /// profile in `task_started`, durable before any work starts.
    async fn begin(&self, id: &str) -> Result<Option<Started>, GoalError> {
        let wt = self.dir.worktree(id);
        let branch = worktree::task_branch(&self.goal_id, id);
        let token = lease_token(id);
        // The sandbox first, so that `task_started` records its profile.
        let Some(planned) = self.session().graph.get(id).map(|t| t.as_proposal()) else {
            return Ok(None);
        };
        let gate = Arc::new(TaskGate::new());
        let (profile, proxy) = match self.sandbox(Some(&planned), &wt, gate.clone()).await {
            Ok(s) => s,
            Err(e) => {
                self.fail_or_retry(id, &e.to_string(), "omk.sandbox", false)?;
                return Ok(None);
            }
        };
        let mut s = self.session();
        let now = Utc::now();
        let lease = self.lease_from(now);
        let Some(t) = s.graph.get_mut(id) else {
            return Ok(None);
        };
        let attempt = t.start(&branch, lease, &token)?;
        let task = t.as_proposal();
        s.save_graph(now)?;
        s.log.record(
            events::OMK,
            &events::TaskStarted {
                task_id: id.to_owned(),
                attempt,
                branch: branch.clone(),
                worktree: wt.clone(),
                lease_expires_at: Some(lease),
                agent: self.backend.name().to_owned(),
                live_gating: self.backend.live_gating(),
                sandbox: Some(profile.clone()),
                workspace: Some(worktree::workspace_kind(&wt).to_owned()),
            },
        )?;
        s.sync()?;
        let now_ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        let ctx = match &self.opts.context {
            Some(frozen) => frozen.clone(),
            None => goal_context(&s, id, now_ms),
        };
        drop(s);
        self.observer.progress(&Progress::Started {
            task: id.to_owned(),
            attempt,
        });
        Ok(Some(Started {
            id: id.to_owned(),
            attempt,
            task,
            ctx,
            wt,
            branch,
            token,
            profile,
            gate,
            _proxy: proxy,
        }))
    }

    /// Creates the worktree and runs the agent in it, confined, until it
    /// exits or its budget runs out; the spend is recorded either way.
    async fn work(
        self: &Arc<Self>,
        st: &Started,
    ) -> Result<Option<(Report, Arc<TaskHooks>, Confinement)>, GoalError> {
        let (id, wt) = (st.id.as_str(), &st.wt);
        if let Err(e) = self.git(|| worktree::create(&self.repo, wt, &st.branch, &self.base)) {
            let reason = format!("cannot create its worktree: {e}");
            self.fail_or_retry(id, &reason, "omk.worktree", false)?;
            return Ok(None);
        }
        // The rules open the paths they name: the worktree exists now.
        let confinement = match Confinement::prepare(&st.profile) {
            Ok(c) => c,
            Err(e) => {
                self.end_attempt(id, wt, &e.to_string(), "omk.sandbox", false)?;
                return Ok(None);
            }
        };
        let started = std::time::Instant::now();
        let job = Job {
            goal_id: self.goal_id.clone(),
            goal: self.goal.clone(),
            task: st.task.clone(),
            attempt: st.attempt,
            worktree: wt.clone(),
            deadline: tokio::time::Instant::now() + Duration::from_secs(st.task.budget_secs),
            lease_marker: ("OMK_LEASE".into(), st.token.clone()),
            confinement,
        };
        let hooks = Arc::new(TaskHooks::for_task(
            self.clone(),
            st.task.clone(),
            st.ctx.clone(),
            wt.clone(),
            &st.profile,
        ));
        st.gate.attach(hooks.clone());
        let report = tokio::select! {
            r = self.backend.run(&job, &*hooks) => r,
            _ = self.renew_lease(id) => unreachable!("lease renewal never ends"),
        };
        hooks.check_refused();
        self.record_spend(id, &report, started.elapsed())?;
        if report.succeeded() {
            return Ok(Some((report, hooks, job.confinement)));
        }
        let budget = st.task.budget_secs;
        let (reason, code) = if report.timed_out {
            (
                format!(
                    "timed out after its budget of {budget}s; the agent's process group was killed"
                ),
                "omk.timeout",
            )
        } else {
            (
                format!(
                    "the agent exited with {}: {}",
                    report
                        .exit_code
                        .map_or("no exit code".into(), |c| format!("code {c}")),
                    crate::text::clip(report.output_tail.lines().last().unwrap_or(""), 300)
                ),
                "omk.agent-failed",
            )
        };
        self.end_attempt(id, wt, &reason, code, true)?;
        Ok(None)
    }

    /// Builds the attempt's outcome and has the gates judge it.
    async fn judge(
        &self,
        st: &Started,
        report: &Report,
        hooks: &TaskHooks,
        confinement: &Confinement,
    ) -> Result<Option<TaskOutcome>, GoalError> {
        let outcome = self
            .outcome(&st.task, &st.wt, report, hooks, confinement)
            .await?;
        if !self.opts.judge_outcomes {
            return Ok(Some(outcome));
        }
        self.judge_outcome(st, outcome)
    }

    /// Has the gates judge an attempt's outcome; the outcome if accepted,
    /// else the attempt ended and `None`.
    pub(super) fn judge_outcome(
        &self,
        st: &Started,
        outcome: TaskOutcome,
    ) -> Result<Option<TaskOutcome>, GoalError> {
        let verdict = blocking(|| self.gates.judge_outcome(&st.ctx, &st.task, &outcome));
        self.record(
            &st.ctx,
            Subject::Outcome {
                task: st.task.clone(),
                outcome: outcome.clone(),
            },
            &verdict,
            About {
                task_id: st.id.clone(),
                attempt: Some(st.attempt),
                ..About::default()
            },
        )?;
        match verdict.rejection() {
            None => Ok(Some(outcome)),
            Some(b) => {
                let reason = format!("outcome rejected by `{}`: {}", b.gate, b.reason);
                self.end_attempt(&st.id, &st.wt, &reason, &b.code, true)?;
                Ok(None)
            }
        }
    }

    /// Ends a failed attempt: retry or fail, and clean up its worktree
    /// (kept for inspection when asked and it failed for good).
    pub(super) fn end_attempt(
        &self,
        id: &str,
        wt: &std::path::Path,
        reason: &str,
        code: &str,
        retryable: bool,
    ) -> Result<(), GoalError> {
        let retry = self.fail_or_retry(id, reason, code, retryable)?;
        if retry || !self.opts.keep_failed {
            let _ = self.git(|| worktree::remove(&self.repo, wt));
        }
        Ok(())
    }

    /// When a lease taken at `now` expires.
    fn lease_from(&self, now: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
        now + chrono::Duration::seconds(i64::try_from(self.opts.lease_secs).unwrap_or(30))
    }

    /// Renews a running task's lease until cancelled.
    pub(super) async fn renew_lease(&self, id: &str) {
        let every = Duration::from_millis((self.opts.lease_secs * 1000 / 3).max(200));
        loop {
            tokio::time::sleep(every).await;
            self.renew(id);
        }
    }

    /// Renews the lease of task `id` once (also while it waits for a
    /// person, when its lease loop cannot run).
    pub(super) fn renew(&self, id: &str) {
        let mut s = self.session();
        let now = Utc::now();
        if let Some(t) = s.graph.get_mut(id) {
            t.renew(self.lease_from(now));
        }
        if let Err(e) = s.save_graph(now) {
            tracing::warn!("cannot renew the lease of `{id}`: {e}");
        }
    }

    pub(super) fn record_spend(
        &self,
        id: &str,
        report: &Report,
        took: Duration,
    ) -> Result<(), GoalError> {
        let mut s = self.session();
        let secs = took.as_secs() + u64::from(took.subsec_nanos() > 0);
        let spent = &mut s.goal.spent;
        spent.time_secs = spent.time_secs.saturating_add(secs);
        spent.tokens = spent.tokens.saturating_add(report.tokens);
        spent.usd_micros = spent.usd_micros.saturating_add(report.usd_micros);
        s.save_goal(Utc::now())?;
        s.log.record(
            &events::agent_actor(self.backend.name()),
            &events::AgentFinished {
                task_id: id.to_owned(),
                exit_code: report.exit_code,
                timed_out: report.timed_out,
                secs,
                tokens: report.tokens,
                usd_micros: report.usd_micros,
                output_tail: crate::text::clip(&report.output_tail, 2000),
            },
        )?;
        Ok(())
    }
}

pub(super) fn lease_token(id: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(id.as_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            .to_le_bytes(),
    );
    hex::encode(&h.finalize()[..8])
}

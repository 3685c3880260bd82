//! Execution: admitted tasks run in their worktrees through an agent, under
//! the gates, until the goal reaches a terminal status.
//!
//! The scheduler starts pending tasks whose dependencies are done, highest
//! priority first, at most `max_agents` at once. Each task:
//!
//! 1. is marked running with a lease (`OMK_GOAL_AGENT_LEASE_SECS`, renewed
//!    while it runs) and `task_started` is logged and synced;
//! 2. gets a fresh worktree on `omk/<goal-id>/<task-id>` from the base
//!    commit;
//! 3. runs through the agent until it exits or its `budget_secs` run out
//!    (then its whole process group is killed); every action the agent asks
//!    for is judged live by the gates;
//! 4. has its outcome built — changed files from git, every `run:`
//!    criterion run as a check, the agent's evidence — and judged by the
//!    gates;
//! 5. if accepted, is committed on its branch and, with the `integrate`
//!    policy, merged into `omk/<goal-id>/integration` (a conflict fails it,
//!    both branches intact); if not, it is retried while retries remain.
//!
//! Follow-up proposals of finished tasks are judged as `follow_up` waves.
//! Pause and cancel (asked by another process through request files) are
//! honoured between tasks; when a budget is spent no task starts and the
//! goal stops as `needs_more_budget`. A task left running by a killed omk is
//! reclaimed once its lease has expired: its processes are killed and it is
//! retried, so it never runs twice at once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use omk_gate_sdk::{AgentAction, CheckResult, Evidence, GoalContext, TaskOutcome, TaskProposal};
use serde_json::Value;
use tokio::task::JoinSet;

use super::{DispatchPlan, WaveEvidence, WaveKind, goal_context, run_wave};
use crate::agents::process::{alive_with_marker, kill_group, run_shell};
use crate::agents::{Backend, Brief, Hooks, Job, Permit, Report};
use crate::gates::{GateSet, Verdict};
use crate::goal::{GoalError, GoalPhase, GoalStatus, MergePolicy, Request, Session};
use crate::graph::TaskStatus;
use crate::proof::events::{self, About, Payload};
use crate::proof::inputs::Subject;
use crate::sandbox::proxy::{Gatekeeper, Proxy};
use crate::sandbox::{Confinement, Profile, ProfileInputs, SandboxError, SandboxSettings};
use crate::worktree::{self, Merge};
use omk_core::diagnose::{Diagnose, Kind};

/// Settings of a run, from the environment.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Seconds a task's lease lasts without renewal.
    pub lease_secs: u64,
    /// Seconds each `run:` check may take.
    pub check_timeout_secs: u64,
    /// Keep the worktree of a task that failed for good.
    pub keep_failed: bool,
    /// How task processes are confined (`[sandbox]`).
    pub sandbox: SandboxSettings,
}

impl ExecOptions {
    /// `OMK_GOAL_AGENT_LEASE_SECS` (default 30) and
    /// `OMK_CHECK_TIMEOUT_SECS` (default 600).
    pub fn from_env(keep_failed: bool) -> ExecOptions {
        let num = |var: &str, default: u64| {
            std::env::var(var)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&n| n > 0)
                .unwrap_or(default)
        };
        ExecOptions {
            lease_secs: num("OMK_GOAL_AGENT_LEASE_SECS", 30),
            check_timeout_secs: num("OMK_CHECK_TIMEOUT_SECS", 600),
            keep_failed,
            sandbox: SandboxSettings::new(),
        }
    }
}

/// Something that happened, for whoever shows progress.
#[derive(Debug, Clone)]
pub enum Progress {
    Wave(WaveEvidence),
    Started {
        task: String,
        attempt: u32,
    },
    Refused {
        task: String,
        target: String,
        reason: String,
    },
    Done {
        task: String,
        commit: Option<String>,
        merged: bool,
    },
    Failed {
        task: String,
        reason: String,
        retry: bool,
    },
    Stopped {
        status: GoalStatus,
    },
}

/// Receives [`Progress`].
pub trait Observer: Send + Sync {
    fn progress(&self, p: &Progress);
}

/// An observer that shows nothing.
pub struct Quiet;

impl Observer for Quiet {
    fn progress(&self, _: &Progress) {}
}

/// Why a goal's run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Goal(#[from] GoalError),
    #[error(transparent)]
    Agent(#[from] crate::agents::AgentError),
    #[error(transparent)]
    Gates(#[from] crate::gates::GatesError),
    #[error(transparent)]
    Config(#[from] crate::gates::ConfigError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

impl Diagnose for StartError {
    fn kind(&self) -> Kind {
        match self {
            StartError::Goal(e) => e.kind(),
            StartError::Agent(e) => e.kind(),
            StartError::Gates(e) => e.kind(),
            StartError::Config(e) => e.kind(),
            StartError::Sandbox(e) => e.kind(),
        }
    }

    fn help(&self) -> Option<String> {
        match self {
            StartError::Goal(e) => e.help(),
            StartError::Agent(e) => e.help(),
            StartError::Gates(e) => e.help(),
            StartError::Config(e) => e.help(),
            StartError::Sandbox(e) => e.help(),
        }
    }
}

/// Everything a run shares between its tasks.
pub struct Executor {
    session: Mutex<Session>,
    gates: GateSet,
    backend: Box<dyn Backend>,
    opts: ExecOptions,
    observer: Box<dyn Observer>,
    goal_id: String,
    goal: String,
    repo: PathBuf,
    base: String,
    merge_policy: MergePolicy,
    max_agents: usize,
    merging: tokio::sync::Mutex<()>,
    /// Serialises git commands on the project's repository (worktree add
    /// and remove take git's own locks, which fail rather than wait).
    repo_lock: Mutex<()>,
}

/// The end of one task's run.
struct TaskEnd {
    id: String,
}

impl Executor {
    /// An executor for the open goal `session`.
    pub fn new(
        session: Session,
        gates: GateSet,
        backend: Box<dyn Backend>,
        opts: ExecOptions,
        observer: Box<dyn Observer>,
    ) -> Result<Arc<Executor>, GoalError> {
        let g = &session.goal;
        let (Some(base), repo) = (g.base_commit.clone(), g.project_dir.clone()) else {
            return Err(GoalError::state(
                format!(
                    "goal `{}` has no base commit: its project is not a git repository",
                    g.id
                ),
                "omk runs tasks in git worktrees; create the goal in a repository with at least one commit",
            ));
        };
        Ok(Arc::new(Executor {
            goal_id: g.id.clone(),
            goal: g.normalized_goal.clone(),
            merge_policy: g.merge_policy,
            max_agents: usize::try_from(g.max_agents.max(1)).unwrap_or(1),
            repo,
            base,
            session: Mutex::new(session),
            gates,
            backend,
            opts,
            observer,
            merging: tokio::sync::Mutex::new(()),
            repo_lock: Mutex::new(()),
        }))
    }

    /// The executor of the open goal `session`, as `omk goal execute`
    /// builds it: its agent (checked before any task: a missing client, a
    /// wrong version, no credentials), its project's gates and `[sandbox]`
    /// (refused before any task where the kernel cannot confine), and
    /// options from the environment.
    pub fn for_goal(
        session: Session,
        keep_failed: bool,
        observer: Box<dyn Observer>,
    ) -> Result<Arc<Executor>, StartError> {
        let spec = session.goal.agent.clone().ok_or_else(|| {
            GoalError::state(
                format!("goal `{}` has no agent", session.goal.id),
                "create the goal with `--agent scripted --script FILE` or `--agent exec --command CMD`",
            )
        })?;
        let backend = crate::agents::backend(&spec)?;
        crate::agents::doctor::preflight(&spec)?;
        let project = session.goal.project_dir.clone();
        let gates = GateSet::for_project(&project)?;
        let mut opts = ExecOptions::from_env(keep_failed);
        opts.sandbox = crate::gates::GatesConfig::for_project(&project)?.sandbox;
        crate::sandbox::check_kernel(&opts.sandbox)?;
        Ok(Executor::new(session, gates, backend, opts, observer)?)
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        // A panic while holding the lock leaves the data as it was written
        // last; carrying on is safe because every write is atomic.
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs an event that must not stop the run when the log cannot take
    /// it (the next write that must succeed will fail).
    fn log<P: Payload>(&self, actor: &str, payload: &P) {
        if let Err(e) = self.session().log.record(actor, payload) {
            tracing::error!("cannot append to the event log: {e}");
        }
    }

    /// The actor of what the agent did.
    fn agent_actor(&self) -> String {
        events::agent_actor(self.backend.name())
    }

    /// The sandbox of one run: the profile of task `task` (of planning,
    /// with `None`), its private folders prepared, and the egress proxy it
    /// reaches the network through, judging with `gate`. `tree` is the
    /// task's worktree, or the checkout planning reads.
    async fn sandbox(
        &self,
        task: Option<&TaskProposal>,
        tree: &std::path::Path,
        gate: Arc<dyn Gatekeeper>,
    ) -> Result<(Profile, Option<Proxy>), SandboxError> {
        let settings = &self.opts.sandbox;
        if settings.mode == crate::sandbox::SandboxMode::Off {
            return Ok((Profile::off(), None));
        }
        let proxy = if settings.network {
            Some(Proxy::start(gate).await.map_err(|e| SandboxError {
                message: format!("cannot start the egress proxy: {e}"),
            })?)
        } else {
            None
        };
        let (client, command) = self.backend.client();
        let mut commands: Vec<String> = command.into_iter().collect();
        if let Some(t) = task {
            commands.extend(
                t.acceptance
                    .iter()
                    .filter_map(|c| c.trim().strip_prefix("run:"))
                    .map(|c| c.trim().to_owned()),
            );
        }
        let task_dir = self.session().dir().join("sandbox").join(match task {
            Some(t) => worktree::branch_safe(&t.id),
            None => "_plan".into(),
        });
        let private: Vec<PathBuf> = [
            crate::dirs::state_dir(),
            crate::dirs::cache_dir(),
            crate::dirs::config_dir(),
            Some(self.repo.clone()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let profile = Profile::derive(&ProfileInputs {
            settings,
            worktree: task.map(|_| tree),
            read_only_tree: task.is_none().then_some(tree),
            git_dir: self.git(|| worktree::git_common_dir(&self.repo)).ok(),
            task_dir: &task_dir,
            commands,
            client,
            proxy: proxy.as_ref().map(Proxy::addr),
            private,
            env: std::env::vars().collect(),
        })?;
        Ok((profile, proxy))
    }

    fn worktree_path(&self, task_id: &str) -> PathBuf {
        self.session()
            .dir()
            .join("worktrees")
            .join(worktree::branch_safe(task_id))
    }

    /// Asks the agent for the goal's first tasks and judges them as the
    /// `plan` wave.
    pub async fn plan(self: &Arc<Self>) -> Result<WaveEvidence, GoalError> {
        let (brief, hooks) = {
            let s = self.session();
            let dir = s.dir().join("worktrees").join("_plan");
            let brief = Brief {
                goal_id: s.goal.id.clone(),
                goal: s.goal.normalized_goal.clone(),
                dir,
                policy_roots: s.goal.policy_roots.clone(),
                confinement: Confinement::none(),
            };
            (brief, TaskHooks::planning(self.clone()))
        };
        let mut brief = brief;
        self.git(|| worktree::create_detached(&self.repo, &brief.dir, &self.base))
            .map_err(|e| GoalError::state(e.to_string(), "check the project's git repository"))?;
        let gate = Arc::new(PlanGate(std::sync::OnceLock::new()));
        let (profile, _proxy) = self
            .sandbox(None, &brief.dir, gate.clone())
            .await
            .map_err(sandbox_error)?;
        let _ = gate.0.set(profile.hosts.clone());
        brief.confinement = Confinement::prepare(&profile).map_err(sandbox_error)?;
        let planned = self.backend.plan(&brief, &hooks).await;
        let _ = self.git(|| worktree::remove(&self.repo, &brief.dir));
        let proposals = planned.map_err(|e| {
            GoalError::state(
                format!("the `{}` agent could not plan: {e}", self.backend.name()),
                "check the agent's command or script; for a real client, its credentials and model server (`omk doctor` lists what it finds)",
            )
        })?;
        if proposals.is_empty() {
            let mut s = self.session();
            s.goal.failure = Some("the agent proposed no tasks".into());
            s.set_status(
                GoalStatus::NotReady,
                "the agent proposed no tasks",
                events::OMK,
            )?;
            return Err(GoalError::state(
                "the agent proposed no tasks",
                "a plan must propose at least one task",
            ));
        }
        let plan = DispatchPlan {
            run_key: "plan".into(),
            kind: WaveKind::Initial,
            proposals,
            allow_existing_task_ids: false,
        };
        let evidence = {
            let mut s = self.session();
            run_wave(&mut s, &self.gates, &plan, Utc::now())?
        };
        self.observer.progress(&Progress::Wave(evidence.clone()));
        Ok(evidence)
    }

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
        self.reclaim().await?;
        let mut running: JoinSet<TaskEnd> = JoinSet::new();
        let mut active: HashSet<String> = HashSet::new();
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
    fn ready(&self, active: &HashSet<String>) -> Vec<String> {
        let s = self.session();
        let done: HashSet<&str> = s
            .graph
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Done)
            .map(|t| t.id.as_str())
            .collect();
        let mut ready: Vec<_> = s
            .graph
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.status == TaskStatus::Pending && !active.contains(&t.id))
            .filter(|(_, t)| t.dependencies.iter().all(|d| done.contains(d.as_str())))
            .map(|(i, t)| (std::cmp::Reverse(t.priority), i, t.id.clone()))
            .collect();
        ready.sort();
        ready.into_iter().map(|(_, _, id)| id).collect()
    }

    fn apply_requests(&self) -> Result<(), GoalError> {
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
    fn judge_follow_ups(&self) -> Result<(), GoalError> {
        let mut s = self.session();
        if !matches!(s.goal.status, GoalStatus::Running) {
            return Ok(());
        }
        let todo: Vec<(String, u32, Vec<TaskProposal>)> = s
            .graph
            .tasks
            .iter()
            .filter(|t| {
                t.status == TaskStatus::Done && !t.follow_ups.is_empty() && !t.follow_ups_judged
            })
            .map(|t| (t.id.clone(), t.retry_count + 1, t.follow_ups.clone()))
            .collect();
        for (id, attempt, proposals) in todo {
            let plan = DispatchPlan {
                run_key: format!("follow-up/{id}/{attempt}"),
                kind: WaveKind::FollowUp,
                proposals,
                allow_existing_task_ids: false,
            };
            let evidence = run_wave(&mut s, &self.gates, &plan, Utc::now())?;
            if let Some(t) = s.graph.get_mut(&id) {
                t.follow_ups_judged = true;
            }
            s.save_graph(Utc::now())?;
            self.observer.progress(&Progress::Wave(evidence));
        }
        Ok(())
    }

    /// Fails pending tasks that wait on a task that failed or was cancelled.
    fn fail_blocked(&self) -> Result<(), GoalError> {
        let mut s = self.session();
        loop {
            let dead: HashSet<String> = s
                .graph
                .tasks
                .iter()
                .filter(|t| matches!(t.status, TaskStatus::Failed | TaskStatus::Cancelled))
                .map(|t| t.id.clone())
                .collect();
            let blocked: Vec<(String, String)> = s
                .graph
                .tasks
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
                    t.status = TaskStatus::Failed;
                    t.failure = Some(reason.clone());
                    t.completed_at = Some(Utc::now());
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

    /// Reclaims tasks a previous run left `running`: after their lease
    /// expires, their processes are killed and they are retried.
    async fn reclaim(&self) -> Result<(), GoalError> {
        let stale: Vec<(String, Option<chrono::DateTime<Utc>>)> = {
            let s = self.session();
            s.graph
                .tasks
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
            let _ = self.git(|| worktree::remove(&self.repo, &self.worktree_path(&id)));
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
    fn finish(&self) -> Result<GoalStatus, GoalError> {
        let integration = self.session().dir().join("worktrees").join("_integration");
        let _ = self.git(|| worktree::remove(&self.repo, &integration));
        let mut s = self.session();
        let now = Utc::now();
        match s.goal.status {
            GoalStatus::Cancelled => {
                for t in s
                    .graph
                    .tasks
                    .iter_mut()
                    .filter(|t| t.status == TaskStatus::Pending)
                {
                    t.status = TaskStatus::Cancelled;
                    t.completed_at = Some(now);
                }
                s.save_graph(now)?;
            }
            GoalStatus::Running => {
                let pending = s
                    .graph
                    .tasks
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
                    let total = s.graph.tasks.len();
                    let done = s
                        .graph
                        .tasks
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
    fn fail_or_retry(
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
        let retry = retryable && t.retry_count < t.max_retries;
        t.pgid = None;
        t.lease_expires_at = None;
        t.lease_token = None;
        if retry {
            t.retry_count += 1;
            t.status = TaskStatus::Pending;
        } else {
            t.status = TaskStatus::Failed;
            t.failure = Some(reason.to_owned());
            t.completed_at = Some(now);
        }
        let attempt = t.retry_count + u32::from(!retry);
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

    /// Runs one task to its end. Errors are recorded on the task, never
    /// returned: one task's trouble must not stop the others.
    async fn run_task(self: Arc<Self>, id: String) -> TaskEnd {
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

    async fn try_run_task(self: &Arc<Self>, id: &str) -> Result<(), GoalError> {
        let wt = self.worktree_path(id);
        let branch = worktree::task_branch(&self.goal_id, id);
        let token = lease_token(id);
        // The sandbox first, so that `task_started` records its profile.
        let Some(planned) = self.session().graph.get(id).map(|t| t.as_proposal()) else {
            return Ok(());
        };
        let gate = Arc::new(TaskGate(std::sync::OnceLock::new()));
        let (profile, _proxy) = match self.sandbox(Some(&planned), &wt, gate.clone()).await {
            Ok(s) => s,
            Err(e) => {
                self.fail_or_retry(id, &e.to_string(), "omk.sandbox", false)?;
                return Ok(());
            }
        };
        let (task, attempt, ctx) = {
            let mut s = self.session();
            let now = Utc::now();
            let lease =
                now + chrono::Duration::seconds(i64::try_from(self.opts.lease_secs).unwrap_or(30));
            let Some(t) = s.graph.get_mut(id) else {
                return Ok(());
            };
            t.status = TaskStatus::Running;
            t.lease_expires_at = Some(lease);
            t.lease_token = Some(token.clone());
            t.branch = Some(branch.clone());
            let attempt = t.retry_count + 1;
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
                },
            )?;
            // Durable before any work starts.
            s.sync()?;
            let now_ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
            (task, attempt, goal_context(&s, id, now_ms))
        };
        self.observer.progress(&Progress::Started {
            task: id.to_owned(),
            attempt,
        });

        if let Err(e) = self.git(|| worktree::create(&self.repo, &wt, &branch, &self.base)) {
            self.fail_or_retry(
                id,
                &format!("cannot create its worktree: {e}"),
                "omk.worktree",
                false,
            )?;
            return Ok(());
        }
        // The rules open the paths they name: the worktree exists now.
        let confinement = match Confinement::prepare(&profile) {
            Ok(c) => c,
            Err(e) => {
                self.end_attempt(id, &wt, &e.to_string(), "omk.sandbox", false)?;
                return Ok(());
            }
        };
        let started = std::time::Instant::now();
        let job = Job {
            goal_id: self.goal_id.clone(),
            goal: self.goal.clone(),
            task: task.clone(),
            attempt,
            worktree: wt.clone(),
            deadline: tokio::time::Instant::now() + Duration::from_secs(task.budget_secs),
            lease_marker: ("OMK_LEASE".into(), token),
            confinement,
        };
        let hooks = Arc::new(TaskHooks {
            exec: self.clone(),
            task: Some(task.clone()),
            ctx: ctx.clone(),
            worktree: wt.clone(),
            hosts: std::sync::OnceLock::new(),
        });
        if profile.mode == crate::sandbox::SandboxMode::Enforce {
            let _ = hooks.hosts.set(profile.hosts.clone());
        }
        let _ = gate.0.set(hooks.clone());
        let report = tokio::select! {
            r = self.backend.run(&job, &*hooks) => r,
            _ = self.renew_lease(id) => unreachable!("lease renewal never ends"),
        };
        self.record_spend(id, &report, started.elapsed())?;
        if !report.succeeded() {
            let reason = if report.timed_out {
                format!(
                    "timed out after its budget of {}s; the agent's process group was killed",
                    task.budget_secs
                )
            } else {
                format!(
                    "the agent exited with {}: {}",
                    report
                        .exit_code
                        .map_or("no exit code".into(), |c| format!("code {c}")),
                    crate::text::clip(report.output_tail.lines().last().unwrap_or(""), 300)
                )
            };
            let code = if report.timed_out {
                "omk.timeout"
            } else {
                "omk.agent-failed"
            };
            self.end_attempt(id, &wt, &reason, code, true)?;
            return Ok(());
        }

        let outcome = self
            .outcome(&task, &wt, &report, &hooks, &job.confinement)
            .await?;
        let verdict = self.gates.judge_outcome(&ctx, &task, &outcome);
        self.record(
            &ctx,
            Subject::Outcome {
                task: task.clone(),
                outcome: outcome.clone(),
            },
            &verdict,
            About {
                task_id: id.to_owned(),
                attempt: Some(attempt),
                ..About::default()
            },
        )?;
        if let Some(b) = verdict.rejection() {
            let reason = format!("outcome rejected by `{}`: {}", b.gate, b.reason);
            self.end_attempt(id, &wt, &reason, &b.code, true)?;
            return Ok(());
        }

        let trailer = self.session().log_trailer()?;
        let message = format!(
            "omk: {} ({})\n\ngoal {}, task {id}\n\n{trailer}",
            first_line(&task.title, id),
            task.id,
            self.goal_id
        );
        let commit = match worktree::commit(&self.repo, &wt, &message) {
            Ok(c) => c,
            Err(e) => {
                self.end_attempt(
                    id,
                    &wt,
                    &format!("cannot commit its work: {e}"),
                    "omk.git",
                    false,
                )?;
                return Ok(());
            }
        };
        let mut merged = false;
        if self.merge_policy == MergePolicy::Integrate && commit.is_some() {
            match self.merge(&branch, id).await {
                Ok(Merge::Merged(head)) => {
                    merged = true;
                    self.log(
                        events::OMK,
                        &events::TaskMerged {
                            task_id: id.to_owned(),
                            branch: branch.clone(),
                            into: worktree::integration_branch(&self.goal_id),
                            commit: head.clone(),
                        },
                    );
                }
                Ok(Merge::Conflict(files)) => {
                    {
                        let mut s = self.session();
                        if let Some(t) = s.graph.get_mut(id) {
                            t.evidence.push(Evidence {
                                kind: "merge-conflict".into(),
                                summary: format!(
                                    "conflicts with the integration branch in: {}",
                                    files.join(", ")
                                ),
                                path: files.first().cloned(),
                                criterion: None,
                            });
                        }
                    }
                    let reason = format!(
                        "its work conflicts with the integration branch in {}; both branches are kept as they were",
                        files.join(", ")
                    );
                    self.end_attempt(id, &wt, &reason, "omk.merge-conflict", false)?;
                    return Ok(());
                }
                Err(e) => {
                    self.end_attempt(
                        id,
                        &wt,
                        &format!("cannot merge its work: {e}"),
                        "omk.git",
                        false,
                    )?;
                    return Ok(());
                }
            }
        }
        {
            let mut s = self.session();
            let now = Utc::now();
            if let Some(t) = s.graph.get_mut(id) {
                t.status = TaskStatus::Done;
                t.completed_at = Some(now);
                t.commit = commit.clone();
                t.merged = merged;
                t.changed_files = outcome.changed_files.clone();
                t.evidence.extend(outcome.evidence.iter().cloned());
                t.follow_ups = report.proposals.clone();
                t.pgid = None;
                t.lease_expires_at = None;
                t.lease_token = None;
                t.failure = None;
            }
            s.log.record(
                events::OMK,
                &events::TaskCompleted {
                    task_id: id.to_owned(),
                    attempt,
                    commit: commit.clone(),
                    merged,
                    changed_files: outcome.changed_files.clone(),
                    follow_ups: report.proposals.len(),
                },
            )?;
            s.checkpoint()?;
            s.save_graph(now)?;
        }
        let _ = self.git(|| worktree::remove(&self.repo, &wt));
        self.observer.progress(&Progress::Done {
            task: id.to_owned(),
            commit,
            merged,
        });
        Ok(())
    }

    /// Ends a failed attempt: retry or fail, and clean up its worktree
    /// (kept for inspection when asked and it failed for good).
    fn end_attempt(
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

    /// Renews a running task's lease until cancelled.
    async fn renew_lease(&self, id: &str) {
        let every = Duration::from_millis((self.opts.lease_secs * 1000 / 3).max(200));
        loop {
            tokio::time::sleep(every).await;
            let mut s = self.session();
            let now = Utc::now();
            let lease =
                now + chrono::Duration::seconds(i64::try_from(self.opts.lease_secs).unwrap_or(30));
            if let Some(t) = s.graph.get_mut(id) {
                t.lease_expires_at = Some(lease);
            }
            if let Err(e) = s.save_graph(now) {
                tracing::warn!("cannot renew the lease of `{id}`: {e}");
            }
        }
    }

    fn record_spend(&self, id: &str, report: &Report, took: Duration) -> Result<(), GoalError> {
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

    /// Changed files, checks and evidence of a finished attempt.
    /// What the task's attempt came to: every `run:` check judged as a
    /// command by the gates, then run confined like the agent; then the
    /// files changed, taken from git after the checks, so that whatever a
    /// check wrote is judged with the rest.
    async fn outcome(
        &self,
        task: &TaskProposal,
        wt: &std::path::Path,
        report: &Report,
        hooks: &TaskHooks,
        confinement: &Confinement,
    ) -> Result<TaskOutcome, GoalError> {
        let mut checks = Vec::new();
        for criterion in &task.acceptance {
            let Some(command) = criterion.trim().strip_prefix("run:").map(str::trim) else {
                continue;
            };
            if command.is_empty() {
                continue;
            }
            let permit = hooks.action(AgentAction {
                task_id: task.id.clone(),
                kind: omk_gate_sdk::ActionKind::RunCommand,
                target: command.to_owned(),
                detail: format!("the acceptance check `{}`", criterion.trim()),
            });
            if let Some(reason) = permit.refusal() {
                checks.push(CheckResult {
                    name: criterion.trim().to_owned(),
                    command: command.to_owned(),
                    exit_code: None,
                    passed: false,
                    output_tail: format!("refused by omk: {reason}"),
                });
                continue;
            }
            let f = run_shell(
                command,
                wt,
                &[
                    ("OMK_TASK_ID".to_owned(), task.id.clone()),
                    ("OMK_PHASE".to_owned(), "check".to_owned()),
                ],
                confinement,
                None,
                crate::agents::process::deadline_in(self.opts.check_timeout_secs),
                &|_| {},
                &mut |_| {},
            )
            .await;
            let mut tail = f.output_tail.clone();
            if f.timed_out {
                tail.push_str(&format!(
                    "\n(killed after {}s)",
                    self.opts.check_timeout_secs
                ));
            }
            checks.push(CheckResult {
                name: criterion.trim().to_owned(),
                command: command.to_owned(),
                exit_code: f.exit_code,
                passed: f.success(),
                output_tail: crate::text::clip(&tail, 4000),
            });
        }
        let changed_files = worktree::changes(&self.repo, wt, &self.base)
            .map_err(|e| GoalError::state(e.to_string(), "check the task's worktree"))?
            .into_iter()
            .map(|c| c.path)
            .collect::<Vec<_>>();
        let outcome = TaskOutcome {
            task_id: task.id.clone(),
            changed_files,
            evidence: report.evidence.clone(),
            checks,
        };
        self.log(
            events::OMK,
            &events::TaskOutcome {
                task_id: task.id.clone(),
                outcome: outcome.clone(),
            },
        );
        Ok(outcome)
    }

    async fn merge(&self, branch: &str, id: &str) -> Result<Merge, worktree::GitError> {
        let _one_at_a_time = self.merging.lock().await;
        let dir = {
            let s = self.session();
            s.dir().join("worktrees").join("_integration")
        };
        let integration = worktree::integration_branch(&self.goal_id);
        let trailer = self
            .session()
            .log_trailer()
            .map_err(|e| worktree::GitError {
                args: "merge".into(),
                dir: dir.clone(),
                detail: format!("cannot make the log durable first: {e}"),
            })?;
        self.git(|| worktree::ensure(&self.repo, &dir, &integration, &self.base))?;
        self.git(|| worktree::merge(&dir, branch, &format!("omk: merge task {id}\n\n{trailer}")))
    }

    /// Runs a git command on the project's repository, one at a time.
    fn git<R>(&self, f: impl FnOnce() -> R) -> R {
        let _one = self.repo_lock.lock().unwrap_or_else(|p| p.into_inner());
        f()
    }

    /// Records a verdict's input and its gate decisions.
    fn record(
        &self,
        ctx: &GoalContext,
        subject: Subject,
        verdict: &Verdict,
        about: About,
    ) -> Result<(), GoalError> {
        let mut s = self.session();
        let input = s.inputs.record(ctx, None, subject)?;
        super::record_verdict(&mut s, verdict, &input, about)
    }
}

/// A sandbox that cannot be set up stops the run, with the fix.
fn sandbox_error(e: SandboxError) -> GoalError {
    let help = e.help().unwrap_or_default();
    GoalError::state(e.to_string(), help)
}

/// Whether a goal budget is used up, so no task may start.
fn budget_spent(s: &Session) -> bool {
    let (l, sp) = (&s.goal.limits, &s.goal.spent);
    l.time_secs.is_some_and(|t| sp.time_secs >= t)
        || l.tokens.is_some_and(|t| sp.tokens >= t)
        || l.usd_micros.is_some_and(|u| sp.usd_micros >= u)
}

fn lease_token(id: &str) -> String {
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

fn first_line<'a>(title: &'a str, fallback: &'a str) -> &'a str {
    title
        .lines()
        .next()
        .filter(|l| !l.trim().is_empty())
        .unwrap_or(fallback)
}

/// The hooks of one running task (or of planning, with no task).
struct TaskHooks {
    exec: Arc<Executor>,
    task: Option<TaskProposal>,
    ctx: GoalContext,
    worktree: PathBuf,
    /// When confined: the hosts its profile lets through the egress proxy;
    /// a fetch elsewhere is refused before the gates are asked.
    hosts: std::sync::OnceLock<Vec<String>>,
}

impl TaskHooks {
    fn planning(exec: Arc<Executor>) -> TaskHooks {
        TaskHooks {
            exec,
            task: None,
            ctx: GoalContext::default(),
            worktree: PathBuf::new(),
            hosts: std::sync::OnceLock::new(),
        }
    }

    /// omk's own refusal of an action, before the gates: logged like a
    /// gate's.
    fn refuse(
        &self,
        task: &TaskProposal,
        action: &AgentAction,
        code: &str,
        reason: String,
    ) -> Permit {
        self.exec.log(
            &self.exec.agent_actor(),
            &events::AgentAction {
                task_id: task.id.clone(),
                action: action.clone(),
                allowed: false,
                gate: Some(super::HOST_GATE.into()),
                code: Some(code.into()),
                reason: Some(reason.clone()),
            },
        );
        self.exec.observer.progress(&Progress::Refused {
            task: task.id.clone(),
            target: action.target.clone(),
            reason: reason.clone(),
        });
        Permit::Refused(reason)
    }
}

/// The egress proxy's judge for a task: the task's hooks (set once they
/// exist), so a destination is checked against the profile's hosts, judged
/// by the gates as a `fetch-url` action, and logged.
struct TaskGate(std::sync::OnceLock<Arc<TaskHooks>>);

impl Gatekeeper for TaskGate {
    fn destination(&self, url: &str) -> Result<(), String> {
        let Some(hooks) = self.0.get() else {
            return Err("the task has not started".into());
        };
        let Some(task) = &hooks.task else {
            return Err("no task".into());
        };
        let permit = hooks.action(AgentAction {
            task_id: task.id.clone(),
            kind: omk_gate_sdk::ActionKind::FetchUrl,
            target: url.to_owned(),
            detail: "a connection through omk's egress proxy".into(),
        });
        match permit.refusal() {
            None => Ok(()),
            Some(reason) => Err(reason),
        }
    }
}

/// The egress proxy's judge while planning: the client's model endpoint
/// and `[sandbox] hosts` only, since no task exists for the gates to judge.
struct PlanGate(std::sync::OnceLock<Vec<String>>);

impl Gatekeeper for PlanGate {
    fn destination(&self, url: &str) -> Result<(), String> {
        match self.0.get() {
            Some(hosts) if host_allowed(hosts, url) => Ok(()),
            _ => Err(format!(
                "`{url}` is not the agent's model endpoint; while planning nothing else is reached"
            )),
        }
    }
}

/// Whether `url`'s host and port match one of `hosts`.
fn host_allowed(hosts: &[String], url: &str) -> bool {
    crate::sandbox::host_port(url).is_some_and(|(h, p)| {
        hosts
            .iter()
            .any(|pat| omk_core::sandbox::host_matches(pat, &h, p))
    })
}

impl Hooks for TaskHooks {
    fn action(&self, mut action: AgentAction) -> Permit {
        let Some(task) = &self.task else {
            // Planning takes no actions on the project.
            return Permit::Refused("actions are not allowed while planning".into());
        };
        if action.kind == omk_gate_sdk::ActionKind::FetchUrl
            && let Some(hosts) = self.hosts.get()
            && !host_allowed(hosts, &action.target)
        {
            let reason = format!(
                "`{}` is not a host this task may reach (its model endpoint, or `[sandbox] hosts` in .omk/gates.toml)",
                action.target
            );
            return self.refuse(task, &action, "omk.sandbox-host", reason);
        }
        if action.kind.is_file_change() {
            // The file that would change, symlinks followed: agents that
            // write themselves (Claude, Codex, the Kimi CLI) follow them.
            let resolved = crate::agents::relative_to(&self.worktree, &action.target)
                .ok_or_else(|| format!("`{}` is outside the task's worktree", action.target))
                .and_then(|rel| {
                    let real = crate::agents::files::resolve(&self.worktree, &rel)?;
                    Ok((rel, real))
                });
            match resolved {
                Ok((rel, real)) => {
                    if Path::new(&real) != Path::new(rel.trim_start_matches("./")) {
                        action.detail = format!("{} (`{rel}` through a symlink)", action.detail);
                    }
                    action.target = real;
                }
                Err(reason) => {
                    return self.refuse(task, &action, "omk.outside-worktree", reason);
                }
            }
        }
        let verdict = self.exec.gates.judge_action(&self.ctx, task, &action);
        let recorded = self.exec.record(
            &self.ctx,
            Subject::Action {
                task: task.clone(),
                action: action.clone(),
            },
            &verdict,
            About {
                task_id: task.id.clone(),
                action: Some(action.clone()),
                ..About::default()
            },
        );
        if let Err(e) = recorded {
            tracing::error!("cannot record an action decision: {e}");
        }
        let (code, reason, gate) = match verdict.rejection() {
            Some(b) => (Some(b.code), Some(b.reason), Some(b.gate)),
            None => (None, None, None),
        };
        self.exec.log(
            &self.exec.agent_actor(),
            &events::AgentAction {
                task_id: task.id.clone(),
                action: action.clone(),
                allowed: verdict.accepted,
                gate,
                code,
                reason: reason.clone(),
            },
        );
        if !verdict.accepted {
            self.exec.observer.progress(&Progress::Refused {
                task: task.id.clone(),
                target: action.target.clone(),
                reason: reason.clone().unwrap_or_default(),
            });
        }
        match (verdict.accepted, reason) {
            (true, _) => Permit::Allowed,
            (false, reason) => {
                Permit::Refused(reason.unwrap_or_else(|| "refused by the gates".into()))
            }
        }
    }

    fn note(&self, kind: &str, payload: Value) {
        self.exec.log(
            &self.exec.agent_actor(),
            &events::AgentNote {
                note: kind.to_owned(),
                detail: payload,
            },
        );
    }

    fn process_started(&self, pgid: u32) {
        let Some(task) = &self.task else { return };
        let mut s = self.exec.session();
        if let Some(t) = s.graph.get_mut(&task.id) {
            t.pgid = Some(pgid);
        }
        if let Err(e) = s.save_graph(Utc::now()) {
            tracing::warn!("cannot record the agent's process group: {e}");
        }
    }
}

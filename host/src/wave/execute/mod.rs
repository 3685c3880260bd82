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

mod attempt;
mod checks;
mod hooks;
mod merge;
mod remote;
mod schedule;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::Utc;
use omk_gate_sdk::GoalContext;

use self::hooks::TaskHooks;
use super::{DispatchPlan, WaveEvidence, WaveKind, run_wave};
use crate::agents::{Backend, Brief};
use crate::gates::{GateSet, Verdict};
use crate::goal::{GoalDir, GoalError, GoalStatus, MergePolicy, Session};
use crate::proof::events::{self, About, Payload};
use crate::proof::inputs::Subject;
use crate::sandbox::proxy::HostsOnly;
use crate::sandbox::{Confinement, SandboxError, SandboxSettings};
use crate::worktree;
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
    /// The context every decision of an attempt is taken in, when another
    /// omk froze it (a worker runs a coordinator's attempt); else frozen
    /// when the attempt starts.
    pub context: Option<GoalContext>,
    /// Whether the gates judge an attempt's outcome here (a worker leaves
    /// that, and landing the work, to its coordinator).
    pub judge_outcomes: bool,
    /// Workers to hand tasks to, instead of running them here.
    pub dispatch: Option<Arc<crate::dispatch::Dispatcher>>,
    /// How an action a gate asks about waits for a person (`[approvals]`).
    pub approvals: omk_core::approvals::ApprovalSettings,
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
            context: None,
            judge_outcomes: true,
            dispatch: None,
            approvals: Default::default(),
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
    /// An action waits for a person: `omk approve ID`.
    Asked {
        task: String,
        id: String,
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
    dir: GoalDir,
    repo: PathBuf,
    base: String,
    merge_policy: MergePolicy,
    max_agents: usize,
    merging: tokio::sync::Mutex<()>,
    /// Serialises git commands on the project's repository (worktree add
    /// and remove take git's own locks, which fail rather than wait).
    repo_lock: Mutex<()>,
    /// What the goal's log says was asked of a person and answered.
    approvals: Mutex<crate::approvals::Ledger>,
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
        let approvals = Mutex::new(crate::approvals::Ledger::read(session.dir().path()));
        Ok(Arc::new(Executor {
            approvals,
            goal_id: g.id.clone(),
            goal: g.normalized_goal.clone(),
            dir: session.dir().clone(),
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
        Executor::for_goal_dispatching(session, keep_failed, observer, None)
    }

    /// [`Executor::for_goal`], its tasks handed to the workers of `dispatch`
    /// when given: the agent and the kernel are then the workers' to
    /// check.
    pub fn for_goal_dispatching(
        session: Session,
        keep_failed: bool,
        observer: Box<dyn Observer>,
        dispatch: Option<Arc<crate::dispatch::Dispatcher>>,
    ) -> Result<Arc<Executor>, StartError> {
        let spec = session.goal.agent.clone().ok_or_else(|| {
            GoalError::state(
                format!("goal `{}` has no agent", session.goal.id),
                "create the goal with `--agent scripted --script FILE` or `--agent exec --command CMD`",
            )
        })?;
        let backend = crate::agents::backend(&spec)?;
        if dispatch.is_none() {
            crate::agents::doctor::preflight(&spec)?;
        }
        let project = session.goal.project_dir.clone();
        let gates = GateSet::for_project(&project)?;
        let mut opts = ExecOptions::from_env(keep_failed);
        let config = crate::gates::GatesConfig::for_project(&project)?;
        opts.sandbox = config.sandbox;
        opts.approvals = config.approvals;
        if dispatch.is_none() {
            crate::sandbox::check_kernel(&opts.sandbox)?;
        }
        opts.dispatch = dispatch;
        Ok(Executor::new(session, gates, backend, opts, observer)?)
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        // A panic while holding the lock leaves the data as it was written
        // last; carrying on is safe because every write is atomic.
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The approvals ledger.
    fn approvals(&self) -> MutexGuard<'_, crate::approvals::Ledger> {
        self.approvals.lock().unwrap_or_else(|p| p.into_inner())
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

    /// Asks the agent for the goal's first tasks and judges them as the
    /// `plan` wave.
    pub async fn plan(self: &Arc<Self>) -> Result<WaveEvidence, GoalError> {
        let (brief, hooks) = {
            let s = self.session();
            let dir = self.dir.plan_checkout();
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
        let gate = Arc::new(HostsOnly::new(
            "is not the agent's model endpoint; while planning nothing else is reached",
        ));
        let (profile, _proxy) = self
            .sandbox(None, &brief.dir, gate.clone())
            .await
            .map_err(sandbox_error)?;
        gate.allow(profile.hosts.clone());
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
        let evidence = blocking(|| run_wave(&mut self.session(), &self.gates, &plan, Utc::now()))?;
        self.observer.progress(&Progress::Wave(evidence.clone()));
        Ok(evidence)
    }

    /// Runs a git command on the project's repository, one at a time, off
    /// the async workers.
    fn git<R>(&self, f: impl FnOnce() -> R) -> R {
        blocking(|| {
            let _one = self.repo_lock.lock().unwrap_or_else(|p| p.into_inner());
            f()
        })
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

/// Runs `f`, which blocks (git, a gate's decision), telling the runtime so
/// that other tasks move to another worker meanwhile. Outside a
/// multi-threaded runtime it just runs.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
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

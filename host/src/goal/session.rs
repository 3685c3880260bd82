//! An open goal: locked for this process, with its graph and event log.

use chrono::{DateTime, Utc};

use super::{Goal, GoalDir, GoalLock, GoalStatus, GoalStore, Limits, NewGoal, StoreError};
use crate::graph::{GraphError, TaskGraph};
use crate::proof::anchors::Trust;
use crate::proof::events::{self, BudgetAdded, GoalCreated, GoalStatusChanged, ProofWritten};
use crate::proof::inputs::InputStore;
use crate::proof::{EventLog, LogError};
use omk_core::diagnose::{Diagnose, Kind};
use omk_signing::PrivateKey;

/// Why a goal could not be opened, changed or saved.
#[derive(Debug, thiserror::Error)]
pub enum GoalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// A task moved in a way its lifecycle does not allow: a bug.
    #[error(transparent)]
    Transition(#[from] omk_core::lifecycle::TransitionError),
    /// The goal is in a state that does not allow the change.
    #[error("{message}")]
    State { message: String, help: String },
    /// Handing tasks to workers went wrong (`--dispatch`).
    #[error("{0}")]
    Dispatch(String),
}

impl Diagnose for GoalError {
    fn kind(&self) -> Kind {
        match self {
            GoalError::Store(e) => e.kind(),
            // A graph omk wrote is whole, acyclic and complete: one that is
            // not was changed outside omk.
            GoalError::Graph(_) => Kind::Integrity,
            GoalError::Log(e) => e.kind(),
            GoalError::Key(e) => e.kind(),
            GoalError::Transition(e) => e.kind(),
            GoalError::State { .. } => Kind::Usage,
            GoalError::Dispatch(_) => Kind::System,
        }
    }

    fn help(&self) -> Option<String> {
        match self {
            GoalError::Store(e) => e.help(),
            GoalError::Graph(_) => Some(
                "the task graph was changed outside omk; restore `task-graph.json` or fix the tasks named".into(),
            ),
            GoalError::Log(_) => None,
            GoalError::Key(e) => e.help(),
            GoalError::Transition(_) => None,
            GoalError::State { help, .. } => Some(help.clone()),
            GoalError::Dispatch(_) => Some(
                "check the NATS server and the workers: `omk doctor --nats URL`".into(),
            ),
        }
    }
}

impl GoalError {
    pub(crate) fn state(message: impl Into<String>, help: impl Into<String>) -> GoalError {
        GoalError::State {
            message: message.into(),
            help: help.into(),
        }
    }
}

/// A goal opened for writing: the lock is held until this is dropped.
/// Whatever it appended is anchored by a signed checkpoint at the end of
/// every wave, task and status change, and when it is dropped.
pub struct Session {
    store: GoalStore,
    lock: GoalLock,
    dir: GoalDir,
    pub goal: Goal,
    pub graph: TaskGraph,
    pub log: EventLog,
    /// Every gate input, for replay.
    pub inputs: InputStore,
    /// Signs the log's checkpoints (the machine's `log.key`).
    log_key: PrivateKey,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("dir", &self.dir)
            .field("goal", &self.goal.id)
            .finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Best effort: the explicit checkpoints at the end of waves, tasks
        // and status changes report their errors.
        if let Err(e) = self.checkpoint() {
            tracing::warn!("cannot anchor the log of goal `{}`: {e}", self.goal.id);
        }
    }
}

/// The machine's log signing key.
fn log_key() -> Result<PrivateKey, GoalError> {
    Ok(crate::keys::log_key(&crate::keys::dir()?)?)
}

/// A run id for the events this process writes: `run-<utc time>-<pid>`.
pub fn run_id(now: DateTime<Utc>) -> String {
    format!(
        "run-{}-{}",
        now.format("%Y%m%dT%H%M%S%3f"),
        std::process::id()
    )
}

impl Session {
    /// Creates a goal and opens it.
    pub fn create(
        store: &GoalStore,
        spec: NewGoal,
        now: DateTime<Utc>,
    ) -> Result<Session, GoalError> {
        let log_key = log_key()?;
        let goal = Goal::new(spec, now);
        let lock = store.create(&goal)?;
        let dir = store.dir(&goal.id);
        let mut graph = TaskGraph::new(&goal.id, now);
        graph.save(&dir, now)?;
        let mut log = EventLog::open(&dir, &run_id(now))?;
        log.record(events::USER, &GoalCreated(goal.clone()))?;
        log.checkpoint(&goal.id, &log_key)?;
        Ok(Session {
            store: store.clone(),
            lock,
            inputs: InputStore::new(&dir),
            dir,
            goal,
            graph,
            log,
            log_key,
        })
    }

    /// Opens an existing goal, taking its lock (or failing at once if
    /// another process holds it).
    pub fn open(store: &GoalStore, id: &str) -> Result<Session, GoalError> {
        Session::open_wait(store, id, std::time::Duration::ZERO)
    }

    /// Opens an existing goal, waiting up to `wait` for its lock.
    pub fn open_wait(
        store: &GoalStore,
        id: &str,
        wait: std::time::Duration,
    ) -> Result<Session, GoalError> {
        let log_key = log_key()?;
        let lock = store.lock_wait(id, wait)?;
        let goal = store.load(id)?;
        let dir = store.dir(id);
        let graph = TaskGraph::load(&dir, id)?;
        let log = EventLog::open(&dir, &run_id(Utc::now()))?;
        Ok(Session {
            store: store.clone(),
            lock,
            inputs: InputStore::new(&dir),
            dir,
            goal,
            graph,
            log,
            log_key,
        })
    }

    /// Makes every event and recorded gate input durable.
    pub fn sync(&mut self) -> Result<(), GoalError> {
        self.inputs.sync()?;
        self.log.sync()?;
        Ok(())
    }

    /// Makes everything durable and anchors the log: a signed checkpoint of
    /// its head (see [`crate::proof::log`]). Cheap when nothing was
    /// appended since the last one.
    pub fn checkpoint(&mut self) -> Result<(), GoalError> {
        self.inputs.sync()?;
        self.log.checkpoint(&self.goal.id, &self.log_key)?;
        Ok(())
    }

    /// The log's head as a commit trailer (`Omk-Log: <seq> <hash>`), after
    /// making it durable, so a commit never names an event a crash lost.
    pub fn log_trailer(&mut self) -> Result<String, GoalError> {
        self.sync()?;
        Ok(crate::proof::log::Trailer::line(
            self.log.last_id(),
            self.log.head(),
        ))
    }

    /// Takes requests other processes left for this one.
    pub fn take_requests(&self) -> Vec<super::Request> {
        self.store.take_requests(&self.lock, &self.goal.id)
    }

    /// The goal's directory.
    pub fn dir(&self) -> &GoalDir {
        &self.dir
    }

    /// Writes `goal.json`.
    pub fn save_goal(&mut self, now: DateTime<Utc>) -> Result<(), GoalError> {
        self.goal.updated_at = now;
        self.store.save(&self.lock, &self.goal)?;
        Ok(())
    }

    /// Writes `task-graph.json`.
    pub fn save_graph(&mut self, now: DateTime<Utc>) -> Result<(), GoalError> {
        self.graph.save(&self.dir, now)?;
        Ok(())
    }

    /// Moves the goal to `to`, recording why.
    pub fn set_status(
        &mut self,
        to: GoalStatus,
        reason: &str,
        actor: &str,
    ) -> Result<(), GoalError> {
        let from = self.goal.status;
        let now = Utc::now();
        self.goal.status = to;
        if to.is_terminal() {
            self.goal.completed_at = Some(now);
        }
        self.save_goal(now)?;
        self.log.record(
            actor,
            &GoalStatusChanged {
                from,
                to,
                reason: reason.to_owned(),
            },
        )?;
        if to.is_terminal() {
            self.write_proof(&Trust::default())?;
        }
        self.checkpoint()
    }

    /// Writes `proof.json` and logs it; the log's checkpoints are trusted
    /// when signed by this machine or by a key in `trust`.
    pub fn write_proof(
        &mut self,
        trust: &Trust,
    ) -> Result<crate::proof::document::Proof, GoalError> {
        self.sync()?;
        let proof =
            crate::proof::document::Proof::write(&self.dir, &self.goal, &self.graph, trust)?;
        self.log.record(
            events::OMK,
            &ProofWritten {
                path: self.dir.proof_file(),
                ready: proof.readiness.ready,
                head_hash: proof.log.head_hash.clone(),
            },
        )?;
        self.sync()?;
        Ok(proof)
    }

    /// Pauses a running goal.
    pub fn pause(&mut self) -> Result<(), GoalError> {
        match self.goal.status {
            GoalStatus::Paused => Err(GoalError::state(
                format!("goal `{}` is already paused", self.goal.id),
                format!("resume it with `omk goal resume {}`", self.goal.id),
            )),
            s if s.is_terminal() => Err(self.finished(s)),
            _ => self.set_status(GoalStatus::Paused, "paused by the user", events::USER),
        }
    }

    /// Resumes a paused goal.
    pub fn resume(&mut self) -> Result<(), GoalError> {
        match self.goal.status {
            GoalStatus::Paused => {
                self.set_status(GoalStatus::Running, "resumed by the user", events::USER)
            }
            s if s.is_terminal() => Err(self.finished(s)),
            s => Err(GoalError::state(
                format!("goal `{}` is {s}, not paused", self.goal.id),
                "only a paused goal can be resumed",
            )),
        }
    }

    /// Cancels a goal for good.
    pub fn cancel(&mut self) -> Result<(), GoalError> {
        match self.goal.status {
            s if s.is_terminal() => Err(self.finished(s)),
            _ => self.set_status(GoalStatus::Cancelled, "cancelled by the user", events::USER),
        }
    }

    /// Adds to the goal's budgets; every amount must be positive and its
    /// budget limited. A goal stopped for budget runs again.
    pub fn add_budget(&mut self, add: Limits) -> Result<(), GoalError> {
        let id = self.goal.id.clone();
        if add == Limits::default() {
            return Err(GoalError::state(
                "nothing to add",
                format!(
                    "pass `--time`, `--tokens` or `--usd`: `omk goal budget-add {id} --time 1h`"
                ),
            ));
        }
        if let Some(s) = Some(self.goal.status).filter(|s| s.is_terminal()) {
            return Err(self.finished(s));
        }
        let mut limits = self.goal.limits;
        for (what, amount, limit) in [
            ("time", add.time_secs, &mut limits.time_secs),
            ("token", add.tokens, &mut limits.tokens),
            ("USD", add.usd_micros, &mut limits.usd_micros),
        ] {
            let Some(amount) = amount else { continue };
            if amount == 0 {
                return Err(GoalError::state(
                    format!("cannot add a zero {what} budget"),
                    "budget-add only adds positive amounts",
                ));
            }
            let Some(current) = limit.as_mut() else {
                return Err(GoalError::state(
                    format!("goal `{id}` has no {what} budget: it is unlimited"),
                    "budget-add raises a limit the goal was created with",
                ));
            };
            *current = current.checked_add(amount).ok_or_else(|| {
                GoalError::state(
                    format!("the {what} budget would overflow"),
                    "add a smaller amount",
                )
            })?;
        }
        self.goal.limits = limits;
        self.save_goal(Utc::now())?;
        self.log.record(
            events::USER,
            &BudgetAdded {
                time_secs: add.time_secs,
                tokens: add.tokens,
                usd_micros: add.usd_micros,
                limits,
            },
        )?;
        self.log.sync()?;
        if self.goal.status == GoalStatus::NeedsMoreBudget {
            self.set_status(GoalStatus::Running, "budget added", events::USER)?;
        }
        Ok(())
    }

    fn finished(&self, s: GoalStatus) -> GoalError {
        GoalError::state(
            format!("goal `{}` is {s}: it has finished", self.goal.id),
            "start a new goal with `omk goal run \"GOAL\"`",
        )
    }
}

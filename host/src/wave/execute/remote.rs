//! A task's attempt run by a worker (see [`crate::dispatch`]): offered on
//! the work queue, awaited, its events appended to the goal's log (this
//! omk stays its only writer), its outcome judged here and its work landed
//! here, as a local attempt's.
//!
//! An attempt is started once: a coordinator that restarts finds it
//! `running` with its lease token and offers it again under the same
//! message id, which JetStream drops as a duplicate within its window, and
//! which a worker drops after it by the attempt's claim. A reply is
//! appended once: the first accepted one ends the attempt, its events are
//! followed by a `worker_result` note, and a reply for an attempt whose
//! note is in the log is not appended again.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use omk_gate_sdk::TaskOutcome;
use serde_json::json;

use super::attempt::Started;
use super::hooks::TaskGate;
use super::{Executor, Progress};
use crate::dispatch::wire::{End, Offer, Ran, Reply, ReplyBody, WIRE_VERSION};
use crate::dispatch::{Delivery, Dispatcher, hub, lease};
use crate::goal::GoalError;
use crate::graph::TaskStatus;
use crate::proof::events;
use crate::sandbox::Profile;
use crate::wave::goal_context;
use crate::worktree;

/// The kinds of event a worker's record of an attempt gives the goal's log.
const SHIPPED: &[&str] = &[
    "gate_decision",
    "agent_action",
    "agent_note",
    "agent_finished",
    "task_outcome",
];

impl Executor {
    /// Runs attempt of task `id` on a worker: offers it (or offers it again
    /// after a restart), and handles its replies until one ends it.
    pub(super) async fn run_remote(
        self: &Arc<Self>,
        id: &str,
        d: &Arc<Dispatcher>,
    ) -> Result<(), GoalError> {
        let Some(offer) = self.offer(id, d)? else {
            return Ok(());
        };
        let key = offer.key();
        let payload = serde_json::to_vec(&offer).map_err(|e| GoalError::Dispatch(e.to_string()))?;
        let published = d
            .hub
            .publish(
                &hub::tasks_subject(&d.goal_id),
                &format!("{key}.{}", offer.token),
                &payload,
            )
            .await;
        if let Err(e) = published {
            self.fail_or_retry(id, &format!("cannot offer it: {e}"), "omk.dispatch", true)?;
            return Ok(());
        }
        self.observer.progress(&Progress::Started {
            task: id.to_owned(),
            attempt: offer.attempt,
        });
        let mut waited = std::time::Duration::ZERO;
        let every = std::time::Duration::from_secs(30);
        loop {
            let delivery = tokio::select! {
                r = d.next_reply(&key) => r,
                _ = self.renew_lease(id) => unreachable!("lease renewal never ends"),
                _ = tokio::time::sleep(every) => {
                    waited += every;
                    if matches!(lease::read(&d.hub.leases, &key).await, Ok(None)) {
                        tracing::warn!(
                            "no worker has taken task `{id}` (attempt {}) in {}s: is an `omk worker --nats {}` running?",
                            offer.attempt,
                            waited.as_secs(),
                            d.hub.url
                        );
                    }
                    continue;
                }
            };
            let Some(delivery) = delivery else {
                let reason = "the coordinator stopped reading replies".to_owned();
                self.fail_or_retry(id, &reason, "omk.dispatch", true)?;
                return Ok(());
            };
            let Delivery { reply, acker } = delivery;
            let done = self.on_reply(&offer, reply, d).await?;
            let _ = acker.ack().await;
            if done {
                return Ok(());
            }
        }
    }

    /// The offer of the next attempt of `id`, started here (running,
    /// leased); or the offer of the attempt a stopped coordinator left
    /// running, again.
    fn offer(&self, id: &str, d: &Dispatcher) -> Result<Option<Offer>, GoalError> {
        let mut s = self.session();
        let now = Utc::now();
        let lease =
            now + chrono::Duration::seconds(i64::try_from(self.opts.lease_secs).unwrap_or(30));
        let branch = worktree::task_branch(&self.goal_id, id);
        let Some(t) = s.graph.get_mut(id) else {
            return Ok(None);
        };
        let (attempt, token) = match (t.status, t.lease_token.clone()) {
            (TaskStatus::Running, Some(token)) => {
                t.renew(lease);
                (t.attempt(), token)
            }
            _ => {
                let token = super::attempt::lease_token(id);
                (t.start(&branch, lease, &token)?, token)
            }
        };
        let task = t.as_proposal();
        s.save_graph(now)?;
        let now_ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        let context = goal_context(&s, id, now_ms);
        let agent =
            s.goal.agent.clone().ok_or_else(|| {
                GoalError::Dispatch(format!("goal `{}` has no agent", self.goal_id))
            })?;
        drop(s);
        let script = match &agent {
            crate::agents::AgentSpec::Scripted { script } => {
                Some(std::fs::read_to_string(script).map_err(|e| {
                    GoalError::Dispatch(format!("cannot read `{}`: {e}", script.display()))
                })?)
            }
            _ => None,
        };
        Ok(Some(Offer {
            wire: WIRE_VERSION,
            goal_id: self.goal_id.clone(),
            goal: self.goal.clone(),
            task,
            attempt,
            token,
            base: self.base.clone(),
            code: d.code.clone(),
            context,
            agent,
            script,
            gates: d.gates.clone(),
            check_timeout_secs: self.opts.check_timeout_secs,
        }))
    }

    /// Handles one reply about `offer`'s attempt; `true` when it ended the
    /// attempt.
    async fn on_reply(
        self: &Arc<Self>,
        offer: &Offer,
        reply: Reply,
        d: &Dispatcher,
    ) -> Result<bool, GoalError> {
        let id = offer.task.id.as_str();
        let note = |note: events::AgentNote| self.log(events::OMK, &note);
        if reply.wire != WIRE_VERSION || reply.token != offer.token {
            note(events::AgentNote::of(&events::WorkerReplyIgnored {
                task_id: id.to_owned(),
                worker: reply.worker.clone(),
                why: "it is about another attempt".into(),
            }));
            return Ok(false);
        }
        match reply.body {
            ReplyBody::Refused { reason } => {
                note(events::AgentNote::of(&events::WorkerRefused {
                    task_id: id.to_owned(),
                    attempt: offer.attempt,
                    worker: reply.worker.clone(),
                    reason: reason.clone(),
                }));
                let why = format!("worker `{}` refused it: {reason}", reply.worker);
                self.fail_or_retry(id, &why, "omk.worker-refused", true)?;
                Ok(true)
            }
            ReplyBody::Ran(ran) => {
                let key = offer.key();
                let holds = lease::accept(&d.hub.leases, &key, &reply.claim)
                    .await
                    .map_err(GoalError::Dispatch)?;
                if !holds {
                    note(events::AgentNote::of(&events::LateResultIgnored {
                        task_id: id.to_owned(),
                        attempt: offer.attempt,
                        worker: reply.worker.clone(),
                        claim: reply.claim.clone(),
                        why: "its worker no longer held the attempt's claim".into(),
                    }));
                    return Ok(false);
                }
                self.take_result(offer, &reply.worker, &reply.claim, *ran, d)
                    .await?;
                Ok(true)
            }
        }
    }

    /// Appends what the worker logged (once), then ends the attempt as it
    /// ended there: failed, or judged and landed here.
    async fn take_result(
        self: &Arc<Self>,
        offer: &Offer,
        worker: &str,
        claim: &str,
        ran: Ran,
        d: &Dispatcher,
    ) -> Result<(), GoalError> {
        let id = offer.task.id.as_str();
        let key = offer.key();
        // An attempt that failed before it started has nothing to append.
        let started: Option<events::TaskStarted> = serde_json::from_value(ran.started.clone()).ok();
        if let Some(started) = &started
            && !d.was_appended(&key)
        {
            self.append_ran(offer, worker, claim, &ran, started)?;
            d.mark_appended(&key);
        }
        match ran.end {
            End::Failed {
                reason,
                code,
                retryable,
            } => {
                self.fail_or_retry(
                    id,
                    &format!("on worker `{worker}`: {reason}"),
                    &code,
                    retryable,
                )?;
                Ok(())
            }
            End::Done {
                commit,
                object,
                follow_ups,
            } => {
                let outcome = ran
                    .events
                    .iter()
                    .rev()
                    .filter(|e| e.kind == "task_outcome")
                    .find_map(|e| {
                        serde_json::from_value::<events::TaskOutcome>(e.payload.clone()).ok()
                    })
                    .map(|o| o.outcome)
                    .unwrap_or_else(|| TaskOutcome {
                        task_id: id.to_owned(),
                        ..TaskOutcome::default()
                    });
                let wt = self.dir.worktree(id);
                let st = Started {
                    id: id.to_owned(),
                    attempt: offer.attempt,
                    task: offer.task.clone(),
                    ctx: offer.context.clone(),
                    wt: wt.clone(),
                    branch: worktree::task_branch(&self.goal_id, id),
                    token: offer.token.clone(),
                    profile: started.and_then(|s| s.sandbox).unwrap_or_else(Profile::off),
                    gate: Arc::new(TaskGate::new()),
                    _proxy: None,
                };
                if let Err(e) = self
                    .take_work(&st, commit.as_deref(), object.as_deref(), d)
                    .await
                {
                    self.end_attempt(
                        id,
                        &wt,
                        &format!("cannot take its work from worker `{worker}`: {e}"),
                        "omk.dispatch",
                        true,
                    )?;
                    return Ok(());
                }
                let Some(outcome) = self.judge_outcome(&st, outcome)? else {
                    return Ok(());
                };
                let Some((commit, merged)) = self.land(&st).await? else {
                    return Ok(());
                };
                self.complete(st, commit, merged, outcome, follow_ups)
            }
        }
    }

    /// Appends the worker's record of the attempt to the goal's log:
    /// `task_started` as it ran there, the inputs its decisions name, its
    /// events in order, the spend, and the `worker_result` note; durable
    /// before anything else happens.
    fn append_ran(
        &self,
        offer: &Offer,
        worker: &str,
        claim: &str,
        ran: &Ran,
        started: &events::TaskStarted,
    ) -> Result<(), GoalError> {
        let id = offer.task.id.as_str();
        let mut s = self.session();
        let lease = s.graph.get(id).and_then(|t| t.lease_expires_at);
        s.log.record(
            events::OMK,
            &events::TaskStarted {
                task_id: id.to_owned(),
                attempt: offer.attempt,
                branch: worktree::task_branch(&self.goal_id, id),
                worktree: PathBuf::from(format!("{worker}:{}", started.worktree.display())),
                lease_expires_at: lease,
                agent: started.agent.clone(),
                live_gating: started.live_gating,
                sandbox: started.sandbox.clone(),
                workspace: started.workspace.clone(),
            },
        )?;
        for line in &ran.inputs {
            s.inputs.put_line(line)?;
        }
        let mut spent = (0u64, 0u64, 0u64);
        for e in &ran.events {
            // Every event names the task, but a note, whose detail is the
            // agent's (the worker's record holds this one task only).
            let other_task = e.payload.get("task_id").is_some_and(|t| *t != json!(id));
            if !SHIPPED.contains(&e.kind.as_str()) || other_task {
                tracing::warn!("a `{}` event from worker `{worker}` was left out", e.kind);
                continue;
            }
            if e.kind == "agent_finished"
                && let Ok(f) = serde_json::from_value::<events::AgentFinished>(e.payload.clone())
            {
                spent = (f.secs, f.tokens, f.usd_micros);
            }
            s.log.append(&e.kind, &e.actor, e.payload.clone())?;
        }
        let g = &mut s.goal.spent;
        g.time_secs = g.time_secs.saturating_add(spent.0);
        g.tokens = g.tokens.saturating_add(spent.1);
        g.usd_micros = g.usd_micros.saturating_add(spent.2);
        s.save_goal(Utc::now())?;
        s.log.record(
            events::OMK,
            &events::AgentNote::of(&events::WorkerResult {
                task_id: id.to_owned(),
                attempt: offer.attempt,
                worker: worker.to_owned(),
                claim: claim.to_owned(),
            }),
        )?;
        s.inputs.sync()?;
        s.sync()?;
        Ok(())
    }

    /// Makes the task's worktree here hold the worker's work: a worktree at
    /// the base, its files and index set to the worker's commit.
    async fn take_work(
        &self,
        st: &Started,
        commit: Option<&str>,
        object: Option<&str>,
        d: &Dispatcher,
    ) -> Result<(), String> {
        self.git(|| worktree::create(&self.repo, &st.wt, &st.branch, &self.base))
            .map_err(|e| e.to_string())?;
        let (Some(commit), Some(object)) = (commit, object) else {
            return Ok(());
        };
        let bytes = d
            .hub
            .get(&d.hub.code, object)
            .await
            .map_err(|e| e.to_string())?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let file = dir.path().join("work.bundle");
        std::fs::write(&file, bytes).map_err(|e| e.to_string())?;
        let prefix = format!("refs/omk/fetched/{}", hub::subject_token(&offer_key(st)));
        self.git(|| {
            worktree::bundle::fetch(&self.repo, &file, &prefix)?;
            let took = worktree::bundle::take_tree(&self.repo, &st.wt, commit);
            worktree::bundle::drop_refs(&self.repo, &prefix);
            took
        })
        .map_err(|e| e.to_string())
    }

    /// The attempts whose worker's events the log holds (their
    /// `worker_result` notes), for a coordinator that restarts.
    pub(super) fn worker_results(&self) -> Result<Vec<String>, GoalError> {
        self.session().sync()?;
        let mut found = Vec::new();
        crate::proof::log::each_event(self.dir.path(), |e| {
            let events::Body::AgentNote(n) = events::Body::of(&e) else {
                return;
            };
            if let Some(r) = n.detail_as::<events::WorkerResult>() {
                found.push(crate::dispatch::wire::attempt_key(
                    &self.goal_id,
                    &r.task_id,
                    r.attempt,
                ));
            }
        })?;
        Ok(found)
    }

    /// The attempts a stopped coordinator left running: still on their
    /// workers, so offered again, not reclaimed.
    pub(super) fn remote_resumable(&self) -> Vec<String> {
        let s = self.session();
        s.graph
            .tasks()
            .iter()
            .filter(|t| t.status == TaskStatus::Running && t.lease_token.is_some())
            .map(|t| t.id.clone())
            .collect()
    }
}

fn offer_key(st: &Started) -> String {
    format!("{}.{}", st.id, st.attempt)
}

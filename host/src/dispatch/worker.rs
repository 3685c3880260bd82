//! `omk worker`: takes offered attempts from the work queue and runs each
//! as a local task runs, in a record of its own.
//!
//! For each offer the worker:
//!
//! 1. claims the attempt ([`super::lease`]) — an attempt another worker
//!    holds, or that already ran, is left alone;
//! 2. rebuilds the gate set under its own trust ([`super::gates`]); a gate
//!    it does not trust, or an agent it cannot run, is a refusal, sent
//!    back with the reason;
//! 3. fetches the goal's base commit (a git bundle from the code store)
//!    into its own clone;
//! 4. records the attempt as a goal of its own in its state directory (the
//!    coordinator's task, attempt and frozen context) and runs it there
//!    with omk's executor: worktree, agent, live gating, `run:` checks,
//!    confinement — but no outcome judgement and no merge, which are the
//!    coordinator's;
//! 5. sends back the events of its record that belong in the goal's log,
//!    the inputs their decisions name, and the work as a git bundle;
//! 6. acknowledges the offer.
//!
//! While it works it acknowledges progress (within JetStream's ack wait)
//! and renews its claim; a renewal that fails stops the attempt. `SIGTERM`
//! stops taking offers and lets the running attempts finish; `kill -9`
//! leaves them to be delivered again once their ack wait and claim run
//! out.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::message::Acker;
use chrono::Utc;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::gates::{WorkerTrust, materialize};
use super::hub::{self, Auth, Hub, HubError};
use super::lease::{self, Taken};
use super::wire::{End, Offer, Ran, Reply, ReplyBody, Shipped, WIRE_VERSION};
use crate::agents::AgentSpec;
use crate::gates::GateSet;
use crate::goal::{GoalStore, MergePolicy, NewGoal, Session};
use crate::graph::{Task, TaskStatus};
use crate::proof::events::{self, Body};
use crate::wave::execute::{ExecOptions, Executor, Quiet};
use crate::worktree;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub url: String,
    pub auth: Auth,
    pub name: String,
    /// Attempts run at once.
    pub max_agents: usize,
    /// The worker's own state: its clones, its records of attempts.
    pub state: PathBuf,
    pub trust: WorkerTrust,
}

/// Runs until `stop` says so, then waits for the attempts it runs.
pub async fn run(opts: WorkerOptions, mut stop: watch::Receiver<bool>) -> Result<(), HubError> {
    let hub =
        Arc::new(Hub::connect(&opts.url, &opts.auth, &format!("omk worker {}", opts.name)).await?);
    eprintln!("worker {}: {}", opts.name, hub.describe());
    eprintln!(
        "worker {}: state {}, {} agents at once",
        opts.name,
        opts.state.display(),
        opts.max_agents
    );
    let consumer = hub.workers().await?;
    let slots = Arc::new(Semaphore::new(opts.max_agents.max(1)));
    let opts = Arc::new(opts);
    let mut running: JoinSet<()> = JoinSet::new();
    while !*stop.borrow() {
        while running.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p,
            _ = stop.changed() => continue,
        };
        let Ok(permit) = permit else { break };
        let batch = consumer
            .fetch()
            .max_messages(1)
            .expires(Duration::from_secs(1))
            .messages()
            .await;
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("cannot fetch offers: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(Ok(message)) = batch.next().await else {
            continue;
        };
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
        let (message, acker) = message.split();
        let (hub, opts) = (hub.clone(), opts.clone());
        running.spawn(async move {
            let _permit = permit;
            take(&hub, &opts, &message.payload, delivered, Arc::new(acker)).await;
        });
    }
    if !running.is_empty() {
        eprintln!(
            "worker {}: stopping; finishing {} attempt(s)",
            opts.name,
            running.len()
        );
    }
    while running.join_next().await.is_some() {}
    eprintln!("worker {}: stopped", opts.name);
    Ok(())
}

/// Takes one offer: claims it, runs it, replies, acknowledges.
async fn take(hub: &Hub, opts: &WorkerOptions, payload: &[u8], delivered: i64, acker: Arc<Acker>) {
    let offer: Offer = match serde_json::from_slice::<Offer>(payload) {
        Ok(o) if o.wire == WIRE_VERSION => o,
        Ok(o) => {
            eprintln!(
                "worker {}: dropped an offer of wire version {} (this omk speaks {WIRE_VERSION})",
                opts.name, o.wire
            );
            let _ = acker.ack_with(AckKind::Term).await;
            return;
        }
        Err(e) => {
            eprintln!(
                "worker {}: dropped an offer omk cannot read: {e}",
                opts.name
            );
            let _ = acker.ack_with(AckKind::Term).await;
            return;
        }
    };
    let key = offer.key();
    let claim = format!("{}-{delivered}-{}", opts.name, random_hex());
    let ttl = hub::ack_wait();
    let held = match lease::take(&hub.leases, &key, &opts.name, &claim, ttl).await {
        Ok(Ok(h)) => h,
        Ok(Err(Taken::Done(by))) => {
            eprintln!("worker {}: {key} already ran (on {by}); dropped", opts.name);
            let _ = acker.ack().await;
            return;
        }
        Ok(Err(Taken::Busy(by))) => {
            let _ = acker.ack_with(AckKind::Nak(Some(ttl))).await;
            tracing::info!("{key} is held by {by}; left for later");
            return;
        }
        Err(e) => {
            eprintln!("worker {}: {e}", opts.name);
            let _ = acker
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return;
        }
    };
    eprintln!(
        "worker {}: running {key} (claim {claim}, delivery {delivered})",
        opts.name
    );
    let (lost_tx, mut lost) = watch::channel(false);
    let beat = {
        let (leases, acker, mut held) = (hub.leases.clone(), acker.clone(), held.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                let _ = acker.ack_with(AckKind::Progress).await;
                if !lease::renew(&leases, &mut held, ttl).await {
                    let _ = lost_tx.send(true);
                    return;
                }
            }
        })
    };
    let record = opts.state.join("goals");
    let body = tokio::select! {
        b = attempt(hub, opts, &offer, &claim, &record) => Some(b),
        _ = lost.changed() => None,
    };
    beat.abort();
    let Some(body) = body else {
        eprintln!(
            "worker {}: lost the claim on {key}; stopped it, nothing sent",
            opts.name
        );
        kill_leftovers(&record, &offer);
        return;
    };
    let reply = Reply {
        wire: WIRE_VERSION,
        goal_id: offer.goal_id.clone(),
        task_id: offer.task.id.clone(),
        attempt: offer.attempt,
        token: offer.token.clone(),
        claim: claim.clone(),
        worker: opts.name.clone(),
        body,
    };
    let sent = match serde_json::to_vec(&reply) {
        Ok(bytes) => hub
            .publish(
                &hub::results_subject(&offer.goal_id),
                &format!("{key}.{claim}"),
                &bytes,
            )
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match sent {
        Ok(()) => {
            // The coordinator marks it done too when it accepts the
            // result; whichever comes first, a redelivery finds it done.
            if let Err(e) = lease::finish(&hub.leases, &held).await {
                tracing::info!("{key}: {e}");
            }
            let _ = acker.ack().await;
            eprintln!("worker {}: {key} sent", opts.name);
        }
        Err(e) => {
            // Not acknowledged: delivered again once the claim expires.
            eprintln!("worker {}: cannot send the result of {key}: {e}", opts.name);
        }
    }
}

/// Runs the offered attempt; what to reply.
async fn attempt(
    hub: &Hub,
    opts: &WorkerOptions,
    offer: &Offer,
    claim: &str,
    record: &Path,
) -> ReplyBody {
    let refused = |reason: String| ReplyBody::Refused { reason };
    let scratch = opts
        .state
        .join("attempts")
        .join(format!("{}.{claim}", offer.key()));
    if let Err(e) = std::fs::create_dir_all(&scratch) {
        return refused(format!("cannot create `{}`: {e}", scratch.display()));
    }
    // The gates, under this worker's trust, before anything else.
    let config = match materialize(hub, &offer.gates, &opts.trust, &scratch.join("gates")).await {
        Ok(c) => c,
        Err(reason) => return refused(reason),
    };
    let gates = match tokio::task::block_in_place(|| GateSet::for_config(&config)) {
        Ok(g) => g,
        Err(e) => return refused(format!("its gates do not load here: {e}")),
    };
    // The agent.
    let spec = match (&offer.agent, &offer.script) {
        (AgentSpec::Scripted { .. }, Some(script)) => {
            let path = scratch.join("script.json");
            if let Err(e) = std::fs::write(&path, script) {
                return refused(format!("cannot write the script: {e}"));
            }
            AgentSpec::Scripted { script: path }
        }
        (spec, _) => spec.clone(),
    };
    let backend = match crate::agents::backend(&spec) {
        Ok(b) => b,
        Err(e) => return refused(format!("its agent cannot run here: {e}")),
    };
    if let Err(e) = crate::agents::doctor::preflight(&spec) {
        return refused(format!("its agent cannot run here: {e}"));
    }
    let mut exec_opts = ExecOptions::from_env(false);
    exec_opts.check_timeout_secs = offer.check_timeout_secs;
    exec_opts.context = Some(offer.context.clone());
    exec_opts.judge_outcomes = false;
    if let Err(e) = crate::sandbox::check_kernel(&exec_opts.sandbox) {
        return refused(format!("this machine cannot confine its processes: {e}"));
    }
    // The code: the goal's clone (fetched once per goal), and the
    // attempt's own clone sharing its objects, so that attempts running at
    // once do not share git's locks.
    let cache = opts
        .state
        .join("repos")
        .join(hub::subject_token(&offer.goal_id));
    if let Err(e) = fetch_base(hub, offer, &cache, &scratch).await {
        return failed(format!("cannot fetch its base commit: {e}"), "omk.dispatch");
    }
    let repo = scratch.join("repo");
    if let Err(e) = tokio::task::block_in_place(|| worktree::bundle::clone_shared(&cache, &repo)) {
        return failed(format!("cannot clone its base commit: {e}"), "omk.dispatch");
    }
    // The record, and the run.
    let store = GoalStore::new(record.to_owned());
    let session = match record_attempt(&store, offer, &repo, spec) {
        Ok(s) => s,
        Err(e) => return failed(format!("cannot record it: {e}"), "omk.internal"),
    };
    let local_id = session.goal.id.clone();
    let dir = session.dir().path().to_owned();
    let exec = match Executor::new(session, gates, backend, exec_opts, Box::new(Quiet)) {
        Ok(e) => e,
        Err(e) => return failed(format!("cannot run it: {e}"), "omk.internal"),
    };
    exec.run_one(&offer.task.id).await;
    drop(exec);
    match report(hub, offer, claim, &store, &local_id, &dir, &repo, &scratch).await {
        Ok(ran) => ReplyBody::Ran(Box::new(ran)),
        Err(e) => failed(format!("cannot report it: {e}"), "omk.internal"),
    }
}

fn failed(reason: String, code: &str) -> ReplyBody {
    ReplyBody::Ran(Box::new(Ran {
        events: Vec::new(),
        inputs: Vec::new(),
        started: Value::Null,
        end: End::Failed {
            reason,
            code: code.into(),
            retryable: true,
        },
    }))
}

/// Makes sure the clone at `repo` has the offer's base commit (one attempt
/// at a time fetches).
async fn fetch_base(hub: &Hub, offer: &Offer, repo: &Path, scratch: &Path) -> Result<(), String> {
    static FETCHING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = FETCHING.lock().await;
    if repo.exists() && worktree::bundle::has_commit(repo, &offer.base) {
        return Ok(());
    }
    let bytes = hub
        .get(&hub.code, &offer.code)
        .await
        .map_err(|e| e.to_string())?;
    let file = scratch.join("base.bundle");
    std::fs::write(&file, bytes).map_err(|e| e.to_string())?;
    tokio::task::block_in_place(|| worktree::bundle::fetch_into(repo, &file))
        .map_err(|e| e.to_string())?;
    if !worktree::bundle::has_commit(repo, &offer.base) {
        return Err(format!("the bundle does not hold {}", offer.base));
    }
    Ok(())
}

/// A goal in the worker's store that records the offered attempt: the
/// coordinator's task, pending at the offer's attempt, run from `repo`.
fn record_attempt(
    store: &GoalStore,
    offer: &Offer,
    repo: &Path,
    agent: AgentSpec,
) -> Result<Session, crate::goal::GoalError> {
    let now = Utc::now();
    let mut session = Session::create(
        store,
        NewGoal {
            text: offer.goal.clone(),
            limits: Default::default(),
            max_agents: 1,
            project_dir: repo.to_owned(),
            policy_roots: offer.context.policy_roots.clone(),
            agent: Some(agent),
            base_commit: Some(offer.base.clone()),
            merge_policy: MergePolicy::None,
            guarded: None,
        },
        now,
    )?;
    let mut task = Task::admitted(&offer.task, "dispatch", now);
    // The offer's attempt number, and a retry left so that the record
    // says whether a failure may be retried (which the coordinator decides).
    task.retry_count = offer.attempt.saturating_sub(1);
    task.max_retries = offer.attempt;
    session.graph.push(task);
    session.save_graph(now)?;
    session.log.record(
        events::OMK,
        &events::AgentNote {
            note: "dispatched".into(),
            detail: serde_json::json!({"goal_id": offer.goal_id, "task_id": offer.task.id,
                                       "attempt": offer.attempt, "token": offer.token}),
        },
    )?;
    session.sync()?;
    Ok(session)
}

/// What the record of the attempt says, for the coordinator.
#[allow(clippy::too_many_arguments)]
async fn report(
    hub: &Hub,
    offer: &Offer,
    claim: &str,
    store: &GoalStore,
    local_id: &str,
    dir: &Path,
    repo: &Path,
    scratch: &Path,
) -> Result<Ran, String> {
    let (logged, _) = crate::proof::log::read(dir).map_err(|e| e.to_string())?;
    let id = offer.task.id.as_str();
    let from = logged
        .iter()
        .rposition(|e| e.kind == "task_started" && e.payload["task_id"] == serde_json::json!(id))
        .ok_or("the attempt never started")?;
    let started = logged[from].payload.clone();
    let mut events = Vec::new();
    let mut wanted = std::collections::HashSet::new();
    let mut failure = None;
    for e in &logged[from + 1..] {
        match e.kind.as_str() {
            "gate_decision" | "agent_action" | "agent_note" | "agent_finished" | "task_outcome" => {
                if let Some(sha) = e.payload["input_sha256"].as_str() {
                    wanted.insert(sha.to_owned());
                }
                events.push(Shipped {
                    kind: e.kind.clone(),
                    actor: e.actor.clone(),
                    payload: e.payload.clone(),
                });
            }
            "task_failed" => {
                if let Body::TaskFailed(f) = Body::of(e) {
                    failure = Some(f);
                }
            }
            _ => {}
        }
    }
    let inputs = crate::proof::inputs::lines_for(dir, &wanted).map_err(|e| e.to_string())?;
    let graph = crate::graph::TaskGraph::load(dir, local_id).map_err(|e| e.to_string())?;
    let _ = store;
    let task = graph.get(id).ok_or("the record lost its task")?;
    let end = match (task.status, failure) {
        (TaskStatus::Done, _) => {
            let object = match &task.commit {
                Some(commit) => {
                    let file = scratch.join("work.bundle");
                    let name = format!("refs/omk/work/{}", hub::subject_token(&offer.key()));
                    tokio::task::block_in_place(|| {
                        worktree::bundle::create(repo, commit, &name, &file)
                    })
                    .map_err(|e| e.to_string())?;
                    let bytes = std::fs::read(&file).map_err(|e| e.to_string())?;
                    let object = format!("work-{}-{claim}.bundle", offer.key());
                    hub.put(&hub.code, &object, &bytes)
                        .await
                        .map_err(|e| e.to_string())?;
                    Some(object)
                }
                None => None,
            };
            End::Done {
                commit: task.commit.clone(),
                object,
                follow_ups: task.follow_ups.clone(),
            }
        }
        (_, Some(f)) => End::Failed {
            reason: f.reason.clone(),
            code: f.code.clone(),
            retryable: f.will_retry,
        },
        (status, None) => End::Failed {
            reason: format!("the attempt ended {status:?} on the worker, without a reason"),
            code: "omk.internal".into(),
            retryable: true,
        },
    };
    Ok(Ran {
        events,
        inputs,
        started,
        end,
    })
}

/// Kills what an attempt that lost its claim left running.
fn kill_leftovers(record: &Path, offer: &Offer) {
    let Ok(entries) = std::fs::read_dir(record) else {
        return;
    };
    for e in entries.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        let Ok(graph) = crate::graph::TaskGraph::load(&e.path(), &id) else {
            continue;
        };
        if let Some(t) = graph.get(&offer.task.id)
            && t.status == TaskStatus::Running
            && let (Some(pgid), Some(token)) = (t.pgid, t.lease_token.as_deref())
            && crate::agents::process::alive_with_marker(pgid, &format!("OMK_LEASE={token}"))
        {
            crate::agents::process::kill_group(pgid);
        }
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 6];
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

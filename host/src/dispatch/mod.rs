//! Tasks run by workers on other machines, through NATS JetStream.
//!
//! `omk goal execute ID --dispatch nats://…` makes the running omk a
//! **coordinator**: it judges proposals, schedules, judges outcomes, lands
//! and merges work exactly as a local run does, and stays the only writer
//! of the goal's hash-chained log; but instead of running an admitted
//! task's attempt itself, it offers it on a JetStream work queue. `omk
//! worker --nats URL` processes on any machine take offers and run each
//! attempt as a local task runs — a worktree at the goal's base commit, the
//! agent, every action judged live by the same gates, `run:` checks, the
//! kernel's confinement — in a record of their own, and send back what it
//! logged and its work as a git bundle. The coordinator appends those
//! events to the goal's log, judges the outcome, and lands the work.
//!
//! - [`hub`]: the connection, streams, consumer, buckets and stores.
//! - [`wire`]: the messages.
//! - [`lease`]: the claim that makes one worker run an attempt, once.
//! - [`gates`]: the gate set, sent by the coordinator and verified by the
//!   worker against its own trust.
//! - [`worker`]: `omk worker`.
//!
//! The coordinator's side is `wave::execute::remote`; this module holds
//! what it shares with it: the [`Dispatcher`].

pub mod gates;
pub mod hub;
pub mod lease;
pub mod wire;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::sync::oneshot;

use self::hub::{Auth, Hub, HubError};
use self::wire::{GateManifest, Reply};

/// A reply, and the means to acknowledge it once handled.
pub struct Delivery {
    pub reply: Reply,
    pub acker: async_nats::jetstream::message::Acker,
}

/// What a coordinator keeps while it dispatches one goal's tasks.
pub struct Dispatcher {
    pub hub: Hub,
    pub goal_id: String,
    /// The gate set offered with every task.
    pub gates: GateManifest,
    /// The object holding the bundle of the goal's base commit.
    pub code: String,
    /// Replies awaited, by attempt key.
    waiting: Mutex<HashMap<String, oneshot::Sender<Delivery>>>,
    /// Replies that came before anyone awaited them (a coordinator that
    /// restarted), by attempt key.
    early: Mutex<HashMap<String, Vec<Delivery>>>,
    /// Attempts whose worker's events are in the log already.
    appended: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("url", &self.hub.url)
            .field("goal_id", &self.goal_id)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Connects to `url` for goal `goal_id`: publishes its gate set and
    /// base commit, and starts reading the replies about it.
    pub async fn start(
        url: &str,
        auth: &Auth,
        goal_id: &str,
        gates: &omk_core::config::GatesConfig,
        repo: &std::path::Path,
        base: &str,
    ) -> Result<Arc<Dispatcher>, HubError> {
        let hub = Hub::connect(url, auth, &format!("omk coordinator {goal_id}")).await?;
        tracing::info!("coordinator of {goal_id}: {}", hub.describe());
        let manifest = gates::manifest(&hub, gates)
            .await
            .map_err(|e| hub.error(format!("cannot publish the gates: {e}")))?;
        let dir = tempfile::tempdir().map_err(|e| hub.error(e.to_string()))?;
        let file = dir.path().join("base.bundle");
        let name = format!("refs/omk/dispatch/{}", hub::subject_token(goal_id));
        crate::worktree::bundle::create(repo, base, &name, &file)
            .map_err(|e| hub.error(format!("cannot bundle the base commit: {e}")))?;
        let bytes = std::fs::read(&file).map_err(|e| hub.error(e.to_string()))?;
        let code = format!("base-{base}.bundle");
        hub.put(&hub.code, &code, &bytes).await?;
        let replies = hub.replies(goal_id).await?;
        let me = Arc::new(Dispatcher {
            hub,
            goal_id: goal_id.to_owned(),
            gates: manifest,
            code,
            waiting: Mutex::new(HashMap::new()),
            early: Mutex::new(HashMap::new()),
            appended: Mutex::new(std::collections::HashSet::new()),
        });
        let reader = Arc::downgrade(&me);
        let mut messages = replies
            .messages()
            .await
            .map_err(|e| me.hub.error(format!("cannot read replies: {e}")))?;
        tokio::spawn(async move {
            while let Some(m) = messages.next().await {
                let Some(me) = reader.upgrade() else { break };
                let Ok(m) = m else { continue };
                let (m, acker) = m.split();
                match serde_json::from_slice::<Reply>(&m.payload) {
                    Ok(reply) => me.route(Delivery { reply, acker }),
                    Err(e) => {
                        tracing::warn!("a reply omk cannot read was dropped: {e}");
                        let _ = acker.ack().await;
                    }
                }
            }
        });
        Ok(me)
    }

    fn route(&self, d: Delivery) {
        let key = wire::attempt_key(&d.reply.goal_id, &d.reply.task_id, d.reply.attempt);
        let sender = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        match sender {
            Some(tx) => {
                if let Err(d) = tx.send(d) {
                    self.keep(key, d);
                }
            }
            None => self.keep(key, d),
        }
    }

    fn keep(&self, key: String, d: Delivery) {
        self.early
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .push(d);
    }

    /// The next reply about attempt `key`.
    pub async fn next_reply(&self, key: &str) -> Option<Delivery> {
        let rx = {
            let mut early = self.early.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(list) = early.get_mut(key)
                && !list.is_empty()
            {
                return Some(list.remove(0));
            }
            let (tx, rx) = oneshot::channel();
            self.waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.to_owned(), tx);
            rx
        };
        rx.await.ok()
    }

    /// Whether the worker's events of attempt `key` are in the log.
    pub fn was_appended(&self, key: &str) -> bool {
        self.appended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    }

    /// Notes that the worker's events of attempt `key` are in the log.
    pub fn mark_appended(&self, key: &str) {
        self.appended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned());
    }
}

//! Who runs an attempt: a claim in the JetStream key-value bucket
//! `omk-leases`, under the attempt's key, changed only by compare-and-set.
//!
//! JetStream redelivers an offer whose worker stopped acknowledging it, and
//! a message can be delivered twice; the claim makes sure an attempt runs
//! on one worker at a time and counts once:
//!
//! - a worker takes an offer only by creating the claim, or by replacing
//!   one whose holder let it expire (a dead worker);
//! - the holder renews it while it works; a renewal that fails (someone
//!   took the claim over) stops its agent at once;
//! - the holder marks it `done` when it has sent its result; a later
//!   delivery of the same offer finds it done and drops it;
//! - the coordinator accepts a result only from the claim's holder: a late
//!   result from a holder that lost the claim is noted and ignored.

use std::time::Duration;

use async_nats::jetstream::kv::Store;
use serde::{Deserialize, Serialize};

/// A claim's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The holder's token (unique per delivery).
    pub token: String,
    pub worker: String,
    /// Milliseconds since the epoch after which the claim may be taken.
    pub expires_ms: u64,
    pub done: bool,
}

/// A claim held by this process, with the revision to renew it from.
#[derive(Debug, Clone)]
pub struct Held {
    pub key: String,
    pub claim: Claim,
    pub revision: u64,
}

/// Why a claim could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Another worker holds it and is alive.
    Busy(String),
    /// The attempt already ran and its result was sent.
    Done(String),
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

fn encode(c: &Claim) -> bytes::Bytes {
    serde_json::to_vec(c).unwrap_or_default().into()
}

/// The claim under `key`, with its revision, if any.
pub async fn read(kv: &Store, key: &str) -> Result<Option<(Claim, u64)>, String> {
    let entry = kv
        .entry(key)
        .await
        .map_err(|e| format!("cannot read the claim `{key}`: {e}"))?;
    Ok(entry.and_then(|e| {
        if e.operation != async_nats::jetstream::kv::Operation::Put {
            return None;
        }
        serde_json::from_slice(&e.value)
            .ok()
            .map(|c| (c, e.revision))
    }))
}

/// Takes the claim on `key` for `worker` for `ttl`.
pub async fn take(
    kv: &Store,
    key: &str,
    worker: &str,
    token: &str,
    ttl: Duration,
) -> Result<Result<Held, Taken>, String> {
    let claim = Claim {
        token: token.to_owned(),
        worker: worker.to_owned(),
        expires_ms: now_ms() + u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        done: false,
    };
    let revision = match read(kv, key).await? {
        None => match kv.create(key, encode(&claim)).await {
            Ok(r) => r,
            Err(_) => {
                // Someone created it between our read and our create.
                return Ok(Err(Taken::Busy("another worker".into())));
            }
        },
        Some((old, _)) if old.done => return Ok(Err(Taken::Done(old.worker))),
        Some((old, _)) if old.expires_ms > now_ms() => return Ok(Err(Taken::Busy(old.worker))),
        Some((_, rev)) => match kv.update(key, encode(&claim), rev).await {
            Ok(r) => r,
            Err(_) => return Ok(Err(Taken::Busy("another worker".into()))),
        },
    };
    Ok(Ok(Held {
        key: key.to_owned(),
        claim,
        revision,
    }))
}

/// Renews `held` for `ttl`; `false` when the claim is no longer ours (a
/// server that does not answer is not that: the next beat tries again).
pub async fn renew(kv: &Store, held: &mut Held, ttl: Duration) -> bool {
    let mut next = held.claim.clone();
    next.expires_ms = now_ms() + u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    if let Ok(r) = kv.update(&held.key, encode(&next), held.revision).await {
        held.revision = r;
        held.claim = next;
        return true;
    }
    match read(kv, &held.key).await {
        Ok(Some((now, rev))) if now.token == held.claim.token => {
            held.revision = rev;
            true
        }
        Ok(_) => false,
        Err(_) => true,
    }
}

/// Marks `held` done (its result sent); `false` when it was not ours.
pub async fn finish(kv: &Store, held: &Held) -> Result<bool, String> {
    mark_done(kv, &held.key, &held.claim.token).await
}

/// The coordinator's acceptance of a result sent under `token`: `true` if
/// `token` holds the claim (which is then marked done, so that no later
/// delivery of the offer runs it again), `false` for a late result from a
/// holder that lost it.
pub async fn accept(kv: &Store, key: &str, token: &str) -> Result<bool, String> {
    mark_done(kv, key, token).await
}

/// Marks the claim on `key` done if `token` holds it. A write that fails
/// is tried again from a fresh read, for up to 30 s: the holder may have
/// renewed it in between, and while a cluster elects a new leader for the
/// bucket (a node lost) writes time out or are refused for seconds.
async fn mark_done(kv: &Store, key: &str, token: &str) -> Result<bool, String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut pause = Duration::from_millis(50);
    loop {
        let Some((claim, rev)) = super::hub::patiently(|| read(kv, key)).await? else {
            return Ok(false);
        };
        if claim.token != token {
            return Ok(false);
        }
        if claim.done {
            return Ok(true);
        }
        let done = Claim {
            done: true,
            ..claim
        };
        let err = match kv.update(key, encode(&done), rev).await {
            Ok(_) => return Ok(true),
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("cannot mark the claim `{key}` done: {err}"));
        }
        tracing::info!("the claim `{key}` was not marked done ({err}); trying again");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

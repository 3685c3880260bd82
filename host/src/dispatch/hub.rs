//! The NATS side: connecting (with the server's usual authentication and
//! TLS), and the JetStream streams, consumer, buckets and stores omk uses,
//! created if missing:
//!
//! | name | kind | holds |
//! |---|---|---|
//! | `OMK_TASKS` | stream, work queue (`omk.tasks.<goal>`) | offers; each taken by one worker, acknowledged when its result is sent |
//! | `omk-workers` | durable pull consumer on `OMK_TASKS` | shared by every worker; an offer not acknowledged within the ack wait is delivered again |
//! | `OMK_RESULTS` | stream (`omk.results.<goal>`) | workers' replies; the coordinator reads its goal's with a durable consumer of its own and acknowledges each once it is in the log |
//! | `omk-leases` | key-value bucket | the claim on each attempt ([`super::lease`]) |
//! | `omk-code` | object store | git bundles: goals' base commits, attempts' work |
//! | `omk-gates` | object store | gate components by sha256, packed bundles |

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, object_store, stream};

/// The names above.
pub const TASKS: &str = "OMK_TASKS";
pub const RESULTS: &str = "OMK_RESULTS";
pub const WORKERS: &str = "omk-workers";
pub const LEASES: &str = "omk-leases";
pub const CODE: &str = "omk-code";
pub const GATES: &str = "omk-gates";

/// How long an offer may go without an acknowledgement (a worker sends one
/// every third of it while it works) before JetStream delivers it again.
pub fn ack_wait() -> Duration {
    let secs = std::env::var("OMK_NATS_ACK_WAIT_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// How to reach the server, besides its URL: the usual means of
/// authentication (a user and password in the URL itself), and TLS when the
/// URL's scheme is `tls://`.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// A credentials file (a user JWT and its NKey seed).
    pub creds: Option<PathBuf>,
    /// A file holding an NKey seed.
    pub nkey: Option<PathBuf>,
    /// A token.
    pub token: Option<String>,
    /// A CA certificate to trust for TLS.
    pub ca: Option<PathBuf>,
}

impl Auth {
    /// From `OMK_NATS_CREDS`, `OMK_NATS_NKEY`, `OMK_NATS_TOKEN` and
    /// `OMK_NATS_CA`.
    pub fn from_env() -> Auth {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Auth {
            creds: var("OMK_NATS_CREDS").map(PathBuf::from),
            nkey: var("OMK_NATS_NKEY").map(PathBuf::from),
            token: var("OMK_NATS_TOKEN"),
            ca: var("OMK_NATS_CA").map(PathBuf::from),
        }
    }
}

/// Why omk cannot use a NATS server.
#[derive(Debug, thiserror::Error)]
#[error("NATS `{url}`: {detail}")]
pub struct HubError {
    pub url: String,
    pub detail: String,
}

impl omk_core::diagnose::Diagnose for HubError {
    fn kind(&self) -> omk_core::diagnose::Kind {
        omk_core::diagnose::Kind::System
    }

    fn help(&self) -> Option<String> {
        Some(
            "start a server with JetStream (`nats-server -js`), check the URL \
             (`nats://HOST:4222`, `tls://…` for TLS) and its credentials \
             (`OMK_NATS_CREDS`, `OMK_NATS_NKEY`, `OMK_NATS_TOKEN`, or `nats://USER:PASSWORD@HOST`); \
             `omk doctor --nats URL` checks it"
                .into(),
        )
    }
}

/// A connection and everything omk uses on it.
pub struct Hub {
    pub url: String,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub tasks: stream::Stream,
    pub results: stream::Stream,
    pub leases: kv::Store,
    pub code: Bucket,
    pub gates: Bucket,
}

/// An object store and the stream under it.
pub struct Bucket {
    pub name: &'static str,
    pub store: object_store::ObjectStore,
    stream: stream::Stream<()>,
}

impl Hub {
    /// Connects to `url` (servers of one cluster may be listed, comma
    /// separated) as `name`, and makes the streams and stores omk needs
    /// where they are missing, replicated over `OMK_NATS_REPLICAS` servers
    /// (default 1; 3 for a three-node cluster).
    pub async fn connect(url: &str, auth: &Auth, name: &str) -> Result<Hub, HubError> {
        let replicas = std::env::var("OMK_NATS_REPLICAS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(1);
        let err = |detail: String| HubError {
            url: url.to_owned(),
            detail,
        };
        let client = client(url, auth, name).await?;
        let js = jetstream::new(client.clone());
        // A cluster that just started elects its leaders for a few seconds:
        // its streams are not ready before.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let (tasks, results, leases, code, gates) = loop {
            match setup(&js, replicas.max(1)).await {
                Ok(made) => break made,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::info!("JetStream is not ready yet: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(err(e)),
            }
        };
        let code = Bucket::new(&js, CODE, code).await.map_err(err)?;
        let gates = Bucket::new(&js, GATES, gates).await.map_err(err)?;
        Ok(Hub {
            url: url.to_owned(),
            client,
            js,
            tasks,
            results,
            leases,
            code,
            gates,
        })
    }

    /// The consumer every worker takes offers from.
    pub async fn workers(&self) -> Result<consumer::PullConsumer, HubError> {
        self.tasks
            .get_or_create_consumer(
                WORKERS,
                consumer::pull::Config {
                    durable_name: Some(WORKERS.into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: ack_wait(),
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.error(format!("cannot make the consumer {WORKERS}: {e}")))
    }

    /// The coordinator's consumer of the replies about `goal`.
    pub async fn replies(&self, goal: &str) -> Result<consumer::PullConsumer, HubError> {
        let name = format!("omk-coordinator-{}", subject_token(goal));
        self.results
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: results_subject(goal),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(20),
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.error(format!("cannot make the consumer {name}: {e}")))
    }

    /// Puts `bytes` in `bucket` as `name`, unless an object of that name
    /// is there already (names are content addresses).
    pub async fn put(&self, bucket: &Bucket, name: &str, bytes: &[u8]) -> Result<(), HubError> {
        patiently(|| async {
            if bucket.store.info(name).await.is_ok() {
                return Ok(());
            }
            let mut reader = bytes;
            bucket
                .store
                .put(name, &mut reader)
                .await
                .map(drop)
                .map_err(|e| format!("cannot store `{name}`: {e}"))
        })
        .await
        .map_err(|e| self.error(e))
    }

    /// The bytes of `name` in `bucket`.
    pub async fn get(&self, bucket: &Bucket, name: &str) -> Result<Vec<u8>, HubError> {
        patiently(|| bucket.read(name))
            .await
            .map_err(|e| self.error(e))
    }

    /// Publishes `payload` on `subject` under the message id `id` (which
    /// JetStream keeps once within its duplicate window), and waits for
    /// the stream to acknowledge it.
    pub async fn publish(&self, subject: &str, id: &str, payload: &[u8]) -> Result<(), HubError> {
        patiently(|| async {
            let msg = async_nats::jetstream::message::PublishMessage::build()
                .payload(payload.to_vec().into())
                .message_id(id);
            self.js
                .send_publish(subject.to_owned(), msg)
                .await
                .map_err(|e| e.to_string())?
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| self.error(format!("cannot publish on {subject}: {e}")))
    }

    /// A one-line description for logs: server, streams, consumer.
    pub fn describe(&self) -> String {
        let info = self.client.server_info();
        format!(
            "NATS {} (server {} {}), streams {TASKS} and {RESULTS}, consumer {WORKERS}, bucket {LEASES}, stores {CODE} and {GATES}",
            self.url, info.server_name, info.version
        )
    }

    pub fn error(&self, detail: String) -> HubError {
        HubError {
            url: self.url.clone(),
            detail,
        }
    }
}

/// What omk uses on a JetStream server, made where missing.
type Made = (
    stream::Stream,
    stream::Stream,
    kv::Store,
    object_store::ObjectStore,
    object_store::ObjectStore,
);

async fn setup(js: &jetstream::Context, replicas: usize) -> Result<Made, String> {
    let tasks = js
        .get_or_create_stream(stream::Config {
            name: TASKS.into(),
            subjects: vec!["omk.tasks.>".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            num_replicas: replicas,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cannot make the stream {TASKS} (is JetStream enabled?): {e}"))?;
    let results = js
        .get_or_create_stream(stream::Config {
            name: RESULTS.into(),
            subjects: vec!["omk.results.>".into()],
            num_replicas: replicas,
            max_age: Duration::from_secs(7 * 24 * 3600),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cannot make the stream {RESULTS}: {e}"))?;
    // The bucket's stream is made as `create_key_value` would make it:
    // that call first reads the account's info, whose reply from
    // servers before 2.10 (Debian's 2.9) the client cannot parse. Reads
    // go to the stream's leader (no direct gets): a replica may lag, and
    // a claim read stale would have a result taken as late.
    let leases = match js.get_key_value(LEASES).await {
        Ok(kv) => kv,
        Err(_) => {
            js.get_or_create_stream(stream::Config {
                name: format!("KV_{LEASES}"),
                subjects: vec![format!("$KV.{LEASES}.>")],
                max_messages_per_subject: 1,
                discard: stream::DiscardPolicy::New,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: false,
                num_replicas: replicas,
                max_age: Duration::from_secs(7 * 24 * 3600),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("cannot make the bucket {LEASES}: {e}"))?;
            js.get_key_value(LEASES)
                .await
                .map_err(|e| format!("cannot open the bucket {LEASES}: {e}"))?
        }
    };
    let leases = if leases.stream.cached_info().config.allow_direct {
        // Made by an older omk: its reads may come from a lagging replica.
        let config = stream::Config {
            allow_direct: false,
            ..leases.stream.cached_info().config.clone()
        };
        js.update_stream(config)
            .await
            .map_err(|e| format!("cannot turn off direct reads of the bucket {LEASES}: {e}"))?;
        js.get_key_value(LEASES)
            .await
            .map_err(|e| format!("cannot open the bucket {LEASES}: {e}"))?
    } else {
        leases
    };
    let store = |bucket: &'static str| {
        let js = js.clone();
        async move {
            match js.get_object_store(bucket).await {
                Ok(s) => Ok(s),
                Err(_) => js
                    .create_object_store(object_store::Config {
                        bucket: bucket.into(),
                        num_replicas: replicas,
                        max_age: Duration::from_secs(7 * 24 * 3600),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| format!("cannot make the object store {bucket}: {e}")),
            }
        }
    };
    let code = store(CODE).await?;
    let gates = store(GATES).await?;
    Ok((tasks, results, leases, code, gates))
}

impl Bucket {
    async fn new(
        js: &jetstream::Context,
        name: &'static str,
        store: object_store::ObjectStore,
    ) -> Result<Bucket, String> {
        let stream = js
            .get_stream_no_info(format!("OBJ_{name}"))
            .await
            .map_err(|e| format!("the object store {name}: {e}"))?;
        Ok(Bucket {
            name,
            store,
            stream,
        })
    }

    /// Reads `name`'s chunks one by one from the stream's leader and checks
    /// them against the object's size and SHA-256 digest. The object
    /// store's own reader makes a consumer for every read, and after a
    /// cluster lost a node that consumer could be placed on the lost node
    /// and time out; a read by sequence needs no consumer.
    async fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        use base64::Engine;
        use sha2::Digest;
        let info = self
            .store
            .info(name)
            .await
            .map_err(|e| format!("cannot fetch `{name}`: {e}"))?;
        if info.deleted {
            return Err(format!("`{name}` was deleted from {}", self.name));
        }
        let subject = format!("$O.{}.C.{}", self.name, info.nuid);
        // The size is the server's word: reserved up to 64 MiB, grown past.
        let mut out = Vec::with_capacity(info.size.min(64 << 20));
        let mut sequence = 1;
        for _ in 0..info.chunks {
            let chunk = self
                .stream
                .get_first_raw_message_by_subject(&subject, sequence)
                .await
                .map_err(|e| format!("cannot read `{name}`: {e}"))?;
            out.extend_from_slice(&chunk.payload);
            sequence = chunk.sequence + 1;
        }
        let digest = format!(
            "SHA-256={}",
            base64::engine::general_purpose::URL_SAFE.encode(sha2::Sha256::digest(&out))
        );
        if out.len() != info.size || info.digest.as_deref().is_some_and(|d| d != digest) {
            return Err(format!(
                "`{name}` in {} is damaged: {} bytes read, {} expected, digest {digest}, {} expected",
                self.name,
                out.len(),
                info.size,
                info.digest.as_deref().unwrap_or("none")
            ));
        }
        Ok(out)
    }
}

/// A connection to `url` (servers of one cluster comma separated) as
/// `name`, with `auth`; waits for the first connection.
async fn client(url: &str, auth: &Auth, name: &str) -> Result<async_nats::Client, HubError> {
    let err = |detail: String| HubError {
        url: url.to_owned(),
        detail,
    };
    let mut opts = match &auth.creds {
        Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| err(format!("cannot read `{}`: {e}", path.display())))?,
        None => async_nats::ConnectOptions::new(),
    };
    if let Some(path) = &auth.nkey {
        let seed = std::fs::read_to_string(path)
            .map_err(|e| err(format!("cannot read `{}`: {e}", path.display())))?;
        opts = opts.nkey(seed.trim().to_owned());
    }
    if let Some(token) = &auth.token {
        opts = opts.token(token.clone());
    }
    if let Some(ca) = &auth.ca {
        opts = opts.add_root_certificates(ca.clone());
    }
    if url.starts_with("tls://") {
        opts = opts.require_tls(true);
    }
    let client = opts
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(
            url.split(',')
                .map(|u| u.trim().parse::<async_nats::ServerAddr>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(format!("not a server address: {e}")))?,
        )
        .await
        .map_err(|e| err(format!("cannot connect: {e}")))?;
    // `retry_on_initial_connect` returns before the first connection:
    // wait for it, so that a wrong URL is an error, not a hang.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while client.connection_state() != async_nats::connection::State::Connected {
        if tokio::time::Instant::now() > deadline {
            return Err(err("cannot connect within 10 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(client)
}

/// What `omk doctor --nats URL` reports: the server, whether JetStream is
/// enabled for this account, and which of omk's streams, buckets and stores
/// exist (the others are made on first use).
pub async fn check(url: &str, auth: &Auth) -> serde_json::Value {
    let client = match client(url, auth, "omk doctor").await {
        Ok(c) => c,
        Err(e) => return serde_json::json!({"url": url, "reachable": false, "problem": e.detail}),
    };
    let info = client.server_info();
    let js = jetstream::new(client.clone());
    // Any JetStream API answers only where JetStream is enabled; a stream
    // that is not there is a 404 from it, not silence.
    let account = match js.get_stream(TASKS).await {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(_)
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    };
    let mut have = serde_json::Map::new();
    for s in [
        TASKS,
        RESULTS,
        &format!("KV_{LEASES}"),
        &format!("OBJ_{CODE}"),
        &format!("OBJ_{GATES}"),
    ] {
        have.insert(
            s.to_owned(),
            serde_json::Value::Bool(js.get_stream(s).await.is_ok()),
        );
    }
    serde_json::json!({
        "url": url, "reachable": true,
        "server": info.server_name, "version": info.version,
        "jetstream": account.is_ok(),
        "problem": account.err().map(|e| format!("JetStream is not enabled for this account: {e}")),
        "streams": have,
    })
}

/// `op`, tried again for up to 30 s while it fails: a cluster that lost a
/// node answers nothing for a few seconds while it elects new leaders.
pub(super) async fn patiently<T, F, Fut>(mut op: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::info!("NATS: {e}; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A goal id as one subject token (ids have no dots or wildcards; this
/// keeps it so).
pub fn subject_token(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where offers for `goal` are published.
pub fn tasks_subject(goal: &str) -> String {
    format!("omk.tasks.{}", subject_token(goal))
}

/// Where replies about `goal` are published.
pub fn results_subject(goal: &str) -> String {
    format!("omk.results.{}", subject_token(goal))
}

//! `omk worker`: runs offered task attempts for coordinators on other
//! machines (see `omk::dispatch`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::Outcome;
use omk::dispatch::gates::WorkerTrust;
use omk::dispatch::hub::Auth;
use omk::dispatch::worker::{self, WorkerOptions};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The NATS JetStream server (`nats://HOST:4222`, `tls://…`; a user and
    /// password in the URL, or `OMK_NATS_CREDS`, `OMK_NATS_NKEY`,
    /// `OMK_NATS_TOKEN` for other credentials).
    #[arg(long, value_name = "URL")]
    nats: String,
    /// This worker's name in logs, claims and replies (default: host and
    /// process id).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Attempts run at once.
    #[arg(long, value_name = "N", default_value_t = 2)]
    max_agents: usize,
    /// Where this worker keeps its clones and its record of every attempt
    /// (default: `omk/worker-NAME` in the state directory).
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// A public key (file or `ed25519:…`) whose signed bundles this worker
    /// runs gates from (repeatable); with none, only the std gates and, with
    /// `--allow-unsigned`, a project's own components.
    #[arg(long = "trust", value_name = "KEY")]
    trust: Vec<String>,
    /// Run a project's unsigned gate components too.
    #[arg(long)]
    allow_unsigned: bool,
}

pub fn run(a: WorkerArgs) -> Result<Outcome> {
    let name = a.name.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "worker".into());
        format!("{host}-{}", std::process::id())
    });
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(super::with_help(
            format!("`{name}` is not a worker name"),
            "use 1–64 of a-z, A-Z, 0-9, `-` and `_`",
        ));
    }
    let state = match a.state {
        Some(s) => s,
        None => omk::dirs::state_dir()
            .context("no state directory: set XDG_STATE_HOME or HOME, or pass --state")?
            .join(format!("worker-{name}")),
    };
    let keys = a
        .trust
        .iter()
        .map(|k| super::trusted_key(k))
        .collect::<Result<Vec<_>>>()?;
    let opts = WorkerOptions {
        url: a.nats,
        auth: Auth::from_env(),
        name,
        max_agents: a.max_agents.max(1),
        state,
        trust: WorkerTrust {
            keys,
            allow_unsigned: a.allow_unsigned,
        },
    };
    let runtime = super::goal::runtime()?;
    runtime.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = tx.send(true);
        });
        worker::run(opts, rx).await
    })?;
    Ok(Outcome::Ok)
}

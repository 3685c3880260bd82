//! `omk guard run` confined: the client and every process it starts held
//! by the kernel to the project, as a goal's task is held to its worktree
//! (see [`crate::sandbox`]), so that even what its hook does not see — a
//! command's own writes, a tool with no hook — cannot change anything
//! outside it.
//!
//! | what | allowed |
//! |---|---|
//! | write | the project; a private `HOME` (with copies of the client's settings and credentials) and `TMPDIR`, removed after the run; `[sandbox] write` |
//! | read | as for a task: system and toolchain folders, the programs run, the client's install, `[sandbox] read` — not the rest of the home, omk's state, cache or keys |
//! | network | the client's model endpoint (through omk's egress proxy, or directly when it is on loopback), `[sandbox] hosts`, and omk's judge on 127.0.0.1 |
//!
//! The client's hook runs inside too, where it can neither read nor forge
//! omk's gates and records: it hands each event to the [`Judge`] omk runs
//! outside. `[sandbox] mode = "off"` runs the client unconfined.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Client;
use super::install::{Confined, InstallError, OneRun, one_run};
use super::judge::Judge;
use crate::gates::GatesConfig;
use crate::sandbox::proxy::{HostsOnly, Proxy};
use crate::sandbox::{Confinement, Profile, ProfileInputs, SandboxError, SandboxMode};

/// Why a confined run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Policy(String),
}

impl omk_core::diagnose::Diagnose for RunError {
    fn kind(&self) -> omk_core::diagnose::Kind {
        match self {
            RunError::Sandbox(e) => e.kind(),
            RunError::Install(e) => e.kind(),
            RunError::Io(_) => omk_core::diagnose::Kind::System,
            RunError::Policy(_) => omk_core::diagnose::Kind::Usage,
        }
    }

    fn help(&self) -> Option<String> {
        match self {
            RunError::Sandbox(e) => e.help(),
            RunError::Install(e) => e.help(),
            RunError::Io(_) => None,
            RunError::Policy(_) => Some(
                "fix the project's .omk/gates.toml (`omk gate check` loads it the same way)".into(),
            ),
        }
    }
}

/// A confined run, ready to start its client; its private folders are
/// removed when it is dropped.
pub struct ConfinedRun {
    pub confinement: Confinement,
    /// The arguments that give the client the hook.
    pub hook: OneRun,
    _judge: Judge,
    _proxy: Option<Proxy>,
    dir: PathBuf,
}

impl Drop for ConfinedRun {
    fn drop(&mut self) {
        // The private home holds copies of the client's credentials.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The state client `client` keeps, for its private home.
fn state(client: Client) -> crate::sandbox::ClientState {
    use crate::agents::clients;
    match client {
        Client::Claude => clients::CLAUDE.state,
        Client::Codex => clients::CODEX.state,
        Client::Kimi => clients::KIMI_WIRE.state,
        Client::Gemini => clients::GEMINI.state,
        Client::OpenCode => clients::OPENCODE.state,
    }
}

/// The profile of a process people start on the project at `root` — a
/// client under `omk guard run`, an MCP server under `omk mcp run` — with
/// `settings`, its private folders in `dir`, and the egress proxy it
/// reaches `settings`' hosts through, when the network is on. Needs a
/// Tokio runtime.
pub async fn on_project(
    root: &Path,
    settings: &crate::sandbox::SandboxSettings,
    dir: &Path,
    commands: Vec<String>,
    client: crate::sandbox::ClientState,
) -> Result<(Profile, Option<Proxy>), RunError> {
    let gate = Arc::new(HostsOnly::new(
        "is not a host this session may reach (its model endpoint, or `[sandbox] hosts` in .omk/gates.toml)",
    ));
    let proxy = if settings.network {
        Some(
            Proxy::start(gate.clone())
                .await
                .map_err(|e| RunError::Io(format!("cannot start the egress proxy: {e}")))?,
        )
    } else {
        None
    };
    let state_dir = crate::dirs::state_dir().ok_or_else(|| {
        RunError::Io("omk has no state directory: set HOME or XDG_STATE_HOME".into())
    })?;
    // A linked worktree's git folder lies outside it: readable there.
    let git_dir = crate::worktree::git_common_dir(root)
        .ok()
        .filter(|g| !g.starts_with(root));
    let private: Vec<PathBuf> = [
        Some(state_dir),
        crate::dirs::cache_dir(),
        crate::dirs::config_dir(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let profile = Profile::derive(&ProfileInputs {
        settings,
        worktree: Some(root),
        read_only_tree: None,
        git_dir,
        task_dir: dir,
        commands,
        client,
        proxy: proxy.as_ref().map(Proxy::addr),
        private,
        env: std::env::vars().collect(),
        deny_read: settings.hide.clone(),
    })?;
    gate.allow(profile.hosts.clone());
    if let Some(p) = &proxy {
        p.set_vault(profile.vault.0.clone());
    }
    Ok((profile, proxy))
}

/// Prepares the confinement of `client` (started as `program`) on the
/// project at `root` with `config`'s `[sandbox]`; `None` when it says
/// `mode = "off"`. `omk` is this omk, which the hook runs. Needs a Tokio
/// runtime.
pub async fn prepare(
    client: Client,
    root: &Path,
    config: &GatesConfig,
    omk: &Path,
    program: &str,
) -> Result<Option<ConfinedRun>, RunError> {
    if config.sandbox.mode == SandboxMode::Off {
        return Ok(None);
    }
    let policy = super::Policy::load(root).map_err(RunError::Policy)?;
    let judge = Judge::start(client, policy)
        .map_err(|e| RunError::Io(format!("cannot start omk's judge: {e}")))?;
    let mut settings = config.sandbox.clone();
    settings
        .connect
        .push(("127.0.0.1".into(), judge.addr().port()));
    let dir = crate::dirs::state_dir()
        .ok_or_else(|| {
            RunError::Io("omk has no state directory: set HOME or XDG_STATE_HOME".into())
        })?
        .join("guard/runs")
        .join(format!(
            "{}-{}",
            client.name(),
            crate::goal::run_id(chrono::Utc::now())
        ));
    let commands = vec![program.to_owned(), omk.display().to_string()];
    let (profile, proxy) = match on_project(root, &settings, &dir, commands, state(client)).await {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let prepared = Confinement::prepare(&profile).and_then(|confinement| {
        let handed = confinement.handed_dir().map(Path::to_owned);
        let confined = handed.as_deref().map(|handed| Confined {
            handed,
            home: &profile.home,
        });
        one_run(client, omk, root, Some(judge.addr()), confined)
            .map(|hook| (confinement, hook))
            .map_err(|e| SandboxError { message: e.message })
    });
    match prepared {
        Ok((confinement, hook)) => Ok(Some(ConfinedRun {
            confinement,
            hook,
            _judge: judge,
            _proxy: proxy,
            dir,
        })),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e.into())
        }
    }
}

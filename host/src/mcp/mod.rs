//! `omk mcp run`: a gateway between an agent and one MCP server. To the
//! client it is the server (on stdio); it starts the real server as its
//! child, or reaches it over streamable HTTP (`--url`), and forwards MCP
//! both ways ([`gateway`]), with three things in between:
//!
//! - every `tools/call` is judged by the project's gates as a `call-tool`
//!   action (`omk:gate@0.3.0`: server, tool, arguments, the digest of the
//!   tool's definition), and the files its arguments name as the reads and
//!   writes they are ([`paths`]); a `resources/read` of a `file://` URI as
//!   a read of that file. A refusal is answered in the server's place, and
//!   the call never reaches it;
//! - each tool's definition is pinned on first sight, and a tool whose
//!   definition later changes is hidden and refused until the user accepts
//!   it ([`pins`]);
//! - the server's process runs confined to the project, like a client
//!   under `omk guard run`, with its own `[mcp.NAME]` grants on top of
//!   `[sandbox]` (see `omk_core::mcp`), so a filesystem server told `/`
//!   cannot reach past the profile even where a gate let a call through.
//!
//! Calls are recorded as a guarded session's are: a session of its own
//! per gateway, whose log holds each call judged, its files, the answer's
//! size ([`crate::proof::events::ToolAnswered`]) and each review of the
//! tools ([`crate::proof::events::ToolsReviewed`]); `omk goal replay
//! --gates` re-judges them. Inside `omk guard run`'s sandbox the gateway
//! hands its calls to the run's judge (`--judge`) and the server shares
//! the run's confinement.

pub mod gateway;
pub mod paths;
pub mod pins;
pub mod rpc;
pub mod upstream;

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use crate::guard::Client;
use crate::sandbox::{Confinement, SandboxMode};

pub use omk_core::mcp::valid_server_name;

/// Why a gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Policy(String),
    #[error(transparent)]
    Confine(#[from] crate::guard::confine::RunError),
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error("cannot start the MCP server `{program}`: {source}")]
    Start {
        program: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl omk_core::diagnose::Diagnose for McpError {
    fn kind(&self) -> omk_core::diagnose::Kind {
        use omk_core::diagnose::Kind;
        match self {
            McpError::Usage(_) | McpError::Policy(_) => Kind::Usage,
            McpError::Confine(e) => e.kind(),
            McpError::Sandbox(e) => e.kind(),
            McpError::Start { .. } | McpError::Io(_) => Kind::System,
        }
    }

    fn help(&self) -> Option<String> {
        match self {
            McpError::Usage(_) => {
                Some("`omk mcp run --name NAME -- COMMAND ARGS…`, or `--url URL`".into())
            }
            McpError::Policy(_) => Some(
                "fix the project's .omk/gates.toml (`omk gate check` loads it the same way)".into(),
            ),
            McpError::Confine(e) => e.help(),
            McpError::Sandbox(e) => e.help(),
            McpError::Start { .. } => Some(
                "check the command in the client's MCP configuration; it runs confined to the project, with a private HOME (grant more with `[mcp.NAME]` in .omk/gates.toml)".into(),
            ),
            McpError::Io(_) => None,
        }
    }
}

/// Where the real server is.
#[derive(Debug, Clone)]
pub enum Server {
    /// A command speaking MCP on stdio.
    Command(Vec<String>),
    /// A streamable-HTTP endpoint.
    Url(String),
}

/// What `omk mcp run` was told.
#[derive(Debug, Clone)]
pub struct Options {
    pub name: String,
    pub server: Server,
    /// The project whose gates judge the calls.
    pub root: PathBuf,
    /// The client served, for the record.
    pub client: Client,
    /// omk's judge outside the sandbox the gateway runs in.
    pub judge: Option<String>,
}

/// Whether this process is confined already (by the sandbox of the run
/// that started it): it has a seccomp filter, which every omk sandbox
/// installs.
fn already_confined() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.strip_prefix("Seccomp:").is_some_and(|v| v.trim() == "2"))
    })
}

/// What holds the server's confinement up while it runs; its private
/// folders are removed when it is dropped.
struct Confined {
    confinement: Confinement,
    _proxy: Option<crate::sandbox::proxy::Proxy>,
    dir: PathBuf,
}

impl Drop for Confined {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the gateway on this process's stdin and stdout until the client
/// closes stdin. Needs a Tokio runtime.
pub async fn run(opts: Options) -> Result<(), McpError> {
    if !valid_server_name(&opts.name) {
        return Err(McpError::Usage(format!(
            "`{}` is not a server name: letters, digits, `-`, `_` and `.`, no `__`, at most 64",
            opts.name.escape_debug()
        )));
    }
    let config = crate::gates::GatesConfig::for_project(&opts.root)
        .map_err(|e| McpError::Policy(e.to_string()))?;
    let judging = match &opts.judge {
        Some(addr) => gateway::Judging::Remote(addr.clone()),
        None => gateway::Judging::Local(gateway::Loading::start(&opts.root, &opts.name)),
    };
    let now = chrono::Utc::now();
    let gw = gateway::Gateway {
        name: opts.name.clone(),
        client: opts.client,
        session: format!("mcp-{}-{}", opts.name, crate::goal::run_id(now)),
        root: opts.root.clone(),
        judging,
        pins: pins::Pins::of_project(&opts.root),
    };
    let (tx, rx) = mpsc::channel(64);
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let stdout = tokio::io::stdout();
    match &opts.server {
        Server::Url(url) => {
            let http = upstream::Http::new(url, tx).map_err(McpError::Usage)?;
            let sender = upstream::Sender::Http(std::sync::Arc::new(http));
            gateway::serve(gw, stdin, stdout, sender, rx, None).await?;
        }
        Server::Command(argv) => {
            let Some((program, args)) = argv.split_first() else {
                return Err(McpError::Usage("no server command after `--`".into()));
            };
            let confine = opts.judge.is_none()
                && config.sandbox.mode != SandboxMode::Off
                && !already_confined();
            let confined = if confine {
                Some(confined(&opts, &config, argv).await?)
            } else {
                None
            };
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args)
                .current_dir(&opts.root)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .process_group(0)
                .kill_on_drop(true);
            let started = match &confined {
                Some(c) => c.confinement.spawn(&mut cmd),
                None => cmd.spawn(),
            };
            let mut child = started.map_err(|source| McpError::Start {
                program: program.clone(),
                source,
            })?;
            let group = child.id().and_then(|id| i32::try_from(id).ok());
            let (Some(server_in), Some(server_out)) = (child.stdin.take(), child.stdout.take())
            else {
                return Err(McpError::Start {
                    program: program.clone(),
                    source: std::io::Error::other("its stdin or stdout is not a pipe"),
                });
            };
            let reader = tokio::spawn(upstream::read_stdout(server_out, tx));
            let sender = upstream::Sender::Stdio(server_in);
            let served = gateway::serve(gw, stdin, stdout, sender, rx, group).await;
            // The client is gone and the server's stdin closed: it has a
            // moment to finish, then its whole group is killed.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(3), child.wait()).await;
            if let Some(g) = group {
                // SAFETY: kill(2) of the server's own process group.
                unsafe {
                    libc::kill(-g, libc::SIGKILL);
                }
            }
            let _ = child.wait().await;
            reader.abort();
            drop(confined);
            served?;
        }
    }
    Ok(())
}

/// The server's confinement: the project's, with `[mcp.NAME]` added.
async fn confined(
    opts: &Options,
    config: &crate::gates::GatesConfig,
    argv: &[String],
) -> Result<Confined, McpError> {
    let state = crate::dirs::state_dir().ok_or_else(|| {
        McpError::Usage("omk has no state directory: set HOME or XDG_STATE_HOME".into())
    })?;
    let dir = state.join("mcp/runs").join(format!(
        "{}-{}",
        opts.name,
        crate::goal::run_id(chrono::Utc::now())
    ));
    let settings = config.mcp_sandbox(&opts.name);
    let commands = vec![shell_words(argv)];
    let prepared = async {
        let (profile, proxy) = crate::guard::confine::on_project(
            &opts.root,
            &settings,
            &dir,
            commands,
            crate::sandbox::ClientState::default(),
        )
        .await?;
        let confinement = Confinement::prepare(&profile)?;
        Ok::<_, McpError>((confinement, proxy))
    }
    .await;
    match prepared {
        Ok((confinement, proxy)) => Ok(Confined {
            confinement,
            _proxy: proxy,
            dir,
        }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

/// `argv` as one command line (the profile reads the programs and files
/// it names).
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| crate::text::sh_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The name a server gets when `--name` is not given: its program's file
/// name (or the URL's host), in the characters a name may hold.
pub fn default_name(server: &Server) -> String {
    let raw = match server {
        Server::Command(argv) => argv
            .first()
            .and_then(|p| Path::new(p).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        Server::Url(u) => url::Url::parse(u)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default(),
    };
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    if name.is_empty() {
        "server".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_without_a_name_is_named_after_its_program_or_host() {
        let cmd = |a: &[&str]| Server::Command(a.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            default_name(&cmd(&["/usr/bin/mcp-server-git", "-r", "."])),
            "mcp-server-git"
        );
        assert_eq!(default_name(&cmd(&["my server__x"])), "my_server_x");
        assert_eq!(default_name(&cmd(&[])), "server");
        assert_eq!(
            default_name(&Server::Url("https://mcp.example.org/mcp".into())),
            "mcp.example.org"
        );
        assert!(valid_server_name(&default_name(&cmd(&["ünï"]))));
    }

    #[test]
    fn a_command_line_is_quoted_where_it_must_be() {
        let argv = ["node", "/a b/index.js", "it's"].map(String::from);
        assert_eq!(shell_words(&argv), r"node '/a b/index.js' 'it'\''s'");
    }
}

//! `omk guard install|uninstall|status` and `omk hook <client>`: the
//! project's gates on agent sessions people run by hand (see
//! [`omk::guard`]).

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::{Outcome, Result};
use omk::guard::{self, Client, install};

/// A client on the command line; the library's [`Client`] knows nothing
/// of clap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientArg {
    /// Claude Code (`.claude/settings.json`, `PreToolUse`).
    Claude,
    /// Codex (`.codex/hooks.json`, `PreToolUse`).
    Codex,
    /// The Kimi CLI (`[[hooks]]` in its `config.toml`, `PreToolUse`).
    Kimi,
    /// The Gemini CLI (`.gemini/settings.json`, `BeforeTool`).
    Gemini,
    /// OpenCode (a plugin in `.opencode/plugins/`, `tool.execute.before`).
    #[value(name = "opencode")]
    OpenCode,
}

impl From<ClientArg> for Client {
    fn from(c: ClientArg) -> Client {
        match c {
            ClientArg::Claude => Client::Claude,
            ClientArg::Codex => Client::Codex,
            ClientArg::Kimi => Client::Kimi,
            ClientArg::Gemini => Client::Gemini,
            ClientArg::OpenCode => Client::OpenCode,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum GuardCommand {
    /// Put `omk hook CLIENT` in the client's hook configuration (the
    /// project's by default), merged into what is there.
    Install(ScopeArgs),
    /// Remove exactly what `install` added: each file back to its bytes
    /// before, or, if it changed since, without omk's entries.
    Uninstall(ScopeArgs),
    /// Show where each client's omk hook is installed, and what would stop
    /// it from running.
    Status(StatusArgs),
    /// Run a client with omk's hook for this run only, its configuration
    /// files untouched: `omk guard run -- claude -p "…"`. Exits with the
    /// client's exit code.
    Run(RunArgs),
    /// Serve as the user's judge of hook calls until idle (started by
    /// `omk hook` itself; see `OMK_JUDGE`).
    #[command(hide = true)]
    Judge,
}

#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// The client whose hooks to change.
    #[arg(value_enum)]
    client: ClientArg,
    /// The project (default: the one holding the current directory).
    #[arg(long, value_name = "DIR", conflicts_with = "user")]
    project: Option<PathBuf>,
    /// The user's own configuration of the client instead: every session
    /// of this user, in any directory, is judged.
    #[arg(long)]
    user: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The project (default: the one holding the current directory).
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Which client it is (default: the program's name, `claude`, `codex`
    /// or `kimi`).
    #[arg(long, value_enum)]
    client: Option<ClientArg>,
    /// The client's program and its arguments, after `--`.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROGRAM"
    )]
    command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HookArgs {
    /// The client whose hook event is on stdin.
    #[arg(value_enum)]
    client: ClientArg,
    /// Hand the event to omk's judge at this address instead of judging it
    /// here: how a client confined by `omk guard run` asks.
    #[arg(long, value_name = "ADDR")]
    judge: Option<String>,
}

pub fn run(cmd: GuardCommand) -> Result<Outcome> {
    match cmd {
        GuardCommand::Install(a) => change(a, true),
        GuardCommand::Uninstall(a) => change(a, false),
        GuardCommand::Status(a) => status(a),
        GuardCommand::Run(a) => run_client(a),
        GuardCommand::Judge => {
            guard::daemon::serve().map_err(anyhow::Error::msg)?;
            Ok(Outcome::Ok)
        }
    }
}

/// The project `dir` (default: the current directory's) belongs to.
pub(super) fn project(dir: Option<PathBuf>) -> Result<PathBuf> {
    let dir = match dir {
        Some(d) => d,
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    if !dir.is_dir() {
        return Err(omk::error::Help {
            message: format!("`{}` is not a directory", dir.display()),
            help: "pass the project's folder with --project DIR".into(),
        }
        .into());
    }
    Ok(guard::project_root(&dir))
}

fn change(a: ScopeArgs, add: bool) -> Result<Outcome> {
    let client = Client::from(a.client);
    let scope = if a.user {
        install::Scope::User
    } else {
        install::Scope::Project(project(a.project)?)
    };
    let changes = if add {
        let omk = std::env::current_exe().context("cannot find this omk's own path")?;
        install::install(client, &scope, &omk)?
    } else {
        install::uninstall(client, &scope)?
    };
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"changes": changes}))?
        );
    } else {
        for c in &changes {
            outln!("{:<16} {}: {}", c.what, c.file.display(), c.detail);
        }
        if add && let install::Scope::Project(root) = &scope {
            outln!(
                "each {} tool call in {} is now judged by its gates; `omk goal list` shows the sessions",
                client.name(),
                root.display()
            );
        }
    }
    Ok(Outcome::Ok)
}

fn status(a: StatusArgs) -> Result<Outcome> {
    let root = project(a.project)?;
    let all = install::status(&root);
    let servers = install::mcp_status(&root);
    let judge = guard::daemon::status();
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"project": root, "hooks": all, "mcp_servers": servers, "judge": judge})
            )?
        );
        return Ok(Outcome::Ok);
    }
    match &judge {
        Some(j) => outln!(
            "judge   running (pid {}, up {} s): {} calls judged, {} projects' gates loaded",
            j.pid,
            j.up_secs,
            j.judged,
            j.projects
        ),
        None if std::env::var(guard::daemon::ENV).is_ok_and(|v| v.trim() == "off") => {
            outln!("judge   off (OMK_JUDGE=off): each hook call judges in its own process")
        }
        None => outln!("judge   not running: the next hook call starts it"),
    }
    for s in &all {
        let state = if s.installed { "installed" } else { "-" };
        outln!(
            "{:<7} {:<8} {:<10} {}",
            s.client,
            s.scope,
            state,
            s.file.display()
        );
        for p in &s.problems {
            outln!("        problem: {p}");
        }
        for w in &s.warnings {
            outln!("        warning: {w}");
        }
    }
    if !servers.is_empty() {
        outln!("\nMCP servers:");
    }
    for s in &servers {
        let state = if s.routed { "routed" } else { "NOT ROUTED" };
        outln!(
            "{:<7} {:<8} {:<12} {:<10} {}",
            s.client,
            s.scope,
            s.name,
            state,
            s.file.display()
        );
        if let Some(why) = &s.why_not {
            outln!("        why: {why}");
        } else if !s.routed {
            outln!(
                "        `omk guard install {}` routes it through `omk mcp run`",
                s.client
            );
        }
    }
    Ok(Outcome::Ok)
}

fn run_client(a: RunArgs) -> Result<Outcome> {
    let (program, args) = a
        .command
        .split_first()
        .context("name the client's program after `--`")?;
    let named = std::path::Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(Client::from_name);
    let Some(client) = a.client.map(Client::from).or(named) else {
        return Err(omk::error::Help {
            message: format!("cannot tell which client `{program}` is"),
            help: "say it with `--client claude|codex|kimi|gemini|opencode`".into(),
        }
        .into());
    };
    let root = project(None)?;
    let already = install::status(&root)
        .into_iter()
        .find(|s| s.client == client.name() && s.installed);
    let omk = std::env::current_exe().context("cannot find this omk's own path")?;
    if let Some(s) = &already {
        eprintln!(
            "omk guard: the {} hook is installed in {}; running the client with it, unconfined",
            client.name(),
            s.file.display()
        );
        let status = wait_for(
            std::process::Command::new(program).args(args).spawn(),
            program,
        )?;
        exit_as(status);
    }
    let config = omk::gates::GatesConfig::for_project(&root)?;
    // Some clients (OpenCode) take their folder from `PWD`: the one omk
    // runs in, whoever started it.
    let here = std::env::current_dir().ok();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start omk's runtime")?;
    runtime.block_on(async {
        let confined = guard::confine::prepare(client, &root, &config, &omk, program).await?;
        let Some(run) = confined else {
            // `[sandbox] mode = "off"`: the hook only.
            let one = install::one_run(client, &omk, &root, None, None)?;
            let child = std::process::Command::new(program)
                .envs(here.iter().map(|d| ("PWD", d)))
                .args(&one.args)
                .args(args)
                .envs(one.env.iter().map(|(k, v)| (k, v)))
                .spawn();
            let status = wait_for(child, program)?;
            drop(one);
            exit_as(status);
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.envs(here.iter().map(|d| ("PWD", d)))
            .args(&run.hook.args)
            .args(args)
            .envs(run.hook.env.iter().map(|(k, v)| (k, v)));
        let mut child = run
            .confinement
            .spawn(&mut cmd)
            .with_context(|| format!("cannot start `{program}` confined"))?;
        ignore_interrupts();
        let status = child
            .wait()
            .await
            .with_context(|| format!("cannot wait for `{program}`"))?;
        drop(run);
        exit_as(status)
    })
}

/// Waits for the client, ignoring the terminal's interrupts, which the
/// client answers itself.
fn wait_for(
    child: std::io::Result<std::process::Child>,
    program: &str,
) -> Result<std::process::ExitStatus> {
    let mut child = child.with_context(|| format!("cannot start `{program}`"))?;
    ignore_interrupts();
    child
        .wait()
        .with_context(|| format!("cannot wait for `{program}`"))
}

/// Exits as the client did (128 + the signal that ended it).
fn exit_as(status: std::process::ExitStatus) -> ! {
    use std::os::unix::process::ExitStatusExt;
    std::process::exit(
        status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
    )
}

/// Ignores SIGINT and SIGQUIT in omk (not in the client, started before).
fn ignore_interrupts() {
    // SAFETY: setting a signal's disposition to SIG_IGN is async-signal
    // safe and touches no memory of ours.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
}

/// `omk hook <client>`: answers one hook call (see [`omk::guard::hook`]).
/// Whatever happens, it answers: an event it cannot read is refused.
pub fn hook(a: HookArgs) -> Result<Outcome> {
    let client = Client::from(a.client);
    let mut input = Vec::new();
    let read = std::io::stdin()
        .take(guard::MAX_EVENT_BYTES + 1)
        .read_to_end(&mut input);
    let cwd = std::env::current_dir().unwrap_or_default();
    let reply = match read {
        Ok(_) if input.len() as u64 > guard::MAX_EVENT_BYTES => guard::refuse(
            client,
            "the hook's event is larger than omk reads (16 MiB)".into(),
        ),
        Ok(_) => match &a.judge {
            Some(addr) => guard::judge::ask(client, addr, &input),
            None => guard::daemon::hook(client, &input, &cwd),
        },
        Err(e) => guard::refuse(client, format!("cannot read the hook's event: {e}")),
    };
    let _ = std::io::stdout().write_all(reply.stdout.as_bytes());
    let _ = std::io::stderr().write_all(reply.stderr.as_bytes());
    std::process::exit(i32::from(reply.code));
}

//! The `omk` command line: parses arguments, calls the library, prints.
//!
//! Exit codes: 0 ok, 1 rejected, then one per kind of error (2 usage,
//! 3 integrity, 4 system, 5 internal; see [`omk::error`]). Errors print as
//! `error: …`, their causes, and a `help:` line with the fix.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` for what a command prints (see [`out`]).
macro_rules! outln {
    () => {
        $crate::cli::out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for what a command prints (see [`out`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out(format_args!($($arg)*))
    };
}

mod approvals;
mod bundle;
mod demo;
mod doctor;
mod format;
mod gate;
mod goal;
mod guard;
mod mcp;
mod proof;
mod serve;
mod shell;
mod worker;

/// Proof-backed engineering runs by coding agents, every decision taken by
/// sandboxed WebAssembly gates.
#[derive(Debug, Parser)]
#[command(name = "omk", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole goal on a throwaway project, with the embedded gates and
    /// the scripted agent, in seconds.
    Demo(demo::DemoArgs),
    /// Create goals, submit waves of proposed tasks, read their state and log.
    #[command(subcommand)]
    Goal(goal::GoalCommand),
    /// List the actions that wait for a person: each ask a gate made, with
    /// its id, the exact action and the gate's reason.
    Approvals(approvals::ApprovalsArgs),
    /// Answer an ask: approve (or `--deny`) the exact action it names.
    Approve(approvals::ApproveArgs),
    /// Serve a live page of every goal and guarded session on this
    /// machine, where what waits for a person is answered.
    Serve(serve::ServeArgs),
    /// Judge with gates, and look inside gate components.
    #[command(subcommand)]
    Gate(gate::GateCommand),
    /// Judge the sessions you run by hand with Claude Code, Codex or the
    /// Kimi CLI by the project's gates, through their hooks.
    #[command(subcommand)]
    Guard(guard::GuardCommand),
    /// Answer one PreToolUse hook call of a client (what `omk guard
    /// install` puts in its configuration): the event on stdin; exit 0
    /// allows, exit 2 refuses with the reason on stderr.
    Hook(guard::HookArgs),
    /// Judge, pin and confine the MCP servers agents use: `omk mcp run
    /// --name NAME -- COMMAND` stands where the server did.
    #[command(subcommand)]
    Mcp(mcp::McpCommand),
    /// Run tasks for coordinators on other machines (`goal execute
    /// --dispatch`), taken from a NATS JetStream work queue.
    Worker(worker::WorkerArgs),
    /// Sign, verify, install and distribute gate bundles.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Which agents, gate toolchains and directories are usable here, and
    /// why not.
    Doctor(doctor::DoctorArgs),
    /// Print the shell completion script (`omk completions bash >
    /// ~/.local/share/bash-completion/completions/omk`).
    Completions(shell::CompletionsArgs),
    /// Print the man page, or write every page into a folder (`--out`).
    Man(shell::ManArgs),
}

impl Command {
    /// Whether the command runs tasks (and so their workspaces) or
    /// confined clients, or says whether it could (`doctor`).
    fn runs_tasks(&self) -> bool {
        matches!(
            self,
            Command::Demo(_)
                | Command::Doctor(_)
                | Command::Worker(_)
                | Command::Guard(guard::GuardCommand::Run(_))
                | Command::Mcp(mcp::McpCommand::Run(_))
                | Command::Goal(goal::GoalCommand::Run(_) | goal::GoalCommand::Execute(_))
        )
    }
}

/// What a command concluded, as an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything accepted or done (exit 0).
    Ok,
    /// Something was rejected or failed (exit 1).
    Rejected,
}

/// A command's result: an error's exit code is its kind's
/// ([`omk::error::diagnose`]); a rejection is an [`Outcome`], not an error.
pub type Result<T> = anyhow::Result<T>;

/// Runs the `omk` binary.
pub fn main() -> ExitCode {
    init_tracing();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // clap prints help/version to stdout (exit 0), usage errors to
            // stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    note_bugs();
    if cli.command.runs_tasks() {
        // While this process has one thread: tasks' copy-on-write
        // workspaces are mounted in a namespace of its own, where each
        // confined run gets its own network and mount namespaces.
        omk::worktree::overlay::enter();
    }
    let dispatch = || match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Goal(cmd) => goal::run(cmd),
        Command::Approvals(a) => approvals::list(a),
        Command::Approve(a) => approvals::approve(a),
        Command::Serve(a) => serve::run(a),
        Command::Gate(cmd) => gate::run(cmd),
        Command::Guard(cmd) => guard::run(cmd),
        Command::Hook(a) => guard::hook(a),
        Command::Mcp(cmd) => mcp::run(cmd),
        Command::Bundle(cmd) => bundle::run(cmd),
        Command::Worker(a) => worker::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Completions(a) => shell::completions(a),
        Command::Man(a) => shell::man(a),
    };
    // A panic is a bug: the hook has printed it; the exit code says so.
    let Ok(result) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(dispatch)) else {
        return ExitCode::from(omk::error::Kind::Internal.exit_code());
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Rejected) => ExitCode::from(omk::error::REJECTED_EXIT),
        Err(e) => {
            report(&e, wants_json());
            ExitCode::from(omk::error::diagnose(e.as_ref()).kind.exit_code())
        }
    }
}

/// Writes a command's output to stdout. When the reader has gone (`omk goal
/// events ID | head -1`), the process ends quietly with exit 0, as `cat`
/// and ripgrep do, instead of panicking; any other write error is exit 2.
pub fn out(args: std::fmt::Arguments) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(2);
    }
}

/// Adds to every panic's message that it is a bug in omk, and how to
/// report it. State stays consistent: every write is atomic and the log is
/// append-only, so the goal resumes.
fn note_bugs() {
    let print_panic = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        print_panic(info);
        eprintln!(
            "error: this is a bug in omk {} (exit 5); please report it with the command you ran. \
             A goal's state is intact: every write omk makes is atomic",
            env!("CARGO_PKG_VERSION")
        );
    }));
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OMK_LOG")
        // The ACP crate warns of every error omk answers an agent with
        // (each refusal); those are in the event log already.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,agent_client_protocol=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Whether the command line asked for JSON (`--json`, `--format json`):
/// then an error is JSON too.
fn wants_json() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter().enumerate().any(|(i, a)| {
        a == "--json"
            || a == "--format=json"
            || (a == "--format" && args.get(i + 1).is_some_and(|v| v == "json"))
    })
}

/// Prints an error, its causes and the first `help:` any of them offers;
/// under `--json`, as one JSON object on stderr:
/// `{"error": …, "causes": […], "help": …, "kind": "usage", "exit": 2}`.
pub fn report(err: &anyhow::Error, json: bool) {
    let d = omk::error::diagnose(err.as_ref());
    if json {
        let causes: Vec<String> = err.chain().skip(1).map(|c| c.to_string()).collect();
        let value = serde_json::json!({
            "error": err.to_string(),
            "causes": causes,
            "help": d.help,
            "kind": d.kind.as_str(),
            "exit": d.kind.exit_code(),
        });
        eprintln!("{value}");
        return;
    }
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    if let Some(help) = d.help {
        eprintln!("help: {help}");
    }
}

/// Shorthand for an error with a `help:` line.
pub fn with_help(message: impl Into<String>, help: impl Into<String>) -> anyhow::Error {
    omk::error::Help {
        message: message.into(),
        help: help.into(),
    }
    .into()
}

/// A goal (`latest` resolved) and its task graph, for reading.
pub fn load(
    store: &omk::goal::GoalStore,
    id: &str,
) -> Result<(omk::goal::Goal, omk::graph::TaskGraph)> {
    let id = store.resolve(id)?;
    let goal = store.load(&id)?;
    let graph = omk::graph::TaskGraph::load(&store.dir(&id), &id)?;
    Ok((goal, graph))
}

/// Reads a JSON file; errors name the file, line and column.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path, what: &str) -> Result<T> {
    let text = read_input(path, what)?;
    let shown = if path == std::path::Path::new("-") {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    };
    serde_json::from_str(&text).map_err(|e| {
        // serde_json ends its message with the position, given first here.
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m);
        with_help(
            format!("`{shown}`:{}:{}: {message}", e.line(), e.column()),
            format!("the {what} file must be JSON; see the examples/ folder"),
        )
    })
}

/// The text of the `what` file at `path`, or of stdin for `-`.
pub fn read_input(path: &std::path::Path, what: &str) -> Result<String> {
    if path == std::path::Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
            with_help(
                format!("cannot read the {what} from stdin: {e}"),
                "pipe the file in, or give its path instead of `-`",
            )
        })?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|e| {
        with_help(
            format!("cannot read {what} file `{}`: {e}", path.display()),
            "check the path; `-` reads stdin",
        )
    })
}

/// The proposals in a JSON file (`-`: stdin): one object or an array.
pub fn read_proposals(path: &std::path::Path) -> Result<Vec<omk_gate_sdk::TaskProposal>> {
    let value: serde_json::Value = read_json(path, "proposals")?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        one @ serde_json::Value::Object(_) => vec![one],
        _ => {
            return Err(with_help(
                format!(
                    "`{}` holds neither a proposal object nor an array of them",
                    path.display()
                ),
                "write `{\"id\": \"…\", \"write_set\": […], \"budget_secs\": 60, …}` or a list of such objects",
            ));
        }
    };
    if items.is_empty() {
        return Err(with_help(
            format!("`{}` holds no proposals", path.display()),
            "add at least one proposal to the array",
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value(v).map_err(|e| {
                with_help(
                    format!("`{}`: proposal {} is invalid: {e}", path.display(), i + 1),
                    "proposal fields are id, title, description, dependencies, read_set, write_set, \
                     risk, acceptance, budget_secs, priority",
                )
            })
        })
        .collect()
}

/// A key given on the command line: `ed25519:<hex>`, or a `.pub` file.
pub fn trusted_key(k: &str) -> Result<omk_signing::PublicKey> {
    let text = if k.starts_with("ed25519:") {
        k.to_owned()
    } else {
        std::fs::read_to_string(k).map_err(|e| {
            with_help(
                format!("cannot read key `{k}`: {e}"),
                "pass `ed25519:<hex>` or a .pub file",
            )
        })?
    };
    omk_signing::PublicKey::parse(text.lines().next().unwrap_or_default())
        .map_err(|e| with_help(e, "pass `ed25519:<hex>` or a .pub file"))
}

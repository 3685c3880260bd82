//! The `omk` command line: parses arguments, calls the library, prints.
//!
//! Exit codes: 0 ok, 1 rejected or failed, 2 usage or load error. Errors
//! print as `error: …`, their causes, and a `help:` line with the fix.

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

mod bundle;
mod demo;
mod doctor;
mod gate;
mod goal;
mod proof;

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
    /// Judge with gates, and look inside gate components.
    #[command(subcommand)]
    Gate(gate::GateCommand),
    /// Sign, verify, install and distribute gate bundles.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Which agents, gate toolchains and directories are usable here, and
    /// why not.
    Doctor(doctor::DoctorArgs),
}

/// What a command concluded, as an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything accepted or done (exit 0).
    Ok,
    /// Something was rejected or failed (exit 1).
    Rejected,
}

/// An error at the CLI edge that is the user's to fix (exit 2), as opposed
/// to a rejection (exit 1).
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
    let result = match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Goal(cmd) => goal::run(cmd),
        Command::Gate(cmd) => gate::run(cmd),
        Command::Bundle(cmd) => bundle::run(cmd),
        Command::Doctor(a) => doctor::run(a),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Rejected) => ExitCode::from(1),
        Err(e) => {
            report(&e);
            ExitCode::from(2)
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

/// Prints an error, its causes and the first `help:` any of them offers.
pub fn report(err: &anyhow::Error) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    if let Some(help) = help_of(err) {
        eprintln!("help: {help}");
    }
}

fn help_of(err: &anyhow::Error) -> Option<String> {
    use crate::gates::{ConfigError, GatesError, LoadError};
    use crate::goal::{BudgetError, GoalError, StoreError};
    err.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<GoalError>() {
            e.help()
        } else if let Some(e) = cause.downcast_ref::<StoreError>() {
            e.help()
        } else if let Some(e) = cause.downcast_ref::<crate::gates::bundle::BundleError>() {
            e.help()
        } else if let Some(e) = cause.downcast_ref::<crate::agents::AgentError>() {
            e.help.clone()
        } else if let Some(e) = cause.downcast_ref::<BudgetError>() {
            Some(e.accepted.to_owned())
        } else if let Some(e) = cause.downcast_ref::<GatesError>() {
            e.help()
        } else if let Some(e) = cause.downcast_ref::<LoadError>() {
            e.help()
        } else if let Some(e) = cause.downcast_ref::<ConfigError>() {
            e.help()
        } else {
            cause.downcast_ref::<Help>().map(|h| h.help.clone())
        }
    })
}

/// An error message with its fix, for errors found at the CLI edge.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Help {
    pub message: String,
    pub help: String,
}

/// Shorthand for an error with a `help:` line.
pub fn with_help(message: impl Into<String>, help: impl Into<String>) -> anyhow::Error {
    Help {
        message: message.into(),
        help: help.into(),
    }
    .into()
}

/// Reads a JSON file; errors name the file, line and column.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path, what: &str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        with_help(
            format!("cannot read {what} file `{}`: {e}", path.display()),
            "check the path",
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        with_help(
            format!("`{}`:{}:{}: {e}", path.display(), e.line(), e.column()),
            format!("the {what} file must be JSON; see the examples/ folder"),
        )
    })
}

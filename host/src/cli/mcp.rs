//! `omk mcp run|pins|accept`: the gateway between agents and their MCP
//! servers, and the pinned tool definitions (see [`omk::mcp`]).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use super::guard::{ClientArg, project};
use super::{Outcome, Result};
use omk::guard::Client;
use omk::mcp::{self, pins::Pins};

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// Stand between a client and one MCP server: the client starts
    /// `omk mcp run --name NAME -- COMMAND ARGS…` where it started the
    /// server. Every tool call is judged by the project's gates, each
    /// tool's definition pinned, and the server confined to the project.
    Run(RunArgs),
    /// List each server's pinned tools, and the tools whose definition
    /// changed since (hidden until accepted), with what changed.
    Pins(PinsArgs),
    /// Accept the new definition of a server's tool: the gateway lists and
    /// lets it be called again.
    Accept(AcceptArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The server's name, as the client calls it (its tools are
    /// `mcp__NAME__TOOL`; `[mcp.NAME]` in .omk/gates.toml grants it more);
    /// default: the program's name.
    #[arg(long)]
    name: Option<String>,
    /// The project whose gates judge the calls (default: the one holding
    /// the current directory).
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    /// The client it serves, for the record (default: claude).
    #[arg(long, value_enum, default_value = "claude")]
    client: ClientArg,
    /// Hand each call to omk's judge at this address (how a gateway inside
    /// `omk guard run`'s sandbox asks).
    #[arg(long, value_name = "ADDR")]
    judge: Option<String>,
    /// Reach a streamable-HTTP server at this URL instead of starting one.
    #[arg(long, value_name = "URL", conflicts_with = "command")]
    url: Option<String>,
    /// The server's command and its arguments, after `--`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND",
        required_unless_present = "url"
    )]
    command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PinsArgs {
    /// The project (default: the one holding the current directory).
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct AcceptArgs {
    /// The server, as `omk mcp pins` names it.
    server: String,
    /// The tool whose new definition to accept.
    tool: String,
    /// The project (default: the one holding the current directory).
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: McpCommand) -> Result<Outcome> {
    match cmd {
        McpCommand::Run(a) => gateway(a),
        McpCommand::Pins(a) => pins(a),
        McpCommand::Accept(a) => accept(a),
    }
}

fn gateway(a: RunArgs) -> Result<Outcome> {
    let server = match a.url {
        Some(u) => mcp::Server::Url(u),
        None => mcp::Server::Command(a.command),
    };
    let opts = mcp::Options {
        name: a.name.unwrap_or_else(|| mcp::default_name(&server)),
        server,
        root: project(a.project)?,
        client: Client::from(a.client),
        judge: a.judge,
    };
    let name = opts.name.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start omk's runtime")?;
    runtime
        .block_on(mcp::run(opts))
        .with_context(|| format!("omk mcp: the gateway of `{name}` stopped"))?;
    // Whatever the server left running in the background has been killed;
    // blocking reads of stdin may still hold the runtime.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(Outcome::Ok)
}

fn pins(a: PinsArgs) -> Result<Outcome> {
    let root = project(a.project)?;
    let pins = Pins::of_project(&root);
    let file = pins.read()?;
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"file": pins.path(), "servers": file.servers}))?
        );
        return Ok(Outcome::Ok);
    }
    if file.servers.is_empty() {
        outln!(
            "no tool is pinned in {} yet: `omk mcp run` pins each tool the first time it lists it",
            pins.path().display()
        );
        return Ok(Outcome::Ok);
    }
    for (server, p) in &file.servers {
        outln!("{server}");
        for (tool, pin) in &p.tools {
            let state = if p.changed.contains_key(tool) {
                "CHANGED"
            } else {
                "pinned"
            };
            outln!(
                "  {state:<8} {tool:<28} {} (since {})",
                short(&pin.digest),
                pin.seen.format("%Y-%m-%d %H:%M")
            );
        }
        for (tool, new) in &p.changed {
            let Some(old) = p.tools.get(tool) else {
                continue;
            };
            outln!(
                "  {tool}: a new definition, seen {}, waits for `omk mcp accept {server} {tool}`",
                new.seen.format("%Y-%m-%d %H:%M")
            );
            for (field, label) in [
                ("description", "description"),
                ("inputSchema", "input schema"),
            ] {
                if old.definition[field] != new.definition[field] {
                    outln!("    {label} was: {}", shown(&old.definition[field]));
                    outln!("    {label} now: {}", shown(&new.definition[field]));
                }
            }
        }
    }
    Ok(Outcome::Ok)
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => omk::text::clip(&s.escape_debug().to_string(), 400),
        other => omk::text::clip(&other.to_string(), 400),
    }
}

fn accept(a: AcceptArgs) -> Result<Outcome> {
    let root = project(a.project)?;
    let pin = Pins::of_project(&root).accept(&a.server, &a.tool)?;
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"server": a.server, "tool": a.tool, "pinned": pin})
            )?
        );
    } else {
        outln!(
            "accepted: `{}`'s tool `{}` is pinned at {}; the gateway lists it again from its next tools/list",
            a.server,
            a.tool,
            short(&pin.digest)
        );
    }
    Ok(Outcome::Ok)
}

//! omk-core: what omk keeps on disk and reads from users, agents and
//! bundles — the data half of omk, with no wasmtime, no async runtime and
//! no agents, so that everything that parses untrusted input can be built,
//! tested and fuzzed on its own in seconds.
//!
//! - [`atomic`]: atomic file writes.
//! - [`graph`]: the task graph of a goal (`task-graph.json`), and
//!   [`lifecycle`], the one place a task's status changes.
//! - [`plan`]: dispatch plans, the waves of proposed tasks.
//! - [`log`]: the append-only, hash-chained event log (`events.jsonl`).
//! - [`config`]: the project's gate configuration (`.omk/gates.toml`), with
//!   the [`limits`] every gate call runs under.
//! - [`sandbox`]: `[sandbox]`, how far a task's processes may reach.
//! - [`mcp`]: `[mcp.NAME]`, what an MCP server may reach, and which tool
//!   arguments name files.
//! - [`bundle`]: signed gate bundles — the format, signatures and trust.
//! - [`std_bundle`]: the standard gates, embedded.
//! - [`diagnose`]: the kinds of failure, their exit codes and `help:` lines.
//!
//! The `omk` crate re-exports each module where it has always been
//! (`omk::graph`, `omk::proof::log`, `omk::gates::GatesConfig`, …).

pub mod approvals;
pub mod atomic;
pub mod bundle;
pub mod config;
pub mod diagnose;
pub mod graph;
pub mod lifecycle;
pub mod limits;
pub mod log;
pub mod mcp;
pub mod plan;
pub mod sandbox;
pub mod std_bundle;

use sha2::{Digest, Sha256};

/// The `omk:gate` WIT versions this omk loads, newest first.
pub const SUPPORTED_WIT_VERSIONS: &[&str] = &["0.3.0", "0.2.0", "0.1.0"];

/// The sha256 of `bytes`, as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

//! omk: proof-backed engineering runs by coding agents, where every decision
//! that lets work happen is taken by sandboxed WebAssembly gates.
//!
//! The `omk` binary (`src/main.rs`, `src/cli/`) is a thin layer over this
//! library: it parses arguments and prints. Data flows
//! one way: CLI → goal → wave → gates/agents → proof. Modules:
//!
//! - [`goal`]: goals, their budgets, and the store that keeps them.
//! - [`graph`]: the task graph of a goal.
//! - [`wave`]: dispatch plans judged by omk's checks and the gates, and the
//!   execution of admitted tasks.
//! - [`agents`]: the agent backends that do the tasks' work.
//! - [`command`]: the command lines agents run, parsed into what they run
//!   (`omk:gate@0.3.0`'s parsed command).
//! - [`guard`]: the project's gates on sessions people run by hand, through
//!   their clients' hooks.
//! - [`mcp`]: `omk mcp run`, the gateway that judges, pins and confines an
//!   agent's MCP servers.
//! - [`sandbox`]: the kernel confinement of every process a task starts.
//! - [`worktree`]: one git worktree per task.
//! - [`dispatch`]: tasks run by `omk worker`s on other machines, through
//!   NATS JetStream.
//! - [`gates`]: the wasmtime host that loads gate components, runs every
//!   decision under limits, and fails closed.
//! - [`proof`]: the hash-chained event log; [`approvals`]: asking a
//!   person, and the answers bound to the exact action.
//! - [`atomic`]: atomic file writes; [`dirs`]: where omk keeps its files;
//!   [`keys`]: the machine's keys (cache MAC, log signing); [`lockfile`]:
//!   locks held across processes for one change.
//! - [`error`]: the kind of every failure, its exit code and its fix.
//!
//! The task graph, dispatch plans, the event log, `gates.toml` and the
//! bundle format live in the `omk-core` crate, which parses everything
//! untrusted without wasmtime; they are re-exported here where they have
//! always been.

pub mod agents;
pub mod approvals;
pub mod author;
pub mod command;
pub mod demo;
pub mod dirs;
pub mod dispatch;
pub mod error;
pub mod gates;
pub mod goal;
pub mod guard;
pub mod keys;
pub mod lockfile;
pub mod mcp;
pub mod proof;
pub mod sandbox;
pub mod serve;
pub mod text;
pub mod wave;
pub mod worktree;

pub use omk_core::{atomic, graph};
pub use omk_gate_sdk as sdk;

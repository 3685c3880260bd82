//! omk: proof-backed engineering runs by coding agents, where every decision
//! that lets work happen is taken by sandboxed WebAssembly gates.
//!
//! The `omk` binary is a thin layer ([`cli`]) over this library. Data flows
//! one way: CLI → goal → wave → gates/agents → proof. Modules:
//!
//! - [`gates`]: the wasmtime host that loads gate components, runs every
//!   decision under limits, and fails closed.
//! - [`dirs`]: where omk keeps its cache and state (XDG base directories).
//! - [`cli`]: argument parsing and printing; no logic of its own.

pub mod cli;
pub mod dirs;
pub mod gates;

pub use omk_gate_sdk as sdk;

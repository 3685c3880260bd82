//! The gate host: sandboxed WebAssembly components that take every decision.
//!
//! A gate is a component exporting `omk:gate/policy` (see `wit/`). This
//! module loads gates, runs each decision in a fresh instance under limits,
//! and turns anything a gate does wrong into a fail-closed rejection.
//!
//! - [`GateEngine`]: the process's wasmtime engine and compiled-component cache.
//! - [`LoadedGate`]: one component, checked against the contract.
//! - [`GateSet`]: a project's gates in order; judges proposals, actions and
//!   outcomes into a [`Verdict`].
//! - [`GatesConfig`]: the project file `.omk/gates.toml`.
//! - [`Limits`]: fuel, wall time, memory and result size per call.
//! - [`Fault`]: why a gate failed to decide (`gate.fault.*`).
//! - [`std_bundle`]: the embedded standard gates.
//! - [`bundle`]: signed gate bundles, verification, trust, OCI.
//! - [`inspect`]: what a component is, for `omk gate inspect`.
//!
//! ```no_run
//! use omk::gates::GateSet;
//! use omk::sdk::{GoalContext, TaskProposal};
//!
//! let gates = GateSet::for_project(std::path::Path::new(".")).unwrap();
//! let p: TaskProposal = serde_json::from_str(r#"{"id":"a","write_set":["/etc"],"budget_secs":60}"#).unwrap();
//! let verdict = gates.judge_proposal(&GoalContext::default(), &p);
//! assert!(!verdict.accepted);
//! ```

mod bindings;
pub mod bundle;
mod cache;
pub mod cases;
mod engine;
mod fault;
mod gate;
pub mod inspect;
mod limits;
mod load;
mod set;
pub mod wasi;

use omk_core::config;
pub use omk_core::std_bundle;

pub use bindings::SUPPORTED as SUPPORTED_WIT_VERSIONS;
pub use cache::{CacheDirs, ComponentCache};
pub use config::{
    BUNDLES_DIR, BundleSpec, CONFIG_PATH, ConfigError, GateSource, GateSpec, GatesConfig, Mode,
};
pub use engine::{EngineError, EngineStats, GateEngine};
pub use fault::{Fault, FaultCause};
pub use gate::{Judged, LoadedGate, Reused, sha256_hex};
pub use limits::{LimitSettings, Limits};
pub use load::LoadError;
pub(crate) use load::valid_name;
pub use omk_core::bundle::BundleRef;
pub use set::{Blocked, GateDecision, GateEntry, GateSet, GatesError, Verdict};

//! The omk gate SDK: write a gate as one Rust `impl`.
//!
//! A gate is a [`Policy`]: a description of itself plus up to three checks,
//! each defaulting to accept. The same code runs natively (unit tests,
//! benchmarks, omk's own host) and, through [`export_gate!`], as a
//! WebAssembly component implementing `omk:gate/policy@0.3.0`.
//!
//! Gates built with an SDK of the 0.1 or 0.2 series export `omk:gate@0.1.0`
//! or `0.2.0`; omk keeps loading them (through adapters: a 0.1 gate is not
//! asked about reads and its settings are checked by a probe decision; an
//! older gate sees a tool call as `other`, gets no parsed command, and
//! never asks). To move a gate to 0.3.0, build it with this SDK: what
//! compiled before compiles still, and [`AgentAction::commands`],
//! [`AgentAction::tool`] and [`Decision::ask`] are there to use.
//!
//! ```
//! use omk_gate_sdk::{Decision, GateInfo, GoalContext, Policy, Stage, TaskProposal};
//!
//! struct NoHighRisk;
//!
//! impl Policy for NoHighRisk {
//!     fn info() -> GateInfo {
//!         GateInfo {
//!             name: "no-high-risk".into(),
//!             version: "0.1.0".into(),
//!             stages: vec![Stage::Proposal],
//!             description: "refuses high-risk tasks".into(),
//!         }
//!     }
//!
//!     fn check_proposal(_: &GoalContext, p: &TaskProposal, _config: &str) -> Decision {
//!         if p.risk == "high" {
//!             return Decision::reject("no-high-risk.refused", "high-risk tasks need a human");
//!         }
//!         Decision::Accept
//!     }
//! }
//!
//! // In the gate's crate, built for `wasm32-unknown-unknown`:
//! // omk_gate_sdk::export_gate!(NoHighRisk);
//! ```
//!
//! Key items: [`Policy`], the contract's [types](types), [`config`] for
//! reading a gate's settings, [`paths`] for the path rules omk's std gates
//! use.

pub mod config;
pub mod lazy;
pub mod paths;
pub mod types;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod component;

pub use lazy::Lazy;
pub use types::*;

/// The `omk:gate` WIT package version this SDK implements.
pub const WIT_VERSION: &str = "0.3.0";

/// A gate: pure functions from the decision's inputs to a [`Decision`].
///
/// Every check defaults to [`Decision::Accept`]; implement the stages listed
/// in [`GateInfo::stages`]. omk does not call the others.
pub trait Policy {
    /// The gate's name, version, stages and one-line description.
    fn info() -> GateInfo;

    /// Can this gate work with `config` (its settings, a JSON object)?
    /// Called once, when omk loads the gate: an error stops the load with
    /// `.omk/gates.toml`'s line. A gate with settings implements it with
    /// [`config::check`]; the default accepts any.
    fn validate_config(config: &str) -> Result<(), Rejection> {
        let _ = config;
        Ok(())
    }

    /// May `proposal` be admitted into the goal?
    fn check_proposal(ctx: &GoalContext, proposal: &TaskProposal, config: &str) -> Decision {
        let _ = (ctx, proposal, config);
        Decision::Accept
    }

    /// May the agent working on `task` take `action` now? [`Decision::Ask`]
    /// lets it through only once a person approves.
    fn check_action(
        ctx: &GoalContext,
        task: &TaskProposal,
        action: &AgentAction,
        config: &str,
    ) -> Decision {
        let _ = (ctx, task, action, config);
        Decision::Accept
    }

    /// Is the finished `task`, with what it produced, acceptable?
    fn check_outcome(
        ctx: &GoalContext,
        task: &TaskProposal,
        outcome: &TaskOutcome,
        config: &str,
    ) -> Decision {
        let _ = (ctx, task, outcome, config);
        Decision::Accept
    }
}

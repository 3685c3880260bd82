//! Gate faults: what happened when a gate could not give a valid decision.
//!
//! A fault never reaches the user as an error. It becomes a rejection with
//! code `gate.fault.<cause>` naming the gate, so that a broken, hostile or
//! starved gate fails closed:
//!
//! | cause | when |
//! |---|---|
//! | `trap` | the gate trapped (panic, `unreachable`, out-of-bounds, stack overflow) |
//! | `fuel` | the call used all its fuel |
//! | `timeout` | the call ran past its wall-clock deadline |
//! | `memory` | the gate tried to grow memory or a table past its cap |
//! | `oversize` | the decision's strings were larger than the result cap |
//! | `malformed` | the result could not be read (invalid UTF-8, bad discriminant) or broke the contract (bad code, empty reason) |
//! | `instantiate` | a fresh instance could not be created |

use std::fmt;

use omk_gate_sdk::{Decision, Stage};
use wasmtime::Trap;

use super::limits::{LimitHit, Limits};
pub(crate) use crate::text::clip;

/// Why a gate failed to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultCause {
    Trap,
    Fuel,
    Timeout,
    Memory,
    Oversize,
    Malformed,
    Instantiate,
}

impl FaultCause {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultCause::Trap => "trap",
            FaultCause::Fuel => "fuel",
            FaultCause::Timeout => "timeout",
            FaultCause::Memory => "memory",
            FaultCause::Oversize => "oversize",
            FaultCause::Malformed => "malformed",
            FaultCause::Instantiate => "instantiate",
        }
    }
}

/// A gate's failure to decide, with a one-line detail for people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fault {
    pub cause: FaultCause,
    pub detail: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.detail)
    }
}

/// Longest fault detail kept, in characters.
const MAX_DETAIL_CHARS: usize = 300;

impl Fault {
    pub fn new(cause: FaultCause, detail: impl Into<String>) -> Self {
        Fault {
            cause,
            detail: clip(&detail.into(), MAX_DETAIL_CHARS),
        }
    }

    /// The rejection code, `gate.fault.<cause>`.
    pub fn code(&self) -> String {
        format!("gate.fault.{}", self.cause.as_str())
    }

    /// The fail-closed decision this fault stands for.
    pub fn to_decision(&self, gate: &str, stage: Stage) -> Decision {
        Decision::reject(
            self.code(),
            format!(
                "gate `{gate}` failed at the {stage} stage, so the decision fails closed: {}",
                self.detail
            ),
        )
    }

    /// Classifies an error returned by instantiating or calling a gate.
    pub(crate) fn classify(
        err: &wasmtime::Error,
        hit: Option<&LimitHit>,
        limits: &Limits,
    ) -> Fault {
        if let Some(hit) = hit {
            return Fault::new(FaultCause::Memory, hit.to_string());
        }
        if let Some(trap) = err.downcast_ref::<Trap>() {
            return match trap {
                Trap::OutOfFuel => Fault::new(
                    FaultCause::Fuel,
                    format!("used all {} units of fuel", limits.fuel),
                ),
                Trap::Interrupt => Fault::new(
                    FaultCause::Timeout,
                    format!("ran past its {} ms deadline", limits.timeout_ms),
                ),
                other => Fault::new(FaultCause::Trap, format!("trapped: {other}")),
            };
        }
        Fault::new(
            FaultCause::Malformed,
            format!("unreadable result: {}", one_line(err)),
        )
    }
}

/// An error and its causes on one line.
pub(crate) fn one_line(err: &wasmtime::Error) -> String {
    let mut out = String::new();
    for (i, cause) in err.chain().enumerate() {
        if i > 0 {
            out.push_str(": ");
        }
        out.push_str(&cause.to_string());
    }
    out.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let f = Fault::new(FaultCause::Fuel, "x");
        assert_eq!(f.code(), "gate.fault.fuel");
        let d = f.to_decision("budget", Stage::Proposal);
        assert_eq!(d.rejection().unwrap().code, "gate.fault.fuel");
        assert!(d.rejection().unwrap().reason.contains("`budget`"));
    }
}

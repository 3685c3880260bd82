//! One loaded gate: a component checked against the contract, ready to
//! judge, each decision in a fresh instance under its limits.
//!
//! [`LoadedGate::load`] refuses, with an error naming the file, what it
//! expected and what it found: bytes that are not wasm, a core module, an
//! invalid component, a component that does not export
//! `omk:gate/policy`, an unsupported WIT version, a missing or mistyped
//! function, and any import (the std host links no capabilities).
//!
//! Calls never fail: a gate that traps, runs out of a limit or returns
//! something malformed yields a [`Fault`], which callers turn into a
//! fail-closed rejection.

use std::time::{Duration, Instant};

use omk_gate_sdk::{
    AgentAction, Decision, GateInfo, GoalContext, Stage, TaskOutcome, TaskProposal,
};
use sha2::{Digest, Sha256};
use wasmtime::Store;
use wasmtime::component::Linker;

use super::bindings::{self, Instance, OnDemand, Pre};
use super::engine::{GateEngine, deadline_ticks};
use super::fault::{Fault, FaultCause, clip, one_line};
use super::limits::{GateLimiter, Limits};
use super::load::{LoadError, check_shape, compile, fallback_name, valid_name};
use super::wasi::{self, Sealed, SealedView};

/// Per-store data: the limiter of this one decision, and the sealed WASI
/// context of a gate granted it.
pub struct GateState {
    limiter: GateLimiter,
    wasi: Option<Box<Sealed>>,
    table: wasmtime::component::ResourceTable,
    /// What a 0.2 gate may ask of the decision's context.
    on_demand: OnDemand,
}

impl GateState {
    fn new(limits: &Limits, wasi: Option<Box<Sealed>>, on_demand: OnDemand) -> GateState {
        GateState {
            limiter: GateLimiter::new(limits),
            wasi,
            table: wasmtime::component::ResourceTable::new(),
            on_demand,
        }
    }
}

/// Only gates granted WASI are linked to it, and their stores are made
/// with a context; any other store gets an empty one (no time, seed 0).
fn sealed(wasi: &mut Option<Box<Sealed>>) -> &mut Sealed {
    wasi.get_or_insert_with(|| Box::new(Sealed::new(0, 0)))
}

impl wasmtime_wasi::WasiView for GateState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut sealed(&mut self.wasi).ctx,
            table: &mut self.table,
        }
    }
}

impl SealedView for GateState {
    fn monotonic(&mut self) -> (&mut u64, &mut wasmtime::component::ResourceTable) {
        (sealed(&mut self.wasi).monotonic_ns(), &mut self.table)
    }
}

/// A gate's answer, and what it printed (gates granted WASI only).
#[derive(Debug, Clone)]
pub struct Judged {
    pub result: Result<Decision, Fault>,
    /// Its stdout then stderr, each capped at [`wasi::OUTPUT_CAP`] bytes.
    pub output: Option<String>,
}

/// A gate ready to judge.
pub struct LoadedGate {
    origin: String,
    sha256: String,
    size: usize,
    wit_version: String,
    info: GateInfo,
    describe_fault: Option<Fault>,
    engine: wasmtime::Engine,
    pre: Pre<GateState>,
    /// Whether the component imports (sealed) WASI.
    wasi: bool,
    /// The directory it may read, if granted.
    wasi_dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for LoadedGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedGate")
            .field("origin", &self.origin)
            .field("sha256", &self.sha256)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

pub use omk_core::sha256_hex;

impl LoadedGate {
    /// Loads the component `bytes`; `origin` names it in errors (a path, or
    /// `std:budget`). `describe` runs once, under `limits`. Any import
    /// refuses it.
    pub fn load(
        engine: &GateEngine,
        bytes: &[u8],
        origin: &str,
        limits: &Limits,
    ) -> Result<LoadedGate, LoadError> {
        LoadedGate::load_granting(engine, bytes, origin, limits, &wasi::Grant::default())
    }

    /// [`LoadedGate::load`], with what the project grants the gate: if
    /// `grant.wasi`, the component may import WASI 0.2 and gets sealed WASI
    /// (see [`super::wasi`]), with `grant.dir` readable.
    pub fn load_granting(
        engine: &GateEngine,
        bytes: &[u8],
        origin: &str,
        limits: &Limits,
        grant: &wasi::Grant,
    ) -> Result<LoadedGate, LoadError> {
        let grant_wasi = grant.wasi;
        let origin = origin.to_owned();
        let (component, sha256) = compile(engine, bytes, &origin)?;
        let (wit_version, imports_wasi) =
            check_shape(engine.engine(), &component, &origin, grant_wasi)?;

        let mut linker: Linker<GateState> = Linker::new(engine.engine());
        Pre::link(&wit_version, &mut linker, |s| &mut s.on_demand).map_err(|e| {
            LoadError::Link {
                origin: origin.clone(),
                detail: clip(&one_line(&e), 400),
            }
        })?;
        if imports_wasi {
            wasi::link(&mut linker).map_err(|e| LoadError::Link {
                origin: origin.clone(),
                detail: clip(&one_line(&e), 400),
            })?;
        }
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link {
                origin: origin.clone(),
                detail: clip(&one_line(&e), 400),
            })?;
        let pre = Pre::new(&wit_version, instance_pre).map_err(|e| LoadError::WrongSignature {
            origin: origin.clone(),
            interface: format!("{}@{wit_version}", bindings::INTERFACE),
            detail: clip(&one_line(&e), 400),
        })?;

        let mut gate = LoadedGate {
            origin,
            sha256,
            size: bytes.len(),
            wit_version,
            info: GateInfo {
                name: String::new(),
                version: String::new(),
                stages: Stage::ALL.to_vec(),
                description: String::new(),
            },
            describe_fault: None,
            engine: engine.engine().clone(),
            pre,
            wasi: imports_wasi,
            wasi_dir: grant.dir.clone(),
        };
        match gate.describe(limits) {
            Ok(info) => gate.info = info,
            Err(fault) => {
                tracing::warn!("gate `{}` failed in describe: {fault}", gate.origin);
                gate.info.name = fallback_name(&gate.origin);
                gate.describe_fault = Some(fault);
            }
        }
        Ok(gate)
    }

    /// What the gate says of itself. If `describe` failed, the name is
    /// taken from the file and every stage is listed, so that every
    /// decision fails closed.
    pub fn info(&self) -> &GateInfo {
        &self.info
    }

    /// The fault `describe` hit at load, if any.
    pub fn describe_fault(&self) -> Option<&Fault> {
        self.describe_fault.as_ref()
    }

    /// Where the gate came from: a path or `std:<name>`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The sha256 of the component's bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The component's size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The `omk:gate` version the component targets.
    pub fn wit_version(&self) -> &str {
        &self.wit_version
    }

    /// Whether the gate judges `stage`.
    pub fn judges(&self, stage: Stage) -> bool {
        self.info.stages.contains(&stage)
    }

    /// Whether the gate is asked about `a` at all: it judges actions, and
    /// its WIT version has `a`'s kind (0.1.0 has no reads).
    pub fn judges_action(&self, a: &AgentAction) -> bool {
        self.judges(Stage::Action) && self.pre.asks(a.kind)
    }

    /// Asks the gate, in an instance of its own, whether it can work with
    /// `config`: `Ok(Err(rejection))` if it says no, `Err` if it faulted. A
    /// 0.1.0 gate has no such call and says yes.
    pub fn validate_config(
        &self,
        config: &str,
        limits: &Limits,
    ) -> Result<Result<(), omk_gate_sdk::Rejection>, Fault> {
        if let Some(fault) = &self.describe_fault {
            return Err(fault.clone());
        }
        self.call(limits, 0, 0, OnDemand::default(), |store, g| {
            g.validate_config(store, config)
        })
        .0
    }

    fn describe(&self, limits: &Limits) -> Result<GateInfo, Fault> {
        let info = self
            .call(limits, 0, 0, OnDemand::default(), |store, g| {
                g.describe(store)
            })
            .0?;
        let size = info.name.len() + info.version.len() + info.description.len();
        if size as u64 > limits.max_result_bytes {
            return Err(Fault::new(
                FaultCause::Oversize,
                format!(
                    "describe returned {size} bytes, over the cap of {}",
                    limits.max_result_bytes
                ),
            ));
        }
        if !valid_name(&info.name) {
            return Err(Fault::new(
                FaultCause::Malformed,
                format!(
                    "describe returned the name `{}`; a gate name is 1–64 of a-z, 0-9 and `-`",
                    clip(&info.name.escape_debug().to_string(), 80)
                ),
            ));
        }
        Ok(info)
    }

    /// Judges a proposal.
    pub fn check_proposal(
        &self,
        ctx: &GoalContext,
        p: &TaskProposal,
        config: &str,
        limits: &Limits,
    ) -> Judged {
        let seed = self.seed(|| serde_json::to_vec(&("proposal", ctx, p, config)));
        self.decide(limits, ctx, seed, |store, g| {
            g.check_proposal(store, ctx, p, config)
        })
    }

    /// Judges an agent's action.
    pub fn check_action(
        &self,
        ctx: &GoalContext,
        task: &TaskProposal,
        a: &AgentAction,
        config: &str,
        limits: &Limits,
    ) -> Judged {
        let seed = self.seed(|| serde_json::to_vec(&("action", ctx, task, a, config)));
        self.decide(limits, ctx, seed, |store, g| {
            g.check_action(store, ctx, task, a, config)
        })
    }

    /// Judges a finished task.
    pub fn check_outcome(
        &self,
        ctx: &GoalContext,
        task: &TaskProposal,
        o: &TaskOutcome,
        config: &str,
        limits: &Limits,
    ) -> Judged {
        let seed = self.seed(|| serde_json::to_vec(&("outcome", ctx, task, o, config)));
        self.decide(limits, ctx, seed, |store, g| {
            g.check_outcome(store, ctx, task, o, config)
        })
    }

    /// The random seed of a decision: from a hash of its inputs, so the
    /// same inputs draw the same numbers. Only gates with WASI use one.
    fn seed(&self, inputs: impl FnOnce() -> serde_json::Result<Vec<u8>>) -> u64 {
        if !self.wasi {
            return 0;
        }
        let mut h = Sha256::new();
        h.update(self.sha256.as_bytes());
        h.update(inputs().unwrap_or_default());
        let d = h.finalize();
        u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    fn decide(
        &self,
        limits: &Limits,
        ctx: &GoalContext,
        seed: u64,
        f: impl FnOnce(&mut Store<GateState>, &Instance) -> wasmtime::Result<Decision> + Send,
    ) -> Judged {
        if let Some(fault) = &self.describe_fault {
            return Judged {
                result: Err(fault.clone()),
                output: None,
            };
        }
        let (result, output) = self.call(limits, ctx.now_ms, seed, OnDemand::of(ctx), f);
        let result = result.and_then(|decision| {
            validate(&decision, limits)?;
            Ok(decision)
        });
        Judged { result, output }
    }

    /// Runs `f` on a fresh instance under `limits`. The instance is dropped
    /// afterwards, whatever happened: no state crosses decisions and a
    /// trapped instance is never entered again. Returns what the gate
    /// printed, if it has WASI.
    ///
    /// WASI's blocking calls run on a runtime of their own, which cannot be
    /// entered from a tokio worker: from one, a gate with WASI is called on
    /// a thread of its own.
    fn call<R: Send>(
        &self,
        limits: &Limits,
        now_ms: u64,
        seed: u64,
        on_demand: OnDemand,
        f: impl FnOnce(&mut Store<GateState>, &Instance) -> wasmtime::Result<R> + Send,
    ) -> (Result<R, Fault>, Option<String>) {
        let run = || {
            let (mut store, gate) = match self.instantiate(limits, now_ms, seed, on_demand) {
                Ok(x) => x,
                Err(fault) => return (Err(fault), None),
            };
            let result = f(&mut store, &gate)
                .map_err(|e| Fault::classify(&e, store.data().limiter.hit.as_ref(), limits));
            let output = store.data().wasi.as_ref().and_then(|s| s.output());
            (result, output)
        };
        if self.wasi && tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|scope| {
                scope.spawn(run).join().unwrap_or_else(|_| {
                    (
                        Err(Fault::new(
                            FaultCause::Trap,
                            "the host thread judging this gate panicked",
                        )),
                        None,
                    )
                })
            })
        } else {
            run()
        }
    }

    /// A fresh instance in a fresh store, armed with `limits`.
    fn instantiate(
        &self,
        limits: &Limits,
        now_ms: u64,
        seed: u64,
        on_demand: OnDemand,
    ) -> Result<(Store<GateState>, Instance), Fault> {
        let sealed = match (self.wasi, &self.wasi_dir) {
            (false, _) => None,
            (true, None) => Some(Box::new(Sealed::new(now_ms, seed))),
            (true, Some(dir)) => Some(Box::new(
                Sealed::with_dir(now_ms, seed, dir)
                    .map_err(|e| Fault::new(FaultCause::Instantiate, e))?,
            )),
        };
        let mut store = Store::new(&self.engine, GateState::new(limits, sealed, on_demand));
        store.limiter(|s| &mut s.limiter);
        arm(&mut store, limits)?;
        match self.pre.instantiate(&mut store) {
            Ok(g) => Ok((store, g)),
            Err(e) => {
                let fault = Fault::classify(&e, store.data().limiter.hit.as_ref(), limits);
                Err(match fault.cause {
                    FaultCause::Malformed => Fault::new(FaultCause::Instantiate, one_line(&e)),
                    _ => fault,
                })
            }
        }
    }

    /// Makes a fresh instance as a decision does, and drops it, without
    /// calling it: what instantiating costs, for the benchmark.
    #[doc(hidden)]
    pub fn instantiate_only(&self, limits: &Limits) -> Result<(), Fault> {
        self.instantiate(limits, 0, 0, OnDemand::default())
            .map(drop)
    }

    /// An instance kept across proposals, for callers that judge many
    /// proposals in a row and accept that a gate could carry state between
    /// them (the benchmark's "reused" mode). omk itself always uses a fresh
    /// instance per decision.
    pub fn reuse(&self, limits: Limits) -> Reused<'_> {
        Reused {
            gate: self,
            limits,
            live: None,
        }
    }
}

/// Refills fuel and resets the deadline for one call.
fn arm(store: &mut Store<GateState>, limits: &Limits) -> Result<(), Fault> {
    store
        .set_fuel(limits.fuel)
        .map_err(|e| Fault::new(FaultCause::Instantiate, one_line(&e)))?;
    store.set_epoch_deadline(deadline_ticks(limits.timeout_ms));
    Ok(())
}

/// One instance of a gate used for many proposals; re-created after any
/// fault, so a trapped instance is never entered again.
pub struct Reused<'a> {
    gate: &'a LoadedGate,
    limits: Limits,
    live: Option<(Store<GateState>, Instance)>,
}

impl Reused<'_> {
    /// Judges a proposal on the kept instance.
    pub fn check_proposal(
        &mut self,
        ctx: &GoalContext,
        p: &TaskProposal,
        config: &str,
    ) -> Result<Decision, Fault> {
        if let Some(fault) = &self.gate.describe_fault {
            return Err(fault.clone());
        }
        let (mut store, gate) = match self.live.take() {
            Some(live) => live,
            None => self
                .gate
                .instantiate(&self.limits, ctx.now_ms, 0, OnDemand::default())?,
        };
        arm(&mut store, &self.limits)?;
        store.data_mut().on_demand = OnDemand::of(ctx);
        let decision = gate
            .check_proposal(&mut store, ctx, p, config)
            .map_err(|e| Fault::classify(&e, store.data().limiter.hit.as_ref(), &self.limits))?;
        validate(&decision, &self.limits)?;
        self.live = Some((store, gate));
        Ok(decision)
    }
}

/// Time a closure took, for decision records.
pub(crate) fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let start = Instant::now();
    let r = f();
    (r, start.elapsed())
}

/// Longest rejection code accepted from a gate.
const MAX_CODE_BYTES: usize = 128;

/// Checks a decision against the contract: the size cap, and a code that is
/// lowercase and dotted, not in the host's `gate.` namespace, with a reason.
fn validate(d: &Decision, limits: &Limits) -> Result<(), Fault> {
    let Some(r) = d.rejection() else {
        return Ok(());
    };
    let size = (r.code.len() + r.reason.len()) as u64;
    if size > limits.max_result_bytes {
        return Err(Fault::new(
            FaultCause::Oversize,
            format!(
                "the rejection is {size} bytes, over the cap of {}",
                limits.max_result_bytes
            ),
        ));
    }
    let code_ok = r.code.len() <= MAX_CODE_BYTES
        && !r.code.starts_with("gate.")
        && r.code.split('.').count() >= 2
        && r.code.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        });
    if !code_ok {
        return Err(Fault::new(
            FaultCause::Malformed,
            format!(
                "rejected with the code `{}`; a code is `<gate>.<rule>`, lowercase, and not under `gate.`",
                clip(&r.code.escape_debug().to_string(), 80)
            ),
        ));
    }
    if r.reason.trim().is_empty() {
        return Err(Fault::new(
            FaultCause::Malformed,
            format!("rejected with the code `{}` but no reason", r.code),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_validation() {
        let l = Limits::default();
        assert!(validate(&Decision::Accept, &l).is_ok());
        assert!(validate(&Decision::reject("x.y", "why"), &l).is_ok());
        for bad in ["", "nodot", "gate.fault.trap", "X.Y", "a..b", "a.b c"] {
            let f = validate(&Decision::reject(bad, "why"), &l).unwrap_err();
            assert_eq!(f.cause, FaultCause::Malformed, "{bad}");
        }
        assert_eq!(
            validate(&Decision::reject("a.b", " "), &l)
                .unwrap_err()
                .cause,
            FaultCause::Malformed
        );
        let big = "x".repeat(70_000);
        assert_eq!(
            validate(&Decision::reject("a.b", big), &l)
                .unwrap_err()
                .cause,
            FaultCause::Oversize
        );
    }
}

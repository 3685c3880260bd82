//! The limiter that enforces the memory part of a gate's [`Limits`]; the
//! limits themselves, their defaults and ceilings are
//! [`omk_core::limits`], re-exported here.

pub use omk_core::limits::*;

/// A limit the limiter refused to let a gate pass.
#[derive(Debug, Clone, thiserror::Error)]
#[error("gate asked to grow its {what} to {desired} {unit}, over its cap of {cap}")]
pub struct LimitHit {
    pub what: &'static str,
    pub unit: &'static str,
    pub desired: usize,
    pub cap: usize,
}

/// Enforces the memory and table caps of one store and remembers a breach,
/// so that the resulting trap is reported as `gate.fault.memory`.
#[derive(Debug)]
pub struct GateLimiter {
    memory_cap: usize,
    table_cap: usize,
    pub(crate) hit: Option<LimitHit>,
}

impl GateLimiter {
    pub fn new(limits: &Limits) -> Self {
        let memory_cap = limits.memory_bytes();
        GateLimiter {
            memory_cap,
            // A table element is a pointer wide.
            table_cap: memory_cap / std::mem::size_of::<usize>(),
            hit: None,
        }
    }

    fn refuse(&mut self, what: &'static str, desired: usize, cap: usize) -> wasmtime::Result<bool> {
        let unit = if what == "table" { "elements" } else { "bytes" };
        let hit = LimitHit {
            what,
            unit,
            desired,
            cap,
        };
        self.hit = Some(hit.clone());
        Err(wasmtime::Error::new(hit))
    }
}

impl wasmtime::ResourceLimiter for GateLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let cap = max.map_or(self.memory_cap, |m| m.min(self.memory_cap));
        if desired > cap {
            return self.refuse("memory", desired, cap);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let cap = max.map_or(self.table_cap, |m| m.min(self.table_cap));
        if desired > cap {
            return self.refuse("table", desired, cap);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

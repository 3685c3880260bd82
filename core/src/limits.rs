//! The limits every gate call runs under. The `omk` crate's gate host
//! enforces them (`omk::gates::Limits`; its limiter caps memory).
//!
//! Limits are paired, as wasmtime's own docs insist: memory alone does not
//! stop a loop, fuel alone does not stop a host-side stall. Every call gets
//! all four:
//!
//! | limit | default | on breach |
//! |---|---|---|
//! | `fuel` (wasm instructions, deterministic) | 100,000,000 | `gate.fault.fuel` |
//! | `timeout_ms` (wall clock, epoch-based) | 3,000 ms | `gate.fault.timeout` |
//! | `memory_mib` (linear memory + tables) | 64 MiB | `gate.fault.memory` |
//! | `max_result_bytes` (strings returned) | 64 KiB | `gate.fault.oversize` |
//!
//! Fuel is the limit that replay reproduces exactly; the wall-clock timeout
//! is the backstop, set well above the time the default fuel takes even on
//! a loaded machine, so that a runaway gate stops on fuel, the same way
//! every time. A project may raise or lower each per gate in
//! `.omk/gates.toml`, up to the ceilings below.

use serde::{Deserialize, Serialize};

/// The largest memory a project may grant one gate.
pub const MAX_MEMORY_MIB: u64 = 1024;
/// The longest wall-clock time a project may grant one call.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// Limits for one gate's calls. Build with [`Limits::default`] and the
/// setters, or from a config table with [`Limits::overlay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Wasm fuel per call (roughly one unit per instruction).
    pub fuel: u64,
    /// Wall-clock deadline per call, in milliseconds.
    pub timeout_ms: u64,
    /// Linear memory cap, in MiB; tables are capped at the same number of
    /// elements' worth of bytes.
    pub memory_mib: u64,
    /// Cap on the total bytes of strings a call returns.
    pub max_result_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 100_000_000,
            timeout_ms: 3_000,
            memory_mib: 64,
            max_result_bytes: 64 * 1024,
        }
    }
}

/// Limit settings as written in a config file: each optional, overlaid on
/// the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    pub fuel: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    pub max_result_bytes: Option<u64>,
}

impl Limits {
    /// These limits with every setting `s` gives replaced; an error names the
    /// setting that is out of range.
    pub fn overlay(self, s: &LimitSettings) -> Result<Limits, String> {
        let out = Limits {
            fuel: s.fuel.unwrap_or(self.fuel),
            timeout_ms: s.timeout_ms.unwrap_or(self.timeout_ms),
            memory_mib: s.memory_mib.unwrap_or(self.memory_mib),
            max_result_bytes: s.max_result_bytes.unwrap_or(self.max_result_bytes),
        };
        out.validate()?;
        Ok(out)
    }

    fn validate(&self) -> Result<(), String> {
        if self.fuel == 0 {
            return Err("`fuel` must be above 0".into());
        }
        if self.timeout_ms == 0 || self.timeout_ms > MAX_TIMEOUT_MS {
            return Err(format!(
                "`timeout_ms` must be between 1 and {MAX_TIMEOUT_MS}"
            ));
        }
        if self.memory_mib == 0 || self.memory_mib > MAX_MEMORY_MIB {
            return Err(format!(
                "`memory_mib` must be between 1 and {MAX_MEMORY_MIB}"
            ));
        }
        if self.max_result_bytes < 1024 {
            return Err("`max_result_bytes` must be at least 1024".into());
        }
        Ok(())
    }

    /// The memory cap in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib * 1024 * 1024).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_replaces_and_validates() {
        let l = Limits::default()
            .overlay(&LimitSettings {
                fuel: Some(5),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(l.fuel, 5);
        assert_eq!(l.memory_mib, 64);
        let e = Limits::default()
            .overlay(&LimitSettings {
                memory_mib: Some(4096),
                ..Default::default()
            })
            .unwrap_err();
        assert!(e.contains("memory_mib"), "{e}");
    }
}

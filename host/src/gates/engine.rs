//! The one wasmtime [`Engine`] of the process, configured for gates.
//!
//! [`GateEngine::new`] sets, and documents, every choice:
//!
//! - component model on; fuel metering on (deterministic CPU limit); epoch
//!   interruption on, with a background thread ticking every
//!   [`EPOCH_TICK`] (wall-clock limit);
//! - bounds checks in code, no guard pages: a memory that grew stays
//!   mapped for the next instance in its slot (its contents reset), where
//!   guard pages would cost two `mprotect`s — TLB shootdowns — a decision;
//! - the pooling instance allocator, so a fresh instance per decision costs
//!   microseconds, with up to 1 MiB of each memory reset by `memset`
//!   instead of `madvise`; if the pool cannot be reserved (a tight address-space
//!   limit), the on-demand allocator instead, with a warning;
//! - compiled components cached on disk (see [`ComponentCache`]) keyed by
//!   the component's sha256 and this engine's compatibility hash.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::cache::{CacheDirs, ComponentCache};
use super::limits::MAX_MEMORY_MIB;

/// How often the epoch advances. Wall-clock deadlines are rounded up to it.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// What happened to components asked of the engine.
#[derive(Debug, Default)]
pub struct EngineStats {
    compiled: AtomicU64,
    cache_hits: AtomicU64,
}

impl EngineStats {
    /// Components compiled by Cranelift in this process.
    pub fn compiled(&self) -> u64 {
        self.compiled.load(Ordering::Relaxed)
    }

    /// Components loaded ready-compiled from the disk cache.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }
}

/// The process's gate engine: wasmtime plus the compiled-component cache.
#[derive(Clone)]
pub struct GateEngine {
    engine: Engine,
    cache: Option<Arc<ComponentCache>>,
    stats: Arc<EngineStats>,
    pooling: bool,
}

/// Engine creation failed; wasmtime's reason is kept.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the WebAssembly engine: {0}")]
pub struct EngineError(String);

impl omk_core::diagnose::Diagnose for EngineError {
    fn kind(&self) -> omk_core::diagnose::Kind {
        omk_core::diagnose::Kind::System
    }
}

impl EngineError {
    pub(crate) fn panicked() -> Self {
        EngineError("a gate loading thread panicked".into())
    }
}

impl GateEngine {
    /// The process-wide engine, created on first use with the cache in
    /// omk's cache directory.
    pub fn shared() -> Result<&'static GateEngine, EngineError> {
        static SHARED: OnceLock<Result<GateEngine, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| GateEngine::new(CacheDirs::for_user()).map_err(|e| e.0))
            .as_ref()
            .map_err(|e| EngineError(e.clone()))
    }

    /// A new engine caching compiled components in `cache` (no disk cache
    /// when `None`).
    pub fn new(cache: Option<CacheDirs>) -> Result<GateEngine, EngineError> {
        let (engine, pooling) = match Engine::new(&config(true)) {
            Ok(e) => (e, true),
            Err(pool_err) => {
                tracing::warn!(
                    "pooling allocator unavailable ({pool_err}); gates will be instantiated on demand, more slowly"
                );
                let e = Engine::new(&config(false)).map_err(|e| EngineError(e.to_string()))?;
                (e, false)
            }
        };
        start_epoch_ticker(&engine);
        let cache = cache
            .and_then(|dirs| ComponentCache::open(&dirs, &engine))
            .map(Arc::new);
        Ok(GateEngine {
            engine,
            cache,
            stats: Arc::default(),
            pooling,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Counters of compilations and cache hits.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// The component for `bytes` (whose sha256 is `digest`), from the disk
    /// cache when there, else compiled and cached.
    pub fn component(&self, bytes: &[u8], digest: &str) -> wasmtime::Result<Component> {
        if let Some(cache) = &self.cache
            && let Some(c) = cache.get(&self.engine, digest)
        {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(c);
        }
        let component = Component::new(&self.engine, bytes)?;
        self.stats.compiled.fetch_add(1, Ordering::Relaxed);
        if let Some(cache) = &self.cache {
            cache.put(&component, digest);
        }
        Ok(component)
    }
}

/// Epoch ticks for a wall-clock deadline of `timeout_ms`, rounded up, plus
/// one for the tick already under way.
pub fn deadline_ticks(timeout_ms: u64) -> u64 {
    let tick = EPOCH_TICK.as_millis() as u64;
    timeout_ms.div_ceil(tick) + 1
}

fn config(pooling: bool) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.consume_fuel(true);
    c.epoch_interruption(true);
    c.parallel_compilation(true);
    // Bounds checked in code, not by guard pages: a gate's memory that
    // grew during one decision then stays mapped (its contents reset) for
    // the next instance in its slot, instead of being protected again and
    // re-opened by `mprotect` twice a decision — a TLB shootdown across
    // every core each time, which cost more than running the gate.
    c.signals_based_traps(false);
    c.memory_guard_size(0);
    if pooling {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(256)
            .total_core_instances(1024)
            .total_memories(256)
            .total_tables(512)
            .max_tables_per_module(8)
            .max_memories_per_module(1)
            .table_elements(200_000)
            .max_core_instance_size(4 << 20)
            .max_component_instance_size(4 << 20)
            .max_memory_size((MAX_MEMORY_MIB as usize) << 20)
            .max_unused_warm_slots(16)
            // Reset a gate's memory with memset rather than madvise: a gate
            // touches little memory per decision, and madvise costs a TLB
            // shootdown across cores on every instance.
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto)
            // Gates are never called async: keep one fiber stack, not 1000.
            .total_stacks(1);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is
/// dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("omk-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        // Without the ticker, deadlines never fire; fuel still bounds every
        // call, so gates stay contained.
        tracing::warn!("cannot start the epoch thread ({e}); only fuel bounds gate calls");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_rounds_up() {
        assert_eq!(deadline_ticks(1), 2);
        assert_eq!(deadline_ticks(5), 2);
        assert_eq!(deadline_ticks(6), 3);
        assert_eq!(deadline_ticks(1000), 201);
    }
}

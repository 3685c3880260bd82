//! Sealed WASI: what a gate that imports WASI gets when the project grants
//! it (`wasi = true` on its `[[gate]]`). Toolchains such as componentize-py
//! import WASI whether the gate uses it or not; this lets such a gate run
//! while giving it nothing of the machine:
//!
//! - no arguments, no environment, stdin empty, and no file system but,
//!   where the project grants one (`wasi_dir`), one project directory
//!   mounted read-only at [`DATA_DIR`];
//! - every network address denied, name lookup, TCP and UDP off;
//! - stdout and stderr captured, up to [`OUTPUT_CAP`] bytes each, into the
//!   decision record;
//! - the wall clock frozen at the decision's `now-ms`, the monotonic clock
//!   virtual — it starts at zero and a sleep advances it at once — so a gate
//!   can neither learn the time nor block the host;
//! - random numbers from a generator seeded from the decision's inputs, so
//!   the same inputs draw the same numbers, on replay too.
//!
//! The interfaces linked are those of WASI 0.2 (any `0.2.x` import links);
//! a component importing anything else is refused at load, naming the
//! import.

use std::path::Path;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::{FsPerms, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

/// What a project grants one gate: sealed WASI, and one directory in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// The gate may import WASI 0.2 (`wasi = true`).
    pub wasi: bool,
    /// A directory it may read at [`DATA_DIR`] (`wasi_dir`).
    pub dir: Option<std::path::PathBuf>,
}

impl Grant {
    /// Sealed WASI, no directory (`omk gate test`).
    pub fn sealed() -> Grant {
        Grant {
            wasi: true,
            dir: None,
        }
    }
}

/// Where a granted directory appears to the gate.
pub const DATA_DIR: &str = "/data";

/// Most bytes of stdout, and of stderr, kept per decision.
pub const OUTPUT_CAP: usize = 4096;

/// The WASI 0.2 interfaces linked for a gate granted sealed WASI.
const LINKED: [&str; 26] = [
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/ip-name-lookup",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
];

/// Whether sealed WASI provides `import` (`wasi:cli/stdout@0.2.9`).
pub fn provides(import: &str) -> bool {
    let (name, version) = import.split_once('@').unwrap_or((import, ""));
    let linked = LINKED.contains(&name) || name == "wasi:sockets/udp-create-socket";
    linked && version.starts_with("0.2.") && !version.contains('-')
}

/// Whether `import` is a WASI interface at all (for error messages).
pub fn is_wasi(import: &str) -> bool {
    import.starts_with("wasi:")
}

/// One decision's WASI state.
pub struct Sealed {
    pub ctx: WasiCtx,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    /// The virtual monotonic clock, in nanoseconds.
    monotonic_ns: u64,
}

impl Sealed {
    /// A sealed context for a decision at `now_ms` whose inputs hash to
    /// `seed`, with no file system.
    pub fn new(now_ms: u64, seed: u64) -> Sealed {
        let mut b = Sealed::builder(now_ms, seed);
        Sealed::finish(&mut b)
    }

    /// [`Sealed::new`] with `dir` readable at [`DATA_DIR`].
    pub fn with_dir(now_ms: u64, seed: u64, dir: &Path) -> Result<Sealed, String> {
        let mut b = Sealed::builder(now_ms, seed);
        b.0.allow_blocking_current_thread(true)
            .preopened_dir(dir, DATA_DIR, FsPerms::ReadOnly)
            .map_err(|e| format!("cannot open `{}` for the gate: {e}", dir.display()))?;
        Ok(Sealed::finish(&mut b))
    }

    fn finish(b: &mut (WasiCtxBuilder, MemoryOutputPipe, MemoryOutputPipe)) -> Sealed {
        Sealed {
            ctx: b.0.build(),
            stdout: b.1.clone(),
            stderr: b.2.clone(),
            monotonic_ns: 0,
        }
    }

    fn builder(now_ms: u64, seed: u64) -> (WasiCtxBuilder, MemoryOutputPipe, MemoryOutputPipe) {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAP);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAP);
        let mut b = WasiCtxBuilder::new();
        b.stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(FrozenWall(Duration::from_millis(now_ms)))
            .monotonic_clock(FrozenMonotonic)
            .secure_random(Xoshiro256PlusPlus::seed_from_u64(seed))
            .insecure_random(Xoshiro256PlusPlus::seed_from_u64(
                seed ^ 0x9e37_79b9_7f4a_7c15,
            ))
            .insecure_random_seed(u128::from(seed))
            .max_random_size(1 << 16)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        (b, stdout, stderr)
    }

    /// What the gate printed, stdout then stderr, each capped; `None` if
    /// nothing.
    pub fn output(&self) -> Option<String> {
        let out = self.stdout.contents();
        let err = self.stderr.contents();
        if out.is_empty() && err.is_empty() {
            return None;
        }
        let mut text = String::from_utf8_lossy(&out).into_owned();
        if !err.is_empty() {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&String::from_utf8_lossy(&err));
        }
        Some(text)
    }
}

struct FrozenWall(Duration);

impl HostWallClock for FrozenWall {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

/// Only used by wasmtime-wasi's own monotonic clock, which [`link`]
/// replaces.
struct FrozenMonotonic;

impl HostMonotonicClock for FrozenMonotonic {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Store data that holds a sealed WASI context.
pub trait SealedView: wasmtime_wasi::WasiView {
    /// The virtual monotonic clock and the resource table.
    fn monotonic(&mut self) -> (&mut u64, &mut ResourceTable);
}

/// Links sealed WASI into `linker`: WASI 0.2 with the monotonic clock
/// replaced by the virtual one.
pub fn link<T: SealedView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    monotonic_clock::add_to_linker::<T, Virtual>(linker, |t| {
        let (now, table) = t.monotonic();
        VirtualClock { now, table }
    })?;
    Ok(())
}

impl Sealed {
    /// The virtual clock's reading, for [`SealedView`].
    pub fn monotonic_ns(&mut self) -> &mut u64 {
        &mut self.monotonic_ns
    }
}

struct Virtual;

impl HasData for Virtual {
    type Data<'a> = VirtualClock<'a>;
}

struct VirtualClock<'a> {
    now: &'a mut u64,
    table: &'a mut ResourceTable,
}

/// A pollable that is always ready: sleeping takes no time.
struct Ready;

#[wasmtime_wasi::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

impl monotonic_clock::Host for VirtualClock<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(*self.now)
    }

    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(1)
    }

    fn subscribe_instant(&mut self, when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        *self.now = (*self.now).max(when);
        let ready = self.table.push(Ready)?;
        subscribe(self.table, ready)
    }

    fn subscribe_duration(&mut self, duration: u64) -> wasmtime::Result<Resource<DynPollable>> {
        *self.now = self.now.saturating_add(duration);
        let ready = self.table.push(Ready)?;
        subscribe(self.table, ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provides_wasi_0_2_only() {
        assert!(provides("wasi:cli/stdout@0.2.9"));
        assert!(provides("wasi:sockets/udp-create-socket@0.2.0"));
        assert!(!provides("wasi:cli/stdout@0.3.0"));
        assert!(!provides("wasi:cli/stdout@0.2.0-rc-2023-11-10"));
        assert!(!provides("wasi:http/outgoing-handler@0.2.9"));
        assert!(!provides("wasi:cli/stdout"));
        assert!(!provides("omk:evil/thing@0.2.0"));
    }

    #[test]
    fn output_is_captured_and_empty_is_none() {
        use tokio::io::AsyncWriteExt;
        let s = Sealed::new(5, 1);
        assert_eq!(s.output(), None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut out, mut err) = (s.stdout.clone(), s.stderr.clone());
            out.write_all(b"judged 3 paths").await.unwrap();
            err.write_all(b"warning: slow").await.unwrap();
            // Past the cap, nothing more is kept.
            let flood = vec![b'x'; OUTPUT_CAP + 10];
            let kept = out.write(&flood).await.unwrap();
            assert_eq!(kept, OUTPUT_CAP - "judged 3 paths".len());
        });
        let text = s.output().unwrap();
        assert!(text.starts_with("judged 3 paths"), "{text:.40}");
        assert!(
            text.ends_with("\nwarning: slow"),
            "{}",
            &text[text.len() - 20..]
        );
        assert_eq!(text.len(), OUTPUT_CAP + 1 + "warning: slow".len());
    }
}

//! The on-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes tens of milliseconds;
//! loading it ready-compiled takes a fraction of one. But a compiled
//! artifact is native code that wasmtime runs as it is: whoever can swap an
//! entry decides what a gate does. So every entry is bound, by a MAC under
//! a key only this machine's omk holds ([`crate::keys`], `cache.key`), to
//! the engine that compiled it and the component it was compiled from:
//!
//! ```text
//! <root>/<engine>/<sha256>.cwasm  =  "omk-cwasm-v2\n" ‖ mac ‖ artifact
//! mac = HMAC-SHA256(key, "omk-cwasm-v2\n" ‖ engine digest ‖ component sha256 ‖ artifact)
//! ```
//!
//! where `<engine>` abbreviates the digest of wasmtime's precompile
//! compatibility hash (wasmtime version, target, engine settings) and
//! `<sha256>` is the component's. An entry copied from another component's
//! name, from another engine, from another machine, or written by anyone
//! without the key does not verify; neither does a torn or truncated one.
//! Such an entry is ignored (logged at debug level), the component is
//! compiled again and the entry replaced. The cache is an optimisation
//! only: every failure to read or write it falls back to compiling.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The first bytes of every entry, and the MAC's domain.
const MAGIC: &[u8] = b"omk-cwasm-v2\n";
/// The MAC's length.
const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Where compiled components and the key that vouches for them live.
#[derive(Debug, Clone)]
pub struct CacheDirs {
    /// The cache itself (`$XDG_CACHE_HOME/omk/components`).
    pub components: PathBuf,
    /// The machine's keys folder (see [`crate::keys`]).
    pub keys: PathBuf,
}

impl CacheDirs {
    /// The user's: omk's cache directory and the machine's keys, if both
    /// can be named.
    pub fn for_user() -> Option<CacheDirs> {
        Some(CacheDirs {
            components: crate::dirs::cache_dir()?.join("components"),
            keys: crate::keys::dir().ok()?,
        })
    }

    /// Both under `root` (`root/components`, `root/keys`): for tests and
    /// benchmarks.
    pub fn under(root: &Path) -> CacheDirs {
        CacheDirs {
            components: root.join("components"),
            keys: root.join("keys"),
        }
    }
}

/// A directory of compiled components for one engine configuration.
pub struct ComponentCache {
    dir: PathBuf,
    /// The sha256 of the engine's compatibility hash.
    engine_digest: [u8; 32],
    key: [u8; 32],
}

impl std::fmt::Debug for ComponentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ComponentCache {
    /// The cache for `engine` in `dirs`; `None` (no disk cache, with a
    /// warning) when the machine's cache key cannot be read or created.
    pub fn open(dirs: &CacheDirs, engine: &Engine) -> Option<Self> {
        match crate::keys::cache_key(&dirs.keys) {
            Ok(key) => Some(ComponentCache::with_key(&dirs.components, engine, key)),
            Err(e) => {
                tracing::warn!("compiled components will not be cached: {e}");
                None
            }
        }
    }

    /// The cache for `engine` under `root`, entries authenticated with `key`.
    pub fn with_key(root: &Path, engine: &Engine, key: [u8; 32]) -> Self {
        let mut hasher = Sha256Hasher::default();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_digest: [u8; 32] = hasher.0.finalize().into();
        ComponentCache {
            dir: root.join(hex::encode(&engine_digest[..8])),
            engine_digest,
            key,
        }
    }

    /// The directory entries for this engine live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry for a component with this digest lives.
    pub fn entry(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.cwasm"))
    }

    /// The MAC of `artifact` as the compiled form of component `digest`.
    fn mac(&self, digest: &str, artifact: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(MAGIC);
        mac.update(&self.engine_digest);
        mac.update(digest.as_bytes());
        mac.update(artifact);
        mac
    }

    /// The cached component with this digest, if an entry exists that this
    /// machine's omk wrote for exactly this component and engine.
    pub fn get(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.entry(digest);
        let data = std::fs::read(&path).ok()?;
        let unusable = |why: &str| {
            tracing::debug!(
                "ignoring cache entry {}: {why}; compiling again",
                path.display()
            );
            None
        };
        let Some(rest) = data.strip_prefix(MAGIC) else {
            return unusable("not an entry this omk writes");
        };
        let Some((tag, artifact)) = rest.split_at_checked(MAC_LEN) else {
            return unusable("truncated");
        };
        if self.mac(digest, artifact).verify_slice(tag).is_err() {
            return unusable(
                "its MAC does not verify (not compiled from this component by this machine's omk)",
            );
        }
        // SAFETY: `deserialize` requires bytes produced by `serialize` of a
        // compatible engine. The MAC proves that `put` below wrote these
        // exact bytes, on this machine, for an engine with this
        // compatibility hash and for this component's digest; wasmtime
        // additionally checks the header's version and engine settings.
        match unsafe { Component::deserialize(engine, artifact) } {
            Ok(c) => Some(c),
            Err(e) => unusable(&e.to_string()),
        }
    }

    /// Stores `component` under `digest`; failures are logged, not fatal.
    pub fn put(&self, component: &Component, digest: &str) {
        if let Err(e) = self.try_put(component, digest) {
            tracing::warn!(
                "cannot write the compiled-component cache in {}: {e}",
                self.dir.display()
            );
        }
    }

    fn try_put(&self, component: &Component, digest: &str) -> std::io::Result<()> {
        let artifact = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        std::fs::create_dir_all(&self.dir)?;
        let tag = self.mac(digest, &artifact).finalize().into_bytes();
        let mut data = Vec::with_capacity(MAGIC.len() + MAC_LEN + artifact.len());
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&tag);
        data.extend_from_slice(&artifact);
        crate::atomic::write(&self.entry(digest), &data)
    }
}

/// Feeds `Hash` output into sha256, for a key that is stable across runs
/// (std's `DefaultHasher` makes no such promise).
#[derive(Default)]
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let d = self.0.clone().finalize();
        u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

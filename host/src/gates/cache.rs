//! The on-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes tens of milliseconds;
//! loading it ready-compiled takes a fraction of one. Entries live at
//! `<root>/<engine>/<sha256>.cwasm` where `<engine>` is a digest of
//! wasmtime's precompile compatibility hash (wasmtime version, target,
//! engine settings) and `<sha256>` that of the component's bytes, so a
//! changed component or a changed engine never loads a stale entry.
//!
//! Each file is `sha256(body) ‖ body`, written to a temporary file and
//! renamed into place: a torn or corrupted entry is detected, ignored and
//! replaced. The cache is an optimisation only; every failure to read or
//! write it falls back to compiling.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of compiled components for one engine configuration.
#[derive(Debug)]
pub struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    /// The cache for `engine` under `root`.
    pub fn new(root: PathBuf, engine: &Engine) -> Self {
        let mut hasher = Sha256Hasher::default();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        ComponentCache {
            dir: root.join(engine_key),
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

    /// The cached component with this digest, if a sound entry exists.
    pub fn get(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.entry(digest);
        let data = std::fs::read(&path).ok()?;
        let (check, body) = data.split_at_checked(32)?;
        if Sha256::digest(body).as_slice() != check {
            tracing::debug!("ignoring corrupt cache entry {}", path.display());
            return None;
        }
        // SAFETY: `deserialize` requires bytes produced by `serialize` of a
        // compatible engine. The entry was written by `put` below, in omk's
        // own cache directory, for an engine with this compatibility hash,
        // and its checksum matches, so it is not torn or corrupted. wasmtime
        // additionally checks the header's version and engine settings.
        match unsafe { Component::deserialize(engine, body) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!("ignoring unusable cache entry {}: {e}", path.display());
                None
            }
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
        let body = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        std::fs::create_dir_all(&self.dir)?;
        let mut data = Sha256::digest(&body).to_vec();
        data.extend_from_slice(&body);
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

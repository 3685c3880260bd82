//! Gate bundles: vetted gates shipped together, signed, verified before
//! anything in them runs.
//!
//! A bundle is a directory, or the same tree as a `.tar.gz`:
//!
//! ```text
//! bundle.toml                 name, version, WIT version, description, and per gate:
//!                             name, file, sha256, stages, default config
//! <gate>.wasm …               the components
//! signatures/<key-id>.sig     detached ed25519 signatures, one per signer
//! ```
//!
//! A signature covers a *statement*: every file of the bundle but the
//! signatures, each with its sha256 (see [`Bundle::statement`]). Verifying
//! ([`sign::verify`]) names any file changed, added or missing since
//! signing, then checks the signers against the project's trust policy;
//! only a verified bundle's components are ever loaded.
//!
//! - [`sign`]: keys, signing, verification and trust.
//! - [`installed`]: what a project has installed, so nothing rolls back.
//!
//! Pushing and pulling through OCI registries is the `omk` crate's
//! (`omk::gates::bundle::oci`).

pub mod installed;
pub mod sign;

pub use sign::BundleRef;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sha256_hex;
use omk_gate_sdk::Stage;

/// The manifest's file name.
pub const MANIFEST: &str = "bundle.toml";
/// The folder of signatures.
pub const SIGNATURES: &str = "signatures";
/// Largest bundle accepted, unpacked.
pub const MAX_BUNDLE_BYTES: u64 = 256 << 20;
/// Most files a bundle may hold.
pub const MAX_FILES: usize = 512;

/// One gate of a bundle's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestGate {
    pub name: String,
    pub file: String,
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub stages: Vec<Stage>,
    #[serde(default)]
    pub config: toml::Table,
}

/// `bundle.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    /// The `omk:gate` WIT version the gates target.
    pub wit: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, rename = "gate")]
    pub gates: Vec<ManifestGate>,
}

/// Why a bundle is refused. Every message names the bundle.
#[derive(Debug, thiserror::Error)]
#[error("bundle `{bundle}`: {message}")]
pub struct BundleError {
    pub bundle: String,
    pub message: String,
    pub help: Option<String>,
    /// [`Kind::Usage`](crate::diagnose::Kind::Usage) unless a signature,
    /// a digest or the installed record does not hold.
    pub kind: crate::diagnose::Kind,
}

impl BundleError {
    pub fn new(bundle: &str, message: impl Into<String>, help: Option<&str>) -> BundleError {
        BundleError {
            bundle: bundle.to_owned(),
            message: message.into(),
            help: help.map(str::to_owned),
            kind: crate::diagnose::Kind::Usage,
        }
    }

    /// The same error, as an integrity failure (exit 3).
    pub fn integrity(self) -> BundleError {
        BundleError {
            kind: crate::diagnose::Kind::Integrity,
            ..self
        }
    }
}

impl crate::diagnose::Diagnose for BundleError {
    fn kind(&self) -> crate::diagnose::Kind {
        self.kind
    }
    fn help(&self) -> Option<String> {
        self.help.clone()
    }
}

/// A bundle in memory.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Where it came from, for messages.
    pub origin: String,
    pub manifest: Manifest,
    /// Every file but the signatures, by relative path (with `bundle.toml`).
    pub files: BTreeMap<String, Vec<u8>>,
    /// `signatures/*.sig`, by file name.
    pub signatures: BTreeMap<String, Vec<u8>>,
}

impl Bundle {
    /// Reads a bundle directory or `.tar.gz` file.
    pub fn open(path: &Path) -> Result<Bundle, BundleError> {
        let origin = path.display().to_string();
        let entries = if path.is_dir() {
            read_dir(path).map_err(|e| BundleError::new(&origin, e, None))?
        } else {
            let data = std::fs::read(path).map_err(|e| {
                BundleError::new(
                    &origin,
                    format!("cannot read it: {e}"),
                    Some("check the path"),
                )
            })?;
            read_tar_gz(&data).map_err(|e| {
                BundleError::new(
                    &origin,
                    format!("is not a bundle archive: {e}"),
                    Some("a bundle is a directory or a .tar.gz made by `omk bundle pack`"),
                )
            })?
        };
        Bundle::from_entries(&origin, entries)
    }

    /// A bundle from its files.
    pub fn from_entries(
        origin: &str,
        entries: BTreeMap<String, Vec<u8>>,
    ) -> Result<Bundle, BundleError> {
        let mut files = BTreeMap::new();
        let mut signatures = BTreeMap::new();
        for (path, data) in entries {
            check_entry_path(&path).map_err(|e| BundleError::new(origin, e, None))?;
            match path.strip_prefix("signatures/") {
                Some(name) if name.ends_with(".sig") && !name.contains('/') => {
                    signatures.insert(name.to_owned(), data);
                }
                _ => {
                    files.insert(path, data);
                }
            }
        }
        let text = files.get(MANIFEST).ok_or_else(|| {
            BundleError::new(
                origin,
                format!("has no `{MANIFEST}`"),
                Some("a bundle's root holds bundle.toml, its components and signatures/"),
            )
        })?;
        let text = std::str::from_utf8(text)
            .map_err(|_| BundleError::new(origin, format!("`{MANIFEST}` is not UTF-8"), None))?;
        let manifest: Manifest = toml::from_str(text).map_err(|e| {
            BundleError::new(
                origin,
                format!("`{MANIFEST}`: {}", e.message().trim()),
                None,
            )
        })?;
        let name_ok = !manifest.name.is_empty()
            && manifest.name.len() <= 64
            && manifest
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(BundleError::new(
                origin,
                format!(
                    "the name `{}` is not 1–64 of a-z, 0-9 and `-`",
                    manifest.name.escape_debug()
                ),
                None,
            ));
        }
        Ok(Bundle {
            origin: format!("{} ({origin})", manifest.name),
            manifest,
            files,
            signatures,
        })
    }

    /// The bundle's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// What a signature covers: every file but the signatures, with its
    /// sha256, in path order.
    pub fn statement(&self) -> Vec<(String, String)> {
        self.files
            .iter()
            .map(|(p, d)| (p.clone(), sha256_hex(d)))
            .collect()
    }

    /// The bundle's digest: the sha256 of its statement.
    pub fn digest(&self) -> String {
        sha256_hex(sign::statement_text(&self.manifest.name, &self.statement()).as_bytes())
    }

    /// Checks the manifest against the files and that this omk supports
    /// its WIT version.
    pub fn check_manifest(&self) -> Result<(), BundleError> {
        self.check_wit()?;
        self.check_files()
    }

    /// Checks that this omk supports the bundle's WIT version.
    pub fn check_wit(&self) -> Result<(), BundleError> {
        let wit = &self.manifest.wit;
        let supported = crate::SUPPORTED_WIT_VERSIONS
            .iter()
            .any(|s| s.split('.').take(2).eq(wit.split('.').take(2)));
        if !supported {
            return Err(BundleError::new(
                &self.origin,
                format!(
                    "targets `omk:gate@{wit}`, which this omk does not support (it loads {})",
                    crate::SUPPORTED_WIT_VERSIONS.join(", ")
                ),
                Some("upgrade omk, or use a bundle built for this version"),
            ));
        }
        Ok(())
    }

    /// Checks the manifest against the files: each gate's file is there
    /// with its sha256, and no file is unlisted.
    pub fn check_files(&self) -> Result<(), BundleError> {
        let e = |m: String| BundleError::new(&self.origin, m, None);
        if self.manifest.gates.is_empty() {
            return Err(e("lists no gates".into()));
        }
        let mut listed = vec![MANIFEST.to_owned()];
        for g in &self.manifest.gates {
            let data = self.files.get(&g.file).ok_or_else(|| {
                e(format!(
                    "gate `{}`: its file `{}` is missing",
                    g.name, g.file
                ))
            })?;
            let sha = sha256_hex(data);
            if g.sha256 != sha {
                return Err(e(format!(
                    "gate `{}`: `{}` has the sha256 {sha}, but bundle.toml says {}",
                    g.name,
                    g.file,
                    if g.sha256.is_empty() {
                        "nothing"
                    } else {
                        &g.sha256
                    }
                )));
            }
            listed.push(g.file.clone());
        }
        if let Some(extra) = self.files.keys().find(|p| !listed.contains(p)) {
            return Err(e(format!(
                "holds `{extra}`, which bundle.toml does not list"
            )));
        }
        Ok(())
    }

    /// The gate `name` of the bundle, with its component.
    pub fn gate(&self, name: &str) -> Option<(&ManifestGate, &[u8])> {
        let g = self.manifest.gates.iter().find(|g| g.name == name)?;
        Some((g, self.files.get(&g.file)?.as_slice()))
    }

    /// Every file, signatures included, by relative path.
    pub fn all_files(&self) -> BTreeMap<String, &[u8]> {
        let mut all: BTreeMap<String, &[u8]> = self
            .files
            .iter()
            .map(|(p, d)| (p.clone(), d.as_slice()))
            .collect();
        for (n, d) in &self.signatures {
            all.insert(format!("{SIGNATURES}/{n}"), d.as_slice());
        }
        all
    }

    /// The bundle as a deterministic `.tar.gz` (sorted entries, no times,
    /// owners or modes beyond 0644).
    pub fn to_tar_gz(&self) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        tar.mode(tar::HeaderMode::Deterministic);
        for (path, data) in self.all_files() {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            // Writing to memory cannot fail.
            let _ = tar.append_data(&mut h, &path, data);
        }
        tar.into_inner()
            .and_then(|gz| gz.finish())
            .unwrap_or_default()
    }

    /// Writes the bundle as a directory at `dir` (which must not exist),
    /// through a temporary sibling renamed into place.
    pub fn write_dir(&self, dir: &Path) -> std::io::Result<()> {
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)?;
        let tmp = tempfile::Builder::new()
            .prefix(crate::atomic::TMP_PREFIX)
            .permissions(crate::atomic::permissions(0o777))
            .tempdir_in(parent)?;
        for (path, data) in self.all_files() {
            let p = tmp.path().join(&path);
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d)?;
            }
            std::fs::write(p, data)?;
        }
        let tmp = tmp.keep();
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::rename(&tmp, dir)?;
        crate::atomic::sync_dir(parent)
    }

    /// Total size of the files, in bytes.
    pub fn size(&self) -> usize {
        self.files
            .values()
            .chain(self.signatures.values())
            .map(Vec::len)
            .sum()
    }
}

/// A relative path with `/` separators and no `.`, `..`, or empty part.
fn check_entry_path(path: &str) -> Result<(), String> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        || path.chars().any(char::is_control);
    if bad {
        return Err(format!(
            "holds an entry with an unsafe path `{}`",
            path.escape_debug()
        ));
    }
    Ok(())
}

fn read_dir(root: &Path) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut out = BTreeMap::new();
    let mut total = 0u64;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let rd =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
        for entry in rd {
            let entry = entry.map_err(|e| e.to_string())?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel_path = rel.join(&name);
            let ty = entry.file_type().map_err(|e| e.to_string())?;
            if ty.is_symlink() {
                return Err(format!(
                    "`{}` is a symlink; bundles hold plain files only",
                    rel_path.display()
                ));
            }
            if ty.is_dir() {
                stack.push(rel_path);
                continue;
            }
            let data = std::fs::read(entry.path()).map_err(|e| e.to_string())?;
            total += data.len() as u64;
            if total > MAX_BUNDLE_BYTES || out.len() >= MAX_FILES {
                return Err("is too large".into());
            }
            let key = rel_path.to_string_lossy().replace('\\', "/");
            out.insert(key, data);
        }
    }
    Ok(out)
}

/// Unpacks a `.tar.gz` in memory, refusing anything but plain files at
/// safe paths, and anything too large.
pub fn read_tar_gz(data: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let gz = flate2::read::GzDecoder::new(data);
    let mut archive = tar::Archive::new(gz.take(MAX_BUNDLE_BYTES + 1));
    let mut out = BTreeMap::new();
    let mut total = 0u64;
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let ty = entry.header().entry_type();
        let path = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        let path = path.trim_start_matches("./").to_owned();
        if ty.is_dir() {
            continue;
        }
        if !ty.is_file() {
            return Err(format!("`{path}` is not a plain file"));
        }
        check_entry_path(&path)?;
        total += entry.header().size().map_err(|e| e.to_string())?;
        if total > MAX_BUNDLE_BYTES || out.len() >= MAX_FILES {
            return Err("it is too large".into());
        }
        let mut buf = Vec::new();
        entry.read_to_end(&mut buf).map_err(|e| e.to_string())?;
        if out.insert(path.clone(), buf).is_some() {
            return Err(format!("`{path}` appears twice"));
        }
    }
    Ok(out)
}

/// Fills in the sha256 and stages the manifest leaves out (from the files),
/// returning the number of gates changed.
pub fn complete_manifest(bundle: &mut Bundle) -> Result<usize, BundleError> {
    let mut changed = 0;
    for g in &mut bundle.manifest.gates {
        let data = bundle.files.get(&g.file).ok_or_else(|| {
            BundleError::new(
                &bundle.origin,
                format!("gate `{}`: its file `{}` is missing", g.name, g.file),
                None,
            )
        })?;
        let sha = sha256_hex(data);
        if g.sha256 != sha {
            g.sha256 = sha;
            changed += 1;
        }
    }
    if changed > 0 {
        let text = toml::to_string(&bundle.manifest)
            .map_err(|e| BundleError::new(&bundle.origin, e.to_string(), None))?;
        bundle.files.insert(MANIFEST.into(), text.into_bytes());
    }
    Ok(changed)
}

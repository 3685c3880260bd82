//! Loading a gate's bytes: the checks that come before any instance — the
//! header (wasm, a component, not text), the compile (or the cache), the
//! contract's shape (exports, WIT version, function types, no imports) —
//! and the errors that name what was expected and what was found.

use std::path::PathBuf;

use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::bindings;
use super::engine::GateEngine;
use super::fault::{clip, one_line};
use super::wasi;
use omk_core::diagnose::{Diagnose, Kind};
use omk_core::sha256_hex;

/// Why a gate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read gate `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`{origin}` is not a WebAssembly component: expected the `\\0asm` header, found {found}"
    )]
    NotWasm { origin: String, found: String },
    #[error("`{origin}` is a core WebAssembly module, not a component")]
    CoreModule { origin: String },
    #[error("`{origin}` is not a valid component: {detail}")]
    Invalid { origin: String, detail: String },
    #[error(
        "`{origin}` does not export `{}`: it exports {found}",
        bindings::INTERFACE
    )]
    WrongWorld { origin: String, found: String },
    #[error(
        "`{origin}` targets `omk:gate@{found}`, which this omk does not support (it loads {})",
        supported_list()
    )]
    UnsupportedVersion { origin: String, found: String },
    #[error("`{origin}` exports `{interface}` without the function `{function}`")]
    MissingFunction {
        origin: String,
        interface: String,
        function: String,
    },
    #[error("`{origin}` exports `{interface}` with the wrong signatures: {detail}")]
    WrongSignature {
        origin: String,
        interface: String,
        detail: String,
    },
    #[error("`{origin}` imports {}, which {}", imports.join(", "), if *wasi_only { "this gate was not granted" } else { "gates may not use" })]
    ForbiddenImport {
        origin: String,
        imports: Vec<String>,
        /// Every import is one sealed WASI provides: granting it would do.
        wasi_only: bool,
    },
    #[error("`{origin}` cannot be prepared: {detail}")]
    Link { origin: String, detail: String },
    #[error("`{origin}` has the sha256 {found}, but the project pins {expected}")]
    DigestMismatch {
        origin: String,
        expected: String,
        found: String,
    },
}

impl Diagnose for LoadError {
    fn kind(&self) -> Kind {
        match self {
            LoadError::Read { source, .. } => omk_core::diagnose::io_kind(source),
            LoadError::DigestMismatch { .. } => Kind::Integrity,
            _ => Kind::Usage,
        }
    }

    fn help(&self) -> Option<String> {
        Some(match self {
            LoadError::Read { .. } => {
                "check the gate's `path` in `.omk/gates.toml`; it is relative to the project root"
                    .into()
            }
            LoadError::NotWasm { .. } | LoadError::Invalid { .. } => {
                "build the gate with `omk gate build`, or point `path` at the `.wasm` it produced"
                    .into()
            }
            LoadError::CoreModule { .. } => {
                "encode it as a component: `wasm-tools component new MODULE.wasm -o gate.wasm` \
                 (Rust gates built with the omk SDK for wasm32-unknown-unknown need this step)"
                    .into()
            }
            LoadError::WrongWorld { .. }
            | LoadError::MissingFunction { .. }
            | LoadError::WrongSignature { .. } => format!(
                "a gate implements the world `gate` of `wit/v{}/gate.wit`; regenerate its bindings from that file",
                bindings::SUPPORTED[0]
            ),
            LoadError::UnsupportedVersion { .. } => format!(
                "this omk loads `omk:gate` {} through {}: rebuild the gate against \
                 `wit/v{}/gate.wit`, or upgrade omk",
                bindings::SUPPORTED[bindings::SUPPORTED.len() - 1],
                bindings::SUPPORTED[0],
                bindings::SUPPORTED[0]
            ),
            LoadError::ForbiddenImport {
                wasi_only: true, ..
            } => "grant it sealed WASI (no files, no network, no environment, frozen clocks): \
                 `wasi = true` in its `[[gate]]` entry of `.omk/gates.toml`"
                .into(),
            LoadError::ForbiddenImport { .. } => {
                "gates get no capabilities beyond sealed WASI 0.2: build for \
                 `wasm32-unknown-unknown`, or remove the imports"
                    .into()
            }
            LoadError::Link { .. } => return None,
            LoadError::DigestMismatch { .. } => {
                "if the new file is intended, update `sha256` in `.omk/gates.toml`".into()
            }
        })
    }
}

fn supported_list() -> String {
    bindings::SUPPORTED
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A gate name: 1–64 of a-z, 0-9 and `-`.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A gate name from its origin when `describe` gave none: the file stem,
/// cleaned to the name alphabet.
pub(super) fn fallback_name(origin: &str) -> String {
    let stem = origin
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(origin)
        .trim_end_matches(".wasm");
    let cleaned: String = stem
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "unnamed".into()
    } else {
        cleaned
    }
}

/// Checks that `bytes` are a component and compiles them (or loads them
/// from the cache); returns the component and its sha256.
pub(crate) fn compile(
    engine: &GateEngine,
    bytes: &[u8],
    origin: &str,
) -> Result<(Component, String), LoadError> {
    check_header(bytes, origin)?;
    let sha256 = sha256_hex(bytes);
    let component = engine
        .component(bytes, &sha256)
        .map_err(|e| LoadError::Invalid {
            origin: origin.to_owned(),
            detail: clip(&one_line(&e), 400),
        })?;
    Ok((component, sha256))
}

/// `\0asm` then a version: 1 for a core module, 0x0d + layer 1 for a
/// component.
fn check_header(bytes: &[u8], origin: &str) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        let found = if bytes.is_empty() {
            "an empty file".to_owned()
        } else if bytes
            .iter()
            .take(64)
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        {
            "text (WAT or WIT must be compiled first)".to_owned()
        } else {
            let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
            format!("the bytes {}", head.join(" "))
        };
        return Err(LoadError::NotWasm {
            origin: origin.to_owned(),
            found,
        });
    }
    match &bytes[4..8] {
        [1, 0, 0, 0] => Err(LoadError::CoreModule {
            origin: origin.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Checks exports and imports before linking; returns the WIT version
/// (read from the exported interface's name) and whether the component
/// imports WASI (which `grant_wasi` allows). A 0.2 gate may also import the
/// host's `omk:gate/context` of its own version.
pub(super) fn check_shape(
    engine: &wasmtime::Engine,
    component: &Component,
    origin: &str,
    grant_wasi: bool,
) -> Result<(String, bool), LoadError> {
    let ty = component.component_type();
    let prefix = format!("{}@", bindings::INTERFACE);
    let mut found = Vec::new();
    let mut policy = None;
    for (name, item) in ty.exports(engine) {
        if let Some(version) = name.strip_prefix(&prefix) {
            policy = Some((name.to_owned(), version.to_owned(), item.ty));
        }
        found.push(format!("`{name}`"));
    }
    let Some((name, version, item)) = policy else {
        return Err(LoadError::WrongWorld {
            origin: origin.to_owned(),
            found: if found.is_empty() {
                "nothing".into()
            } else {
                found.join(", ")
            },
        });
    };
    if !bindings::SUPPORTED.iter().any(|s| same_minor(s, &version)) {
        return Err(LoadError::UnsupportedVersion {
            origin: origin.to_owned(),
            found: version,
        });
    }
    let imports: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .filter(|name| !bindings::provides(name, &version))
        .collect();
    let refused: Vec<String> = imports
        .iter()
        .filter(|i| !(grant_wasi && wasi::provides(i)))
        .map(|i| format!("`{i}`"))
        .collect();
    if !refused.is_empty() {
        return Err(LoadError::ForbiddenImport {
            origin: origin.to_owned(),
            wasi_only: !grant_wasi && imports.iter().all(|i| wasi::provides(i)),
            imports: refused,
        });
    }
    let imports_wasi = !imports.is_empty();
    let ComponentItem::ComponentInstance(instance) = item else {
        return Err(LoadError::WrongSignature {
            origin: origin.to_owned(),
            interface: name,
            detail: "it is not an instance".into(),
        });
    };
    let functions: Vec<String> = instance
        .exports(engine)
        .map(|(n, _)| n.to_owned())
        .collect();
    if let Some(missing) = bindings::functions(&version)
        .iter()
        .find(|f| !functions.iter().any(|n| n == *f))
    {
        return Err(LoadError::MissingFunction {
            origin: origin.to_owned(),
            interface: name,
            function: (*missing).to_owned(),
        });
    }
    Ok((version, imports_wasi))
}

/// Whether two semver versions share major and minor (the compatibility
/// unit of a `0.x` WIT package).
pub(super) fn same_minor(a: &str, b: &str) -> bool {
    bindings::minor(a) == bindings::minor(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks() {
        assert!(matches!(
            check_header(b"", "x"),
            Err(LoadError::NotWasm { .. })
        ));
        let e = check_header(b"(component)", "x").unwrap_err().to_string();
        assert!(e.contains("text"), "{e}");
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0", "x"),
            Err(LoadError::CoreModule { .. })
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0", "x").is_ok());
    }

    #[test]
    fn versions_and_names() {
        assert!(same_minor("0.1.0", "0.1.7"));
        assert!(!same_minor("0.1.0", "0.2.0"));
        assert!(valid_name("budget"));
        assert!(!valid_name("Budget"));
        assert!(!valid_name(""));
        assert_eq!(fallback_name("gates/My Gate.wasm"), "my-gate");
        assert_eq!(fallback_name("std:budget"), "budget");
    }
}

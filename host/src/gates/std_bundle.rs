//! The std bundle: omk's standard gates, embedded in the binary.
//!
//! `budget`, `path` and `acceptance` are built from `plugins/` as
//! import-free components by `cargo xtask std-gates`, committed under
//! `plugins/std-bundle/` with their manifest, and embedded here, so a fresh
//! clone runs with no wasm toolchain. CI rebuilds them and fails when these
//! bytes are stale (`cargo xtask std-gates --check`).

/// One embedded std gate.
#[derive(Debug, Clone, Copy)]
pub struct StdGate {
    /// Its name in `.omk/gates.toml` (`budget`).
    pub name: &'static str,
    /// The component's bytes.
    pub bytes: &'static [u8],
}

macro_rules! std_gate {
    ($name:literal) => {
        StdGate {
            name: $name,
            bytes: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../plugins/std-bundle/",
                $name,
                ".wasm"
            )),
        }
    };
}

/// The std gates, in their default order.
pub const GATES: [StdGate; 3] = [
    std_gate!("budget"),
    std_gate!("path"),
    std_gate!("acceptance"),
];

/// The bundle manifest (`bundle.toml`).
pub const MANIFEST: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../plugins/std-bundle/bundle.toml"
));

/// The std gate called `name`.
pub fn get(name: &str) -> Option<&'static StdGate> {
    GATES.iter().find(|g| g.name == name)
}

/// The names of the std gates, for error messages.
pub fn names() -> String {
    GATES
        .iter()
        .map(|g| format!("`{}`", g.name))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::gate::sha256_hex;

    #[test]
    fn manifest_lists_each_embedded_gate_with_its_digest() {
        let manifest: toml::Table = toml::from_str(MANIFEST).unwrap();
        let listed = manifest["gate"].as_array().unwrap();
        assert_eq!(listed.len(), GATES.len());
        for (entry, gate) in listed.iter().zip(GATES) {
            assert_eq!(entry["name"].as_str(), Some(gate.name));
            assert_eq!(
                entry["sha256"].as_str(),
                Some(sha256_hex(gate.bytes).as_str()),
                "{}",
                gate.name
            );
        }
    }
}

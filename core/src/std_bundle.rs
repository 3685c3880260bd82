//! The std bundle: omk's standard gates, embedded in the binary.
//!
//! `budget`, `path`, `command` and `acceptance` are built from `plugins/` as
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
pub const GATES: [StdGate; 4] = [
    std_gate!("budget"),
    std_gate!("path"),
    std_gate!("command"),
    std_gate!("acceptance"),
];

/// The public half of omk's release key, which signs the std bundle.
pub const RELEASE_KEY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../plugins/release-key/release.pub"
));
/// Its key id.
pub const RELEASE_KEY_ID: &str = "d646cac084df15c9";
/// The std bundle's signature by the release key.
pub const SIGNATURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../plugins/std-bundle/signatures/d646cac084df15c9.sig"
));

/// The bundle manifest (`bundle.toml`).
pub const MANIFEST: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../plugins/std-bundle/bundle.toml"
));

/// The std bundle as a [`Bundle`], its signature included.
pub fn bundle() -> Bundle {
    let mut files = std::collections::BTreeMap::new();
    files.insert("bundle.toml".to_owned(), MANIFEST.as_bytes().to_vec());
    for g in GATES {
        files.insert(format!("{}.wasm", g.name), g.bytes.to_vec());
    }
    files.insert(
        format!("signatures/{RELEASE_KEY_ID}.sig"),
        SIGNATURE.as_bytes().to_vec(),
    );
    // The embedded files are checked by this module's tests.
    Bundle::from_entries("embedded", files)
        .unwrap_or_else(|e| panic!("the embedded std bundle is broken: {e}"))
}

/// The trust policy the std bundle is verified against: the release key.
pub fn trust() -> TrustPolicy {
    TrustPolicy {
        keys: PublicKey::parse(RELEASE_KEY).into_iter().collect(),
        require_signature: true,
        minimum_signers: 1,
        min_version: None,
    }
}

/// The std bundle as decisions record it.
pub fn reference() -> BundleRef {
    static REF: std::sync::OnceLock<BundleRef> = std::sync::OnceLock::new();
    REF.get_or_init(|| {
        let b = bundle();
        BundleRef {
            name: b.manifest.name.clone(),
            version: b.manifest.version.clone(),
            digest: b.digest(),
            signers: vec![RELEASE_KEY_ID.to_owned()],
        }
    })
    .clone()
}

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

use crate::bundle::sign::{PublicKey, TrustPolicy};
use crate::bundle::{Bundle, BundleRef};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256_hex;

    #[test]
    fn the_embedded_bundle_verifies_with_the_release_key() {
        let b = bundle();
        let v = crate::bundle::sign::verify(&b, &trust()).unwrap();
        assert_eq!(v.trusted_signers(), [RELEASE_KEY_ID]);
        assert_eq!(PublicKey::parse(RELEASE_KEY).unwrap().id(), RELEASE_KEY_ID);
    }

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

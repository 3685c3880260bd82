//! Signatures and trust for bundles. Keys, the signed statement and the
//! signature file format live in the `omk-signing` crate (shared with the
//! tool that signs the std bundle) and are re-exported here.
//!
//! [`verify`] refuses, naming the bundle and the file: a signature that
//! does not match its statement, a file changed, added or missing since
//! signing, no signature when one is required, and fewer trusted signers
//! than the policy asks.

use serde::Serialize;

pub use omk_signing::{PrivateKey, PublicKey, SignatureFile, statement_text};

use super::{Bundle, BundleError};

/// Signs `bundle` with `key`, adding (or replacing) that key's signature;
/// returns the key id.
pub fn sign(bundle: &mut Bundle, key: &PrivateKey) -> String {
    let (name, text) = omk_signing::sign(bundle.name(), bundle.statement(), key);
    bundle.signatures.insert(name, text.into_bytes());
    key.public().id()
}

/// What a project trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    pub keys: Vec<PublicKey>,
    /// Whether a bundle must carry a trusted signature.
    pub require_signature: bool,
    /// How many distinct trusted signers are needed (when required).
    pub minimum_signers: usize,
    /// The oldest release of the bundle accepted (`[[bundle]] min_version`):
    /// a signed old release is still old.
    pub min_version: Option<semver::Version>,
}

/// One verified signer.
#[derive(Debug, Clone, Serialize)]
pub struct SignerInfo {
    pub key: String,
    pub key_id: String,
    pub trusted: bool,
}

/// A bundle that passed verification.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub bundle: String,
    pub version: String,
    pub digest: String,
    /// Every valid signature, trusted or not.
    pub signers: Vec<SignerInfo>,
}

/// A verified bundle, as decisions record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BundleRef {
    pub name: String,
    pub version: String,
    /// The sha256 of its signed statement.
    pub digest: String,
    /// Key ids of its trusted signers.
    pub signers: Vec<String>,
}

impl BundleRef {
    /// The record of a bundle that passed verification.
    pub fn from_verified(v: &Verified) -> BundleRef {
        BundleRef {
            name: v.bundle.clone(),
            version: v.version.clone(),
            digest: v.digest.clone(),
            signers: v.trusted_signers(),
        }
    }
}

impl Verified {
    /// The trusted signers' key ids, for the proof.
    pub fn trusted_signers(&self) -> Vec<String> {
        self.signers
            .iter()
            .filter(|s| s.trusted)
            .map(|s| s.key_id.clone())
            .collect()
    }
}

/// Verifies `bundle` against `policy`.
pub fn verify(bundle: &Bundle, policy: &TrustPolicy) -> Result<Verified, BundleError> {
    let origin = &bundle.origin;
    let refuse = |m: String, help: &str| BundleError::new(origin, m, Some(help)).integrity();
    let actual = bundle.statement();
    let mut signers: Vec<SignerInfo> = Vec::new();
    for (name, data) in &bundle.signatures {
        let text = std::str::from_utf8(data).map_err(|_| {
            refuse(
                format!("signature `{name}` is not UTF-8"),
                "re-sign the bundle",
            )
        })?;
        let (key, sig) = SignatureFile::check(text).map_err(|e| {
            refuse(
                format!("signature `{name}` {e}"),
                "the signature was altered; get the bundle again from its publisher",
            )
        })?;
        if sig.bundle != bundle.name() {
            return Err(refuse(
                format!(
                    "signature `{name}` by key {} is for bundle `{}`",
                    key.id(),
                    sig.bundle
                ),
                "get the bundle again from its publisher",
            ));
        }
        // The signature is genuine: now the files must be what was signed.
        for (path, sha) in &sig.files {
            match actual.iter().find(|(p, _)| p == path) {
                None => {
                    return Err(refuse(
                        format!("`{path}` was signed by key {} but is missing", key.id()),
                        "get the complete bundle from its publisher",
                    ));
                }
                Some((_, now)) if now != sha => {
                    return Err(refuse(
                        format!("`{path}` was changed after key {} signed it", key.id()),
                        "do not use this bundle; get it again from its publisher",
                    ));
                }
                _ => {}
            }
        }
        if let Some((path, _)) = actual
            .iter()
            .find(|(p, _)| !sig.files.iter().any(|(s, _)| s == p))
        {
            return Err(refuse(
                format!(
                    "`{path}` was added after key {} signed the bundle",
                    key.id()
                ),
                "do not use this bundle; get it again from its publisher",
            ));
        }
        if !signers.iter().any(|s| s.key_id == key.id()) {
            signers.push(SignerInfo {
                key_id: key.id(),
                trusted: policy.keys.contains(&key),
                key: key.to_string(),
            });
        }
    }
    bundle.check_manifest()?;
    if let Some(min) = &policy.min_version {
        let version = &bundle.manifest.version;
        match semver::Version::parse(version.trim()) {
            Ok(v) if v >= *min => {}
            Ok(_) => {
                return Err(refuse(
                    format!(
                        "is version {version}, older than {min}, the oldest this project accepts"
                    ),
                    "get a newer release from its publisher, or lower `min_version` for it in .omk/gates.toml",
                ));
            }
            Err(_) => {
                return Err(refuse(
                    format!(
                        "has the version `{version}`, which cannot be compared with `min_version` {min}"
                    ),
                    "ask its publisher for a semantic version, or remove `min_version` for it in .omk/gates.toml",
                ));
            }
        }
    }
    let trusted = signers.iter().filter(|s| s.trusted).count();
    if policy.require_signature {
        if signers.is_empty() {
            return Err(refuse(
                "is unsigned, and this project requires signed bundles".into(),
                "ask its publisher for a signed bundle, or set `require_signature = false` for it in .omk/gates.toml",
            ));
        }
        let needed = policy.minimum_signers.max(1);
        if trusted < needed {
            let by: Vec<String> = signers.iter().map(|s| s.key_id.clone()).collect();
            let what = if trusted == 0 {
                format!(
                    "is signed only by keys this project does not trust ({})",
                    by.join(", ")
                )
            } else {
                format!("has {trusted} trusted signer(s), and this project requires {needed}")
            };
            let keys: Vec<String> = signers
                .iter()
                .filter(|s| !s.trusted)
                .map(|s| format!("\"{}\"", s.key))
                .collect();
            return Err(BundleError::new(
                origin,
                what,
                Some(&format!(
                    "if you trust its publisher, add its key to .omk/gates.toml: `[trust] keys = [{}]`",
                    keys.join(", ")
                )),
            )
            .integrity());
        }
    }
    Ok(Verified {
        bundle: bundle.name().to_owned(),
        version: bundle.manifest.version.clone(),
        digest: bundle.digest(),
        signers,
    })
}

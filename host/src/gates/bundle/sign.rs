//! Keys, signatures and trust for bundles.
//!
//! - A private key file holds `omk-ed25519-private-key` and the 32-byte
//!   seed in hex; it is created with mode 0600. Its public half sits beside
//!   it in `KEYFILE.pub` as `ed25519:<64 hex>`, the form trust lists use.
//! - A key's id is the first 16 hex digits of the sha256 of its public key.
//! - `signatures/<key-id>.sig` (TOML) holds the signer's public key, the
//!   signed statement (bundle name, every file with its sha256) and the
//!   signature over the statement's canonical text.
//!
//! [`verify`] refuses, naming the bundle and the file: a signature that
//! does not match its statement, a file changed, added or missing since
//! signing, no signature when one is required, and fewer trusted signers
//! than the policy asks.

use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::{Bundle, BundleError};
use crate::gates::gate::sha256_hex;

const PRIVATE_HEADER: &str = "omk-ed25519-private-key";
const STATEMENT_HEADER: &str = "omk-bundle-statement-v1";

/// A public key, as `ed25519:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Parses `ed25519:<64 hex>`.
    pub fn parse(s: &str) -> Result<PublicKey, String> {
        let hex_part = s.trim().strip_prefix("ed25519:").ok_or_else(|| {
            format!(
                "`{}` is not a public key: expected `ed25519:<64 hex digits>`",
                s.trim()
            )
        })?;
        let bytes = hex::decode(hex_part).map_err(|_| format!("`{s}` is not hex"))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("`{s}` is not 32 bytes"))?;
        VerifyingKey::from_bytes(&arr).map_err(|_| format!("`{s}` is not a valid ed25519 key"))?;
        Ok(PublicKey(arr))
    }

    /// The key's id: 16 hex digits.
    pub fn id(&self) -> String {
        sha256_hex(&self.0)[..16].to_owned()
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ed25519:{}", hex::encode(self.0))
    }
}

/// A signing key.
pub struct PrivateKey(SigningKey);

impl PrivateKey {
    /// A new key from the operating system's randomness.
    pub fn generate() -> Result<PrivateKey, String> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
        Ok(PrivateKey(SigningKey::from_bytes(&seed)))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<PrivateKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read key `{}`: {e}", path.display()))?;
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(PRIVATE_HEADER) {
            return Err(format!("`{}` is not an omk private key", path.display()));
        }
        let seed: [u8; 32] = lines
            .next()
            .and_then(|l| hex::decode(l.trim()).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                format!(
                    "`{}` is damaged: its key is not 32 hex bytes",
                    path.display()
                )
            })?;
        Ok(PrivateKey(SigningKey::from_bytes(&seed)))
    }

    /// Writes the key to `path` (mode 0600, never over an existing file)
    /// and its public half to `path.pub`.
    pub fn save(&self, path: &Path) -> std::io::Result<std::path::PathBuf> {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path)?;
        writeln!(f, "{PRIVATE_HEADER}\n{}", hex::encode(self.0.to_bytes()))?;
        f.sync_all()?;
        let mut pub_path = path.as_os_str().to_owned();
        pub_path.push(".pub");
        let pub_path = std::path::PathBuf::from(pub_path);
        crate::atomic::write(&pub_path, format!("{}\n", self.public()).as_bytes())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pub_path, std::fs::Permissions::from_mode(0o644))?;
        }
        Ok(pub_path)
    }
}

/// `signatures/<key-id>.sig`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// The signer's public key, `ed25519:<hex>`.
    pub key: String,
    /// The signature over the statement's text, hex.
    pub signature: String,
    /// The bundle's name.
    pub bundle: String,
    /// Every file signed, with its sha256: `[path, sha256]`.
    pub files: Vec<(String, String)>,
}

/// The canonical text a signature covers.
pub fn statement_text(bundle: &str, files: &[(String, String)]) -> String {
    let mut t = format!("{STATEMENT_HEADER}\nbundle {bundle}\n");
    for (p, sha) in files {
        t.push_str(&format!("{sha} {p}\n"));
    }
    t
}

/// Signs `bundle` with `key`, adding (or replacing) that key's signature.
pub fn sign(bundle: &mut Bundle, key: &PrivateKey) -> String {
    let files = bundle.statement();
    let text = statement_text(bundle.name(), &files);
    let sig = key.0.sign(text.as_bytes());
    let file = SignatureFile {
        key: key.public().to_string(),
        signature: hex::encode(sig.to_bytes()),
        bundle: bundle.name().to_owned(),
        files,
    };
    let id = key.public().id();
    let body = toml::to_string(&file).unwrap_or_default();
    bundle
        .signatures
        .insert(format!("{id}.sig"), body.into_bytes());
    id
}

/// What a project trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    pub keys: Vec<PublicKey>,
    /// Whether a bundle must carry a trusted signature.
    pub require_signature: bool,
    /// How many distinct trusted signers are needed (when required).
    pub minimum_signers: usize,
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
    let refuse = |m: String, help: &str| BundleError::new(origin, m, Some(help));
    let actual = bundle.statement();
    let mut signers: Vec<SignerInfo> = Vec::new();
    for (name, data) in &bundle.signatures {
        let text = std::str::from_utf8(data).map_err(|_| {
            refuse(
                format!("signature `{name}` is not UTF-8"),
                "re-sign the bundle",
            )
        })?;
        let sig: SignatureFile = toml::from_str(text).map_err(|e| {
            refuse(
                format!("signature `{name}` is damaged: {}", e.message().trim()),
                "re-sign the bundle",
            )
        })?;
        let key = PublicKey::parse(&sig.key)
            .map_err(|e| refuse(format!("signature `{name}`: {e}"), "re-sign the bundle"))?;
        let bytes: [u8; 64] = hex::decode(&sig.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                refuse(
                    format!("signature `{name}` is damaged"),
                    "re-sign the bundle",
                )
            })?;
        let vk = VerifyingKey::from_bytes(&key.0)
            .map_err(|_| refuse(format!("signature `{name}`: bad key"), "re-sign the bundle"))?;
        let text = statement_text(&sig.bundle, &sig.files);
        if sig.bundle != bundle.name()
            || vk
                .verify_strict(text.as_bytes(), &Signature::from_bytes(&bytes))
                .is_err()
        {
            return Err(refuse(
                format!(
                    "signature `{name}` by key {} does not match what it claims to sign",
                    key.id()
                ),
                "the signature was altered; get the bundle again from its publisher",
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
            return Err(refuse(
                what,
                "add the publisher's public key to `[trust] keys` in .omk/gates.toml, if you trust it",
            ));
        }
    }
    Ok(Verified {
        bundle: bundle.name().to_owned(),
        version: bundle.manifest.version.clone(),
        digest: bundle.digest(),
        signers,
    })
}

//! omk bundle signatures, shared by omk and the tool that signs the std
//! bundle.
//!
//! - A private key file holds `omk-ed25519-private-key` and the 32-byte
//!   seed in hex; it is created with mode 0600. Its public half sits beside
//!   it in `KEYFILE.pub` as `ed25519:<64 hex>`, the form trust lists use.
//! - A key's id is the first 16 hex digits of the sha256 of its public key.
//! - A signature covers a *statement*: the bundle's name and every file but
//!   the signatures with its sha256 ([`statement_text`]).
//! - `signatures/<key-id>.sig` ([`SignatureFile`], TOML) holds the signer's
//!   public key, the statement and the signature.
//! - [`PrivateKey::sign_message`] and [`PublicKey::verify_message`] sign
//!   any other text omk vouches for (the event log's checkpoints); each
//!   such text starts with a header naming what it is, so a signature over
//!   one kind of text is never valid as another.

use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

    /// Whether `signature` (128 hex digits) is this key's over `message`.
    pub fn verify_message(&self, message: &[u8], signature: &str) -> bool {
        let Some(bytes) = hex::decode(signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
        else {
            return false;
        };
        VerifyingKey::from_bytes(&self.0)
            .and_then(|vk| vk.verify_strict(message, &Signature::from_bytes(&bytes)))
            .is_ok()
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ed25519:{}", hex::encode(self.0))
    }
}

/// A signing key.
pub struct PrivateKey(SigningKey);

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

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

    /// This key's signature over `message`, as 128 hex digits.
    pub fn sign_message(&self, message: &[u8]) -> String {
        hex::encode(self.0.sign(message).to_bytes())
    }

    /// The key file's text (what [`PrivateKey::save`] writes).
    pub fn to_text(&self) -> String {
        format!("{PRIVATE_HEADER}\n{}\n", hex::encode(self.0.to_bytes()))
    }

    /// A key from a key file's text; `origin` names it in errors.
    pub fn from_text(text: &str, origin: &str) -> Result<PrivateKey, String> {
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(PRIVATE_HEADER) {
            return Err(format!("`{origin}` is not an omk private key"));
        }
        let seed: [u8; 32] = lines
            .next()
            .and_then(|l| hex::decode(l.trim()).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("`{origin}` is damaged: its key is not 32 hex bytes"))?;
        Ok(PrivateKey(SigningKey::from_bytes(&seed)))
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<PrivateKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read key `{}`: {e}", path.display()))?;
        PrivateKey::from_text(&text, &path.display().to_string())
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
        f.write_all(self.to_text().as_bytes())?;
        f.sync_all()?;
        let mut pub_path = path.as_os_str().to_owned();
        pub_path.push(".pub");
        let pub_path = std::path::PathBuf::from(pub_path);
        std::fs::write(&pub_path, format!("{}\n", self.public()))?;
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

/// Signs the statement of bundle `name` over `files` (`[path, sha256]`,
/// in path order); returns the signature file's name and contents.
pub fn sign(name: &str, files: Vec<(String, String)>, key: &PrivateKey) -> (String, String) {
    let text = statement_text(name, &files);
    let sig = key.0.sign(text.as_bytes());
    let file = SignatureFile {
        key: key.public().to_string(),
        signature: hex::encode(sig.to_bytes()),
        bundle: name.to_owned(),
        files,
    };
    (
        format!("{}.sig", key.public().id()),
        toml::to_string(&file).unwrap_or_default(),
    )
}

impl SignatureFile {
    /// Parses a signature file and checks the signature against the
    /// statement it carries; returns the signer's key.
    pub fn check(text: &str) -> Result<(PublicKey, SignatureFile), String> {
        let sig: SignatureFile =
            toml::from_str(text).map_err(|e| format!("damaged: {}", e.message().trim()))?;
        let key = PublicKey::parse(&sig.key)?;
        let bytes: [u8; 64] = hex::decode(&sig.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("damaged: the signature is not 64 hex bytes")?;
        let vk = VerifyingKey::from_bytes(&key.0).map_err(|_| "bad key".to_owned())?;
        let text = statement_text(&sig.bundle, &sig.files);
        vk.verify_strict(text.as_bytes(), &Signature::from_bytes(&bytes))
            .map_err(|_| format!("does not match what it claims to sign (key {})", key.id()))?;
        Ok((key, sig))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_check() {
        let k = PrivateKey::generate().unwrap();
        let files = vec![("a".to_owned(), "00".repeat(32))];
        let (name, text) = sign("b", files.clone(), &k);
        assert_eq!(name, format!("{}.sig", k.public().id()));
        let (key, sig) = SignatureFile::check(&text).unwrap();
        assert_eq!(key, k.public());
        assert_eq!(sig.files, files);
        let forged = text.replace("\"b\"", "\"c\"");
        assert!(SignatureFile::check(&forged).is_err());
        // Deterministic: the same statement signs the same.
        assert_eq!(sign("b", files, &k).1, text);
    }

    #[test]
    fn messages_and_key_text() {
        let k = PrivateKey::generate().unwrap();
        let sig = k.sign_message(b"omk-test\nhello");
        assert!(k.public().verify_message(b"omk-test\nhello", &sig));
        assert!(!k.public().verify_message(b"omk-test\nhellO", &sig));
        assert!(!k.public().verify_message(b"omk-test\nhello", "zz"));
        let other = PrivateKey::generate().unwrap();
        assert!(!other.public().verify_message(b"omk-test\nhello", &sig));
        let again = PrivateKey::from_text(&k.to_text(), "k").unwrap();
        assert_eq!(again.public(), k.public());
        assert!(PrivateKey::from_text("nope", "k").is_err());
    }
}

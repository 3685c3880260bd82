//! The machine's keys: secrets omk creates once and keeps on this machine,
//! outside every project, worktree and goal, readable by their owner only.
//!
//! They live in `keys/` of omk's configuration directory
//! (`$XDG_CONFIG_HOME/omk/keys`, else `~/.config/omk/keys`; the folder is
//! mode 0700, each file 0600):
//!
//! | file | what it is | what it protects |
//! |---|---|---|
//! | `cache.key` | 32 random bytes, hex | compiled components in the cache: each is authenticated by a MAC under this key ([`crate::gates::ComponentCache`]) |
//! | `log.key` (and `log.key.pub`) | an ed25519 signing key | the event log: checkpoints of its head are signed with it ([`crate::proof::anchor`]) |
//!
//! Each is created the first time it is needed and never replaced: two
//! processes creating one at once agree on the one that landed first (it is
//! written to a temporary file and linked into place, which fails if the
//! name is taken). A damaged key is an error naming the file, not a new key:
//! replacing it would silently disown everything signed before.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use omk_signing::PrivateKey;

use omk_core::diagnose::{Diagnose, Kind};

/// The key that authenticates compiled components.
pub const CACHE_KEY: &str = "cache.key";
/// The key that signs event-log checkpoints.
pub const LOG_KEY: &str = "log.key";

/// A key that cannot be read or created.
#[derive(Debug, thiserror::Error)]
#[error("key `{}`: {detail}", path.display())]
pub struct KeyError {
    pub path: PathBuf,
    pub detail: String,
}

impl Diagnose for KeyError {
    fn kind(&self) -> Kind {
        Kind::System
    }

    fn help(&self) -> Option<String> {
        Some(format!(
            "omk keeps its keys in `{}` (mode 0600); make it writable, or set XDG_CONFIG_HOME to a directory that is; a damaged key must be moved away by hand",
            self.path.parent().unwrap_or(Path::new(".")).display()
        ))
    }
}

/// The machine's keys folder.
pub fn dir() -> Result<PathBuf, KeyError> {
    crate::dirs::config_dir()
        .map(|d| d.join("keys"))
        .ok_or_else(|| KeyError {
            path: PathBuf::from("$XDG_CONFIG_HOME/omk/keys"),
            detail: "neither XDG_CONFIG_HOME nor HOME names a directory".into(),
        })
}

/// The cache MAC key in `dir`, created on first use.
pub fn cache_key(dir: &Path) -> Result<[u8; 32], KeyError> {
    let path = dir.join(CACHE_KEY);
    let text = read_or_create(&path, || {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| format!("no randomness: {e}"))?;
        Ok(format!("{}\n", hex::encode(key)))
    })?;
    hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| KeyError {
            path,
            detail: "damaged: not 32 hex bytes".into(),
        })
}

/// The log signing key in `dir` if one was ever created (verifying a log
/// creates nothing).
pub fn existing_log_key(dir: &Path) -> Result<Option<PrivateKey>, KeyError> {
    let path = dir.join(LOG_KEY);
    match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(KeyError {
            path,
            detail: format!("cannot read it: {e}"),
        }),
        Ok(text) => PrivateKey::from_text(&text, &path.display().to_string())
            .map(Some)
            .map_err(|detail| KeyError { path, detail }),
    }
}

/// The log signing key in `dir`, created on first use (with `log.key.pub`
/// beside it).
pub fn log_key(dir: &Path) -> Result<PrivateKey, KeyError> {
    let path = dir.join(LOG_KEY);
    let text = read_or_create(&path, || Ok(PrivateKey::generate()?.to_text()))?;
    let key =
        PrivateKey::from_text(&text, &path.display().to_string()).map_err(|detail| KeyError {
            path: path.clone(),
            detail,
        })?;
    let public = dir.join(format!("{LOG_KEY}.pub"));
    if !public.exists() {
        // Convenience only (to copy to a verifier elsewhere); never read.
        let _ = omk_core::atomic::write(&public, format!("{}\n", key.public()).as_bytes());
    }
    Ok(key)
}

/// The text of the key file at `path`; if there is none, `make`'s, written
/// there first (mode 0600) unless another process wrote one meanwhile.
fn read_or_create(
    path: &Path,
    make: impl FnOnce() -> Result<String, String>,
) -> Result<String, KeyError> {
    let err = |detail: String| KeyError {
        path: path.to_owned(),
        detail,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok(text),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(err(format!("cannot read it: {e}")));
        }
        Err(_) => {}
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| err(format!("cannot create its folder: {e}")))?;
    let text = make().map_err(err)?;
    let tmp = tempfile::Builder::new()
        .prefix(omk_core::atomic::TMP_PREFIX)
        .permissions(omk_core::atomic::permissions(0o600))
        .tempfile_in(dir)
        .map_err(|e| err(format!("cannot create it: {e}")))?;
    std::fs::write(tmp.path(), &text).map_err(|e| err(format!("cannot write it: {e}")))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| err(format!("cannot write it: {e}")))?;
    // A link fails where the name is taken: the first key to land wins.
    match std::fs::hard_link(tmp.path(), path) {
        Ok(()) => {
            let _ = omk_core::atomic::sync_dir(dir);
            Ok(text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))
        }
        Err(e) => Err(err(format!("cannot create it: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_private_and_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let a = cache_key(&dir).unwrap();
        assert_eq!(cache_key(&dir).unwrap(), a);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join(CACHE_KEY)), 0o600);
        assert_eq!(mode(&dir), 0o700);
        let k = log_key(&dir).unwrap();
        assert_eq!(log_key(&dir).unwrap().public(), k.public());
        assert_eq!(mode(&dir.join(LOG_KEY)), 0o600);
        std::fs::write(dir.join(CACHE_KEY), "damaged\n").unwrap();
        assert!(cache_key(&dir).unwrap_err().detail.contains("damaged"));
    }

    #[test]
    fn racing_creators_agree() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| cache_key(&dir).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
    }
}

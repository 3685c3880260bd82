//! Atomic file writes: every piece of state omk keeps is replaced whole or
//! not at all.
//!
//! [`write`] writes to a temporary file in the same directory, fsyncs it,
//! renames it over the target and fsyncs the directory, so a crash leaves
//! either the old file or the new one, never a torn mix. A crash before the
//! rename leaves a stray `.omk-tmp*` file beside the target, which readers
//! ignore and [`write`] never mistakes for state.
//!
//! A file [`write`] creates gets the mode any new file would (`0666` less
//! the umask), since people read and share what omk writes (reports,
//! bundles, a gate's sources); [`write_private`] keeps a file to its owner
//! (`0600`), for keys.

use std::io::Write;
use std::path::Path;

/// The prefix of temporary files, for readers to skip.
pub const TMP_PREFIX: &str = ".omk-tmp";

/// Replaces `path` with `bytes` atomically, with the mode a new file gets
/// (`0666` less the umask). A path that exists and is not a regular file
/// (`/dev/null`, a pipe, a terminal) is written to directly: renaming over
/// it would replace the device itself.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_mode(path, bytes, 0o666)
}

/// [`write`], readable and writable by the owner only (`0600`): for keys.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_mode(path, bytes, 0o600)
}

/// [`write`], keeping the mode of the file it replaces (a user's config
/// holding a key stays `0600`); a new file gets [`write`]'s.
pub fn write_keeping_mode(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => write_mode(path, bytes, m.permissions().mode() & 0o7777),
        _ => write(path, bytes),
    }
}

fn write_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    if let Ok(m) = std::fs::metadata(path)
        && !m.is_file()
    {
        return std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .write_all(bytes);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .permissions(permissions(mode))
        .tempfile_in(dir)
        // The error names the temporary file, which never existed: say
        // only what went wrong (the caller names `path`).
        .map_err(|e| match e.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(e.kind(), e.kind().to_string()),
        })?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Replaces `path` with `value` as pretty JSON, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write(path, &bytes)
}

/// Permissions of `mode`, which the kernel narrows by the umask when it
/// creates a file or directory with them.
pub fn permissions(mode: u32) -> std::fs::Permissions {
    std::os::unix::fs::PermissionsExt::from_mode(mode)
}

/// Makes a rename in `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_written_to_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let null = Path::new("/dev/null");
        if !std::fs::metadata(null).is_ok_and(|m| m.file_type().is_char_device()) {
            return;
        }
        write(null, b"discarded").unwrap();
        assert!(
            std::fs::metadata(null)
                .unwrap()
                .file_type()
                .is_char_device()
        );
    }

    #[test]
    fn new_files_follow_the_umask_and_private_ones_stay_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // What the umask lets a plain new file have.
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").unwrap();
        let shared = dir.path().join("report.html");
        write(&shared, b"<html>").unwrap();
        assert_eq!(mode(&shared), mode(&plain));
        let key = dir.path().join("key");
        write_private(&key, b"secret").unwrap();
        assert_eq!(mode(&key), 0o600);
    }

    #[test]
    fn replaces_whole_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn a_missing_folder_is_named_without_the_temporary_files_name() {
        let dir = tempfile::tempdir().unwrap();
        let e = write(&dir.path().join("no/such/report.html"), b"x").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert!(!e.to_string().contains(TMP_PREFIX), "{e}");
    }
}

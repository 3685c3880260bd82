//! Lock files held for the length of one change: `flock` on a file beside
//! what is changed, waited for a while when another process holds it.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

/// Takes the lock at `path` (created if missing), waiting up to `wait` for
/// another holder; held until the file is dropped.
pub fn take(path: &Path, wait: Duration) -> Result<File, String> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    let until = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(format!("cannot lock `{}`: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_waited_for_then_given_up_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = take(&path, Duration::ZERO).unwrap();
        let e = take(&path, Duration::from_millis(20)).unwrap_err();
        assert!(e.contains("cannot lock") && e.contains("x.lock"), "{e}");
        drop(held);
        assert!(take(&path, Duration::ZERO).is_ok());
    }
}

//! `deny_read` enforced: what the path gate may never read is hidden from
//! every process of the task by the kernel, not only refused to the tools
//! the gates see.
//!
//! The confined spawner thread moves itself into a mount namespace of its
//! own (a copy of omk's, so the task's overlay workspace is there) and
//! mounts, read-only, an empty file over each denied file and, over each
//! denied folder, a mirror of it whose files are all empty (the names
//! stay, so a client's read tool still asks, and is refused with the
//! reason, where it would otherwise answer "no such file"; past
//! [`MIRRORED`] entries the rest are left out). The task's processes
//! inherit that view: `cat secrets/key` reads nothing. omk's own threads
//! keep the real view, so the task's changes are staged and judged as
//! usual, and the hidden files are neither changed nor deleted (a mount
//! point can be neither). Landlock forbids a confined process to change
//! its mounts, and the seccomp filter refuses `mount`/`umount2`.
//!
//! Needs `CAP_SYS_ADMIN` in omk's user namespace, as the network namespace
//! does ([`super::netns::available`]). What it does not cover, in
//! README.md: a denied file that is tracked by git stays readable through
//! git's objects (`git show HEAD:secrets/key`), which the task must read.

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Hides `paths` (inside `tree`, each project-relative) from the calling
/// thread and what it starts, with `empty` (a folder omk made) holding the
/// empty file and folder mounted over them. Paths that do not exist are
/// skipped: there is nothing there to read.
pub(super) fn hide(tree: &Path, paths: &[String], empty: &Path) -> Result<Vec<PathBuf>, String> {
    let targets: Vec<PathBuf> = paths
        .iter()
        .map(|p| tree.join(p))
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let file = empty.join("file");
    std::fs::create_dir_all(empty)
        .and_then(|()| std::fs::write(&file, b""))
        .map_err(|e| format!("cannot make `{}`: {e}", empty.display()))?;
    // SAFETY: unshare with a constant flag; it changes only this thread
    // (its filesystem information is copied, not shared, from now on).
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(format!(
            "cannot make a mount namespace: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut hidden = Vec::new();
    for (i, target) in targets.into_iter().enumerate() {
        // A symlink is hidden where it points, if inside the tree.
        let real = match target.canonicalize() {
            Ok(r) if r.starts_with(tree) => r,
            Ok(_) | Err(_) => continue,
        };
        let over = if real.is_dir() {
            let mirror = empty.join(format!("dir-{i}"));
            let mut left = MIRRORED;
            mirror_empty(&real, &mirror, &mut left)
                .map_err(|e| format!("cannot mirror `{}`: {e}", real.display()))?;
            mirror
        } else {
            file.clone()
        };
        bind_read_only(&over, &real)
            .map_err(|e| format!("cannot hide `{}`: {e}", real.display()))?;
        hidden.push(real);
    }
    Ok(hidden)
}

/// How many entries of a denied folder keep their names in its mirror.
pub const MIRRORED: usize = 10_000;

/// Makes `to` a copy of the folder `from` with every file empty, for at
/// most `left` entries.
fn mirror_empty(from: &Path, to: &Path, left: &mut usize) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    let mut entries: Vec<_> = std::fs::read_dir(from)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if *left == 0 {
            break;
        }
        *left -= 1;
        let target = to.join(e.file_name());
        match e.file_type() {
            Ok(t) if t.is_dir() => mirror_empty(&e.path(), &target, left)?,
            _ => std::fs::write(&target, b"")?,
        }
    }
    Ok(())
}

fn c_path(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::other("a path holds a NUL byte"))
}

/// `mount --bind -o ro from to`.
fn bind_read_only(from: &Path, to: &Path) -> std::io::Result<()> {
    let (from, to) = (c_path(from)?, c_path(to)?);
    // SAFETY: valid C strings; null pointers where mount(2) allows them.
    unsafe {
        if libc::mount(
            from.as_ptr(),
            to.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        // The flags the source's mount has must stay (a user namespace
        // cannot clear those its parent set).
        let mut st: libc::statvfs = std::mem::zeroed();
        let kept = if libc::statvfs(from.as_ptr(), &mut st) == 0 {
            [
                (libc::ST_NOEXEC, libc::MS_NOEXEC),
                (libc::ST_NOATIME, libc::MS_NOATIME),
                (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
                (libc::ST_RELATIME, libc::MS_RELATIME),
            ]
            .into_iter()
            .filter(|(st_flag, _)| st.f_flag & *st_flag != 0)
            .fold(0, |acc, (_, ms)| acc | ms)
        } else {
            0
        };
        if libc::mount(
            std::ptr::null(),
            to.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND
                | libc::MS_REMOUNT
                | libc::MS_RDONLY
                | libc::MS_NOSUID
                | libc::MS_NODEV
                | kept,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

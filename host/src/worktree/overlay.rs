//! Copy-on-write task workspaces: a task's checkout costs what it changes,
//! not the repository's size.
//!
//! Once per goal and base commit, omk checks the base out in full
//! (`worktrees/.base/<commit>`, a detached git worktree); each task then
//! gets an overlay mount at its worktree path with that checkout as the
//! read-only lower layer and an empty upper layer of its own
//! (`worktrees/.layers/<task>/upper`). Git sees a normal worktree: the
//! task's admin folder is made by `git worktree add --no-checkout` and its
//! index is the base's, hard-linked (git replaces an index, never writes
//! into one), so nothing is read or written per file before the agent
//! starts. What the task changed is what its upper layer holds, and omk
//! stages only those paths ([`changed_paths`]).
//!
//! The mounts live in a user and mount namespace that omk enters when it
//! starts a command that runs tasks ([`enter`]), before it has a second
//! thread; the agents, their `run:` checks and omk's own git commands all
//! run inside it and see the merged tree at the worktree's usual path.
//! Outside, the path is empty; nothing is lost when omk stops (the upper
//! layer is on disk, and a resumed task starts a new attempt, as it does
//! with worktrees). Where the namespace or the mount is refused (a
//! container without user namespaces, `OMK_WORKSPACES=worktree`), tasks get
//! plain git worktrees; `task_started` records which (`workspace`).

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use super::{GitError, git_ok};

/// What `task_started` calls an overlay workspace.
pub const OVERLAY: &str = "overlay";
/// What `task_started` calls a plain git worktree.
pub const WORKTREE: &str = "worktree";

/// The environment variable that turns overlays off (`worktree`).
pub const ENV: &str = "OMK_WORKSPACES";

/// Whether [`enter`] put this process in a namespace of its own.
static ENTERED: OnceLock<Result<(), String>> = OnceLock::new();
/// Whether an overlay could be mounted there (probed once).
static MOUNTS: OnceLock<Result<(), String>> = OnceLock::new();

/// Enters a user and mount namespace of this process's own, mapping its
/// user and group to themselves, so that it may mount overlays no other
/// process sees. Call it while the process has one thread (the kernel
/// refuses a threaded one); a refusal only means worktrees are used.
///
/// The same namespace gives omk the right to make each confined run a
/// network and a mount namespace of its own ([`crate::sandbox::netns`]), so
/// it is entered whether or not workspaces are overlays.
pub fn enter() {
    ENTERED.get_or_init(unshare);
}

fn unshare() -> Result<(), String> {
    // SAFETY: plain system calls on this process; no memory is shared.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } != 0 {
        return Err(format!(
            "cannot make a user and mount namespace: {}",
            std::io::Error::last_os_error()
        ));
    }
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text)
            .map_err(|e| format!("cannot write /proc/self/{file}: {e}"))
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("{uid} {uid} 1\n"))?;
    write("gid_map", format!("{gid} {gid} 1\n"))?;
    // Mounts made here stay here.
    let root = CString::new("/").unwrap_or_default();
    // SAFETY: a valid C string; null pointers where the call allows them.
    unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
    }
    Ok(())
}

/// Whether the task worktree at `path` can be an overlay: overlays work
/// here, and the paths of its layers can be written in mount options.
pub fn usable_for(path: &Path) -> bool {
    available().is_ok() && !path.to_string_lossy().contains([',', ':'])
}

/// Whether task workspaces are overlays here; `Err` says why not.
pub fn available() -> Result<(), String> {
    if std::env::var(ENV).is_ok_and(|v| v == WORKTREE) {
        return Err(format!("{ENV}={WORKTREE}"));
    }
    match ENTERED.get() {
        None => return Err("this command does not run tasks in overlays".into()),
        Some(Err(e)) => return Err(e.clone()),
        Some(Ok(())) => {}
    }
    MOUNTS.get_or_init(probe).clone()
}

/// Mounts and unmounts an overlay of empty folders.
fn probe() -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| format!("no temporary folder: {e}"))?;
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| {
        let p = tmp.path().join(d);
        let _ = std::fs::create_dir(&p);
        p
    });
    mount(&lower, &upper, &work, &merged)?;
    unmount(&merged);
    Ok(())
}

fn c_path(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("`{}` holds a NUL byte", p.display()))
}

fn mount(lower: &Path, upper: &Path, work: &Path, at: &Path) -> Result<(), String> {
    for p in [lower, upper, work] {
        if p.to_string_lossy().contains([',', ':']) {
            return Err(format!(
                "`{}` holds a comma or a colon, which overlay options cannot",
                p.display()
            ));
        }
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        lower.display(),
        upper.display(),
        work.display()
    );
    let (kind, target, options) = (
        CString::new("overlay").unwrap_or_default(),
        c_path(at)?,
        CString::new(options).map_err(|_| "a path holds a NUL byte".to_owned())?,
    );
    // SAFETY: valid C strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            kind.as_ptr(),
            target.as_ptr(),
            kind.as_ptr(),
            0,
            options.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "cannot mount an overlay at `{}`: {}",
            at.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Unmounts `at` if something is mounted there (lazily: a process still in
/// it keeps its view until it ends).
fn unmount(at: &Path) {
    if let Ok(target) = c_path(at) {
        // SAFETY: a valid C string.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// The layers of the task worktree at `path`: `(upper, work)`.
fn layers(path: &Path) -> Option<(PathBuf, PathBuf)> {
    let root = path.parent()?.join(".layers").join(path.file_name()?);
    Some((root.join("upper"), root.join("work")))
}

/// The upper layer of the task worktree at `path`, when it is an overlay.
pub fn upper(path: &Path) -> Option<PathBuf> {
    let (upper, _) = layers(path)?;
    upper.is_dir().then_some(upper)
}

/// Makes sure the full checkout of `base` that task overlays share exists
/// beside `path` (once per goal and commit; tasks starting together wait
/// for one checkout).
fn base_checkout(repo: &Path, path: &Path, base: &str) -> Result<PathBuf, GitError> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bases = path.parent().unwrap_or(path).join(".base");
    let dir = bases.join(base);
    let ready = bases.join(format!("{base}.ready"));
    if ready.exists() && dir.join(".git").is_file() {
        return Ok(dir);
    }
    // A checkout a crash cut short is made again.
    super::remove(repo, &dir)?;
    let _ = std::fs::remove_file(&ready);
    super::create_detached(repo, &dir, base)?;
    std::fs::write(&ready, base).map_err(|e| io_error("worktree add", &bases, e))?;
    Ok(dir)
}

fn io_error(args: &str, dir: &Path, e: std::io::Error) -> GitError {
    GitError {
        args: args.into(),
        dir: dir.to_owned(),
        detail: e.to_string(),
    }
}

/// The admin folder a worktree's `.git` file names.
fn admin_dir(worktree: &Path) -> Result<PathBuf, GitError> {
    let text = std::fs::read_to_string(worktree.join(".git"))
        .map_err(|e| io_error("worktree admin folder", worktree, e))?;
    text.trim()
        .strip_prefix("gitdir: ")
        .map(PathBuf::from)
        .ok_or_else(|| GitError {
            args: "worktree admin folder".into(),
            dir: worktree.to_owned(),
            detail: "its `.git` file does not name one".into(),
        })
}

/// Creates (or recreates) the overlay worktree of a task at `path` on
/// `branch`, reset to `base`.
pub fn create(repo: &Path, path: &Path, branch: &str, base: &str) -> Result<(), GitError> {
    // What an earlier attempt (or a crash) left: its layers and its
    // worktree's registration.
    super::remove(repo, path)?;
    let lower = base_checkout(repo, path, base)?;
    let Some((upper, work)) = layers(path) else {
        return Err(io_error(
            "worktree add",
            path,
            std::io::Error::other("not a task worktree path"),
        ));
    };
    for d in [&upper, &work] {
        std::fs::create_dir_all(d).map_err(|e| io_error("worktree add", d, e))?;
    }
    let p = path.to_string_lossy();
    git_ok(
        repo,
        &[
            "worktree",
            "add",
            "--force",
            "--no-checkout",
            "-B",
            branch,
            &p,
            base,
        ],
    )?;
    // The task's own `.git` file over the base's, and the base's index as
    // its own.
    let dot_git = path.join(".git");
    std::fs::copy(&dot_git, upper.join(".git")).map_err(|e| io_error("worktree add", path, e))?;
    let (from, to) = (
        admin_dir(&lower)?.join("index"),
        admin_dir(path)?.join("index"),
    );
    let _ = std::fs::remove_file(&to);
    std::fs::hard_link(&from, &to)
        .or_else(|_| std::fs::copy(&from, &to).map(drop))
        .map_err(|e| io_error("worktree add", path, e))?;
    mount(&lower, &upper, &work, path).map_err(|detail| GitError {
        args: "mount overlay".into(),
        dir: path.to_owned(),
        detail,
    })
}

/// Removes the overlay worktree at `path` and its layers, if it has them.
pub fn remove(repo: &Path, path: &Path) -> Result<(), GitError> {
    unmount(path);
    if let Some((upper, _)) = layers(path)
        && let Some(root) = upper.parent()
        && root.exists()
    {
        // The work folder may hold a folder only its owner may enter.
        make_removable(root);
        std::fs::remove_dir_all(root).map_err(|e| io_error("worktree remove", root, e))?;
    }
    let _ = repo;
    Ok(())
}

/// Removes the base checkouts the overlays of the task worktrees in
/// `worktrees` shared, once no task runs.
pub fn remove_bases(repo: &Path, worktrees: &Path) -> Result<(), GitError> {
    let bases = worktrees.join(".base");
    for e in std::fs::read_dir(&bases).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            super::remove(repo, &e.path())?;
        }
    }
    if bases.exists() {
        std::fs::remove_dir_all(&bases).map_err(|e| io_error("worktree remove", &bases, e))?;
    }
    let _ = std::fs::remove_dir(worktrees.join(".layers"));
    Ok(())
}

/// Gives the owner every right on the folders under `root`.
fn make_removable(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
}

/// The paths a task changed, from its upper layer: every file, link and
/// whiteout (a deletion), and every folder made opaque (deleted and made
/// again), relative to the worktree; its `.git` file excluded.
pub fn changed_paths(upper: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(upper.join(&rel)) else {
            continue;
        };
        for e in entries.flatten() {
            let rel = rel.join(e.file_name());
            if rel.as_os_str() == ".git" {
                continue;
            }
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                if opaque(&e.path()) {
                    out.push(rel.to_string_lossy().into_owned());
                } else {
                    stack.push(rel);
                }
            } else {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Whether the upper folder `dir` hides everything below it in the lower
/// layer.
fn opaque(dir: &Path) -> bool {
    let Ok(path) = c_path(dir) else { return false };
    ["user.overlay.opaque", "trusted.overlay.opaque"]
        .iter()
        .any(|name| {
            let name = CString::new(*name).unwrap_or_default();
            let mut v = [0u8; 4];
            // SAFETY: valid C strings and a buffer of the length given.
            let n = unsafe {
                libc::lgetxattr(path.as_ptr(), name.as_ptr(), v.as_mut_ptr().cast(), v.len())
            };
            n > 0 && v[0] == b'y'
        })
}

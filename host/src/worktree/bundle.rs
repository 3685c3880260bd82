//! Commits that travel: git bundles of a ref, for workers on machines that
//! share no filesystem with the coordinator (see `crate::dispatch`).

use std::path::Path;

use super::{GitError, git_ok, task_git_ok};

/// Writes a bundle of commit `rev` (and its history) to `file`, under the
/// ref `name` (made for the bundle and removed after).
pub fn create(repo: &Path, rev: &str, name: &str, file: &Path) -> Result<(), GitError> {
    git_ok(repo, &["update-ref", name, rev])?;
    let f = file.to_string_lossy();
    let made = git_ok(repo, &["bundle", "create", "--quiet", &f, name]);
    let _ = git_ok(repo, &["update-ref", "-d", name]);
    made.map(drop)
}

/// Makes `dir` a repository holding what the bundle `file` holds, or adds
/// it to the one there.
pub fn fetch_into(dir: &Path, file: &Path) -> Result<(), GitError> {
    if !dir.join(".git").exists() {
        std::fs::create_dir_all(dir).map_err(|e| GitError {
            args: "init".into(),
            dir: dir.to_owned(),
            detail: e.to_string(),
        })?;
        git_ok(dir, &["init", "--quiet", "-b", "omk-worker"])?;
    }
    fetch(dir, file, "refs/omk/fetched")
}

/// Fetches every ref of the bundle `file` into `repo` under `prefix`.
pub fn fetch(repo: &Path, file: &Path, prefix: &str) -> Result<(), GitError> {
    let f = file.to_string_lossy();
    git_ok(
        repo,
        &[
            "fetch",
            "--quiet",
            "--no-tags",
            &f,
            &format!("+refs/*:{prefix}/*"),
        ],
    )?;
    Ok(())
}

/// Deletes the refs under `prefix` (what [`fetch`] made); the commits stay
/// until git collects them, or a branch points at them.
pub fn drop_refs(repo: &Path, prefix: &str) {
    let Ok(refs) = git_ok(repo, &["for-each-ref", "--format=%(refname)", prefix]) else {
        return;
    };
    for r in refs.lines().filter(|r| !r.is_empty()) {
        let _ = git_ok(repo, &["update-ref", "-d", r]);
    }
}

/// Makes `dir` a repository that borrows the objects of `repo` (`git clone
/// --shared`): cheap, and with locks of its own.
pub fn clone_shared(repo: &Path, dir: &Path) -> Result<(), GitError> {
    let parent = dir.parent().unwrap_or(dir);
    git_ok(
        parent,
        &[
            "clone",
            "--quiet",
            "--shared",
            "--no-checkout",
            &repo.to_string_lossy(),
            &dir.to_string_lossy(),
        ],
    )?;
    Ok(())
}

/// Whether `repo` has the commit `rev`.
pub fn has_commit(repo: &Path, rev: &str) -> bool {
    git_ok(repo, &["cat-file", "-e", &format!("{rev}^{{commit}}")]).is_ok()
}

/// Makes the task worktree's files and index exactly the tree of `commit`
/// (another machine's work on the same base), ready to be committed here.
pub fn take_tree(repo: &Path, worktree: &Path, commit: &str) -> Result<(), GitError> {
    task_git_ok(repo, worktree, &["read-tree", "-u", "--reset", commit])?;
    Ok(())
}

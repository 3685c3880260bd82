//! Git worktrees: one isolated checkout per task, and the branches they
//! leave behind.
//!
//! Each task runs in `<goal>/worktrees/<task-id>` on the branch
//! `omk/<goal-id>/<task-id>`, created from the goal's base commit. The
//! project's own checkout is never touched, dirty or not: omk only adds
//! worktrees and branches to its repository. Accepted work is committed on
//! the task branch and, with the `integrate` merge policy, merged into
//! `omk/<goal-id>/integration` in a worktree of its own.
//!
//! Everything goes through the `git` command, with a fixed identity and no
//! user hooks or signing, so runs are the same on every machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod bundle;
pub mod overlay;

/// The identity of commits omk makes.
pub const AUTHOR_NAME: &str = "omk";
pub const AUTHOR_EMAIL: &str = "omk@localhost";

/// A git command that failed.
#[derive(Debug, thiserror::Error)]
#[error("`git {args}` in `{}` failed: {detail}", dir.display())]
pub struct GitError {
    pub args: String,
    pub dir: PathBuf,
    pub detail: String,
}

impl omk_core::diagnose::Diagnose for GitError {
    fn kind(&self) -> omk_core::diagnose::Kind {
        omk_core::diagnose::Kind::System
    }
}

/// Runs `git ARGS` in `dir` with omk's fixed settings.
fn git(dir: &Path, args: &[&str]) -> Result<Output, GitError> {
    let out = Command::new("git")
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "core.autocrlf=false",
            "-c",
            "core.fsmonitor=false",
            "-c",
            &format!("user.name={AUTHOR_NAME}"),
            "-c",
            &format!("user.email={AUTHOR_EMAIL}"),
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .map_err(|e| GitError {
            args: args.join(" "),
            dir: dir.to_owned(),
            detail: format!("cannot run git: {e}"),
        })?;
    Ok(out)
}

/// `git ARGS` that must succeed; returns stdout.
fn git_ok(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = git(dir, args)?;
    if !out.status.success() {
        return Err(GitError {
            args: args.join(" "),
            dir: dir.to_owned(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The top of the git repository holding `dir`, if it is in one.
pub fn repo_root(dir: &Path) -> Option<PathBuf> {
    git_ok(dir, &["rev-parse", "--show-toplevel"])
        .ok()
        .map(|s| PathBuf::from(s.trim()))
}

/// The messages of the commits on goal `goal_id`'s branches that carry an
/// `Omk-Log:` trailer: `(commit, message)`, newest first.
pub fn trailer_commits(repo: &Path, goal_id: &str) -> Result<Vec<(String, String)>, GitError> {
    let refs = git_ok(
        repo,
        &[
            "for-each-ref",
            "--format=%(refname)",
            &format!("refs/heads/omk/{goal_id}/"),
        ],
    )?;
    let refs: Vec<&str> = refs.lines().filter(|l| !l.is_empty()).collect();
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec!["log", "--grep=^Omk-Log: ", "--format=%H%x1f%B%x1e"];
    args.extend(refs);
    let out = git_ok(repo, &args)?;
    Ok(out
        .split('\x1e')
        .filter_map(|rec| {
            let (commit, message) = rec.trim_start_matches('\n').split_once('\x1f')?;
            Some((commit.to_owned(), message.to_owned()))
        })
        .collect())
}

/// The repository's git folder (shared by its worktrees), absolute.
pub fn git_common_dir(repo: &Path) -> Result<PathBuf, GitError> {
    let out = git_ok(
        repo,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )?;
    Ok(PathBuf::from(out.trim()))
}

/// The commit `HEAD` points at.
pub fn head_commit(repo: &Path) -> Result<String, GitError> {
    Ok(git_ok(repo, &["rev-parse", "--verify", "HEAD^{commit}"])?
        .trim()
        .to_owned())
}

/// The task branch name.
pub fn task_branch(goal_id: &str, task_id: &str) -> String {
    format!("omk/{goal_id}/{}", branch_safe(task_id))
}

/// The integration branch name.
pub fn integration_branch(goal_id: &str) -> String {
    format!("omk/{goal_id}/integration")
}

/// Names omk takes for itself in a goal's branches (`omk/<goal>/integration`),
/// worktrees and sandbox folders (`_integration`, `_plan`; see
/// [`crate::goal::GoalDir`]): no task may map to them.
pub const RESERVED_NAMES: [&str; 3] = ["integration", "_integration", "_plan"];

/// What two task ids must not share: the name of their branch and worktree
/// ([`branch_safe`]), compared without case (a case-insensitive file
/// system, or git's loose refs on one, would merge them).
pub fn collision_key(task_id: &str) -> String {
    branch_safe(task_id).to_ascii_lowercase()
}

/// A task id as a branch and directory name component.
pub fn branch_safe(task_id: &str) -> String {
    let s: String = task_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_owned();
    if s.is_empty() { "task".into() } else { s }
}

/// What the task workspace at `path` is: an [`overlay`] where this
/// process can mount one, else a git worktree.
pub fn workspace_kind(path: &Path) -> &'static str {
    if overlay::usable_for(path) {
        overlay::OVERLAY
    } else {
        overlay::WORKTREE
    }
}

/// Creates (or recreates, discarding what a crashed run left) a task's
/// worktree at `path` on `branch`, reset to `base`: copy-on-write where
/// [`workspace_kind`] says so, else a full checkout.
pub fn create(repo: &Path, path: &Path, branch: &str, base: &str) -> Result<(), GitError> {
    if overlay::usable_for(path) {
        return overlay::create(repo, path, branch, base);
    }
    remove(repo, path)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| GitError {
            args: "worktree add".into(),
            dir: parent.to_owned(),
            detail: e.to_string(),
        })?;
    }
    let p = path.to_string_lossy();
    git_ok(
        repo,
        &["worktree", "add", "--force", "-B", branch, &p, base],
    )?;
    Ok(())
}

/// Creates (or recreates) a worktree at `path` with `base` checked out
/// and no branch, for looking only.
pub fn create_detached(repo: &Path, path: &Path, base: &str) -> Result<(), GitError> {
    remove(repo, path)?;
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let p = path.to_string_lossy();
    git_ok(repo, &["worktree", "add", "--force", "--detach", &p, base])?;
    Ok(())
}

/// Makes `dir` a repository whose first commit holds everything in it.
pub fn init_with_commit(dir: &Path, message: &str) -> Result<String, GitError> {
    git_ok(dir, &["init", "--quiet", "-b", "main"])?;
    git_ok(dir, &["add", "--all"])?;
    git_ok(dir, &["commit", "--quiet", "--no-verify", "-m", message])?;
    head_commit(dir)
}

/// Removes the worktree at `path` if there is one; the branch stays.
pub fn remove(repo: &Path, path: &Path) -> Result<(), GitError> {
    overlay::remove(repo, path)?;
    let p = path.to_string_lossy();
    if path.exists() {
        // A worktree git no longer knows is removed by hand.
        if git(repo, &["worktree", "remove", "--force", "--force", &p])
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            let _ = std::fs::remove_dir_all(path);
        }
    }
    git_ok(repo, &["worktree", "prune"])?;
    Ok(())
}

/// A changed path with how it changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub path: String,
    /// `A`dded, `M`odified, `D`eleted, `R`enamed, …
    pub status: char,
}

/// A task's worktree as omk's own git commands address it: with its admin
/// folder found from the repository's side (`<git>/worktrees/*/gitdir`
/// naming `<worktree>/.git`) and passed explicitly, so that a `.git` file
/// the agent rewrote to point elsewhere (at a folder of its own, with a
/// config that runs commands) is never followed.
fn task_git<'a>(repo: &Path, worktree: &'a Path) -> Result<(PathBuf, &'a Path), GitError> {
    let common = git_common_dir(repo)?;
    let want = worktree.join(".git");
    let err = |detail: String| GitError {
        args: "worktree admin folder".into(),
        dir: worktree.to_owned(),
        detail,
    };
    let entries = std::fs::read_dir(common.join("worktrees"))
        .map_err(|e| err(format!("cannot read the repository's worktrees: {e}")))?;
    for e in entries.flatten() {
        let named = std::fs::read_to_string(e.path().join("gitdir")).unwrap_or_default();
        if Path::new(named.trim()) == want {
            return Ok((e.path(), worktree));
        }
    }
    Err(err("git does not know this worktree".into()))
}

/// `git ARGS` on the task worktree `worktree` of `repo` (see [`task_git`]).
fn task_git_ok(repo: &Path, worktree: &Path, args: &[&str]) -> Result<String, GitError> {
    let (admin, wt) = task_git(repo, worktree)?;
    let mut all = vec![
        format!("--git-dir={}", admin.display()),
        format!("--work-tree={}", wt.display()),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    git_ok(worktree, &all)
}

/// Every path that differs in the task worktree from `base`: committed by
/// the agent, staged, changed or untracked (ignored files excluded).
/// Stages everything as a side effect.
pub fn changes(repo: &Path, worktree: &Path, base: &str) -> Result<Vec<Change>, GitError> {
    stage(repo, worktree)?;
    let out = task_git_ok(
        repo,
        worktree,
        &[
            "diff",
            "--cached",
            "--name-status",
            "--no-renames",
            "-z",
            base,
        ],
    )?;
    let mut fields = out.split('\0').filter(|s| !s.is_empty());
    let mut changes = Vec::new();
    while let (Some(status), Some(path)) = (fields.next(), fields.next()) {
        changes.push(Change {
            path: path.to_owned(),
            status: status.chars().next().unwrap_or('M'),
        });
    }
    Ok(changes)
}

/// Commits everything in the task worktree; returns the new commit, or
/// `None` when there was nothing to commit.
pub fn commit(repo: &Path, worktree: &Path, message: &str) -> Result<Option<String>, GitError> {
    stage(repo, worktree)?;
    let staged = task_git_ok(repo, worktree, &["diff", "--cached", "--name-only"])?;
    if staged.trim().is_empty() {
        return Ok(None);
    }
    task_git_ok(
        repo,
        worktree,
        &["commit", "--no-verify", "--quiet", "-m", message],
    )?;
    Ok(Some(
        task_git_ok(repo, worktree, &["rev-parse", "--verify", "HEAD^{commit}"])?
            .trim()
            .to_owned(),
    ))
}

/// Stages everything in the task worktree: in an overlay, only the paths
/// its upper layer holds (so git looks at what changed, not at every file
/// of the repository); else all.
fn stage(repo: &Path, worktree: &Path) -> Result<(), GitError> {
    if let Some(upper) = overlay::upper(worktree) {
        let paths = overlay::changed_paths(&upper);
        if paths.is_empty() {
            return Ok(());
        }
        let list = tempfile::NamedTempFile::new()
            .and_then(|mut f| {
                use std::io::Write;
                f.write_all(paths.join("\0").as_bytes())?;
                Ok(f)
            })
            .map_err(|e| GitError {
                args: "add".into(),
                dir: worktree.to_owned(),
                detail: e.to_string(),
            })?;
        let from = format!("--pathspec-from-file={}", list.path().display());
        if task_git_ok(
            repo,
            worktree,
            &["add", "--all", &from, "--pathspec-file-nul"],
        )
        .is_ok()
        {
            return Ok(());
        }
    }
    task_git_ok(repo, worktree, &["add", "--all"])?;
    Ok(())
}

/// The result of merging a task branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// Merged; the integration branch's new commit.
    Merged(String),
    /// Conflicting paths; nothing changed on either branch.
    Conflict(Vec<String>),
}

/// Merges `branch` into the integration branch checked out at
/// `integration` (a worktree). A conflict is aborted, leaving both
/// branches as they were.
pub fn merge(integration: &Path, branch: &str, message: &str) -> Result<Merge, GitError> {
    // A crash mid-merge leaves MERGE_HEAD and a dirty tree behind: the
    // branch's last commit is the truth, everything else is discarded.
    let _ = git(integration, &["merge", "--abort"]);
    git_ok(integration, &["reset", "--quiet", "--hard", "HEAD"])?;
    git_ok(integration, &["clean", "--quiet", "-fd"])?;
    let out = git(
        integration,
        &["merge", "--no-ff", "--no-edit", "-m", message, branch],
    )?;
    if out.status.success() {
        return Ok(Merge::Merged(head_commit(integration)?));
    }
    let conflicted = git_ok(
        integration,
        &["diff", "--name-only", "--diff-filter=U", "-z"],
    )
    .unwrap_or_default();
    let files: Vec<String> = conflicted
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let _ = git(integration, &["merge", "--abort"]);
    if files.is_empty() {
        return Err(GitError {
            args: format!("merge {branch}"),
            dir: integration.to_owned(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(Merge::Conflict(files))
}

/// The commit a branch points at, if it exists.
pub fn branch_commit(repo: &Path, branch: &str) -> Option<String> {
    git_ok(
        repo,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ],
    )
    .ok()
    .map(|s| s.trim().to_owned())
}

/// Ensures a worktree at `path` on `branch`, creating the branch from
/// `base` when it does not exist yet (an existing branch keeps its
/// commits).
pub fn ensure(repo: &Path, path: &Path, branch: &str, base: &str) -> Result<(), GitError> {
    if path.join(".git").exists() {
        return Ok(());
    }
    remove(repo, path)?;
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let p = path.to_string_lossy();
    if branch_commit(repo, branch).is_some() {
        git_ok(repo, &["worktree", "add", "--force", &p, branch])?;
    } else {
        git_ok(
            repo,
            &["worktree", "add", "--force", "-b", branch, &p, base],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        git_ok(dir.path(), &["init", "--quiet", "-b", "main"]).unwrap();
        std::fs::write(dir.path().join("a.txt"), "one\n").unwrap();
        git_ok(dir.path(), &["add", "."]).unwrap();
        git_ok(dir.path(), &["commit", "--quiet", "-m", "init"]).unwrap();
        dir
    }

    #[test]
    fn worktree_changes_commit_and_merge() {
        let r = repo();
        let base = head_commit(r.path()).unwrap();
        let wt = r.path().join(".wt/t1");
        create(r.path(), &wt, "omk/g/t1", &base).unwrap();
        std::fs::write(wt.join("a.txt"), "two\n").unwrap();
        std::fs::write(wt.join("new.txt"), "x").unwrap();
        let ch = changes(r.path(), &wt, &base).unwrap();
        assert_eq!(
            ch,
            [
                Change {
                    path: "a.txt".into(),
                    status: 'M'
                },
                Change {
                    path: "new.txt".into(),
                    status: 'A'
                }
            ]
        );
        let c = commit(r.path(), &wt, "t1").unwrap().unwrap();
        assert_eq!(
            branch_commit(r.path(), "omk/g/t1").as_deref(),
            Some(c.as_str())
        );
        assert_eq!(commit(r.path(), &wt, "nothing").unwrap(), None);

        let integ = r.path().join(".wt/integration");
        ensure(r.path(), &integ, "omk/g/integration", &base).unwrap();
        assert!(matches!(
            merge(&integ, "omk/g/t1", "merge t1").unwrap(),
            Merge::Merged(_)
        ));

        // A merge interrupted by a crash is cleaned up before the next one.
        std::fs::write(integ.join("a.txt"), "half-merged\n").unwrap();
        std::fs::write(integ.join("stray.txt"), "x").unwrap();

        // A second task changing the same line conflicts.
        let wt2 = r.path().join(".wt/t2");
        create(r.path(), &wt2, "omk/g/t2", &base).unwrap();
        std::fs::write(wt2.join("a.txt"), "three\n").unwrap();
        let t2 = commit(r.path(), &wt2, "t2").unwrap().unwrap();
        let before = branch_commit(r.path(), "omk/g/integration").unwrap();
        assert_eq!(
            merge(&integ, "omk/g/t2", "merge t2").unwrap(),
            Merge::Conflict(vec!["a.txt".into()])
        );
        assert_eq!(
            branch_commit(r.path(), "omk/g/integration").unwrap(),
            before
        );
        assert_eq!(branch_commit(r.path(), "omk/g/t2").unwrap(), t2);

        remove(r.path(), &wt).unwrap();
        assert!(!wt.exists());
        // The main checkout was never touched.
        assert_eq!(
            std::fs::read_to_string(r.path().join("a.txt")).unwrap(),
            "one\n"
        );
    }

    #[test]
    fn branch_names_are_safe() {
        assert_eq!(
            task_branch("goal-1", "fix login/form"),
            "omk/goal-1/fix-login-form"
        );
        assert_eq!(branch_safe("../.."), "task");
    }
}

//! An agent's file access, confined to its task's worktree.
//!
//! Every read and write an agent asks omk to make goes through a cap-std
//! handle on the worktree: an absolute path outside it, `..` or a symlink
//! leading out is refused by the operating system's openat rules, not by
//! string checks.

use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

/// Largest file an agent may read through omk (16 MiB).
pub const MAX_READ: u64 = 16 << 20;

fn open(worktree: &Path) -> std::io::Result<Dir> {
    Dir::open_ambient_dir(worktree, ambient_authority())
}

/// `path` relative to `worktree`: absolute paths must lie inside it.
fn inside(worktree: &Path, path: &Path) -> std::io::Result<PathBuf> {
    if path.is_absolute() {
        path.strip_prefix(worktree)
            .map(Path::to_path_buf)
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("`{}` is outside the task's worktree", path.display()),
                )
            })
    } else {
        Ok(path.to_path_buf())
    }
}

/// Where a change to `rel` (relative to `worktree`) would land, relative to
/// the worktree, following symlinks through the part of the path that
/// exists — for agents that write files themselves, so the gates judge the
/// file that would change. An error names a path that would leave the
/// worktree, pass a symlink that leads nowhere, or that omk will not judge
/// by its text alone: one with `..` (agents fold it by text, the operating
/// system after following links) or starting with `~` (agents expand it to
/// the home directory), whatever the gates say of it.
pub fn resolve(worktree: &Path, rel: &str) -> Result<String, String> {
    use std::path::Component;
    let parts: Vec<_> = Path::new(rel).components().collect();
    if parts.iter().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!(
            "`{rel}` climbs with `..`: name the file inside the worktree plainly"
        ));
    }
    if rel.starts_with('~') {
        return Err(format!(
            "`{rel}` starts with `~`, which agents take for the home directory"
        ));
    }
    if parts
        .iter()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!("`{rel}` is not a path inside the {PLACE}"));
    }
    let parts: Vec<_> = parts
        .into_iter()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if parts.is_empty() {
        return Ok(rel.to_owned());
    }
    let root = worktree
        .canonicalize()
        .map_err(|e| format!("cannot resolve the {PLACE} `{}`: {e}", worktree.display()))?;
    let at = |n: usize| parts[..n].iter().fold(root.clone(), |p, c| p.join(c));
    let existing = (1..=parts.len())
        .rev()
        .find(|&n| at(n).symlink_metadata().is_ok())
        .unwrap_or(0);
    let base = if existing == 0 {
        root.clone()
    } else {
        at(existing)
            .canonicalize()
            .map_err(|_| format!("`{rel}` passes a symlink that leads nowhere"))?
    };
    let full = parts[existing..].iter().fold(base, |p, c| p.join(c));
    full.strip_prefix(&root)
        .map(|r| r.to_string_lossy().into_owned())
        .map_err(|_| format!("`{rel}` leads outside the {PLACE} through a symlink"))
}

/// What [`resolve`] and [`judged_target`] call the folder an agent works
/// in: a task's worktree, or the project of a guarded session.
const PLACE: &str = "agent's working tree";

/// Rewrites a file action's target to the file that would change, relative
/// to `tree` with symlinks followed (the detail says when one was), or
/// says why omk refuses it before any gate: a path outside `tree`, or one
/// [`resolve`] will not judge. A read's target becomes what it reads (see
/// [`read_target`]). Other actions are left as they are.
pub fn judged_target(tree: &Path, action: &mut omk_gate_sdk::AgentAction) -> Result<(), String> {
    if action.kind == omk_gate_sdk::ActionKind::ReadFile {
        let real = read_target(tree, &action.target);
        if real != action.target {
            action.detail = format!("{} (`{}` as given)", action.detail, action.target);
            action.target = real;
        }
        return Ok(());
    }
    if !action.kind.is_file_change() {
        return Ok(());
    }
    let rel = super::relative_to(tree, &action.target)
        .ok_or_else(|| format!("`{}` is outside the {PLACE}", action.target))?;
    let real = resolve(tree, &rel)?;
    if Path::new(&real) != Path::new(rel.trim_start_matches("./")) {
        action.detail = format!("{} (`{rel}` through a symlink)", action.detail);
    }
    action.target = real;
    Ok(())
}

/// What a read of `target` (as the agent named it, relative to `tree` or
/// absolute) reads, the way the operating system will find it: symlinks and
/// `..` followed. Inside `tree`, the path relative to it (`.` for `tree`
/// itself), so gates judge `docs/link` to `secrets/` as `secrets`; outside,
/// the absolute path. A read is never refused here: where it leads decides.
pub fn read_target(tree: &Path, target: &str) -> String {
    let given = Path::new(target);
    if target.starts_with('~') {
        return target.to_owned(); // the agent's home: outside, as written
    }
    let full = if given.is_absolute() {
        given.to_path_buf()
    } else {
        tree.join(given)
    };
    let real = real_path(&full);
    let root = tree.canonicalize().unwrap_or_else(|_| tree.to_path_buf());
    match real.strip_prefix(&root) {
        Ok(r) if r.as_os_str().is_empty() => ".".to_owned(),
        Ok(r) => r.to_string_lossy().into_owned(),
        Err(_) => real.to_string_lossy().into_owned(),
    }
}

/// `path` with its longest existing ancestor canonicalized and the rest
/// folded by text (`.` dropped, `..` climbing).
fn real_path(path: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut existing = path;
    let mut rest: Vec<Component<'_>> = Vec::new();
    let base = loop {
        if let Ok(real) = existing.canonicalize() {
            break real;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => break std::path::PathBuf::from("/"),
        }
    };
    rest.iter().rev().fold(base, |mut p, c| {
        match c {
            Component::ParentDir => {
                p.pop();
            }
            Component::Normal(n) => p.push(n),
            _ => {}
        }
        p
    })
}

/// Writes `rel` inside `worktree`, creating parent directories; cap-std
/// refuses any path that would leave it.
pub fn write_file(worktree: &Path, rel: impl AsRef<Path>, content: &str) -> std::io::Result<()> {
    let dir = open(worktree)?;
    let rel = inside(worktree, rel.as_ref())?;
    if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        dir.create_dir_all(parent)?;
    }
    dir.write(&rel, content)
}

/// Deletes `rel` inside `worktree`.
pub fn delete_file(worktree: &Path, rel: impl AsRef<Path>) -> std::io::Result<()> {
    let rel = inside(worktree, rel.as_ref())?;
    open(worktree)?.remove_file(rel)
}

/// Reads `rel` inside `worktree` as text, from 1-based `line`, at most
/// `limit` lines.
pub fn read_file(
    worktree: &Path,
    rel: impl AsRef<Path>,
    line: Option<u32>,
    limit: Option<u32>,
) -> std::io::Result<String> {
    use std::io::Read;
    let rel = inside(worktree, rel.as_ref())?;
    let file = open(worktree)?.open(&rel)?;
    let mut text = String::new();
    file.take(MAX_READ).read_to_string(&mut text)?;
    if line.is_none() && limit.is_none() {
        return Ok(text);
    }
    let skip = line.map_or(0, |l| l.saturating_sub(1) as usize);
    let take = limit.map_or(usize::MAX, |l| l as usize);
    Ok(text.split_inclusive('\n').skip(skip).take(take).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_judged_as_what_it_reads() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let wt = root.join("wt");
        std::fs::create_dir_all(wt.join("secrets")).unwrap();
        std::fs::create_dir_all(wt.join("docs")).unwrap();
        std::os::unix::fs::symlink("../secrets", wt.join("docs/link")).unwrap();
        for (given, judged) in [
            ("secrets/key", "secrets/key".to_owned()),
            ("./docs/../secrets/key", "secrets/key".to_owned()),
            ("docs/link/key", "secrets/key".to_owned()),
            ("../wt/secrets", "secrets".to_owned()),
            (".", ".".to_owned()),
            ("", ".".to_owned()),
            (
                "../elsewhere/x",
                root.join("elsewhere/x").display().to_string(),
            ),
            ("~/.ssh/id_ed25519", "~/.ssh/id_ed25519".to_owned()),
        ] {
            assert_eq!(read_target(&wt, given), judged, "{given}");
        }
        let abs = wt.join("secrets/key").display().to_string();
        assert_eq!(read_target(&wt, &abs), "secrets/key");
    }

    #[test]
    fn reads_and_writes_cannot_leave_the_worktree() {
        let dir = tempfile::tempdir().unwrap();
        let wt = dir.path().join("wt");
        std::fs::create_dir(&wt).unwrap();
        write_file(&wt, "sub/ok.txt", "a\nb\nc\n").unwrap();
        assert_eq!(
            read_file(&wt, "sub/ok.txt", None, None).unwrap(),
            "a\nb\nc\n"
        );
        assert_eq!(
            read_file(&wt, wt.join("sub/ok.txt"), Some(2), Some(1)).unwrap(),
            "b\n"
        );
        assert!(write_file(&wt, "../escaped.txt", "no").is_err());
        assert!(write_file(&wt, "/tmp/abs.txt", "no").is_err());
        std::fs::write(dir.path().join("outside.txt"), "secret").unwrap();
        assert!(read_file(&wt, "../outside.txt", None, None).is_err());
        assert!(read_file(&wt, dir.path().join("outside.txt"), None, None).is_err());
        std::os::unix::fs::symlink(dir.path(), wt.join("link")).unwrap();
        assert!(write_file(&wt, "link/escaped.txt", "no").is_err());
        assert!(read_file(&wt, "link/outside.txt", None, None).is_err());
        assert!(!dir.path().join("escaped.txt").exists());
        assert_eq!(resolve(&wt, "sub/new/x.txt").unwrap(), "sub/new/x.txt");
        assert_eq!(resolve(&wt, "./sub/ok.txt").unwrap(), "sub/ok.txt");
        assert!(
            resolve(&wt, "link/escaped.txt")
                .unwrap_err()
                .contains("outside")
        );
        std::os::unix::fs::symlink("sub", wt.join("inner")).unwrap();
        assert_eq!(resolve(&wt, "inner/ok.txt").unwrap(), "sub/ok.txt");
        std::os::unix::fs::symlink("/nonexistent/x", wt.join("dangling")).unwrap();
        assert!(resolve(&wt, "dangling").unwrap_err().contains("nowhere"));
        assert!(resolve(&wt, "a/../b").unwrap_err().contains("`..`"));
        assert!(
            resolve(&wt, "inner/../link/x")
                .unwrap_err()
                .contains("`..`")
        );
        assert!(resolve(&wt, "~/.bashrc").unwrap_err().contains("home"));
        assert!(resolve(&wt, "/etc/passwd").is_err());
        assert_eq!(resolve(&wt, "").unwrap(), "");
        delete_file(&wt, "sub/ok.txt").unwrap();
        assert!(delete_file(&wt, "../outside.txt").is_err());
        assert!(dir.path().join("outside.txt").exists());
    }
}

//! The Gemini CLI's files: where its settings live, the folder trust its
//! project hooks need, and what keeps its hooks from running.
//!
//! A project's `.gemini/settings.json` is read only in a folder the user
//! trusts (`trustedFolders.json`; the longest rule naming the folder or a
//! parent decides), and a project hook in an untrusted folder is skipped
//! and the tool runs — so installing in a project trusts it, unless the
//! user said `DO_NOT_TRUST`, which `install` refuses. `hooksConfig.enabled:
//! false` or `hooksConfig.disabled: ["omk"]` in any settings file turns the
//! hook off: `status` reports it, and `guard run` refuses to start.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::files::{GEMINI_HOOK_NAME, json_doc};
use super::{Change, InstallError, Scope, error, read, write};

/// `$GEMINI_CLI_HOME`, else `HOME`: the home the client keeps `.gemini/`
/// in.
pub(super) fn home() -> Result<PathBuf, InstallError> {
    for var in ["GEMINI_CLI_HOME", "HOME"] {
        if let Some(v) = std::env::var_os(var).map(PathBuf::from)
            && v.is_absolute()
        {
            return Ok(v);
        }
    }
    Err(error(
        "cannot find the Gemini CLI's configuration: neither `GEMINI_CLI_HOME` nor `HOME` is set",
        Some("set HOME"),
    ))
}

/// The user's settings file.
pub(super) fn user_settings() -> Result<PathBuf, InstallError> {
    Ok(home()?.join(".gemini/settings.json"))
}

/// The system settings file, which wins over the user's and the project's.
pub(super) fn system_settings() -> PathBuf {
    std::env::var_os("GEMINI_CLI_SYSTEM_SETTINGS_PATH")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/etc/gemini-cli/settings.json"))
}

/// The file of folders the user trusts.
pub(super) fn trusted_folders() -> Result<PathBuf, InstallError> {
    if let Some(p) = std::env::var_os("GEMINI_CLI_TRUSTED_FOLDERS_PATH").map(PathBuf::from)
        && p.is_absolute()
    {
        return Ok(p);
    }
    Ok(home()?.join(".gemini/trustedFolders.json"))
}

/// Whether the rules of `trusted` (folder -> `TRUST_FOLDER`,
/// `TRUST_PARENT`, `DO_NOT_TRUST`) trust `root`: the longest rule whose
/// folder holds it decides; `None` when none does.
fn trusts(rules: &Value, root: &Path) -> Option<bool> {
    let mut best: Option<(usize, bool)> = None;
    for (rule, level) in rules.as_object()? {
        let level = level.as_str().unwrap_or_default();
        let path = Path::new(rule);
        let folder = if level == "TRUST_PARENT" {
            path.parent().unwrap_or(path)
        } else {
            path
        };
        let folder = folder.canonicalize().unwrap_or_else(|_| folder.to_owned());
        if root.starts_with(&folder) && best.is_none_or(|(len, _)| rule.len() > len) {
            best = Some((rule.len(), level != "DO_NOT_TRUST"));
        }
    }
    best.map(|(_, trusted)| trusted)
}

/// Trusts the project at `root` for the Gemini CLI, unless it is trusted.
pub(super) fn trust(scope: &Scope) -> Result<Vec<Change>, InstallError> {
    let Scope::Project(root) = scope else {
        return Ok(Vec::new());
    };
    let file = trusted_folders()?;
    let before = read(&file)?;
    let mut doc = json_doc(&file, before.as_deref())?;
    let real = root.canonicalize().unwrap_or_else(|_| root.clone());
    match trusts(&doc, &real) {
        Some(true) => return Ok(Vec::new()),
        Some(false) => {
            return Err(error(
                format!(
                    "the Gemini CLI does not trust `{}` (`DO_NOT_TRUST` in `{}`), so it would skip the project's hook and run every tool",
                    root.display(),
                    file.display()
                ),
                Some(
                    "trust the folder (`/permissions` in the Gemini CLI), or install for every session of this user with `omk guard install gemini --user`",
                ),
            ));
        }
        None => {}
    }
    if let Some(map) = doc.as_object_mut() {
        map.insert(real.display().to_string(), json!("TRUST_FOLDER"));
    }
    let text = serde_json::to_string_pretty(&doc).map_err(|e| error(e.to_string(), None))? + "\n";
    write(&file, before.as_deref(), &text)?;
    Ok(vec![Change {
        file,
        what: "added",
        detail: format!(
            "trust of `{}`, without which the Gemini CLI skips a project's hooks",
            real.display()
        ),
    }])
}

/// `now` (the trusted folders file's text) without the trust `install`
/// added for the project of `scope`: only when it was not there before
/// (`undo_before`, the file's text then).
pub(super) fn trust_remove(
    file: &Path,
    now: &str,
    scope: &Scope,
    undo_before: Option<&str>,
) -> Result<Option<String>, InstallError> {
    let (Scope::Project(root), Some(before)) = (scope, undo_before) else {
        return Ok(None);
    };
    let key = root
        .canonicalize()
        .unwrap_or_else(|_| root.clone())
        .display()
        .to_string();
    let was: Value = serde_json::from_str(before).unwrap_or_else(|_| json!({}));
    if was.get(&key).is_some() {
        return Ok(None);
    }
    let mut doc = json_doc(file, Some(now))?;
    let removed = doc.as_object_mut().and_then(|m| m.remove(&key)).is_some();
    if !removed {
        return Ok(None);
    }
    Ok(Some(
        serde_json::to_string_pretty(&doc).map_err(|e| error(e.to_string(), None))? + "\n",
    ))
}

/// What keeps the hook in `scope` from running: hooks turned off or omk's
/// disabled in any settings file the client reads, or a project it does
/// not trust.
pub(super) fn problems(scope: &Scope) -> Vec<String> {
    let mut out = hooks_off(match scope {
        Scope::Project(root) => Some(root),
        Scope::User => None,
    });
    if let Scope::Project(root) = scope {
        let real = root.canonicalize().unwrap_or_else(|_| root.clone());
        let rules = trusted_folders()
            .ok()
            .and_then(|f| read(&f).ok().flatten())
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .unwrap_or_else(|| json!({}));
        if trusts(&rules, &real) != Some(true) {
            out.push(
                "the Gemini CLI does not trust this folder, so it skips the project's hook: install again, or trust it"
                    .into(),
            );
        }
    }
    out
}

/// What turns hooks or omk's hook off for a session (on the project at
/// `root`): `hooksConfig` in the system, user or project settings.
pub(super) fn hooks_off(root: Option<&Path>) -> Vec<String> {
    let mut files = vec![system_settings()];
    files.extend(user_settings().ok());
    files.extend(root.map(|r| r.join(".gemini/settings.json")));
    let mut out = Vec::new();
    for f in &files {
        let Some(doc) = read(f)
            .ok()
            .flatten()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        else {
            continue;
        };
        let config = &doc["hooksConfig"];
        if config["enabled"] == false {
            out.push(format!(
                "`{}` turns hooks off (`hooksConfig.enabled: false`): every tool would run unjudged",
                f.display()
            ));
        }
        let disabled = config["disabled"]
            .as_array()
            .is_some_and(|d| d.iter().any(|n| n == GEMINI_HOOK_NAME));
        if disabled {
            out.push(format!(
                "`{}` disables omk's hook (`hooksConfig.disabled` lists `{GEMINI_HOOK_NAME}`): every tool would run unjudged",
                f.display()
            ));
        }
    }
    out
}

/// Makes `home` the home of one run: its `.gemini/settings.json` the
/// user's settings with omk's `group` added. With `link_from` (the user's
/// home), every other entry of its `.gemini/` is linked in, so that
/// credentials, history and trust are the user's; without, they are the
/// copies already there (a sandbox's private home).
pub(super) fn one_run_home(
    group: Value,
    home: &Path,
    link_from: Option<&Path>,
) -> Result<(), InstallError> {
    let user = user_settings()?;
    let text = read(&user)?;
    let mut doc = json_doc(&user, text.as_deref())?;
    super::files::event_groups(&user, &mut doc, super::Client::Gemini)?.push(group);
    let dir = home.join(".gemini");
    std::fs::create_dir_all(&dir).map_err(super::io(&dir, "create"))?;
    if let Some(from) = link_from.map(|h| h.join(".gemini"))
        && let Ok(entries) = std::fs::read_dir(&from)
    {
        for e in entries.flatten() {
            if e.file_name() == "settings.json" {
                continue;
            }
            let to = dir.join(e.file_name());
            std::os::unix::fs::symlink(e.path(), &to).map_err(super::io(&to, "link"))?;
        }
    }
    let file = dir.join("settings.json");
    let text = serde_json::to_string_pretty(&doc).map_err(|e| error(e.to_string(), None))?;
    // Settings may hold keys: private.
    let _ = std::fs::remove_file(&file);
    crate::atomic::write_private(&file, text.as_bytes()).map_err(super::io(&file, "write"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_rule_decides_trust() {
        let rules =
            json!({"/w": "TRUST_FOLDER", "/w/p/x": "DO_NOT_TRUST", "/o/q/file": "TRUST_PARENT"});
        assert_eq!(trusts(&rules, Path::new("/w/p")), Some(true));
        assert_eq!(trusts(&rules, Path::new("/w/p/x/y")), Some(false));
        assert_eq!(trusts(&rules, Path::new("/o/q")), Some(true));
        assert_eq!(trusts(&rules, Path::new("/else")), None);
        assert_eq!(trusts(&json!({}), Path::new("/w")), None);
    }
}

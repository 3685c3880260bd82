//! Codex runs a hook only once it is trusted: the hook by a hash of what
//! it runs (`[hooks.state]` in the user's `config.toml`), and a project's
//! `.codex/` only in a trusted project (`[projects]`).

use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use super::files::toml_doc;
use super::{
    Change, HOOK_TIMEOUT_SECS, InstallError, Scope, codex_config, error, read, sha, write,
};

/// The hash Codex trusts a hook by: sha256 of its normalised identity
/// (event, handlers, matcher) as compact JSON with sorted keys.
pub fn codex_hook_hash(command: &str) -> String {
    use std::collections::BTreeMap;
    // Maps, not `json!`: their keys serialize sorted whatever serde_json's
    // features are.
    let handler: BTreeMap<&str, Value> = BTreeMap::from([
        ("async", json!(false)),
        ("command", json!(command)),
        ("timeout", json!(HOOK_TIMEOUT_SECS)),
        ("type", json!("command")),
    ]);
    #[derive(Serialize)]
    struct Identity<'a> {
        event_name: &'a str,
        hooks: [BTreeMap<&'a str, Value>; 1],
    }
    let identity = Identity {
        event_name: "pre_tool_use",
        hooks: [handler],
    };
    let text = serde_json::to_string(&identity).unwrap_or_default();
    format!("sha256:{}", sha(&text))
}

/// Trusts omk's Codex hook (and, for a project whose `.codex/` Codex
/// does not read yet, the project) in Codex's user config.
pub(super) fn codex_trust(
    hooks_json: &Path,
    group: usize,
    command: &str,
    scope: &Scope,
) -> Result<Vec<Change>, InstallError> {
    let config = codex_config()?;
    let before = read(&config)?;
    let mut doc = toml_doc(&config, before.as_deref())?;
    let key = format!("{}:pre_tool_use:{group}:0", hooks_json.display());
    let hash = codex_hook_hash(command);
    let mut changes = Vec::new();
    let hooks = implicit_table(&mut doc, &config, &["hooks", "state"])?;
    let current = hooks
        .get(&key)
        .and_then(|t| t.get("trusted_hash"))
        .and_then(|h| h.as_str())
        .map(str::to_owned);
    if current.as_deref() != Some(hash.as_str()) {
        let mut entry = toml_edit::Table::new();
        entry["trusted_hash"] = toml_edit::value(hash.as_str());
        hooks.insert(&key, toml_edit::Item::Table(entry));
        changes.push(Change {
            file: config.clone(),
            what: "added",
            detail: format!("trust of the hook `{key}`"),
        });
    }
    if let Scope::Project(root) = scope {
        let root = root.canonicalize().unwrap_or_else(|_| root.clone());
        let projects = implicit_table(&mut doc, &config, &["projects"])?;
        let name = root.to_string_lossy().into_owned();
        if !projects.contains_key(&name) {
            let mut entry = toml_edit::Table::new();
            entry["trust_level"] = toml_edit::value("trusted");
            projects.insert(&name, toml_edit::Item::Table(entry));
            changes.push(Change {
                file: config.clone(),
                what: "added",
                detail: format!(
                    "trust of the project `{name}`, without which Codex reads no hook in its `.codex/`"
                ),
            });
        }
    }
    if !changes.is_empty() {
        write(&config, before.as_deref(), &doc.to_string())?;
    }
    Ok(changes)
}

/// The table at `path` in `doc`, made (without a header of its own) if
/// absent.
pub(super) fn implicit_table<'a>(
    doc: &'a mut toml_edit::DocumentMut,
    file: &Path,
    path: &[&str],
) -> Result<&'a mut toml_edit::Table, InstallError> {
    let mut t: &mut toml_edit::Table = doc.as_table_mut();
    for name in path {
        let item = t.entry(name).or_insert_with(|| {
            let mut n = toml_edit::Table::new();
            n.set_implicit(true);
            toml_edit::Item::Table(n)
        });
        t = item.as_table_mut().ok_or_else(|| {
            error(
                format!("`{}`: `{name}` is not a table", file.display()),
                Some("fix the file, then install again"),
            )
        })?;
    }
    Ok(t)
}

/// Removes the trust omk gave its hooks in `hooks_json`, and the
/// project's trust when `before` (the config before the install, if
/// known) shows omk added it.
pub(super) fn codex_trust_remove(
    file: &Path,
    text: &str,
    hooks_json: &Path,
    scope: &Scope,
    before: Option<&str>,
) -> Result<Option<String>, InstallError> {
    let mut doc = toml_doc(file, Some(text))?;
    let mut changed = false;
    let prefix = format!("{}:pre_tool_use:", hooks_json.display());
    if let Some(state) = doc
        .get_mut("hooks")
        .and_then(|h| h.as_table_mut())
        .and_then(|h| h.get_mut("state"))
        .and_then(|s| s.as_table_mut())
    {
        let ours: Vec<String> = state
            .iter()
            .map(|(k, _)| k.to_owned())
            .filter(|k| k.starts_with(&prefix))
            .collect();
        for k in ours {
            state.remove(&k);
            changed = true;
        }
    }
    if let (Scope::Project(root), Some(before)) = (scope, before) {
        let root = root.canonicalize().unwrap_or_else(|_| root.clone());
        let name = root.to_string_lossy().into_owned();
        let had = toml_doc(file, Some(before))
            .ok()
            .is_some_and(|d| d.get("projects").and_then(|p| p.get(&name)).is_some());
        if !had
            && let Some(projects) = doc.get_mut("projects").and_then(|p| p.as_table_mut())
            && projects.remove(&name).is_some()
        {
            changed = true;
        }
    }
    Ok(changed.then(|| doc.to_string()))
}

/// Why Codex would not run the omk hook in `hooks_json`.
pub(super) fn codex_problems(hooks_json: &Path, command: &str, scope: &Scope) -> Vec<String> {
    let Ok(config) = codex_config() else {
        return Vec::new();
    };
    let doc: toml_edit::DocumentMut = read(&config)
        .ok()
        .flatten()
        .unwrap_or_default()
        .parse()
        .unwrap_or_default();
    let mut problems = Vec::new();
    let prefix = format!("{}:pre_tool_use:", hooks_json.display());
    let hash = codex_hook_hash(command);
    let trusted = doc
        .get("hooks")
        .and_then(|h| h.get("state"))
        .and_then(|s| s.as_table_like())
        .is_some_and(|s| {
            s.iter().any(|(k, v)| {
                k.starts_with(&prefix)
                    && v.get("trusted_hash").and_then(|h| h.as_str()) == Some(hash.as_str())
            })
        });
    if !trusted {
        problems.push(format!(
            "Codex does not trust the hook (no `[hooks.state]` for it in `{}`): install again",
            config.display()
        ));
    }
    if let Scope::Project(root) = scope {
        let root = root.canonicalize().unwrap_or_else(|_| root.clone());
        let level = doc
            .get("projects")
            .and_then(|p| p.get(&*root.to_string_lossy()))
            .and_then(|p| p.get("trust_level"))
            .and_then(|l| l.as_str());
        if level != Some("trusted") {
            problems.push(format!(
                "Codex does not trust the project, so it reads nothing in its `.codex/` (`[projects.\"{}\"] trust_level = \"trusted\"` in `{}`)",
                root.display(),
                config.display()
            ));
        }
    }
    problems
}

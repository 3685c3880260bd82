//! Reading and changing the clients' hook files: JSON settings (Claude
//! Code, Codex, the Gemini CLI) and the Kimi CLI's TOML config, keeping
//! everything that is not omk's.

use std::path::Path;

use serde_json::{Value, json};

use super::{Client, HOOK_TIMEOUT_SECS, InstallError, error, is_ours};

/// Reads a JSON settings file (an object; absent or empty: `{}`).
pub(super) fn json_doc(file: &Path, text: Option<&str>) -> Result<Value, InstallError> {
    let text = text.unwrap_or("").trim();
    if text.is_empty() {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_str(text).map_err(|e| {
        error(
            format!("`{}` is not JSON: {e}", file.display()),
            Some("fix the file, then install again; omk changes nothing it cannot read"),
        )
    })?;
    if !v.is_object() {
        return Err(error(
            format!("`{}` is not a JSON object", file.display()),
            Some("fix the file, then install again"),
        ));
    }
    Ok(v)
}

/// The groups of `client`'s event (`PreToolUse`, `BeforeTool`) in a
/// settings object, made if absent.
pub(super) fn event_groups<'a>(
    file: &Path,
    doc: &'a mut Value,
    client: Client,
) -> Result<&'a mut Vec<Value>, InstallError> {
    let bad = || {
        error(
            format!(
                "`{}`: `hooks.{}` is not a list",
                file.display(),
                client.event()
            ),
            Some("fix the file, then install again"),
        )
    };
    let hooks = doc
        .as_object_mut()
        .ok_or_else(bad)?
        .entry("hooks")
        .or_insert_with(|| json!({}));
    hooks
        .as_object_mut()
        .ok_or_else(bad)?
        .entry(client.event())
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(bad)
}

/// omk's group of hooks for `client`, running `command`. Claude matches
/// every tool with `*`, Codex with no matcher at all; the Gemini CLI with
/// `*`, its timeout in milliseconds and each hook named.
pub(super) fn our_group(client: Client, command: &str) -> Value {
    match client {
        Client::Claude => json!({"matcher": "*", "hooks": [
            {"type": "command", "command": command, "timeout": HOOK_TIMEOUT_SECS}]}),
        Client::Gemini => json!({"matcher": "*", "hooks": [
            {"name": GEMINI_HOOK_NAME, "type": "command", "command": command,
             "timeout": HOOK_TIMEOUT_SECS * 1000}]}),
        _ => json!({"hooks": [
            {"type": "command", "command": command, "timeout": HOOK_TIMEOUT_SECS}]}),
    }
}

/// The name omk's hook goes by in the Gemini CLI's settings (which its
/// `hooksConfig.disabled` would list).
pub(super) const GEMINI_HOOK_NAME: &str = "omk";

pub(super) fn group_is_ours(group: &Value, client: Client) -> bool {
    group["hooks"].as_array().is_some_and(|hs| {
        hs.iter()
            .any(|h| h["command"].as_str().is_some_and(|c| is_ours(c, client)))
    })
}

/// Adds omk's group to a JSON settings file; `None` when one is there.
/// Also returns the group's index (Codex's trust key names it).
pub(super) fn json_add(
    file: &Path,
    text: Option<&str>,
    client: Client,
    command: &str,
) -> Result<(Option<String>, usize), InstallError> {
    let mut doc = json_doc(file, text)?;
    let groups = event_groups(file, &mut doc, client)?;
    if let Some(i) = groups.iter().position(|g| group_is_ours(g, client)) {
        return Ok((None, i));
    }
    groups.push(our_group(client, command));
    let index = groups.len() - 1;
    let text = serde_json::to_string_pretty(&doc).map_err(|e| error(e.to_string(), None))? + "\n";
    Ok((Some(text), index))
}

pub(super) fn toml_doc(
    file: &Path,
    text: Option<&str>,
) -> Result<toml_edit::DocumentMut, InstallError> {
    text.unwrap_or("").parse().map_err(|e| {
        error(
            format!("`{}` is not TOML: {e}", file.display()),
            Some("fix the file, then install again; omk changes nothing it cannot read"),
        )
    })
}

/// Adds a `[[hooks]]` entry to the Kimi CLI's config; `None` when one is
/// there.
pub(super) fn toml_hooks_add(
    file: &Path,
    text: Option<&str>,
    command: &str,
) -> Result<(Option<String>, usize), InstallError> {
    let mut doc = toml_doc(file, text)?;
    let hooks = doc
        .entry("hooks")
        .or_insert(toml_edit::Item::ArrayOfTables(
            toml_edit::ArrayOfTables::new(),
        ))
        .as_array_of_tables_mut()
        .ok_or_else(|| {
            error(
                format!(
                    "`{}`: `hooks` is not a list of `[[hooks]]` tables",
                    file.display()
                ),
                Some("write each hook as a `[[hooks]]` table, then install again"),
            )
        })?;
    if let Some(i) = hooks.iter().position(|t| {
        t.get("command")
            .and_then(|c| c.as_str())
            .is_some_and(|c| is_ours(c, Client::Kimi))
    }) {
        return Ok((None, i));
    }
    let mut t = toml_edit::Table::new();
    t["event"] = toml_edit::value("PreToolUse");
    // A regular expression: empty matches every tool (`*` is not one).
    t["matcher"] = toml_edit::value("");
    t["command"] = toml_edit::value(command);
    t["timeout"] = toml_edit::value(HOOK_TIMEOUT_SECS as i64);
    hooks.push(t);
    let index = hooks.len() - 1;
    Ok((Some(doc.to_string()), index))
}

pub(super) fn json_remove(
    file: &Path,
    text: &str,
    client: Client,
) -> Result<Option<String>, InstallError> {
    let mut doc = json_doc(file, Some(text))?;
    let Some(groups) = doc["hooks"][client.event()].as_array_mut() else {
        return Ok(None);
    };
    let n = groups.len();
    groups.retain(|g| !group_is_ours(g, client));
    if groups.len() == n {
        return Ok(None);
    }
    if groups.is_empty()
        && let Some(h) = doc["hooks"].as_object_mut()
    {
        h.remove(client.event());
        if h.is_empty()
            && let Some(d) = doc.as_object_mut()
        {
            d.remove("hooks");
        }
    }
    Ok(Some(
        serde_json::to_string_pretty(&doc).map_err(|e| error(e.to_string(), None))? + "\n",
    ))
}

pub(super) fn toml_hooks_remove(file: &Path, text: &str) -> Result<Option<String>, InstallError> {
    let mut doc = toml_doc(file, Some(text))?;
    let Some(hooks) = doc
        .get_mut("hooks")
        .and_then(|h| h.as_array_of_tables_mut())
    else {
        return Ok(None);
    };
    let n = hooks.len();
    hooks.retain(|t| {
        !t.get("command")
            .and_then(|c| c.as_str())
            .is_some_and(|c| is_ours(c, Client::Kimi))
    });
    if hooks.len() == n {
        return Ok(None);
    }
    if hooks.is_empty() {
        doc.remove("hooks");
    }
    Ok(Some(doc.to_string()))
}

pub(super) fn find_command(client: Client, text: &str) -> Option<String> {
    if client == Client::OpenCode {
        return super::opencode::command_of(text);
    }
    if client == Client::Kimi {
        let doc: toml_edit::DocumentMut = text.parse().ok()?;
        return doc
            .get("hooks")?
            .as_array_of_tables()?
            .iter()
            .filter_map(|t| t.get("command")?.as_str().map(str::to_owned))
            .find(|c| is_ours(c, client));
    }
    let doc: Value = serde_json::from_str(text).ok()?;
    doc["hooks"][client.event()]
        .as_array()?
        .iter()
        .flat_map(|g| g["hooks"].as_array().cloned().unwrap_or_default())
        .filter_map(|h| h["command"].as_str().map(str::to_owned))
        .find(|c| is_ours(c, client))
}

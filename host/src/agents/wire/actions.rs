//! What a wire request asks to do: the gate actions of a tool call (for a
//! `PreToolUse` hook) and of an `ApprovalRequest` (from its display blocks,
//! its description and the tool call it belongs to). Work in the
//! background is refused here, before any gate is asked.

use omk_gate_sdk::ActionKind;
use serde_json::Value;

/// A tool call as the events described it.
#[derive(Debug, Default, Clone)]
pub struct Call {
    pub name: String,
    pub arguments: String,
}

impl Call {
    /// What identifies the call's effect: its tool and its arguments.
    pub fn signature(&self) -> (String, String) {
        let args = serde_json::from_str::<Value>(&self.arguments)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| self.arguments.clone());
        (self.name.clone(), args)
    }
}

/// The text between the first and last backtick of `s` (`Write file `p``).
fn quoted(s: &str) -> Option<&str> {
    let start = s.find('`')? + 1;
    let end = s.rfind('`')?;
    (end > start).then(|| &s[start..end])
}

/// Why omk refuses work that would run in the background.
const BACKGROUND: &str = "omk refuses background work: it would outlive the task's deadline and escape its judgement; run it in the foreground";

/// The actions a tool call with `input` would take.
pub fn tool_actions(name: &str, input: &Value) -> Result<Vec<(ActionKind, String)>, String> {
    let text = |key: &str| {
        input[key]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    // A background command runs in a session of its own, out of reach of
    // the task's deadline; a background subagent runs without hooks.
    if input["run_in_background"] == true {
        return Err(format!("`{name}` in the background: {BACKGROUND}"));
    }
    Ok(vec![match name {
        "WriteFile" | "StrReplaceFile" => (
            ActionKind::WriteFile,
            text("path").ok_or_else(|| {
                format!("omk cannot tell which file `{name}` would change, so it refuses it")
            })?,
        ),
        "Shell" => (
            ActionKind::RunCommand,
            text("command").ok_or_else(|| "a `Shell` call without a command".to_owned())?,
        ),
        "FetchURL" => (
            ActionKind::FetchUrl,
            text("url").ok_or_else(|| "a `FetchURL` call without a URL".to_owned())?,
        ),
        "ReadFile" | "ReadMediaFile" => (
            ActionKind::ReadFile,
            text("path").ok_or_else(|| format!("a `{name}` call without a path"))?,
        ),
        // The directory searched; Kimi's default is its working directory.
        "Glob" => (
            ActionKind::ReadFile,
            text("directory").unwrap_or_else(|| ".".into()),
        ),
        "Grep" => (
            ActionKind::ReadFile,
            text("path").unwrap_or_else(|| ".".into()),
        ),
        other => {
            let shown = match text("path") {
                Some(p) => format!("{other} {p}"),
                None => other.to_owned(),
            };
            (ActionKind::Other, shown)
        }
    }])
}

/// The actions an `ApprovalRequest` asks for, from its display blocks,
/// its description and the tool call it belongs to.
pub fn approval_actions(
    req: &Value,
    call: Option<&Call>,
) -> Result<Vec<(ActionKind, String)>, String> {
    let sender = req["sender"].as_str().unwrap_or("");
    let action = req["action"].as_str().unwrap_or("");
    let description = req["description"].as_str().unwrap_or("");
    let args: Value = call
        .and_then(|c| serde_json::from_str(&c.arguments).ok())
        .unwrap_or(Value::Null);
    let blocks = req["display"].as_array().cloned().unwrap_or_default();
    let of_type = |t: &str, key: &str| -> Vec<String> {
        blocks
            .iter()
            .filter(|b| b["type"] == t)
            .filter_map(|b| b[key].as_str().filter(|s| !s.is_empty()).map(str::to_owned))
            .collect()
    };
    let mut out: Vec<(ActionKind, String)> = Vec::new();
    fn add(out: &mut Vec<(ActionKind, String)>, kind: ActionKind, target: String) {
        if !out.iter().any(|(k, t)| *k == kind && *t == target) {
            out.push((kind, target));
        }
    }
    let edits =
        sender == "WriteFile" || sender == "StrReplaceFile" || action.starts_with("edit file");
    let diffs = of_type("diff", "path");
    if edits || !diffs.is_empty() {
        for p in diffs {
            add(&mut out, ActionKind::WriteFile, p);
        }
        if edits {
            if let Some(p) = quoted(description) {
                add(&mut out, ActionKind::WriteFile, p.to_owned());
            }
            if let Some(p) = args["path"].as_str().filter(|p| !p.is_empty()) {
                add(&mut out, ActionKind::WriteFile, p.to_owned());
            }
        }
        if out.is_empty() {
            return Err(format!(
                "omk cannot tell which files `{sender}` would change, so it refuses it"
            ));
        }
        return Ok(out);
    }
    if action.contains("background") && action != "stop background task" {
        return Err(format!("`{sender}` ({action}): {BACKGROUND}"));
    }
    let shells = of_type("shell", "command");
    if sender == "Shell" || !shells.is_empty() {
        for c in shells {
            add(&mut out, ActionKind::RunCommand, c);
        }
        if out.is_empty() {
            let command = args["command"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| quoted(description).map(str::to_owned))
                .ok_or_else(|| "omk cannot tell which command `Shell` would run".to_owned())?;
            add(&mut out, ActionKind::RunCommand, command);
        }
        return Ok(out);
    }
    let target = if description.is_empty() {
        format!("{sender}: {action}")
    } else {
        format!("{sender}: {description}")
    };
    add(&mut out, ActionKind::Other, target);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call(name: &str, arguments: Value) -> Call {
        Call {
            name: name.into(),
            arguments: arguments.to_string(),
        }
    }

    #[test]
    fn approvals_become_actions() {
        let write = json!({"id": "a1", "tool_call_id": "t1", "sender": "WriteFile", "action": "edit file",
            "description": "Write file `/w/notes/a.md`",
            "display": [{"type": "diff", "path": "/w/notes/a.md", "old_text": "", "new_text": "x"}]});
        assert_eq!(
            approval_actions(
                &write,
                Some(&call("WriteFile", json!({"path": "notes/a.md"})))
            )
            .unwrap(),
            vec![
                (ActionKind::WriteFile, "/w/notes/a.md".to_owned()),
                (ActionKind::WriteFile, "notes/a.md".to_owned())
            ]
        );
        // No diff when the content does not change: the description names the file.
        let same = json!({"sender": "StrReplaceFile", "action": "edit file outside of working directory",
            "description": "Edit file `/etc/passwd`", "display": []});
        assert_eq!(
            approval_actions(&same, None).unwrap(),
            vec![(ActionKind::WriteFile, "/etc/passwd".to_owned())]
        );
        let blind =
            json!({"sender": "WriteFile", "action": "edit file", "description": "Write a file"});
        assert!(
            approval_actions(&blind, None)
                .unwrap_err()
                .contains("cannot tell")
        );
        let shell = json!({"sender": "Shell", "action": "run command", "description": "Run command `ls`",
            "display": [{"type": "shell", "language": "bash", "command": "ls -l"}]});
        assert_eq!(
            approval_actions(&shell, None).unwrap(),
            vec![(ActionKind::RunCommand, "ls -l".to_owned())]
        );
        let bare = json!({"sender": "Shell", "action": "run command", "description": "Run command `make`"});
        assert_eq!(
            approval_actions(&bare, None).unwrap(),
            vec![(ActionKind::RunCommand, "make".to_owned())]
        );
        let mcp = json!({"sender": "mcp__db__drop", "action": "call mcp tool", "description": "Drop the table"});
        assert_eq!(
            approval_actions(&mcp, None).unwrap(),
            vec![(
                ActionKind::Other,
                "mcp__db__drop: Drop the table".to_owned()
            )]
        );
    }

    #[test]
    fn hooked_tool_calls_become_actions() {
        assert_eq!(
            tool_actions("WriteFile", &json!({"path": "a.md", "content": "x"})).unwrap(),
            vec![(ActionKind::WriteFile, "a.md".to_owned())]
        );
        assert_eq!(
            tool_actions("Shell", &json!({"command": "make test"})).unwrap(),
            vec![(ActionKind::RunCommand, "make test".to_owned())]
        );
        assert_eq!(
            tool_actions("ReadFile", &json!({"path": "src/x.rs"})).unwrap(),
            vec![(ActionKind::ReadFile, "src/x.rs".to_owned())]
        );
        assert_eq!(
            tool_actions("Grep", &json!({"pattern": "key"})).unwrap(),
            vec![(ActionKind::ReadFile, ".".to_owned())]
        );
        assert_eq!(
            tool_actions("Glob", &json!({"pattern": "*.md", "directory": "docs"})).unwrap(),
            vec![(ActionKind::ReadFile, "docs".to_owned())]
        );
        assert!(tool_actions("StrReplaceFile", &json!({})).is_err());
        for (tool, input) in [
            (
                "Shell",
                json!({"command": "sleep 1000", "run_in_background": true, "description": "x"}),
            ),
            (
                "Agent",
                json!({"description": "d", "prompt": "p", "run_in_background": true}),
            ),
        ] {
            let e = tool_actions(tool, &input).unwrap_err();
            assert!(e.contains("omk refuses background work"), "{e}");
        }
        assert_eq!(
            tool_actions("Agent", &json!({"description": "d", "prompt": "p"})).unwrap(),
            vec![(ActionKind::Other, "Agent".to_owned())]
        );
        let bg = json!({"sender": "Shell", "action": "run background command",
            "description": "Run background command `x`", "display": [{"type": "shell", "command": "x"}]});
        assert!(
            approval_actions(&bg, None)
                .unwrap_err()
                .contains("background")
        );
    }

    #[test]
    fn backticks_are_read_from_descriptions() {
        assert_eq!(quoted("Write file `/a/b`"), Some("/a/b"));
        assert_eq!(quoted("Run command `echo `x``"), Some("echo `x`"));
        assert_eq!(quoted("nothing"), None);
        assert_eq!(quoted("one ` only"), None);
    }
}

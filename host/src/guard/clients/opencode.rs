//! OpenCode's tools (1.18) as gate actions, as omk's plugin reports them
//! (`tool.execute.before`: the tool's id and its arguments).
//!
//! | tool | arguments read | action |
//! |---|---|---|
//! | `write`, `edit` | `filePath` | write-file |
//! | `apply_patch` | `patchText` (the `*** Begin Patch` format) | write-file or delete-file for each file of the patch |
//! | `read` | `filePath` | read-file |
//! | `glob`, `grep`, `list` | `path` (default: the project) | read-file of the folder searched |
//! | `bash` | `command`, `workdir` | run-command (`cd DIR && …` when it names a folder) |
//! | `webfetch` | `url` | fetch-url |
//! | an MCP server's tool, `SERVER_TOOL` | the servers the plugin found in OpenCode's configuration | call-tool |
//! | any other (`websearch`, `codesearch`, `todowrite`, `task`, `skill`, `question`, `lsp`, `plan_exit`, …) | | `other`, with its name and input |

use omk_gate_sdk::ActionKind;
use serde_json::Value;

use crate::agents::judge::Step;

/// The actions of an OpenCode tool call.
pub fn actions(tool: &str, input: &Value) -> Result<Vec<(ActionKind, String)>, String> {
    let text = |key: &str| {
        input[key]
            .as_str()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    };
    let path = |kind: ActionKind| {
        text("filePath")
            .map(|p| vec![(kind, p)])
            .ok_or_else(|| format!("omk cannot tell which file `{tool}` names, so it refuses it"))
    };
    match tool {
        "write" | "edit" => path(ActionKind::WriteFile),
        "read" => path(ActionKind::ReadFile),
        "apply_patch" => {
            let patch = text("patchText").ok_or("an `apply_patch` call without a patch")?;
            let files = super::patch_files(&patch);
            if files.is_empty() {
                return Err(
                    "omk cannot tell which files this patch would change, so it refuses it".into(),
                );
            }
            Ok(files)
        }
        "glob" | "grep" | "list" => Ok(vec![(
            ActionKind::ReadFile,
            text("path").unwrap_or_else(|| ".".into()),
        )]),
        "bash" => {
            let command = text("command").ok_or("a `bash` call without a command")?;
            let command = match text("workdir").filter(|d| d != ".") {
                Some(dir) => format!("cd {} && {command}", crate::text::sh_quote(&dir)),
                None => command,
            };
            Ok(vec![(ActionKind::RunCommand, command)])
        }
        "webfetch" => text("url")
            .map(|u| vec![(ActionKind::FetchUrl, u)])
            .ok_or_else(|| "a `webfetch` call without a URL".into()),
        _ => Ok(vec![(
            ActionKind::Other,
            format!("{tool} {}", crate::text::clip(&input.to_string(), 300)),
        )]),
    }
}

/// OpenCode's own tools.
const BUILT_IN: [&str; 21] = [
    "bash",
    "edit",
    "write",
    "read",
    "apply_patch",
    "glob",
    "grep",
    "list",
    "webfetch",
    "websearch",
    "codesearch",
    "todowrite",
    "todoread",
    "task",
    "skill",
    "question",
    "lsp",
    "plan_exit",
    "plan_enter",
    "multiedit",
    "patch",
];

/// The tool call `tool` makes when it is an MCP server's: OpenCode names
/// them `SERVER_TOOL`, each name with what is not a letter, digit, `_` or
/// `-` made `_`; `servers` are the names the plugin found (the longest
/// that fits wins).
pub fn mcp_call(tool: &str, servers: &Value, input: &Value) -> Option<Step> {
    // A server's name never makes one of OpenCode's own tools a call.
    if BUILT_IN.contains(&tool) {
        return None;
    }
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let server = servers
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .filter(|s| {
            tool.strip_prefix(&clean(s))
                .and_then(|rest| rest.strip_prefix('_'))
                .is_some_and(|rest| !rest.is_empty())
        })
        .max_by_key(|s| s.len())?;
    let name = &tool[clean(server).len() + 1..];
    Step::tool_call(server, name, input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(tool: &str, input: Value) -> Vec<(ActionKind, String)> {
        actions(tool, &input).unwrap()
    }

    #[test]
    fn every_file_tool_names_its_file_or_folder() {
        use ActionKind::*;
        assert_eq!(
            one("write", json!({"filePath": "a.md", "content": ""})),
            [(WriteFile, "a.md".to_owned())]
        );
        assert_eq!(
            one(
                "edit",
                json!({"filePath": "/p/b.rs", "oldString": "x", "newString": "y"})
            ),
            [(WriteFile, "/p/b.rs".to_owned())]
        );
        assert_eq!(
            one("read", json!({"filePath": "c"})),
            [(ReadFile, "c".to_owned())]
        );
        assert_eq!(
            one("grep", json!({"pattern": "x"})),
            [(ReadFile, ".".to_owned())]
        );
        assert_eq!(
            one("glob", json!({"pattern": "*", "path": "private"})),
            [(ReadFile, "private".to_owned())]
        );
        assert_eq!(
            one(
                "apply_patch",
                json!({"patchText": "*** Begin Patch\n*** Delete File: x\n*** End Patch"})
            ),
            [(DeleteFile, "x".to_owned())]
        );
        assert!(actions("write", &json!({})).is_err());
        assert!(actions("apply_patch", &json!({"patchText": "nothing"})).is_err());
        assert_eq!(
            one("bash", json!({"command": "ls", "workdir": "src"})),
            [(RunCommand, "cd src && ls".to_owned())]
        );
        assert_eq!(
            one("webfetch", json!({"url": "https://a.example"})),
            [(FetchUrl, "https://a.example".to_owned())]
        );
        assert_eq!(one("todowrite", json!({}))[0].0, Other);
    }

    #[test]
    fn mcp_tools_are_split_by_the_servers_configured() {
        let servers = json!(["db", "db_admin", "my.fs"]);
        let call = mcp_call("db_admin_drop", &servers, &json!({})).unwrap();
        let t = call.tool.unwrap();
        assert_eq!((t.server.as_str(), t.tool.as_str()), ("db_admin", "drop"));
        let call = mcp_call("my_fs_read_file", &servers, &json!({})).unwrap();
        assert_eq!(call.target, "mcp__my.fs__read_file");
        assert!(mcp_call("bash", &servers, &json!({})).is_none());
        assert!(mcp_call("apply_patch", &json!(["apply"]), &json!({})).is_none());
        assert!(mcp_call("db_", &servers, &json!({})).is_none());
        assert!(mcp_call("db_x", &Value::Null, &json!({})).is_none());
    }
}

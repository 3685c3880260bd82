//! The Gemini CLI's tools (0.61) as gate actions.
//!
//! | tool | arguments read | action |
//! |---|---|---|
//! | `write_file`, `replace` | `file_path` | write-file |
//! | `read_file` | `file_path` | read-file |
//! | `read_many_files` | `include` (paths or globs) | read-file of each, a glob as the folder it starts in |
//! | `list_directory`, `glob`, `grep_search` | `dir_path` (default: the project) | read-file of the folder searched |
//! | `run_shell_command` | `command`, `dir_path` | run-command (`cd DIR && …` when it names a folder); in the background as in the foreground |
//! | `web_fetch` | the URLs in `prompt` | fetch-url of each; none found: refused |
//! | `read_mcp_resource` | `uri` | a `file://` URI: read-file of its path; any other: `other` |
//! | an MCP server's tool | `mcp_context` | call-tool |
//! | any other (`google_web_search`, `write_todos`, `ask_user`, `activate_skill`, `invoke_agent`, the planning and tracker tools, …) | | `other`, with its name and input |

use omk_gate_sdk::ActionKind;
use serde_json::Value;

/// The actions of a Gemini CLI tool call.
pub fn actions(tool: &str, input: &Value) -> Result<Vec<(ActionKind, String)>, String> {
    let text = |key: &str| {
        input[key]
            .as_str()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    };
    let folder = || text("dir_path").unwrap_or_else(|| ".".into());
    let path = |kind: ActionKind| {
        text("file_path")
            .map(|p| vec![(kind, p)])
            .ok_or_else(|| format!("omk cannot tell which file `{tool}` names, so it refuses it"))
    };
    match tool {
        "write_file" | "replace" => path(ActionKind::WriteFile),
        "read_file" => path(ActionKind::ReadFile),
        "read_many_files" => {
            let include: Vec<String> = match &input["include"] {
                Value::Array(items) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(glob_folder)
                    .collect(),
                Value::String(one) => vec![glob_folder(one)],
                _ => Vec::new(),
            };
            if include.is_empty() {
                return Err("a `read_many_files` call without `include`".into());
            }
            let mut out: Vec<(ActionKind, String)> = Vec::new();
            for p in include {
                if !out.iter().any(|(_, t)| *t == p) {
                    out.push((ActionKind::ReadFile, p));
                }
            }
            Ok(out)
        }
        "list_directory" | "glob" | "grep_search" => Ok(vec![(ActionKind::ReadFile, folder())]),
        "run_shell_command" => {
            let command = text("command").ok_or("a `run_shell_command` call without a command")?;
            let command = match text("dir_path").filter(|d| d != ".") {
                Some(dir) => format!("cd {} && {command}", crate::text::sh_quote(&dir)),
                None => command,
            };
            Ok(vec![(ActionKind::RunCommand, command)])
        }
        "web_fetch" => {
            let prompt = text("prompt").or_else(|| text("url")).unwrap_or_default();
            let urls = urls(&prompt);
            if urls.is_empty() {
                return Err("a `web_fetch` call whose prompt names no http(s) URL".into());
            }
            Ok(urls
                .into_iter()
                .map(|u| (ActionKind::FetchUrl, u))
                .collect())
        }
        "read_mcp_resource" => match text("uri")
            .as_deref()
            .and_then(|u| u.strip_prefix("file://"))
        {
            Some(p) => Ok(vec![(ActionKind::ReadFile, p.to_owned())]),
            None => Ok(vec![other(tool, input)]),
        },
        _ => Ok(vec![other(tool, input)]),
    }
}

fn other(tool: &str, input: &Value) -> (ActionKind, String) {
    (
        ActionKind::Other,
        format!("{tool} {}", crate::text::clip(&input.to_string(), 300)),
    )
}

/// The folder a path or glob starts in: the path itself when it has no
/// glob characters, else its components before the first that has one
/// (`src/**/*.rs` is `src`, `*.md` is `.`).
fn glob_folder(pattern: &str) -> String {
    if !pattern.contains(['*', '?', '[', '{']) {
        return pattern.to_owned();
    }
    let fixed: Vec<&str> = pattern
        .split('/')
        .take_while(|c| !c.contains(['*', '?', '[', '{']))
        .collect();
    let joined = fixed.join("/");
    if joined.is_empty() {
        if pattern.starts_with('/') {
            "/".into()
        } else {
            ".".into()
        }
    } else {
        joined
    }
}

/// The http and https URLs in `text`, in order, each once.
fn urls(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'')) {
        let Some(at) = word.find("http://").or_else(|| word.find("https://")) else {
            continue;
        };
        let url = word[at..].trim_end_matches(['.', ',', ';', ':', ')', ']', '!', '?']);
        if url.len() > "https://".len() && !out.iter().any(|u| u == url) {
            out.push(url.to_owned());
        }
    }
    out
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
        let w = |p: &str| vec![(WriteFile, p.to_owned())];
        let r = |p: &str| vec![(ReadFile, p.to_owned())];
        assert_eq!(
            one("write_file", json!({"file_path": "a.md", "content": ""})),
            w("a.md")
        );
        assert_eq!(
            one(
                "replace",
                json!({"file_path": "/p/b.rs", "old_string": "x", "new_string": "y"})
            ),
            w("/p/b.rs")
        );
        assert_eq!(one("read_file", json!({"file_path": "c"})), r("c"));
        assert_eq!(one("glob", json!({"pattern": "**/*.rs"})), r("."));
        assert_eq!(
            one("grep_search", json!({"pattern": "x", "dir_path": "src"})),
            r("src")
        );
        assert_eq!(
            one("list_directory", json!({"dir_path": "private"})),
            r("private")
        );
        assert_eq!(
            one(
                "read_many_files",
                json!({"include": ["src/**/*.rs", "README.md", "*.md", "src/a/*"]})
            ),
            [
                (ReadFile, "src".to_owned()),
                (ReadFile, "README.md".to_owned()),
                (ReadFile, ".".to_owned()),
                (ReadFile, "src/a".to_owned()),
            ]
        );
        assert_eq!(
            one("read_mcp_resource", json!({"uri": "file:///etc/passwd"})),
            r("/etc/passwd")
        );
        assert!(actions("write_file", &json!({"content": "x"})).is_err());
        assert!(actions("read_many_files", &json!({})).is_err());
    }

    #[test]
    fn commands_run_where_they_say_and_urls_come_from_the_prompt() {
        assert_eq!(
            one(
                "run_shell_command",
                json!({"command": "make", "dir_path": "a b"})
            ),
            [(ActionKind::RunCommand, "cd 'a b' && make".to_owned())]
        );
        assert_eq!(
            one(
                "run_shell_command",
                json!({"command": "sleep 9", "is_background": true})
            ),
            [(ActionKind::RunCommand, "sleep 9".to_owned())]
        );
        assert_eq!(
            one(
                "web_fetch",
                json!({"prompt": "Summarize https://a.example/x. and (http://b.example/y)"})
            ),
            [
                (ActionKind::FetchUrl, "https://a.example/x".to_owned()),
                (ActionKind::FetchUrl, "http://b.example/y".to_owned()),
            ]
        );
        assert!(actions("web_fetch", &json!({"prompt": "no links"})).is_err());
        let o = one("google_web_search", json!({"query": "rust"}));
        assert_eq!(o[0].0, ActionKind::Other);
        assert!(o[0].1.starts_with("google_web_search "), "{}", o[0].1);
    }
}

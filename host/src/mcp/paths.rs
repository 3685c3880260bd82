//! The files a tool call names, for omk to judge as the reads and writes
//! they are: the arguments the path gate's `tools` setting points at
//! (`"filesystem/write_file" = { write = ["/path"] }`), and the file of a
//! `resources/read` of a `file://` URI. Each is judged after the call
//! itself, through the same rules as a client's own `Write` or `Read`:
//! symlinks followed, a write outside the project refused by omk, a read
//! of a `deny_read` path refused by the path gate.

use omk_core::mcp::ToolPathTable;
use omk_gate_sdk::{ActionKind, ToolCall};

/// The tool name a `resources/read` is judged under: MCP tool names hold
/// no `/`, so no server's tool can be called this.
pub const RESOURCE_READ: &str = "resources/read";

/// One file a tool call would read or write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub kind: ActionKind,
    /// As the call gives it: absolute, or relative to the project.
    pub target: String,
    /// Which argument names it, for people (`` `filesystem/write_file` with `/path` ``).
    pub by: String,
}

/// Every file `call` names, in the order the table lists its pointers
/// (writes first). Arguments that are not JSON name none here; the call
/// itself is judged all the same.
pub fn named(call: &ToolCall, table: &ToolPathTable) -> Vec<Named> {
    let key = format!("{}/{}", call.server, call.tool);
    let Ok(args) = serde_json::from_str::<serde_json::Value>(&call.arguments) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if call.tool == RESOURCE_READ {
        if let Some(path) = args["uri"].as_str().and_then(file_uri_path) {
            out.push(Named {
                kind: ActionKind::ReadFile,
                target: path,
                by: format!("`{key}` of `{}`", args["uri"].as_str().unwrap_or_default()),
            });
        }
        return out;
    }
    let Some(paths) = table.get(&key) else {
        return out;
    };
    let kinds = [
        (ActionKind::WriteFile, &paths.write),
        (ActionKind::ReadFile, &paths.read),
    ];
    for (kind, pointers) in kinds {
        for pointer in pointers {
            let found: Vec<&str> = match args.pointer(pointer) {
                Some(serde_json::Value::String(s)) => vec![s],
                Some(serde_json::Value::Array(a)) => {
                    a.iter().filter_map(serde_json::Value::as_str).collect()
                }
                _ => Vec::new(),
            };
            out.extend(found.into_iter().map(|p| Named {
                kind,
                target: p.to_owned(),
                by: format!("`{key}` with `{pointer}`"),
            }));
        }
    }
    out
}

/// The path of a `file:` URI (`file:///srv/a%20b`), decoded; whatever
/// host it names, the server reads its own files. `None` for any other
/// URI.
pub fn file_uri_path(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    if url.scheme() != "file" {
        return None;
    }
    let path = percent_encoding::percent_decode_str(url.path()).decode_utf8_lossy();
    Some(path.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use omk_core::mcp::ToolPaths;

    fn call(tool: &str, args: serde_json::Value) -> ToolCall {
        ToolCall {
            server: "fs".into(),
            tool: tool.into(),
            arguments: args.to_string(),
            definition_digest: String::new(),
        }
    }

    #[test]
    fn the_table_says_which_arguments_are_paths() {
        let mut table = ToolPathTable::new();
        table.insert(
            "fs/move".into(),
            ToolPaths {
                write: vec!["/source".into(), "/destination".into()],
                read: vec!["/also".into()],
            },
        );
        let n = named(
            &call(
                "move",
                serde_json::json!({"source": "a", "destination": "/abs/b", "also": ["c", 1, "d"]}),
            ),
            &table,
        );
        let got: Vec<_> = n.iter().map(|n| (n.kind, n.target.as_str())).collect();
        assert_eq!(
            got,
            [
                (ActionKind::WriteFile, "a"),
                (ActionKind::WriteFile, "/abs/b"),
                (ActionKind::ReadFile, "c"),
                (ActionKind::ReadFile, "d"),
            ]
        );
        assert_eq!(n[0].by, "`fs/move` with `/source`");
        // Not named, not JSON, no such argument: nothing.
        assert!(named(&call("other", serde_json::json!({"source": "a"})), &table).is_empty());
        let mut bad = call("move", serde_json::json!({}));
        bad.arguments = "{".into();
        assert!(named(&bad, &table).is_empty());
    }

    #[test]
    fn a_resource_read_of_a_file_reads_that_file() {
        let table = ToolPathTable::new();
        let n = named(
            &call(
                RESOURCE_READ,
                serde_json::json!({"uri": "file:///srv/a%20b/c"}),
            ),
            &table,
        );
        assert_eq!(n.len(), 1);
        assert_eq!(
            (n[0].kind, n[0].target.as_str()),
            (ActionKind::ReadFile, "/srv/a b/c")
        );
        for other in ["https://x/y", "not a uri"] {
            assert!(
                named(
                    &call(RESOURCE_READ, serde_json::json!({"uri": other})),
                    &table
                )
                .is_empty(),
                "{other}"
            );
        }
        for (uri, path) in [
            ("file://localhost/etc/hosts", "/etc/hosts"),
            ("file://elsewhere/etc/passwd", "/etc/passwd"),
            ("file:///a/../b", "/b"),
        ] {
            assert_eq!(file_uri_path(uri).as_deref(), Some(path), "{uri}");
        }
    }
}

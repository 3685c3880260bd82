//! What `.omk/gates.toml` says about MCP servers: each server's own grants
//! (`[mcp.NAME]`), which its process gets on top of the project's
//! `[sandbox]`, and which arguments of a tool call name files (the std path
//! gate's `tools` setting), so that omk judges those files as the reads and
//! writes they are.
//!
//! ```toml
//! [mcp.filesystem]
//! read = ["~/notes"]              # more the server may read
//! write = ["/srv/shared"]         # more it may write
//! hosts = ["api.github.com:443"]  # hosts it may reach through omk's proxy
//! connect = ["127.0.0.1:5432"]    # loopback ports it reaches directly
//!
//! [[gate]]
//! name = "path"
//! config.tools."filesystem/write_file" = { write = ["/path"] }
//! config.tools."filesystem/read_text_file" = { read = ["/path"] }
//! ```
//!
//! Every setting is optional. A server without a table gets the project's
//! `[sandbox]` and nothing more.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sandbox::SandboxSettings;

/// A server's name as `[mcp.NAME]`, `omk mcp run --name` and a client's
/// configuration give it: letters, digits, `-`, `_` and `.`, as MCP tool
/// names are, at most 64, and no `__` (clients name a server's tools
/// `mcp__SERVER__TOOL`).
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.contains("__")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Which arguments of one tool's calls are paths, as JSON pointers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolPaths {
    /// Paths the tool writes (`/path`, `/edits/0/path`).
    pub write: Vec<String>,
    /// Paths it reads.
    pub read: Vec<String>,
}

/// For each tool, `SERVER/TOOL`, the arguments that are paths.
pub type ToolPathTable = BTreeMap<String, ToolPaths>;

/// The `tools` settings of the std path gates of a configuration (their
/// `config` as JSON), merged; what does not parse is left out here, as the
/// gate itself refuses it at load.
pub fn tool_paths<'a>(path_gate_configs: impl IntoIterator<Item = &'a str>) -> ToolPathTable {
    let mut table = ToolPathTable::new();
    for raw in path_gate_configs {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(raw) else {
            continue;
        };
        let Some(tools) = value.get("tools").and_then(|t| t.as_object()) else {
            continue;
        };
        for (tool, paths) in tools {
            let Ok(paths) = serde_json::from_value::<ToolPaths>(paths.clone()) else {
                continue;
            };
            let entry = table.entry(tool.clone()).or_default();
            entry.write.extend(paths.write);
            entry.read.extend(paths.read);
            entry.write.sort();
            entry.write.dedup();
            entry.read.sort();
            entry.read.dedup();
        }
    }
    table
}

/// `[mcp.NAME]`: what one server's process may reach beyond the project's
/// `[sandbox]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerGrants {
    /// Its grants, checked as `[sandbox]`'s are (only `read`, `write`,
    /// `hosts`, `connect` and `unix_sockets` are set).
    pub grants: SandboxSettings,
}

impl ServerGrants {
    /// The sandbox a server runs in: the project's `base` with the
    /// server's grants added.
    pub fn over(&self, base: &SandboxSettings) -> SandboxSettings {
        let mut out = base.clone();
        out.read.extend(self.grants.read.iter().cloned());
        out.write.extend(self.grants.write.iter().cloned());
        out.hosts.extend(self.grants.hosts.iter().cloned());
        out.connect.extend(self.grants.connect.iter().cloned());
        out.unix_sockets |= self.grants.unix_sockets;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_paths_merge_and_skip_what_does_not_parse() {
        let table = tool_paths([
            r#"{"tools": {"fs/write_file": {"write": ["/path"]}}}"#,
            r#"{"tools": {"fs/write_file": {"write": ["/path", "/to"], "read": ["/from"]}}}"#,
            r#"{"tools": {"fs/bad": {"write": "not a list"}}}"#,
            "not json",
            "{}",
        ]);
        assert_eq!(table.len(), 1);
        let w = &table["fs/write_file"];
        assert_eq!(w.write, ["/path", "/to"]);
        assert_eq!(w.read, ["/from"]);
    }

    #[test]
    fn server_names_are_what_tool_names_may_hold() {
        for ok in ["filesystem", "git-2", "a.b_c"] {
            assert!(valid_server_name(ok), "{ok}");
        }
        for bad in ["", "a b", "a/b", "a__b", "x\n", &"x".repeat(65)] {
            assert!(!valid_server_name(bad), "{bad:?}");
        }
    }
}

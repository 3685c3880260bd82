//! OpenCode's hook: a plugin file omk writes (`omk-guard.js`) whose
//! `tool.execute.before` runs `omk hook opencode` with the call on stdin
//! and throws — which blocks the call and gives the model the reason —
//! when omk refuses it, exits any other way than 0, cannot be started, or
//! takes longer than the hook timeout.
//!
//! | scope | file |
//! |---|---|
//! | project | `.opencode/plugins/omk-guard.js` |
//! | `--user` | `$XDG_CONFIG_HOME/opencode/plugins/omk-guard.js` (`~/.config`) |
//!
//! For one run the plugin goes in a private folder, named in
//! `OPENCODE_CONFIG_CONTENT`'s `plugin` list (merged into the value the
//! variable has).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{HOOK_TIMEOUT_SECS, InstallError, Scope, error, is_ours};

/// The plugin's file name.
const FILE: &str = "omk-guard.js";

/// The line of the plugin that holds the hook's command.
const COMMAND_LINE: &str = "const OMK_HOOK = ";

/// OpenCode's user configuration folder.
pub(super) fn config_dir() -> Result<PathBuf, InstallError> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from)
        && x.is_absolute()
    {
        return Ok(x.join("opencode"));
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".config/opencode"))
        .ok_or_else(|| {
            error(
                "no HOME to find OpenCode's configuration in",
                Some("set HOME"),
            )
        })
}

/// The plugin file of `scope`.
pub(super) fn plugin_file(scope: &Scope) -> Result<PathBuf, InstallError> {
    Ok(match scope {
        Scope::Project(root) => root.join(".opencode/plugins").join(FILE),
        Scope::User => config_dir()?.join("plugins").join(FILE),
    })
}

/// The plugin running `command`.
pub(super) fn plugin(command: &str) -> String {
    let quoted = Value::String(command.to_owned()).to_string();
    PLUGIN
        .replace("@COMMAND@", &quoted)
        .replace("@TIMEOUT_MS@", &(HOOK_TIMEOUT_SECS * 1000).to_string())
}

/// The command of omk's plugin `text`, if it is one.
pub(super) fn command_of(text: &str) -> Option<String> {
    let line = text.lines().find_map(|l| l.strip_prefix(COMMAND_LINE))?;
    let literal = line.trim().trim_end_matches(';');
    let command: String = serde_json::from_str(literal).ok()?;
    is_ours(&command, super::Client::OpenCode).then_some(command)
}

/// The plugin's text for `command`, to write to `file` (now `before`);
/// `None` when omk's plugin with that command is there.
pub(super) fn add(
    file: &Path,
    before: Option<&str>,
    command: &str,
) -> Result<Option<String>, InstallError> {
    match before {
        None => Ok(Some(plugin(command))),
        Some(text) if command_of(text).as_deref() == Some(command) => Ok(None),
        Some(text) if command_of(text).is_some() => Ok(Some(plugin(command))),
        Some(_) => Err(error(
            format!("`{}` is there and is not omk's plugin", file.display()),
            Some("move it away, then install again; omk changes nothing it did not write"),
        )),
    }
}

/// `OPENCODE_CONFIG_CONTENT` for one run: `current` (the variable's
/// value, if any) with `plugin` added to its `plugin` list.
pub(super) fn config_content(current: Option<&str>, plugin: &Path) -> Result<String, InstallError> {
    let mut map = crate::agents::clients::opencode_config(current).map_err(|e| {
        error(
            e,
            Some("fix or unset the variable; omk adds its plugin to it"),
        )
    })?;
    let list = map.entry("plugin").or_insert_with(|| json!([]));
    let Some(list) = list.as_array_mut() else {
        return Err(error(
            "OPENCODE_CONFIG_CONTENT's `plugin` is not a list",
            Some("fix or unset the variable"),
        ));
    };
    list.push(json!(format!("file://{}", plugin.display())));
    Ok(Value::Object(map).to_string())
}

/// What keeps the plugin from loading, from this environment: OpenCode's
/// pure mode loads no plugin; `OPENCODE_DISABLE_PROJECT_CONFIG`, no
/// project's.
pub(super) fn problems(scope: &Scope) -> Vec<String> {
    let set =
        |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty() && x != "0" && x != "false");
    let mut out = Vec::new();
    if set("OPENCODE_PURE") {
        out.push(
            "OPENCODE_PURE is set here: OpenCode loads no plugin, and every tool would run unjudged"
                .to_owned(),
        );
    }
    if matches!(scope, Scope::Project(_)) && set("OPENCODE_DISABLE_PROJECT_CONFIG") {
        out.push(
            "OPENCODE_DISABLE_PROJECT_CONFIG is set here: OpenCode skips the project's plugin; install with --user"
                .to_owned(),
        );
    }
    out
}

/// The plugin. It asks omk for every call and fails closed; the servers
/// it names are MCP servers in OpenCode's configuration, so that omk can
/// tell `SERVER_TOOL` calls apart.
const PLUGIN: &str = r#"// Written by omk (`omk guard install opencode`, or `omk guard run` for one
// run): every tool call of OpenCode is judged by the project's gates, through
// `omk hook opencode`, before it runs. A call omk refuses, or cannot be asked
// about, is blocked. `omk guard uninstall opencode` removes this file.
import { spawn } from "node:child_process";

const OMK_HOOK = @COMMAND@;
const TIMEOUT_MS = @TIMEOUT_MS@;

function ask(event) {
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn("/bin/sh", ["-c", OMK_HOOK], { stdio: ["pipe", "pipe", "pipe"] });
    } catch (e) {
      resolve({ code: -1, stderr: `cannot start omk: ${e}` });
      return;
    }
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
    child.stdout.on("data", () => {});
    child.stderr.on("data", (d) => { stderr += d; });
    child.on("error", (e) => {
      clearTimeout(timer);
      resolve({ code: -1, stderr: `cannot start omk: ${e}` });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stderr: stderr || (signal ? `omk ended by ${signal}` : "") });
    });
    child.stdin.on("error", () => {});
    child.stdin.end(JSON.stringify(event));
  });
}

export const OmkGuard = async ({ client, directory }) => {
  let servers;
  const mcpServers = async () => {
    if (servers === undefined) {
      try {
        const config = await Promise.race([
          client.config.get(),
          new Promise((_, no) => setTimeout(() => no(new Error("timeout")), 5000)),
        ]);
        servers = Object.keys(config?.data?.mcp ?? {});
      } catch {
        servers = [];
      }
    }
    return servers;
  };
  return {
    "tool.execute.before": async (input, output) => {
      const event = {
        hook_event_name: "tool.execute.before",
        session_id: input.sessionID,
        cwd: directory,
        tool_name: input.tool,
        tool_input: output.args ?? {},
        tool_use_id: input.callID,
        mcp_servers: await mcpServers(),
      };
      const answer = await ask(event);
      if (answer.code !== 0) {
        const why = answer.stderr.trim() || `omk hook exited ${answer.code}`;
        throw new Error(why.startsWith("refused by omk") ? why : `refused by omk guard (opencode plugin): ${why}`);
      }
    },
  };
};
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_names_its_command_and_is_recognised() {
        let c = "'/a b/omk' hook opencode || exit 2";
        let text = plugin(c);
        assert_eq!(command_of(&text).as_deref(), Some(c));
        assert!(text.contains("TIMEOUT_MS = 60000;"), "{text}");
        assert_eq!(command_of("export const X = 1;"), None);
        let f = Path::new("/p/x.js");
        assert!(add(f, Some(&text), c).unwrap().is_none());
        assert!(
            add(f, Some(&text), "omk hook opencode || exit 2")
                .unwrap()
                .is_some()
        );
        assert!(add(f, Some("// mine"), c).is_err());
    }

    #[test]
    fn one_runs_config_keeps_the_users_and_adds_the_plugin() {
        let p = Path::new("/run/omk-guard.js");
        let merged: Value = serde_json::from_str(
            &config_content(Some(r#"{"model": "m", "plugin": ["x"]}"#), p).unwrap(),
        )
        .unwrap();
        assert_eq!(merged["model"], "m");
        assert_eq!(merged["plugin"], json!(["x", "file:///run/omk-guard.js"]));
        assert!(config_content(Some("[]"), p).is_err());
        assert!(config_content(Some("{"), p).is_err());
        assert!(config_content(None, p).unwrap().contains("omk-guard.js"));
    }
}

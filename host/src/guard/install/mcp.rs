//! The clients' MCP servers, routed through `omk mcp run` by `omk guard
//! install` (and back by `uninstall`): each server the client's
//! configuration starts is started by the gateway instead, which judges,
//! pins and confines it (see [`crate::mcp`]).
//!
//! | client | project (default) | `--user` |
//! |---|---|---|
//! | Claude Code | `.mcp.json`, and `~/.claude.json`'s `projects."ROOT".mcpServers` | `~/.claude.json`'s `mcpServers` (`$CLAUDE_CONFIG_DIR/.claude.json` when set) |
//! | Codex | `.codex/config.toml`'s `[mcp_servers]` | `$CODEX_HOME/config.toml`'s `[mcp_servers]` |
//! | Kimi CLI | none | `$KIMI_SHARE_DIR/mcp.json` (`~/.kimi`) |
//! | Gemini CLI | `.gemini/settings.json`'s `mcpServers` | `$GEMINI_CLI_HOME/.gemini/settings.json`'s `mcpServers` (`~`) |
//!
//! (The Gemini CLI's streamable-HTTP servers are `httpUrl`; its `url` is
//! the legacy SSE transport unless `"type": "http"`.)
//!
//! A server started by a command becomes `omk mcp run --name NAME
//! --client CLIENT [--project ROOT] -- COMMAND ARGS…`, its other settings
//! (`env`, `cwd`, timeouts) kept; a streamable-HTTP one becomes `omk mcp
//! run … --url URL`. One the gateway cannot stand in for is left as it is,
//! and `install` and `status` say why: an HTTP server with headers or a
//! bearer token (the gateway would have to hold them), one on the legacy
//! SSE transport, or one whose name is not a server name omk can route.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use super::files::{json_doc, toml_doc};
use super::{Client, InstallError, Scope, env_dir, error};

/// Where one client keeps servers: the file, and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFile {
    pub path: PathBuf,
    at: At,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum At {
    /// A JSON object of servers at these keys (`["mcpServers"]`); `typed`:
    /// an HTTP server's entry says `"type": "http"` (Claude Code's);
    /// `url_key`: the key of a streamable-HTTP server's URL (the Gemini
    /// CLI's `httpUrl`, where `url` is SSE).
    Json {
        keys: Vec<String>,
        typed: bool,
        url_key: &'static str,
    },
    /// Codex's TOML `[mcp_servers]`.
    Toml,
}

/// One server of a client's configuration, for `omk guard status`.
#[derive(Debug, Clone, Serialize)]
pub struct Server {
    pub client: &'static str,
    pub scope: &'static str,
    pub file: PathBuf,
    pub name: String,
    pub routed: bool,
    /// Why it is not routed, when it cannot be.
    pub why_not: Option<String>,
}

/// One server of a file: its name, whether it is routed, and why it
/// cannot be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub routed: bool,
    pub why_not: Option<String>,
}

fn found(name: &str, routed: bool, why_not: Option<String>) -> Found {
    Found {
        name: name.to_owned(),
        routed,
        why_not,
    }
}

/// The files `client` keeps MCP servers in, in `scope`.
pub fn server_files(client: Client, scope: &Scope) -> Result<Vec<ServerFile>, InstallError> {
    let json = |path: PathBuf, keys: &[&str]| ServerFile {
        path,
        at: At::Json {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            typed: client == Client::Claude,
            url_key: if client == Client::Gemini {
                "httpUrl"
            } else {
                "url"
            },
        },
    };
    Ok(match (client, scope) {
        (Client::Claude, Scope::Project(root)) => {
            let key = root.to_string_lossy().into_owned();
            vec![
                json(root.join(".mcp.json"), &["mcpServers"]),
                json(claude_json()?, &["projects", &key, "mcpServers"]),
            ]
        }
        (Client::Claude, Scope::User) => vec![json(claude_json()?, &["mcpServers"])],
        (Client::Codex, Scope::Project(root)) => vec![ServerFile {
            path: root.join(".codex/config.toml"),
            at: At::Toml,
        }],
        (Client::Codex, Scope::User) => vec![ServerFile {
            path: super::codex_config()?,
            at: At::Toml,
        }],
        (Client::Kimi, Scope::User) => {
            vec![json(
                env_dir("KIMI_SHARE_DIR", ".kimi")?.join("mcp.json"),
                &["mcpServers"],
            )]
        }
        (Client::Kimi, Scope::Project(_)) => Vec::new(),
        (Client::Gemini, Scope::Project(root)) => {
            vec![json(root.join(".gemini/settings.json"), &["mcpServers"])]
        }
        (Client::Gemini, Scope::User) => {
            vec![json(super::gemini::user_settings()?, &["mcpServers"])]
        }
        // Not routed yet; the hook judges its MCP tools' calls.
        (Client::OpenCode, _) => Vec::new(),
    })
}

/// Claude Code's own state file, which holds the user's and each
/// project's local servers.
fn claude_json() -> Result<PathBuf, InstallError> {
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR").map(PathBuf::from)
        && dir.is_absolute()
    {
        return Ok(dir.join(".claude.json"));
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| error("no HOME to find `~/.claude.json` in", Some("set HOME")))?;
    Ok(home.join(".claude.json"))
}

/// What routing changes a server into: `omk` is the program the client
/// starts (as the hook names it), `project` the root a project's servers
/// are judged by.
pub struct Gateway<'a> {
    pub omk: &'a str,
    pub client: Client,
    pub project: Option<&'a Path>,
}

impl Gateway<'_> {
    /// The arguments of `omk` that start server `name` as `start` did.
    fn routed(&self, name: &str, start: Start) -> Vec<String> {
        let mut args = self.args(name);
        match start {
            Start::Command(program, rest) => {
                args.push("--".into());
                args.push(program);
                args.extend(rest);
            }
            Start::Url(u) => {
                args.push("--url".into());
                args.push(u);
            }
        }
        args
    }

    fn args(&self, name: &str) -> Vec<String> {
        let mut args = vec![
            "mcp".to_owned(),
            "run".to_owned(),
            "--name".to_owned(),
            name.to_owned(),
            "--client".to_owned(),
            self.client.name().to_owned(),
        ];
        if let Some(p) = self.project {
            args.push("--project".into());
            args.push(p.to_string_lossy().into_owned());
        }
        args
    }
}

/// Whether a server entry's command is omk's gateway: `omk mcp run …`.
fn is_gateway(program: Option<&str>, args: &[String]) -> bool {
    let omk = program.is_some_and(|p| {
        Path::new(p.trim_matches('\''))
            .file_name()
            .is_some_and(|n| n == "omk")
    });
    omk && args.len() >= 2 && args[0] == "mcp" && args[1] == "run"
}

/// How a server is started, as the client's entry says.
enum Start {
    Command(String, Vec<String>),
    Url(String),
}

/// The original start of a routed entry: after `--`, or `--url`.
fn unrouted(args: &[String]) -> Option<Start> {
    if let Some(i) = args.iter().position(|a| a == "--") {
        let (program, rest) = args[i + 1..].split_first()?;
        return Some(Start::Command(program.clone(), rest.to_vec()));
    }
    let i = args.iter().position(|a| a == "--url")?;
    args.get(i + 1).cloned().map(Start::Url)
}

/// Why the gateway cannot stand in for a server, if it cannot.
fn cannot_route(name: &str, has_secrets: bool, sse: bool) -> Option<String> {
    if !crate::mcp::valid_server_name(name) {
        return Some(format!(
            "`{name}` is not a name omk can route (letters, digits, `-`, `_`, `.`, no `__`): rename it"
        ));
    }
    if sse {
        return Some("it uses the legacy SSE transport, which omk's gateway does not speak".into());
    }
    if has_secrets {
        return Some(
            "it sends headers or a bearer token, which omk's gateway would have to hold: route it by hand with `omk mcp run --url`, or leave it out".into(),
        );
    }
    None
}

/// The servers of `file` (its text `text`), whether each is routed, and
/// the text with every routable one routed (`None`: nothing to change).
pub fn route(
    file: &ServerFile,
    text: Option<&str>,
    gateway: &Gateway<'_>,
) -> Result<Listed, InstallError> {
    match &file.at {
        At::Json { keys, url_key, .. } => {
            route_json(&file.path, keys, url_key, text, Some(gateway))
        }
        At::Toml => route_toml(&file.path, text, Some(gateway)),
    }
}

/// The servers of `file` and whether each is routed, changing nothing.
pub fn listed(file: &ServerFile, text: Option<&str>) -> Result<Vec<Found>, InstallError> {
    let found = match &file.at {
        At::Json { keys, url_key, .. } => route_json(&file.path, keys, url_key, text, None),
        At::Toml => route_toml(&file.path, text, None),
    };
    found.map(|(_, servers)| servers)
}

/// `text` with every routed server of `file` back as it was started
/// before (`None`: none is routed).
pub fn unroute(file: &ServerFile, text: &str) -> Result<Option<String>, InstallError> {
    match &file.at {
        At::Json {
            keys,
            typed,
            url_key,
        } => unroute_json(&file.path, keys, *typed, url_key, text),
        At::Toml => unroute_toml(&file.path, text),
    }
}

/// A file's text with its servers routed (`None`: unchanged), and its
/// servers.
type Listed = (Option<String>, Vec<Found>);

fn servers_at<'a>(
    doc: &'a mut Value,
    keys: &[String],
) -> Option<&'a mut serde_json::Map<String, Value>> {
    let mut at = doc;
    for k in keys {
        at = at.get_mut(k)?;
    }
    at.as_object_mut()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

fn route_json(
    path: &Path,
    keys: &[String],
    url_key: &str,
    text: Option<&str>,
    gateway: Option<&Gateway<'_>>,
) -> Result<Listed, InstallError> {
    if text.is_none_or(|t| t.trim().is_empty()) {
        return Ok((None, Vec::new()));
    }
    let mut doc = json_doc(path, text)?;
    let Some(servers) = servers_at(&mut doc, keys) else {
        return Ok((None, Vec::new()));
    };
    let mut out = Vec::new();
    let mut changed = false;
    for (name, entry) in servers.iter_mut() {
        let Some(obj) = entry.as_object_mut() else {
            out.push(found(
                name,
                false,
                Some("its entry is not an object".into()),
            ));
            continue;
        };
        let args = strings(&obj.get("args").cloned().unwrap_or_default());
        if is_gateway(obj.get("command").and_then(Value::as_str), &args) {
            out.push(found(name, true, None));
            continue;
        }
        let kind = obj.get("type").and_then(Value::as_str).unwrap_or_default();
        // The Gemini CLI's `url` without `"type": "http"` is SSE.
        let sse_url = url_key != "url" && obj.contains_key("url") && kind != "http";
        let url = obj
            .get(url_key)
            .or_else(|| {
                obj.get("url")
                    .filter(|_| url_key != "url" && kind == "http")
            })
            .and_then(Value::as_str)
            .map(str::to_owned);
        let secrets = obj
            .get("headers")
            .is_some_and(|h| h.as_object().is_some_and(|m| !m.is_empty()))
            || obj.contains_key("bearerTokenEnvVar");
        let start = match (obj.get("command").and_then(Value::as_str), &url) {
            (Some(c), _) => Some(Start::Command(c.to_owned(), args)),
            (None, Some(u)) => Some(Start::Url(u.clone())),
            (None, None) => None,
        };
        let why = match &start {
            None if sse_url => cannot_route(name, secrets, true),
            None => Some("it names neither a command nor a URL".to_owned()),
            Some(Start::Url(_)) => cannot_route(name, secrets, kind == "sse"),
            Some(Start::Command(..)) => cannot_route(name, false, false),
        };
        if why.is_some() {
            out.push(found(name, false, why));
            continue;
        }
        let (Some(g), Some(start)) = (gateway, start) else {
            out.push(found(name, false, None));
            continue;
        };
        if matches!(start, Start::Url(_)) {
            obj.remove(url_key);
            obj.remove("url");
            obj.remove("type");
        }
        let args = g.routed(name, start);
        obj.insert("command".into(), json!(g.omk));
        obj.insert("args".into(), json!(args));
        changed = true;
        out.push(found(name, true, None));
    }
    let text = if changed {
        Some(serde_json::to_string_pretty(&doc).map_err(|e| error(e.to_string(), None))? + "\n")
    } else {
        None
    };
    Ok((text, out))
}

fn unroute_json(
    path: &Path,
    keys: &[String],
    typed: bool,
    url_key: &str,
    text: &str,
) -> Result<Option<String>, InstallError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let mut doc = json_doc(path, Some(text))?;
    let Some(servers) = servers_at(&mut doc, keys) else {
        return Ok(None);
    };
    let mut changed = false;
    for entry in servers.values_mut() {
        let Some(obj) = entry.as_object_mut() else {
            continue;
        };
        let args = strings(&obj.get("args").cloned().unwrap_or_default());
        if !is_gateway(obj.get("command").and_then(Value::as_str), &args) {
            continue;
        }
        match unrouted(&args) {
            Some(Start::Command(program, rest)) => {
                obj.insert("command".into(), json!(program));
                obj.insert("args".into(), json!(rest));
            }
            Some(Start::Url(u)) => {
                obj.remove("command");
                obj.remove("args");
                if typed {
                    obj.insert("type".into(), json!("http"));
                }
                obj.insert(url_key.into(), json!(u));
            }
            None => continue,
        }
        changed = true;
    }
    if !changed {
        return Ok(None);
    }
    Ok(Some(
        serde_json::to_string_pretty(&doc).map_err(|e| error(e.to_string(), None))? + "\n",
    ))
}

fn toml_strings(item: Option<&toml_edit::Item>) -> Vec<String> {
    item.and_then(|a| a.as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn toml_array(items: &[String]) -> toml_edit::Item {
    let mut a = toml_edit::Array::new();
    for i in items {
        a.push(i.as_str());
    }
    toml_edit::value(a)
}

fn route_toml(
    path: &Path,
    text: Option<&str>,
    gateway: Option<&Gateway<'_>>,
) -> Result<Listed, InstallError> {
    let Some(text) = text else {
        return Ok((None, Vec::new()));
    };
    let mut doc = toml_doc(path, Some(text))?;
    let Some(servers) = doc
        .get_mut("mcp_servers")
        .and_then(|s| s.as_table_like_mut())
    else {
        return Ok((None, Vec::new()));
    };
    let mut out = Vec::new();
    let mut changed = false;
    for (name, entry) in servers.iter_mut() {
        let name = name.get().to_owned();
        let Some(t) = entry.as_table_like_mut() else {
            out.push(found(&name, false, Some("its entry is not a table".into())));
            continue;
        };
        let args = toml_strings(t.get("args"));
        let command = t.get("command").and_then(|c| c.as_str()).map(str::to_owned);
        if is_gateway(command.as_deref(), &args) {
            out.push(found(&name, true, None));
            continue;
        }
        let url = t.get("url").and_then(|u| u.as_str()).map(str::to_owned);
        let secrets = [
            "bearer_token_env_var",
            "http_headers",
            "env_http_headers",
            "bearer_token",
        ]
        .iter()
        .any(|k| t.contains_key(k));
        let start = match (command, url) {
            (Some(c), _) => Some(Start::Command(c, args)),
            (None, Some(u)) => Some(Start::Url(u)),
            (None, None) => None,
        };
        let why = match &start {
            None => Some("it names neither a command nor a URL".to_owned()),
            Some(Start::Url(_)) => cannot_route(&name, secrets, false),
            Some(Start::Command(..)) => cannot_route(&name, false, false),
        };
        if why.is_some() {
            out.push(found(&name, false, why));
            continue;
        }
        let (Some(g), Some(start)) = (gateway, start) else {
            out.push(found(&name, false, None));
            continue;
        };
        if matches!(start, Start::Url(_)) {
            t.remove("url");
        }
        let args = g.routed(&name, start);
        t.insert("command", toml_edit::value(g.omk));
        t.insert("args", toml_array(&args));
        changed = true;
        out.push(found(&name, true, None));
    }
    Ok((changed.then(|| doc.to_string()), out))
}

fn unroute_toml(path: &Path, text: &str) -> Result<Option<String>, InstallError> {
    let mut doc = toml_doc(path, Some(text))?;
    let Some(servers) = doc
        .get_mut("mcp_servers")
        .and_then(|s| s.as_table_like_mut())
    else {
        return Ok(None);
    };
    let mut changed = false;
    for (_, entry) in servers.iter_mut() {
        let Some(t) = entry.as_table_like_mut() else {
            continue;
        };
        let args = toml_strings(t.get("args"));
        let command = t.get("command").and_then(|c| c.as_str()).map(str::to_owned);
        if !is_gateway(command.as_deref(), &args) {
            continue;
        }
        match unrouted(&args) {
            Some(Start::Command(program, rest)) => {
                t.insert("command", toml_edit::value(program));
                t.insert("args", toml_array(&rest));
            }
            Some(Start::Url(u)) => {
                t.remove("command");
                t.remove("args");
                t.insert("url", toml_edit::value(u));
            }
            None => continue,
        }
        changed = true;
    }
    Ok(changed.then(|| doc.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(project: Option<&Path>) -> Gateway<'_> {
        Gateway {
            omk: "omk",
            client: Client::Claude,
            project,
        }
    }

    fn file(at: At) -> ServerFile {
        ServerFile {
            path: PathBuf::from("/p/.mcp.json"),
            at,
        }
    }

    #[test]
    fn json_servers_are_routed_and_come_back() {
        let f = file(At::Json {
            keys: vec!["mcpServers".into()],
            typed: true,
            url_key: "url",
        });
        let text = r#"{"mcpServers": {
            "fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/p"], "env": {"A": "1"}},
            "web": {"type": "http", "url": "https://mcp.example.org/mcp"},
            "gh": {"type": "http", "url": "https://api.example.org/mcp", "headers": {"Authorization": "Bearer x"}},
            "old": {"type": "sse", "url": "https://sse.example.org/sse"},
            "bad name": {"command": "x"}
        }, "other": 1}"#;
        let (routed, servers) = route(&f, Some(text), &gateway(Some(Path::new("/p")))).unwrap();
        let routed = routed.unwrap();
        let doc: Value = serde_json::from_str(&routed).unwrap();
        let fs = &doc["mcpServers"]["fs"];
        assert_eq!(fs["command"], "omk");
        assert_eq!(
            strings(&fs["args"]),
            [
                "mcp",
                "run",
                "--name",
                "fs",
                "--client",
                "claude",
                "--project",
                "/p",
                "--",
                "npx",
                "-y",
                "@modelcontextprotocol/server-filesystem",
                "/p"
            ]
        );
        assert_eq!(fs["env"]["A"], "1");
        let web = &doc["mcpServers"]["web"];
        assert!(
            web.get("url").is_none() && web.get("type").is_none(),
            "{web}"
        );
        assert_eq!(
            strings(&web["args"]).last().unwrap(),
            "https://mcp.example.org/mcp"
        );
        let mut status: Vec<_> = servers
            .iter()
            .map(|f| (f.name.as_str(), f.routed, f.why_not.is_some()))
            .collect();
        status.sort();
        assert_eq!(
            status,
            [
                ("bad name", false, true),
                ("fs", true, false),
                ("gh", false, true),
                ("old", false, true),
                ("web", true, false)
            ]
        );
        // Routing again changes nothing; listing sees them routed.
        assert!(
            route(&f, Some(&routed), &gateway(None))
                .unwrap()
                .0
                .is_none()
        );
        assert!(
            listed(&f, Some(&routed))
                .unwrap()
                .iter()
                .any(|f| f.name == "fs" && f.routed)
        );
        // And back.
        let back: Value = serde_json::from_str(&unroute(&f, &routed).unwrap().unwrap()).unwrap();
        let before: Value = serde_json::from_str(text).unwrap();
        assert_eq!(back, before);
        assert!(unroute(&f, text).unwrap().is_none());
    }

    #[test]
    fn codex_servers_are_routed_and_come_back_keeping_the_rest() {
        let f = file(At::Toml);
        let text = "# mine\nmodel = \"x\"\n\n[mcp_servers.fs]\ncommand = \"node\"\nargs = [\"fs.js\", \"/p\"]\nenv = { A = \"1\" }\n\n[mcp_servers.remote]\nurl = \"https://mcp.example.org/mcp\"\n\n[mcp_servers.gh]\nurl = \"https://api.example.org/mcp\"\nbearer_token_env_var = \"GH\"\n";
        let (routed, servers) = route(&f, Some(text), &gateway(None)).unwrap();
        let routed = routed.unwrap();
        assert!(routed.starts_with("# mine\nmodel = \"x\"\n"), "{routed}");
        assert!(routed.contains(r#"args = ["mcp", "run", "--name", "fs", "--client", "claude", "--", "node", "fs.js", "/p"]"#), "{routed}");
        assert!(routed.contains("env = { A = \"1\" }"), "{routed}");
        assert_eq!(
            servers.iter().filter(|s| s.routed).count(),
            2,
            "{servers:?}"
        );
        assert!(servers.iter().any(|f| f.name == "gh"
            && !f.routed
            && f.why_not.as_deref().is_some_and(|w| w.contains("bearer"))));
        let back = unroute(&f, &routed).unwrap().unwrap();
        let a: toml::Value = toml::from_str(&back).unwrap();
        let b: toml::Value = toml::from_str(text).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn gemini_servers_over_http_are_http_url_and_its_url_is_sse() {
        let f = file(At::Json {
            keys: vec!["mcpServers".into()],
            typed: false,
            url_key: "httpUrl",
        });
        let text = r#"{"mcpServers": {
            "web": {"httpUrl": "https://mcp.example.org/mcp", "trust": false},
            "old": {"url": "https://sse.example.org/sse"},
            "fs": {"command": "npx", "args": ["-y", "fs"]}
        }}"#;
        let (routed, servers) = route(&f, Some(text), &gateway(None)).unwrap();
        let routed = routed.unwrap();
        let doc: Value = serde_json::from_str(&routed).unwrap();
        let web = &doc["mcpServers"]["web"];
        assert!(web.get("httpUrl").is_none(), "{doc:#}");
        assert_eq!(web["trust"], false);
        let args = strings(&web["args"]);
        assert_eq!(
            args[args.len() - 2..],
            ["--url".to_owned(), "https://mcp.example.org/mcp".to_owned()]
        );
        let old = servers.iter().find(|s| s.name == "old").unwrap();
        assert!(
            !old.routed && old.why_not.as_deref().unwrap().contains("SSE"),
            "{old:?}"
        );
        let back = unroute(&f, &routed).unwrap().unwrap();
        let (a, b): (Value, Value) = (
            serde_json::from_str(&back).unwrap(),
            serde_json::from_str(text).unwrap(),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn files_without_servers_change_nothing() {
        let f = file(At::Json {
            keys: vec!["projects".into(), "/p".into(), "mcpServers".into()],
            typed: true,
            url_key: "url",
        });
        assert!(route(&f, None, &gateway(None)).unwrap().0.is_none());
        assert!(route(&f, Some("{}"), &gateway(None)).unwrap().0.is_none());
        assert!(route(&f, Some("not json"), &gateway(None)).is_err());
        assert!(
            route(&file(At::Toml), Some("a = 1\n"), &gateway(None))
                .unwrap()
                .0
                .is_none()
        );
    }
}

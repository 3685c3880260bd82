//! `omk guard install|uninstall|status`: `omk hook <client>` in each
//! client's own configuration, merged into what is there.
//!
//! | client | project (default) | `--user` |
//! |---|---|---|
//! | Claude Code | `.claude/settings.json` | `$CLAUDE_CONFIG_DIR` or `~/.claude`, `settings.json` |
//! | Codex | `.codex/hooks.json`, and in `$CODEX_HOME/config.toml` (`~/.codex`) the hook's trust (`[hooks.state]`) and, unless set, the project's (`[projects]`) | `$CODEX_HOME/hooks.json`, and the hook's trust |
//! | Kimi CLI | none: it reads hooks from its own config only | `$KIMI_SHARE_DIR` or `~/.kimi`, `config.toml` (`[[hooks]]`) |
//! | Gemini CLI | `.gemini/settings.json` (`hooks.BeforeTool`), and the folder's trust in `trustedFolders.json` (see [`gemini`]) | `$GEMINI_CLI_HOME` or `~`, `.gemini/settings.json` |
//! | OpenCode | `.opencode/plugins/omk-guard.js`, a plugin omk writes (see [`opencode`]) | `$XDG_CONFIG_HOME/opencode/plugins/omk-guard.js` (`~/.config`) |
//!
//! The hook matches every tool. Its command is this omk (by name when the
//! `omk` on `PATH` is this one, else by its full path) followed by `|| exit
//! 2`: a hook that cannot run — omk removed, killed — blocks the tool call
//! rather than letting it through, since each client lets a tool run
//! after any exit but 0 and 2.
//!
//! Every file is written atomically, keeping its mode. What a file held
//! before is kept in omk's state directory (`guard/installs/`), so
//! `uninstall` puts back the very bytes that were there; if the file was
//! changed since, it removes omk's entries only and says so.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Client;

mod codex;
mod files;
mod gemini;
pub mod mcp;
mod one_run;
mod opencode;
mod status;

pub use codex::codex_hook_hash;
use codex::{codex_trust, codex_trust_remove};
use files::{json_add, json_remove, toml_hooks_add, toml_hooks_remove};
pub use one_run::{Confined, OneRun, one_run};
pub use status::{Status, mcp_status, status};

/// How long a client waits for `omk hook` before giving up on it.
pub const HOOK_TIMEOUT_SECS: u64 = 60;

/// Where hooks are installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The project at this root.
    Project(PathBuf),
    /// The user's own configuration of the client.
    User,
}

/// Why a hook cannot be installed or removed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct InstallError {
    pub message: String,
    pub help: Option<String>,
}

impl omk_core::diagnose::Diagnose for InstallError {
    fn help(&self) -> Option<String> {
        self.help.clone()
    }
}

pub(super) fn error(message: impl Into<String>, help: Option<&str>) -> InstallError {
    InstallError {
        message: message.into(),
        help: help.map(str::to_owned),
    }
}

pub(super) fn io(path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> InstallError {
    let path = path.to_owned();
    let what = what.to_owned();
    move |e| error(format!("cannot {what} `{}`: {e}", path.display()), None)
}

/// What an install or uninstall changed, file by file.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub file: PathBuf,
    /// `added`, `already`, `restored`, `removed-entries`, `absent`.
    pub what: &'static str,
    pub detail: String,
}

/// The command a client runs: `omk hook <client> || exit 2`.
pub fn hook_command(client: Client, omk: &Path) -> String {
    let program = omk_program(omk);
    let program = if program == "omk" {
        program
    } else {
        crate::text::sh_quote(&program)
    };
    format!("{program} hook {} || exit 2", client.name())
}

/// This omk as a client starts it: `omk` when the `omk` on `PATH` is this
/// one, else its full path.
fn omk_program(omk: &Path) -> String {
    if which_omk().is_some_and(|p| same_file(&p, omk)) {
        "omk".to_owned()
    } else {
        omk.to_string_lossy().into_owned()
    }
}

/// Whether `command` is an omk hook of `client`.
pub(super) fn is_ours(command: &str, client: Client) -> bool {
    command.ends_with(&format!(" hook {} || exit 2", client.name()))
}

fn which_omk() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("omk"))
            .find(|p| p.is_file())
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

pub(super) fn env_dir(var: &str, home_rel: &str) -> Result<PathBuf, InstallError> {
    if let Some(v) = std::env::var_os(var).map(PathBuf::from)
        && v.is_absolute()
    {
        return Ok(v);
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(home_rel))
        .ok_or_else(|| {
            error(
                format!(
                    "cannot find the client's configuration: neither `{var}` nor `HOME` is set"
                ),
                Some("set HOME"),
            )
        })
}

/// The file holding `client`'s hooks in `scope`.
pub fn hooks_file(client: Client, scope: &Scope) -> Result<PathBuf, InstallError> {
    Ok(match (client, scope) {
        (Client::Claude, Scope::Project(root)) => root.join(".claude/settings.json"),
        (Client::Claude, Scope::User) => {
            env_dir("CLAUDE_CONFIG_DIR", ".claude")?.join("settings.json")
        }
        (Client::Codex, Scope::Project(root)) => root.join(".codex/hooks.json"),
        (Client::Codex, Scope::User) => env_dir("CODEX_HOME", ".codex")?.join("hooks.json"),
        (Client::Kimi, Scope::User) => env_dir("KIMI_SHARE_DIR", ".kimi")?.join("config.toml"),
        (Client::Gemini, Scope::Project(root)) => root.join(".gemini/settings.json"),
        (Client::Gemini, Scope::User) => gemini::user_settings()?,
        (Client::OpenCode, scope) => opencode::plugin_file(scope)?,
        (Client::Kimi, Scope::Project(_)) => {
            return Err(error(
                "the Kimi CLI reads hooks from its own config only, not from a project",
                Some(
                    "install for every Kimi CLI session of this user with `omk guard install kimi --user`",
                ),
            ));
        }
    })
}

/// Codex's user config, where hook trust is kept.
pub(super) fn codex_config() -> Result<PathBuf, InstallError> {
    Ok(env_dir("CODEX_HOME", ".codex")?.join("config.toml"))
}

/// What `install` keeps to undo a file's change exactly.
#[derive(Debug, Serialize, Deserialize)]
struct Undo {
    file: PathBuf,
    /// The file's bytes before omk's first change (`None`: it did not
    /// exist).
    before: Option<String>,
    /// The sha256 of what omk wrote.
    after_sha256: String,
    /// A folder omk created for the file, removed with it when empty.
    created_dir: Option<PathBuf>,
}

fn undo_path(file: &Path) -> Result<PathBuf, InstallError> {
    let state = crate::dirs::state_dir().ok_or_else(|| {
        error(
            "omk has no state directory to keep what it changed",
            Some("set HOME or XDG_STATE_HOME"),
        )
    })?;
    let key = hex::encode(&Sha256::digest(file.to_string_lossy().as_bytes())[..12]);
    Ok(state.join("guard/installs").join(format!("{key}.json")))
}

/// Whether `file` (now `text`) is not what omk last wrote into it.
pub(super) fn changed_since_install(file: &Path, text: &str) -> bool {
    let Ok(undo_file) = undo_path(file) else {
        return false;
    };
    std::fs::read_to_string(&undo_file)
        .ok()
        .and_then(|t| serde_json::from_str::<Undo>(&t).ok())
        .is_some_and(|u| u.after_sha256 != sha(text))
}

pub(super) fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub(super) fn read(file: &Path) -> Result<Option<String>, InstallError> {
    match std::fs::read_to_string(file) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(file, "read")(e)),
    }
}

/// Writes `text` to `file`, keeping the first undo record of it.
pub(super) fn write(file: &Path, before: Option<&str>, text: &str) -> Result<(), InstallError> {
    let undo_file = undo_path(file)?;
    let mut created_dir = None;
    if let Some(dir) = file.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(io(dir, "create"))?;
        created_dir = Some(dir.to_owned());
    }
    let undo = match std::fs::read_to_string(&undo_file)
        .ok()
        .and_then(|t| serde_json::from_str::<Undo>(&t).ok())
    {
        Some(mut u) => {
            u.after_sha256 = sha(text);
            u
        }
        None => Undo {
            file: file.to_owned(),
            before: before.map(str::to_owned),
            after_sha256: sha(text),
            created_dir,
        },
    };
    if let Some(dir) = undo_file.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir, "create"))?;
    }
    let json = serde_json::to_vec_pretty(&undo).map_err(|e| error(e.to_string(), None))?;
    crate::atomic::write_private(&undo_file, &json).map_err(io(&undo_file, "write"))?;
    crate::atomic::write_keeping_mode(file, text.as_bytes()).map_err(io(file, "write"))
}

/// Installs `omk hook <client>` in `scope`; `omk` is this omk's path.
pub fn install(client: Client, scope: &Scope, omk: &Path) -> Result<Vec<Change>, InstallError> {
    let command = hook_command(client, omk);
    let file = hooks_file(client, scope)?;
    let before = read(&file)?;
    let mut changes = Vec::new();
    let (text, group) = match client {
        Client::Claude | Client::Codex | Client::Gemini => {
            json_add(&file, before.as_deref(), client, &command)?
        }
        Client::Kimi => toml_hooks_add(&file, before.as_deref(), &command)?,
        Client::OpenCode => (opencode::add(&file, before.as_deref(), &command)?, 0),
    };
    // Without its folder's trust the Gemini CLI skips a project's hook.
    let trusted = match client {
        Client::Gemini => gemini::trust(scope)?,
        _ => Vec::new(),
    };
    match &text {
        Some(t) => {
            write(&file, before.as_deref(), t)?;
            changes.push(Change {
                file: file.clone(),
                what: "added",
                detail: format!("{} hook `{command}`", client.event()),
            });
        }
        None => changes.push(Change {
            file: file.clone(),
            what: "already",
            detail: "an omk hook is installed here".into(),
        }),
    }
    if client == Client::Codex {
        changes.extend(codex_trust(&file, group, &command, scope)?);
    }
    changes.extend(trusted);
    changes.extend(route_servers(client, scope, omk)?);
    Ok(changes)
}

/// Routes `client`'s MCP servers in `scope` through `omk mcp run`.
fn route_servers(client: Client, scope: &Scope, omk: &Path) -> Result<Vec<Change>, InstallError> {
    let program = omk_program(omk);
    let gateway = mcp::Gateway {
        omk: &program,
        client,
        project: match scope {
            Scope::Project(root) => Some(root),
            Scope::User => None,
        },
    };
    let mut changes = Vec::new();
    for f in mcp::server_files(client, scope)? {
        let before = read(&f.path)?;
        let (text, servers) = mcp::route(&f, before.as_deref(), &gateway)?;
        if let Some(t) = &text {
            write(&f.path, before.as_deref(), t)?;
            let names: Vec<String> = servers
                .iter()
                .filter(|s| s.routed)
                .map(|s| format!("`{}`", s.name))
                .collect();
            changes.push(Change {
                file: f.path.clone(),
                what: "routed",
                detail: format!("MCP servers {} through `omk mcp run`", names.join(", ")),
            });
        }
        for s in &servers {
            if let Some(why) = &s.why_not {
                changes.push(Change {
                    file: f.path.clone(),
                    what: "not-routed",
                    detail: format!("MCP server `{}`: {why}", s.name),
                });
            }
        }
    }
    Ok(changes)
}

/// The files `install` changes for `client` in `scope`, each once.
fn touched(client: Client, scope: &Scope) -> Result<Vec<PathBuf>, InstallError> {
    let mut files = vec![hooks_file(client, scope)?];
    if client == Client::Codex {
        files.push(codex_config()?);
    }
    if let (Client::Gemini, Scope::Project(_)) = (client, scope) {
        files.push(gemini::trusted_folders()?);
    }
    for f in mcp::server_files(client, scope)? {
        if !files.contains(&f.path) {
            files.push(f.path);
        }
    }
    Ok(files)
}

/// Removes what `install` added for `client` in `scope`: each file back
/// to its bytes before, or, if it changed since, without omk's entries.
pub fn uninstall(client: Client, scope: &Scope) -> Result<Vec<Change>, InstallError> {
    let mut changes = Vec::new();
    let hooks_json = hooks_file(client, scope)?;
    for file in touched(client, scope)? {
        let undo_file = undo_path(&file)?;
        let undo: Option<Undo> = std::fs::read_to_string(&undo_file)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let before = undo.as_ref().and_then(|u| u.before.clone());
        let undo_before = undo.as_ref().map(|_| before.as_deref().unwrap_or(""));
        let now = read(&file)?;
        let change = match (undo, now) {
            (Some(u), Some(now)) if sha(&now) == u.after_sha256 => {
                match &u.before {
                    Some(before) => crate::atomic::write_keeping_mode(&file, before.as_bytes())
                        .map_err(io(&file, "write"))?,
                    None => {
                        std::fs::remove_file(&file).map_err(io(&file, "remove"))?;
                        if let Some(dir) = &u.created_dir {
                            let _ = std::fs::remove_dir(dir);
                        }
                    }
                }
                Change {
                    file: file.clone(),
                    what: "restored",
                    detail: "as it was before `omk guard install`".into(),
                }
            }
            (_, Some(now)) => {
                let cleaned = clean(client, scope, &file, &hooks_json, &now, undo_before)?;
                match cleaned {
                    Some(text) if text.is_empty() && client == Client::OpenCode => {
                        std::fs::remove_file(&file).map_err(io(&file, "remove"))?;
                        Change {
                            file: file.clone(),
                            what: "removed-entries",
                            detail: "changed since the install: omk's plugin removed".into(),
                        }
                    }
                    Some(text) => {
                        crate::atomic::write_keeping_mode(&file, text.as_bytes())
                            .map_err(io(&file, "write"))?;
                        Change {
                            file: file.clone(),
                            what: "removed-entries",
                            detail: "changed since the install: omk's entries removed, the rest left as it is".into(),
                        }
                    }
                    None => Change {
                        file: file.clone(),
                        what: "absent",
                        detail: "nothing of omk's here".into(),
                    },
                }
            }
            (_, None) => Change {
                file: file.clone(),
                what: "absent",
                detail: "no such file".into(),
            },
        };
        let _ = std::fs::remove_file(&undo_file);
        changes.push(change);
    }
    Ok(changes)
}

/// `now` (the text of `file`) without omk's entries — its hook, Codex's
/// trust of it, its routing of MCP servers — as far as they are in it;
/// `None` when none is.
fn clean(
    client: Client,
    scope: &Scope,
    file: &Path,
    hooks_json: &Path,
    now: &str,
    undo_before: Option<&str>,
) -> Result<Option<String>, InstallError> {
    let mut text = now.to_owned();
    let mut changed = false;
    let hooks = if file == hooks_json {
        match client {
            Client::Kimi => toml_hooks_remove(file, now)?,
            // omk's plugin is a file of its own: all of it goes.
            Client::OpenCode => opencode::command_of(now).map(|_| String::new()),
            _ => json_remove(file, now, client)?,
        }
    } else if client == Client::Codex && file == codex_config()? {
        codex_trust_remove(file, now, hooks_json, scope, undo_before)?
    } else if client == Client::Gemini && file == gemini::trusted_folders()? {
        gemini::trust_remove(file, now, scope, undo_before)?
    } else {
        None
    };
    if let Some(t) = hooks {
        text = t;
        changed = true;
    }
    for f in mcp::server_files(client, scope)?
        .iter()
        .filter(|f| f.path == file)
    {
        if let Some(t) = mcp::unroute(f, &text)? {
            text = t;
            changed = true;
        }
    }
    Ok(changed.then_some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codex_trust_hash_is_the_one_codex_computes() {
        // What `codex app-server`'s `hooks/list` reported as `currentHash`
        // for this command (Codex 0.169.0).
        assert_eq!(
            codex_hook_hash("/work/main/target/debug/omk hook codex || exit 2"),
            "sha256:76657e4d5a601d1e76f1a84440878d245539d81f406738ddc44eaac66d74fc6a"
        );
    }

    #[test]
    fn commands_are_quoted_for_sh_and_recognised_as_omks() {
        assert_eq!(crate::text::sh_quote("/usr/bin/omk"), "/usr/bin/omk");
        assert_eq!(crate::text::sh_quote("/a b/it's"), r"'/a b/it'\''s'");
        let c = hook_command(Client::Kimi, Path::new("/no such/omk"));
        assert_eq!(c, "'/no such/omk' hook kimi || exit 2");
        assert!(is_ours(&c, Client::Kimi));
        assert!(!is_ours(&c, Client::Claude));
    }
}

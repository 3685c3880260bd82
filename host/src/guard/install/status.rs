//! `omk guard status`: where each client's omk hook is installed, and what
//! would stop it from running.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::codex::codex_problems;
use super::files::find_command;
use super::{Client, Scope, changed_since_install, hooks_file, read};

/// One client's hook in one file, for `omk guard status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub client: &'static str,
    pub scope: &'static str,
    pub file: PathBuf,
    pub installed: bool,
    /// The installed command, when there is one.
    pub command: Option<String>,
    /// Problems that stop the hook from running, if any.
    pub problems: Vec<String>,
    /// What to look at although the hook runs: the file changed since omk
    /// installed the hook (by hand, by the client, or by an agent that
    /// rewrote its own guard).
    pub warnings: Vec<String>,
}

/// Where each client's omk hook is installed, for the project at `root`
/// and for the user.
pub fn status(root: &Path) -> Vec<Status> {
    let mut out = Vec::new();
    for client in Client::ALL {
        for scope in [Scope::Project(root.to_owned()), Scope::User] {
            let Ok(file) = hooks_file(client, &scope) else {
                continue;
            };
            let text = read(&file).ok().flatten();
            let command = text.as_deref().and_then(|t| find_command(client, t));
            let mut problems = Vec::new();
            if let Some(c) = &command {
                let program = c.split(" hook ").next().unwrap_or("").trim_matches('\'');
                if program != "omk" && !Path::new(program).is_file() {
                    problems.push(format!(
                        "`{program}` does not exist: every tool call will be refused; install again"
                    ));
                }
                match client {
                    Client::Codex => problems.extend(codex_problems(&file, c, &scope)),
                    Client::Gemini => problems.extend(super::gemini::problems(&scope)),
                    Client::OpenCode => problems.extend(super::opencode::problems(&scope)),
                    _ => {}
                }
            }
            let mut warnings = Vec::new();
            if let Some(t) = &text
                && changed_since_install(&file, t)
            {
                warnings.push(format!(
                    "`{}` changed since `omk guard install` wrote it: read what changed (an agent may have rewritten its own guard), then run `omk guard install {}` again",
                    file.display(),
                    client.name()
                ));
            }
            out.push(Status {
                client: client.name(),
                scope: match scope {
                    Scope::Project(_) => "project",
                    Scope::User => "user",
                },
                file,
                installed: command.is_some(),
                command,
                problems,
                warnings,
            });
        }
    }
    out
}

/// The MCP servers each client's configuration starts, for the project
/// at `root` and for the user, and whether each is routed through `omk
/// mcp run`.
pub fn mcp_status(root: &Path) -> Vec<super::mcp::Server> {
    let mut out = Vec::new();
    for client in Client::ALL {
        for scope in [Scope::Project(root.to_owned()), Scope::User] {
            let Ok(files) = super::mcp::server_files(client, &scope) else {
                continue;
            };
            for f in files {
                let text = read(&f.path).ok().flatten();
                let servers = match super::mcp::listed(&f, text.as_deref()) {
                    Ok(s) => s,
                    Err(e) => vec![super::mcp::Found {
                        name: String::new(),
                        routed: false,
                        why_not: Some(e.message),
                    }],
                };
                for s in servers {
                    out.push(super::mcp::Server {
                        client: client.name(),
                        scope: match scope {
                            Scope::Project(_) => "project",
                            Scope::User => "user",
                        },
                        file: f.path.clone(),
                        name: s.name,
                        routed: s.routed,
                        why_not: s.why_not,
                    });
                }
            }
        }
    }
    out
}

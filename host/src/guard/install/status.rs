//! `omk guard status`: where each client's omk hook is installed, and what
//! would stop it from running.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::codex::codex_problems;
use super::files::find_command;
use super::{Client, Scope, hooks_file, read};

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
}

/// Where each client's omk hook is installed, for the project at `root`
/// and for the user.
pub fn status(root: &Path) -> Vec<Status> {
    let mut out = Vec::new();
    for client in [Client::Claude, Client::Codex, Client::Kimi] {
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
                if client == Client::Codex {
                    problems.extend(codex_problems(&file, c, &scope));
                }
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
            });
        }
    }
    out
}

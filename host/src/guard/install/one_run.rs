//! `omk guard run`: omk's hook for one run of a client, its configuration
//! files untouched.
//!
//! | client | how the hook is given |
//! |---|---|
//! | Claude Code | `--settings '{"hooks": …}'`, merged by Claude with its other settings |
//! | Codex | `-c hooks.PreToolUse=[…]` and the hook's trust, `-c hooks.state={…}`, for this run's session flags |
//! | Kimi CLI | `--config-file` naming a private copy of its config with the hook added (it reads one config only), removed after the run |
//! | OpenCode | `OPENCODE_CONFIG_CONTENT` with omk's plugin (a private file) added to its `plugin` list |
//! | Gemini CLI | `GEMINI_CLI_HOME` naming a private home whose `.gemini/settings.json` is the user's with the hook added, every other entry of the user's `.gemini/` linked in (confined: the sandbox's private home, its copies); refused when a settings file turns hooks or omk's off |
//!
//! (The Gemini CLI skips a system settings file whose folders others may
//! write, as any temporary folder's are, without failing: so the hook is
//! not handed there.)

use std::path::{Path, PathBuf};

use serde_json::json;

use super::files::toml_hooks_add;
use super::{
    Client, HOOK_TIMEOUT_SECS, InstallError, Scope, codex_hook_hash, error, hook_command,
    hooks_file, read,
};

/// The key Codex gives a hook passed with `-c` (its session flags layer).
const CODEX_SESSION_KEY: &str = "/<session-flags>/config.toml:pre_tool_use:0:0";

/// What a run needs: arguments to put right after the program, variables
/// to set, and the private files they name, removed when this is dropped.
#[derive(Debug)]
pub struct OneRun {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    _files: Option<tempfile::TempDir>,
}

/// A private folder for a run's files: `dir` when given (the sandbox's
/// handed folder), else a temporary one (mode 0700), returned to keep.
fn private_folder(
    dir: Option<&Path>,
) -> Result<(PathBuf, Option<tempfile::TempDir>), InstallError> {
    match dir {
        Some(d) => Ok((d.to_owned(), None)),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("omk-guard-run")
                .tempdir()
                .map_err(|e| error(format!("cannot make a private folder: {e}"), None))?;
            Ok((temp.path().to_owned(), Some(temp)))
        }
    }
}

/// A TOML string literal of `s`.
fn toml_str(s: &str) -> String {
    toml_edit::Value::from(s).to_string().trim().to_owned()
}

/// Where a confined client runs: the sandbox's handed folder (files it
/// must read but not change) and its private home.
#[derive(Debug, Clone, Copy)]
pub struct Confined<'a> {
    pub handed: &'a Path,
    pub home: &'a Path,
}

/// The arguments that give `client` omk's hook (running `omk`) for one
/// run on the project at `root`. With `judge`, the hook hands each event
/// to the judge at that address (a confined client's; see
/// [`crate::guard::judge`]); `confined` says where such a client's files
/// go instead of a private temporary folder.
pub fn one_run(
    client: Client,
    omk: &Path,
    root: &Path,
    judge: Option<std::net::SocketAddr>,
    confined: Option<Confined<'_>>,
) -> Result<OneRun, InstallError> {
    let dir = confined.map(|c| c.handed);
    let command = match judge {
        None => hook_command(client, omk),
        Some(addr) => hook_command(client, omk).replacen(
            &format!(" hook {}", client.name()),
            &format!(" hook {} --judge {addr}", client.name()),
            1,
        ),
    };
    let run = |args: Vec<String>| OneRun {
        args,
        env: Vec::new(),
        _files: None,
    };
    Ok(match client {
        Client::Claude => {
            let settings = json!({"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [
                {"type": "command", "command": command, "timeout": HOOK_TIMEOUT_SECS}]}]}});
            run(vec!["--settings".into(), settings.to_string()])
        }
        Client::Codex => run(vec![
            "-c".into(),
            format!(
                "hooks.PreToolUse=[{{hooks=[{{type=\"command\",command={},timeout={HOOK_TIMEOUT_SECS}}}]}}]",
                toml_str(&command)
            ),
            "-c".into(),
            format!(
                "hooks.state={{{}={{trusted_hash={}}}}}",
                toml_str(CODEX_SESSION_KEY),
                toml_str(&codex_hook_hash(&command))
            ),
        ]),
        Client::Kimi => {
            let config = hooks_file(Client::Kimi, &Scope::User)?;
            let text = read(&config)?;
            let (with_hook, _) = toml_hooks_add(&config, text.as_deref(), &command)?;
            let with_hook = with_hook.or(text).unwrap_or_default();
            // The copy holds the user's keys: a private folder, mode 0700.
            let (folder, temp) = private_folder(dir)?;
            let file = folder.join("omk-kimi-config.toml");
            crate::atomic::write_private(&file, with_hook.as_bytes())
                .map_err(|e| error(format!("cannot write `{}`: {e}", file.display()), None))?;
            OneRun {
                args: vec!["--config-file".into(), file.display().to_string()],
                env: Vec::new(),
                _files: temp,
            }
        }
        Client::OpenCode => {
            let problems = super::opencode::problems(&Scope::User);
            if let Some(p) = problems.first() {
                return Err(error(p.clone(), Some("unset it, then run again")));
            }
            let (folder, temp) = private_folder(dir)?;
            let file = folder.join("omk-guard.js");
            crate::atomic::write_private(&file, super::opencode::plugin(&command).as_bytes())
                .map_err(|e| error(format!("cannot write `{}`: {e}", file.display()), None))?;
            let current = std::env::var("OPENCODE_CONFIG_CONTENT").ok();
            OneRun {
                args: Vec::new(),
                env: vec![(
                    "OPENCODE_CONFIG_CONTENT".into(),
                    super::opencode::config_content(current.as_deref(), &file)?,
                )],
                _files: temp,
            }
        }
        Client::Gemini => {
            let group = super::files::our_group(client, &command);
            let problems = super::gemini::hooks_off(Some(root));
            if let Some(p) = problems.first() {
                return Err(error(
                    p.clone(),
                    Some("turn the Gemini CLI's hooks back on there, then run again"),
                ));
            }
            match confined {
                Some(c) => {
                    super::gemini::one_run_home(group, c.home, None)?;
                    run(Vec::new())
                }
                None => {
                    let (folder, temp) = private_folder(None)?;
                    super::gemini::one_run_home(group, &folder, Some(&super::gemini::home()?))?;
                    OneRun {
                        args: Vec::new(),
                        env: vec![("GEMINI_CLI_HOME".into(), folder.display().to_string())],
                        _files: temp,
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codex_gets_the_hook_and_its_trust_as_session_flags() {
        let run = one_run(
            Client::Codex,
            Path::new("/opt/o m k"),
            Path::new("/p"),
            None,
            None,
        )
        .unwrap();
        assert_eq!(run.args[0], "-c");
        assert!(
            run.args[1].contains(r#"command="'/opt/o m k' hook codex || exit 2""#),
            "{}",
            run.args[1]
        );
        let hash = codex_hook_hash("'/opt/o m k' hook codex || exit 2");
        assert!(run.args[3].contains(&hash), "{}", run.args[3]);
        assert!(run.args[3].contains(CODEX_SESSION_KEY), "{}", run.args[3]);
        let judged = one_run(
            Client::Claude,
            Path::new("/bin/omk"),
            Path::new("/p"),
            Some(([127, 0, 0, 1], 9).into()),
            None,
        )
        .unwrap();
        assert!(
            judged.args[1].contains("/bin/omk hook claude --judge 127.0.0.1:9 || exit 2"),
            "{}",
            judged.args[1]
        );
    }
}

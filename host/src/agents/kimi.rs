//! The Kimi backends: Kimi Code CLI (npm `@moonshot-ai/kimi-code`, bin
//! `kimi`, Node ≥ 22.19) in two modes, and the legacy Kimi CLI.
//!
//! - `acp` (default, `--agent kimi`): `kimi acp` through the [`super::acp`]
//!   backend, gated live. Kimi sends every write to the client's
//!   `fs/write_text_file` — even where it skips asking permission (inside a
//!   git repository it approves edits itself) — so every write is judged.
//!   Kimi reports no cost; the turn's tokens come from its `/usage`
//!   command after the turn.
//! - `print` (`--agent kimi-print`): `kimi -p PROMPT --output-format
//!   stream-json`. Kimi approves its own actions in this mode, so only
//!   admission and outcome gates apply; the task's `task_started` record
//!   says `live_gating: false` and the proof lists the gap.
//! - `wire` (`--agent kimi-wire`): the legacy Kimi CLI (Python, 1.x) over
//!   its wire protocol, `kimi --wire`, gated live through its approval
//!   requests and `PreToolUse` hooks ([`super::wire`]).

use serde::{Deserialize, Serialize};

use super::{AgentError, Backend, acp, launch_command};

/// How omk drives Kimi.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Acp,
    Print,
    Wire,
}

impl Mode {
    /// The name `--agent` takes for the mode, also the backend's name.
    pub fn agent_name(self) -> &'static str {
        match self {
            Mode::Acp => "kimi",
            Mode::Print => "kimi-print",
            Mode::Wire => "kimi-wire",
        }
    }
}

/// The launch of `kimi acp`.
pub fn acp_launch(command: Option<&str>) -> acp::Launch {
    let mut l = launch_command("kimi", &super::clients::KIMI, command, &["acp"]);
    l.env = super::clients::kimi_quiet_env();
    l.usage_prompt = Some(("/usage", parse_usage));
    l
}

/// The backend for a mode.
pub fn backend(mode: Mode, command: Option<&str>) -> Result<Box<dyn Backend>, AgentError> {
    Ok(match mode {
        Mode::Acp => Box::new(acp::Acp::new(acp_launch(command))),
        Mode::Print => Box::new(super::kimi_print::KimiPrint::new(command)),
        Mode::Wire => Box::new(super::wire::KimiWire::new(command)),
    })
}

/// Reads Kimi's `/usage` answer: `Session total: N input, M output`.
pub fn parse_usage(text: &str) -> Option<u64> {
    let rest = &text[text.find("Session total:")? + "Session total:".len()..];
    let mut nums = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>().ok());
    let input = nums.next()??;
    let output = nums.next()??;
    Some(input.saturating_add(output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_usage_command() {
        assert_eq!(
            parse_usage("Context: 120 / 262144 tokens (0%)\nSession total: 300 input, 60 output"),
            Some(360)
        );
        assert_eq!(parse_usage("no usage here"), None);
    }
}

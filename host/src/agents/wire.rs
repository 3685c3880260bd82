//! The legacy Kimi CLI wire protocol (`kimi --wire`, the Python Kimi CLI).
//!
//! Not built yet: asking for it is a clear error before any task starts.
//! Kimi Code (`--agent kimi`, over ACP) is the supported Kimi.

use super::AgentError;

/// Refuses, with the way forward.
pub fn unavailable() -> AgentError {
    AgentError {
        agent: "kimi-wire".into(),
        message: "the legacy Kimi CLI wire protocol is not supported by this version of omk".into(),
        help: Some(
            "use Kimi Code over ACP: `--agent kimi` (npm @moonshot-ai/kimi-code), or `--agent acp:CMD` for another ACP agent"
                .into(),
        ),
    }
}

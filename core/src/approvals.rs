//! `[approvals]` in `.omk/gates.toml`: how long an action a gate asks
//! about waits for a person, and how far one answer reaches.
//!
//! ```toml
//! [approvals]
//! timeout = "30m"     # seconds as a number, or "90s", "30m", "2h" (default 1h)
//! remember = "task"   # "once" (the default), "task" or "goal"
//! ```
//!
//! A waiting action is bounded by the task's own time budget too: it is
//! refused as `omk.approval-timeout` at whichever comes first.

use serde::Deserialize;
use toml::Spanned;

/// How long an ask waits by default: one hour.
pub const DEFAULT_TIMEOUT_SECS: u64 = 3600;

/// How far one answer reaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Remember {
    /// An answer is for the one ask it was given to (the default).
    #[default]
    Once,
    /// An answer covers the same action again in the same task.
    Task,
    /// An answer covers the same action again anywhere in the goal.
    Goal,
}

impl Remember {
    /// Its name in `gates.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Remember::Once => "once",
            Remember::Task => "task",
            Remember::Goal => "goal",
        }
    }
}

/// `[approvals]`, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalSettings {
    /// Seconds an ask waits for an answer.
    pub timeout_secs: u64,
    pub remember: Remember,
}

impl Default for ApprovalSettings {
    fn default() -> ApprovalSettings {
        ApprovalSettings {
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            remember: Remember::Once,
        }
    }
}

/// `[approvals]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApprovals {
    timeout: Option<Spanned<toml::Value>>,
    remember: Option<Remember>,
}

impl RawApprovals {
    /// Checks it; an error's span and message, and its fix.
    pub(crate) fn check(
        self,
    ) -> Result<ApprovalSettings, (Option<std::ops::Range<usize>>, String, &'static str)> {
        let mut out = ApprovalSettings::default();
        if let Some(t) = self.timeout {
            let secs = match t.get_ref() {
                toml::Value::Integer(n) => u64::try_from(*n).ok(),
                toml::Value::String(s) => duration_secs(s),
                _ => None,
            };
            out.timeout_secs = secs.filter(|&s| s > 0).ok_or_else(|| {
                (
                    Some(t.span()),
                    format!("[approvals]: `timeout = {}` is not a duration", t.get_ref()),
                    "write seconds, like `timeout = 1800`, or `\"90s\"`, `\"30m\"`, `\"2h\"`",
                )
            })?;
        }
        if let Some(r) = self.remember {
            out.remember = r;
        }
        Ok(out)
    }
}

/// `"90s"`, `"30m"`, `"2h"` or `"600"` in seconds.
fn duration_secs(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let per = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    n.checked_mul(per)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_seconds_minutes_and_hours() {
        assert_eq!(duration_secs("90s"), Some(90));
        assert_eq!(duration_secs("30m"), Some(1800));
        assert_eq!(duration_secs("2h"), Some(7200));
        assert_eq!(duration_secs("600"), Some(600));
        assert_eq!(duration_secs("soon"), None);
        assert_eq!(duration_secs("5d"), None);
    }
}

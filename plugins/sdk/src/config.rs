//! Reading a gate's settings.
//!
//! omk passes each gate its table from `.omk/gates.toml` as a JSON object.
//! [`parse`] turns it into the gate's own settings type; a setting the gate
//! does not know, or a value of the wrong type, is a rejection with code
//! `<gate>.config-invalid` — a gate never guesses what a policy meant.

use serde::de::DeserializeOwned;

use crate::{Decision, Rejection};

/// Parses `config` (a JSON object, or empty for none) into `T`.
///
/// Give `T` `#[serde(default, deny_unknown_fields)]` so that a missing
/// setting takes its default and a misspelt one is refused.
pub fn parse<T: DeserializeOwned + Default>(gate: &str, config: &str) -> Result<T, Decision> {
    settings(gate, config).map_err(Decision::Reject)
}

/// Checks that `config` parses into `T`: the body of a gate's
/// [`Policy::validate_config`](crate::Policy::validate_config).
pub fn check<T: DeserializeOwned + Default>(gate: &str, config: &str) -> Result<(), Rejection> {
    settings::<T>(gate, config).map(drop)
}

/// [`parse`], giving the rejection itself: for a gate's
/// [`Policy::validate_config`](crate::Policy::validate_config) that checks
/// more than the shape.
pub fn settings<T: DeserializeOwned + Default>(gate: &str, config: &str) -> Result<T, Rejection> {
    if config.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(config).map_err(|e| Rejection {
        code: format!("{gate}.config-invalid"),
        reason: format!("the `{gate}` gate's settings are invalid: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Settings {
        limit: u32,
    }

    #[test]
    fn empty_and_object() {
        assert_eq!(parse::<Settings>("g", "").unwrap().limit, 0);
        assert_eq!(parse::<Settings>("g", "{}").unwrap().limit, 0);
        assert_eq!(parse::<Settings>("g", r#"{"limit":3}"#).unwrap().limit, 3);
    }

    #[test]
    fn unknown_setting_rejects() {
        let d = parse::<Settings>("g", r#"{"limmit":3}"#).unwrap_err();
        let r = d.rejection().unwrap();
        assert_eq!(r.code, "g.config-invalid");
        assert!(r.reason.contains("limmit"), "{}", r.reason);
        let r = check::<Settings>("g", r#"{"limmit":3}"#).unwrap_err();
        assert_eq!(r.code, "g.config-invalid");
        assert!(check::<Settings>("g", r#"{"limit":3}"#).is_ok());
    }
}

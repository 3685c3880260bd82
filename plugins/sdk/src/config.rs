//! Reading a gate's settings.
//!
//! omk passes each gate its table from `.omk/gates.toml` as a JSON object.
//! [`parse`] turns it into the gate's own settings type; a setting the gate
//! does not know, or a value of the wrong type, is a rejection with code
//! `<gate>.config-invalid` — a gate never guesses what a policy meant.

use serde::de::DeserializeOwned;

use crate::Decision;

/// Parses `config` (a JSON object, or empty for none) into `T`.
///
/// Give `T` `#[serde(default, deny_unknown_fields)]` so that a missing
/// setting takes its default and a misspelt one is refused.
pub fn parse<T: DeserializeOwned + Default>(gate: &str, config: &str) -> Result<T, Decision> {
    if config.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(config).map_err(|e| {
        Decision::reject(
            format!("{gate}.config-invalid"),
            format!("the `{gate}` gate's settings are invalid: {e}"),
        )
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
    }
}

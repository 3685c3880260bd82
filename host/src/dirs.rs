//! Where omk keeps its files, following the XDG base directory spec.
//!
//! - cache (compiled components): `$XDG_CACHE_HOME/omk`, else `~/.cache/omk`
//! - state (goals): `$XDG_STATE_HOME/omk`, else `~/.local/state/omk`
//! - config (the machine's keys, see [`crate::keys`]): `$XDG_CONFIG_HOME/omk`,
//!   else `~/.config/omk`
//!
//! A relative or empty `XDG_*` value is ignored, as the spec says.

use std::path::PathBuf;

/// omk's cache directory, if one can be named.
pub fn cache_dir() -> Option<PathBuf> {
    base("XDG_CACHE_HOME", ".cache").map(|d| d.join("omk"))
}

/// omk's state directory, if one can be named.
pub fn state_dir() -> Option<PathBuf> {
    base("XDG_STATE_HOME", ".local/state").map(|d| d.join("omk"))
}

/// omk's configuration directory, if one can be named.
pub fn config_dir() -> Option<PathBuf> {
    base("XDG_CONFIG_HOME", ".config").map(|d| d.join("omk"))
}

fn base(var: &str, home_relative: &str) -> Option<PathBuf> {
    if let Some(v) = std::env::var_os(var).map(PathBuf::from)
        && v.is_absolute()
    {
        return Some(v);
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .map(|h| h.join(home_relative))
}

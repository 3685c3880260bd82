//! `[sandbox]` of `.omk/gates.toml`: how a task's processes are confined,
//! beyond what omk grants every task (see `omk::sandbox` for the profile).
//!
//! ```toml
//! [sandbox]
//! mode = "enforce"                   # or "off": no confinement (the proof lists the gap)
//! read = ["/opt/sdk", "~/.m2"]       # more readable paths (absolute, `~/`, or in the project)
//! write = ["~/.cache/sccache"]       # more writable paths (a shared build cache)
//! hosts = ["crates.io", "*.npmjs.org:443"]  # hosts the egress proxy may let through
//! connect = ["127.0.0.1:8080"]       # loopback ports reached directly, not through the proxy
//! network = true                     # false: no egress proxy, only the agent's model endpoint
//! unix_sockets = false               # true: tasks may create AF_UNIX sockets (a local daemon's)
//! ```
//!
//! Every setting is optional; the defaults are deny-by-default: enforce,
//! nothing more to read or write, no host but the agent's model endpoint.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Whether task processes are confined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// Confined to the task's profile; where the kernel cannot enforce it,
    /// no agent starts (the default).
    #[default]
    Enforce,
    /// Not confined at all.
    Off,
}

/// A path a project grants its tasks, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Grant {
    /// An absolute path, or one resolved against the project.
    Path(PathBuf),
    /// `~/rest`: under the user's home.
    Home(PathBuf),
}

impl Grant {
    /// The path, with `~/` resolved against `home`.
    pub fn resolve(&self, home: Option<&std::path::Path>) -> Option<PathBuf> {
        match self {
            Grant::Path(p) => Some(p.clone()),
            Grant::Home(rest) => home.map(|h| h.join(rest)),
        }
    }
}

/// The `[sandbox]` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SandboxSettings {
    pub mode: SandboxMode,
    pub read: Vec<Grant>,
    pub write: Vec<Grant>,
    /// Host patterns (`example.org`, `*.example.org`, either with `:port`)
    /// the egress proxy lets through, after the gates agree.
    pub hosts: Vec<String>,
    /// Loopback `host:port`s reached directly (a local model server, a
    /// database for the tests), unjudged: Landlock allows them by port.
    pub connect: Vec<(String, u16)>,
    /// Whether the egress proxy runs (default true).
    pub network: bool,
    /// Whether tasks may create `AF_UNIX` sockets (default false: only
    /// connected pairs).
    pub unix_sockets: bool,
    /// Project-relative paths hidden from every process of a task: the
    /// std path gate's `deny_read`, filled in when the file is read.
    pub hide: Vec<String>,
}

impl SandboxSettings {
    /// The defaults: enforce, nothing more, the proxy on.
    pub fn new() -> SandboxSettings {
        SandboxSettings {
            network: true,
            ..SandboxSettings::default()
        }
    }
}

/// `[sandbox]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSandbox {
    pub mode: Option<SandboxMode>,
    #[serde(default)]
    pub read: Vec<toml::Spanned<String>>,
    #[serde(default)]
    pub write: Vec<toml::Spanned<String>>,
    #[serde(default)]
    pub hosts: Vec<toml::Spanned<String>>,
    #[serde(default)]
    pub connect: Vec<toml::Spanned<String>>,
    pub network: Option<bool>,
    #[serde(default)]
    pub unix_sockets: bool,
}

/// A loopback `host:port` (`127.0.0.1:8080`, `[::1]:9`, `localhost:5432`).
pub fn loopback_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.trim().rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback.then(|| (host.to_ascii_lowercase(), port))
}

/// Whether `pattern` is a host pattern the proxy can match: a DNS name or
/// an IP address, optionally `*.`-prefixed, optionally with `:port`.
pub fn valid_host_pattern(pattern: &str) -> bool {
    let (host, port) = match pattern.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (pattern, None),
    };
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return false;
    }
    let host = host.strip_prefix("*.").unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
        })
}

/// Whether `host:port` matches `pattern` (see [`valid_host_pattern`]);
/// a pattern without a port matches ports 80 and 443 only.
pub fn host_matches(pattern: &str, host: &str, port: u16) -> bool {
    let (pat_host, pat_port) = match pattern.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse::<u16>().ok()),
        _ => (pattern, None),
    };
    let port_ok = match pat_port {
        Some(p) => p == port,
        None => port == 443 || port == 80,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let pat_host = pat_host.to_ascii_lowercase();
    let host_ok = match pat_host.strip_prefix("*.") {
        Some(suffix) => host.ends_with(&format!(".{suffix}")),
        None => host == pat_host,
    };
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        assert!(valid_host_pattern("crates.io"));
        assert!(valid_host_pattern("*.npmjs.org:443"));
        assert!(valid_host_pattern("127.0.0.1:8080"));
        assert!(!valid_host_pattern("http://x"));
        assert!(!valid_host_pattern("x:0"));
        assert!(!valid_host_pattern(""));
        assert!(host_matches("crates.io", "crates.io", 443));
        assert!(host_matches("crates.io", "CRATES.IO.", 80));
        assert!(!host_matches("crates.io", "crates.io", 8443));
        assert!(!host_matches("crates.io", "evilcrates.io", 443));
        assert!(host_matches("*.npmjs.org:443", "registry.npmjs.org", 443));
        assert!(!host_matches("*.npmjs.org:443", "npmjs.org", 443));
        assert!(host_matches("127.0.0.1:8080", "127.0.0.1", 8080));
    }
}

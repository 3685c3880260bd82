//! The project's gate configuration, `.omk/gates.toml`.
//!
//! ```toml
//! # Limits for every gate (each optional; see `limits.rs` for defaults).
//! [limits]
//! timeout_ms = 500
//!
//! # The gates, in the order they judge. Without any `[[gate]]`, the std
//! # gates `budget`, `path` and `acceptance` run with their defaults.
//! [[gate]]
//! name = "budget"            # a std gate
//! config = { max_task_secs = 3600 }
//!
//! [[gate]]
//! name = "path"
//! mode = "audit"             # record rejections, do not enforce them
//! config = { roots = ["src", "tests"] }
//!
//! [[gate]]
//! path = "gates/no_friday.wasm"   # a component, relative to the project
//! sha256 = "…"                    # optional pin
//! limits = { fuel = 1000000 }
//!
//! [[gate]]
//! bundle = "team"            # a gate from a verified bundle
//! name = "no-friday"
//!
//! # Keys whose signatures this project trusts (inline, or a .pub file).
//! [trust]
//! keys = ["ed25519:3b6a…", "keys/security-team.pub"]
//! require_signature = true   # the default
//! minimum_signers = 1        # the default
//!
//! # Bundles, by name: installed in .omk/bundles/<name>/ unless `path` says
//! # otherwise; each may tighten or loosen the trust policy.
//! [[bundle]]
//! name = "team"
//! minimum_signers = 2
//! min_version = "2.0.0"      # refuse any older release of it (semver)
//!
//! # Sessions people run by hand under `omk guard`: where the agent may
//! # write (project-relative; the default is the whole project).
//! [guard]
//! write_roots = ["src", "tests"]
//!
//! # How long an action a gate asks about waits for a person, and how far
//! # one answer reaches (see `approvals.rs`).
//! [approvals]
//! timeout = "30m"
//! remember = "task"
//!
//! # What an MCP server reached through `omk mcp run --name filesystem`
//! # may reach beyond [sandbox] (see `mcp.rs`).
//! [mcp.filesystem]
//! read = ["~/notes"]
//! ```
//!
//! Parsing only reads and checks the file ([`GatesConfig::parse`]); the
//! gate set loads the components. Every error names the file and line.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::bundle::sign::{PublicKey, TrustPolicy};
use crate::limits::{LimitSettings, Limits};
use crate::sandbox::{Grant, RawSandbox, SandboxSettings, loopback_port, valid_host_pattern};
use crate::std_bundle;

/// Where installed bundles live, relative to the project root.
pub const BUNDLES_DIR: &str = ".omk/bundles";

/// Where a project keeps its gate configuration, relative to its root.
pub const CONFIG_PATH: &str = ".omk/gates.toml";

/// Whether a gate's rejections count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A rejection rejects (the default).
    #[default]
    Enforce,
    /// A rejection is recorded but does not reject.
    Audit,
}

/// Where a configured gate's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateSource {
    /// An embedded std gate, by name.
    Std(String),
    /// A component file (absolute, resolved against the project root).
    File(PathBuf),
    /// A gate of a bundle (see [`GatesConfig::bundles`]).
    Bundle { bundle: String, gate: String },
}

/// A bundle the configuration uses.
#[derive(Debug, Clone)]
pub struct BundleSpec {
    pub name: String,
    /// The bundle directory or `.tar.gz`.
    pub path: PathBuf,
    /// The trust policy it is verified against.
    pub trust: TrustPolicy,
}

/// One configured gate.
#[derive(Debug, Clone)]
pub struct GateSpec {
    /// The name the gate is listed under, if the file gave one.
    pub label: Option<String>,
    pub source: GateSource,
    /// Expected sha256 of the component, if pinned.
    pub sha256: Option<String>,
    pub mode: Mode,
    /// The gate's settings as a JSON object.
    pub config_json: String,
    pub limits: Limits,
    /// Whether the gate may import WASI 0.2 and get sealed WASI
    /// (`wasi = true`; default false).
    pub wasi: bool,
    /// A project directory the gate may read under `/data` (`wasi_dir`;
    /// needs `wasi = true`).
    pub wasi_dir: Option<PathBuf>,
    /// The line of its `[[gate]]` table in the file, for errors.
    pub line: Option<usize>,
    /// The line of each key written in its `config` (nested ones too), in
    /// the order written, for errors about a setting; the first entry,
    /// named `""`, is the line `config` itself starts on.
    pub config_lines: Vec<(String, usize)>,
}

impl GateSpec {
    /// The line an error about this gate's config points at: that of the
    /// first key `reason` names in backticks, else the config's, else the
    /// `[[gate]]`'s.
    pub fn config_line(&self, reason: &str) -> Option<usize> {
        self.config_lines
            .iter()
            .skip(1)
            .filter_map(|entry| Some((reason.find(&format!("`{}`", entry.0))?, entry)))
            .min_by_key(|(at, _)| *at)
            .map(|(_, entry)| entry)
            .or(self.config_lines.first())
            .map(|(_, line)| *line)
            .or(self.line)
    }
}

/// A parsed and checked gate configuration.
#[derive(Debug, Clone)]
pub struct GatesConfig {
    /// The file it came from; `None` for the built-in default.
    pub file: Option<PathBuf>,
    pub gates: Vec<GateSpec>,
    /// The project's trust policy.
    pub trust: TrustPolicy,
    /// The bundles gates come from.
    pub bundles: Vec<BundleSpec>,
    /// How task processes are confined (`[sandbox]`).
    pub sandbox: SandboxSettings,
    /// The policy of guarded sessions (`[guard]`).
    pub guard: GuardSettings,
    /// Each MCP server's own grants (`[mcp.NAME]`).
    pub mcp: std::collections::BTreeMap<String, crate::mcp::ServerGrants>,
    /// How asks wait for a person (`[approvals]`).
    pub approvals: crate::approvals::ApprovalSettings,
    /// Which arguments of tool calls name files: the std path gates'
    /// `tools` settings, filled in when the file is read.
    pub tool_paths: crate::mcp::ToolPathTable,
}

/// `[guard]`: the policy of agent sessions run by hand under `omk guard`,
/// which have no task and so no write set of their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardSettings {
    /// Project-relative directories (or files) a guarded session may
    /// write, normalised; empty is the whole project. The path gate
    /// judges a session's writes against them as a task's write set.
    pub write_roots: Vec<String>,
}

impl GuardSettings {
    /// The write roots, `["."]` (the whole project) when none are set.
    pub fn roots(&self) -> Vec<String> {
        if self.write_roots.is_empty() {
            vec![".".to_owned()]
        } else {
            self.write_roots.clone()
        }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
    pub help: Option<String>,
}

impl crate::diagnose::Diagnose for ConfigError {
    fn help(&self) -> Option<String> {
        self.help.clone()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    limits: LimitSettings,
    #[serde(default)]
    gate: Vec<Spanned<RawGate>>,
    #[serde(default)]
    trust: RawTrust,
    #[serde(default)]
    bundle: Vec<Spanned<RawBundle>>,
    #[serde(default)]
    sandbox: RawSandbox,
    #[serde(default)]
    guard: RawGuard,
    #[serde(default)]
    mcp: std::collections::BTreeMap<String, Spanned<RawSandbox>>,
    #[serde(default)]
    approvals: crate::approvals::RawApprovals,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGuard {
    #[serde(default)]
    write_roots: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    #[serde(default)]
    keys: Vec<Spanned<String>>,
    require_signature: Option<bool>,
    minimum_signers: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBundle {
    name: Spanned<String>,
    min_version: Option<Spanned<String>>,
    path: Option<String>,
    require_signature: Option<bool>,
    minimum_signers: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    name: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    bundle: Option<Spanned<String>>,
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    mode: Mode,
    config: Option<Spanned<toml::Table>>,
    limits: Option<Spanned<LimitSettings>>,
    #[serde(default)]
    wasi: bool,
    wasi_dir: Option<Spanned<String>>,
}

impl GatesConfig {
    /// The configuration for the project at `root`: its
    /// `.omk/gates.toml`, or the std gates when it has none.
    pub fn for_project(root: &Path) -> Result<GatesConfig, ConfigError> {
        let file = root.join(CONFIG_PATH);
        match std::fs::read_to_string(&file) {
            Ok(text) => GatesConfig::parse(&text, &file, root),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(GatesConfig::std(Limits::default()))
            }
            Err(e) => Err(ConfigError {
                file,
                line: None,
                message: format!("cannot read it: {e}"),
                help: None,
            }),
        }
    }

    /// The std gates with default settings, under `limits`.
    pub fn std(limits: Limits) -> GatesConfig {
        GatesConfig {
            file: None,
            trust: default_trust(),
            bundles: Vec::new(),
            gates: std_bundle::GATES
                .iter()
                .map(|g| GateSpec {
                    label: Some(g.name.to_owned()),
                    source: GateSource::Std(g.name.to_owned()),
                    sha256: None,
                    mode: Mode::Enforce,
                    config_json: "{}".into(),
                    limits,
                    wasi: false,
                    wasi_dir: None,
                    line: None,
                    config_lines: Vec::new(),
                })
                .collect(),
            sandbox: SandboxSettings::new(),
            guard: GuardSettings::default(),
            mcp: Default::default(),
            approvals: Default::default(),
            tool_paths: Default::default(),
        }
    }

    /// The sandbox MCP server `name` runs in: `[sandbox]` with its
    /// `[mcp.NAME]` grants added.
    pub fn mcp_sandbox(&self, name: &str) -> SandboxSettings {
        match self.mcp.get(name) {
            Some(g) => g.over(&self.sandbox),
            None => self.sandbox.clone(),
        }
    }

    /// Parses `text`, read from `file`; gate paths resolve against `root`.
    pub fn parse(text: &str, file: &Path, root: &Path) -> Result<GatesConfig, ConfigError> {
        let err = |span: Option<std::ops::Range<usize>>, message: String, help: Option<&str>| {
            ConfigError {
                file: file.to_owned(),
                line: span.map(|s| line_of(text, s.start)),
                message,
                help: help.map(str::to_owned),
            }
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            err(
                e.span(),
                e.message().trim().to_owned(),
                Some("see the `.omk/gates.toml` reference in README.md"),
            )
        })?;
        let defaults = Limits::default().overlay(&raw.limits).map_err(|m| {
            err(
                None,
                format!("[limits]: {m}"),
                Some("the limits and their ranges are listed in README.md, \"The host\""),
            )
        })?;
        let mut trust = default_trust();
        for k in &raw.trust.keys {
            let value = k.get_ref();
            let key = if value.trim().starts_with("ed25519:") {
                PublicKey::parse(value)
            } else {
                let path =
                    inside(root, value).map_err(|m| err(Some(k.span()), m, Some(INSIDE_HELP)))?;
                std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read key file `{}`: {e}", path.display()))
                    .and_then(|text| PublicKey::parse(text.lines().next().unwrap_or_default()))
            };
            trust.keys.push(key.map_err(|m| {
                err(
                    Some(k.span()),
                    m,
                    Some("a trusted key is `ed25519:<64 hex>` or the path of a `.pub` file made by `omk bundle keygen`"),
                )
            })?);
        }
        if let Some(r) = raw.trust.require_signature {
            trust.require_signature = r;
        }
        if let Some(m) = raw.trust.minimum_signers {
            trust.minimum_signers = m;
        }
        let mut bundles: Vec<BundleSpec> = Vec::new();
        for b in raw.bundle {
            let span = b.span();
            let b = b.into_inner();
            let path = match &b.path {
                Some(p) => Some(
                    inside(root, p).map_err(|m| err(Some(span.clone()), m, Some(INSIDE_HELP)))?,
                ),
                None => None,
            };
            let name = b.name.into_inner();
            if bundles.iter().any(|x| x.name == name) || name == "std" {
                return Err(err(
                    Some(span),
                    format!("bundle `{name}` is declared twice (or is `std`)"),
                    None,
                ));
            }
            let mut policy = trust.clone();
            if let Some(r) = b.require_signature {
                policy.require_signature = r;
            }
            if let Some(m) = b.minimum_signers {
                policy.minimum_signers = m;
            }
            if let Some(v) = &b.min_version {
                policy.min_version =
                    Some(semver::Version::parse(v.get_ref().trim()).map_err(|e| {
                        err(
                            Some(v.span()),
                            format!("`min_version` `{}` is not a version: {e}", v.get_ref()),
                            Some("write a semantic version, like `min_version = \"2.1.0\"`"),
                        )
                    })?);
            }
            bundles.push(BundleSpec {
                path: path.unwrap_or_else(|| root.join(BUNDLES_DIR).join(&name)),
                name,
                trust: policy,
            });
        }
        let sandbox = sandbox_settings(raw.sandbox, root, "[sandbox]", &err)?;
        let guard = guard_settings(&raw.guard, &err)?;
        let approvals = raw
            .approvals
            .check()
            .map_err(|(span, message, help)| err(span, message, Some(help)))?;
        let mut mcp = std::collections::BTreeMap::new();
        for (name, table) in raw.mcp {
            if !crate::mcp::valid_server_name(&name) {
                return Err(err(
                    Some(table.span()),
                    format!(
                        "[mcp.{name}]: `{}` is not a server name",
                        name.escape_debug()
                    ),
                    Some(
                        "name it with letters, digits, `-`, `_` and `.` (no `__`), as the client's configuration and `omk mcp run --name` do",
                    ),
                ));
            }
            let span = table.span();
            let raw = table.into_inner();
            if raw.mode.is_some() || raw.network.is_some() {
                return Err(err(
                    Some(span),
                    format!(
                        "[mcp.{name}]: `mode` and `network` are the project's, not one server's"
                    ),
                    Some(
                        "set them in `[sandbox]`; `[mcp.NAME]` grants `read`, `write`, `hosts`, `connect` and `unix_sockets`",
                    ),
                ));
            }
            let grants = sandbox_settings(raw, root, &format!("[mcp.{name}]"), &|s, m, h| {
                err(s.or(Some(span.clone())), m, h)
            })?;
            mcp.insert(name, crate::mcp::ServerGrants { grants });
        }
        if raw.gate.is_empty() {
            return Ok(GatesConfig {
                file: Some(file.to_owned()),
                trust,
                bundles,
                sandbox,
                guard,
                mcp,
                approvals,
                ..GatesConfig::std(defaults)
            });
        }
        let mut gates = Vec::new();
        // Each gate's source, config and mode, and where it began.
        let mut seen: Vec<(GateSource, String, Mode, usize)> = Vec::new();
        for spanned in raw.gate {
            let span = spanned.span();
            let g = spanned.into_inner();
            let label = g.name.as_ref().map(|n| n.get_ref().clone());
            let source = match (&g.name, &g.path) {
                _ if g.bundle.is_some() => {
                    let b = g
                        .bundle
                        .as_ref()
                        .map(|b| b.get_ref().clone())
                        .unwrap_or_default();
                    let Some(gate) = g.name.as_ref().map(|n| n.get_ref().clone()) else {
                        return Err(err(
                            Some(span),
                            format!("a gate from bundle `{b}` needs `name`: which of its gates"),
                            Some("`omk bundle inspect BUNDLE` lists its gates"),
                        ));
                    };
                    if b == "std" {
                        if std_bundle::get(&gate).is_none() {
                            return Err(err(
                                Some(span),
                                format!("there is no std gate called `{gate}`"),
                                None,
                            ));
                        }
                        GateSource::Std(gate)
                    } else {
                        if !bundles.iter().any(|x| x.name == b) {
                            bundles.push(BundleSpec {
                                path: root.join(BUNDLES_DIR).join(&b),
                                name: b.clone(),
                                trust: trust.clone(),
                            });
                        }
                        GateSource::Bundle { bundle: b, gate }
                    }
                }
                (_, Some(p)) => {
                    let rel = p.get_ref();
                    if rel.trim().is_empty() {
                        return Err(err(Some(p.span()), "`path` is empty".into(), None));
                    }
                    GateSource::File(
                        inside(root, rel).map_err(|m| err(Some(p.span()), m, Some(INSIDE_HELP)))?,
                    )
                }
                (Some(n), None) => {
                    if std_bundle::get(n.get_ref()).is_none() {
                        return Err(err(
                            Some(n.span()),
                            format!("there is no std gate called `{}`", n.get_ref()),
                            Some(&format!(
                                "the std gates are {}; for your own gate, set `path` to its `.wasm`",
                                std_bundle::names()
                            )),
                        ));
                    }
                    GateSource::Std(n.get_ref().clone())
                }
                (None, None) => {
                    return Err(err(
                        Some(span),
                        "a `[[gate]]` needs `name` (a std gate) or `path` (a component)".into(),
                        Some(&format!("the std gates are {}", std_bundle::names())),
                    ));
                }
            };
            if let Some(pin) = &g.sha256 {
                let v = pin.get_ref();
                if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err(
                        Some(pin.span()),
                        "`sha256` must be 64 hex digits".into(),
                        Some("`omk gate inspect FILE.wasm` prints it"),
                    ));
                }
            }
            let limits = match &g.limits {
                Some(l) => defaults
                    .overlay(l.get_ref())
                    .map_err(|m| err(Some(l.span()), format!("limits: {m}"), None))?,
                None => defaults,
            };
            let wasi_dir = match &g.wasi_dir {
                None => None,
                Some(d) if !g.wasi => {
                    return Err(err(
                        Some(d.span()),
                        "`wasi_dir` grants a directory to sealed WASI, which this gate does not have".into(),
                        Some("add `wasi = true` to the same `[[gate]]`, or remove `wasi_dir`"),
                    ));
                }
                Some(d) => Some(readable_dir(root, d.get_ref()).map_err(|m| {
                    err(
                        Some(d.span()),
                        m,
                        Some("`wasi_dir` names an existing directory inside the project"),
                    )
                })?),
            };
            let config_lines = g
                .config
                .as_ref()
                .map(|c| key_lines(text, c.span()))
                .unwrap_or_default();
            let config_json =
                serde_json::to_string(&g.config.map(Spanned::into_inner).unwrap_or_default())
                    .map_err(|e| {
                        err(
                            Some(span.clone()),
                            format!("`config` cannot be passed as JSON: {e}"),
                            None,
                        )
                    })?;
            if let Some((.., first)) = seen
                .iter()
                .find(|(s, c, m, _)| *s == source && *c == config_json && *m == g.mode)
            {
                return Err(err(
                    Some(span.clone()),
                    format!(
                        "this `[[gate]]` repeats the one on line {}: the same gate, mode and config would judge everything twice",
                        line_of(text, *first)
                    ),
                    Some(
                        "remove one of the two; to run one gate with two configurations, give them different `config`",
                    ),
                ));
            }
            seen.push((source.clone(), config_json.clone(), g.mode, span.start));
            gates.push(GateSpec {
                label,
                source,
                sha256: g.sha256.map(|s| s.into_inner().to_ascii_lowercase()),
                mode: g.mode,
                config_json,
                limits,
                wasi: g.wasi,
                wasi_dir,
                line: Some(line_of(text, span.start)),
                config_lines,
            });
        }
        // What the std path gate may never let an agent read, the kernel
        // hides from every process of a task too.
        let mut sandbox = sandbox;
        sandbox.hide = gates
            .iter()
            .filter(|g| matches!(&g.source, GateSource::Std(n) if n == "path"))
            .filter_map(|g| serde_json::from_str::<serde_json::Value>(&g.config_json).ok())
            .flat_map(|c| {
                c.get("deny_read")
                    .and_then(|d| d.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .filter(|d| omk_gate_sdk::paths::check(d).is_ok())
            .collect();
        sandbox.hide.sort();
        sandbox.hide.dedup();
        let tool_paths = crate::mcp::tool_paths(
            gates
                .iter()
                .filter(|g| matches!(&g.source, GateSource::Std(n) if n == "path"))
                .map(|g| g.config_json.as_str()),
        );
        Ok(GatesConfig {
            file: Some(file.to_owned()),
            gates,
            trust,
            bundles,
            sandbox,
            guard,
            mcp,
            approvals,
            tool_paths,
        })
    }
}

/// `[guard]` checked: each write root a plain path inside the project.
fn guard_settings(raw: &RawGuard, err: &ErrAt<'_>) -> Result<GuardSettings, ConfigError> {
    let write_roots = raw
        .write_roots
        .iter()
        .map(|r| {
            omk_gate_sdk::paths::check(r.get_ref()).map_err(|v| {
                err(
                    Some(r.span()),
                    format!(
                        "[guard]: write root `{}` is not a path inside the project: {}",
                        r.get_ref().escape_debug(),
                        v.describe()
                    ),
                    Some("write project-relative folders, like `write_roots = [\"src\", \"tests\"]`; leave it out for the whole project"),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(GuardSettings { write_roots })
}

/// Makes the error at a span of the file.
type ErrAt<'a> = dyn Fn(Option<std::ops::Range<usize>>, String, Option<&str>) -> ConfigError + 'a;

/// `[sandbox]` checked: paths absolute, `~/…`, or inside the project; host
/// patterns well formed.
fn sandbox_settings(
    raw: RawSandbox,
    root: &Path,
    section: &str,
    err: &ErrAt<'_>,
) -> Result<SandboxSettings, ConfigError> {
    const PATH_HELP: &str =
        "write an absolute path, `~/…` for one under your home, or a path inside the project";
    let grant = |s: &Spanned<String>| -> Result<Grant, ConfigError> {
        let v = s.get_ref().trim();
        if v.is_empty() || v.chars().any(char::is_control) {
            return Err(err(
                Some(s.span()),
                format!("{section}: `{}` is not a path", s.get_ref().escape_debug()),
                Some(PATH_HELP),
            ));
        }
        if let Some(rest) = v.strip_prefix("~/") {
            return Ok(Grant::Home(PathBuf::from(rest)));
        }
        let p = Path::new(v);
        if p.is_absolute() {
            if p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(err(
                    Some(s.span()),
                    format!("{section}: `{v}` climbs with `..`"),
                    Some(PATH_HELP),
                ));
            }
            return Ok(Grant::Path(p.to_owned()));
        }
        inside(root, v)
            .map(Grant::Path)
            .map_err(|m| err(Some(s.span()), format!("{section}: {m}"), Some(PATH_HELP)))
    };
    let mut out = SandboxSettings::new();
    out.mode = raw.mode.unwrap_or_default();
    out.network = raw.network.unwrap_or(true);
    out.unix_sockets = raw.unix_sockets;
    out.read = raw.read.iter().map(grant).collect::<Result<_, _>>()?;
    out.write = raw.write.iter().map(grant).collect::<Result<_, _>>()?;
    for h in &raw.hosts {
        let v = h.get_ref().trim();
        if !valid_host_pattern(v) {
            return Err(err(
                Some(h.span()),
                format!(
                    "{section}: `{}` is not a host pattern",
                    h.get_ref().escape_debug()
                ),
                Some(
                    "write a host name or address, optionally `*.`-prefixed and with `:port` (`crates.io`, `*.npmjs.org:443`)",
                ),
            ));
        }
        out.hosts.push(v.to_owned());
    }
    for c in &raw.connect {
        match loopback_port(c.get_ref()) {
            Some(hp) => out.connect.push(hp),
            None => {
                return Err(err(
                    Some(c.span()),
                    format!(
                        "{section}: `{}` is not a loopback `host:port`",
                        c.get_ref().escape_debug()
                    ),
                    Some(
                        "`connect` takes local ports only (`127.0.0.1:8080`, `localhost:5432`): the kernel filters TCP by port, not address, so a remote one would open its port to every host; name remote hosts in `hosts`, reached through omk's egress proxy",
                    ),
                ));
            }
        }
    }
    Ok(out)
}

const INSIDE_HELP: &str = "paths in .omk/gates.toml are relative to the project and stay inside it; copy the file into the project";

/// `rel` resolved against the project root, refused if it would leave it.
fn inside(root: &Path, rel: &str) -> Result<PathBuf, String> {
    match omk_gate_sdk::paths::check(rel) {
        Ok(norm) => Ok(root.join(norm)),
        Err(v) => Err(format!(
            "`{}` is not a path inside the project: {}",
            rel.escape_debug(),
            v.describe()
        )),
    }
}

/// A directory inside the project, symlinks resolved, that must stay
/// inside it.
fn readable_dir(root: &Path, rel: &str) -> Result<PathBuf, String> {
    let path = inside(root, rel)?;
    let real = path
        .canonicalize()
        .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    let real_root = root
        .canonicalize()
        .map_err(|e| format!("cannot open the project `{}`: {e}", root.display()))?;
    if !real.starts_with(&real_root) {
        return Err(format!(
            "`{rel}` resolves to `{}`, outside the project",
            real.display()
        ));
    }
    if !real.is_dir() {
        return Err(format!("`{rel}` is not a directory"));
    }
    Ok(real)
}

/// Trust nobody, require signatures, one signer: the default.
fn default_trust() -> TrustPolicy {
    TrustPolicy {
        keys: Vec::new(),
        require_signature: true,
        minimum_signers: 1,
        min_version: None,
    }
}

/// The lines of the keys written in `text[span]` (a `config` value): `""`
/// for where it starts, then each `key =` or `"key" =` found in it.
fn key_lines(text: &str, span: std::ops::Range<usize>) -> Vec<(String, usize)> {
    let mut out = vec![(String::new(), line_of(text, span.start))];
    // A `[gate.config]` table's span is its header: its keys are the lines
    // up to the next header.
    let span = if text[span.start..].starts_with('[') {
        let body = span.end.min(text.len());
        let next = text[body..]
            .match_indices('\n')
            .map(|(i, _)| body + i + 1)
            .find(|&i| text[i..].trim_start_matches([' ', '\t']).starts_with('['))
            .unwrap_or(text.len());
        body..next
    } else {
        span
    };
    let Some(part) = text.get(span.clone()) else {
        return out;
    };
    let b = part.as_bytes();
    // The end of the string opened by the quote at `i`.
    let string_end = |i: usize| -> usize {
        let q = b[i];
        let mut j = i + 1;
        while j < b.len() && b[j] != q {
            j += if b[j] == b'\\' && q == b'"' { 2 } else { 1 };
        }
        (j + 1).min(b.len())
    };
    let mut expect_key = true;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\r' => i += 1,
            b'\n' | b'{' | b',' | b'[' => {
                expect_key = true;
                i += 1;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            c => {
                let start = i;
                let (key, end) = if c == b'"' || c == b'\'' {
                    let end = string_end(i);
                    (part.get(i + 1..end - 1).unwrap_or_default().to_owned(), end)
                } else {
                    let mut k = i;
                    while k < b.len()
                        && (b[k].is_ascii_alphanumeric() || matches!(b[k], b'_' | b'-'))
                    {
                        k += 1;
                    }
                    (part[i..k].to_owned(), k.max(i + 1))
                };
                let mut e = end;
                while e < b.len() && matches!(b[e], b' ' | b'\t') {
                    e += 1;
                }
                if expect_key && !key.is_empty() && b.get(e) == Some(&b'=') {
                    out.push((key, line_of(text, span.start + start)));
                    i = e + 1;
                } else {
                    i = end;
                }
                expect_key = false;
            }
        }
    }
    out
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GatesConfig, ConfigError> {
        GatesConfig::parse(text, Path::new("/p/.omk/gates.toml"), Path::new("/p"))
    }

    #[test]
    fn empty_file_means_std_gates() {
        let c = parse("").unwrap();
        let names: Vec<_> = c.gates.iter().map(|g| g.label.clone().unwrap()).collect();
        assert_eq!(names, ["budget", "path", "command", "acceptance"]);
    }

    #[test]
    fn full_file() {
        let c = parse(
            r#"
[limits]
timeout_ms = 300

[[gate]]
name = "path"
mode = "audit"
config = { roots = ["src"] }

[[gate]]
path = "gates/x.wasm"
sha256 = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
limits = { fuel = 1000 }
"#,
        )
        .unwrap();
        assert_eq!(c.gates.len(), 2);
        assert_eq!(c.gates[0].mode, Mode::Audit);
        assert_eq!(c.gates[0].config_json, r#"{"roots":["src"]}"#);
        assert_eq!(c.gates[0].limits.timeout_ms, 300);
        assert_eq!(
            c.gates[1].source,
            GateSource::File("/p/gates/x.wasm".into())
        );
        assert_eq!(c.gates[1].limits.fuel, 1000);
        assert_eq!(c.gates[1].limits.timeout_ms, 300);
        assert!(c.gates[1].sha256.as_ref().unwrap().starts_with("abcdef"));
    }

    #[test]
    fn a_wasi_dir_needs_wasi_and_stays_inside_the_project() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("data")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
        let file = root.path().join(".omk/gates.toml");
        let parse_in = |t: &str| GatesConfig::parse(t, &file, root.path());
        let ok =
            parse_in("[[gate]]\npath = \"g.wasm\"\nwasi = true\nwasi_dir = \"data\"\n").unwrap();
        assert_eq!(
            ok.gates[0].wasi_dir.as_deref(),
            Some(root.path().join("data").canonicalize().unwrap().as_path())
        );
        let e = parse_in("[[gate]]\npath = \"g.wasm\"\nwasi_dir = \"data\"\n").unwrap_err();
        assert!(
            e.to_string().contains("does not have") && e.line == Some(3),
            "{e}"
        );
        for bad in ["escape", "missing", "../x", "/etc"] {
            let t = format!("[[gate]]\npath = \"g.wasm\"\nwasi = true\nwasi_dir = \"{bad}\"\n");
            assert!(parse_in(&t).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_configs_keys_are_found_on_their_lines() {
        let text = "[[gate]]\nname = \"budget\"\nconfig = { max_task_sec = 10, \"quoted key\" = \"a = b\", nested = { inner = [1, 2] } }\n\n[[gate]]\nname = \"path\"\nconfig = { roots = [\"src\",\n  \"tests\"],\n  deny_read = [\"secrets\"] } # a, b = c\n";
        let c = GatesConfig::parse(text, Path::new("gates.toml"), Path::new(".")).unwrap();
        let keys: Vec<(&str, usize)> = c.gates[0]
            .config_lines
            .iter()
            .map(|(k, l)| (k.as_str(), *l))
            .collect();
        assert_eq!(
            keys,
            [
                ("", 3),
                ("max_task_sec", 3),
                ("quoted key", 3),
                ("nested", 3),
                ("inner", 3)
            ]
        );
        let g = &c.gates[1];
        assert_eq!(g.config_line("unknown setting `deny_read`"), Some(9));
        assert_eq!(g.config_line("`roots` is empty"), Some(7));
        assert_eq!(g.config_line("something else"), Some(7));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse("[[gate]]\nname = \"budget\"\nmdoe = \"audit\"\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.to_string().starts_with("/p/.omk/gates.toml:3: "), "{e}");
        assert!(e.to_string().contains("mdoe"), "{e}");

        let e = parse("[[gate]]\nname = \"budgte\"\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.help.unwrap().contains("`budget`"));

        let e = parse("[[gate]]\nname = \"path\"\nmode = \"lenient\"\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");

        let e = parse("\n[[gate]]\nmode = \"audit\"\n").unwrap_err();
        assert!(e.message.contains("needs `name`"), "{e}");

        let e = parse("[[gate]]\nname = \"path\"\nlimits = { memory_mib = 0 }\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("memory_mib"));

        let e = parse("[[gate]]\npath = \"x.wasm\"\nsha256 = \"nothex\"\n").unwrap_err();
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn a_gate_listed_twice_is_refused_unless_its_config_differs() {
        let twice = "[[gate]]\nname = \"path\"\n\n[[gate]]\nname = \"budget\"\n\n[[gate]]\nname = \"path\"\n";
        let e = parse(twice).unwrap_err();
        assert_eq!(e.line, Some(7), "{e}");
        assert!(e.message.contains("repeats the one on line 1"), "{e}");
        let bundled =
            "[[gate]]\nname = \"budget\"\n\n[[gate]]\nbundle = \"std\"\nname = \"budget\"\n";
        assert!(
            parse(bundled).is_err(),
            "std by name and by bundle are one gate"
        );
        let two_configs = "[[gate]]\nname = \"path\"\nconfig = { deny = [\"a\"] }\n\n[[gate]]\nname = \"path\"\nconfig = { deny = [\"b\"] }\n";
        assert!(parse(two_configs).is_ok());
        let audit_and_enforce =
            "[[gate]]\nname = \"path\"\n\n[[gate]]\nname = \"path\"\nmode = \"audit\"\n";
        assert!(parse(audit_and_enforce).is_ok());
    }

    #[test]
    fn approvals_wait_an_hour_for_one_ask_unless_told_otherwise() {
        let c = parse("").unwrap();
        assert_eq!(c.approvals, crate::approvals::ApprovalSettings::default());
        let c = parse("[approvals]\ntimeout = \"30m\"\nremember = \"task\"\n").unwrap();
        assert_eq!(c.approvals.timeout_secs, 1800);
        assert_eq!(c.approvals.remember, crate::approvals::Remember::Task);
        let e = parse("[approvals]\n\ntimeout = \"soon\"\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.help.unwrap().contains("30m"));
        assert!(parse("[approvals]\nremember = \"forever\"\n").is_err());
    }

    #[test]
    fn guard_write_roots_default_to_the_project_and_stay_inside_it() {
        assert_eq!(parse("").unwrap().guard.roots(), ["."]);
        let c = parse("[guard]\nwrite_roots = [\"src/\", \"./tests\"]\n").unwrap();
        assert_eq!(c.guard.roots(), ["src", "tests"]);
        for (text, line) in [
            ("[guard]\nwrite_roots = [\"src\",\n \"../up\"]\n", 3),
            ("\n[guard]\nwrite_roots = [\"/etc\"]\n", 3),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, Some(line), "{e}");
            assert!(e.to_string().contains("[guard]: write root"), "{e}");
        }
        let e = parse("[guard]\nwrite_root = [\"src\"]\n").unwrap_err();
        assert!(e.to_string().contains("write_root"), "{e}");
    }

    #[test]
    fn sandbox_settings_are_checked_with_their_line() {
        let c = parse(
            "[sandbox]\nmode = \"off\"\nread = [\"/opt/sdk\", \"~/.m2\", \"data\"]\nhosts = [\"*.npmjs.org:443\"]\nconnect = [\"127.0.0.1:5432\"]\nnetwork = false\n",
        )
        .unwrap();
        let s = &c.sandbox;
        assert_eq!(s.mode, crate::sandbox::SandboxMode::Off);
        assert_eq!(
            s.read,
            [
                Grant::Path("/opt/sdk".into()),
                Grant::Home(".m2".into()),
                Grant::Path("/p/data".into())
            ]
        );
        assert_eq!(s.connect, [("127.0.0.1".to_owned(), 5432)]);
        assert!(!s.network);
        assert!(
            parse("").unwrap().sandbox.network,
            "the proxy is on by default"
        );
        for (text, line, what) in [
            (
                "[sandbox]\nhosts = [\"ok.org\",\n  \"http://x\"]\n",
                3,
                "host pattern",
            ),
            ("[sandbox]\n\nconnect = [\"10.0.0.1:80\"]\n", 3, "loopback"),
            ("[sandbox]\nwrite = [\"../up\"]\n", 2, "not a path inside"),
            ("[sandbox]\nmode = \"lax\"\n", 2, "lax"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, Some(line), "{e}");
            assert!(e.to_string().contains(what), "{e}");
        }
    }

    #[test]
    fn each_mcp_server_has_its_grants_on_top_of_the_sandbox() {
        let c = parse(
            "[sandbox]\nhosts = [\"crates.io\"]\n\n[mcp.filesystem]\nread = [\"~/notes\"]\nwrite = [\"/srv/shared\"]\nhosts = [\"api.github.com:443\"]\n\n[[gate]]\nname = \"path\"\nconfig.tools.\"filesystem/write_file\" = { write = [\"/path\"] }\n",
        )
        .unwrap();
        let s = c.mcp_sandbox("filesystem");
        assert_eq!(s.read, [Grant::Home("notes".into())]);
        assert_eq!(s.write, [Grant::Path("/srv/shared".into())]);
        assert_eq!(s.hosts, ["crates.io", "api.github.com:443"]);
        assert_eq!(c.mcp_sandbox("other"), c.sandbox);
        assert_eq!(c.tool_paths["filesystem/write_file"].write, ["/path"]);
        for (text, line, what) in [
            (
                "[mcp.fs]\nhosts = [\"http://x\"]\n",
                2,
                "[mcp.fs]: `http://x` is not a host pattern",
            ),
            ("\n[mcp.\"a b\"]\nread = []\n", 2, "is not a server name"),
            (
                "[mcp.fs]\nmode = \"off\"\n",
                1,
                "`mode` and `network` are the project's",
            ),
            ("[mcp.fs]\nnetowrk = false\n", 2, "unknown field `netowrk`"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
            assert_eq!(e.line, Some(line), "{e}");
        }
    }
}

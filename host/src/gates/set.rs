//! A project's gates, loaded and in order, and how they judge together.
//!
//! For each thing judged, every gate that declares the stage is called in
//! the configured order (all of them, even after a rejection, so the record
//! is complete). The verdict accepts only if no enforcing gate rejected; a
//! gate in `audit` mode has its rejection recorded but not enforced. A gate
//! fault is a rejection like any other (it fails closed).

use std::sync::Arc;
use std::time::Duration;

use omk_gate_sdk::{AgentAction, Decision, GoalContext, Stage, TaskOutcome, TaskProposal};
use serde::{Deserialize, Serialize};

use std::collections::HashMap;

use super::bundle::installed::Installed;
use super::bundle::sign::verify;
use super::bundle::{Bundle, BundleError, BundleRef};
use super::config::{ConfigError, GateSource, GatesConfig, Mode};
use super::engine::{EngineError, GateEngine};
use super::fault::FaultCause;
use super::gate::{LoadedGate, sha256_hex, timed};
use super::limits::Limits;
use super::load::{LoadError, same_minor};
use super::std_bundle;
use omk_core::diagnose::{Diagnose, Kind};

/// Why a project's gates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum GatesError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A gate said, at load, that its `config` is not one it accepts.
    #[error("{where_}: the `config` of gate `{gate}` is not valid: {reason}")]
    BadConfig {
        /// `gates.toml:LINE`.
        where_: String,
        gate: String,
        reason: String,
    },
}

impl Diagnose for GatesError {
    fn kind(&self) -> Kind {
        match self {
            GatesError::Config(e) => e.kind(),
            GatesError::Load(e) => e.kind(),
            GatesError::Engine(e) => e.kind(),
            GatesError::Bundle(e) => e.kind(),
            GatesError::BadConfig { .. } => Kind::Usage,
        }
    }

    fn help(&self) -> Option<String> {
        match self {
            GatesError::Config(e) => e.help(),
            GatesError::Load(e) => e.help(),
            GatesError::Engine(e) => e.help(),
            GatesError::Bundle(e) => e.help(),
            GatesError::BadConfig { gate, .. } => Some(format!(
                "fix `config` in that `[[gate]]` table; the reason says what gate `{gate}` accepts"
            )),
        }
    }
}

/// One gate of a set, with its settings.
#[derive(Debug)]
pub struct GateEntry {
    /// The name decisions are recorded under.
    pub name: String,
    pub gate: Arc<LoadedGate>,
    pub mode: Mode,
    pub config_json: String,
    pub limits: Limits,
    /// `std` for the embedded bundle, `bundle:<name>` for another bundle,
    /// else the component's path.
    pub source: String,
    /// The verified bundle the gate came from.
    pub bundle: Option<BundleRef>,
}

/// A project's loaded gates.
#[derive(Debug)]
pub struct GateSet {
    entries: Vec<GateEntry>,
    config_file: Option<std::path::PathBuf>,
    tool_paths: omk_core::mcp::ToolPathTable,
}

/// One gate's part in a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateDecision {
    pub gate: String,
    pub version: String,
    pub sha256: String,
    pub stage: Stage,
    #[serde(default)]
    pub mode: Mode,
    /// False when the gate is not asked (then it accepts): it does not judge
    /// this stage, or, a 0.1.0 gate, this kind of action (a read).
    #[serde(default = "called")]
    pub called: bool,
    #[serde(flatten)]
    pub decision: Decision,
    /// Set when the rejection is a gate fault.
    #[serde(default)]
    pub fault: Option<FaultCause>,
    /// The settings the gate was given (JSON).
    #[serde(default)]
    pub config: String,
    /// The bundle the gate came from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<BundleRef>,
    /// Time the call took, in microseconds.
    #[serde(default)]
    pub micros: u64,
    /// What a gate with sealed WASI printed (stdout, then stderr; capped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// A decision recorded before `called` was: the gate was called.
fn called() -> bool {
    true
}

impl GateDecision {
    /// Whether this decision rejects the verdict (an enforced rejection).
    pub fn blocks(&self) -> bool {
        self.mode == Mode::Enforce && !self.decision.is_accept()
    }
}

/// Every gate's decision on one thing, and the overall verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub accepted: bool,
    pub decisions: Vec<GateDecision>,
}

impl Verdict {
    /// The decision that stands in the verdict's way, if any: the first
    /// enforced rejection, else the first enforced ask (any rejection wins
    /// over an ask).
    pub fn blocking(&self) -> Option<&GateDecision> {
        self.decisions
            .iter()
            .find(|d| d.blocks() && !d.decision.is_ask())
            .or_else(|| self.decisions.iter().find(|d| d.blocks()))
    }

    /// Whether the verdict is not a rejection but waits for a person: some
    /// gate asks, and none rejects.
    pub fn asks(&self) -> bool {
        self.blocking().is_some_and(|d| d.decision.is_ask())
    }

    /// Who rejected the verdict and why — the gate, its code and reason —
    /// if it was rejected: the one way omk words a rejection. An ask is
    /// refused the same way where no person is asked, and its reason says
    /// so.
    pub fn rejection(&self) -> Option<Blocked> {
        self.blocking().map(|d| {
            let (code, reason) = match &d.decision {
                Decision::Ask(r) => (
                    r.code.clone(),
                    format!(
                        "{} (a person must approve this action, and no one is asked here: omk refuses it)",
                        r.reason
                    ),
                ),
                Decision::Reject(r) => (r.code.clone(), r.reason.clone()),
                // A blocking decision is a rejection; should that ever
                // not hold, it still blocks, and says so.
                Decision::Accept => (
                    "gate.fault.malformed".to_owned(),
                    "rejected without a reason".to_owned(),
                ),
            };
            Blocked {
                gate: d.gate.clone(),
                code,
                reason,
            }
        })
    }
}

/// The gate that rejected a verdict, its code and reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    pub gate: String,
    pub code: String,
    pub reason: String,
}

impl GateSet {
    /// Loads the gates of the project at `root` (its `.omk/gates.toml`, or
    /// the std bundle).
    pub fn for_project(root: &std::path::Path) -> Result<GateSet, GatesError> {
        GateSet::for_config(&GatesConfig::for_project(root)?)
    }

    /// Loads the gates of `config` with the shared engine, each gate's
    /// config checked.
    pub fn for_config(config: &GatesConfig) -> Result<GateSet, GatesError> {
        let set = GateSet::load(config, GateEngine::shared()?)?;
        set.check_configs(config)?;
        Ok(set)
    }

    /// Checks each gate's config once, at load: a gate that cannot work
    /// with its settings is an error naming `gates.toml`'s line, not a
    /// rejection of every proposal later. A 0.2 gate is asked
    /// (`validate-config`; a fault there is an error too). A 0.1.0 gate has
    /// no such call: it is asked about a probe task instead, and an answer
    /// of `<gate>.config-invalid` (the SDK's code) is the error. Neither
    /// call is recorded, and each runs in an instance of its own, so it
    /// cannot change a decision.
    fn check_configs(&self, config: &GatesConfig) -> Result<(), GatesError> {
        for (entry, spec) in self.entries.iter().zip(&config.gates) {
            if entry.gate.describe_fault().is_some() {
                continue; // every decision fails closed already
            }
            let (cfg, limits) = (&entry.config_json, &entry.limits);
            let refused = if same_minor(entry.gate.wit_version(), "0.1.0") {
                probe_config(&entry.gate, cfg, limits)
            } else {
                match entry.gate.validate_config(cfg, limits) {
                    Ok(Ok(())) => None,
                    Ok(Err(r)) => Some(r.reason),
                    Err(fault) => Some(format!("the gate faulted checking it: {fault}")),
                }
            };
            if let Some(reason) = refused {
                let file = config
                    .file
                    .as_deref()
                    .map_or_else(|| "gates".into(), |f| f.display().to_string());
                return Err(GatesError::BadConfig {
                    where_: match spec.config_line(&reason) {
                        Some(line) => format!("{file}:{line}"),
                        None => file,
                    },
                    gate: entry.name.clone(),
                    reason,
                });
            }
        }
        Ok(())
    }

    /// Loads every gate of `config`; components compile in parallel when
    /// they are not cached yet.
    pub fn load(config: &GatesConfig, engine: &GateEngine) -> Result<GateSet, GatesError> {
        // Every bundle is verified before anything in it is loaded, and may
        // not be older than one installed here before.
        let record = match config.file.as_ref().and_then(|f| f.parent()) {
            Some(omk_dir) => Installed::read(&omk_dir.join("bundles"))?,
            None => Installed::default(),
        };
        let mut bundles: HashMap<String, (Bundle, BundleRef)> = HashMap::new();
        for spec in &config.bundles {
            let used = config.gates.iter().any(
                |g| matches!(&g.source, GateSource::Bundle { bundle, .. } if bundle == &spec.name),
            );
            if !used {
                continue;
            }
            if !spec.path.exists() {
                return Err(BundleError::new(
                    &spec.name,
                    format!("is not installed: there is nothing at `{}`", spec.path.display()),
                    Some("install it with `omk bundle install FILE|oci://…`, or set `path` in its `[[bundle]]` table"),
                )
                .into());
            }
            let bundle = Bundle::open(&spec.path)?;
            if bundle.name() != spec.name {
                return Err(BundleError::new(
                    &bundle.origin,
                    format!(
                        "is named `{}`, but the project expects `{}`",
                        bundle.name(),
                        spec.name
                    ),
                    None,
                )
                .into());
            }
            let verified = verify(&bundle, &spec.trust)?;
            record.check_loaded(&spec.name, &verified.version, &verified.digest)?;
            bundles.insert(
                spec.name.clone(),
                (bundle, BundleRef::from_verified(&verified)),
            );
        }
        let bundles = &bundles;
        let loaded: Vec<Result<GateEntry, GatesError>> = std::thread::scope(|s| {
            let handles: Vec<_> = config
                .gates
                .iter()
                .map(|spec| s.spawn(move || load_one(spec, engine, bundles)))
                .collect();
            handles
                .into_iter()
                .map(|h| match h.join() {
                    Ok(r) => r,
                    Err(_) => Err(GatesError::Engine(EngineError::panicked())),
                })
                .collect()
        });
        let entries = loaded.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(GateSet {
            entries,
            config_file: config.file.clone(),
            tool_paths: config.tool_paths.clone(),
        })
    }

    /// The gates, in order.
    pub fn entries(&self) -> &[GateEntry] {
        &self.entries
    }

    /// The configuration file the set came from, if any.
    pub fn config_file(&self) -> Option<&std::path::Path> {
        self.config_file.as_deref()
    }

    /// Which arguments of tool calls name files (the path gate's `tools`
    /// setting): omk judges those files as the reads and writes they are.
    pub fn tool_paths(&self) -> &omk_core::mcp::ToolPathTable {
        &self.tool_paths
    }

    /// Judges a proposed task.
    pub fn judge_proposal(&self, ctx: &GoalContext, p: &TaskProposal) -> Verdict {
        self.judge(
            Stage::Proposal,
            |g| g.judges(Stage::Proposal),
            |e| e.gate.check_proposal(ctx, p, &e.config_json, &e.limits),
        )
    }

    /// Judges one step an agent asks to take.
    pub fn judge_action(&self, ctx: &GoalContext, task: &TaskProposal, a: &AgentAction) -> Verdict {
        self.judge(
            Stage::Action,
            |g| g.judges_action(a),
            |e| e.gate.check_action(ctx, task, a, &e.config_json, &e.limits),
        )
    }

    /// Judges a finished task.
    pub fn judge_outcome(
        &self,
        ctx: &GoalContext,
        task: &TaskProposal,
        o: &TaskOutcome,
    ) -> Verdict {
        self.judge(
            Stage::Outcome,
            |g| g.judges(Stage::Outcome),
            |e| {
                e.gate
                    .check_outcome(ctx, task, o, &e.config_json, &e.limits)
            },
        )
    }

    /// Asks every gate `asked` says judges this (the others accept, with
    /// `called: false`).
    fn judge(
        &self,
        stage: Stage,
        asked: impl Fn(&LoadedGate) -> bool,
        call: impl Fn(&GateEntry) -> super::Judged,
    ) -> Verdict {
        let decisions: Vec<GateDecision> = self
            .entries
            .iter()
            .map(|e| {
                let info = e.gate.info();
                let called = asked(&e.gate);
                let (judged, took) = if called {
                    timed(|| call(e))
                } else {
                    let accept = super::Judged {
                        result: Ok(Decision::Accept),
                        output: None,
                    };
                    (accept, Duration::ZERO)
                };
                let (decision, fault) = match judged.result {
                    Ok(d) => (d, None),
                    Err(f) => (f.to_decision(&e.name, stage), Some(f.cause)),
                };
                GateDecision {
                    gate: e.name.clone(),
                    version: info.version.clone(),
                    sha256: e.gate.sha256().to_owned(),
                    stage,
                    mode: e.mode,
                    called,
                    decision,
                    fault,
                    config: e.config_json.clone(),
                    bundle: e.bundle.clone(),
                    micros: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
                    output: judged.output,
                }
            })
            .collect();
        Verdict {
            accepted: !decisions.iter().any(GateDecision::blocks),
            decisions,
        }
    }
}

/// The stand-in for `validate-config` of a 0.1.0 gate: its answer about a
/// probe task, if that is `<gate>.config-invalid`.
fn probe_config(gate: &LoadedGate, cfg: &str, limits: &Limits) -> Option<String> {
    let probe: TaskProposal = serde_json::from_value(serde_json::json!({
        "id": "omk-config-probe", "budget_secs": 1
    }))
    .ok()?;
    let ctx = GoalContext::default();
    let judged = if gate.judges(Stage::Proposal) {
        gate.check_proposal(&ctx, &probe, cfg, limits)
    } else if gate.judges(Stage::Action) {
        let action = AgentAction::new(
            probe.id.clone(),
            omk_gate_sdk::ActionKind::Other,
            "omk-config-probe",
            "",
        );
        gate.check_action(&ctx, &probe, &action, cfg, limits)
    } else if gate.judges(Stage::Outcome) {
        let outcome = TaskOutcome {
            task_id: probe.id.clone(),
            ..TaskOutcome::default()
        };
        gate.check_outcome(&ctx, &probe, &outcome, cfg, limits)
    } else {
        return None;
    };
    match judged.result {
        Ok(Decision::Reject(r)) if r.code.ends_with(".config-invalid") => Some(r.reason),
        _ => None,
    }
}

fn load_one(
    spec: &super::config::GateSpec,
    engine: &GateEngine,
    bundles: &HashMap<String, (Bundle, BundleRef)>,
) -> Result<GateEntry, GatesError> {
    let mut bundle = None;
    let mut config_json = spec.config_json.clone();
    let (bytes, origin, source): (std::borrow::Cow<'_, [u8]>, String, String) = match &spec.source {
        GateSource::Std(name) => {
            let g = std_bundle::get(name).ok_or_else(|| LoadError::Read {
                path: name.into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such std gate"),
            })?;
            bundle = Some(std_bundle::reference());
            (g.bytes.into(), format!("std:{name}"), "std".into())
        }
        GateSource::Bundle { bundle: b, gate } => {
            let (found, reference) = bundles
                .get(b)
                .ok_or_else(|| BundleError::new(b, "is not loaded", None))?;
            let (mg, data) = found.gate(gate).ok_or_else(|| {
                let names: Vec<&str> = found
                    .manifest
                    .gates
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect();
                BundleError::new(
                    &found.origin,
                    format!("has no gate `{gate}`; it has {}", names.join(", ")),
                    Some("fix `name` in the `[[gate]]` table"),
                )
            })?;
            config_json = merge_config(&mg.config, &spec.config_json);
            bundle = Some(reference.clone());
            (
                data.into(),
                format!("{}:{gate}", found.origin),
                format!("bundle:{b}"),
            )
        }
        GateSource::File(path) => {
            let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
                path: path.clone(),
                source,
            })?;
            let shown = path.display().to_string();
            (bytes.into(), shown.clone(), shown)
        }
    };
    if let Some(expected) = &spec.sha256 {
        let found = sha256_hex(&bytes);
        if &found != expected {
            return Err(LoadError::DigestMismatch {
                origin,
                expected: expected.clone(),
                found,
            }
            .into());
        }
    }
    let grant = super::wasi::Grant {
        wasi: spec.wasi,
        dir: spec.wasi_dir.clone(),
    };
    let gate = LoadedGate::load_granting(engine, &bytes, &origin, &spec.limits, &grant)?;
    let name = spec
        .label
        .clone()
        .unwrap_or_else(|| gate.info().name.clone());
    Ok(GateEntry {
        name,
        gate: Arc::new(gate),
        mode: spec.mode,
        config_json,
        limits: spec.limits,
        source,
        bundle,
    })
}

/// A bundle gate's default config with the project's settings on top.
fn merge_config(defaults: &toml::Table, project_json: &str) -> String {
    let mut merged = serde_json::to_value(defaults).unwrap_or_else(|_| serde_json::json!({}));
    if let (Some(m), Ok(serde_json::Value::Object(p))) =
        (merged.as_object_mut(), serde_json::from_str(project_json))
    {
        for (k, v) in p {
            m.insert(k, v);
        }
    }
    merged.to_string()
}

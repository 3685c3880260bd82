//! Gates travel with the task, verified at both ends.
//!
//! The coordinator publishes the gate set it loaded ([`manifest`]): each
//! gate's source, settings, mode and limits; a project's component by
//! sha256 and each signed bundle packed, in the `omk-gates` store. A
//! worker rebuilds the same set ([`materialize`]) under its **own** trust
//! policy, deny by default:
//!
//! - a std gate only if the worker's embedded std bundle is the
//!   coordinator's (same digest);
//! - a bundle's gate only if the bundle verifies against the worker's
//!   trusted keys (`omk worker --trust KEY`);
//! - a project's unsigned component only with `--allow-unsigned`, and only
//!   if its bytes have the sha256 the manifest names;
//! - a gate reading a project directory (`wasi_dir`) never: the directory
//!   is on the coordinator's machine.
//!
//! A refusal names the gate and why; the worker reports it and runs
//! nothing.

use std::path::Path;

use omk_core::bundle::Bundle;
use omk_core::bundle::sign::TrustPolicy;
use omk_core::config::{BundleSpec, GateSource, GateSpec, GatesConfig};
use omk_core::limits::{LimitSettings, Limits};
use omk_core::std_bundle;
use omk_signing::PublicKey;

use super::hub::Hub;
use super::wire::{BundleItem, GateItem, GateManifest, ItemSource};

/// The manifest of `config` (a project's gates), with what it names put in
/// the gate store.
pub async fn manifest(hub: &Hub, config: &GatesConfig) -> Result<GateManifest, String> {
    let mut gates = Vec::new();
    let mut bundles: Vec<BundleItem> = Vec::new();
    for spec in &config.gates {
        if spec.wasi_dir.is_some() {
            return Err(format!(
                "gate `{}` reads a project directory (`wasi_dir`), which workers on other machines do not have",
                spec.label.as_deref().unwrap_or("?")
            ));
        }
        let source = match &spec.source {
            GateSource::Std(name) => ItemSource::Std { name: name.clone() },
            GateSource::File(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
                let sha256 = omk_core::sha256_hex(&bytes);
                hub.put(&hub.gates, &sha256, &bytes)
                    .await
                    .map_err(|e| e.to_string())?;
                ItemSource::File { sha256 }
            }
            GateSource::Bundle { bundle, gate } => {
                if !bundles.iter().any(|b| &b.name == bundle) {
                    let spec = config
                        .bundles
                        .iter()
                        .find(|b| &b.name == bundle)
                        .ok_or_else(|| format!("bundle `{bundle}` is not configured"))?;
                    let opened = Bundle::open(&spec.path).map_err(|e| e.to_string())?;
                    let packed = opened.to_tar_gz();
                    let digest = opened.digest();
                    let object = format!("bundle-{digest}.tar.gz");
                    hub.put(&hub.gates, &object, &packed)
                        .await
                        .map_err(|e| e.to_string())?;
                    bundles.push(BundleItem {
                        name: bundle.clone(),
                        object,
                        digest,
                    });
                }
                ItemSource::Bundle {
                    bundle: bundle.clone(),
                    gate: gate.clone(),
                }
            }
        };
        gates.push(GateItem {
            label: spec.label.clone(),
            source,
            mode: spec.mode,
            config_json: spec.config_json.clone(),
            limits: settings(&spec.limits),
            wasi: spec.wasi,
        });
    }
    Ok(GateManifest {
        std: std_bundle::reference(),
        gates,
        bundles,
    })
}

fn settings(l: &Limits) -> LimitSettings {
    LimitSettings {
        fuel: Some(l.fuel),
        timeout_ms: Some(l.timeout_ms),
        memory_mib: Some(l.memory_mib),
        max_result_bytes: Some(l.max_result_bytes),
    }
}

/// What a worker trusts.
#[derive(Debug, Clone, Default)]
pub struct WorkerTrust {
    /// Keys whose signatures make a bundle trusted.
    pub keys: Vec<PublicKey>,
    /// Whether a project's unsigned components may judge.
    pub allow_unsigned: bool,
}

/// The gate configuration of `m` on this worker, its files fetched into
/// `dir`, verified against `trust`; an error says which gate is refused
/// and why.
pub async fn materialize(
    hub: &Hub,
    m: &GateManifest,
    trust: &WorkerTrust,
    dir: &Path,
) -> Result<GatesConfig, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let mut config = GatesConfig::std(Limits::default());
    config.gates.clear();
    config.trust = TrustPolicy {
        keys: trust.keys.clone(),
        require_signature: true,
        minimum_signers: 1,
        min_version: None,
    };
    for b in &m.bundles {
        let bytes = hub
            .get(&hub.gates, &b.object)
            .await
            .map_err(|e| e.to_string())?;
        let path = dir.join(format!("{}.tar.gz", b.name));
        std::fs::write(&path, &bytes)
            .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
        let opened = Bundle::open(&path).map_err(|e| e.to_string())?;
        if opened.digest() != b.digest {
            return Err(format!(
                "bundle `{}` arrived with the digest {}, not the {} the coordinator named",
                b.name,
                opened.digest(),
                b.digest
            ));
        }
        // Verified here, before anything is loaded, and again by the load.
        omk_core::bundle::sign::verify(&opened, &config.trust).map_err(|e| {
            format!(
                "this worker does not trust bundle `{}`: {e} (start it with `--trust KEY` for the bundle's signer)",
                b.name
            )
        })?;
        config.bundles.push(BundleSpec {
            name: b.name.clone(),
            path,
            trust: config.trust.clone(),
        });
    }
    for g in &m.gates {
        let name = g.label.clone().unwrap_or_default();
        let source = match &g.source {
            ItemSource::Std { name: std_name } => {
                let ours = std_bundle::reference();
                if ours.digest != m.std.digest {
                    return Err(format!(
                        "std gate `{std_name}`: this worker's std bundle ({} {}) is not the coordinator's ({} {}); run the same omk on both",
                        ours.version, ours.digest, m.std.version, m.std.digest
                    ));
                }
                GateSource::Std(std_name.clone())
            }
            ItemSource::File { sha256 } => {
                if !trust.allow_unsigned {
                    return Err(format!(
                        "gate `{name}` is an unsigned component of the project; this worker runs only signed gates (start it with `--allow-unsigned` to run the project's own)"
                    ));
                }
                let bytes = hub
                    .get(&hub.gates, sha256)
                    .await
                    .map_err(|e| e.to_string())?;
                if omk_core::sha256_hex(&bytes) != *sha256 {
                    return Err(format!(
                        "gate `{name}` arrived with other bytes than the sha256 {sha256} named"
                    ));
                }
                let path = dir.join(format!("{sha256}.wasm"));
                std::fs::write(&path, &bytes)
                    .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
                GateSource::File(path)
            }
            ItemSource::Bundle { bundle, gate } => GateSource::Bundle {
                bundle: bundle.clone(),
                gate: gate.clone(),
            },
        };
        let limits = Limits::default()
            .overlay(&g.limits)
            .map_err(|e| format!("gate `{name}`: {e}"))?;
        config.gates.push(GateSpec {
            label: g.label.clone(),
            sha256: match &g.source {
                ItemSource::File { sha256 } => Some(sha256.clone()),
                _ => None,
            },
            source,
            mode: g.mode,
            config_json: g.config_json.clone(),
            limits,
            wasi: g.wasi,
            wasi_dir: None,
            line: None,
            config_lines: Vec::new(),
        });
    }
    Ok(config)
}

//! What a component file is: for `omk gate inspect`.
//!
//! Inspection reads any component, loadable as a gate or not, and reports
//! its imports and exports; when it loads as a gate it adds what `describe`
//! says, and when it does not, why.

use serde::Serialize;
use wasmtime::component::types::ComponentItem;

use super::engine::GateEngine;
use super::gate::LoadedGate;
use super::limits::Limits;
use super::load::{LoadError, compile};
use omk_gate_sdk::GateInfo;

/// A component's description.
#[derive(Debug, Serialize)]
pub struct Inspection {
    pub file: String,
    pub sha256: String,
    pub size: usize,
    /// `gate` when it exports `omk:gate/policy`.
    pub world: Option<String>,
    pub wit_version: Option<String>,
    pub imports: Vec<String>,
    /// Exports; for an exported instance, its functions as `name#function`.
    pub exports: Vec<String>,
    /// What `describe` returned, when the component loads as a gate.
    pub gate: Option<GateInfo>,
    /// Why the component does not load as a gate.
    pub load_error: Option<String>,
}

/// Inspects `bytes`, read from `file`. Fails only if the bytes are not a
/// component at all.
pub fn inspect(engine: &GateEngine, bytes: &[u8], file: &str) -> Result<Inspection, LoadError> {
    let (component, sha256) = compile(engine, bytes, file)?;
    let ty = component.component_type();
    let wasm = engine.engine();
    let imports = ty.imports(wasm).map(|(n, _)| n.to_owned()).collect();
    let mut exports = Vec::new();
    let mut wit_version = None;
    for (name, item) in ty.exports(wasm) {
        if let Some(v) = name.strip_prefix("omk:gate/policy@") {
            wit_version = Some(v.to_owned());
        }
        match item.ty {
            ComponentItem::ComponentInstance(inst) => {
                exports.extend(
                    inst.exports(wasm)
                        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
                        .map(|(f, _)| format!("{name}#{f}")),
                );
            }
            _ => exports.push(name.to_owned()),
        }
    }
    let (gate, load_error) = match LoadedGate::load(engine, bytes, file, &Limits::default()) {
        Ok(g) => match g.describe_fault() {
            None => (Some(g.info().clone()), None),
            Some(f) => (None, Some(format!("`describe` failed: {f}"))),
        },
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(Inspection {
        file: file.to_owned(),
        sha256,
        size: bytes.len(),
        world: wit_version.as_ref().map(|_| "gate".to_owned()),
        wit_version,
        imports,
        exports,
        gate,
        load_error,
    })
}

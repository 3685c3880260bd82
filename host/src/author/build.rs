//! `omk gate build`: runs the project's language toolchain and leaves
//! `<name>.wasm`, a component, beside the sources.
//!
//! - Rust: `cargo build --release --target wasm32-unknown-unknown`, then
//!   the core module is encoded as a component here, with `wit-component`
//!   (no `wasm-tools` needed). The result imports nothing.
//! - Python: `componentize-py -d wit -w gate componentize app`.
//! - JavaScript: `componentize-js gate.js --wit wit -n gate` with every
//!   WASI feature it can drop disabled (`-d stdio random clocks http
//!   fetch-event`), so the result imports nothing.
//!
//! A missing tool is an error that says how to install it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{GateProject, Lang};
use crate::atomic;

/// What a build produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildReport {
    pub component: PathBuf,
    pub size: usize,
    /// The commands run, as shown to people.
    pub commands: Vec<String>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{tool} is not installed (or not on PATH)")]
    Missing { tool: String, install: String },
    #[error("`{command}` failed{}\n{output}", code.map(|c| format!(" with exit code {c}")).unwrap_or_default())]
    Failed {
        command: String,
        code: Option<i32>,
        output: String,
    },
    #[error("`{path}` is not a module omk can encode as a component: {detail}")]
    Encode { path: PathBuf, detail: String },
    #[error("cannot {what} `{path}`: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl BuildError {
    /// The fix, for people.
    pub fn help(&self) -> Option<String> {
        match self {
            BuildError::Missing { install, .. } => Some(format!("install it: {install}")),
            BuildError::Failed { .. } => {
                Some("fix the error above in the gate's source, then run `omk gate build` again".into())
            }
            BuildError::Encode { .. } => Some(
                "the gate must be built from `wit/gate.wit` with world `gate` (wit-bindgen's `generate!`)"
                    .into(),
            ),
            BuildError::Io { .. } => None,
        }
    }
}

/// The Rust target gates are built for.
const RUST_TARGET: &str = "wasm32-unknown-unknown";
/// The componentize-js features a gate never has.
const JS_DISABLED: [&str; 5] = ["stdio", "random", "clocks", "http", "fetch-event"];

/// Builds the gate project in `dir`; `progress` hears each command before
/// it runs.
pub fn build(
    dir: &Path,
    project: &GateProject,
    progress: &mut dyn FnMut(&str),
) -> Result<BuildReport, BuildError> {
    let out = project.component(dir);
    let mut commands = Vec::new();
    match project.lang {
        Lang::Rust => {
            let cargo =
                std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
            let mut cmd = Command::new(&cargo);
            cmd.args(["build", "--release", "--target", RUST_TARGET])
                .current_dir(dir);
            let shown = format!("cargo build --release --target {RUST_TARGET}");
            progress(&shown);
            run(
                cmd,
                &shown,
                "cargo",
                "https://rustup.rs, then `rustup target add wasm32-unknown-unknown`",
            )
            .map_err(|e| match e {
                BuildError::Failed { output, .. }
                    if output.contains("target may not be installed") =>
                {
                    BuildError::Missing {
                        tool: format!("the Rust target `{RUST_TARGET}`"),
                        install: format!("rustup target add {RUST_TARGET}"),
                    }
                }
                e => e,
            })?;
            commands.push(shown);
            let target_dir = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| dir.join("target"), PathBuf::from);
            let module = target_dir
                .join(RUST_TARGET)
                .join("release")
                .join(format!("{}.wasm", project.name.replace('-', "_")));
            let bytes = std::fs::read(&module).map_err(|source| BuildError::Io {
                what: "read",
                path: module.clone(),
                source,
            })?;
            progress("encode the module as a component (wit-component)");
            let component = wit_component::ComponentEncoder::default()
                .module(&bytes)
                .and_then(|e| e.validate(true).encode())
                .map_err(|e| BuildError::Encode {
                    path: module.clone(),
                    detail: format!("{e:#}"),
                })?;
            atomic::write(&out, &component).map_err(|source| BuildError::Io {
                what: "write",
                path: out.clone(),
                source,
            })?;
            commands.push("wit-component: encode".into());
        }
        Lang::Python => {
            let tool =
                find_tool(dir, "componentize-py", "OMK_COMPONENTIZE_PY").ok_or_else(|| {
                    BuildError::Missing {
                        tool: "componentize-py".into(),
                        install: "pip install componentize-py==0.25.1".into(),
                    }
                })?;
            let file = format!("{}.wasm", project.name);
            let mut cmd = Command::new(tool);
            cmd.args([
                "-d",
                "wit",
                "-w",
                "gate",
                "componentize",
                "app",
                "-o",
                &file,
            ])
            .current_dir(dir);
            let shown = format!("componentize-py -d wit -w gate componentize app -o {file}");
            progress(&shown);
            run(
                cmd,
                &shown,
                "componentize-py",
                "pip install componentize-py==0.25.1",
            )?;
            commands.push(shown);
        }
        Lang::Js => {
            let tool = find_tool(dir, "componentize-js", "OMK_COMPONENTIZE_JS").ok_or_else(|| {
                BuildError::Missing {
                    tool: "componentize-js".into(),
                    install: "npm install --save-dev @bytecodealliance/componentize-js@0.23 (in the gate's directory)"
                        .into(),
                }
            })?;
            let file = format!("{}.wasm", project.name);
            let mut cmd = Command::new(tool);
            cmd.args(["gate.js", "--wit", "wit", "-n", "gate", "-d"])
                .args(JS_DISABLED)
                .args(["-o", &file])
                .current_dir(dir);
            let shown = format!(
                "componentize-js gate.js --wit wit -n gate -d {} -o {file}",
                JS_DISABLED.join(" ")
            );
            progress(&shown);
            run(
                cmd,
                &shown,
                "componentize-js",
                "npm install --save-dev @bytecodealliance/componentize-js@0.23",
            )?;
            commands.push(shown);
        }
    }
    let size = std::fs::metadata(&out)
        .map_err(|source| BuildError::Io {
            what: "read",
            path: out.clone(),
            source,
        })?
        .len() as usize;
    Ok(BuildReport {
        component: out,
        size,
        commands,
    })
}

/// Runs `cmd`, keeping the tail of its output for the error.
fn run(mut cmd: Command, shown: &str, tool: &str, install: &str) -> Result<(), BuildError> {
    let output = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                BuildError::Missing {
                    tool: tool.into(),
                    install: install.into(),
                }
            } else {
                BuildError::Failed {
                    command: shown.into(),
                    code: None,
                    output: e.to_string(),
                }
            }
        })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    Err(BuildError::Failed {
        command: shown.into(),
        code: output.status.code(),
        output: tail,
    })
}

/// A tool: `$ENV_VAR`, else `node_modules/.bin/NAME` in the project, else
/// NAME on `PATH`.
fn find_tool(dir: &Path, name: &str, env_var: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Some(PathBuf::from(p));
    }
    let local = dir.join("node_modules/.bin").join(name);
    if local.is_file() {
        return Some(local);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

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
//! - C: omk writes the C bindings of `wit/` to `gen/` (wit-bindgen's C
//!   generator, in-process), compiles `gate.c` with them using clang for
//!   `wasm32-wasi` against wasi-libc (`-mexec-model=reactor`), and encodes
//!   the module as a component. The result imports nothing, as long as the
//!   gate uses no libc function that needs WASI (`printf`, files).
//!
//! A missing tool is an error that says how to install it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{GateProject, Lang};
use crate::atomic;
use omk_core::diagnose::{Diagnose, Kind};

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

impl Diagnose for BuildError {
    fn kind(&self) -> Kind {
        match self {
            BuildError::Io { source, .. } => omk_core::diagnose::io_kind(source),
            _ => Kind::Usage,
        }
    }

    fn help(&self) -> Option<String> {
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
            if let Some(added) = ensure_rust_target(dir, progress)? {
                commands.push(added);
            }
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
                        install: format!(
                            "`rustup target add {RUST_TARGET}` with rustup; a Rust without rustup needs its own {RUST_TARGET} standard library (a distribution's rust-std package for wasm32)"
                        ),
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
            progress("encode the module as a component (wit-component)");
            encode(&module, &out)?;
            commands.push("wit-component: encode".into());
        }
        Lang::C => {
            let gen_dir = dir.join("gen");
            progress("generate the C bindings of wit/ into gen/ (wit-bindgen)");
            c_bindings(&dir.join("wit"), &gen_dir)?;
            commands.push("wit-bindgen c: gen/gate.h, gen/gate.c".into());
            let clang =
                find_tool(dir, &["clang-19", "clang"], Some("OMK_CLANG")).ok_or_else(|| {
                    BuildError::Missing {
                        tool: "clang".into(),
                        install: C_INSTALL.into(),
                    }
                })?;
            let module = gen_dir.join("gate.core.wasm");
            let mut cmd = Command::new(&clang);
            cmd.args([
                "--target=wasm32-wasi",
                "-mexec-model=reactor",
                "-Os",
                "-Wall",
                "-Igen",
                "-o",
            ])
            .arg(&module)
            .args(["gate.c", "gen/gate.c", "gen/gate_component_type.o"])
            .current_dir(dir);
            let shown = format!(
                "{} --target=wasm32-wasi -mexec-model=reactor -Os -Wall -Igen -o gen/gate.core.wasm gate.c gen/gate.c gen/gate_component_type.o",
                clang.display()
            );
            progress(&shown);
            run(cmd, &shown, "clang", C_INSTALL).map_err(|e| match e {
                BuildError::Failed { output, .. }
                    if output.contains("wasi-sysroot")
                        || output.contains("crt1-reactor.o")
                        || output.contains("stdlib.h' file not found")
                        || output.contains("unable to find library") =>
                {
                    BuildError::Missing {
                        tool: "wasi-libc (or clang's wasm32 runtime)".into(),
                        install: C_INSTALL.into(),
                    }
                }
                e => e,
            })?;
            commands.push(shown);
            progress("encode the module as a component (wit-component)");
            encode(&module, &out)?;
            commands.push("wit-component: encode".into());
        }
        Lang::Python => {
            let tool = find_tool(dir, &["componentize-py"], Some("OMK_COMPONENTIZE_PY"))
                .ok_or_else(|| BuildError::Missing {
                    tool: "componentize-py".into(),
                    install: "pip install componentize-py==0.25.1".into(),
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
            let tool = find_tool(dir, &["componentize-js"], Some("OMK_COMPONENTIZE_JS")).ok_or_else(|| {
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

/// What installs the C toolchain on Debian.
const C_INSTALL: &str = "apt-get install clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc";

/// Encodes the core module at `module` as a component at `out`.
fn encode(module: &Path, out: &Path) -> Result<(), BuildError> {
    let bytes = std::fs::read(module).map_err(|source| BuildError::Io {
        what: "read",
        path: module.to_owned(),
        source,
    })?;
    let component = wit_component::ComponentEncoder::default()
        .module(&bytes)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| BuildError::Encode {
            path: module.to_owned(),
            detail: format!("{e:#}"),
        })?;
    atomic::write(out, &component).map_err(|source| BuildError::Io {
        what: "write",
        path: out.to_owned(),
        source,
    })
}

/// Writes the C bindings of the world `gate` in `wit_dir` to `gen_dir`.
fn c_bindings(wit_dir: &Path, gen_dir: &Path) -> Result<(), BuildError> {
    use wit_bindgen_core::wit_parser::Resolve;
    let fail = |e: anyhow::Error| BuildError::Encode {
        path: wit_dir.to_owned(),
        detail: format!("{e:#}"),
    };
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve.push_path(wit_dir).map_err(fail)?;
    let world = resolve.select_world(&[pkg], Some("gate")).map_err(fail)?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)
        .map_err(fail)?;
    for (name, bytes) in files.iter() {
        let path = gen_dir.join(name);
        std::fs::create_dir_all(gen_dir)
            .and_then(|()| atomic::write(&path, bytes))
            .map_err(|source| BuildError::Io {
                what: "write",
                path,
                source,
            })?;
    }
    Ok(())
}

/// Adds the Rust target gates are built for where rustup manages the
/// toolchain `dir` builds with and that toolchain lacks it (rustup adds a
/// `rust-toolchain.toml`'s targets only when it installs the toolchain
/// itself); returns the command run, if one was. Without rustup nothing is
/// checked here: the build's own error then says what to install.
fn ensure_rust_target(
    dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<String>, BuildError> {
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output();
    let installed = match listed {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        // No rustup, or one that cannot answer for this toolchain.
        _ => return Ok(None),
    };
    if installed.lines().any(|l| l.trim() == RUST_TARGET) {
        return Ok(None);
    }
    let shown = format!("rustup target add {RUST_TARGET}");
    progress(&format!(
        "{shown} (the toolchain has no `{RUST_TARGET}`, which gates are built for)"
    ));
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", RUST_TARGET]).current_dir(dir);
    run(cmd, &shown, "rustup", "https://rustup.rs")?;
    Ok(Some(shown))
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

/// A tool: `$ENV_VAR`, else the first of `names` in the project's
/// `node_modules/.bin`, else the first of `names` on `PATH`.
pub fn find_tool(dir: &Path, names: &[&str], env_var: Option<&str>) -> Option<PathBuf> {
    if let Some(p) = env_var.and_then(std::env::var_os) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        let local = dir.join("node_modules/.bin").join(name);
        if local.is_file() {
            return Some(local);
        }
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

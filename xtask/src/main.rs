//! Repository chores.
//!
//! `cargo xtask test [NEXTEST ARGS…]` runs the whole suite the way the
//! README and CI do: `cargo nextest run --workspace` (with the arguments
//! given), then the doc examples (`cargo test --workspace --doc`), then one
//! line per test that skipped part of what it checks, and why (a missing
//! toolchain, client or service). Tests record skips in `OMK_SKIP_DIR`,
//! which this sets; with `OMK_REQUIRE_TOOLCHAINS` set (CI), a skip fails its
//! test instead.
//!
//! `cargo xtask std-gates [--check]` rebuilds the std gates (`budget`,
//! `path`, `command`, `acceptance`) from `plugins/` as components that import nothing,
//! writes them and their manifest to `plugins/std-bundle/`, and with
//! `--check` changes nothing but fails if the committed files differ from a
//! fresh build.
//!
//! The bundle is signed with omk's release key (`OMK_RELEASE_KEY`, else
//! the development key in `plugins/release-key/release.key`, committed so
//! that anyone can rebuild the std bundle; ed25519 signatures are
//! deterministic, so `--check` compares the signature too).
//!
//! `cargo xtask figures [--check]` copies the figures runs wrote (the
//! bench's `bench/figures.md`) into README.md, or checks that the README
//! shows exactly those; see `figures.rs`.
//!
//! The build is reproducible: the toolchain is pinned by
//! `rust-toolchain.toml`, dependencies by `Cargo.lock`, and
//! `--remap-path-prefix` strips the checkout and cargo home paths, so the
//! bytes do not depend on where the repository lives.

mod figures;
mod toolchain;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// Each std gate: name, crate, the stages its `describe` declares.
const GATES: [(&str, &str, &[&str]); 4] = [
    ("budget", "omk-gate-budget", &["proposal"]),
    ("path", "omk-gate-path", &["proposal", "action", "outcome"]),
    ("command", "omk-gate-command", &["action"]),
    (
        "acceptance",
        "omk-gate-acceptance",
        &["proposal", "outcome"],
    ),
];

const TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "gate";
const BUNDLE_DIR: &str = "plugins/std-bundle";
/// The std bundle's version and the `omk:gate` version its gates export.
const STD_VERSION: &str = "0.3.0";
const STD_WIT: &str = "0.3.0";

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["std-gates"] => std_gates(false),
        ["std-gates", "--check"] => std_gates(true),
        ["test", rest @ ..] => test(rest),
        ["figures"] => figures::figures(&root(), false),
        ["figures", "--check"] => figures::figures(&root(), true),
        _ => bail!(
            "usage: cargo xtask std-gates [--check] | cargo xtask test [NEXTEST ARGS…] | cargo xtask figures [--check]"
        ),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_owned()
}

/// The cargo that runs this xtask, without what `cargo run` set for it:
/// build scripts (ring's, for one) watch `CARGO_MANIFEST_DIR`, and seeing
/// xtask's there they would run again, and everything above them be
/// compiled again, at the next `cargo run` or `cargo build` outside it.
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_MANIFEST_")
            || name.starts_with("CARGO_PKG_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&name.as_ref())
        {
            cmd.env_remove(name.as_ref());
        }
    }
    cmd
}

/// The last line of a skip list: the one command that installs what the
/// skipped tests need (CI's own installer), and how long it takes.
const INSTALL_HINT: &str = "to run them too: `.ci/install-test-tools` (as root: Debian packages, \
     componentize-py/-js, the agent clients, the legacy Kimi CLI; about 2½ minutes on 2 cores), \
     then `cargo xtask test` again";

/// The file tests append their skips to, one `test<TAB>reason` a line.
const SKIPS_FILE: &str = "skips.tsv";

fn test(nextest_args: &[&str]) -> Result<()> {
    let root = root();
    toolchain::ensure_targets(&root)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let skips = target.join("omk-skips");
    let measured = target.join("omk-figures");
    for dir in [&skips, &measured] {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let run = |args: &[&str]| -> Result<bool> {
        let status = cargo()
            .args(args)
            .current_dir(&root)
            .env("OMK_SKIP_DIR", &skips)
            .env("OMK_FIGURES_DIR", &measured)
            .status()
            .with_context(|| format!("cannot run cargo {}", args.join(" ")))?;
        Ok(status.success())
    };
    let mut nextest = vec!["nextest", "run", "--workspace"];
    nextest.extend_from_slice(nextest_args);
    let tests_passed = run(&nextest)?;
    // The doc examples with the whole suite only; a filtered run skips them.
    let docs_passed = !nextest_args.is_empty() || run(&["test", "--workspace", "--doc"])?;
    let recorded = std::fs::read_to_string(skips.join(SKIPS_FILE)).unwrap_or_default();
    let mut lines: Vec<&str> = recorded.lines().filter(|l| !l.is_empty()).collect();
    lines.sort_unstable();
    lines.dedup();
    if lines.is_empty() {
        eprintln!("skips: none, every test checked all it checks");
    } else {
        eprintln!(
            "skips: {} (OMK_REQUIRE_TOOLCHAINS=1 fails them, as CI does):",
            lines.len()
        );
        for l in &lines {
            let (test, why) = l.split_once('\t').unwrap_or((l, ""));
            eprintln!("  SKIP {test}: {why}");
        }
        eprintln!("{INSTALL_HINT}");
    }
    if tests_passed {
        figures::write_reliability(&root, &measured)?;
    }
    match (tests_passed, docs_passed) {
        (true, true) => Ok(()),
        (false, _) => bail!("tests failed (above)"),
        (_, false) => bail!("doc examples failed (above)"),
    }
}

fn std_gates(check: bool) -> Result<()> {
    let root = root();
    toolchain::ensure_targets(&root)?;
    let built = build(&root)?;
    let bundle = root.join(BUNDLE_DIR);
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut manifest = String::from(
        "# The std bundle: omk's standard gates, embedded in the `omk` binary.\n\
         # Generated by `cargo xtask std-gates`; do not edit.\n\
         name = \"std\"\n",
    );
    manifest.push_str(&format!("version = \"{STD_VERSION}\"\n"));
    manifest.push_str(&format!("wit = \"{STD_WIT}\"\n"));
    manifest
        .push_str("description = \"omk's standard gates: budget, path, command and acceptance\"\n");
    for ((name, _, stages), component) in GATES.iter().zip(built) {
        let file = format!("{name}.wasm");
        let stages: Vec<String> = stages.iter().map(|s| format!("\"{s}\"")).collect();
        manifest.push_str(&format!(
            "\n[[gate]]\nname = \"{name}\"\nfile = \"{file}\"\nsha256 = \"{}\"\nstages = [{}]\nconfig = {{}}\n",
            hex::encode(Sha256::digest(&component)),
            stages.join(", ")
        ));
        files.push((bundle.join(&file), component));
    }
    files.push((bundle.join("bundle.toml"), manifest.into_bytes()));
    files.push(sign(&root, &bundle, &files)?);

    if check {
        let stale: Vec<String> = files
            .iter()
            .filter(|(path, bytes)| std::fs::read(path).ok().as_deref() != Some(bytes.as_slice()))
            .map(|(path, _)| {
                path.strip_prefix(&root)
                    .unwrap_or(path)
                    .display()
                    .to_string()
            })
            .collect();
        if !stale.is_empty() {
            bail!(
                "the embedded std gates are stale: {} differ from a fresh build\n\
                 help: run `cargo xtask std-gates` and commit the result",
                stale.join(", ")
            );
        }
        println!("std gates are up to date ({} files checked)", files.len());
        return Ok(());
    }
    std::fs::create_dir_all(bundle.join("signatures"))?;
    for (path, bytes) in &files {
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
        println!(
            "wrote {} ({} bytes)",
            path.strip_prefix(&root).unwrap_or(path).display(),
            bytes.len()
        );
    }
    Ok(())
}

/// Signs the bundle made of `files` with the release key; returns the
/// signature file.
fn sign(
    root: &Path,
    bundle_dir: &Path,
    files: &[(PathBuf, Vec<u8>)],
) -> Result<(PathBuf, Vec<u8>)> {
    let key_path = std::env::var_os("OMK_RELEASE_KEY")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("plugins/release-key/release.key"));
    let key = omk_signing::PrivateKey::load(&key_path).map_err(anyhow::Error::msg)?;
    // The statement: every file with its sha256, in path order.
    let mut statement: Vec<(String, String)> = files
        .iter()
        .map(|(p, d)| {
            let rel = p
                .strip_prefix(bundle_dir)
                .unwrap_or(p)
                .display()
                .to_string();
            (rel, hex::encode(Sha256::digest(d)))
        })
        .collect();
    statement.sort();
    let (name, text) = omk_signing::sign("std", statement, &key);
    Ok((bundle_dir.join("signatures").join(name), text.into_bytes()))
}

/// Builds the gate crates for wasm32 and encodes each as a component.
fn build(root: &Path) -> Result<Vec<Vec<u8>>> {
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let rustup_home = std::env::var("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".rustup")))
        .context("neither RUSTUP_HOME nor HOME is set")?;
    let flags = [
        format!("--remap-path-prefix={}=/omk", root.display()),
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
        format!("--remap-path-prefix={}=/rustup", rustup_home.display()),
    ]
    .join("\x1f");
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args([
            "build",
            "--locked",
            "--target",
            TARGET,
            "--profile",
            PROFILE,
        ])
        .env("CARGO_ENCODED_RUSTFLAGS", flags)
        .stdin(std::process::Stdio::null())
        .env_remove("RUSTFLAGS")
        // The bytes must not depend on a wrapper: CI lints through clippy-driver
        // as a workspace wrapper, which compiles with MIR optimisations off.
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    for (_, krate, _) in GATES {
        cmd.args(["--package", krate]);
    }
    let status = cmd.status().context("running cargo")?;
    if !status.success() {
        bail!(
            "building the std gates failed\n\
             help: the wasm target must be installed: `rustup target add {TARGET}`"
        );
    }
    GATES
        .iter()
        .map(|(_, krate, _)| {
            let module_path = target_dir
                .join(TARGET)
                .join(PROFILE)
                .join(format!("{}.wasm", krate.replace('-', "_")));
            let module = std::fs::read(&module_path)
                .with_context(|| format!("reading {}", module_path.display()))?;
            let component = wit_component::ComponentEncoder::default()
                .module(&module)
                .with_context(|| format!("{krate}: reading the component type section"))?
                .validate(true)
                .encode()
                .with_context(|| format!("{krate}: encoding the component"))?;
            check_no_imports(krate, &component)?;
            Ok(component)
        })
        .collect()
}

/// The std gates may import nothing but omk's own `omk:gate/context`. Only
/// the outer component's imports count: nested components (wit-component's
/// export shims) import types from their parent.
fn check_no_imports(krate: &str, component: &[u8]) -> Result<()> {
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        let payload = payload?;
        match &payload {
            wasmparser::Payload::Version { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth != 1 {
            continue;
        }
        if let wasmparser::Payload::ComponentImportSection(reader) = payload {
            let context = format!("omk:gate/context@{STD_WIT}");
            let names: Vec<String> = reader
                .into_iter()
                .map(|i| i.map(|i| i.name.name.to_owned()))
                .filter(|n| n.as_ref().map_or(true, |n| *n != context))
                .collect::<Result<_, _>>()?;
            if !names.is_empty() {
                bail!(
                    "{krate} imports {}; std gates must import nothing but `{context}`",
                    names.join(", ")
                );
            }
        }
    }
    Ok(())
}

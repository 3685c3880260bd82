//! The targets `rust-toolchain.toml` lists, installed before a build needs
//! them.
//!
//! rustup adds a toolchain file's `targets` only when it installs the
//! toolchain itself; where the toolchain was already there (or
//! `RUSTUP_AUTO_INSTALL=0`), nothing adds them, and the std gates and the
//! authoring tests would fail for want of `wasm32-unknown-unknown`. So
//! `cargo xtask test` and `cargo xtask std-gates` ask rustup which targets
//! the pinned toolchain has and add the missing ones, saying so. Without
//! rustup the error says what to install instead.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The pinned toolchain's channel and targets, from `rust-toolchain.toml`.
#[derive(Debug, PartialEq, Eq)]
pub struct Pinned {
    pub channel: String,
    pub targets: Vec<String>,
}

/// Reads the `[toolchain]` table of a `rust-toolchain.toml`.
pub fn pinned(text: &str) -> Result<Pinned> {
    #[derive(serde::Deserialize)]
    struct File {
        toolchain: Toolchain,
    }
    #[derive(serde::Deserialize)]
    struct Toolchain {
        channel: String,
        #[serde(default)]
        targets: Vec<String>,
    }
    let file: File = toml::from_str(text).context("rust-toolchain.toml")?;
    Ok(Pinned {
        channel: file.toolchain.channel,
        targets: file.toolchain.targets,
    })
}

/// The targets of `wanted` that `installed` (rustup's list, one a line)
/// does not have.
pub fn missing<'a>(wanted: &'a [String], installed: &str) -> Vec<&'a str> {
    wanted
        .iter()
        .map(String::as_str)
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect()
}

/// Adds the targets of `root/rust-toolchain.toml` that its toolchain lacks.
pub fn ensure_targets(root: &Path) -> Result<()> {
    let file = root.join("rust-toolchain.toml");
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let pinned = pinned(&text)?;
    if pinned.targets.is_empty() {
        return Ok(());
    }
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed", "--toolchain"])
        .arg(&pinned.channel)
        .current_dir(root)
        .output();
    let listed = match listed {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => bail!(
            "`rustup target list --installed --toolchain {}` failed: {}\n\
             help: install the pinned toolchain: `rustup toolchain install {} --profile minimal --component rustfmt,clippy`",
            pinned.channel,
            String::from_utf8_lossy(&out.stderr).trim(),
            pinned.channel
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Not rustup's Rust: the build says whether the targets are there.
            eprintln!(
                "xtask: rustup is not on PATH, so the targets rust-toolchain.toml lists ({}) are not checked; \
                 without them the std gates and the authoring tests fail \
                 (help: install them with your Rust's own means, or use rustup: https://rustup.rs)",
                pinned.targets.join(", ")
            );
            return Ok(());
        }
        Err(e) => return Err(e).context("cannot run rustup"),
    };
    let missing = missing(&pinned.targets, &listed);
    if missing.is_empty() {
        return Ok(());
    }
    let shown = format!(
        "rustup target add --toolchain {} {}",
        pinned.channel,
        missing.join(" ")
    );
    eprintln!(
        "xtask: adding the targets rust-toolchain.toml lists and the toolchain lacks: {shown}"
    );
    let status = Command::new("rustup")
        .args(["target", "add", "--toolchain"])
        .arg(&pinned.channel)
        .args(&missing)
        .current_dir(root)
        .status()
        .context("cannot run rustup")?;
    if !status.success() {
        bail!("`{shown}` failed (above)\nhelp: run it by hand, then `cargo xtask` again");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_targets_are_read_and_the_missing_ones_found() {
        let p = pinned(
            "[toolchain]\nchannel = \"1.95.0\"\ntargets = [\"wasm32-unknown-unknown\", \"wasm32-wasip2\"]\n",
        )
        .unwrap();
        assert_eq!(p.channel, "1.95.0");
        assert_eq!(
            missing(&p.targets, "x86_64-unknown-linux-gnu\nwasm32-wasip2\n"),
            ["wasm32-unknown-unknown"]
        );
        assert!(missing(&p.targets, "wasm32-wasip2\nwasm32-unknown-unknown\n").is_empty());
        assert!(pinned("[toolchain]\n").is_err());
    }

    #[test]
    fn the_repositorys_own_file_pins_the_wasm_targets() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let text = std::fs::read_to_string(root.join("rust-toolchain.toml")).unwrap();
        let p = pinned(&text).unwrap();
        assert!(p.targets.iter().any(|t| t == "wasm32-unknown-unknown"));
    }
}

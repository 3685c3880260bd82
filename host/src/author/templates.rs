//! The starter projects of `omk gate new`, embedded in the binary.
//!
//! Every template has the same parts: `omk-gate.toml`, `wit/gate.wit` (the
//! contract this omk speaks, `omk:gate@0.2.0`), a starter gate that keeps
//! agents out of `secrets/` (no writes, no reads) and takes no settings,
//! `cases.toml` that tests it, a README with the two commands, and a
//! `.gitignore`. `{{name}}` and friends are filled in.

use std::path::{Path, PathBuf};

use super::{CASES_FILE, GateProject, Lang, PROJECT_FILE, valid_name};
use crate::atomic;

const WIT: &str = include_str!("../../../wit/v0.3.0/gate.wit");
const CASES: &str = include_str!("templates/cases.toml");
const README: &str = include_str!("templates/README.md");
const GITIGNORE: &str = include_str!("templates/gitignore");

/// The source files of each language: (path in the project, text).
fn sources(lang: Lang) -> &'static [(&'static str, &'static str)] {
    match lang {
        Lang::Rust => &[
            ("Cargo.toml", include_str!("templates/rust/Cargo.toml")),
            ("src/lib.rs", include_str!("templates/rust/src/lib.rs")),
        ],
        Lang::Python => &[("app.py", include_str!("templates/python/app.py"))],
        Lang::Js => &[("gate.js", include_str!("templates/js/gate.js"))],
        Lang::C => &[("gate.c", include_str!("templates/c/gate.c"))],
    }
}

/// What the README says builds the gate, and which file to edit.
fn how(lang: Lang) -> (&'static str, &'static str) {
    match lang {
        Lang::Rust => (
            "cargo build --target wasm32-unknown-unknown, then encodes a component",
            "`src/lib.rs`",
        ),
        Lang::Python => ("componentize-py componentize app", "`app.py`"),
        Lang::Js => (
            "componentize-js gate.js, WASI features disabled",
            "`gate.js`",
        ),
        Lang::C => (
            "C bindings from wit/, clang for wasm32-wasi, then encodes a component",
            "`gate.c`",
        ),
    }
}

/// Why a project could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("`{0}` is not a gate name: use 1–64 of a-z, 0-9 and `-`, starting with a letter")]
    BadName(String),
    #[error("`{0}` already exists and is not empty")]
    Exists(PathBuf),
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl omk_core::diagnose::Diagnose for TemplateError {
    fn kind(&self) -> omk_core::diagnose::Kind {
        match self {
            TemplateError::Write { source, .. } => omk_core::diagnose::io_kind(source),
            _ => omk_core::diagnose::Kind::Usage,
        }
    }

    fn help(&self) -> Option<String> {
        Some(
            match self {
                TemplateError::Exists(_) => "choose another name or `--dir`",
                TemplateError::BadName(_) => "for example `no-secrets` or `migrations-need-review`",
                TemplateError::Write { .. } => "check that the directory is writable",
            }
            .into(),
        )
    }
}

/// Writes a new gate project `name` in `lang` to `dir`; returns the files
/// written, relative to `dir`.
pub fn create(dir: &Path, name: &str, lang: Lang) -> Result<Vec<String>, TemplateError> {
    if !valid_name(name) {
        return Err(TemplateError::BadName(name.to_owned()));
    }
    if dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(TemplateError::Exists(dir.to_owned()));
    }
    let (build, source) = how(lang);
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{lang}}", lang.as_str())
            .replace("{{build}}", build)
            .replace("{{source}}", source)
    };
    let project = toml::to_string(&GateProject {
        name: name.to_owned(),
        lang,
    })
    .unwrap_or_default();
    let mut files: Vec<(String, String)> = vec![
        (PROJECT_FILE.into(), project),
        ("wit/gate.wit".into(), WIT.to_owned()),
        (CASES_FILE.into(), fill(CASES)),
        ("README.md".into(), fill(README)),
        (".gitignore".into(), GITIGNORE.to_owned()),
    ];
    files.extend(sources(lang).iter().map(|(p, t)| (p.to_string(), fill(t))));
    for (rel, text) in &files {
        let path = dir.join(rel);
        path.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| atomic::write(&path, text.as_bytes()))
            .map_err(|source| TemplateError::Write { path, source })?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_is_filled_in_and_refuses_to_overwrite() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("g");
            let files = create(&dir, "no-secrets", lang).unwrap();
            for f in &files {
                let text = std::fs::read_to_string(dir.join(f)).unwrap();
                assert!(!text.contains("{{"), "{lang:?} {f} is not filled in");
            }
            let p = GateProject::open(&dir).unwrap();
            assert_eq!((p.name.as_str(), p.lang), ("no-secrets", lang));
            assert!(matches!(
                create(&dir, "no-secrets", lang),
                Err(TemplateError::Exists(_))
            ));
        }
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["", "Caps", "9lives", "a_b", &"x".repeat(65)] {
            assert!(matches!(
                create(&tmp.path().join("x"), bad, Lang::Rust),
                Err(TemplateError::BadName(_))
            ));
        }
    }
}

//! Writing gates: `omk gate new` projects from templates embedded in the
//! binary, and `omk gate build`, which runs each language's toolchain.
//!
//! A gate project is a directory with `omk-gate.toml` (its name and
//! language), `wit/gate.wit` (the contract), the source, and `cases.toml`
//! (its test cases). `omk gate build` writes `<name>.wasm` beside them.

pub(crate) mod build;
mod templates;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use build::{BuildError, BuildReport, build, find_tool};
pub use templates::{TemplateError, create};

/// The project file of a gate project.
pub const PROJECT_FILE: &str = "omk-gate.toml";
/// The test cases of a gate project.
pub const CASES_FILE: &str = "cases.toml";

/// A language omk can build gates from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
        }
    }
}

/// `omk-gate.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateProject {
    /// The gate's name: 1–64 of a-z, 0-9 and `-`.
    pub name: String,
    pub lang: Lang,
}

/// A gate project that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ProjectError {
    pub path: String,
    pub message: String,
    pub help: Option<String>,
}

impl omk_core::diagnose::Diagnose for ProjectError {
    fn help(&self) -> Option<String> {
        self.help.clone()
    }
}

impl GateProject {
    /// Reads the project in `dir`.
    pub fn open(dir: &Path) -> Result<GateProject, ProjectError> {
        let path = dir.join(PROJECT_FILE);
        let err = |message: String, help: Option<&str>| ProjectError {
            path: path.display().to_string(),
            message,
            help: help.map(str::to_owned),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            err(
                format!("cannot read it: {e}"),
                Some("run this in a directory made by `omk gate new NAME --lang rust|python|js|c`, or pass it"),
            )
        })?;
        let p: GateProject =
            toml::from_str(&text).map_err(|e| err(e.message().trim().to_owned(), None))?;
        if !valid_name(&p.name) {
            return Err(err(
                format!(
                    "the name `{}` is not 1–64 of a-z, 0-9 and `-`",
                    p.name.escape_debug()
                ),
                None,
            ));
        }
        Ok(p)
    }

    /// Where `omk gate build` writes the component.
    pub fn component(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.wasm", self.name))
    }
}

/// A name for a new gate: a gate name (1–64 of a-z, 0-9 and `-`) that
/// starts with a letter, so it is also a crate and file name.
pub fn valid_name(name: &str) -> bool {
    crate::gates::valid_name(name) && name.starts_with(|c: char| c.is_ascii_lowercase())
}

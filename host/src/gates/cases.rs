//! Test cases for one gate, as `omk gate test` runs them — like `opa test`
//! and `kyverno test`, for gates.
//!
//! A case file is TOML (`[[case]]` tables) or JSON (`{"case": [...]}`):
//!
//! ```toml
//! [[case]]
//! name = "a migration needs high risk"
//! stage = "proposal"                 # proposal | action | outcome
//! proposal = { id = "m1", write_set = ["migrations/001.sql"], acceptance = ["run: make test"] }
//! config = { }                       # the gate's config (optional)
//! context = { policy_roots = ["src"] } # the goal context (optional)
//! expect = "reject"                  # accept | reject | ask (an action only)
//! code = "migrations.risk"           # the rejection's or ask's code (optional)
//! ```
//!
//! `proposal` is the judged task at every stage; an `action` case adds
//! `action = { kind = "write_file", target = "…" }` (a `run_command`'s
//! target is a command line, which omk parses for the gate as it does for
//! an agent's: a case asserts what a gate makes of `echo "sudo"` against
//! `sudo true`) and an `outcome` case
//! `outcome = { changed_files = […], checks = […], evidence = […] }`. The
//! field names are those of omk's JSON files (`read_set`, `budget_secs`).

use std::path::Path;

use omk_gate_sdk::{AgentAction, Decision, GoalContext, Stage, TaskOutcome, TaskProposal};
use serde::{Deserialize, Serialize};

use super::{Fault, Limits, LoadedGate};

/// The verdict a case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Accept,
    Reject,
    /// A person must approve the action (`omk:gate@0.3.0`).
    Ask,
}

/// One test case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub stage: Stage,
    #[serde(default)]
    pub context: GoalContext,
    /// The gate's config; absent means `{}`.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    pub proposal: TaskProposal,
    #[serde(default)]
    pub action: Option<AgentAction>,
    #[serde(default)]
    pub outcome: Option<TaskOutcome>,
    pub expect: Expect,
    /// The rejection code expected, when `expect = "reject"`.
    #[serde(default)]
    pub code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(rename = "case", default)]
    cases: Vec<Case>,
}

/// A case file that cannot be used; names the file and, where it can, the
/// case.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct CasesError {
    pub file: String,
    pub message: String,
}

impl omk_core::diagnose::Diagnose for CasesError {
    fn help(&self) -> Option<String> {
        Some(
            "write `[[case]]` tables with name, stage, proposal, expect (and code); see `omk gate new` for an example"
                .into(),
        )
    }
}

/// Reads and checks the cases in `path` (`.toml` or `.json`).
pub fn read(path: &Path) -> Result<Vec<Case>, CasesError> {
    let err = |message: String| CasesError {
        file: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    let file: CaseFile = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))?
    } else {
        toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| format!("line {}: ", super::config::line_of(&text, s.start)))
                .unwrap_or_default();
            err(format!("{line}{}", e.message().trim()))
        })?
    };
    if file.cases.is_empty() {
        return Err(err("holds no `[[case]]`".into()));
    }
    for c in &file.cases {
        let problem = match c.stage {
            Stage::Action if c.action.is_none() => Some("an `action` case needs `action`"),
            Stage::Outcome if c.outcome.is_none() => Some("an `outcome` case needs `outcome`"),
            _ if c.expect == Expect::Accept && c.code.is_some() => {
                Some("`code` goes with `expect = \"reject\"` or `\"ask\"`")
            }
            Stage::Proposal | Stage::Outcome if c.expect == Expect::Ask => {
                Some("only an `action` case can expect `ask`")
            }
            _ => None,
        };
        if let Some(p) = problem {
            return Err(err(format!("case `{}`: {p}", c.name)));
        }
    }
    Ok(file.cases)
}

/// What a case got, and whether that is what it expected.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub stage: Stage,
    pub passed: bool,
    pub expect: Expect,
    pub expect_code: Option<String>,
    /// The gate's decision (a fault is the host's fail-closed rejection).
    pub got: Decision,
    /// Set when the gate faulted (trap, limit, malformed result).
    pub fault: Option<String>,
    /// What a gate with sealed WASI printed.
    pub output: Option<String>,
}

/// Runs every case against `gate` under `limits`, each in a fresh
/// instance.
pub fn run(gate: &LoadedGate, cases: &[Case], limits: &Limits) -> Vec<CaseResult> {
    cases.iter().map(|c| run_one(gate, c, limits)).collect()
}

/// What a set of cases exercised of a gate: per stage, how many cases
/// and which verdicts; the rejection codes seen. Gates of `omk:gate@0.1.0`
/// do not declare their codes, so the figure is the stages the gate judges
/// that have both an accepted and a rejected case.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub stages: Vec<StageCoverage>,
    /// Distinct rejection codes the gate gave, sorted.
    pub codes: Vec<String>,
    /// Stages judged with both verdicts seen.
    pub covered: usize,
    /// Stages the gate judges.
    pub judged: usize,
}

/// One stage's share of [`Coverage`].
#[derive(Debug, Clone, Serialize)]
pub struct StageCoverage {
    pub stage: Stage,
    /// Whether the gate says it judges this stage.
    pub judged: bool,
    pub cases: usize,
    pub accepted: usize,
    pub rejected: usize,
}

/// The coverage of `results` for a gate judging `judged` stages.
pub fn coverage(judged: &[Stage], results: &[CaseResult]) -> Coverage {
    let stages: Vec<StageCoverage> = Stage::ALL
        .iter()
        .map(|&stage| {
            let of: Vec<&CaseResult> = results.iter().filter(|r| r.stage == stage).collect();
            let rejected = of.iter().filter(|r| r.got.rejection().is_some()).count();
            StageCoverage {
                stage,
                judged: judged.contains(&stage),
                cases: of.len(),
                accepted: of.len() - rejected,
                rejected,
            }
        })
        .collect();
    let mut codes: Vec<String> = results
        .iter()
        .filter_map(|r| r.got.rejection().map(|x| x.code.clone()))
        .collect();
    codes.sort();
    codes.dedup();
    Coverage {
        covered: stages
            .iter()
            .filter(|s| s.judged && s.accepted > 0 && s.rejected > 0)
            .count(),
        judged: stages.iter().filter(|s| s.judged).count(),
        stages,
        codes,
    }
}

impl Coverage {
    /// One line for people.
    pub fn line(&self) -> String {
        let stages: Vec<String> = self
            .stages
            .iter()
            .filter(|s| s.judged || s.cases > 0)
            .map(|s| {
                let mark = if !s.judged {
                    " (not judged by this gate)"
                } else if s.accepted == 0 || s.rejected == 0 {
                    " (missing an accept or a reject)"
                } else {
                    ""
                };
                format!(
                    "{} {} accepted, {} rejected{mark}",
                    s.stage.as_str(),
                    s.accepted,
                    s.rejected
                )
            })
            .collect();
        let codes = if self.codes.is_empty() {
            "none".to_owned()
        } else {
            self.codes.join(", ")
        };
        format!(
            "coverage: {} of {} judged stages with both verdicts ({}); codes seen: {codes}",
            self.covered,
            self.judged,
            stages.join("; ")
        )
    }
}

/// One case: the gate's `validate-config` first (a config it refuses is the
/// case's rejection, as it would stop the gate's load), then the check.
fn run_one(gate: &LoadedGate, c: &Case, limits: &Limits) -> CaseResult {
    let config = c
        .config
        .as_ref()
        .map_or_else(|| "{}".to_owned(), |v| v.to_string());
    let judged = match gate.validate_config(&config, limits) {
        Ok(Ok(())) => judge_case(gate, c, &config, limits),
        Ok(Err(r)) => super::Judged {
            result: Ok(Decision::Reject(r)),
            output: None,
        },
        Err(fault) => super::Judged {
            result: Err(fault),
            output: None,
        },
    };
    let output = judged.output;
    let (got, fault) = match judged.result {
        Ok(d) => (d, None),
        Err(f) => (
            f.to_decision(&gate.info().name, c.stage),
            Some(f.to_string()),
        ),
    };
    let code_matches =
        |r: &omk_gate_sdk::Rejection| c.code.as_ref().is_none_or(|code| *code == r.code);
    let passed = match (&c.expect, &got) {
        (Expect::Accept, Decision::Accept) => true,
        (Expect::Reject, Decision::Reject(r)) | (Expect::Ask, Decision::Ask(r)) => code_matches(r),
        _ => false,
    };
    CaseResult {
        name: c.name.clone(),
        stage: c.stage,
        passed,
        expect: c.expect,
        expect_code: c.code.clone(),
        got,
        fault,
        output,
    }
}

/// The case's check, at its stage.
fn judge_case(gate: &LoadedGate, c: &Case, config: &str, limits: &Limits) -> super::Judged {
    match c.stage {
        Stage::Proposal => gate.check_proposal(&c.context, &c.proposal, config, limits),
        Stage::Action => match &c.action {
            Some(a) => {
                let a = crate::command::with_parse(a.clone());
                gate.check_action(&c.context, &c.proposal, &a, config, limits)
            }
            None => unreachable_case(),
        },
        Stage::Outcome => match &c.outcome {
            Some(o) => gate.check_outcome(&c.context, &c.proposal, o, config, limits),
            None => unreachable_case(),
        },
    }
}

/// [`read`] refuses such cases; judged anyway, they fail closed.
fn unreachable_case() -> super::Judged {
    super::Judged {
        result: Err(Fault::new(
            super::FaultCause::Malformed,
            "the case gives no input for its stage",
        )),
        output: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_toml_and_json_alike() {
        let (_d, toml) = write(
            "cases.toml",
            r#"
[[case]]
name = "a"
stage = "action"
proposal = { id = "t", write_set = ["src"] }
action = { task_id = "t", kind = "write_file", target = "src/x" }
expect = "accept"
"#,
        );
        let (_e, json) = write(
            "cases.json",
            r#"{"case": [{"name": "a", "stage": "action", "proposal": {"id": "t", "write_set": ["src"]},
               "action": {"task_id": "t", "kind": "write_file", "target": "src/x"}, "expect": "accept"}]}"#,
        );
        let a = read(&toml).unwrap();
        let b = read(&json).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].action, b[0].action);
        assert_eq!(a[0].proposal, b[0].proposal);
    }

    #[test]
    fn bad_files_name_the_file_and_the_case() {
        let (_d, p) = write(
            "c.toml",
            "[[case]]\nname = \"x\"\nstage = \"outcome\"\nproposal = { id = \"t\" }\nexpect = \"reject\"\n",
        );
        let e = read(&p).unwrap_err().to_string();
        assert!(
            e.contains("c.toml") && e.contains("case `x`") && e.contains("outcome"),
            "{e}"
        );
        let (_d, p) = write("c.toml", "[[case]]\nname = 1\n");
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("c.toml: line 2"), "{e}");
        let (_d, p) = write("c.toml", "");
        assert!(read(&p).unwrap_err().to_string().contains("no `[[case]]`"));
        let (_d, p) = write(
            "c.toml",
            "[[case]]\nname = \"x\"\nstage = \"proposal\"\nproposal = { id = \"t\" }\nexpect = \"accept\"\ncode = \"a.b\"\n",
        );
        assert!(
            read(&p)
                .unwrap_err()
                .to_string()
                .contains("`code` goes with")
        );
    }
}

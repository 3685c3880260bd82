//! The std `acceptance` gate: a task must say how it will be judged, and is
//! judged by it.
//!
//! - **proposal**: at least one non-empty acceptance criterion
//!   (`acceptance.missing`); a `run:` criterion must name a command
//!   (`acceptance.empty-command`).
//! - **outcome**: every check passed (`acceptance.check-failed`), and every
//!   criterion is backed (`acceptance.unverified`): a `run: <command>`
//!   criterion by a passing check of that name, any other criterion by a
//!   passing check or by evidence that names it.
//!
//! Settings: none.

use omk_gate_sdk::{
    Decision, GateInfo, GoalContext, Policy, Rejection, Stage, TaskOutcome, TaskProposal, config,
};
use serde::Deserialize;

/// The gate's name, as used in `.omk/gates.toml` and in codes.
pub const NAME: &str = "acceptance";

/// The prefix of a criterion that omk checks by running a command.
pub const RUN_PREFIX: &str = "run:";

/// The `acceptance` gate.
pub struct AcceptanceGate;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {}

impl Policy for AcceptanceGate {
    fn info() -> GateInfo {
        GateInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            stages: vec![Stage::Proposal, Stage::Outcome],
            description: "admits tasks with acceptance criteria and accepts them only when every criterion is backed"
                .into(),
        }
    }

    fn validate_config(raw: &str) -> Result<(), Rejection> {
        config::check::<Settings>(NAME, raw)
    }

    fn check_proposal(_: &GoalContext, p: &TaskProposal, raw: &str) -> Decision {
        if let Err(d) = config::parse::<Settings>(NAME, raw) {
            return d;
        }
        if p.acceptance.iter().all(|c| c.trim().is_empty()) {
            return Decision::reject(
                "acceptance.missing",
                format!(
                    "task `{}` has no acceptance criteria; add at least one, for example `run: cargo test`",
                    p.id
                ),
            );
        }
        if let Some(c) = p
            .acceptance
            .iter()
            .find(|c| command(c).is_some_and(str::is_empty))
        {
            return Decision::reject(
                "acceptance.empty-command",
                format!(
                    "task `{}` has the criterion `{}` with no command after `run:`",
                    p.id,
                    c.trim()
                ),
            );
        }
        Decision::Accept
    }

    fn check_outcome(_: &GoalContext, task: &TaskProposal, o: &TaskOutcome, raw: &str) -> Decision {
        if let Err(d) = config::parse::<Settings>(NAME, raw) {
            return d;
        }
        if let Some(c) = o.checks.iter().find(|c| !c.passed) {
            let exit = c
                .exit_code
                .map_or_else(|| "no exit code".to_owned(), |e| format!("exit {e}"));
            let last = c
                .output_tail
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Decision::reject(
                "acceptance.check-failed",
                format!(
                    "task `{}`: check `{}` failed ({exit}): {}",
                    task.id,
                    c.name,
                    last.trim()
                ),
            );
        }
        for criterion in task
            .acceptance
            .iter()
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
        {
            let checked = o
                .checks
                .iter()
                .any(|c| c.passed && c.name.trim() == criterion);
            let evidenced = o
                .evidence
                .iter()
                .any(|e| e.criterion.as_deref().map(str::trim) == Some(criterion));
            let backed = if command(criterion).is_some() {
                checked
            } else {
                checked || evidenced
            };
            if !backed {
                let missing = if command(criterion).is_some() {
                    "no passing check ran it"
                } else {
                    "no evidence or check backs it"
                };
                return Decision::reject(
                    "acceptance.unverified",
                    format!(
                        "task `{}`: criterion `{criterion}` is unverified: {missing}",
                        task.id
                    ),
                );
            }
        }
        Decision::Accept
    }
}

/// The command of a `run:` criterion, trimmed; `None` for other criteria.
pub fn command(criterion: &str) -> Option<&str> {
    criterion.trim().strip_prefix(RUN_PREFIX).map(str::trim)
}

#[cfg(target_arch = "wasm32")]
omk_gate_sdk::export_gate!(AcceptanceGate);

#[cfg(test)]
mod tests {
    use super::*;
    use omk_gate_sdk::{CheckResult, Evidence};
    use serde_json::json;

    fn task(acceptance: &[&str]) -> TaskProposal {
        serde_json::from_value(json!({"id": "t", "acceptance": acceptance})).unwrap()
    }

    fn code(d: &Decision) -> &str {
        d.rejection().map_or("accept", |r| r.code.as_str())
    }

    fn check(name: &str, passed: bool) -> CheckResult {
        CheckResult {
            name: name.into(),
            command: name.trim_start_matches("run:").trim().into(),
            exit_code: Some(if passed { 0 } else { 1 }),
            passed,
            output_tail: "line one\nassertion failed\n".into(),
        }
    }

    #[test]
    fn proposal_needs_a_criterion() {
        let c = GoalContext::default();
        assert_eq!(
            code(&AcceptanceGate::check_proposal(&c, &task(&[]), "")),
            "acceptance.missing"
        );
        assert_eq!(
            code(&AcceptanceGate::check_proposal(&c, &task(&["  ", ""]), "")),
            "acceptance.missing"
        );
        assert_eq!(
            code(&AcceptanceGate::check_proposal(&c, &task(&["run:  "]), "")),
            "acceptance.empty-command"
        );
        assert!(AcceptanceGate::check_proposal(&c, &task(&["tests pass"]), "").is_accept());
    }

    #[test]
    fn outcome_needs_every_criterion_backed() {
        let c = GoalContext::default();
        let t = task(&["run: cargo test", "docs updated"]);
        let mut o = TaskOutcome {
            task_id: "t".into(),
            checks: vec![check("run: cargo test", true)],
            ..Default::default()
        };
        assert_eq!(
            code(&AcceptanceGate::check_outcome(&c, &t, &o, "")),
            "acceptance.unverified"
        );
        o.evidence.push(Evidence {
            kind: "note".into(),
            summary: "README has the new flag".into(),
            path: Some("README.md".into()),
            criterion: Some("docs updated".into()),
        });
        assert!(AcceptanceGate::check_outcome(&c, &t, &o, "").is_accept());

        // Evidence alone does not back a `run:` criterion.
        o.checks.clear();
        o.evidence.push(Evidence {
            criterion: Some("run: cargo test".into()),
            ..Default::default()
        });
        assert_eq!(
            code(&AcceptanceGate::check_outcome(&c, &t, &o, "")),
            "acceptance.unverified"
        );

        o.checks.push(check("run: cargo test", false));
        let d = AcceptanceGate::check_outcome(&c, &t, &o, "");
        assert_eq!(code(&d), "acceptance.check-failed");
        assert!(d.rejection().unwrap().reason.contains("assertion failed"));
    }
}

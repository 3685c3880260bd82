//! The `change-control` example gate, in Rust. The same policy is written
//! in JavaScript (`../js`), C (`../c`) and Python (`../python`); all pass
//! `../cases.toml`.
//!
//! - A task that writes under `migrations/` needs risk `high`
//!   (`change-control.migration-risk`) and an acceptance check that runs
//!   the migration tests: a `run:` criterion mentioning `migrat`
//!   (`change-control.migration-tests`). An agent in a task that is not
//!   high-risk may not write or delete a file there either.
//! - No task may change both a dependency manifest and CI configuration
//!   (`change-control.deps-and-ci`).
//! - Commands, judged by what they run (the host's parse, not the command
//!   line's text: `echo "sudo"` runs `echo`): no command may run through
//!   `sudo` or `doas` (`change-control.privileged`), wherever it sits —
//!   inside `bash -c '…'`, a substitution, a pipeline; and a `git push`
//!   needs a person's approval (`change-control.push`, an ask).
//! - The gate takes no settings: `validate-config` refuses any
//!   (`change-control.config-invalid`), so omk stops at load.
//!
//! Built against `omk:gate@0.3.0` (`wit/gate.wit`, a copy of the contract).
//! The proposal and outcome cases are `../cases.toml`, which its builds for
//! older versions pass too; the command cases are `../commands.toml`.

wit_bindgen::generate!({ path: "wit", world: "gate" });

use exports::omk::gate::policy::{
    ActionDecision, ActionKind, AgentAction, Decision, GateInfo, GoalContext, Guest, Rejection,
    SimpleCommand, Stage, TaskOutcome, TaskProposal,
};

const MANIFESTS: [&str; 8] = [
    "Cargo.toml",
    "Cargo.lock",
    "package.json",
    "package-lock.json",
    "requirements.txt",
    "pyproject.toml",
    "go.mod",
    "go.sum",
];
const CI_DIRS: [&str; 3] = ["ci", ".ci", ".circleci"];
const CI_FILES: [&str; 3] = ["Jenkinsfile", ".gitlab-ci.yml", ".travis.yml"];

fn reject(code: &str, reason: String) -> Decision {
    Decision::Reject(Rejection {
        code: format!("change-control.{code}"),
        reason,
    })
}

/// The path without leading `./`.
fn clean(path: &str) -> &str {
    let mut p = path;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    p
}

fn is_migration(path: &str) -> bool {
    let p = clean(path);
    p == "migrations" || p.starts_with("migrations/")
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn is_manifest(path: &str) -> bool {
    MANIFESTS.contains(&basename(path))
}

fn is_ci(path: &str) -> bool {
    let p = clean(path);
    let first = p.split('/').next().unwrap_or(p);
    CI_DIRS.contains(&first) || CI_FILES.contains(&basename(p))
}

fn config_ok(config: &str) -> Result<(), Rejection> {
    let c = config.trim();
    if c.is_empty() || c == "{}" {
        Ok(())
    } else {
        Err(Rejection {
            code: "change-control.config-invalid".into(),
            reason: format!("this gate takes no settings, but was given {c}"),
        })
    }
}

/// A command's name, where it is known (word 0 is not dynamic).
fn name(c: &SimpleCommand) -> Option<&str> {
    c.words
        .first()
        .filter(|_| !c.dynamic.contains(&0))
        .map(String::as_str)
}

struct Gate;

impl Guest for Gate {
    fn describe() -> GateInfo {
        GateInfo {
            name: "change-control".into(),
            version: "0.3.0".into(),
            stages: vec![Stage::Proposal, Stage::Action],
            description: "Migrations need high risk and their tests; dependencies and CI change apart"
                .into(),
        }
    }

    fn validate_config(config: String) -> Result<(), Rejection> {
        config_ok(&config)
    }

    fn check_proposal(_ctx: GoalContext, p: TaskProposal, _config: String) -> Decision {
        if let Some(m) = p.write_set.iter().find(|w| is_migration(w)) {
            if p.risk != "high" {
                return reject(
                    "migration-risk",
                    format!(
                        "`{m}` changes a migration, which needs risk `high` (the task says `{}`)",
                        p.risk
                    ),
                );
            }
            let tested = p
                .acceptance
                .iter()
                .any(|a| a.trim_start().starts_with("run:") && a.contains("migrat"));
            if !tested {
                return reject(
                    "migration-tests",
                    "a task changing migrations needs an acceptance check that runs the migration tests (`run: …migrat…`)".into(),
                );
            }
        }
        let manifest = p.write_set.iter().find(|w| is_manifest(w));
        let ci = p.write_set.iter().find(|w| is_ci(w));
        if let (Some(m), Some(c)) = (manifest, ci) {
            return reject(
                "deps-and-ci",
                format!("a task may not change both dependencies (`{m}`) and CI configuration (`{c}`)"),
            );
        }
        Decision::Accept
    }

    fn check_action(
        _ctx: GoalContext,
        task: TaskProposal,
        action: AgentAction,
        _config: String,
    ) -> ActionDecision {
        let changes_file = matches!(action.kind, ActionKind::WriteFile | ActionKind::DeleteFile);
        if changes_file && is_migration(&action.target) && task.risk != "high" {
            return ActionDecision::Reject(Rejection {
                code: "change-control.migration-risk".into(),
                reason: format!(
                    "`{}` is a migration, and task `{}` is not high-risk",
                    action.target, task.id
                ),
            });
        }
        let commands = action.command.map(|c| c.commands).unwrap_or_default();
        if let Some(c) = commands
            .iter()
            .find(|c| matches!(name(c), Some("sudo" | "doas")))
        {
            return ActionDecision::Reject(Rejection {
                code: "change-control.privileged".into(),
                reason: format!(
                    "`{}` runs a command as another user, which change control does not allow",
                    c.words.join(" ")
                ),
            });
        }
        let pushes = commands
            .iter()
            .any(|c| name(c) == Some("git") && c.words.get(1).is_some_and(|w| w == "push"));
        if pushes {
            return ActionDecision::Ask(Rejection {
                code: "change-control.push".into(),
                reason: "`git push` changes the shared history: a person approves each push"
                    .into(),
            });
        }
        ActionDecision::Accept
    }

    fn check_outcome(
        _ctx: GoalContext,
        _task: TaskProposal,
        _outcome: TaskOutcome,
        _config: String,
    ) -> Decision {
        Decision::Accept
    }
}

export!(Gate);

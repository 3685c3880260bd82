//! The scripted agent: does exactly what a script says, deterministically.
//!
//! A script is JSON:
//!
//! ```json
//! {
//!   "plan": [ {"id": "add-docs", "write_set": ["docs"], "acceptance": ["…"], "budget_secs": 60} ],
//!   "tasks": {
//!     "add-docs": [
//!       { "steps": [ {"write": "docs/a.md", "content": "…"},
//!                    {"delete": "old.md"},
//!                    {"run": "make docs"},
//!                    {"sleep_ms": 100} ],
//!         "evidence": [ {"kind": "note", "summary": "…", "criterion": "…"} ],
//!         "propose": [ … follow-up proposals … ],
//!         "tokens": 1200, "usd_micros": 3000, "exit": 0 }
//!     ]
//!   }
//! }
//! ```
//!
//! `tasks.<id>` lists attempts: the first run uses the first entry, a retry
//! the next, and the last repeats. Every step is an action the gates judge
//! first; a refused step is skipped (and recorded), as a real agent told
//! "no" would. Files are written through a capability handle on the
//! worktree, so no path, symlink or `..` can reach outside it.

use std::collections::BTreeMap;
use std::path::Path;

use omk_gate_sdk::{ActionKind, Evidence, TaskProposal};
use serde::Deserialize;
use serde_json::json;

use super::files;
use super::judge::Judge;
use super::process::run_shell;
use super::{AgentError, Backend, BoxFuture, Brief, Hooks, Job, Report};

/// A parsed script.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    #[serde(default)]
    pub plan: Vec<TaskProposal>,
    #[serde(default)]
    pub tasks: BTreeMap<String, Vec<Attempt>>,
}

/// What the agent does on one run of a task.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attempt {
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    #[serde(default)]
    pub propose: Vec<TaskProposal>,
    #[serde(default)]
    pub tokens: u64,
    #[serde(default)]
    pub usd_micros: u64,
    #[serde(default)]
    pub exit: i32,
}

/// One step.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Step {
    Write { write: String, content: String },
    Delete { delete: String },
    Run { run: String },
    Sleep { sleep_ms: u64 },
}

/// The scripted backend.
#[derive(Debug)]
pub struct Scripted {
    script: Script,
}

impl Scripted {
    /// Reads a script file.
    pub fn load(path: &Path) -> Result<Scripted, AgentError> {
        let err = |message: String| AgentError {
            agent: "scripted".into(),
            message,
            help: Some(
                "see the script format in `host/src/agents/scripted.rs` or `omk demo`'s script"
                    .into(),
            ),
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("cannot read `{}`: {e}", path.display())))?;
        let script = serde_json::from_str(&text).map_err(|e| {
            err(format!(
                "`{}`:{}:{}: {e}",
                path.display(),
                e.line(),
                e.column()
            ))
        })?;
        Ok(Scripted { script })
    }

    /// A backend for a script already in memory.
    pub fn new(script: Script) -> Scripted {
        Scripted { script }
    }
}

impl Backend for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn live_gating(&self) -> bool {
        true
    }

    fn plan<'a>(
        &'a self,
        _: &'a Brief,
        _: &'a dyn Hooks,
    ) -> BoxFuture<'a, Result<Vec<TaskProposal>, String>> {
        Box::pin(async move { Ok(self.script.plan.clone()) })
    }

    fn run<'a>(&'a self, job: &'a Job, hooks: &'a dyn Hooks) -> BoxFuture<'a, Report> {
        Box::pin(async move {
            let Some(attempts) = self
                .script
                .tasks
                .get(&job.task.id)
                .filter(|a| !a.is_empty())
            else {
                return Report {
                    exit_code: Some(1),
                    output_tail: format!("the script has no entry for task `{}`", job.task.id),
                    ..Default::default()
                };
            };
            let index = (job.attempt.max(1) as usize - 1).min(attempts.len() - 1);
            let attempt = &attempts[index];
            let mut out = Vec::new();
            for step in &attempt.steps {
                if tokio::time::Instant::now() >= job.deadline {
                    return Report {
                        timed_out: true,
                        output_tail: out.join("\n"),
                        ..Default::default()
                    };
                }
                out.push(perform(job, hooks, step).await);
            }
            Report {
                exit_code: Some(attempt.exit),
                timed_out: false,
                proposals: attempt.propose.clone(),
                evidence: attempt.evidence.clone(),
                tokens: attempt.tokens,
                usd_micros: attempt.usd_micros,
                output_tail: out.join("\n"),
            }
        })
    }
}

/// Performs one step if omk allows it; returns a line for the output.
async fn perform(job: &Job, hooks: &dyn Hooks, step: &Step) -> String {
    let (kind, target) = match step {
        Step::Write { write, .. } => (ActionKind::WriteFile, write.as_str()),
        Step::Delete { delete } => (ActionKind::DeleteFile, delete.as_str()),
        Step::Run { run } => (ActionKind::RunCommand, run.as_str()),
        Step::Sleep { sleep_ms } => {
            let until = tokio::time::Instant::now() + std::time::Duration::from_millis(*sleep_ms);
            tokio::time::sleep_until(until.min(job.deadline)).await;
            return format!("slept {sleep_ms} ms");
        }
    };
    let permit = Judge::new(hooks, Some(&job.task.id)).one(kind, target, "scripted step");
    if let Some(reason) = permit.refusal() {
        return format!("refused: {kind:?} `{target}`: {reason}");
    }
    match step {
        Step::Write { write, content } => match files::write_file(&job.worktree, write, content) {
            Ok(()) => format!("wrote {write}"),
            Err(e) => format!("could not write {write}: {e}"),
        },
        Step::Delete { delete } => match files::delete_file(&job.worktree, delete) {
            Ok(()) => format!("deleted {delete}"),
            Err(e) => format!("could not delete {delete}: {e}"),
        },
        Step::Run { run } => {
            let env = job.env();
            let f = run_shell(
                run,
                &job.worktree,
                &env,
                &job.confinement,
                None,
                job.deadline,
                &|pgid| hooks.process_started(pgid),
                &mut |_| {},
            )
            .await;
            hooks.note(
                "command_finished",
                json!({"task_id": job.task.id, "command": run, "exit_code": f.exit_code, "timed_out": f.timed_out}),
            );
            format!("ran `{run}`: exit {:?}\n{}", f.exit_code, f.output_tail)
        }
        Step::Sleep { .. } => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_parses_every_step() {
        let s: Script = serde_json::from_str(
            r#"{"tasks":{"t":[{"steps":[{"write":"a","content":"x"},{"delete":"b"},{"run":"true"},{"sleep_ms":1}],"exit":0}]}}"#,
        )
        .unwrap();
        assert_eq!(s.tasks["t"][0].steps.len(), 4);
        assert!(serde_json::from_str::<Script>(r#"{"tasks":{"t":[{"stepz":[]}]}}"#).is_err());
    }
}

//! A finished attempt's outcome: every `run:` acceptance check judged as a
//! command by the gates and run confined like the agent, then the files
//! changed, taken from git after the checks so that whatever a check wrote
//! is judged with the rest.

use omk_gate_sdk::{AgentAction, CheckResult, TaskOutcome, TaskProposal};

use super::Executor;
use super::hooks::TaskHooks;
use crate::agents::Report;
use crate::agents::process::run_shell;
use crate::goal::GoalError;
use crate::proof::events;
use crate::sandbox::Confinement;
use crate::worktree;

impl Executor {
    /// Changed files, checks and evidence of a finished attempt.
    /// What the task's attempt came to: every `run:` check judged as a
    /// command by the gates, then run confined like the agent; then the
    /// files changed, taken from git after the checks, so that whatever a
    /// check wrote is judged with the rest.
    pub(super) async fn outcome(
        &self,
        task: &TaskProposal,
        wt: &std::path::Path,
        report: &Report,
        hooks: &TaskHooks,
        confinement: &Confinement,
    ) -> Result<TaskOutcome, GoalError> {
        let mut checks = Vec::new();
        for criterion in &task.acceptance {
            let Some(command) = criterion.trim().strip_prefix("run:").map(str::trim) else {
                continue;
            };
            if command.is_empty() {
                continue;
            }
            let permit = crate::agents::judge::with_its_files(
                hooks,
                AgentAction::new(
                    task.id.clone(),
                    omk_gate_sdk::ActionKind::RunCommand,
                    command,
                    format!("the acceptance check `{}`", criterion.trim()),
                ),
            );
            if let Some(reason) = permit.refusal() {
                checks.push(CheckResult {
                    name: criterion.trim().to_owned(),
                    command: command.to_owned(),
                    exit_code: None,
                    passed: false,
                    output_tail: format!("refused by omk: {reason}"),
                });
                continue;
            }
            let f = run_shell(
                command,
                wt,
                &[
                    ("OMK_TASK_ID".to_owned(), task.id.clone()),
                    ("OMK_PHASE".to_owned(), "check".to_owned()),
                ],
                confinement,
                None,
                crate::agents::process::deadline_in(self.opts.check_timeout_secs),
                &|_| {},
                &mut |_| {},
            )
            .await;
            let mut tail = f.output_tail.clone();
            if f.timed_out {
                tail.push_str(&format!(
                    "\n(killed after {}s)",
                    self.opts.check_timeout_secs
                ));
            }
            checks.push(CheckResult {
                name: criterion.trim().to_owned(),
                command: command.to_owned(),
                exit_code: f.exit_code,
                passed: f.success(),
                output_tail: crate::text::clip(&tail, 4000),
            });
        }
        let changed_files = worktree::changes(&self.repo, wt, &self.base)
            .map_err(|e| GoalError::state(e.to_string(), "check the task's worktree"))?
            .into_iter()
            .map(|c| c.path)
            .collect::<Vec<_>>();
        let outcome = TaskOutcome {
            task_id: task.id.clone(),
            changed_files,
            evidence: report.evidence.clone(),
            checks,
        };
        self.log(
            events::OMK,
            &events::TaskOutcome {
                task_id: task.id.clone(),
                outcome: outcome.clone(),
            },
        );
        Ok(outcome)
    }
}

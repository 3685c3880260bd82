//! The exec agent: any command, run with `sh -c` in the task's worktree.
//!
//! The command gets the task as JSON on stdin and `OMK_GOAL_ID`,
//! `OMK_TASK_ID`, `OMK_TASK_ATTEMPT`, `OMK_WORKTREE` and `OMK_PHASE`
//! (`plan` or `execute`) in its environment. On stdout, lines
//! `OMK_TASK_PROPOSAL: {json}` propose follow-up tasks (when planning, the
//! goal's first tasks), `OMK_EVIDENCE: {json}` offer evidence for a
//! criterion, and `OMK_USAGE: {"tokens": N, "usd_micros": M}` report spend.
//!
//! Starting the command is an action the gates judge (`run-command`); what
//! it does afterwards is not asked for one step at a time, so this backend
//! has no live gating: the changed files are still judged at the outcome,
//! and the proof says the gap.

use omk_gate_sdk::TaskProposal;
use serde_json::json;

use super::process::run_shell;
use super::{AgentError, Backend, BoxFuture, Brief, Hooks, Job, Report, read_protocol_line};

/// The exec backend.
#[derive(Debug)]
pub struct Exec {
    command: String,
}

impl Exec {
    pub fn new(command: &str) -> Result<Exec, AgentError> {
        if command.trim().is_empty() {
            return Err(AgentError {
                agent: "exec".into(),
                message: "the command is empty".into(),
                help: Some("pass `--command \"CMD\"` with the program to run for each task".into()),
            });
        }
        Ok(Exec {
            command: command.to_owned(),
        })
    }
}

impl Backend for Exec {
    fn client(&self) -> (crate::sandbox::ClientState, Option<String>) {
        (
            crate::sandbox::ClientState::default(),
            Some(self.command.clone()),
        )
    }

    fn name(&self) -> &'static str {
        "exec"
    }

    fn live_gating(&self) -> bool {
        false
    }

    fn plan<'a>(
        &'a self,
        brief: &'a Brief,
        hooks: &'a dyn Hooks,
    ) -> BoxFuture<'a, Result<Vec<TaskProposal>, String>> {
        Box::pin(async move {
            let env = brief.env();
            let stdin = serde_json::to_vec(brief).unwrap_or_default();
            let mut report = Report::default();
            let f = run_shell(
                &self.command,
                &brief.dir,
                &env,
                &brief.confinement,
                Some(stdin),
                super::plan_deadline(),
                &|pgid| hooks.process_started(pgid),
                &mut |line| {
                    if let Some(problem) = read_protocol_line(line, &mut report) {
                        hooks.note("agent_protocol_error", json!({"problem": problem}));
                    }
                },
            )
            .await;
            if !f.success() {
                return Err(match f.spawn_error {
                    Some(e) => e,
                    None if f.timed_out => format!("planning ran past {}s", super::PLAN_SECS),
                    None => format!(
                        "planning exited with {:?}: {}",
                        f.exit_code,
                        crate::text::clip(&f.output_tail, 500)
                    ),
                });
            }
            Ok(report.proposals)
        })
    }

    fn run<'a>(&'a self, job: &'a Job, hooks: &'a dyn Hooks) -> BoxFuture<'a, Report> {
        Box::pin(async move {
            if let Some(refused) = super::refuse_start(hooks, job, &self.command, "exec agent") {
                return refused;
            }
            let stdin = serde_json::to_vec(&job.task).unwrap_or_default();
            let mut report = Report::default();
            let f = run_shell(
                &self.command,
                &job.worktree,
                &job.env(),
                &job.confinement,
                Some(stdin),
                job.deadline,
                &|pgid| hooks.process_started(pgid),
                &mut |line| {
                    if let Some(problem) = read_protocol_line(line, &mut report) {
                        hooks.note(
                            "agent_protocol_error",
                            json!({"task_id": job.task.id, "problem": problem}),
                        );
                    }
                },
            )
            .await;
            report.exit_code = f.exit_code;
            report.timed_out = f.timed_out;
            report.output_tail = f.spawn_error.unwrap_or(f.output_tail);
            report
        })
    }
}

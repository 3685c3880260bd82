//! Kimi Code's print mode: `kimi -p PROMPT --output-format stream-json`.
//!
//! Kimi approves its own actions in this mode, so nothing is asked while it
//! works: starting it is the one action judged, the changed files are
//! judged at the outcome, and the proof records that live gating was off.
//! The JSON lines it prints become notes (tool calls) and the final message
//! (the last assistant content).

use omk_gate_sdk::TaskProposal;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Backend, BoxFuture, Brief, Hooks, Job, Place, Report, launch_command, prompt};

/// The print-mode backend.
#[derive(Debug)]
pub struct KimiPrint {
    command: Option<String>,
}

impl KimiPrint {
    pub fn new(command: Option<&str>) -> KimiPrint {
        KimiPrint {
            command: command.map(str::to_owned),
        }
    }

    async fn session(
        &self,
        place: &Place<'_>,
        text: &str,
        deadline: Instant,
        hooks: &dyn Hooks,
        task: Option<&str>,
    ) -> (Report, String) {
        let mut launch = launch_command(
            "kimi-print",
            &super::clients::KIMI,
            self.command.as_deref(),
            &["-p", text, "--output-format", "stream-json"],
        );
        launch.env.extend(super::clients::kimi_quiet_env());
        let mut report = Report::default();
        let mut agent = match launch.spawn(place, hooks) {
            Ok(a) => a,
            Err(e) => {
                report.output_tail = e;
                return (report, String::new());
            }
        };
        drop(agent.stdin.take());
        let Some(mut lines) = agent.lines() else {
            return (report, String::new());
        };
        let mut last = String::new();
        loop {
            tokio::select! {
                line = lines.next_line() => {
                    let Ok(Some(line)) = line else { break };
                    let Ok(msg) = serde_json::from_str::<Value>(&line) else { continue };
                    if msg["role"] == "assistant" {
                        for call in msg["tool_calls"].as_array().into_iter().flatten() {
                            hooks.note("tool_call", json!({"task_id": task, "id": call["id"],
                                "title": call["function"]["name"],
                                "input": crate::text::clip(call["function"]["arguments"].as_str().unwrap_or(""), 1000)}));
                        }
                        if let Some(t) = msg["content"].as_str().filter(|t| !t.is_empty()) {
                            last = t.to_owned();
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    report.timed_out = true;
                    break;
                }
            }
        }
        report.exit_code = if report.timed_out {
            None
        } else {
            agent.finish(std::time::Duration::from_secs(5)).await
        };
        report.output_tail = agent.stderr_tail();
        (report, last)
    }
}

impl Backend for KimiPrint {
    fn client(&self) -> (crate::sandbox::ClientState, Option<String>) {
        let c = &super::clients::KIMI;
        (c.state, Some(c.command(self.command.as_deref())))
    }

    fn name(&self) -> &'static str {
        "kimi-print"
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
            let deadline = super::plan_deadline();
            let (report, last) = self
                .session(&brief.place(), &prompt::plan(brief), deadline, hooks, None)
                .await;
            if !report.succeeded() {
                return Err(format!(
                    "Kimi did not plan (exit {:?}): {}",
                    report.exit_code,
                    crate::text::clip(&report.output_tail, 500)
                ));
            }
            Ok(prompt::read_plan(&last, hooks))
        })
    }

    fn run<'a>(&'a self, job: &'a Job, hooks: &'a dyn Hooks) -> BoxFuture<'a, Report> {
        Box::pin(async move {
            let shown = format!("{} -p …", self.command.as_deref().unwrap_or("kimi"));
            let detail = "start Kimi Code in print mode (it approves its own actions)";
            if let Some(refused) = super::refuse_start(hooks, job, &shown, detail) {
                return refused;
            }
            let (mut report, last) = self
                .session(
                    &job.place(),
                    &prompt::task(job),
                    job.deadline,
                    hooks,
                    Some(&job.task.id),
                )
                .await;
            let stopped = match (report.timed_out, report.exit_code) {
                (true, _) => "stopped at the deadline".to_owned(),
                (false, c) => format!("exit {c:?}"),
            };
            let stderr = std::mem::take(&mut report.output_tail);
            prompt::read_final(&last, &stopped, &mut report, hooks, &job.task.id);
            if !report.succeeded() {
                // The reason last: it is the line a failed task is reported with.
                let why = stderr
                    .lines()
                    .rev()
                    .find(|l| l.contains("error"))
                    .unwrap_or("");
                report.output_tail = format!("{stderr}\n{stopped}: {why}");
            }
            report
        })
    }
}

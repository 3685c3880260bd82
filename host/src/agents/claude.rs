//! The Claude backend: Claude Code (npm `@anthropic-ai/claude-code`, a
//! native binary), gated live through its stdio permission channel.
//!
//! omk runs `claude -p --input-format stream-json --output-format
//! stream-json --verbose --permission-prompt-tool stdio` in the task's
//! worktree, in Claude's `default` permission mode, with `Read` allowed and
//! every `Bash` command made to ask (a settings file omk writes outside the
//! worktree). Every `can_use_tool` control request becomes actions the
//! gates judge: `Write`/`Edit`/`MultiEdit`/`NotebookEdit` → a write of the
//! file, `Bash` → the command, `WebFetch` → the URL, anything else →
//! `other`. omk answers `allow` (with the input unchanged) or `deny` with the
//! gate's reason, which Claude hands to the model as the tool's error.
//!
//! The final `result` line gives the final message, tokens
//! (input + output, cache included) and `total_cost_usd`. At the deadline
//! omk sends an `interrupt` control request, closes Claude's input and,
//! after a grace period, kills its process group.

use std::time::Duration;

use omk_gate_sdk::{ActionKind, TaskProposal};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::judge::Judge;
use super::turn::TurnClock;
use super::{
    AgentError, Backend, BoxFuture, Brief, Hooks, Job, Place, Report, launch_command, prompt, stdio,
};

/// Settings that make every shell command ask (Claude otherwise runs
/// read-only commands without asking).
const SETTINGS: &str = r#"{"permissions":{"ask":["Bash"]}}"#;

/// The Claude backend.
#[derive(Debug)]
pub struct Claude {
    command: Option<String>,
}

impl Claude {
    pub fn new(command: Option<&str>) -> Result<Claude, AgentError> {
        Ok(Claude {
            command: command.map(str::to_owned),
        })
    }

    async fn session(
        &self,
        place: &Place<'_>,
        text: String,
        deadline: Instant,
        hooks: &dyn Hooks,
        task: Option<&str>,
    ) -> Outcome {
        let (dir, env) = (place.dir, place.env.as_slice());
        let in_dir = place
            .confinement
            .handed_dir()
            .map(std::path::Path::to_owned)
            .unwrap_or_else(std::env::temp_dir);
        let settings = match tempfile::Builder::new()
            .prefix("omk-claude-settings")
            .suffix(".json")
            .permissions(crate::atomic::permissions(0o644))
            .tempfile_in(in_dir)
            .and_then(|mut f| {
                use std::io::Write;
                f.write_all(SETTINGS.as_bytes())?;
                Ok(f)
            }) {
            Ok(f) => f,
            Err(e) => return Outcome::failed(format!("cannot write Claude's settings file: {e}")),
        };
        let settings_path = settings.path().display().to_string();
        let launch = launch_command(
            "claude",
            &super::clients::CLAUDE,
            self.command.as_deref(),
            &[
                "-p",
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-prompt-tool",
                "stdio",
                "--permission-mode",
                "default",
                "--allowedTools",
                "Read",
                "--settings",
                &settings_path,
            ],
        );
        let mut env = env.to_vec();
        env.extend([
            (
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".to_owned(),
                "1".to_owned(),
            ),
            ("DISABLE_AUTOUPDATER".to_owned(), "1".to_owned()),
        ]);
        let mut agent = match stdio::spawn(
            &launch.program,
            &launch.args,
            dir,
            &env,
            place.confinement,
            &|pgid| hooks.process_started(pgid),
        ) {
            Ok(a) => a,
            Err(e) => return Outcome::failed(e),
        };
        let Some(mut lines) = agent.lines() else {
            return Outcome::failed("Claude's stdout is not piped".into());
        };
        let mut out = Outcome::default();
        let sent = async {
            agent
                .send(&json!({"type": "control_request", "request_id": "omk-init",
                               "request": {"subtype": "initialize"}}))
                .await?;
            agent
                .send(
                    &json!({"type": "user", "session_id": "", "parent_tool_use_id": null,
                               "message": {"role": "user", "content": text}}),
                )
                .await
        }
        .await;
        if let Err(e) = sent {
            out.error = Some(format!("cannot talk to Claude: {e}"));
        }
        let mut clock = TurnClock::new(deadline);
        while out.error.is_none() {
            tokio::select! {
                line = lines.next_line() => {
                    let Ok(Some(line)) = line else { break };
                    let Ok(msg) = serde_json::from_str::<Value>(&line) else { continue };
                    match msg["type"].as_str() {
                        Some("control_request") if msg["request"]["subtype"] == "can_use_tool" => {
                            let answer = decide(&msg["request"], hooks, task);
                            let reply = json!({"type": "control_response", "response": {
                                "subtype": "success", "request_id": msg["request_id"], "response": answer}});
                            if agent.send(&reply).await.is_err() {
                                break;
                            }
                        }
                        Some("assistant") => {
                            for block in msg["message"]["content"].as_array().into_iter().flatten() {
                                if block["type"] == "tool_use" {
                                    hooks.note("tool_call", json!({"task_id": task, "id": block["id"],
                                        "title": block["name"], "input": clip_value(&block["input"])}));
                                } else if block["type"] == "text"
                                    && let Some(t) = block["text"].as_str()
                                {
                                    out.last_text = t.to_owned();
                                }
                            }
                        }
                        Some("system") if msg["subtype"] == "api_retry" => {
                            hooks.note("model_retry", json!({"task_id": task, "attempt": msg["attempt"],
                                "status": msg["error_status"], "error": msg["error"]}));
                        }
                        Some("result") => {
                            out.read_result(&msg);
                            hooks.note("usage", json!({"task_id": task, "usage": msg["usage"],
                                "total_cost_usd": msg["total_cost_usd"]}));
                            // One turn: closing the input ends the session.
                            drop(agent.stdin.take());
                        }
                        _ => {}
                    }
                }
                _ = clock.deadline() => {
                    out.timed_out = true;
                    let _ = agent.send(&json!({"type": "control_request", "request_id": "omk-deadline",
                                               "request": {"subtype": "interrupt"}})).await;
                    drop(agent.stdin.take());
                    clock.cancelled();
                }
                _ = clock.grace_over() => break,
            }
        }
        out.exit_code = agent.finish(Duration::from_secs(3)).await;
        out.stderr_tail = agent.stderr_tail();
        out
    }
}

/// What a Claude session came to.
#[derive(Debug, Default)]
struct Outcome {
    error: Option<String>,
    timed_out: bool,
    result: Option<String>,
    is_error: bool,
    last_text: String,
    tokens: u64,
    usd_micros: u64,
    exit_code: Option<i32>,
    stderr_tail: String,
}

impl Outcome {
    fn failed(e: String) -> Outcome {
        Outcome {
            error: Some(e),
            ..Default::default()
        }
    }

    fn read_result(&mut self, msg: &Value) {
        let u = &msg["usage"];
        let n = |k: &str| u[k].as_u64().unwrap_or(0);
        self.tokens = n("input_tokens")
            .saturating_add(n("output_tokens"))
            .saturating_add(n("cache_creation_input_tokens"))
            .saturating_add(n("cache_read_input_tokens"));
        self.usd_micros = prompt::usd_micros(msg["total_cost_usd"].as_f64().unwrap_or(0.0));
        self.is_error = msg["is_error"].as_bool().unwrap_or(false);
        self.result = msg["result"].as_str().map(str::to_owned);
    }

    fn message(&self) -> &str {
        self.result.as_deref().unwrap_or(&self.last_text)
    }

    fn into_report(self, hooks: &dyn Hooks, task: &str) -> Report {
        let ok = self.error.is_none() && self.result.is_some() && !self.is_error && !self.timed_out;
        let stopped = if let Some(e) = &self.error {
            e.clone()
        } else if self.timed_out {
            "interrupted at the deadline".into()
        } else if self.result.is_none() {
            format!("exited with {:?} before its result", self.exit_code)
        } else if self.is_error {
            "an error".into()
        } else {
            "end_turn".into()
        };
        let mut report = Report {
            exit_code: if self.timed_out {
                None
            } else if ok {
                Some(0)
            } else {
                Some(self.exit_code.filter(|c| *c != 0).unwrap_or(1))
            },
            timed_out: self.timed_out,
            tokens: self.tokens,
            usd_micros: self.usd_micros,
            ..Default::default()
        };
        prompt::read_final(self.message(), &stopped, &mut report, hooks, task);
        if !ok {
            // The reason last: it is the line a failed task is reported with.
            report.output_tail = format!(
                "{}\n{}\n{stopped}: {}",
                self.stderr_tail,
                crate::text::clip(self.message(), 2000),
                crate::text::clip(self.message().lines().next().unwrap_or(""), 300)
            );
        }
        report
    }
}

/// Judges a `can_use_tool` request; returns Claude's permission answer.
fn decide(req: &Value, hooks: &dyn Hooks, task: Option<&str>) -> Value {
    let tool = req["tool_name"].as_str().unwrap_or("?");
    let input = &req["input"];
    let (kind, target) = action_of(tool, input);
    let permit = Judge::new(hooks, task).one(kind, target, &format!("can_use_tool: {tool}"));
    match permit.refusal() {
        None => json!({"behavior": "allow", "updatedInput": input}),
        Some(reason) => json!({"behavior": "deny", "message": format!("refused by omk: {reason}")}),
    }
}

/// The action a Claude tool call takes.
fn action_of(tool: &str, input: &Value) -> (ActionKind, String) {
    let s = |k: &str| input[k].as_str().map(str::to_owned);
    match tool {
        "Write" | "Edit" | "MultiEdit" => {
            (ActionKind::WriteFile, s("file_path").unwrap_or_default())
        }
        "NotebookEdit" => (
            ActionKind::WriteFile,
            s("notebook_path").unwrap_or_default(),
        ),
        "Bash" => (ActionKind::RunCommand, s("command").unwrap_or_default()),
        "WebFetch" => (ActionKind::FetchUrl, s("url").unwrap_or_default()),
        other => (
            ActionKind::Other,
            format!("{other} {}", crate::text::clip(&input.to_string(), 300)),
        ),
    }
}

fn clip_value(v: &Value) -> Value {
    let s = v.to_string();
    if s.len() > 1000 {
        Value::String(crate::text::clip(&s, 1000))
    } else {
        v.clone()
    }
}

impl Backend for Claude {
    fn client(&self) -> (crate::sandbox::ClientState, Option<String>) {
        let c = &super::clients::CLAUDE;
        (c.state, Some(c.command(self.command.as_deref())))
    }

    fn name(&self) -> &'static str {
        "claude"
    }

    fn live_gating(&self) -> bool {
        true
    }

    fn plan<'a>(
        &'a self,
        brief: &'a Brief,
        hooks: &'a dyn Hooks,
    ) -> BoxFuture<'a, Result<Vec<TaskProposal>, String>> {
        Box::pin(async move {
            let deadline = super::process::deadline_in(super::PLAN_SECS);
            let out = self
                .session(&brief.place(), prompt::plan(brief), deadline, hooks, None)
                .await;
            match (&out.error, out.is_error, out.result.is_some()) {
                (None, false, true) => Ok(prompt::read_plan(out.message(), hooks)),
                (Some(e), _, _) => Err(e.clone()),
                _ => Err(format!(
                    "Claude did not plan: {}",
                    crate::text::clip(&format!("{}\n{}", out.message(), out.stderr_tail), 500)
                )),
            }
        })
    }

    fn run<'a>(&'a self, job: &'a Job, hooks: &'a dyn Hooks) -> BoxFuture<'a, Report> {
        Box::pin(async move {
            let out = self
                .session(
                    &job.place(),
                    prompt::task(job),
                    job.deadline,
                    hooks,
                    Some(&job.task.id),
                )
                .await;
            out.into_report(hooks, &job.task.id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_become_actions() {
        assert_eq!(
            action_of("Write", &json!({"file_path": "/w/a.md", "content": ""})),
            (ActionKind::WriteFile, "/w/a.md".to_owned())
        );
        assert_eq!(
            action_of("Bash", &json!({"command": "ls"})),
            (ActionKind::RunCommand, "ls".to_owned())
        );
        assert_eq!(
            action_of("Read", &json!({"file_path": "/etc/x"})).0,
            ActionKind::Other
        );
    }

    #[test]
    fn the_result_line_gives_usage_and_cost() {
        let mut o = Outcome::default();
        o.read_result(
            &json!({"type": "result", "is_error": false, "result": "Done.",
            "total_cost_usd": 0.0018, "usage": {"input_tokens": 300, "output_tokens": 60}}),
        );
        assert_eq!((o.tokens, o.usd_micros, o.message()), (360, 1800, "Done."));
    }
}

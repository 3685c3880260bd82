//! The Claude backend: Claude Code (npm `@anthropic-ai/claude-code`, a
//! native binary), gated live through its stdio permission channel.
//!
//! omk runs `claude -p --input-format stream-json --output-format
//! stream-json --verbose --permission-prompt-tool stdio` in the task's
//! worktree, in Claude's `default` permission mode, with every `Bash`
//! command and every read made to ask (a settings file omk writes outside
//! the worktree). Every `can_use_tool` control request becomes actions the
//! gates judge: `Write`/`Edit`/`MultiEdit`/`NotebookEdit` → a write of the
//! file, `Read`/`NotebookRead` → a read of it, `Grep`/`Glob`/`LS` → a read
//! of the directory searched (`.` when none is named), `Bash` → the
//! command, `WebFetch` → the URL, anything else → `other`. omk answers `allow` (with the input unchanged) or `deny` with the
//! gate's reason, which Claude hands to the model as the tool's error.
//!
//! The final `result` line gives the final message, tokens
//! (input + output, cache included) and `total_cost_usd`. At the deadline
//! omk sends an `interrupt` control request, closes Claude's input and,
//! after a grace period, kills its process group.

use std::time::Duration;

use omk_gate_sdk::ActionKind;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::judge::Judge;
use super::turn::{LiveClient, TurnClock, TurnEnd};
use super::{AgentError, BoxFuture, Hooks, Place, launch_command, prompt};

/// Settings that make every shell command and every read ask (Claude
/// otherwise runs read-only commands and reads without asking).
const SETTINGS: &str =
    r#"{"permissions":{"ask":["Bash","Read","Grep","Glob","LS","NotebookRead"]}}"#;

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
    ) -> TurnEnd {
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
            Err(e) => return TurnEnd::failed(format!("cannot write Claude's settings file: {e}")),
        };
        let settings_path = settings.path().display().to_string();
        let mut launch = launch_command(
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
                "--settings",
                &settings_path,
            ],
        );
        launch.env.extend([
            (
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".to_owned(),
                "1".to_owned(),
            ),
            ("DISABLE_AUTOUPDATER".to_owned(), "1".to_owned()),
        ]);
        let mut agent = match launch.spawn(place, hooks) {
            Ok(a) => a,
            Err(e) => return TurnEnd::failed(e),
        };
        let Some(mut lines) = agent.lines() else {
            return TurnEnd::failed("Claude's stdout is not piped".into());
        };
        let mut out = TurnEnd::default();
        // The text of the last assistant message, if no result comes.
        let mut last_text = String::new();
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
        if let Err(e) = &sent {
            out.error = Some(format!("cannot talk to Claude: {e}"));
        }
        let mut clock = TurnClock::new(deadline);
        while sent.is_ok() {
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
                                    last_text = t.to_owned();
                                }
                            }
                        }
                        Some("system") if msg["subtype"] == "api_retry" => {
                            hooks.note("model_retry", json!({"task_id": task, "attempt": msg["attempt"],
                                "status": msg["error_status"], "error": msg["error"]}));
                        }
                        Some("result") => {
                            read_result(&mut out, &msg);
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
        if out.message.is_empty() {
            out.message = last_text;
        }
        out.exit_code = agent.finish(Duration::from_secs(3)).await;
        out.stderr_tail = agent.stderr_tail();
        out
    }
}

/// Reads Claude's `result` line: usage, cost, and how the turn ended.
fn read_result(out: &mut TurnEnd, msg: &Value) {
    let u = &msg["usage"];
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    out.tokens = n("input_tokens")
        .saturating_add(n("output_tokens"))
        .saturating_add(n("cache_creation_input_tokens"))
        .saturating_add(n("cache_read_input_tokens"));
    out.usd_micros = prompt::usd_micros(msg["total_cost_usd"].as_f64().unwrap_or(0.0));
    out.message = msg["result"].as_str().unwrap_or_default().to_owned();
    if msg["is_error"] == true {
        let first = out.message.lines().next().unwrap_or("no reason given");
        out.error = Some(format!("Claude: {}", crate::text::clip(first, 300)));
    } else if msg["result"].is_string() {
        out.status = Some("end_turn".into());
    }
}

/// Judges a `can_use_tool` request; returns Claude's permission answer.
fn decide(req: &Value, hooks: &dyn Hooks, task: Option<&str>) -> Value {
    let tool = req["tool_name"].as_str().unwrap_or("?");
    let input = &req["input"];
    let permit =
        Judge::new(hooks, task).all([step_of(tool, input)], &format!("can_use_tool: {tool}"));
    match permit.refusal() {
        None => json!({"behavior": "allow", "updatedInput": input}),
        Some(reason) => json!({"behavior": "deny", "message": format!("refused by omk: {reason}")}),
    }
}

/// The action a Claude tool call takes, an MCP tool's as a tool call.
pub(crate) fn step_of(tool: &str, input: &Value) -> crate::agents::judge::Step {
    crate::agents::judge::Step::mcp(tool, input).unwrap_or_else(|| action_of(tool, input).into())
}

/// The action a Claude tool call takes.
pub(crate) fn action_of(tool: &str, input: &Value) -> (ActionKind, String) {
    let s = |k: &str| input[k].as_str().map(str::to_owned);
    match tool {
        "Write" | "Edit" | "MultiEdit" => {
            (ActionKind::WriteFile, s("file_path").unwrap_or_default())
        }
        "NotebookEdit" => (
            ActionKind::WriteFile,
            s("notebook_path").unwrap_or_default(),
        ),
        "Read" => (ActionKind::ReadFile, s("file_path").unwrap_or_default()),
        "NotebookRead" => (ActionKind::ReadFile, s("notebook_path").unwrap_or_default()),
        "Grep" | "Glob" | "LS" => (
            ActionKind::ReadFile,
            s("path")
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| ".".into()),
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

impl LiveClient for Claude {
    fn name(&self) -> &'static str {
        "claude"
    }

    fn who(&self) -> &str {
        "Claude"
    }

    fn done(&self) -> &'static str {
        "end_turn"
    }

    fn start(&self) -> (String, String) {
        let shown = format!(
            "{} -p …",
            super::clients::CLAUDE.command(self.command.as_deref())
        );
        (shown, "start Claude Code in stream-json print mode".into())
    }

    fn client(&self) -> (crate::sandbox::ClientState, Option<String>) {
        let c = &super::clients::CLAUDE;
        (c.state, Some(c.command(self.command.as_deref())))
    }

    fn turn<'a>(
        &'a self,
        place: Place<'a>,
        text: String,
        deadline: Instant,
        hooks: &'a dyn Hooks,
        task: Option<&'a str>,
    ) -> BoxFuture<'a, TurnEnd> {
        Box::pin(async move { self.session(&place, text, deadline, hooks, task).await })
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
            action_of("Read", &json!({"file_path": "/etc/x"})),
            (ActionKind::ReadFile, "/etc/x".to_owned())
        );
        assert_eq!(
            action_of("Grep", &json!({"pattern": "key", "path": "src"})),
            (ActionKind::ReadFile, "src".to_owned())
        );
        assert_eq!(
            action_of("Glob", &json!({"pattern": "**/*.rs"})),
            (ActionKind::ReadFile, ".".to_owned())
        );
        assert_eq!(action_of("TodoWrite", &json!({})).0, ActionKind::Other);
    }

    #[test]
    fn the_result_line_gives_usage_and_cost() {
        let mut o = TurnEnd::default();
        read_result(
            &mut o,
            &json!({"type": "result", "is_error": false, "result": "Done.",
            "total_cost_usd": 0.0018, "usage": {"input_tokens": 300, "output_tokens": 60}}),
        );
        assert_eq!((o.tokens, o.usd_micros), (360, 1800));
        assert_eq!(
            (o.message.as_str(), o.status.as_deref()),
            ("Done.", Some("end_turn"))
        );
        let mut o = TurnEnd::default();
        read_result(
            &mut o,
            &json!({"type": "result", "is_error": true, "result": "API Error: 500\nmore"}),
        );
        assert_eq!(o.error.as_deref(), Some("Claude: API Error: 500"));
    }
}

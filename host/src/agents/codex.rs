//! The Codex backend: Codex (npm `@openai/codex`, a native binary), gated
//! live through `codex app-server`.
//!
//! omk speaks the app server's JSON-RPC (one object a line, no `jsonrpc`
//! field): `initialize`, `initialized`, `thread/start` in the worktree with
//! approval policy `untrusted` and the `workspace-write` sandbox — the pair
//! that makes Codex ask before every file change and every command — then
//! `turn/start` with the task prompt. Codex announces each change as an
//! `item/started` `fileChange` item (absolute paths, add/update/delete, a
//! move target) and then asks `item/fileChange/requestApproval` for it by
//! item id; omk judges every path (a move is a write of the target and a
//! delete of the source) and answers `accept` only if all are allowed, else
//! `decline`. A change omk has not seen announced is declined.
//! `item/commandExecution/requestApproval` is judged as the command. Other
//! requests are declined.
//!
//! Tokens come from `thread/tokenUsage/updated` (the thread's total); Codex
//! reports no cost, so USD stays 0 and the budget counts tokens. The turn's
//! last agent message is the final message. At the deadline omk sends
//! `turn/interrupt`, waits briefly for `turn/completed`, then kills the
//! process group.

use std::collections::HashMap;
use std::time::Duration;

use omk_gate_sdk::{ActionKind, TaskProposal};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::judge::Judge;
use super::stdio::{self, Outcome};
use super::turn::TurnClock;
use super::{
    AgentError, Backend, BoxFuture, Brief, Hooks, Job, Place, Report, launch_command, prompt,
};

/// The Codex backend.
#[derive(Debug)]
pub struct Codex {
    command: Option<String>,
}

impl Codex {
    pub fn new(command: Option<&str>) -> Result<Codex, AgentError> {
        Ok(Codex {
            command: command.map(str::to_owned),
        })
    }
}

struct Conn {
    agent: stdio::Agent,
    lines: stdio::LineReader,
    next_id: u64,
}

impl Conn {
    /// Sends a request and waits for its response, skipping notifications.
    async fn call(&mut self, method: &str, params: Value, until: Instant) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        self.agent
            .send(&json!({"method": method, "id": id, "params": params}))
            .await
            .map_err(|e| format!("cannot send `{method}` to Codex: {e}"))?;
        loop {
            let line = tokio::time::timeout_at(until, self.lines.next_line())
                .await
                .map_err(|_| format!("Codex did not answer `{method}` in time"))?;
            let Ok(Some(line)) = line else {
                return Err(format!("Codex exited before answering `{method}`"));
            };
            let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if msg["id"] == id && msg.get("method").is_none() {
                if let Some(e) = msg.get("error") {
                    return Err(format!(
                        "`{method}` failed: {}",
                        e["message"].as_str().unwrap_or("unknown error")
                    ));
                }
                return Ok(msg["result"].clone());
            }
        }
    }
}

impl Codex {
    async fn session(
        &self,
        place: &Place<'_>,
        text: String,
        deadline: Instant,
        hooks: &dyn Hooks,
        task: Option<&str>,
    ) -> Outcome {
        let (dir, env) = (place.dir, place.env.as_slice());
        let launch = launch_command(
            "codex",
            &super::clients::CODEX,
            self.command.as_deref(),
            &["app-server"],
        );
        let mut agent = match stdio::spawn(
            &launch.program,
            &launch.args,
            dir,
            env,
            place.confinement,
            &|pgid| hooks.process_started(pgid),
        ) {
            Ok(a) => a,
            Err(e) => {
                return Outcome::failed(e);
            }
        };
        let Some(lines) = agent.lines() else {
            return Outcome::failed("Codex's stdout is not piped".into());
        };
        let mut conn = Conn {
            agent,
            lines,
            next_id: 0,
        };
        let mut out = Outcome::default();
        let mut clock = TurnClock::new(deadline);
        let start_until = clock.start_until();
        let started = async {
            conn.call(
                "initialize",
                json!({"clientInfo": {"name": "omk", "title": "omk", "version": env!("CARGO_PKG_VERSION")}}),
                start_until,
            )
            .await?;
            conn.agent
                .send(&json!({"method": "initialized"}))
                .await
                .map_err(|e| format!("cannot talk to Codex: {e}"))?;
            let thread = conn
                .call(
                    "thread/start",
                    json!({"cwd": dir, "approvalPolicy": "untrusted", "sandbox": "workspace-write"}),
                    start_until,
                )
                .await?;
            let thread_id = thread["thread"]["id"].as_str().unwrap_or_default().to_owned();
            let turn = conn
                .call(
                    "turn/start",
                    json!({"threadId": thread_id, "input": [{"type": "text", "text": text}]}),
                    start_until,
                )
                .await?;
            let turn_id = turn["turn"]["id"].as_str().unwrap_or_default().to_owned();
            Ok::<_, String>((thread_id, turn_id))
        }
        .await;
        let (thread_id, turn_id) = match started {
            Ok(ids) => ids,
            Err(e) => {
                out.error = Some(e);
                out.timed_out = clock.passed();
                let _ = conn.agent.finish(Duration::from_secs(1)).await;
                out.stderr_tail = conn.agent.stderr_tail();
                return out;
            }
        };
        // What item/started said of each file change, by item id.
        let mut changes: HashMap<String, Value> = HashMap::new();
        loop {
            tokio::select! {
                line = conn.lines.next_line() => {
                    let Ok(Some(line)) = line else { break };
                    let Ok(msg) = serde_json::from_str::<Value>(&line) else { continue };
                    let method = msg["method"].as_str().unwrap_or("");
                    let params = &msg["params"];
                    if msg.get("id").is_some() && !method.is_empty() {
                        let answer = match method {
                            "item/fileChange/requestApproval" => {
                                let item = params["itemId"].as_str().and_then(|id| changes.get(id));
                                json!({"decision": judge_change(item, hooks, task, clock.stopping())})
                            }
                            "item/commandExecution/requestApproval" => {
                                json!({"decision": judge_command(params, hooks, task, clock.stopping())})
                            }
                            _ => {
                                hooks.note("request_declined", json!({"task_id": task, "method": method}));
                                json!({"decision": "decline"})
                            }
                        };
                        let _ = conn.agent.send(&json!({"id": msg["id"], "result": answer})).await;
                        continue;
                    }
                    match method {
                        "item/started" => {
                            let item = &params["item"];
                            match item["type"].as_str() {
                                Some("fileChange") => {
                                    if let Some(id) = item["id"].as_str() {
                                        changes.insert(id.to_owned(), item.clone());
                                    }
                                    hooks.note("tool_call", json!({"task_id": task, "id": item["id"],
                                        "title": "file change", "changes": paths_of(item)}));
                                }
                                Some("commandExecution") => {
                                    hooks.note("tool_call", json!({"task_id": task, "id": item["id"],
                                        "title": "command", "command": item["command"]}));
                                }
                                _ => {}
                            }
                        }
                        "item/completed" => {
                            let item = &params["item"];
                            match item["type"].as_str() {
                                Some("agentMessage") => {
                                    if let Some(t) = item["text"].as_str() {
                                        out.message = t.to_owned();
                                    }
                                }
                                Some("fileChange" | "commandExecution") => {
                                    hooks.note("tool_call_update", json!({"task_id": task, "id": item["id"],
                                        "status": item["status"]}));
                                }
                                _ => {}
                            }
                        }
                        "thread/tokenUsage/updated" => {
                            let total = &params["tokenUsage"]["total"];
                            out.tokens = total["totalTokens"].as_u64().unwrap_or(out.tokens);
                            hooks.note("usage", json!({"task_id": task, "usage": total}));
                        }
                        "error" => {
                            if params["willRetry"] != true {
                                out.error = Some(format!("Codex: {}",
                                    params["error"]["message"].as_str().unwrap_or("an error")));
                            } else {
                                hooks.note("model_retry", json!({"task_id": task,
                                    "error": params["error"]["message"]}));
                            }
                        }
                        "turn/completed" => {
                            let turn = &params["turn"];
                            out.status = turn["status"].as_str().map(str::to_owned);
                            if let Some(m) = turn["error"]["message"].as_str() {
                                out.error.get_or_insert_with(|| format!("Codex: {m}"));
                            }
                            break;
                        }
                        _ => {}
                    }
                }
                _ = clock.deadline() => {
                    out.timed_out = true;
                    conn.next_id += 1;
                    let _ = conn.agent.send(&json!({"method": "turn/interrupt", "id": conn.next_id,
                        "params": {"threadId": thread_id, "turnId": turn_id}})).await;
                    clock.cancelled();
                }
                _ = clock.grace_over() => break,
            }
        }
        let _ = conn.agent.finish(Duration::from_secs(2)).await;
        out.stderr_tail = conn.agent.stderr_tail();
        out
    }
}

/// `[(kind, absolute path)]` of a fileChange item.
fn paths_of(item: &Value) -> Vec<(ActionKind, String)> {
    let mut v = Vec::new();
    for c in item["changes"].as_array().into_iter().flatten() {
        let Some(path) = c["path"].as_str() else {
            continue;
        };
        match c["kind"]["type"].as_str() {
            Some("delete") => v.push((ActionKind::DeleteFile, path.to_owned())),
            Some("update") => match c["kind"]["move_path"].as_str() {
                Some(to) => {
                    v.push((ActionKind::WriteFile, to.to_owned()));
                    v.push((ActionKind::DeleteFile, path.to_owned()));
                }
                None => v.push((ActionKind::WriteFile, path.to_owned())),
            },
            _ => v.push((ActionKind::WriteFile, path.to_owned())),
        }
    }
    v
}

fn judge_change(
    item: Option<&Value>,
    hooks: &dyn Hooks,
    task: Option<&str>,
    stopping: bool,
) -> &'static str {
    let (Some(item), false) = (item, stopping) else {
        return "decline";
    };
    let actions = paths_of(item);
    if actions.is_empty() {
        return "decline";
    }
    let judge = Judge::new(hooks, task);
    if judge
        .all(actions, "item/fileChange/requestApproval")
        .allowed()
    {
        "accept"
    } else {
        "decline"
    }
}

fn judge_command(
    params: &Value,
    hooks: &dyn Hooks,
    task: Option<&str>,
    stopping: bool,
) -> &'static str {
    if stopping {
        return "decline";
    }
    let raw = params["command"].as_str().unwrap_or_default();
    let permit = Judge::new(hooks, task).one(
        ActionKind::RunCommand,
        inner_command(raw),
        "item/commandExecution/requestApproval",
    );
    if permit.allowed() {
        "accept"
    } else {
        "decline"
    }
}

/// The command inside Codex's `/bin/bash -lc '…'` wrapper.
fn inner_command(raw: &str) -> String {
    let Some(rest) = raw.strip_prefix("/bin/bash -lc ") else {
        return raw.to_owned();
    };
    match rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        Some(inner) => inner.replace("'\\''", "'"),
        None => rest.to_owned(),
    }
}

impl Backend for Codex {
    fn client(&self) -> (crate::sandbox::ClientState, Option<String>) {
        let c = &super::clients::CODEX;
        (c.state, Some(c.command(self.command.as_deref())))
    }

    fn name(&self) -> &'static str {
        "codex"
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
            out.into_plan("completed", "Codex", hooks)
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
            out.into_report("completed", "Codex", hooks, &job.task.id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_changes_become_actions() {
        let item = json!({"type": "fileChange", "id": "c1", "changes": [
            {"path": "/w/a.md", "kind": {"type": "add"}, "diff": "x"},
            {"path": "/w/b.md", "kind": {"type": "update", "move_path": "/w/c.md"}},
            {"path": "/w/d.md", "kind": {"type": "delete"}}]});
        assert_eq!(
            paths_of(&item),
            vec![
                (ActionKind::WriteFile, "/w/a.md".to_owned()),
                (ActionKind::WriteFile, "/w/c.md".to_owned()),
                (ActionKind::DeleteFile, "/w/b.md".to_owned()),
                (ActionKind::DeleteFile, "/w/d.md".to_owned()),
            ]
        );
    }

    #[test]
    fn the_shell_wrapper_is_taken_off_commands() {
        assert_eq!(inner_command("/bin/bash -lc ls"), "ls");
        assert_eq!(
            inner_command("/bin/bash -lc 'echo hi > out.txt'"),
            "echo hi > out.txt"
        );
        assert_eq!(inner_command("/bin/bash -lc 'it'\\''s'"), "it's");
        assert_eq!(inner_command("make"), "make");
    }
}

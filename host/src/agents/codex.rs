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

use omk_gate_sdk::ActionKind;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::judge::Judge;
use super::rpc::{CallError, Dialect, Ignore, Peer, Rpc};
use super::turn::{LiveClient, TurnClock, TurnEnd};
use super::{AgentError, BoxFuture, Hooks, Place, launch_command};

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

/// Codex's JSON-RPC: no `jsonrpc` field, numbered ids.
const DIALECT: Dialect = Dialect {
    who: "Codex",
    jsonrpc: false,
    id_prefix: None,
};

/// One turn as Codex tells it: its approvals judged, its items read.
struct Turn<'a> {
    hooks: &'a dyn Hooks,
    task: Option<&'a str>,
    /// What item/started said of each file change, by item id.
    changes: HashMap<String, Value>,
    out: TurnEnd,
    ended: bool,
    stopping: bool,
}

impl Peer for Turn<'_> {
    fn request(&mut self, method: &str, params: &Value) -> Option<Result<Value, (i64, String)>> {
        let (hooks, task) = (self.hooks, self.task);
        let decision = match method {
            "item/fileChange/requestApproval" => {
                let item = params["itemId"]
                    .as_str()
                    .and_then(|id| self.changes.get(id));
                judge_change(item, hooks, task, self.stopping)
            }
            "item/commandExecution/requestApproval" => {
                judge_command(params, hooks, task, self.stopping)
            }
            _ => {
                hooks.note(
                    "request_declined",
                    json!({"task_id": task, "method": method}),
                );
                "decline"
            }
        };
        Some(Ok(json!({ "decision": decision })))
    }

    fn notification(&mut self, method: &str, params: &Value) {
        let (hooks, task, out) = (self.hooks, self.task, &mut self.out);
        match method {
            "item/started" => {
                let item = &params["item"];
                match item["type"].as_str() {
                    Some("fileChange") => {
                        if let Some(id) = item["id"].as_str() {
                            self.changes.insert(id.to_owned(), item.clone());
                        }
                        hooks.note(
                            "tool_call",
                            json!({"task_id": task, "id": item["id"],
                                   "title": "file change", "changes": paths_of(item)}),
                        );
                    }
                    Some("commandExecution") => {
                        hooks.note(
                            "tool_call",
                            json!({"task_id": task, "id": item["id"],
                                   "title": "command", "command": item["command"]}),
                        );
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
                        hooks.note(
                            "tool_call_update",
                            json!({"task_id": task, "id": item["id"], "status": item["status"]}),
                        );
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
                let message = &params["error"]["message"];
                if params["willRetry"] != true {
                    out.error = Some(format!("Codex: {}", message.as_str().unwrap_or("an error")));
                } else {
                    hooks.note("model_retry", json!({"task_id": task, "error": message}));
                }
            }
            "turn/completed" => {
                let turn = &params["turn"];
                out.status = turn["status"].as_str().map(str::to_owned);
                if let Some(m) = turn["error"]["message"].as_str() {
                    out.error.get_or_insert_with(|| format!("Codex: {m}"));
                }
                self.ended = true;
            }
            _ => {}
        }
    }

    fn ended(&self) -> bool {
        self.ended
    }

    fn stopping(&mut self) {
        self.stopping = true;
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
    ) -> TurnEnd {
        let dir = place.dir;
        let launch = launch_command(
            "codex",
            &super::clients::CODEX,
            self.command.as_deref(),
            &["app-server"],
        );
        let started = launch.spawn(place, hooks);
        let mut rpc = match started.and_then(|agent| Rpc::new(agent, DIALECT)) {
            Ok(rpc) => rpc,
            Err(e) => return TurnEnd::failed(e),
        };
        let mut clock = TurnClock::new(deadline);
        let until = clock.start_until();
        let setup = async {
            let client =
                json!({"name": "omk", "title": "omk", "version": env!("CARGO_PKG_VERSION")});
            let call = |m: &'static str| move |e: CallError| e.describe(m);
            rpc.call(
                "initialize",
                json!({ "clientInfo": client }),
                until,
                &mut Ignore,
            )
            .await
            .map_err(call("initialize"))?;
            rpc.notify("initialized", None)
                .await
                .map_err(call("initialized"))?;
            let params =
                json!({"cwd": dir, "approvalPolicy": "untrusted", "sandbox": "workspace-write"});
            let thread = rpc
                .call("thread/start", params, until, &mut Ignore)
                .await
                .map_err(call("thread/start"))?;
            let thread_id = thread["thread"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let input = json!([{"type": "text", "text": text}]);
            let params = json!({"threadId": thread_id, "input": input});
            let turn = rpc
                .call("turn/start", params, until, &mut Ignore)
                .await
                .map_err(call("turn/start"))?;
            let turn_id = turn["turn"]["id"].as_str().unwrap_or_default().to_owned();
            Ok::<_, String>((thread_id, turn_id))
        }
        .await;
        let (thread_id, turn_id) = match setup {
            Ok(ids) => ids,
            Err(e) => {
                let mut out = TurnEnd::failed(e);
                out.timed_out = clock.passed();
                let _ = rpc.agent.finish(Duration::from_secs(1)).await;
                out.stderr_tail = rpc.agent.stderr_tail();
                return out;
            }
        };
        let mut turn = Turn {
            hooks,
            task,
            changes: HashMap::new(),
            out: TurnEnd::default(),
            ended: false,
            stopping: false,
        };
        let interrupt = json!({"threadId": thread_id, "turnId": turn_id});
        rpc.turn(&mut turn, &mut clock, ("turn/interrupt", interrupt))
            .await;
        let mut out = turn.out;
        out.timed_out = clock.stopping();
        out.exit_code = rpc.agent.finish(Duration::from_secs(2)).await;
        out.stderr_tail = rpc.agent.stderr_tail();
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

/// The command inside Codex's `/bin/bash -lc …` wrapper: Codex shows the
/// argv it runs joined with shell quoting (single quotes, or double quotes
/// with escapes when the text holds a single quote), so the text is the
/// wrapper's third word after quote removal.
fn inner_command(raw: &str) -> String {
    let p = crate::command::parse(raw);
    let wrapped = match p.commands.first() {
        Some(c)
            if c.nesting.is_empty()
                && matches!(
                    c.name(),
                    Some("/bin/bash" | "bash" | "/bin/sh" | "sh" | "/bin/zsh" | "zsh")
                )
                && c.words.len() == 3
                && c.words[1].starts_with('-')
                && c.words[1].contains('c')
                && !c.is_dynamic(2) =>
        {
            Some(c.words[2].clone())
        }
        _ => None,
    };
    wrapped.unwrap_or_else(|| raw.to_owned())
}

impl LiveClient for Codex {
    fn name(&self) -> &'static str {
        "codex"
    }

    fn who(&self) -> &str {
        "Codex"
    }

    fn done(&self) -> &'static str {
        "completed"
    }

    fn start(&self) -> (String, String) {
        let shown = format!(
            "{} app-server",
            super::clients::CODEX.command(self.command.as_deref())
        );
        (shown, "start Codex's app server".into())
    }

    fn client(&self) -> (crate::sandbox::ClientState, Option<String>) {
        let c = &super::clients::CODEX;
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
        assert_eq!(
            inner_command(r#"/bin/bash -lc "echo '{\"a\": 1}' > .claude/settings.json""#),
            r#"echo '{"a": 1}' > .claude/settings.json"#
        );
        assert_eq!(
            inner_command(r#"/bin/bash -lc "bash -c 'rm -rf ~/keep'""#),
            "bash -c 'rm -rf ~/keep'"
        );
    }
}

//! One wire session as omk keeps it: the events read into notes, tokens
//! and the final message; the agent's requests — approvals and
//! `PreToolUse` hooks — judged by the gates and answered; the prompt's
//! response, which ends the turn.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use omk_gate_sdk::ActionKind;
use serde_json::{Value, json};

use super::actions::{Call, approval_actions, tool_actions};
use crate::agents::judge::Judge;
use crate::agents::rpc::{METHOD_NOT_FOUND, Peer};
use crate::agents::{Hooks, prompt, relative_to};

/// Tools that change files or run commands: one that runs without omk
/// having been asked about it is recorded as unjudged.
const ACTING_TOOLS: &[&str] = &["WriteFile", "StrReplaceFile", "Shell"];
/// Tools that only look, which may run while planning.
const READ_ONLY_TOOLS: &[&str] = &[
    "ReadFile",
    "ReadMediaFile",
    "Glob",
    "Grep",
    "Think",
    "SetTodoList",
];

pub struct Session<'a> {
    dir: &'a Path,
    hooks: &'a dyn Hooks,
    task: Option<&'a str>,
    /// Tool calls by agent (`""` for the main one, else a subagent's
    /// `agent_id`: their ids restart per conversation) and id.
    calls: HashMap<(String, String), Call>,
    /// Per agent, the call the next `ToolCallPart` continues.
    last_call: HashMap<String, String>,
    /// The agent's text since its last tool call.
    pub message: String,
    pub tokens: u64,
    /// The tool calls omk was asked about (a hook or an approval), as
    /// (tool, arguments): Kimi runs one of identical calls in a step.
    asked: HashSet<(String, String)>,
    /// Set at the deadline: everything still asked is refused.
    stopping: bool,
    /// The id of omk's `prompt` request, whose response ends the turn.
    pub prompt: Option<Value>,
    /// How the prompt's response said the turn ended.
    pub status: Option<String>,
    pub error: Option<String>,
}

impl<'a> Session<'a> {
    pub fn new(dir: &'a Path, hooks: &'a dyn Hooks, task: Option<&'a str>) -> Session<'a> {
        Session {
            dir,
            hooks,
            task,
            calls: HashMap::new(),
            last_call: HashMap::new(),
            message: String::new(),
            tokens: 0,
            asked: HashSet::new(),
            stopping: false,
            prompt: None,
            status: None,
            error: None,
        }
    }

    /// Reads one `event` notification of the main agent (`agent` `""`) or
    /// of a subagent.
    fn event(&mut self, agent: &str, params: &Value) {
        let payload = &params["payload"];
        let task = self.task;
        let main = agent.is_empty();
        match params["type"].as_str().unwrap_or("") {
            "ContentPart" => {
                if main
                    && payload["type"] == "text"
                    && let Some(t) = payload["text"].as_str()
                {
                    self.message.push_str(t);
                }
            }
            "ToolCall" => {
                if main {
                    prompt::note_message(self.hooks, self.task, &mut self.message);
                }
                let Some(id) = payload["id"].as_str() else {
                    return;
                };
                let call = Call {
                    name: payload["function"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    arguments: payload["function"]["arguments"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                };
                self.hooks.note(
                    "tool_call",
                    json!({"task_id": task, "id": id, "title": call.name,
                           "subagent": (!main).then_some(agent)}),
                );
                self.calls.insert((agent.to_owned(), id.to_owned()), call);
                self.last_call.insert(agent.to_owned(), id.to_owned());
            }
            "ToolCallPart" => {
                if let (Some(part), Some(id)) = (
                    payload["arguments_part"].as_str(),
                    self.last_call.get(agent),
                ) && let Some(call) = self.calls.get_mut(&(agent.to_owned(), id.clone()))
                {
                    call.arguments.push_str(part);
                }
            }
            "ToolResult" => {
                let failed = payload["return_value"]["is_error"] == true;
                let id = payload["tool_call_id"].as_str().unwrap_or("");
                if let Some(call) = self.calls.get(&(agent.to_owned(), id.to_owned()))
                    && !failed
                    && ACTING_TOOLS.contains(&call.name.as_str())
                    && !self.asked.contains(&call.signature())
                {
                    // Kimi approved itself (`default_yolo`) and has no hooks.
                    self.hooks.note(
                        "unjudged_action",
                        json!({"task_id": task, "id": id, "tool": call.name,
                               "subagent": (!main).then_some(agent)}),
                    );
                }
                self.hooks.note(
                    "tool_call_update",
                    json!({"task_id": task, "id": payload["tool_call_id"],
                           "status": if failed { "failed" } else { "completed" },
                           "message": crate::text::clip(payload["return_value"]["message"].as_str().unwrap_or(""), 500)}),
                );
            }
            "StatusUpdate" => {
                // One a step, after the model's answer: each counts.
                let u = &payload["token_usage"];
                if u.is_object() {
                    let n = [
                        "input_other",
                        "output",
                        "input_cache_read",
                        "input_cache_creation",
                    ]
                    .iter()
                    .filter_map(|k| u[*k].as_u64())
                    .fold(0u64, u64::saturating_add);
                    self.tokens = self.tokens.saturating_add(n);
                    self.hooks
                        .note("usage", json!({"task_id": task, "usage": u}));
                }
            }
            "StepRetry" => {
                self.hooks.note(
                    "model_retry",
                    json!({"task_id": task, "step": payload["n"], "error": payload["error_type"],
                           "status_code": payload["status_code"]}),
                );
            }
            "SubagentEvent" => {
                // A foreground subagent's events, nested (its tokens count).
                let sub = payload["agent_id"]
                    .as_str()
                    .or(payload["parent_tool_call_id"].as_str())
                    .unwrap_or("subagent");
                if payload["event"]["type"] != "SubagentEvent" {
                    self.event(&format!("sub:{sub}"), &payload["event"]);
                }
            }
            _ => {}
        }
    }

    /// Answers one agent → client `request`.
    fn answer(&mut self, params: &Value) -> Result<Value, (i64, String)> {
        let payload = &params["payload"];
        let id = payload["id"].as_str().unwrap_or("").to_owned();
        match params["type"].as_str().unwrap_or("") {
            "ApprovalRequest" => {
                let refusal = self.approval(payload);
                Ok(match refusal {
                    None => json!({"request_id": id, "response": "approve"}),
                    Some(reason) => json!({"request_id": id, "response": "reject",
                                           "feedback": format!("refused by omk: {reason}")}),
                })
            }
            "HookRequest" => {
                let refusal = if payload["event"] == "PreToolUse" {
                    self.pre_tool_use(&payload["input_data"])
                } else {
                    None
                };
                Ok(match refusal {
                    None => json!({"request_id": id, "action": "allow", "reason": ""}),
                    Some(reason) => json!({"request_id": id, "action": "block",
                                           "reason": format!("refused by omk: {reason}")}),
                })
            }
            "QuestionRequest" => Ok(json!({"request_id": id, "answers": {}})),
            other => {
                self.hooks.note(
                    "request_declined",
                    json!({"task_id": self.task, "request": other}),
                );
                Err((
                    METHOD_NOT_FOUND,
                    format!(
                        "omk does not answer `{other}` requests (it registers no external tools)"
                    ),
                ))
            }
        }
    }

    /// Judges an approval; `Some(reason)` when refused.
    fn approval(&mut self, req: &Value) -> Option<String> {
        if self.stopping {
            return Some("the task's time is up".into());
        }
        if self.task.is_none() {
            return Some("nothing may change while planning".into());
        }
        let agent = req["agent_id"]
            .as_str()
            .map(|a| format!("sub:{a}"))
            .unwrap_or_default();
        let call_id = req["tool_call_id"].as_str().unwrap_or("").to_owned();
        let call = self.calls.get(&(agent, call_id)).cloned();
        if let Some(c) = &call {
            self.asked.insert(c.signature());
        }
        let detail = format!(
            "wire ApprovalRequest: {} ({})",
            req["sender"].as_str().unwrap_or("?"),
            req["action"].as_str().unwrap_or("?")
        );
        match approval_actions(req, call.as_ref()) {
            Ok(actions) => self.judge(actions, &detail),
            Err(reason) => {
                self.hooks.note(
                    "action_refused",
                    json!({"task_id": self.task, "request": req, "reason": reason}),
                );
                Some(reason)
            }
        }
    }

    /// Judges a `PreToolUse` hook; `Some(reason)` when refused.
    fn pre_tool_use(&mut self, input: &Value) -> Option<String> {
        if self.stopping {
            return Some("the task's time is up".into());
        }
        let name = input["tool_name"].as_str().unwrap_or("");
        let args = &input["tool_input"];
        let actions = match tool_actions(name, args) {
            Ok(a) => a,
            Err(reason) => {
                self.hooks.note(
                    "action_refused",
                    json!({"task_id": self.task, "tool": name,
                           "input": crate::text::clip(&args.to_string(), 1000), "reason": reason}),
                );
                return Some(reason);
            }
        };
        if self.task.is_none() {
            return (!READ_ONLY_TOOLS.contains(&name))
                .then(|| "nothing may change while planning".into());
        }
        self.asked.insert((name.to_owned(), args.to_string()));
        self.judge(actions, &format!("wire PreToolUse: {name}"))
    }

    /// Judges each action; the first refusal wins. Every request is judged
    /// afresh: a verdict given to a hook is not reused for the approval
    /// that follows, since a concurrent call may have changed the worktree.
    fn judge(&mut self, actions: Vec<(ActionKind, String)>, detail: &str) -> Option<String> {
        let mut unique: Vec<(ActionKind, String)> = Vec::new();
        for (kind, target) in actions {
            let target = if kind.is_file_change() {
                relative_to(self.dir, &target).unwrap_or(target)
            } else {
                target
            };
            // One file named several ways (a diff's absolute path, the
            // call's relative one) is judged once.
            if !unique.contains(&(kind, target.clone())) {
                unique.push((kind, target));
            }
        }
        Judge::new(self.hooks, self.task)
            .all(unique, detail)
            .refusal()
    }
}

impl Peer for Session<'_> {
    fn request(&mut self, method: &str, params: &Value) -> Option<Result<Value, (i64, String)>> {
        match method {
            "event" => {
                self.event("", params);
                None
            }
            "request" => Some(self.answer(params)),
            other => Some(Err((
                METHOD_NOT_FOUND,
                format!("omk has no method `{other}`"),
            ))),
        }
    }

    fn notification(&mut self, method: &str, params: &Value) {
        if method == "event" {
            self.event("", params);
        }
    }

    fn response(&mut self, id: &Value, result: Result<&Value, &Value>) -> bool {
        if self.prompt.as_ref() != Some(id) {
            return false;
        }
        match result {
            Ok(r) => self.status = r["status"].as_str().map(str::to_owned),
            Err(e) => {
                self.error = Some(format!(
                    "Kimi: {} (code {})",
                    e["message"].as_str().unwrap_or("unknown error"),
                    e["code"]
                ))
            }
        }
        true
    }

    fn stopping(&mut self) {
        self.stopping = true;
    }
}

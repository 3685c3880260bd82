//! The legacy Kimi CLI (the Python `kimi-cli`, 1.x) over its wire protocol:
//! `kimi --wire`, JSON-RPC 2.0 on stdio, one object a line.
//!
//! omk sends `initialize` (protocol 1.10; a server older than 1.1 answers
//! "method not found" and omk goes on without the handshake) declaring no
//! questions, no plan mode and one hook subscription — `PreToolUse` for
//! every tool — then `prompt` with the task prompt. Until the prompt's
//! answer (`finished`, `cancelled`, `max_steps_reached`) the agent streams
//! `event` notifications and asks `request`s:
//!
//! - `ApprovalRequest` (a file edit, a command, anything Kimi asks the user
//!   before doing) becomes the actions the gates judge: every diff block's
//!   path, or the file the description or the tool call names, is a write;
//!   a shell block or a `Shell` call is a command; anything else is an
//!   `other` action naming the tool. omk answers `approve` (never
//!   `approve_for_session`, so Kimi asks every time) only if every action is
//!   allowed, else `reject` with `refused by omk: <reason>` as feedback,
//!   which Kimi hands the model. Kimi performs an approved write itself.
//! - `HookRequest` for `PreToolUse` (Kimi CLI ≥ 1.28, wire 1.7): the tool's
//!   name and input, judged the same way, answered `allow` or `block` with
//!   the reason. This is the second line: it holds even where Kimi approves
//!   itself (`default_yolo` in its config). Kimi lets a tool run when a
//!   hook goes unanswered, so the subscription's timeout is the task's
//!   remaining time. The approval that follows a hook is judged again: a
//!   concurrent call may have changed the worktree in between.
//! - Work in the background — `Shell` or `Agent` with `run_in_background`,
//!   an approval to "run background command" — is refused: it would run in
//!   a session of its own past the task's deadline, and a background
//!   subagent runs without hooks.
//! - `QuestionRequest` gets no answers, `ToolCallRequest` an error: omk
//!   registers no external tools.
//!
//! A file change or command that ran without omk being asked (a server
//! without hooks whose user set `default_yolo`) is recorded as an
//! `unjudged_action` note, and the proof lists it as a gap.
//!
//! Events become notes (tool calls and their results, retries) and the final
//! message (the text after the last tool call); tokens are the sum of each
//! step's `StatusUpdate.token_usage`, foreground subagents' included (Kimi
//! reports no cost). While planning, only read-only tools may run. At the
//! deadline omk sends `cancel`, rejects what is still asked, waits a few
//! seconds for the prompt's answer, then kills the process group.
//!
//! What omk cannot close: Kimi writes an approved file itself, a moment
//! after omk judged it, so a command running alongside could still swap a
//! directory for a symlink in between; the outcome gates judge what
//! changed in the worktree.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use omk_gate_sdk::{ActionKind, TaskProposal};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::judge::Judge;
use super::stdio::{self, Outcome};
use super::turn::TurnClock;
use super::{
    Backend, BoxFuture, Brief, Hooks, Job, Place, Report, launch_command, prompt, relative_to,
};

/// The wire protocol version omk speaks.
pub const PROTOCOL_VERSION: &str = "1.10";
/// JSON-RPC "method not found": a server from before `initialize`.
const METHOD_NOT_FOUND: i64 = -32601;
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

/// The wire backend.
#[derive(Debug)]
pub struct KimiWire {
    command: Option<String>,
}

impl KimiWire {
    pub fn new(command: Option<&str>) -> KimiWire {
        KimiWire {
            command: command.map(str::to_owned),
        }
    }
}

/// A tool call as the events described it.
#[derive(Debug, Default, Clone)]
struct Call {
    name: String,
    arguments: String,
}

struct Session<'a> {
    dir: &'a Path,
    hooks: &'a dyn Hooks,
    task: Option<&'a str>,
    /// Tool calls by agent (`""` for the main one, else a subagent's
    /// `agent_id`: their ids restart per conversation) and id.
    calls: HashMap<(String, String), Call>,
    /// Per agent, the call the next `ToolCallPart` continues.
    last_call: HashMap<String, String>,
    /// The agent's text since its last tool call.
    message: String,
    tokens: u64,
    /// The tool calls omk was asked about (a hook or an approval), as
    /// (tool, arguments): Kimi runs one of identical calls in a step.
    asked: HashSet<(String, String)>,
    /// Set at the deadline: everything still asked is refused.
    stopping: bool,
}

impl Call {
    /// What identifies the call's effect: its tool and its arguments.
    fn signature(&self) -> (String, String) {
        let args = serde_json::from_str::<Value>(&self.arguments)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| self.arguments.clone());
        (self.name.clone(), args)
    }
}

impl<'a> Session<'a> {
    fn new(dir: &'a Path, hooks: &'a dyn Hooks, task: Option<&'a str>) -> Session<'a> {
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
    fn request(&mut self, params: &Value) -> Result<Value, (i64, String)> {
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

/// The text between the first and last backtick of `s` (`Write file `p``).
fn quoted(s: &str) -> Option<&str> {
    let start = s.find('`')? + 1;
    let end = s.rfind('`')?;
    (end > start).then(|| &s[start..end])
}

/// Why omk refuses work that would run in the background.
const BACKGROUND: &str = "omk refuses background work: it would outlive the task's deadline and escape its judgement; run it in the foreground";

/// The actions a tool call with `input` would take.
fn tool_actions(name: &str, input: &Value) -> Result<Vec<(ActionKind, String)>, String> {
    let text = |key: &str| {
        input[key]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    // A background command runs in a session of its own, out of reach of
    // the task's deadline; a background subagent runs without hooks.
    if input["run_in_background"] == true {
        return Err(format!("`{name}` in the background: {BACKGROUND}"));
    }
    Ok(vec![match name {
        "WriteFile" | "StrReplaceFile" => (
            ActionKind::WriteFile,
            text("path").ok_or_else(|| {
                format!("omk cannot tell which file `{name}` would change, so it refuses it")
            })?,
        ),
        "Shell" => (
            ActionKind::RunCommand,
            text("command").ok_or_else(|| "a `Shell` call without a command".to_owned())?,
        ),
        "FetchURL" => (
            ActionKind::FetchUrl,
            text("url").ok_or_else(|| "a `FetchURL` call without a URL".to_owned())?,
        ),
        other => {
            let shown = match text("path") {
                Some(p) => format!("{other} {p}"),
                None => other.to_owned(),
            };
            (ActionKind::Other, shown)
        }
    }])
}

/// The actions an `ApprovalRequest` asks for, from its display blocks,
/// its description and the tool call it belongs to.
fn approval_actions(req: &Value, call: Option<&Call>) -> Result<Vec<(ActionKind, String)>, String> {
    let sender = req["sender"].as_str().unwrap_or("");
    let action = req["action"].as_str().unwrap_or("");
    let description = req["description"].as_str().unwrap_or("");
    let args: Value = call
        .and_then(|c| serde_json::from_str(&c.arguments).ok())
        .unwrap_or(Value::Null);
    let blocks = req["display"].as_array().cloned().unwrap_or_default();
    let of_type = |t: &str, key: &str| -> Vec<String> {
        blocks
            .iter()
            .filter(|b| b["type"] == t)
            .filter_map(|b| b[key].as_str().filter(|s| !s.is_empty()).map(str::to_owned))
            .collect()
    };
    let mut out: Vec<(ActionKind, String)> = Vec::new();
    fn add(out: &mut Vec<(ActionKind, String)>, kind: ActionKind, target: String) {
        if !out.iter().any(|(k, t)| *k == kind && *t == target) {
            out.push((kind, target));
        }
    }
    let edits =
        sender == "WriteFile" || sender == "StrReplaceFile" || action.starts_with("edit file");
    let diffs = of_type("diff", "path");
    if edits || !diffs.is_empty() {
        for p in diffs {
            add(&mut out, ActionKind::WriteFile, p);
        }
        if edits {
            if let Some(p) = quoted(description) {
                add(&mut out, ActionKind::WriteFile, p.to_owned());
            }
            if let Some(p) = args["path"].as_str().filter(|p| !p.is_empty()) {
                add(&mut out, ActionKind::WriteFile, p.to_owned());
            }
        }
        if out.is_empty() {
            return Err(format!(
                "omk cannot tell which files `{sender}` would change, so it refuses it"
            ));
        }
        return Ok(out);
    }
    if action.contains("background") && action != "stop background task" {
        return Err(format!("`{sender}` ({action}): {BACKGROUND}"));
    }
    let shells = of_type("shell", "command");
    if sender == "Shell" || !shells.is_empty() {
        for c in shells {
            add(&mut out, ActionKind::RunCommand, c);
        }
        if out.is_empty() {
            let command = args["command"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| quoted(description).map(str::to_owned))
                .ok_or_else(|| "omk cannot tell which command `Shell` would run".to_owned())?;
            add(&mut out, ActionKind::RunCommand, command);
        }
        return Ok(out);
    }
    let target = if description.is_empty() {
        format!("{sender}: {action}")
    } else {
        format!("{sender}: {description}")
    };
    add(&mut out, ActionKind::Other, target);
    Ok(out)
}

struct Conn {
    agent: stdio::Agent,
    lines: stdio::LineReader,
    next_id: u64,
    /// The last line of stdout that was not JSON-RPC (a banner, a notice).
    noise: String,
}

impl Conn {
    /// Sends a request; returns its id.
    async fn ask(&mut self, method: &str, params: Value) -> Result<String, String> {
        self.next_id += 1;
        let id = format!("omk-{}", self.next_id);
        self.agent
            .send(&json!({"jsonrpc": "2.0", "method": method, "id": id, "params": params}))
            .await
            .map_err(|e| format!("cannot send `{method}` to Kimi: {e}"))?;
        Ok(id)
    }

    /// Answers a request of the agent's.
    async fn answer(&mut self, id: &Value, answer: Result<Value, (i64, String)>) {
        let msg = match answer {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err((code, message)) => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
            }
        };
        let _ = self.agent.send(&msg).await;
    }

    /// Handles one line: `Some(msg)` when it is the response to `id`.
    async fn handle(&mut self, line: &str, id: &str, session: &mut Session<'_>) -> Option<Value> {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            if !line.trim().is_empty() {
                self.noise = crate::text::clip(line.trim(), 500);
            }
            return None;
        };
        let method = msg["method"].as_str();
        match (method, msg.get("id")) {
            (Some("event"), _) => session.event("", &msg["params"]),
            (Some("request"), Some(rid)) => {
                let answer = session.request(&msg["params"]);
                self.answer(rid, answer).await;
            }
            (Some(other), Some(rid)) => {
                let answer = Err((METHOD_NOT_FOUND, format!("omk has no method `{other}`")));
                self.answer(rid, answer).await;
            }
            (None, Some(rid)) if rid == id => return Some(msg),
            _ => {}
        }
        None
    }

    /// Sends a request and waits for its response, handling what comes meanwhile.
    async fn call(
        &mut self,
        method: &str,
        params: Value,
        until: Instant,
        session: &mut Session<'_>,
    ) -> Result<Value, String> {
        let id = self.ask(method, params).await?;
        loop {
            let line = tokio::time::timeout_at(until, self.lines.next_line())
                .await
                .map_err(|_| format!("Kimi did not answer `{method}` in time"))?;
            let Ok(Some(line)) = line else {
                let mut e = format!("Kimi exited before answering `{method}`");
                if !self.noise.is_empty() {
                    e.push_str(&format!(": {}", self.noise));
                }
                return Err(e);
            };
            if let Some(msg) = self.handle(&line, &id, session).await {
                return Ok(msg);
            }
        }
    }
}

/// A JSON-RPC error's words.
fn error_text(msg: &Value) -> Option<String> {
    let e = msg.get("error")?;
    Some(format!(
        "{} (code {})",
        e["message"].as_str().unwrap_or("unknown error"),
        e["code"]
    ))
}

impl KimiWire {
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
            "kimi-wire",
            &super::clients::KIMI_WIRE,
            self.command.as_deref(),
            &["--wire"],
        );
        let mut env = env.to_vec();
        env.push(("KIMI_CLI_NO_AUTO_UPDATE".into(), "1".into()));
        let mut agent = match stdio::spawn(
            &launch.program,
            &launch.args,
            dir,
            &env,
            place.confinement,
            &|pgid| hooks.process_started(pgid),
        ) {
            Ok(a) => a,
            Err(e) => {
                return Outcome::failed(e);
            }
        };
        let Some(lines) = agent.lines() else {
            return Outcome::failed("Kimi's stdout is not piped".into());
        };
        let mut conn = Conn {
            agent,
            lines,
            next_id: 0,
            noise: String::new(),
        };
        let mut session = Session::new(dir, hooks, task);
        let mut out = Outcome::default();
        let mut clock = TurnClock::new(deadline);
        let start_until = clock.start_until();
        // Kimi lets a tool run when a hook is not answered in time: give
        // omk until the deadline, whatever the gates' own limits.
        let hook_secs = deadline
            .saturating_duration_since(Instant::now())
            .as_secs()
            .saturating_add(60);
        let init = conn
            .call(
                "initialize",
                json!({
                    "protocol_version": PROTOCOL_VERSION,
                    "client": {"name": "omk", "version": env!("CARGO_PKG_VERSION")},
                    "capabilities": {"supports_question": false, "supports_plan_mode": false},
                    "hooks": [{"id": "omk-pre-tool-use", "event": "PreToolUse", "matcher": "", "timeout": hook_secs}],
                }),
                start_until,
                &mut session,
            )
            .await;
        match init {
            Ok(msg) if msg["error"]["code"] == METHOD_NOT_FOUND => {
                hooks.note(
                    "agent_session",
                    json!({"task_id": task, "protocol": "before 1.1: no handshake, no hooks"}),
                );
            }
            Ok(msg) => {
                if let Some(e) = error_text(&msg) {
                    out.error = Some(format!("`initialize` failed: {e}"));
                } else {
                    let r = &msg["result"];
                    let hooked = r["hooks"]["supported_events"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|e| e == "PreToolUse"));
                    hooks.note(
                        "agent_session",
                        json!({"task_id": task, "protocol": r["protocol_version"], "server": r["server"],
                               "pre_tool_use_hook": hooked}),
                    );
                }
            }
            Err(e) => out.error = Some(e),
        }
        if out.error.is_some() {
            out.timed_out = clock.passed();
            let _ = conn.agent.finish(Duration::from_secs(1)).await;
            out.stderr_tail = conn.agent.stderr_tail();
            return out;
        }
        let prompt_id = match conn.ask("prompt", json!({"user_input": text})).await {
            Ok(id) => id,
            Err(e) => {
                out.error = Some(e);
                let _ = conn.agent.finish(Duration::from_secs(1)).await;
                out.stderr_tail = conn.agent.stderr_tail();
                return out;
            }
        };
        loop {
            tokio::select! {
                line = conn.lines.next_line() => {
                    let Ok(Some(line)) = line else {
                        if out.status.is_none() {
                            out.error.get_or_insert_with(|| "Kimi exited before the turn finished".into());
                        }
                        break;
                    };
                    if let Some(msg) = conn.handle(&line, &prompt_id, &mut session).await {
                        match error_text(&msg) {
                            Some(e) => out.error = Some(format!("Kimi: {e}")),
                            None => out.status = msg["result"]["status"].as_str().map(str::to_owned),
                        }
                        break;
                    }
                }
                _ = clock.deadline() => {
                    out.timed_out = true;
                    session.stopping = true;
                    let _ = conn.ask("cancel", json!({})).await;
                    clock.cancelled();
                }
                _ = clock.grace_over() => break,
            }
        }
        out.message = std::mem::take(&mut session.message);
        out.tokens = session.tokens;
        let _ = conn.agent.finish(Duration::from_secs(2)).await;
        out.stderr_tail = conn.agent.stderr_tail();
        out
    }
}

impl Backend for KimiWire {
    fn client(&self) -> (crate::sandbox::ClientState, Option<String>) {
        let c = &super::clients::KIMI_WIRE;
        (c.state, Some(c.command(self.command.as_deref())))
    }

    fn name(&self) -> &'static str {
        "kimi-wire"
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
            out.into_plan("finished", "Kimi", hooks)
        })
    }

    fn run<'a>(&'a self, job: &'a Job, hooks: &'a dyn Hooks) -> BoxFuture<'a, Report> {
        Box::pin(async move {
            let shown = format!(
                "{} --wire",
                super::clients::KIMI_WIRE.command(self.command.as_deref())
            );
            let detail = "start the legacy Kimi CLI in wire mode";
            if let Some(refused) = super::refuse_start(hooks, job, &shown, detail) {
                return refused;
            }
            let out = self
                .session(
                    &job.place(),
                    prompt::task(job),
                    job.deadline,
                    hooks,
                    Some(&job.task.id),
                )
                .await;
            out.into_report("finished", "Kimi", hooks, &job.task.id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: Value) -> Call {
        Call {
            name: name.into(),
            arguments: arguments.to_string(),
        }
    }

    #[test]
    fn approvals_become_actions() {
        let write = json!({"id": "a1", "tool_call_id": "t1", "sender": "WriteFile", "action": "edit file",
            "description": "Write file `/w/notes/a.md`",
            "display": [{"type": "diff", "path": "/w/notes/a.md", "old_text": "", "new_text": "x"}]});
        assert_eq!(
            approval_actions(
                &write,
                Some(&call("WriteFile", json!({"path": "notes/a.md"})))
            )
            .unwrap(),
            vec![
                (ActionKind::WriteFile, "/w/notes/a.md".to_owned()),
                (ActionKind::WriteFile, "notes/a.md".to_owned())
            ]
        );
        // No diff when the content does not change: the description names the file.
        let same = json!({"sender": "StrReplaceFile", "action": "edit file outside of working directory",
            "description": "Edit file `/etc/passwd`", "display": []});
        assert_eq!(
            approval_actions(&same, None).unwrap(),
            vec![(ActionKind::WriteFile, "/etc/passwd".to_owned())]
        );
        let blind =
            json!({"sender": "WriteFile", "action": "edit file", "description": "Write a file"});
        assert!(
            approval_actions(&blind, None)
                .unwrap_err()
                .contains("cannot tell")
        );
        let shell = json!({"sender": "Shell", "action": "run command", "description": "Run command `ls`",
            "display": [{"type": "shell", "language": "bash", "command": "ls -l"}]});
        assert_eq!(
            approval_actions(&shell, None).unwrap(),
            vec![(ActionKind::RunCommand, "ls -l".to_owned())]
        );
        let bare = json!({"sender": "Shell", "action": "run command", "description": "Run command `make`"});
        assert_eq!(
            approval_actions(&bare, None).unwrap(),
            vec![(ActionKind::RunCommand, "make".to_owned())]
        );
        let mcp = json!({"sender": "mcp__db__drop", "action": "call mcp tool", "description": "Drop the table"});
        assert_eq!(
            approval_actions(&mcp, None).unwrap(),
            vec![(
                ActionKind::Other,
                "mcp__db__drop: Drop the table".to_owned()
            )]
        );
    }

    #[test]
    fn hooked_tool_calls_become_actions() {
        assert_eq!(
            tool_actions("WriteFile", &json!({"path": "a.md", "content": "x"})).unwrap(),
            vec![(ActionKind::WriteFile, "a.md".to_owned())]
        );
        assert_eq!(
            tool_actions("Shell", &json!({"command": "make test"})).unwrap(),
            vec![(ActionKind::RunCommand, "make test".to_owned())]
        );
        assert_eq!(
            tool_actions("ReadFile", &json!({"path": "src/x.rs"})).unwrap(),
            vec![(ActionKind::Other, "ReadFile src/x.rs".to_owned())]
        );
        assert!(tool_actions("StrReplaceFile", &json!({})).is_err());
        for (tool, input) in [
            (
                "Shell",
                json!({"command": "sleep 1000", "run_in_background": true, "description": "x"}),
            ),
            (
                "Agent",
                json!({"description": "d", "prompt": "p", "run_in_background": true}),
            ),
        ] {
            let e = tool_actions(tool, &input).unwrap_err();
            assert!(e.contains("omk refuses background work"), "{e}");
        }
        assert_eq!(
            tool_actions("Agent", &json!({"description": "d", "prompt": "p"})).unwrap(),
            vec![(ActionKind::Other, "Agent".to_owned())]
        );
        let bg = json!({"sender": "Shell", "action": "run background command",
            "description": "Run background command `x`", "display": [{"type": "shell", "command": "x"}]});
        assert!(
            approval_actions(&bg, None)
                .unwrap_err()
                .contains("background")
        );
    }

    #[test]
    fn backticks_are_read_from_descriptions() {
        assert_eq!(quoted("Write file `/a/b`"), Some("/a/b"));
        assert_eq!(quoted("Run command `echo `x``"), Some("echo `x`"));
        assert_eq!(quoted("nothing"), None);
        assert_eq!(quoted("one ` only"), None);
    }
}

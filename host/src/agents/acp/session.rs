//! One ACP prompt turn as omk drives it: the session's setup, the agent's
//! permission requests and file-system calls judged by the gates, its
//! updates read into notes, usage and the final message, and the cancel at
//! the deadline.

use std::path::PathBuf;
use std::time::Duration;

use agent_client_protocol::schema::ProtocolVersion;
use agent_client_protocol::v1::schema::{
    CancelNotification, ClientCapabilities, ContentBlock, FileSystemCapabilities,
    InitializeRequest, NewSessionRequest, PermissionOptionKind, PromptRequest, ReadTextFileRequest,
    ReadTextFileResponse, RequestPermissionOutcome, RequestPermissionRequest,
    RequestPermissionResponse, SelectedPermissionOutcome, SessionNotification, SessionUpdate,
    SetSessionModeRequest, StopReason, TextContent, WriteTextFileRequest, WriteTextFileResponse,
};
use agent_client_protocol::v1::{ConnectionTo, Responder};
use agent_client_protocol::{Agent, Error as AcpError, ErrorCode};
use omk_gate_sdk::ActionKind;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::UsagePrompt;
use crate::agents::judge::Judge;
use crate::agents::turn::{TurnClock, TurnEnd};
use crate::agents::{Hooks, files, prompt};

/// The turn's tokens in a prompt answer's `_meta`, where the Gemini CLI
/// puts them (`quota.token_count`: `input_tokens`, `output_tokens`).
fn meta_tokens(meta: &serde_json::Map<String, Value>) -> Option<u64> {
    let count = meta.get("quota")?.get("token_count")?;
    let n = |k: &str| count.get(k).and_then(Value::as_u64).unwrap_or(0);
    let total = n("input_tokens").saturating_add(n("output_tokens"));
    (total > 0).then_some(total)
}

pub(super) fn stop_name(r: StopReason) -> &'static str {
    match r {
        StopReason::EndTurn => "end_turn",
        StopReason::MaxTokens => "max_tokens",
        StopReason::MaxTurnRequests => "max_turn_requests",
        StopReason::Refusal => "refusal",
        StopReason::Cancelled => "cancelled",
        _ => "other",
    }
}

/// A message from the agent, handed from the connection's handlers to the
/// turn's loop (which holds the hooks).
pub(super) enum FromAgent {
    Permission(
        Box<RequestPermissionRequest>,
        Responder<RequestPermissionResponse>,
    ),
    Write(Box<WriteTextFileRequest>, Responder<WriteTextFileResponse>),
    Read(Box<ReadTextFileRequest>, Responder<ReadTextFileResponse>),
    Update(Box<SessionNotification>),
}

/// One turn as omk keeps it, fed by the connection's handlers.
pub(super) struct State<'a> {
    pub dir: PathBuf,
    pub hooks: &'a dyn Hooks,
    pub task: Option<&'a str>,
    pub turn: TurnEnd,
    /// The agent's message since its last tool call.
    pub message: String,
    pub cancelled: bool,
    /// A read of a missing file gets empty text ([`super::Launch`]).
    pub missing_is_empty: bool,
    /// What `session/update` said of each tool call so far, by id: a
    /// permission request may carry less (Kimi sends only a title).
    pub calls: std::collections::HashMap<String, Value>,
    /// Whether the agent did anything visible: a message or a tool call.
    pub active: bool,
}

impl<'a> State<'a> {
    pub async fn drive(
        &mut self,
        cx: ConnectionTo<Agent>,
        mut rx: mpsc::UnboundedReceiver<FromAgent>,
        text: String,
        deadline: Instant,
        usage_prompt: Option<UsagePrompt>,
    ) {
        let setup = async {
            let init = InitializeRequest::new(ProtocolVersion::V1).client_capabilities(
                ClientCapabilities::new().fs(FileSystemCapabilities::new()
                    .read_text_file(true)
                    .write_text_file(true)),
            );
            cx.send_request(init)
                .block_task()
                .await
                .map_err(|e| format!("`initialize` failed: {}", describe(&e)))?;
            let session = cx
                .send_request(NewSessionRequest::new(self.dir.clone()))
                .block_task()
                .await
                .map_err(|e| format!("`session/new` failed: {}", describe(&e)))?;
            let id = session.session_id;
            // Ask for the mode that asks before acting, if the agent has one
            // and is not in it.
            if let Some(modes) = &session.modes {
                let current = modes.current_mode_id.to_string();
                let default = modes
                    .available_modes
                    .iter()
                    .find(|m| m.id.to_string() == "default");
                if current != "default"
                    && let Some(m) = default
                {
                    cx.send_request(SetSessionModeRequest::new(id.clone(), m.id.clone()))
                        .block_task()
                        .await
                        .map_err(|e| format!("`session/set_mode` failed: {}", describe(&e)))?;
                }
            }
            Ok::<_, String>(id)
        };
        let session = tokio::select! {
            s = setup => s,
            _ = tokio::time::sleep_until(deadline) => Err("the agent did not start a session before the deadline".into()),
        };
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                self.turn.error = Some(e);
                self.turn.timed_out = Instant::now() >= deadline;
                return;
            }
        };
        let prompt = cx
            .send_request(PromptRequest::new(
                session.clone(),
                vec![ContentBlock::Text(TextContent::new(text))],
            ))
            .block_task();
        tokio::pin!(prompt);
        let mut clock = TurnClock::new(deadline);
        loop {
            tokio::select! {
                r = &mut prompt => {
                    match r {
                        Ok(resp) => {
                            self.turn.status = Some(stop_name(resp.stop_reason).to_owned());
                            if let Some(u) = &resp.usage {
                                self.turn.tokens = self.turn.tokens.max(u.total_tokens);
                            }
                            if let Some(t) = resp.meta.as_ref().and_then(meta_tokens) {
                                self.turn.tokens = self.turn.tokens.max(t);
                            }
                        }
                        Err(e) => self.turn.error = Some(format!("the prompt failed: {}", describe(&e))),
                    }
                    break;
                }
                Some(msg) = rx.recv() => self.handle(msg),
                _ = clock.deadline() => {
                    self.cancelled = true;
                    self.turn.timed_out = true;
                    let _ = cx.send_notification(CancelNotification::new(session.clone()));
                    clock.cancelled();
                }
                _ = clock.grace_over() => break,
            }
        }
        // Agents send the turn's last updates (Kimi its `usage_update`)
        // just after the prompt's answer: take what comes until it is quiet.
        let quiet_until = Instant::now() + Duration::from_secs(2);
        while let Ok(Some(msg)) = tokio::time::timeout(
            Duration::from_millis(300).min(quiet_until.saturating_duration_since(Instant::now())),
            rx.recv(),
        )
        .await
        {
            self.handle(msg);
        }
        self.turn.message = std::mem::take(&mut self.message);
        if self.turn.status.as_deref() == Some("end_turn") && !self.active {
            // Kimi ends a turn this way when the model server keeps failing.
            self.turn.error = Some(
                "the agent ended its turn without a message or a tool call (did its model fail?)"
                    .into(),
            );
        }
        if self.turn.status.is_some()
            && !self.cancelled
            && let Some((ask, read)) = usage_prompt
        {
            let question = cx
                .send_request(PromptRequest::new(
                    session.clone(),
                    vec![ContentBlock::Text(TextContent::new(ask))],
                ))
                .block_task();
            tokio::pin!(question);
            let until = (Instant::now() + Duration::from_secs(30)).min(deadline);
            loop {
                tokio::select! {
                    _ = &mut question => break,
                    Some(msg) = rx.recv() => self.handle(msg),
                    _ = tokio::time::sleep_until(until) => break,
                }
            }
            while let Ok(msg) = rx.try_recv() {
                self.handle(msg);
            }
            if let Some(tokens) = read(&std::mem::take(&mut self.message)) {
                self.turn.tokens = tokens;
            }
        }
    }

    fn handle(&mut self, msg: FromAgent) {
        match msg {
            FromAgent::Permission(req, responder) => {
                let outcome = self.permission(&req);
                let _ = responder.respond(RequestPermissionResponse::new(outcome.0).meta(
                    outcome.1.map(|reason| {
                        let mut m = serde_json::Map::new();
                        m.insert("omk".into(), json!({"refused": reason}));
                        m
                    }),
                ));
            }
            FromAgent::Write(req, responder) => {
                let target = req.path.display().to_string();
                let permit = self.act(ActionKind::WriteFile, &target, "fs/write_text_file");
                if let Some(reason) = permit {
                    let _ = responder.respond_with_error(refused(&reason));
                    return;
                }
                match files::write_file(&self.dir, &req.path, &req.content) {
                    Ok(()) => {
                        let _ = responder.respond(WriteTextFileResponse::new());
                    }
                    Err(e) => {
                        let _ = responder.respond_with_error(AcpError::new(
                            ErrorCode::INTERNAL_ERROR,
                            format!("cannot write `{target}`: {e}"),
                        ));
                    }
                }
            }
            FromAgent::Read(req, responder) => {
                let target = req.path.display().to_string();
                if let Some(reason) = self.act(ActionKind::ReadFile, &target, "fs/read_text_file") {
                    let _ = responder.respond_with_error(refused(&reason));
                    return;
                }
                match files::read_file(&self.dir, &req.path, req.line, req.limit) {
                    Ok(text) => {
                        let _ = responder.respond(ReadTextFileResponse::new(text));
                    }
                    Err(e) if self.missing_is_empty && e.kind() == std::io::ErrorKind::NotFound => {
                        let _ = responder.respond(ReadTextFileResponse::new(String::new()));
                    }
                    Err(e) => {
                        let code = if e.kind() == std::io::ErrorKind::NotFound {
                            ErrorCode::RESOURCE_NOT_FOUND
                        } else {
                            ErrorCode::INTERNAL_ERROR
                        };
                        let _ = responder.respond_with_error(AcpError::new(
                            code,
                            format!("cannot read `{target}`: {e}"),
                        ));
                    }
                }
            }
            FromAgent::Update(n) => self.update(n.update),
        }
    }

    /// Judges an action; `Some(reason)` when refused.
    fn act(&self, kind: ActionKind, target: &str, detail: &str) -> Option<String> {
        self.judge().one(kind, target, detail).refusal()
    }

    fn judge(&self) -> Judge<'a> {
        Judge::new(self.hooks, self.task)
    }

    /// Judges a permission request: allow only when every action it names
    /// is allowed.
    fn permission(
        &mut self,
        req: &RequestPermissionRequest,
    ) -> (RequestPermissionOutcome, Option<String>) {
        if self.cancelled {
            return (RequestPermissionOutcome::Cancelled, None);
        }
        let call = self.complete(serde_json::to_value(&req.tool_call).unwrap_or(Value::Null));
        let mut refusal = match actions_of(&call) {
            Ok(actions) => {
                let detail = format!("session/request_permission: {}", title_of(&call));
                self.judge().all(actions, &detail).refusal()
            }
            Err(reason) => {
                self.hooks.note(
                    "permission_unreadable",
                    json!({"task_id": self.task, "tool_call": call, "reason": reason}),
                );
                Some(reason)
            }
        };
        // Allowed: once, never "always" — an agent told "always" stops
        // asking, and every later action would go unjudged. An agent that
        // offers no "once" is refused, and the proof says why.
        if refusal.is_none()
            && !req
                .options
                .iter()
                .any(|o| o.kind == PermissionOptionKind::AllowOnce)
        {
            let reason = "the agent offered no `allow once`; omk grants one action at a time, never for the session".to_owned();
            self.hooks.note(
                "permission_allow_once_missing",
                json!({"task_id": self.task, "tool_call": call, "options": req.options.iter().map(|o| serde_json::to_value(o.kind).unwrap_or(Value::Null)).collect::<Vec<_>>()}),
            );
            refusal = Some(reason);
        }
        let want: &[PermissionOptionKind] = if refusal.is_none() {
            &[PermissionOptionKind::AllowOnce]
        } else {
            &[
                PermissionOptionKind::RejectOnce,
                PermissionOptionKind::RejectAlways,
            ]
        };
        let option = want.iter().find_map(|k| {
            req.options
                .iter()
                .find(|o| o.kind == *k)
                .map(|o| o.option_id.clone())
        });
        match option {
            Some(id) => (
                RequestPermissionOutcome::Selected(SelectedPermissionOutcome::new(id)),
                refusal,
            ),
            // No option that says what omk decided: cancelling is a refusal.
            None => (RequestPermissionOutcome::Cancelled, refusal),
        }
    }

    fn update(&mut self, update: SessionUpdate) {
        let task = self.task;
        match update {
            SessionUpdate::AgentMessageChunk(chunk) => {
                if let ContentBlock::Text(t) = chunk.content {
                    self.active = true;
                    self.message.push_str(&t.text);
                }
            }
            SessionUpdate::ToolCall(call) => {
                self.active = true;
                prompt::note_message(self.hooks, self.task, &mut self.message);
                let v = serde_json::to_value(&call).unwrap_or(Value::Null);
                self.remember(&v);
                self.hooks.note(
                    "tool_call",
                    json!({"task_id": task, "id": v["toolCallId"], "title": v["title"],
                           "kind": v["kind"], "status": v["status"], "locations": v["locations"]}),
                );
            }
            SessionUpdate::ToolCallUpdate(u) => {
                let v = serde_json::to_value(&u).unwrap_or(Value::Null);
                self.remember(&v);
                if matches!(v["status"].as_str(), Some("completed" | "failed")) {
                    self.hooks.note(
                        "tool_call_update",
                        json!({"task_id": task, "id": v["toolCallId"], "status": v["status"]}),
                    );
                }
            }
            SessionUpdate::Plan(plan) => {
                let v = serde_json::to_value(&plan).unwrap_or(Value::Null);
                self.hooks
                    .note("plan", json!({"task_id": task, "entries": v["entries"]}));
            }
            SessionUpdate::UsageUpdate(u) => {
                self.turn.tokens = self.turn.tokens.max(u.used);
                if let Some(cost) = &u.cost
                    && cost.currency.eq_ignore_ascii_case("USD")
                {
                    self.turn.usd_micros = prompt::usd_micros(cost.amount);
                }
                let v = serde_json::to_value(&u).unwrap_or(Value::Null);
                self.hooks
                    .note("usage", json!({"task_id": task, "usage": v}));
            }
            _ => {}
        }
    }

    /// Merges what an update says of a tool call into what is known of it.
    fn remember(&mut self, v: &Value) {
        let Some(id) = v["toolCallId"].as_str() else {
            return;
        };
        let known = self.calls.entry(id.to_owned()).or_insert_with(|| json!({}));
        if let (Some(known), Some(new)) = (known.as_object_mut(), v.as_object()) {
            for (k, val) in new {
                if !val.is_null() {
                    known.insert(k.clone(), val.clone());
                }
            }
        }
    }

    /// A permission request's tool call, completed with what updates said
    /// of it; arguments still streaming as text are parsed as its input.
    fn complete(&self, call: Value) -> Value {
        let mut merged = call["toolCallId"]
            .as_str()
            .and_then(|id| self.calls.get(id))
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let (Some(m), Some(c)) = (merged.as_object_mut(), call.as_object()) {
            for (k, val) in c {
                // The request's own content is a question, not the arguments.
                if !(val.is_null() || k == "content" && m.contains_key("content")) {
                    m.insert(k.clone(), val.clone());
                }
            }
        }
        if merged["rawInput"].is_null() {
            let parsed = merged["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["content"]["text"].as_str())
                .find_map(|t| {
                    serde_json::from_str::<Value>(t)
                        .ok()
                        .filter(Value::is_object)
                });
            if let Some(input) = parsed {
                merged["rawInput"] = input;
            }
        }
        merged
    }
}

fn refused(reason: &str) -> AcpError {
    AcpError::new(
        ErrorCode::INVALID_REQUEST,
        format!("refused by omk: {reason}"),
    )
}

fn describe(e: &AcpError) -> String {
    let mut s = e.message.clone();
    if let Some(d) = &e.data {
        s.push_str(&format!(" ({})", crate::text::clip(&d.to_string(), 500)));
    }
    s
}

fn title_of(call: &Value) -> String {
    call["title"].as_str().unwrap_or("a tool call").to_owned()
}

/// The actions a tool call in a permission request would take.
fn actions_of(call: &Value) -> Result<Vec<(ActionKind, String)>, String> {
    let kind = call["kind"].as_str().unwrap_or("other");
    let input = &call["rawInput"];
    let file_kind = match kind {
        "edit" | "move" => Some(ActionKind::WriteFile),
        "delete" => Some(ActionKind::DeleteFile),
        "read" | "search" => Some(ActionKind::ReadFile),
        _ => None,
    };
    if let Some(file_kind) = file_kind {
        let mut paths: Vec<String> = Vec::new();
        let mut add = |p: &Value| {
            if let Some(p) = p.as_str().filter(|p| !p.is_empty())
                && !paths.iter().any(|q| q == p)
            {
                paths.push(p.to_owned());
            }
        };
        for l in call["locations"].as_array().into_iter().flatten() {
            add(&l["path"]);
        }
        for c in call["content"].as_array().into_iter().flatten() {
            if c["type"] == "diff" {
                add(&c["path"]);
            }
        }
        for key in [
            "path",
            "file_path",
            "filePath",
            "destination",
            "new_path",
            "source",
        ] {
            add(&input[key]);
        }
        if paths.is_empty() && file_kind == ActionKind::ReadFile {
            // A search that names no place searches the working directory.
            paths.push(".".to_owned());
        }
        if paths.is_empty() {
            return Err(format!(
                "omk cannot tell which files `{}` would change, so it refuses it",
                title_of(call)
            ));
        }
        return Ok(paths.into_iter().map(|p| (file_kind, p)).collect());
    }
    Ok(vec![match kind {
        "execute" => (
            ActionKind::RunCommand,
            input["command"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| {
                    input["command"].as_array().map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                })
                .unwrap_or_else(|| title_of(call)),
        ),
        "fetch" => (
            ActionKind::FetchUrl,
            input["url"]
                .as_str()
                .map_or_else(|| title_of(call), str::to_owned),
        ),
        _ => (ActionKind::Other, title_of(call)),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gemini_clis_tokens_are_read_from_meta() {
        let meta = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            meta_tokens(&meta(
                json!({"quota": {"token_count": {"input_tokens": 100, "output_tokens": 20}}})
            )),
            Some(120)
        );
        assert_eq!(meta_tokens(&meta(json!({"quota": {}}))), None);
        assert_eq!(meta_tokens(&meta(json!({}))), None);
    }

    #[test]
    fn permission_requests_become_actions() {
        let edit = json!({"toolCallId": "1", "title": "Write a", "kind": "edit",
                          "locations": [{"path": "/w/a.md"}], "rawInput": {"path": "/w/a.md", "content": "x"}});
        assert_eq!(
            actions_of(&edit).unwrap(),
            vec![(ActionKind::WriteFile, "/w/a.md".to_owned())]
        );
        let diff =
            json!({"kind": "edit", "content": [{"type": "diff", "path": "b.md", "newText": ""}]});
        assert_eq!(
            actions_of(&diff).unwrap(),
            vec![(ActionKind::WriteFile, "b.md".to_owned())]
        );
        let blind = json!({"kind": "edit", "title": "Edit something"});
        assert!(actions_of(&blind).unwrap_err().contains("cannot tell"));
        let run = json!({"kind": "execute", "rawInput": {"command": ["ls", "-l"]}});
        assert_eq!(
            actions_of(&run).unwrap(),
            vec![(ActionKind::RunCommand, "ls -l".to_owned())]
        );
        let read =
            json!({"kind": "read", "title": "Read k", "locations": [{"path": "/w/secrets/k"}]});
        assert_eq!(
            actions_of(&read).unwrap(),
            vec![(ActionKind::ReadFile, "/w/secrets/k".to_owned())]
        );
        // A read or search that names no place is judged as one of the whole
        // working directory.
        let blind = json!({"kind": "search", "title": "Search for key"});
        assert_eq!(
            actions_of(&blind).unwrap(),
            vec![(ActionKind::ReadFile, ".".to_owned())]
        );
        let other = json!({"kind": "think", "title": "Plan"});
        assert_eq!(
            actions_of(&other).unwrap(),
            vec![(ActionKind::Other, "Plan".to_owned())]
        );
    }
}

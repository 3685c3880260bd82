//! JSON-RPC over a live agent's stdio, one object a line: the transport of
//! the Codex app server and of the legacy Kimi CLI's wire.
//!
//! The two speak slightly different dialects ([`Dialect`]): Codex leaves
//! out the `jsonrpc` field and numbers its ids; the wire says `"2.0"` and
//! omk names its ids `omk-N`. Everything else is the same and lives here:
//! sending requests and notifications, answering the agent's requests,
//! reading messages (a line that is not JSON is kept as [`Rpc::noise`]),
//! and driving one turn against a [`TurnClock`] — the agent's messages go
//! to its backend's [`Peer`]; at the deadline the backend's cancel request
//! is sent, and after the grace the turn is given up.

use serde_json::{Value, json};
use tokio::time::Instant;

use super::stdio::{self, LineReader};
use super::turn::TurnClock;

/// JSON-RPC "method not found".
pub const METHOD_NOT_FOUND: i64 = -32601;

/// How a client spells its JSON-RPC.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// The client's name in errors ("Codex", "Kimi").
    pub who: &'static str,
    /// Whether messages carry `"jsonrpc": "2.0"`.
    pub jsonrpc: bool,
    /// omk's ids: `None` numbers them, `Some(p)` names them `pN`.
    pub id_prefix: Option<&'static str>,
}

/// One message from the agent.
#[derive(Debug)]
pub enum Message {
    /// The answer to one of omk's requests: its `result`, or its `error`.
    Response {
        id: Value,
        result: Result<Value, Value>,
    },
    /// A request omk must answer.
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
}

/// A failed call.
#[derive(Debug)]
pub enum CallError {
    /// The agent could not be reached, went away or did not answer in time.
    Transport(String),
    /// The agent answered with an error.
    Refused { code: i64, message: String },
}

impl CallError {
    /// The words for a failed `method`.
    pub fn describe(&self, method: &str) -> String {
        match self {
            CallError::Transport(e) => e.clone(),
            CallError::Refused { code, message } => {
                format!("`{method}` failed: {message} (code {code})")
            }
        }
    }
}

/// What a backend does with the agent's messages during a turn.
pub trait Peer: Send {
    /// Answers a request of the agent's; `None` leaves it unanswered.
    fn request(&mut self, method: &str, params: &Value) -> Option<Result<Value, (i64, String)>>;
    /// Reads a notification.
    fn notification(&mut self, method: &str, params: &Value);
    /// Reads the response to one of omk's requests; `true` ends the turn.
    fn response(&mut self, id: &Value, result: Result<&Value, &Value>) -> bool {
        let _ = (id, result);
        false
    }
    /// Whether the turn is over (the agent said so in a notification).
    fn ended(&self) -> bool {
        false
    }
    /// The deadline passed and the turn was cancelled: refuse what comes.
    fn stopping(&mut self);
}

/// A peer that reads nothing and answers nothing, for setup calls.
pub struct Ignore;

impl Peer for Ignore {
    fn request(&mut self, _: &str, _: &Value) -> Option<Result<Value, (i64, String)>> {
        None
    }
    fn notification(&mut self, _: &str, _: &Value) {}
    fn stopping(&mut self) {}
}

/// How a driven turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The peer saw the turn end.
    Ended,
    /// The agent closed its output first.
    Closed,
    /// The grace after the cancel ran out.
    GaveUp,
}

/// A JSON-RPC connection to an agent process.
pub struct Rpc {
    pub agent: stdio::Agent,
    lines: LineReader,
    dialect: Dialect,
    next_id: u64,
    /// The last line of stdout that was not JSON (a banner, a notice).
    pub noise: String,
}

impl Rpc {
    /// Speaks `dialect` with `agent`, whose stdout it takes.
    pub fn new(mut agent: stdio::Agent, dialect: Dialect) -> Result<Rpc, String> {
        let lines = agent
            .lines()
            .ok_or_else(|| format!("{}'s stdout is not piped", dialect.who))?;
        Ok(Rpc {
            agent,
            lines,
            dialect,
            next_id: 0,
            noise: String::new(),
        })
    }

    fn envelope(&self, mut msg: Value) -> Value {
        if self.dialect.jsonrpc {
            msg["jsonrpc"] = json!("2.0");
        }
        msg
    }

    async fn send(&mut self, msg: Value, what: &str) -> Result<(), CallError> {
        let msg = self.envelope(msg);
        self.agent.send(&msg).await.map_err(|e| {
            CallError::Transport(format!("cannot send `{what}` to {}: {e}", self.dialect.who))
        })
    }

    /// Sends a request; returns its id.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, CallError> {
        self.next_id += 1;
        let id = match self.dialect.id_prefix {
            None => json!(self.next_id),
            Some(p) => json!(format!("{p}{}", self.next_id)),
        };
        self.send(
            json!({"method": method, "id": id, "params": params}),
            method,
        )
        .await?;
        Ok(id)
    }

    /// Sends a notification (`params` left out when `None`).
    pub async fn notify(&mut self, method: &str, params: Option<Value>) -> Result<(), CallError> {
        let mut msg = json!({"method": method});
        if let Some(p) = params {
            msg["params"] = p;
        }
        self.send(msg, method).await
    }

    /// Answers a request of the agent's.
    pub async fn respond(&mut self, id: &Value, answer: Result<Value, (i64, String)>) {
        let msg = match answer {
            Ok(result) => json!({"id": id, "result": result}),
            Err((code, message)) => {
                json!({"id": id, "error": {"code": code, "message": message}})
            }
        };
        let _ = self.send(msg, "an answer").await;
    }

    /// The next message; `None` when the agent's output ends.
    pub async fn next(&mut self) -> Option<Message> {
        loop {
            let line = self.lines.next_line().await.ok()??;
            let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                if !line.trim().is_empty() {
                    self.noise = crate::text::clip(line.trim(), 500);
                }
                continue;
            };
            if let Some(m) = parse(msg) {
                return Some(m);
            }
        }
    }

    /// Hands `msg` to `peer`, answering a request; `true` when the turn is
    /// over.
    pub async fn serve(&mut self, msg: Message, peer: &mut dyn Peer) -> bool {
        match msg {
            Message::Request { id, method, params } => {
                if let Some(answer) = peer.request(&method, &params) {
                    self.respond(&id, answer).await;
                }
            }
            Message::Notification { method, params } => peer.notification(&method, &params),
            Message::Response { id, result } => {
                if peer.response(&id, result.as_ref()) {
                    return true;
                }
            }
        }
        peer.ended()
    }

    /// Sends a request and waits until `until` for its response; what comes
    /// meanwhile goes to `peer`.
    pub async fn call(
        &mut self,
        method: &str,
        params: Value,
        until: Instant,
        peer: &mut dyn Peer,
    ) -> Result<Value, CallError> {
        let id = self.request(method, params).await?;
        let who = self.dialect.who;
        loop {
            let next = tokio::time::timeout_at(until, self.next())
                .await
                .map_err(|_| {
                    CallError::Transport(format!("{who} did not answer `{method}` in time"))
                })?;
            let Some(msg) = next else {
                let mut e = format!("{who} exited before answering `{method}`");
                if !self.noise.is_empty() {
                    e.push_str(&format!(": {}", self.noise));
                }
                return Err(CallError::Transport(e));
            };
            match msg {
                Message::Response { id: got, result } if got == id => {
                    return result.map_err(|e| CallError::Refused {
                        code: e["code"].as_i64().unwrap_or(0),
                        message: e["message"].as_str().unwrap_or("unknown error").to_owned(),
                    });
                }
                other => {
                    self.serve(other, peer).await;
                }
            }
        }
    }

    /// Drives a turn until `peer` sees it end, the agent's output closes, or
    /// the grace after the deadline's cancel runs out. At the deadline,
    /// `peer` is told to stop and `cancel` (a method and its params) is
    /// requested.
    pub async fn turn(
        &mut self,
        peer: &mut dyn Peer,
        clock: &mut TurnClock,
        cancel: (&str, Value),
    ) -> Ending {
        let mut cancel = Some(cancel);
        loop {
            tokio::select! {
                msg = self.next() => {
                    let Some(msg) = msg else { return Ending::Closed };
                    if self.serve(msg, peer).await {
                        return Ending::Ended;
                    }
                }
                _ = clock.deadline() => {
                    peer.stopping();
                    if let Some((method, params)) = cancel.take() {
                        let _ = self.request(method, params).await;
                    }
                    clock.cancelled();
                }
                _ = clock.grace_over() => return Ending::GaveUp,
            }
        }
    }
}

/// Reads a message's shape: a request has a method and an id, a
/// notification a method alone, a response an id alone.
fn parse(mut msg: Value) -> Option<Message> {
    let method = msg.get("method").and_then(Value::as_str).map(str::to_owned);
    let id = msg.get_mut("id").map(Value::take);
    let params = msg
        .get_mut("params")
        .map(Value::take)
        .unwrap_or(Value::Null);
    match (method, id) {
        (Some(method), Some(id)) if !id.is_null() => Some(Message::Request { id, method, params }),
        (Some(method), _) => Some(Message::Notification { method, params }),
        (None, Some(id)) => {
            let result = match msg.get_mut("error").map(Value::take) {
                Some(e) if !e.is_null() => Err(e),
                _ => Ok(msg
                    .get_mut("result")
                    .map(Value::take)
                    .unwrap_or(Value::Null)),
            };
            Some(Message::Response { id, result })
        }
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_told_apart_by_method_and_id() {
        let m = |s: &str| parse(serde_json::from_str(s).unwrap());
        assert!(matches!(
            m(r#"{"method":"x","id":3,"params":{"a":1}}"#),
            Some(Message::Request { method, params, .. }) if method == "x" && params["a"] == 1
        ));
        assert!(matches!(
            m(r#"{"jsonrpc":"2.0","method":"event"}"#),
            Some(Message::Notification { method, params }) if method == "event" && params.is_null()
        ));
        assert!(matches!(
            m(r#"{"id":"omk-1","result":{"ok":true}}"#),
            Some(Message::Response { result: Ok(r), .. }) if r["ok"] == true
        ));
        assert!(matches!(
            m(r#"{"id":1,"error":{"code":-32601,"message":"no"}}"#),
            Some(Message::Response { result: Err(e), .. }) if e["code"] == METHOD_NOT_FOUND
        ));
        assert!(m(r#"{"other":1}"#).is_none());
    }
}

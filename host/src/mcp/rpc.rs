//! JSON-RPC 2.0 as MCP's stdio transport carries it: one message per line.
//! The gateway reads only the envelope — what a message is, its id and
//! method — and forwards every message it does not judge byte for byte, so
//! it serves protocol versions newer than itself.

use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The largest message the gateway reads from either side (64 MiB: a tool
/// may answer with a file or an image); a longer line is refused unread.
pub const MAX_MESSAGE: usize = 64 << 20;

/// JSON-RPC's error codes, and the ones omk answers with.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const INVALID_PARAMS: i64 = -32602;
    /// The server cannot answer: it exited or broke the protocol.
    pub const SERVER_GONE: i64 = -32000;
    /// omk refused the request.
    pub const REFUSED: i64 = -32001;
}

/// What a message is, by its envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A request: it has a method and an id, and wants an answer.
    Request { id: Value, method: String },
    /// A notification: a method, no id.
    Notification { method: String },
    /// An answer to a request: an id, and a result or an error.
    Response { id: Value },
}

/// The kind of `message`, or why it is not JSON-RPC 2.0.
pub fn kind(message: &Value) -> Result<Kind, String> {
    let Some(obj) = message.as_object() else {
        return Err(if message.is_array() {
            "a batch (omk's gateway forwards one message at a time)".into()
        } else {
            "not an object".into()
        });
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err("no `\"jsonrpc\": \"2.0\"`".into());
    }
    let id = obj.get("id").filter(|id| id.is_string() || id.is_number());
    if obj.contains_key("id") && id.is_none() && !obj.get("id").is_some_and(Value::is_null) {
        return Err("an id that is neither a string nor a number".into());
    }
    match (obj.get("method"), id) {
        (Some(Value::String(m)), Some(id)) => Ok(Kind::Request {
            id: id.clone(),
            method: m.clone(),
        }),
        (Some(Value::String(m)), None) => Ok(Kind::Notification { method: m.clone() }),
        (Some(_), _) => Err("a method that is not a string".into()),
        (None, Some(id)) if obj.contains_key("result") || obj.contains_key("error") => {
            Ok(Kind::Response { id: id.clone() })
        }
        (None, _) => Err("neither a method nor a result or error with an id".into()),
    }
}

/// The key a request is found under by its answer's id.
pub fn id_key(id: &Value) -> String {
    id.to_string()
}

/// An error answer to request `id`.
pub fn error(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// One line read: a message's bytes, or the length of a line too long to
/// keep.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Message(Vec<u8>),
    TooLong(usize),
}

/// Reads line after line from `reader`, holding at most [`MAX_MESSAGE`]
/// bytes of one, whatever the other side sends. `None` at the end.
pub struct Lines<R> {
    reader: R,
    max: usize,
}

impl<R: AsyncBufRead + Unpin> Lines<R> {
    pub fn new(reader: R) -> Lines<R> {
        Lines {
            reader,
            max: MAX_MESSAGE,
        }
    }

    #[cfg(test)]
    fn with_max(reader: R, max: usize) -> Lines<R> {
        Lines { reader, max }
    }

    /// The next line that is not blank.
    pub async fn next(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            let mut line = Vec::new();
            let mut seen = 0usize;
            let mut ended = false;
            loop {
                let buf = self.reader.fill_buf().await?;
                if buf.is_empty() {
                    break;
                }
                let (part, done) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (&buf[..i], true),
                    None => (buf, false),
                };
                seen += part.len();
                if seen <= self.max {
                    line.extend_from_slice(part);
                }
                let used = part.len() + usize::from(done);
                self.reader.consume(used);
                if done {
                    ended = true;
                    break;
                }
            }
            if !ended && seen == 0 {
                return Ok(None);
            }
            if seen > self.max {
                return Ok(Some(Line::TooLong(seen)));
            }
            if line.ends_with(b"\r") {
                line.pop();
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                if ended {
                    continue;
                }
                return Ok(None);
            }
            return Ok(Some(Line::Message(line)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_says_what_a_message_is() {
        let k = |s: &str| kind(&serde_json::from_str(s).unwrap());
        assert_eq!(
            k(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#),
            Ok(Kind::Request {
                id: json!(1),
                method: "tools/call".into()
            })
        );
        assert_eq!(
            k(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Kind::Notification {
                method: "notifications/initialized".into()
            })
        );
        assert_eq!(
            k(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#),
            Ok(Kind::Response { id: json!("a") })
        );
        for bad in [
            r#"[{"jsonrpc":"2.0","id":1,"method":"x"}]"#,
            r#"{"id":1,"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","method":7}"#,
            r#""hello""#,
        ] {
            assert!(k(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn lines_are_bounded_and_blank_ones_skipped() {
        let input: &[u8] = b"{\"a\":1}\r\n\n   \n0123456789ABCDEF\n{\"b\":2}";
        let mut lines = Lines::with_max(input, 10);
        assert_eq!(
            lines.next().await.unwrap(),
            Some(Line::Message(b"{\"a\":1}".to_vec()))
        );
        assert_eq!(lines.next().await.unwrap(), Some(Line::TooLong(16)));
        assert_eq!(
            lines.next().await.unwrap(),
            Some(Line::Message(b"{\"b\":2}".to_vec()))
        );
        assert_eq!(lines.next().await.unwrap(), None);
    }
}

//! The real server behind the gateway: a process on stdio (confined, see
//! [`super::confine`]), or a streamable-HTTP endpoint (`--url`). Either
//! way the gateway sends it one message at a time and reads what it says
//! as [`Incoming`], in order, on one channel.

use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::rpc::{self, Line, Lines};

/// What the server said, or that it stopped.
#[derive(Debug)]
pub enum Incoming {
    /// One message, as sent.
    Message(Vec<u8>),
    /// It sent what is not a message (too long, or cut off), and why.
    Broken(String),
    /// It is gone, and why (its exit status, an HTTP error).
    Closed(String),
}

/// Where the gateway's messages go.
pub enum Sender {
    Stdio(tokio::process::ChildStdin),
    Http(Arc<Http>),
}

impl Sender {
    /// Sends one message; `request` is its id when it wants an answer (an
    /// HTTP endpoint that fails answers it with an error, as a server
    /// would).
    pub async fn send(&mut self, message: &[u8], request: Option<Value>) -> Result<(), String> {
        match self {
            Sender::Stdio(stdin) => {
                let mut line = Vec::with_capacity(message.len() + 1);
                line.extend_from_slice(message);
                line.push(b'\n');
                stdin
                    .write_all(&line)
                    .await
                    .map_err(|e| format!("cannot write to the server: {e}"))?;
                stdin
                    .flush()
                    .await
                    .map_err(|e| format!("cannot write to the server: {e}"))
            }
            Sender::Http(http) => {
                let http = Arc::clone(http);
                let body = message.to_vec();
                tokio::spawn(async move { http.post(body, request).await });
                Ok(())
            }
        }
    }
}

/// Reads a server's stdout into `tx` until it ends.
pub async fn read_stdout(stdout: tokio::process::ChildStdout, tx: mpsc::Sender<Incoming>) {
    let mut lines = Lines::new(BufReader::new(stdout));
    loop {
        let incoming = match lines.next().await {
            Ok(Some(Line::Message(m))) => Incoming::Message(m),
            Ok(Some(Line::TooLong(n))) => Incoming::Broken(format!(
                "a line of {n} bytes, more than omk reads ({} MiB)",
                rpc::MAX_MESSAGE >> 20
            )),
            Ok(None) => Incoming::Closed("its output ended".into()),
            Err(e) => Incoming::Closed(format!("cannot read its output: {e}")),
        };
        let last = matches!(incoming, Incoming::Closed(_));
        if tx.send(incoming).await.is_err() || last {
            return;
        }
    }
}

/// A streamable-HTTP MCP endpoint: each message is a `POST`, answered
/// with one message (JSON) or a stream of them (server-sent events).
pub struct Http {
    url: url::Url,
    /// `Mcp-Session-Id`, once the server gives one.
    session: Mutex<Option<String>>,
    /// The protocol version agreed at `initialize`.
    version: Mutex<Option<String>>,
    tx: mpsc::Sender<Incoming>,
}

impl Http {
    /// An endpoint at `url` (`http://` or `https://`), whose answers go to
    /// `tx`.
    pub fn new(url: &str, tx: mpsc::Sender<Incoming>) -> Result<Http, String> {
        let url = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "`{url}` is not an http:// or https:// URL of an MCP endpoint"
            ));
        }
        Ok(Http {
            url,
            session: Mutex::new(None),
            version: Mutex::new(None),
            tx,
        })
    }

    async fn post(&self, body: Vec<u8>, request: Option<Value>) {
        let result = self.exchange(body).await;
        if let Err(reason) = result {
            let reason = format!("the endpoint {}: {reason}", self.url);
            let answer = match request {
                Some(id) => Incoming::Message(
                    rpc::error(&id, rpc::code::SERVER_GONE, &reason)
                        .to_string()
                        .into_bytes(),
                ),
                None => {
                    tracing::warn!("omk mcp: {reason}");
                    return;
                }
            };
            let _ = self.tx.send(answer).await;
        }
    }

    async fn exchange(&self, body: Vec<u8>) -> Result<(), String> {
        let host = self.url.host_str().unwrap_or_default().to_owned();
        let port = self.url.port_or_known_default().unwrap_or(80);
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let target = &self.url[url::Position::BeforePath..];
        let mut req = hyper::Request::post(target)
            .header(hyper::header::HOST, host_header(&self.url))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json, text/event-stream");
        if let Some(s) = self.session.lock().ok().and_then(|s| s.clone()) {
            req = req.header("mcp-session-id", s);
        }
        if let Some(v) = self.version.lock().ok().and_then(|v| v.clone()) {
            req = req.header("mcp-protocol-version", v);
        }
        let req = req
            .body(Full::new(bytes::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = if self.url.scheme() == "https" {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("`{host}`: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(crate::sandbox::secrets::upstream_tls()?)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            crate::sandbox::secrets::send(tls, req).await?
        } else {
            crate::sandbox::secrets::send(tcp, req).await?
        };
        if let Some(s) = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            && let Ok(mut held) = self.session.lock()
        {
            *held = Some(s.to_owned());
        }
        let status = response.status();
        if status == hyper::StatusCode::ACCEPTED {
            return Ok(());
        }
        if !status.is_success() {
            return Err(format!("answered HTTP {status}"));
        }
        let sse = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"));
        let mut body = response.into_body();
        let mut events = Events::default();
        let mut json = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("its answer broke off: {e}"))?;
            let Some(chunk) = frame.data_ref() else {
                continue;
            };
            if sse {
                for data in events.feed(chunk)? {
                    self.deliver(data).await;
                }
            } else {
                if json.len() + chunk.len() > rpc::MAX_MESSAGE {
                    let _ = self
                        .tx
                        .send(Incoming::Broken(format!(
                            "an answer of more than {} MiB",
                            rpc::MAX_MESSAGE >> 20
                        )))
                        .await;
                    return Ok(());
                }
                json.extend_from_slice(chunk);
            }
        }
        if !sse && !json.iter().all(u8::is_ascii_whitespace) {
            self.deliver(json).await;
        }
        Ok(())
    }

    /// Hands on one message, noting the protocol version `initialize`
    /// agreed on.
    async fn deliver(&self, message: Vec<u8>) {
        if let Ok(v) = serde_json::from_slice::<Value>(&message)
            && let Some(version) = v["result"]["protocolVersion"].as_str()
            && let Ok(mut held) = self.version.lock()
        {
            *held = Some(version.to_owned());
        }
        let _ = self.tx.send(Incoming::Message(message)).await;
    }
}

fn host_header(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// Server-sent events, fed as they arrive: the `data` of each event.
#[derive(Default)]
struct Events {
    line: Vec<u8>,
    data: Vec<u8>,
}

impl Events {
    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::new();
        for &b in chunk {
            if b != b'\n' {
                self.line.push(b);
                if self.line.len() + self.data.len() > rpc::MAX_MESSAGE {
                    return Err(format!(
                        "an event of more than {} MiB",
                        rpc::MAX_MESSAGE >> 20
                    ));
                }
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.ends_with(b"\r") {
                line.pop();
            }
            if line.is_empty() {
                if !self.data.is_empty() {
                    out.push(std::mem::take(&mut self.data));
                }
            } else if let Some(rest) = line.strip_prefix(b"data:") {
                if !self.data.is_empty() {
                    self.data.push(b'\n');
                }
                self.data
                    .extend_from_slice(rest.strip_prefix(b" ").unwrap_or(rest));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_give_their_data_however_the_stream_is_cut() {
        let stream =
            b"event: message\ndata: {\"a\":\ndata: 1}\n\n: comment\nid: 7\ndata:{\"b\":2}\r\n\r\n";
        for cut in [1, 3, 7, stream.len()] {
            let mut events = Events::default();
            let mut got = Vec::new();
            for part in stream.chunks(cut) {
                got.extend(events.feed(part).unwrap());
            }
            assert_eq!(
                got,
                [b"{\"a\":\n1}".to_vec(), b"{\"b\":2}".to_vec()],
                "{cut}"
            );
        }
    }

    #[test]
    fn only_http_urls_are_endpoints() {
        let (tx, _rx) = mpsc::channel(1);
        assert!(Http::new("http://127.0.0.1:9/mcp", tx.clone()).is_ok());
        for bad in ["ftp://x/y", "not a url", "file:///tmp/x"] {
            assert!(Http::new(bad, tx.clone()).is_err(), "{bad}");
        }
    }
}

//! `omk serve`: a local web page of every goal and guarded session of this
//! state directory, updated live, where a person answers what waits.
//!
//! - **Loopback, a token, CSRF.** It binds `127.0.0.1` unless `--listen`
//!   names another address, refuses peers that are not loopback unless it
//!   was told to listen beyond it, and refuses a `Host` it does not serve
//!   (a page of another site that rebinds its name to 127.0.0.1 gets 403).
//!   The URL it prints carries a random token (Jupyter's way); the first
//!   visit trades it for a `SameSite=Strict`, `HttpOnly` cookie. Every
//!   form carries a CSRF token derived from it, checked with the request's
//!   `Origin` on every write; anything else is 403.
//! - **Pages** ([`pages`]) are server-rendered HTML that works without
//!   scripts: the list of goals and sessions with what waits, and each
//!   goal's report (status, budgets, the picture of its run, each task's
//!   decisions) with its pending approvals and Approve / Deny buttons,
//!   which answer as `omk approve` does. A small script only reloads the
//!   live part when the goal's log grows (server-sent events).
//! - **`/events`**: the same events as a feed — each event appended to a
//!   goal's log from now on (`?goal=ID` for one, `?from=N` to start at
//!   event N), one JSON object per server-sent event.
//!
//! It reads omk's state and writes nothing but answers to asks.

mod pages;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::goal::GoalStore;

/// The largest form omk reads (an approval's note included).
const MAX_FORM: usize = 64 * 1024;

/// How often a live stream looks at the logs.
const POLL: Duration = Duration::from_millis(400);

/// The cookie that carries the token after the first visit.
const COOKIE: &str = "omk_token";

type Body = BoxBody<Bytes, Infallible>;

/// What the server shares between requests.
struct Ctx {
    store: GoalStore,
    token: String,
    csrf: String,
    /// The `Host` values it answers to.
    hosts: Vec<String>,
    /// Whether peers beyond loopback may ask (it was told to listen there).
    open: bool,
}

/// A server bound and ready.
pub struct Server {
    listener: tokio::net::TcpListener,
    ctx: Arc<Ctx>,
}

impl Server {
    /// Binds `listen` for the goals of `store`, with a new random token.
    pub async fn bind(store: GoalStore, listen: SocketAddr) -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let mut raw = [0u8; 24];
        getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
        let token = hex::encode(raw);
        let csrf = hex::encode(Sha256::digest(
            format!("omk-serve-csrf\n{token}").as_bytes(),
        ));
        let port = addr.port();
        let mut hosts = vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ];
        let open = !addr.ip().is_loopback();
        if open {
            hosts.push(addr.to_string());
        }
        Ok(Server {
            listener,
            ctx: Arc::new(Ctx {
                store,
                token,
                csrf,
                hosts,
                open,
            }),
        })
    }

    /// The URL to open: the address it listens on, with the token.
    pub fn url(&self) -> String {
        let addr = self
            .listener
            .local_addr()
            .map_or_else(|_| "127.0.0.1:0".into(), |a| a.to_string());
        let addr = addr.replace("0.0.0.0", "127.0.0.1");
        format!("http://{addr}/?token={}", self.ctx.token)
    }

    /// Serves until the process ends.
    pub async fn run(self) -> std::io::Result<()> {
        loop {
            let (stream, peer) = self.listener.accept().await?;
            let ctx = Arc::clone(&self.ctx);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let ctx = Arc::clone(&ctx);
                    async move { Ok::<_, Infallible>(handle(&ctx, peer, req).await) }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                if let Err(e) = served {
                    tracing::debug!("omk serve: {e}");
                }
            });
        }
    }
}

/// Whether `peer` may ask at all.
fn peer_allowed(open: bool, peer: IpAddr) -> bool {
    open || peer.is_loopback() || peer.to_canonical().is_loopback()
}

/// The value of cookie `name` in `req`.
fn cookie<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A query string's (or form's) fields, decoded.
fn fields(text: &str) -> HashMap<String, String> {
    form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

/// Compares two secrets without telling, by time, how much matched.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn handle(ctx: &Ctx, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    if !peer_allowed(ctx.open, peer.ip()) {
        return text(
            StatusCode::FORBIDDEN,
            "omk serve answers this machine only; start it with `--listen ADDR:PORT` to be reached from elsewhere",
        );
    }
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !ctx.hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
        return text(
            StatusCode::FORBIDDEN,
            "this is not a host omk serve answers to",
        );
    }
    let query = fields(req.uri().query().unwrap_or_default());
    let path = req.uri().path().to_owned();
    if let Some(t) = query.get("token") {
        if !same(t, &ctx.token) {
            return text(
                StatusCode::FORBIDDEN,
                "wrong token: open the URL omk serve printed",
            );
        }
        // Trade the token in the URL for a cookie, and drop it from the
        // address bar (and from the history and referrers).
        return redirect(
            &path,
            Some(format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
                ctx.token
            )),
        );
    }
    if !cookie(&req, COOKIE).is_some_and(|c| same(c, &ctx.token)) {
        return text(
            StatusCode::FORBIDDEN,
            "no token: open the URL omk serve printed (it carries one)",
        );
    }
    let method = req.method().clone();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        (Method::GET, [""]) => html(blocking(ctx, |c| pages::index(&c.store, &c.csrf)).await),
        (Method::GET, ["goal", id]) => {
            let id = (*id).to_owned();
            html(blocking(ctx, move |c| pages::goal(&c.store, &id, &c.csrf)).await)
        }
        (Method::GET, ["goal", id, "live"]) => live(ctx, Some((*id).to_owned()), None, true),
        (Method::GET, ["events"]) => {
            let from = query.get("from").and_then(|n| n.parse().ok());
            live(ctx, query.get("goal").cloned(), from, false)
        }
        (Method::POST, ["approve"]) => approve(ctx, &host, req).await,
        _ => text(StatusCode::NOT_FOUND, "no such page"),
    }
}

/// Runs `f` (which reads the state directory) off the async threads.
async fn blocking<T: Send + 'static>(ctx: &Ctx, f: impl FnOnce(&Ctx) -> T + Send + 'static) -> T {
    let ctx = Ctx {
        store: ctx.store.clone(),
        token: String::new(),
        csrf: ctx.csrf.clone(),
        hosts: Vec::new(),
        open: ctx.open,
    };
    match tokio::task::spawn_blocking(move || f(&ctx)).await {
        Ok(t) => t,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// `POST /approve`: an answer to an ask, from a page's form.
async fn approve(ctx: &Ctx, host: &str, req: Request<Incoming>) -> Response<Body> {
    // A browser names the page a form came from; it must be this server.
    if let Some(origin) = req
        .headers()
        .get(hyper::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        && origin != format!("http://{host}")
    {
        return text(StatusCode::FORBIDDEN, "the form came from another site");
    }
    let body = match http_body_util::Limited::new(req.into_body(), MAX_FORM)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large"),
    };
    let form = fields(&String::from_utf8_lossy(&body));
    if !form.get("csrf").is_some_and(|c| same(c, &ctx.csrf)) {
        return text(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong: reload the page",
        );
    }
    let (Some(id), Some(goal)) = (form.get("id").cloned(), form.get("goal").cloned()) else {
        return text(StatusCode::BAD_REQUEST, "the form names no ask");
    };
    let approved = match form.get("answer").map(String::as_str) {
        Some("approve") => true,
        Some("deny") => false,
        _ => return text(StatusCode::BAD_REQUEST, "answer `approve` or `deny`"),
    };
    let note = form
        .get("note")
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    let back = format!("/goal/{goal}");
    let answered = blocking(ctx, move |c| {
        crate::approvals::answer(&c.store, Some(&goal), &id, approved, note)
    })
    .await;
    match answered {
        Ok(_) => redirect(&back, None),
        Err(e) => text(StatusCode::CONFLICT, &format!("{e}")),
    }
}

/// A stream of server-sent events: each event appended to the log of
/// `goal` (every goal without one) from event `from` on (from now
/// without it). `changes_only` sends a bare `changed` per growth (what a
/// page needs to reload), else each event's JSON.
fn live(ctx: &Ctx, goal: Option<String>, from: Option<u64>, changes_only: bool) -> Response<Body> {
    let store = ctx.store.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
    tokio::spawn(async move {
        // Each goal's log: how many bytes of it were read.
        let mut read: HashMap<String, u64> = HashMap::new();
        let mut first = true;
        loop {
            let ids = match &goal {
                Some(g) => vec![g.clone()],
                None => store.ids().unwrap_or_default(),
            };
            let mut out = Vec::new();
            for id in ids {
                let path = store.dir(&id).events_file();
                let len = std::fs::metadata(&path).map_or(0, |m| m.len());
                let seen = read
                    .entry(id.clone())
                    .or_insert(if first && from.is_none() { len } else { 0 });
                if len <= *seen {
                    continue;
                }
                if changes_only {
                    out.push("event: changed\ndata: {}\n\n".to_owned());
                    *seen = len;
                    continue;
                }
                let (lines, upto) = new_lines(&path, *seen);
                *seen = upto;
                for line in lines {
                    let Ok(e) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    if from.is_some_and(|n| e["id"].as_u64().unwrap_or(0) < n) {
                        continue;
                    }
                    let item = serde_json::json!({"goal": id, "event": e});
                    out.push(format!("data: {item}\n\n"));
                }
            }
            first = false;
            if out.is_empty() {
                out.push(": waiting\n\n".to_owned());
            }
            for chunk in out {
                if tx.send(Ok(Frame::data(Bytes::from(chunk)))).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(POLL).await;
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}

/// The whole lines of `path` after byte `from`, and where they end.
fn new_lines(path: &std::path::Path, from: u64) -> (Vec<String>, u64) {
    use std::io::{Read, Seek};
    let Ok(mut f) = std::fs::File::open(path) else {
        return (Vec::new(), from);
    };
    if f.seek(std::io::SeekFrom::Start(from)).is_err() {
        return (Vec::new(), from);
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return (Vec::new(), from);
    }
    // A line still being written is left for the next look.
    let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
        return (Vec::new(), from);
    };
    let lines = String::from_utf8_lossy(&buf[..end])
        .lines()
        .map(str::to_owned)
        .collect();
    (lines, from + end as u64 + 1)
}

fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    // Not to be framed by another site.
    h.insert(
        "x-frame-options",
        hyper::header::HeaderValue::from_static("DENY"),
    );
    r
}

fn html(page: Result<String, String>) -> Response<Body> {
    match page {
        Ok(h) => with_type(StatusCode::OK, "text/html; charset=utf-8", h),
        Err(e) => text(StatusCode::NOT_FOUND, &e),
    }
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    with_type(status, "text/plain; charset=utf-8", format!("{message}\n"))
}

fn redirect(to: &str, cookie: Option<String>) -> Response<Body> {
    let mut r = text(StatusCode::SEE_OTHER, "see other");
    if let Ok(v) = hyper::header::HeaderValue::from_str(to) {
        r.headers_mut().insert(hyper::header::LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| hyper::header::HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(hyper::header::SET_COOKIE, c);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_peers_unless_told_to_listen_beyond() {
        let lan: IpAddr = "192.168.1.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(peer_allowed(false, "127.0.0.1".parse().unwrap()));
        assert!(peer_allowed(false, "::1".parse().unwrap()));
        assert!(peer_allowed(false, mapped));
        assert!(!peer_allowed(false, lan));
        assert!(peer_allowed(true, lan));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }

    #[test]
    fn a_line_being_written_waits_for_the_next_look() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        std::fs::write(&p, "{\"id\":1}\n{\"id\":2}\n{\"id\"").unwrap();
        let (lines, upto) = new_lines(&p, 0);
        assert_eq!(lines, ["{\"id\":1}", "{\"id\":2}"]);
        assert_eq!(upto, 18);
        assert_eq!(new_lines(&p, upto).0, Vec::<String>::new());
    }
}

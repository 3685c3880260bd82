//! The gateway's two directions. From the client, each message is read as
//! an envelope ([`super::rpc`]); `tools/call` and `resources/read` are
//! judged before they are sent on, a refusal answered in the server's
//! place; everything else goes to the server unchanged. From the server,
//! answers are matched to the requests they answer: a `tools/list` answer
//! is checked against the pins and loses the tools whose definition
//! changed; a `tools/call` answer is recorded; the rest goes to the client
//! unchanged.
//!
//! A server that exits, or says anything that is not a JSON-RPC message
//! (not JSON, a line over 64 MiB, no envelope), is done: its process is
//! killed, each request it has not answered gets an error, and so does
//! every later one. The client and omk go on.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::paths::RESOURCE_READ;
use super::pins::Pins;
use super::rpc::{self, Kind, Line, Lines, code};
use super::upstream::{Incoming, Sender};
use crate::guard::{Client, Policy};
use crate::proof::events::{NoteDetail, ToolAnswered, ToolsReviewed};

/// How long a call waits for the gateway's own `tools/list`.
const OWN_LIST_WAIT: Duration = Duration::from_secs(30);

/// The project's policy, loaded once, in the background from the start:
/// the server starts (and the client's `initialize` is answered) while
/// the gates compile; the first call waits for them.
pub struct Loading {
    root: PathBuf,
    policy: std::sync::OnceLock<Result<Policy, String>>,
}

impl Loading {
    /// Starts loading the policy of the project at `root`; a policy that
    /// does not load refuses every call, saying why.
    pub fn start(root: &std::path::Path, name: &str) -> Arc<Loading> {
        let loading = Arc::new(Loading {
            root: root.to_owned(),
            policy: std::sync::OnceLock::new(),
        });
        let (l, name) = (Arc::clone(&loading), name.to_owned());
        std::thread::spawn(move || {
            if let Err(e) = l.get() {
                eprintln!("omk mcp: every call of `{name}` is refused: {e}");
            }
        });
        loading
    }

    fn get(&self) -> Result<&Policy, &String> {
        self.policy
            .get_or_init(|| Policy::load(&self.root))
            .as_ref()
    }
}

/// How the gateway's calls are judged.
pub enum Judging {
    /// Here, by the project's policy as the gateway started.
    Local(Arc<Loading>),
    /// By omk's judge outside the sandbox the gateway runs in (`omk guard
    /// run`), at this address.
    Remote(String),
}

impl Judging {
    /// Asks about one event (a client's `PreToolUse` in form); `Err` is
    /// the refusal's reason.
    fn ask(&self, client: Client, event: &Value) -> Result<(), String> {
        let input = event.to_string();
        let reply = match self {
            Judging::Local(loading) => match loading.get() {
                Ok(policy) => crate::guard::hook_with(client, input.as_bytes(), policy),
                Err(e) => return Err(format!("omk fails closed: {e}")),
            },
            Judging::Remote(addr) => crate::guard::judge::ask(client, addr, input.as_bytes()),
        };
        if reply.code == 0 {
            return Ok(());
        }
        let reason = reply.stderr.trim();
        let reason = reason
            .split_once("hook): ")
            .filter(|(head, _)| head.starts_with("refused by omk guard"))
            .map_or(reason, |(_, rest)| rest);
        Err(reason.to_owned())
    }
}

/// One server's gateway.
pub struct Gateway {
    /// The server's name, as the client knows it.
    pub name: String,
    pub client: Client,
    /// The session id its calls are recorded under.
    pub session: String,
    /// The project.
    pub root: PathBuf,
    pub judging: Judging,
    pub pins: Pins,
}

/// Why a request waits for an answer.
enum Purpose {
    /// The client asked.
    Client,
    /// The gateway listed the tools itself, before a call to one it had
    /// not seen listed.
    OwnList(oneshot::Sender<Result<(), String>>),
}

struct Pending {
    id: Value,
    method: String,
    tool: Option<String>,
    arguments: (usize, String),
    started: Instant,
    /// A `tools/list` without a cursor: its answer replaces what is
    /// callable.
    first_page: bool,
    purpose: Purpose,
}

#[derive(Default)]
struct State {
    pending: HashMap<String, Pending>,
    /// The tools that may be called, with the digest of their definition.
    callable: BTreeMap<String, String>,
    /// The tools hidden because their definition changed, and what changed.
    changed: BTreeMap<String, Vec<&'static str>>,
    /// Why the server can answer no more.
    gone: Option<String>,
    own_lists: u64,
}

/// What the gateway shares between its two directions.
struct Shared {
    gateway: Gateway,
    state: Mutex<State>,
    out: mpsc::Sender<Vec<u8>>,
    /// The server's process group, killed when it breaks the protocol.
    group: Option<i32>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn to_client(&self, message: Vec<u8>) {
        let _ = self.out.send(message).await;
    }

    async fn answer(&self, message: Value) {
        self.to_client(message.to_string().into_bytes()).await;
    }

    /// The server is done: every request it has not answered gets an
    /// error, and its processes are killed.
    async fn gone(&self, reason: String) {
        let pending: Vec<Pending> = {
            let mut state = self.state();
            if state.gone.is_some() {
                return;
            }
            tracing::warn!("omk mcp: the server `{}` {reason}", self.gateway.name);
            state.gone = Some(format!("the MCP server `{}` {reason}", self.gateway.name));
            state.pending.drain().map(|(_, p)| p).collect()
        };
        if let Some(group) = self.group {
            // SAFETY: kill(2) of the server's own process group.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        let message = format!("the MCP server `{}` {reason}", self.gateway.name);
        for p in pending {
            match p.purpose {
                Purpose::Client => {
                    self.answer(rpc::error(&p.id, code::SERVER_GONE, &message))
                        .await;
                }
                Purpose::OwnList(tx) => {
                    let _ = tx.send(Err(message.clone()));
                }
            }
        }
    }

    /// Records a note in the session's log (through the judge, which
    /// writes the record), after the fact: a note that cannot be written
    /// is a warning.
    fn note(self: &Arc<Self>, tool: &str, note: &str, detail: Value) {
        let shared = Arc::clone(self);
        let event = json!({
            "hook_event_name": "PostToolUse",
            "session_id": shared.gateway.session,
            "cwd": shared.gateway.root,
            "tool_name": format!("mcp__{}__{tool}", shared.gateway.name),
            crate::guard::NOTE_FIELD: {"note": note, "detail": detail},
        });
        tokio::task::spawn_blocking(move || {
            if let Err(e) = shared.gateway.judging.ask(shared.gateway.client, &event) {
                tracing::warn!(
                    "omk mcp: cannot record a note of `{}`: {e}",
                    shared.gateway.name
                );
            }
        });
    }
}

/// Serves the client on `input` and `output` until it closes its side:
/// its messages go to the server through `sender`, the server's come on
/// `incoming`. `group` is the server's process group, if it is a process.
pub async fn serve<R, W>(
    gateway: Gateway,
    input: R,
    output: W,
    mut sender: Sender,
    incoming: mpsc::Receiver<Incoming>,
    group: Option<i32>,
) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, out_rx) = mpsc::channel::<Vec<u8>>(256);
    let writer = tokio::spawn(write_client(output, out_rx));
    let shared = Arc::new(Shared {
        gateway,
        state: Mutex::new(State::default()),
        out,
        group,
    });
    let from_server = tokio::spawn(from_server(Arc::clone(&shared), incoming));
    let mut lines = Lines::new(input);
    while let Some(line) = lines.next().await? {
        match line {
            Line::TooLong(n) => {
                let m = format!(
                    "a message of {n} bytes, more than omk's gateway reads ({} MiB)",
                    rpc::MAX_MESSAGE >> 20
                );
                shared
                    .answer(rpc::error(&Value::Null, code::INVALID_REQUEST, &m))
                    .await;
            }
            Line::Message(bytes) => from_client(&shared, &mut sender, bytes).await,
        }
        if writer.is_finished() {
            break; // the client stopped reading
        }
    }
    drop(sender);
    from_server.abort();
    drop(shared);
    let _ = writer.await;
    Ok(())
}

async fn write_client<W: AsyncWrite + Unpin>(mut output: W, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(mut message) = rx.recv().await {
        message.push(b'\n');
        if output.write_all(&message).await.is_err() || output.flush().await.is_err() {
            return;
        }
    }
}

async fn from_client(shared: &Arc<Shared>, sender: &mut Sender, bytes: Vec<u8>) {
    let message: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            let m = format!("not JSON: {e}");
            shared
                .answer(rpc::error(&Value::Null, code::PARSE_ERROR, &m))
                .await;
            return;
        }
    };
    let kind = match rpc::kind(&message) {
        Ok(k) => k,
        Err(why) => {
            let id = message.get("id").cloned().unwrap_or(Value::Null);
            let m = format!("not a JSON-RPC 2.0 message: {why}");
            shared
                .answer(rpc::error(&id, code::INVALID_REQUEST, &m))
                .await;
            return;
        }
    };
    let gone = shared.state().gone.clone();
    match kind {
        Kind::Request { id, method } => {
            if let Some(reason) = gone {
                shared
                    .answer(rpc::error(&id, code::SERVER_GONE, &reason))
                    .await;
                return;
            }
            let params = &message["params"];
            let (tool, arguments, first_page) = match method.as_str() {
                "tools/call" => {
                    let Some(tool) = params["name"].as_str() else {
                        let m = "a `tools/call` without the tool's `name`";
                        shared
                            .answer(rpc::error(&id, code::INVALID_PARAMS, m))
                            .await;
                        return;
                    };
                    let arguments = params.get("arguments").cloned().unwrap_or(json!({}));
                    if let Err(reason) = call_allowed(shared, sender, tool, &arguments).await {
                        shared.answer(refused_call(&id, &reason)).await;
                        return;
                    }
                    (Some(tool.to_owned()), Some(arguments), false)
                }
                "resources/read" => {
                    let uri = params["uri"].as_str().unwrap_or_default();
                    let arguments = json!({"uri": uri});
                    if let Err(reason) = judge(shared, RESOURCE_READ, &arguments, "").await {
                        shared.answer(rpc::error(&id, code::REFUSED, &reason)).await;
                        return;
                    }
                    (None, None, false)
                }
                "tools/list" => (None, None, params.get("cursor").is_none_or(Value::is_null)),
                _ => (None, None, false),
            };
            let arguments = arguments.map_or((0, String::new()), |a| {
                let text = a.to_string();
                (text.len(), omk_core::sha256_hex(text.as_bytes()))
            });
            let pending = Pending {
                id: id.clone(),
                method,
                tool,
                arguments,
                started: Instant::now(),
                first_page,
                purpose: Purpose::Client,
            };
            shared.state().pending.insert(rpc::id_key(&id), pending);
            if let Err(e) = sender.send(&bytes, Some(id)).await {
                shared.gone(format!("cannot be reached: {e}")).await;
            }
        }
        Kind::Notification { .. } | Kind::Response { .. } => {
            if gone.is_none()
                && let Err(e) = sender.send(&bytes, None).await
            {
                shared.gone(format!("cannot be reached: {e}")).await;
            }
        }
    }
}

/// The answer to a refused `tools/call`: a tool error, which the model
/// reads (MCP's tool errors are results, so that the model sees them).
fn refused_call(id: &Value, reason: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": {
        "content": [{"type": "text", "text": format!("refused by omk: {reason}")}],
        "isError": true,
    }})
}

/// Whether `tool` may be called with `arguments`: listed with its pinned
/// definition, then judged.
async fn call_allowed(
    shared: &Arc<Shared>,
    sender: &mut Sender,
    tool: &str,
    arguments: &Value,
) -> Result<(), String> {
    let name = shared.gateway.name.clone();
    let known = |shared: &Shared| -> Result<Option<String>, String> {
        let state = shared.state();
        if let Some(what) = state.changed.get(tool) {
            return Err(format!(
                "the {} of `{name}`'s tool `{tool}` changed since omk pinned it, so the tool is hidden and its calls refused until you accept the new definition: `omk mcp pins` shows it, `omk mcp accept {name} {tool}` accepts it",
                what.join(" and ")
            ));
        }
        Ok(state.callable.get(tool).cloned())
    };
    let digest = match known(shared)? {
        Some(d) => d,
        None => {
            list_tools(shared, sender).await?;
            known(shared)?
                .ok_or_else(|| format!("the MCP server `{name}` does not list a tool `{tool}`"))?
        }
    };
    judge(shared, tool, arguments, &digest).await
}

/// Lists the server's tools for the gateway itself, and waits for the
/// answer to be reviewed.
async fn list_tools(shared: &Arc<Shared>, sender: &mut Sender) -> Result<(), String> {
    let (tx, rx) = oneshot::channel();
    let id = {
        let mut state = shared.state();
        state.own_lists += 1;
        let id = json!(format!(
            "omk-gateway-{}-{}",
            std::process::id(),
            state.own_lists
        ));
        state.pending.insert(
            rpc::id_key(&id),
            Pending {
                id: id.clone(),
                method: "tools/list".into(),
                tool: None,
                arguments: (0, String::new()),
                started: Instant::now(),
                first_page: true,
                purpose: Purpose::OwnList(tx),
            },
        );
        id
    };
    let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
    if let Err(e) = sender.send(request.to_string().as_bytes(), Some(id)).await {
        shared.gone(format!("cannot be reached: {e}")).await;
    }
    match tokio::time::timeout(OWN_LIST_WAIT, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err("the gateway stopped".into()),
        Err(_) => Err(format!(
            "the MCP server `{}` did not list its tools within {}s",
            shared.gateway.name,
            OWN_LIST_WAIT.as_secs()
        )),
    }
}

/// Judges a call of `tool` (or a resource read) as the project's gates
/// would a client's call of `mcp__SERVER__TOOL`.
async fn judge(
    shared: &Arc<Shared>,
    tool: &str,
    arguments: &Value,
    digest: &str,
) -> Result<(), String> {
    let g = &shared.gateway;
    let event = json!({
        "hook_event_name": "PreToolUse",
        "session_id": g.session,
        "cwd": g.root,
        "tool_name": format!("mcp__{}__{tool}", g.name),
        "tool_input": arguments,
        crate::guard::clients::DIGEST_FIELD: digest,
    });
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || shared.gateway.judging.ask(shared.gateway.client, &event))
        .await
        .unwrap_or_else(|_| Err("omk fails closed: the judgment did not finish".into()))
}

async fn from_server(shared: Arc<Shared>, mut incoming: mpsc::Receiver<Incoming>) {
    while let Some(incoming) = incoming.recv().await {
        let bytes = match incoming {
            Incoming::Message(b) => b,
            Incoming::Broken(why) => {
                shared.gone(format!("broke the protocol: {why}")).await;
                continue;
            }
            Incoming::Closed(why) => {
                shared.gone(format!("is gone: {why}")).await;
                continue;
            }
        };
        if shared.state().gone.is_some() {
            continue;
        }
        let message: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                let shown: String = String::from_utf8_lossy(&bytes).chars().take(80).collect();
                shared
                    .gone(format!(
                        "broke the protocol: it sent `{shown}`, which is not JSON ({e})"
                    ))
                    .await;
                continue;
            }
        };
        match rpc::kind(&message) {
            Err(why) => {
                shared
                    .gone(format!(
                        "broke the protocol: it sent a message that is {why}"
                    ))
                    .await;
            }
            Ok(Kind::Response { id }) => {
                let pending = shared.state().pending.remove(&rpc::id_key(&id));
                match pending {
                    Some(p) => answered(&shared, p, message, bytes).await,
                    None => tracing::warn!(
                        "omk mcp: `{}` answered a request nobody sent ({id}); dropped",
                        shared.gateway.name
                    ),
                }
            }
            Ok(Kind::Request { .. } | Kind::Notification { .. }) => {
                shared.to_client(bytes).await;
            }
        }
    }
}

/// The server answered `p`.
async fn answered(shared: &Arc<Shared>, p: Pending, mut message: Value, bytes: Vec<u8>) {
    match (p.method.as_str(), p.purpose) {
        ("tools/list", purpose) => {
            let reviewed = review(shared, &mut message, p.first_page).await;
            match purpose {
                Purpose::OwnList(tx) => {
                    let reviewed = match message["error"]["message"].as_str() {
                        Some(e) => Err(format!(
                            "the MCP server `{}` could not list its tools: {e}",
                            shared.gateway.name
                        )),
                        None => reviewed,
                    };
                    let _ = tx.send(reviewed);
                }
                Purpose::Client => match reviewed {
                    Ok(()) => shared.answer(message).await,
                    Err(reason) => {
                        shared
                            .answer(rpc::error(&p.id, code::REFUSED, &reason))
                            .await;
                    }
                },
            }
        }
        ("tools/call", Purpose::Client) => {
            let is_error = message.get("error").is_some()
                || message["result"]["isError"].as_bool() == Some(true);
            let tool = p.tool.unwrap_or_default();
            let detail = ToolAnswered {
                server: shared.gateway.name.clone(),
                tool: tool.clone(),
                arguments_bytes: p.arguments.0,
                arguments_sha256: p.arguments.1,
                answer_bytes: bytes.len(),
                is_error,
                ms: u64::try_from(p.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            };
            shared.to_client(bytes).await;
            shared.note(
                &tool,
                ToolAnswered::NOTE,
                serde_json::to_value(detail).unwrap_or_default(),
            );
        }
        (_, Purpose::Client) => shared.to_client(bytes).await,
        (_, Purpose::OwnList(tx)) => {
            let _ = tx.send(Err("an answer to another request".into()));
        }
    }
}

/// Checks a `tools/list` answer against the pins: the tools whose
/// definition changed are taken out of it, and what may be called is
/// noted. An answer that cannot be checked lists nothing.
async fn review(shared: &Arc<Shared>, message: &mut Value, first_page: bool) -> Result<(), String> {
    if message.get("error").is_some() {
        return Ok(()); // the server's own error, passed on
    }
    let Some(tools) = message["result"]["tools"].as_array().cloned() else {
        return Err(format!(
            "the MCP server `{}` answered `tools/list` without a list of tools",
            shared.gateway.name
        ));
    };
    let who = Arc::clone(shared);
    let reviewed = tokio::task::spawn_blocking(move || {
        who.gateway
            .pins
            .review(&who.gateway.name, &tools, Utc::now())
    })
    .await
    .map_err(|_| "omk fails closed: the review of the tools did not finish".to_owned())?;
    let review = match reviewed {
        Ok(r) => r,
        Err(e) => {
            let mut state = shared.state();
            state.callable.clear();
            let help = omk_core::diagnose::Diagnose::help(&e).unwrap_or_default();
            return Err(format!("omk fails closed: {e} ({help})"));
        }
    };
    if let Some(list) = message["result"]["tools"].as_array_mut() {
        list.retain(|t| {
            t["name"]
                .as_str()
                .is_some_and(|n| review.callable.contains_key(n))
        });
    }
    {
        let mut state = shared.state();
        if first_page {
            state.callable.clear();
            state.changed.clear();
        }
        state.callable.extend(review.callable.clone());
        for (tool, what) in &review.changed {
            state.changed.insert(tool.clone(), what.clone());
        }
    }
    for (tool, what) in &review.changed {
        let name = &shared.gateway.name;
        eprintln!(
            "omk mcp: the {} of `{name}`'s tool `{tool}` changed since omk pinned it: the tool is hidden until you accept it (`omk mcp pins`, then `omk mcp accept {name} {tool}`)",
            what.join(" and ")
        );
    }
    if !review.new.is_empty() || !review.changed.is_empty() {
        let detail = ToolsReviewed {
            server: shared.gateway.name.clone(),
            new: review.new.clone(),
            changed: review.changed.iter().map(|(t, _)| t.clone()).collect(),
        };
        shared.note(
            "tools/list",
            ToolsReviewed::NOTE,
            serde_json::to_value(detail).unwrap_or_default(),
        );
    }
    Ok(())
}

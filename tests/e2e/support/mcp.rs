//! MCP for the end-to-end tests: the real servers (installed from their
//! registries on first use, like the clients), and a client that speaks
//! MCP to `omk mcp run` on its stdio, as Claude Code or Codex would.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Omk;
use super::clients::{FileLock, cache, installed};

/// The pin of the Python server, one home for the tests and CI.
pub const GIT_SERVER: &str = "mcp-server-git==2026.10.19";

/// The official filesystem server's entry point (run with `node`).
pub fn filesystem_server() -> Option<PathBuf> {
    installed("mcp-filesystem")
}

/// The official git server (PyPI), in a virtualenv of its own under the
/// test cache: its program.
pub fn git_server() -> Option<PathBuf> {
    let dir = cache().join("mcp-git");
    let program = dir.join("venv/bin/mcp-server-git");
    let stamp = dir.join(".omk-pin");
    std::fs::create_dir_all(&dir).unwrap();
    let _one_at_a_time = FileLock::take(&dir.with_extension("lock"));
    if program.exists() && std::fs::read_to_string(&stamp).is_ok_and(|p| p == GIT_SERVER) {
        return Some(program);
    }
    let venv = dir.join("venv");
    let made = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    let out = made.then(|| {
        std::process::Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", GIT_SERVER])
            .stdin(Stdio::null())
            .output()
    });
    match out {
        Some(Ok(o)) if o.status.success() && program.exists() => {
            std::fs::write(&stamp, GIT_SERVER).unwrap();
            Some(program)
        }
        other => {
            let why = match other {
                Some(Ok(o)) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Some(Err(e)) => e.to_string(),
                None => "python3 -m venv failed".into(),
            };
            super::skip(&format!("cannot install {GIT_SERVER}: {why}"));
            None
        }
    }
}

/// How long the client waits for an answer.
const WAIT: Duration = Duration::from_secs(90);

/// An MCP client on `omk mcp run ARGS`' stdio.
pub struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    next: u64,
    /// Everything the gateway said that was not the answer awaited.
    pub other: Vec<Value>,
}

impl Client {
    /// Starts `omk mcp ARGS` (`run --name … -- server…`) in the project and
    /// initializes the session.
    pub fn start(omk: &Omk, args: &[&str], env: &[(&str, &str)]) -> Client {
        let mut client = Client::spawn(omk, args, env);
        let init = client.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "omk-e2e", "version": "1"}}),
        );
        assert!(
            init.get("result").is_some(),
            "initialize answered {init}\n{}",
            client.stderr_so_far()
        );
        client.notify("notifications/initialized", json!({}));
        client
    }

    /// Starts it, with `env` added, without initializing.
    pub fn spawn(omk: &Omk, args: &[&str], env: &[(&str, &str)]) -> Client {
        let mut child = omk
            .command()
            .arg("mcp")
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("omk mcp starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("the gateway wrote a line that is not JSON ({e}): {line}")
                });
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Client {
            child,
            stdin,
            lines: rx,
            next: 0,
            other: Vec::new(),
        }
    }

    /// Writes one raw line to the gateway.
    pub fn send_line(&mut self, line: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        let m = json!({"jsonrpc": "2.0", "method": method, "params": params});
        self.send_line(m.to_string().as_bytes());
    }

    /// Sends a request and waits for its answer.
    #[track_caller]
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = json!(self.next);
        let m = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_line(m.to_string().as_bytes());
        self.answer(&id)
    }

    /// Waits for the answer to request `id`.
    #[track_caller]
    pub fn answer(&mut self, id: &Value) -> Value {
        let until = Instant::now() + WAIT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if v.get("id") == Some(id) && v.get("method").is_none() => return v,
                Ok(v) => self.other.push(v),
                Err(_) => panic!(
                    "no answer to request {id} within {}s\n{}",
                    WAIT.as_secs(),
                    self.stderr_so_far()
                ),
            }
        }
    }

    /// Calls `tool` with `arguments`: the whole answer.
    #[track_caller]
    pub fn call(&mut self, tool: &str, arguments: Value) -> Value {
        self.request("tools/call", json!({"name": tool, "arguments": arguments}))
    }

    /// The names of the tools listed.
    #[track_caller]
    pub fn tools(&mut self) -> Vec<String> {
        let list = self.request("tools/list", json!({}));
        list["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("tools/list answered {list}"))
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect()
    }

    fn stderr_so_far(&mut self) -> String {
        if let Some(status) = self.child.try_wait().ok().flatten() {
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return format!("the gateway exited {status}:\n{err}");
        }
        "the gateway is still running".into()
    }

    /// Closes the gateway's stdin, as a client that quits does: its exit
    /// status and what it wrote on stderr.
    pub fn close(mut self) -> (std::process::ExitStatus, String) {
        drop(self.stdin.take());
        let until = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < until,
                "the gateway did not exit once its client left"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        (status, err)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of a tool call's answer, and whether it is an error.
pub fn text(answer: &Value) -> (String, bool) {
    if let Some(e) = answer.get("error") {
        return (e["message"].as_str().unwrap_or_default().to_owned(), true);
    }
    let r = &answer["result"];
    let text = r["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    (text, r["isError"].as_bool() == Some(true))
}

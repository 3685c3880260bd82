//! A long-lived agent process spoken to over its stdin and stdout, as the
//! ACP, Claude Code, Codex and Kimi wire backends do.
//!
//! The process runs in the task's worktree, in a process group of its own
//! (killed when the [`Agent`] is dropped), with omk's environment plus the
//! job's. Its stderr is kept as a tail for errors and evidence. Its stdout
//! is read a line at a time up to [`MAX_LINE`] (a longer line is dropped,
//! not buffered), and a write to its stdin gives up after [`SEND_TIMEOUT`],
//! so an agent that floods omk or stops reading cannot hold it. A turn of
//! such an agent ends in a [`TurnEnd`](super::turn::TurnEnd).

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::process::{GroupGuard, Tail};
use crate::sandbox::Confinement;

/// The longest line omk reads from an agent (16 MiB).
pub const MAX_LINE: usize = 16 << 20;
/// How long a write to an agent's stdin may take.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// An agent's stdout, as lines of at most [`MAX_LINE`] bytes.
pub struct LineReader {
    inner: BufReader<ChildStdout>,
}

impl LineReader {
    /// The next line, without its newline; `None` at the end. A line longer
    /// than [`MAX_LINE`] is skipped whole.
    pub async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        loop {
            let mut line = Vec::new();
            let mut too_long = false;
            loop {
                let buf = self.inner.fill_buf().await?;
                if buf.is_empty() {
                    if line.is_empty() && !too_long {
                        return Ok(None);
                    }
                    break;
                }
                let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                if !too_long {
                    if line.len() + take > MAX_LINE + 1 {
                        too_long = true;
                        line = Vec::new();
                    } else {
                        line.extend_from_slice(&buf[..take]);
                    }
                }
                self.inner.consume(take);
                if done {
                    break;
                }
            }
            if too_long {
                tracing::warn!("skipped an agent's output line longer than {MAX_LINE} bytes");
                continue;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
            }
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
    }
}

/// A running agent process.
pub struct Agent {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub pgid: u32,
    stderr: Arc<Mutex<Tail>>,
    _guard: GroupGuard,
}

/// Starts `program args…` in `dir` with `env` added, confined by
/// `confinement`, its stdio piped.
pub fn spawn(
    program: &Path,
    args: &[String],
    dir: &Path,
    env: &[(String, String)],
    confinement: &Confinement,
    started: &(dyn Fn(u32) + Send + Sync),
) -> Result<Agent, String> {
    let mut cmd = Command::new(program);
    // `PWD` as a shell would set it: OpenCode takes its folder from it.
    cmd.args(args)
        .current_dir(dir)
        .env("PWD", dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = confinement
        .spawn(&mut cmd)
        .map_err(|e| format!("cannot start `{}`: {e}", program.display()))?;
    let pgid = child.id().unwrap_or(0);
    let guard = GroupGuard(pgid);
    started(pgid);
    let stderr = Arc::new(Mutex::new(Tail::default()));
    if let Some(err) = child.stderr.take() {
        let tail = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(mut t) = tail.lock() {
                    t.push(&line);
                }
            }
        });
    }
    Ok(Agent {
        stdin: child.stdin.take(),
        stdout: child.stdout.take(),
        child,
        pgid,
        stderr,
        _guard: guard,
    })
}

impl Agent {
    /// Its stdout, as lines.
    pub fn lines(&mut self) -> Option<LineReader> {
        self.stdout.take().map(|s| LineReader {
            inner: BufReader::new(s),
        })
    }

    /// Writes one JSON value as a line to its stdin.
    pub async fn send(&mut self, value: &serde_json::Value) -> std::io::Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the agent's stdin is closed",
            ));
        };
        let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let write = async {
            stdin.write_all(&line).await?;
            stdin.flush().await
        };
        tokio::time::timeout(SEND_TIMEOUT, write)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the agent stopped reading its input",
                ))
            })
    }

    /// The last of what it wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .map(|t| t.lines_joined())
            .unwrap_or_default()
    }

    /// Waits up to `grace` for it to exit after its input closed, then kills
    /// the group; returns its exit code (`None` if killed).
    pub async fn finish(&mut self, grace: std::time::Duration) -> Option<i32> {
        drop(self.stdin.take());
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                super::process::kill_group(self.pgid);
                let _ = self.child.wait().await;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_overlong_line_is_skipped_whole() {
        let script = format!(
            "printf 'first\\n'; head -c {} /dev/zero | tr '\\0' x; printf '\\nlast\\r\\n'; printf 'tail'",
            MAX_LINE + 10
        );
        let dir = std::env::temp_dir();
        let mut agent = spawn(
            Path::new("sh"),
            &["-c".into(), script],
            &dir,
            &[],
            &Confinement::none(),
            &|_| {},
        )
        .unwrap();
        let mut lines = agent.lines().unwrap();
        let mut got = Vec::new();
        while let Some(l) = lines.next_line().await.unwrap() {
            got.push(l);
        }
        assert_eq!(got, ["first", "last", "tail"]);
    }
}

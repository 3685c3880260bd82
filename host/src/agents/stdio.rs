//! A long-lived agent process spoken to over its stdin and stdout, as the
//! ACP, Claude Code, Codex and Kimi wire backends do.
//!
//! The process runs in the task's worktree, in a process group of its own
//! (killed when the [`Agent`] is dropped), with omk's environment plus the
//! job's. Its stderr is kept as a tail for errors and evidence.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::process::{GroupGuard, Tail};

/// A running agent process.
pub struct Agent {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub pgid: u32,
    stderr: Arc<Mutex<Tail>>,
    _guard: GroupGuard,
}

/// Starts `program args…` in `dir` with `env` added, its stdio piped.
pub fn spawn(
    program: &Path,
    args: &[String],
    dir: &Path,
    env: &[(String, String)],
    started: &(dyn Fn(u32) + Send + Sync),
) -> Result<Agent, String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
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
    pub fn lines(&mut self) -> Option<Lines<BufReader<ChildStdout>>> {
        self.stdout.take().map(|s| BufReader::new(s).lines())
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
        stdin.write_all(&line).await?;
        stdin.flush().await
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

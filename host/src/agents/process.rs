//! Running an agent's processes: each in a process group of its own, so
//! that a deadline, a cancellation or a reclaimed lease kills everything the
//! agent started, not just its first process.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::time::Instant;

use crate::sandbox::Confinement;

/// How much of a command's output is kept for evidence.
pub const TAIL_BYTES: usize = 16 * 1024;

/// Kills a process group when dropped: the deadline passed, the task was
/// cancelled, or the command finished and left children behind.
#[derive(Debug)]
pub struct GroupGuard(pub u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0);
    }
}

/// Sends SIGKILL to process group `pgid`; a group that is gone is fine.
pub fn kill_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: killpg only sends a signal; an invalid or finished group
    // makes it return an error, which is ignored.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
}

/// Whether a process with `pid` is alive and carries `marker` (a
/// `KEY=VALUE` pair) in its environment — so a recycled pid is never
/// mistaken for an agent.
pub fn alive_with_marker(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|&b| b == 0).any(|kv| kv == marker.as_bytes()))
        .unwrap_or(false)
}

/// What a finished command did.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// `None` when it was killed or could not start.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// The last [`TAIL_BYTES`] of stdout and stderr, interleaved by line.
    pub output_tail: String,
    /// Why it could not start, if it could not.
    pub spawn_error: Option<String>,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// Runs `sh -c command` in `dir` with `env`, confined by `confinement`,
/// feeding `stdin`, calling `on_line` with every stdout line, until it
/// exits or `deadline` passes (then its whole process group is killed).
/// `started` receives the process group id as soon as it exists.
#[allow(clippy::too_many_arguments)]
pub async fn run_shell(
    command: &str,
    dir: &Path,
    env: &[(String, String)],
    confinement: &Confinement,
    stdin: Option<Vec<u8>>,
    deadline: Instant,
    started: &(dyn Fn(u32) + Send + Sync),
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Finished {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match confinement.spawn(&mut cmd) {
        Ok(c) => c,
        Err(e) => {
            return Finished {
                spawn_error: Some(format!("cannot start `sh -c {command}`: {e}")),
                ..Default::default()
            };
        }
    };
    let pgid = child.id().unwrap_or(0);
    let _guard = GroupGuard(pgid);
    started(pgid);
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        tokio::spawn(async move {
            let _ = pipe.write_all(&data).await;
        });
    }
    let mut tail = Tail::default();
    let mut out = child.stdout.take().map(|s| BufReader::new(s).lines());
    let mut err = child.stderr.take().map(|s| BufReader::new(s).lines());
    let mut timed_out = false;
    let sleep = tokio::time::sleep_until(deadline);
    tokio::pin!(sleep);
    while out.is_some() || err.is_some() {
        tokio::select! {
            line = next_line(&mut out) => match line {
                Some(l) => { on_line(&l); tail.push(&l); }
                None => out = None,
            },
            line = next_line(&mut err) => match line {
                Some(l) => tail.push(&l),
                None => err = None,
            },
            _ = &mut sleep => { timed_out = true; break; }
        }
    }
    let status = if timed_out {
        kill_group(pgid);
        let _ = child.wait().await;
        None
    } else {
        // Output closed; the process may still be finishing.
        match tokio::time::timeout_at(deadline, child.wait()).await {
            Ok(Ok(s)) => s.code(),
            Ok(Err(_)) => None,
            Err(_) => {
                timed_out = true;
                kill_group(pgid);
                let _ = child.wait().await;
                None
            }
        }
    };
    Finished {
        exit_code: status,
        timed_out,
        output_tail: tail.into_string(),
        spawn_error: None,
    }
}

async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut Option<tokio::io::Lines<R>>,
) -> Option<String> {
    match lines {
        Some(l) => l.next_line().await.ok().flatten(),
        None => std::future::pending().await,
    }
}

/// The last bytes of output, whole lines.
#[derive(Debug, Default)]
pub struct Tail {
    lines: std::collections::VecDeque<String>,
    bytes: usize,
}

impl Tail {
    pub fn push(&mut self, line: &str) {
        let line = crate::text::clip(line, 2000);
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.bytes > TAIL_BYTES {
            match self.lines.pop_front() {
                Some(l) => self.bytes -= l.len() + 1,
                None => break,
            }
        }
    }

    pub fn into_string(self) -> String {
        self.lines_joined()
    }

    /// The kept lines, joined.
    pub fn lines_joined(&self) -> String {
        self.lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A deadline `secs` from now.
pub fn deadline_in(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_feeds_and_reads_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut lines = Vec::new();
        let f = run_shell(
            "read x; echo got $x; echo err >&2; exit 3",
            dir.path(),
            &[],
            &Confinement::none(),
            Some(b"hello\n".to_vec()),
            deadline_in(10),
            &|_| {},
            &mut |l| lines.push(l.to_owned()),
        )
        .await;
        assert_eq!(f.exit_code, Some(3));
        assert_eq!(lines, ["got hello"]);
        assert!(f.output_tail.contains("err"));
    }

    #[tokio::test]
    async fn the_deadline_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-survived");
        let cmd = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let start = std::time::Instant::now();
        let f = run_shell(
            &cmd,
            dir.path(),
            &[],
            &Confinement::none(),
            None,
            Instant::now() + Duration::from_millis(300),
            &|_| {},
            &mut |_| {},
        )
        .await;
        assert!(f.timed_out);
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "a child outlived the deadline");
    }
}

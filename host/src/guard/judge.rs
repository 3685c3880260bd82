//! The judge beside a confined client (`omk guard run`): the client's hook
//! runs inside the sandbox, where omk's gates, cache and state cannot be
//! reached (nor forged), so it hands each event to this judge, which omk
//! runs outside on 127.0.0.1 and which answers as [`super::hook`] does.
//!
//! The exchange, one per connection: the hook writes the event and shuts
//! its side; the judge answers with the reply as JSON (`code`, `stdout`,
//! `stderr`: the hook prints and exits with them). Any process of the sandbox may ask the judge; it only judges and
//! records, so the worst it can do is add calls to the session's record.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Client, MAX_EVENT_BYTES, Policy, Reply};

/// How long either side waits for the other.
const WAIT: Duration = Duration::from_secs(55);

/// A judge serving on 127.0.0.1 until dropped.
pub struct Judge {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Judge {
    /// Starts judging `client`'s hook events by `policy`, loaded once: an
    /// agent that rewrites `.omk/gates.toml` mid-session changes nothing
    /// for the session.
    pub fn start(client: Client, policy: Policy) -> std::io::Result<Judge> {
        let policy = Arc::new(policy);
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let policy = Arc::clone(&policy);
                std::thread::spawn(move || {
                    if let Err(e) = answer(conn, client, &policy) {
                        tracing::debug!("guard judge: {e}");
                    }
                });
            }
        });
        Ok(Judge { addr, stop })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Judge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn answer(mut conn: TcpStream, client: Client, policy: &Policy) -> std::io::Result<()> {
    conn.set_read_timeout(Some(WAIT))?;
    conn.set_write_timeout(Some(WAIT))?;
    let mut input = Vec::new();
    (&mut conn)
        .take(MAX_EVENT_BYTES + 1)
        .read_to_end(&mut input)?;
    let reply = if input.len() as u64 > MAX_EVENT_BYTES {
        super::refuse(
            client,
            "the hook's event is larger than omk reads (16 MiB)".into(),
        )
    } else {
        super::hook_with(client, &input, policy)
    };
    let wire =
        serde_json::json!({"code": reply.code, "stdout": reply.stdout, "stderr": reply.stderr});
    conn.write_all(wire.to_string().as_bytes())
}

/// Hands `input` to the judge at `addr` and returns its answer; a judge
/// that cannot be reached or answers nonsense is a refusal.
pub fn ask(client: Client, addr: &str, input: &[u8]) -> Reply {
    let asked = (|| -> std::io::Result<String> {
        let addr: SocketAddr = addr
            .parse()
            .map_err(|e| std::io::Error::other(format!("`{addr}` is not an address: {e}")))?;
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        conn.set_read_timeout(Some(WAIT))?;
        conn.set_write_timeout(Some(WAIT))?;
        conn.write_all(input)?;
        conn.shutdown(std::net::Shutdown::Write)?;
        let mut text = String::new();
        conn.take(MAX_EVENT_BYTES).read_to_string(&mut text)?;
        Ok(text)
    })();
    let text = match asked {
        Ok(t) => t,
        Err(e) => return super::refuse(client, format!("cannot reach omk's judge: {e}")),
    };
    #[derive(serde::Deserialize)]
    struct Wire {
        code: u8,
        stdout: String,
        stderr: String,
    }
    match serde_json::from_str::<Wire>(&text) {
        Ok(w) if w.code == 0 || w.code == 2 => Reply {
            stdout: w.stdout,
            stderr: w.stderr,
            code: w.code,
            record: None,
        },
        _ => super::refuse(
            client,
            format!(
                "omk's judge answered `{}`, which is not a reply",
                crate::text::clip(&text, 80)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_judge_that_is_not_there_or_talks_nonsense_refuses() {
        let r = ask(Client::Claude, "127.0.0.1:1", b"{}");
        assert_eq!(r.code, 2);
        assert!(
            r.stderr.contains("cannot reach omk's judge"),
            "{}",
            r.stderr
        );
        let r = ask(Client::Claude, "not an address", b"{}");
        assert_eq!(r.code, 2);
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut sink = Vec::new();
            let _ = c.read_to_end(&mut sink);
            let _ = c.write_all(b"0x\nhm");
        });
        let r = ask(Client::Codex, &addr, b"{}");
        assert_eq!(r.code, 2);
        assert!(r.stderr.contains("answered `0x"), "{}", r.stderr);
    }

    #[test]
    fn the_judge_answers_what_the_hook_would() {
        let dir = tempfile::tempdir().unwrap();
        let policy = Policy::load(dir.path()).unwrap();
        let judge = Judge::start(Client::Kimi, policy).unwrap();
        let r = ask(Client::Kimi, &judge.addr().to_string(), b"not json");
        assert_eq!(r.code, 2);
        assert!(r.stderr.contains("not JSON"), "{}", r.stderr);
    }
}

//! The user's judge: a process of the user's own that keeps the gate
//! engine, the compiled gates and each project's policy loaded, so that an
//! `omk hook` call costs a process start and one round trip on a socket
//! instead of loading everything again.
//!
//! - **Where.** The socket is `<state>/guard/judge/socket` (`<state>` is
//!   omk's state directory), in a folder only the user may enter (`0700`,
//!   checked before each use); the judge also checks that each caller is
//!   of its own uid (`SO_PEERCRED`).
//! - **Started by the first call.** A call that finds no judge judges in
//!   its own process, as without one, then starts a judge in the
//!   background (`omk guard judge`, detached, its output to nowhere);
//!   later calls reach it. One judge per state directory: a second one
//!   finds the first's lock and leaves.
//! - **The same judgement.** A call carries an identity: omk's version, the
//!   binary's file (its inode, size and time) and the variables that
//!   decide where state, keys and caches are (`HOME`, `USER`, `LOGNAME`,
//!   `XDG_*`, `OMK_*`). A judge of another identity does not answer (and,
//!   if its binary changed, exits): the call judges in its own process.
//!   A project's policy is loaded again when a file it came from changed
//!   (`.omk/gates.toml`, its gates, its bundles and their install record,
//!   each by inode, size and both times), so a change holds from the next
//!   call, as in a process of its own.
//! - **Fails closed.** A judge that stops mid-call is a refusal, never a
//!   second judgement in the caller (which could record the call twice).
//! - **Ends.** After [`IDLE`] without a call (`OMK_JUDGE_IDLE_SECS`), or
//!   when its socket is gone.
//! - **Not for confined processes.** omk's sandbox lets a task create no
//!   `AF_UNIX` socket (seccomp), so none reaches the judge, unless the
//!   project allows them (`[sandbox] unix_sockets`); then one could ask it
//!   to judge and record calls, as any process of a `guard run` sandbox
//!   may ask that run's judge ([`super::judge`]): a judge only judges and
//!   records.
//!
//! `OMK_JUDGE=off` makes `omk hook` judge every call in its own process
//! and start no judge.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Client, MAX_EVENT_BYTES, Policy, Reply};

/// The variable that turns the judge off (`off`).
pub const ENV: &str = "OMK_JUDGE";

/// How long a judge waits for a call before it exits, unless
/// [`IDLE_ENV`] gives other seconds.
pub const IDLE: Duration = Duration::from_secs(600);

/// The variable that sets how long a judge stays without a call (seconds).
pub const IDLE_ENV: &str = "OMK_JUDGE_IDLE_SECS";

/// The longest socket path the kernel takes (`sun_path`, less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// What a caller sends.
#[derive(Serialize, Deserialize)]
#[serde(tag = "ask", rename_all = "snake_case")]
enum Ask {
    /// A hook call.
    Judge {
        identity: String,
        client: String,
        cwd: PathBuf,
        /// The client's event, as it wrote it.
        event: String,
    },
    /// How the judge is (`omk guard status`).
    Status,
}

/// A running judge, as `omk guard status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    /// Hook calls it has judged.
    pub judged: u64,
    /// Projects whose policy it holds.
    pub projects: usize,
    /// Seconds since it started.
    pub up_secs: u64,
}

/// What the judge answers.
#[derive(Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
enum Answer {
    Judged {
        code: u8,
        stdout: String,
        stderr: String,
        record: Option<String>,
    },
    /// Not this judge's to answer: the caller judges in its own process,
    /// and starts a new judge if this one is leaving (`leaving`: it was out
    /// of date).
    NotMine {
        why: String,
        #[serde(default)]
        leaving: bool,
    },
    Status(Status),
}

/// Whether calls use a judge (`OMK_JUDGE` is not `off`).
fn enabled() -> bool {
    std::env::var(ENV).map_or(true, |v| v.trim() != "off")
}

/// The judge's folder and socket, when omk has a state directory and the
/// socket's path fits.
fn place() -> Option<(PathBuf, PathBuf)> {
    let dir = crate::dirs::state_dir()?.join("guard").join("judge");
    let socket = dir.join("socket");
    (socket.as_os_str().len() <= MAX_SOCKET_PATH).then_some((dir, socket))
}

/// Whether `dir` is the user's alone: a real folder (not a link), owned by
/// this uid, open to no one else.
fn private(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == uid() && m.permissions().mode() & 0o077 == 0)
}

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// This process's identity: what a judge must share with a caller to
/// answer it.
fn identity() -> String {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    if let Ok(exe) = std::env::current_exe() {
        h.update(exe.as_os_str().as_encoded_bytes());
        if let Ok(m) = std::fs::metadata(&exe) {
            h.update(format!("{} {} {} {}", m.dev(), m.ino(), m.size(), m.mtime_nsec()).as_bytes());
            h.update(m.mtime().to_le_bytes());
        }
    }
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            ["HOME", "USER", "LOGNAME"].contains(&k.as_str())
                || k.starts_with("XDG_")
                || (k.starts_with("OMK_") && k != ENV)
        })
        .collect();
    vars.sort();
    for (k, v) in vars {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// Answers one hook call of `client` (see [`super::hook`]): by the user's
/// judge when one answers, else in this process, starting a judge for the
/// calls after it when there is none.
pub fn hook(client: Client, input: &[u8], cwd: &Path) -> Reply {
    let Some((dir, socket)) = place().filter(|_| enabled()) else {
        return super::hook(client, input, cwd);
    };
    match ask(client, input, cwd, &dir, &socket) {
        Asked::Answered(reply) => reply,
        Asked::NoJudge => {
            let reply = super::hook(client, input, cwd);
            start(&dir);
            reply
        }
        Asked::NotMine => super::hook(client, input, cwd),
        Asked::Left => {
            let reply = super::hook(client, input, cwd);
            start(&dir);
            reply
        }
    }
}

/// What came of asking the judge.
enum Asked {
    Answered(Reply),
    /// None listens (or its folder is not there yet).
    NoJudge,
    /// It would not answer this call, or its folder is not private.
    NotMine,
    /// It would not, and is gone: the call starts another.
    Left,
}

fn ask(client: Client, input: &[u8], cwd: &Path, dir: &Path, socket: &Path) -> Asked {
    if !private(dir) {
        return match std::fs::symlink_metadata(dir) {
            Err(_) => Asked::NoJudge,
            Ok(_) => Asked::NotMine,
        };
    }
    let Ok(mut conn) = UnixStream::connect(socket) else {
        return Asked::NoJudge;
    };
    let call = Ask::Judge {
        identity: identity(),
        client: client.name().to_owned(),
        cwd: cwd.to_owned(),
        event: String::from_utf8_lossy(input).into_owned(),
    };
    let exchanged = (|| -> std::io::Result<String> {
        let body = serde_json::to_vec(&call).map_err(std::io::Error::other)?;
        conn.write_all(&body)?;
        conn.shutdown(std::net::Shutdown::Write)?;
        let mut text = String::new();
        (&mut conn)
            .take(2 * MAX_EVENT_BYTES)
            .read_to_string(&mut text)?;
        Ok(text)
    })();
    let text = match exchanged {
        Ok(t) => t,
        Err(e) => {
            return Asked::Answered(super::refuse(
                client,
                format!("omk's judge stopped mid-call: {e}"),
            ));
        }
    };
    Asked::Answered(match serde_json::from_str::<Answer>(&text) {
        Ok(Answer::Judged {
            code,
            stdout,
            stderr,
            record,
        }) if code == 0 || code == 2 => Reply {
            stdout,
            stderr,
            code,
            record,
        },
        Ok(Answer::NotMine { why, leaving }) => {
            tracing::debug!("the judge did not answer: {why}");
            return if leaving { Asked::Left } else { Asked::NotMine };
        }
        Ok(Answer::Status(_)) => {
            super::refuse(client, "omk's judge answered a status, not the call".into())
        }
        _ => super::refuse(
            client,
            format!(
                "omk's judge answered `{}`, which is not a reply",
                crate::text::clip(&text, 80)
            ),
        ),
    })
}

/// Starts a judge in the background, detached from the caller (its own
/// session, no inherited output, so that the client waiting for the
/// hook's output is not kept waiting by it). Best effort: without it,
/// calls judge in their own process.
fn start(dir: &Path) {
    use std::os::unix::process::CommandExt;
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        tracing::debug!("cannot create `{}`: {e}", dir.display());
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["guard", "judge"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .current_dir("/");
    // SAFETY: setsid is async-signal-safe and touches nothing of the
    // parent's; it only fails if the child already leads a group.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    match cmd.spawn() {
        // Not waited for: it outlives this call. Its exit is reaped by
        // init once this process is gone.
        Ok(child) => drop(child),
        Err(e) => tracing::debug!("cannot start omk's judge: {e}"),
    }
}

/// A project's policy as loaded, and the state of the files it came from.
struct Loaded {
    files: Vec<(PathBuf, Option<[i64; 6]>)>,
    policy: Arc<Policy>,
}

/// The state of `path` that any change to it moves: inode, size, and the
/// modification and change times (a change time cannot be set back).
fn stamp(path: &Path) -> Option<[i64; 6]> {
    let m = std::fs::metadata(path).ok()?;
    Some([
        m.ino() as i64,
        m.size() as i64,
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ])
}

/// The files a project's policy is loaded from: its `gates.toml`, and
/// what that names (gate files, bundles) and the bundles' install record.
fn sources(root: &Path) -> Vec<PathBuf> {
    let file = root.join(omk_core::config::CONFIG_PATH);
    let mut out = vec![file.clone()];
    if let Ok(config) = crate::gates::GatesConfig::for_project(root) {
        for g in &config.gates {
            if let omk_core::config::GateSource::File(p) = &g.source {
                out.push(p.clone());
            }
        }
        for b in &config.bundles {
            out.push(b.path.clone());
        }
    }
    if let Some(omk_dir) = file.parent() {
        let bundles = omk_dir.join("bundles");
        out.push(bundles.clone());
        if let Ok(entries) = std::fs::read_dir(&bundles) {
            let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            more.sort();
            out.extend(more);
        }
    }
    out
}

/// The judge's policies, by project.
#[derive(Default)]
struct Policies {
    loaded: Mutex<HashMap<PathBuf, Arc<Loaded>>>,
}

impl Policies {
    /// The policy of the project at `root`, loaded again if a file it
    /// came from changed.
    fn get(&self, root: &Path) -> Result<Arc<Policy>, String> {
        let files: Vec<(PathBuf, Option<[i64; 6]>)> = sources(root)
            .into_iter()
            .map(|p| {
                let s = stamp(&p);
                (p, s)
            })
            .collect();
        if let Some(l) = self.lock().get(root)
            && l.files == files
        {
            return Ok(Arc::clone(&l.policy));
        }
        let policy = Arc::new(Policy::load(root)?);
        self.lock().insert(
            root.to_owned(),
            Arc::new(Loaded {
                files,
                policy: Arc::clone(&policy),
            }),
        );
        Ok(policy)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<Loaded>>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `omk guard judge`: serves calls until [`IDLE`] passes without one or
/// the socket is gone. Returns at once when another judge serves.
pub fn serve() -> Result<(), String> {
    let (dir, socket) = place().ok_or("omk has no state directory, or its path is too long")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    if !private(&dir) {
        return Err(format!(
            "`{}` is open to other users (or not a folder of this user's); the judge serves only from a private one",
            dir.display()
        ));
    }
    let _lock = match crate::lockfile::take(&dir.join("lock"), Duration::ZERO) {
        Ok(l) => l,
        Err(_) => return Ok(()), // another judge serves
    };
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .map_err(|e| format!("cannot listen on `{}`: {e}", socket.display()))?;
    let _ = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600));
    let bound = stamp(&socket);
    let idle_for = std::env::var(IDLE_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map_or(IDLE, Duration::from_secs);
    let me = identity();
    let policies = Arc::new(Policies::default());
    let started = Instant::now();
    let judged = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(Mutex::new(Instant::now()));
    {
        let (busy, last, socket) = (Arc::clone(&busy), Arc::clone(&last), socket.clone());
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let idle = last.lock().map_or(Duration::ZERO, |l| l.elapsed());
                let gone = stamp(&socket) != bound;
                if busy.load(Ordering::SeqCst) == 0 && (idle >= idle_for || gone) {
                    if !gone {
                        let _ = std::fs::remove_file(&socket);
                    }
                    std::process::exit(0);
                }
            }
        });
    }
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        if peer_uid(&conn) != Some(uid()) {
            continue;
        }
        busy.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut l) = last.lock() {
            *l = Instant::now();
        }
        let (policies, busy, last, me, judged) = (
            Arc::clone(&policies),
            Arc::clone(&busy),
            Arc::clone(&last),
            me.clone(),
            Arc::clone(&judged),
        );
        std::thread::spawn(move || {
            let serving = Serving {
                me: &me,
                policies: &policies,
                judged: &judged,
                started,
            };
            if let Err(e) = answer(conn, &serving) {
                tracing::debug!("omk's judge: {e}");
            }
            if let Ok(mut l) = last.lock() {
                *l = Instant::now();
            }
            busy.fetch_sub(1, Ordering::SeqCst);
        });
    }
    Ok(())
}

/// The uid of the process at the other end of `conn`.
fn peer_uid(conn: &UnixStream) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given, and
    // the descriptor is the open socket `conn` holds.
    let r = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(cred.uid)
}

/// What a judge's thread answers with.
struct Serving<'a> {
    me: &'a str,
    policies: &'a Policies,
    judged: &'a AtomicU64,
    started: Instant,
}

/// Reads one call from `conn` and answers it.
fn answer(mut conn: UnixStream, s: &Serving) -> std::io::Result<()> {
    let mut body = Vec::new();
    (&mut conn)
        .take(2 * MAX_EVENT_BYTES)
        .read_to_end(&mut body)?;
    let answer = match serde_json::from_slice::<Ask>(&body) {
        Err(e) => Answer::NotMine {
            why: format!("the call is not one omk makes: {e}"),
            leaving: false,
        },
        Ok(Ask::Status) => Answer::Status(Status {
            pid: std::process::id(),
            judged: s.judged.load(Ordering::SeqCst),
            projects: s.policies.lock().len(),
            up_secs: s.started.elapsed().as_secs(),
        }),
        Ok(Ask::Judge { identity: id, .. }) if id != s.me => {
            if identity() != s.me {
                // This judge's binary or setting changed under it: the
                // caller starts a new one.
                let _ = conn.write_all(&leaving());
                let _ = conn.shutdown(std::net::Shutdown::Both);
                std::process::exit(0);
            }
            Answer::NotMine {
                why: "the call is of another omk or setting".into(),
                leaving: false,
            }
        }
        Ok(Ask::Judge {
            client, cwd, event, ..
        }) => match Client::from_name(&client) {
            None => Answer::NotMine {
                why: format!("`{client}` is no client"),
                leaving: false,
            },
            Some(c) => {
                let reply = judged(c, event.as_bytes(), &cwd, s.policies);
                s.judged.fetch_add(1, Ordering::SeqCst);
                Answer::Judged {
                    code: reply.code,
                    stdout: reply.stdout,
                    stderr: reply.stderr,
                    record: reply.record,
                }
            }
        },
    };
    let text = serde_json::to_vec(&answer).map_err(std::io::Error::other)?;
    conn.write_all(&text)
}

/// The user's judge, if one runs and answers.
pub fn status() -> Option<Status> {
    let (dir, socket) = place()?;
    if !private(&dir) {
        return None;
    }
    let mut conn = UnixStream::connect(socket).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    conn.write_all(&serde_json::to_vec(&Ask::Status).ok()?)
        .ok()?;
    conn.shutdown(std::net::Shutdown::Write).ok()?;
    let mut text = String::new();
    conn.take(1 << 20).read_to_string(&mut text).ok()?;
    match serde_json::from_str(&text).ok()? {
        Answer::Status(s) => Some(s),
        _ => None,
    }
}

/// The answer of a judge that is out of date, and leaving.
fn leaving() -> Vec<u8> {
    serde_json::to_vec(&Answer::NotMine {
        why: "this judge is out of date".into(),
        leaving: true,
    })
    .unwrap_or_default()
}

/// [`super::hook`], the project's policy taken from `policies`.
fn judged(client: Client, input: &[u8], cwd: &Path, policies: &Policies) -> Reply {
    if input.len() as u64 > MAX_EVENT_BYTES {
        return super::refuse(
            client,
            "the hook's event is larger than omk reads (16 MiB)".into(),
        );
    }
    super::hook_loading(client, input, cwd, |root| policies.get(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A private folder with a socket path in it.
    fn folder() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("judge");
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        let socket = dir.join("socket");
        (tmp, dir, socket)
    }

    /// A judge that answers every call with `answer`, once.
    fn fake(socket: &Path, answer: &'static [u8]) -> std::thread::JoinHandle<Vec<u8>> {
        let listener = UnixListener::bind(socket).unwrap();
        std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut asked = Vec::new();
            let _ = c.read_to_end(&mut asked);
            let _ = c.write_all(answer);
            asked
        })
    }

    #[test]
    fn no_judge_a_foreign_folder_and_a_judge_that_declines_leave_the_call_to_the_hook() {
        let (_tmp, dir, socket) = folder();
        let cwd = Path::new("/");
        assert!(matches!(
            ask(Client::Claude, b"{}", cwd, &dir, &socket),
            Asked::NoJudge
        ));
        assert!(matches!(
            ask(Client::Claude, b"{}", cwd, &dir.join("missing"), &socket),
            Asked::NoJudge
        ));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            ask(Client::Claude, b"{}", cwd, &dir, &socket),
            Asked::NotMine
        ));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let judge = fake(&socket, br#"{"answer":"not_mine","why":"another omk"}"#);
        assert!(matches!(
            ask(Client::Claude, b"{\"x\":1}", cwd, &dir, &socket),
            Asked::NotMine
        ));
        let asked: serde_json::Value = serde_json::from_slice(&judge.join().unwrap()).unwrap();
        assert_eq!(asked["ask"], "judge");
        assert_eq!(asked["client"], "claude");
        assert_eq!(asked["event"], "{\"x\":1}");
        assert_eq!(asked["identity"], identity());
        // One that is leaving: the call starts another.
        std::fs::remove_file(&socket).unwrap();
        let judge = fake(&socket, leaving_answer());
        assert!(matches!(
            ask(Client::Claude, b"{}", cwd, &dir, &socket),
            Asked::Left
        ));
        judge.join().unwrap();
    }

    fn leaving_answer() -> &'static [u8] {
        Box::leak(leaving().into_boxed_slice())
    }

    #[test]
    fn a_judge_that_answers_nonsense_or_nothing_refuses_the_call() {
        for answer in [
            &b""[..],
            b"{\"answer\":\"judged\",\"code\":7,\"stdout\":\"\",\"stderr\":\"\"}",
            b"hm",
        ] {
            let (_tmp, dir, socket) = folder();
            let judge = fake(&socket, answer);
            let Asked::Answered(reply) = ask(Client::Codex, b"{}", Path::new("/"), &dir, &socket)
            else {
                panic!("not refused: {answer:?}");
            };
            judge.join().unwrap();
            assert_eq!(reply.code, 2, "{answer:?}");
            assert!(
                reply.stderr.contains("omk fails closed"),
                "{}",
                reply.stderr
            );
            assert!(reply.stderr.contains("not a reply"), "{}", reply.stderr);
        }
    }

    #[test]
    fn a_judges_answer_is_the_reply() {
        let (_tmp, dir, socket) = folder();
        let judge = fake(
            &socket,
            br#"{"answer":"judged","code":2,"stdout":"","stderr":"path.outside-roots: no","record":"goal-1"}"#,
        );
        let Asked::Answered(reply) = ask(Client::Kimi, b"{}", Path::new("/"), &dir, &socket) else {
            panic!("no answer");
        };
        judge.join().unwrap();
        assert_eq!(
            reply,
            Reply {
                stdout: String::new(),
                stderr: "path.outside-roots: no".into(),
                code: 2,
                record: Some("goal-1".into()),
            }
        );
    }

    #[test]
    fn a_policy_is_loaded_again_when_a_file_it_came_from_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join(".omk")).unwrap();
        std::fs::write(
            root.join(".omk/gates.toml"),
            "[guard]\nwrite_roots = [\"src\"]\n",
        )
        .unwrap();
        let policies = Policies::default();
        let a = policies.get(root).unwrap();
        let b = policies.get(root).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "loaded twice with nothing changed");
        assert_eq!(a.roots, ["src"]);
        std::fs::write(
            root.join(".omk/gates.toml"),
            "[guard]\nwrite_roots = [\"docs\"]\n",
        )
        .unwrap();
        let c = policies.get(root).unwrap();
        assert_eq!(c.roots, ["docs"]);
        std::fs::write(root.join(".omk/gates.toml"), "[[gate]]\nname = \"nope\"\n").unwrap();
        let Err(e) = policies.get(root) else {
            panic!("a broken gates.toml loaded");
        };
        assert!(e.contains("nope"), "{e}");
    }
}

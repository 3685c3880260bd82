//! Real agent clients for the end-to-end tests: installed from the npm
//! registry into a cache outside the repository (once, then reused), and
//! fake model servers on 127.0.0.1 for them to talk to.
//!
//! A client that cannot be installed skips its test, unless
//! `OMK_REQUIRE_TOOLCHAINS` is set (CI sets it), which fails it instead.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The pinned clients, one home for the tests and CI's installer.
const PINS: &str = include_str!("../../agent-clients.txt");

/// The npm package and the file to run of the pinned client `name`.
fn pin(name: &str) -> (&'static str, &'static str) {
    PINS.lines()
        .map(str::split_whitespace)
        .filter_map(|mut w| Some((w.next()?, w.next()?, w.next()?)))
        .find(|(n, _, _)| *n == name)
        .map(|(_, package, rel)| (package, rel))
        .unwrap_or_else(|| panic!("tests/agent-clients.txt pins no `{name}`"))
}

/// `${XDG_CACHE_HOME:-$HOME/.cache}/omk-test/agents`, of the test process.
pub fn cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"))
        .join("omk-test/agents")
}

/// Holds an exclusive `flock` on `path` while alive: the tests run as
/// separate processes (nextest), so a mutex would not keep two of them
/// from installing into one directory at once.
pub struct FileLock(std::fs::File);

impl FileLock {
    pub fn take(path: &Path) -> FileLock {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // SAFETY: flock on a descriptor this struct owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {}", path.display());
        FileLock(file)
    }
}

/// The pinned client `name`, installed into `cache()/name` unless it is
/// there already at that exact version (a changed pin installs again): the
/// file the test runs. `None` (the test skips) when that fails outside CI.
pub fn installed(name: &str) -> Option<PathBuf> {
    let (package, rel) = pin(name);
    let dir = cache().join(name);
    let want = dir.join(rel);
    let stamp = dir.join(".omk-pin");
    std::fs::create_dir_all(&dir).unwrap();
    let _one_at_a_time = FileLock::take(&dir.with_extension("lock"));
    if want.exists() && std::fs::read_to_string(&stamp).is_ok_and(|p| p == package) {
        return Some(want);
    }
    let _ = std::fs::remove_file(&stamp);
    let out = Command::new("npm")
        .args(["install", "--prefix"])
        .arg(&dir)
        .args(["--no-audit", "--no-fund", "--loglevel=error", package])
        .stdin(Stdio::null())
        .output();
    let ok = matches!(&out, Ok(o) if o.status.success()) && want.exists();
    if !ok {
        let why = match out {
            Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
            Err(e) => e.to_string(),
        };
        super::skip(&format!("cannot install {package}: {why}"));
        return None;
    }
    std::fs::write(&stamp, package).unwrap();
    Some(want)
}

/// The command line that runs Kimi Code with Node 22.
pub fn kimi() -> Option<String> {
    let node = installed("node22")?;
    let main = installed("kimi")?;
    Some(format!("{} {}", node.display(), main.display()))
}

/// The Claude Code binary.
pub fn claude() -> Option<String> {
    installed("claude").map(|p| p.display().to_string())
}

/// The Codex binary.
pub fn codex() -> Option<String> {
    installed("codex").map(|p| p.display().to_string())
}

/// The legacy Kimi CLI (Python `kimi-cli` 1.51.0), which needs Python ≥
/// 3.12: installed by `.ci/install-kimi-cli` (it builds CPython 3.13 from
/// Debian's sources where there is none, which takes too long for a test
/// to do in passing). `None` where it is not installed, outside CI.
pub fn kimi_cli() -> Option<String> {
    let kimi = cache().join("kimi-cli/venv/bin/kimi");
    if kimi.exists() {
        return Some(kimi.display().to_string());
    }
    super::skip("the legacy Kimi CLI is not installed: run .ci/install-kimi-cli");
    None
}

/// A fake model server (`tests/fixtures/fake_*.py`), killed when dropped.
pub struct FakeModel {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl FakeModel {
    /// Starts `fixture` with `script` (JSON) and `extra` arguments; its
    /// request log goes in `dir`.
    pub fn start(
        fixture: &str,
        dir: &Path,
        script: &serde_json::Value,
        extra: &[&str],
    ) -> FakeModel {
        let script_path = dir.join(format!("{fixture}.script.json"));
        std::fs::write(&script_path, script.to_string()).unwrap();
        let log = dir.join(format!("{fixture}.requests.jsonl"));
        let mut child = Command::new("python3")
            .arg(
                super::repo()
                    .join("tests/fixtures")
                    .join(format!("{fixture}.py")),
            )
            .arg("--script")
            .arg(&script_path)
            .arg("--log")
            .arg(&log)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the fake model server");
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port = first
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the fake model server printed {first:?}"));
        FakeModel { child, port, log }
    }

    /// The requests it received.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

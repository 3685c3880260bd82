//! Real coding agents under live gating: Kimi Code, Claude Code and Codex,
//! installed from npm (see `support::clients`), each pointed at a fake
//! model server on 127.0.0.1 that makes it write an allowed file, then a
//! file outside the task's write-set, then finish. Every client must carry
//! the path gate's refusal through its own live channel, so the forbidden
//! file never reaches the disk; no traffic leaves the machine.

use std::ffi::OsString;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::clients::{self, FakeModel};
use crate::support::{Omk, Run, of_kind};

const ALLOWED: &str = "notes/allowed.md";
const FORBIDDEN: &str = "secret/forbidden.md";

/// The model's answer to omk's planning prompt, then its three turns on
/// the task, with `write(path, content)` the client's tool call.
fn script(write: impl Fn(&str, &str) -> Value, usage: Value) -> Value {
    script_with_budget(write, usage, 300)
}

fn script_with_budget(
    write: impl Fn(&str, &str) -> Value,
    usage: Value,
    budget_secs: u64,
) -> Value {
    let task = json!({"id": "notes", "title": "Write the notes", "write_set": ["notes"],
                      "acceptance": [format!("run: test -f {ALLOWED}")], "budget_secs": budget_secs});
    json!({"plan": format!("One task.\nOMK_TASK_PROPOSAL: {task}\n"),
        "turns": [
        {"tool_call": write(ALLOWED, "hello\n")},
        {"tool_call": write(FORBIDDEN, "top secret\n")},
        {"text": "Done: wrote the notes."}],
        "usage": usage})
}

/// Creates a goal for `agent` (which plans one task that may write
/// `notes/`) and executes it, with `env`.
fn run_task(omk: &Omk, agent: &[&str], env: &[(&str, OsString)]) -> (String, Run) {
    run_task_in(omk, &[("README.md", "project\n")], agent, env)
}

/// As [`run_task`], in a project of `files`.
fn run_task_in(
    omk: &Omk,
    files: &[(&str, &str)],
    agent: &[&str],
    env: &[(&str, OsString)],
) -> (String, Run) {
    omk.git_project(files);
    run_goal(omk, agent, env)
}

/// Creates a goal for `agent` in the project there is and executes it.
pub fn run_goal(omk: &Omk, agent: &[&str], env: &[(&str, OsString)]) -> (String, Run) {
    let env: Vec<(&str, &std::ffi::OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    let mut args = vec!["goal", "run", "write the notes", "--json"];
    args.extend_from_slice(agent);
    let created = omk.run_env(&args, &env);
    created.code(0);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let run = omk.run_env(&["goal", "execute", &id, "--json"], &env);
    (id, run)
}

/// What every client must show: the allowed write landed on the task's
/// branch, the forbidden one was refused live by the path gate and is
/// nowhere on disk, the task completed with its usage counted, and the
/// proof has no live-gating gap.
fn assert_gated(omk: &Omk, id: &str, run: &Run, agent: &str) -> Vec<Value> {
    run.code(0);
    let branch = format!("omk/{id}/notes");
    assert_eq!(
        omk.git(&["show", &format!("{branch}:{ALLOWED}")]),
        "hello\n"
    );
    assert_eq!(omk.git(&["show", &format!("{branch}:{FORBIDDEN}")]), "");
    assert!(!omk.project().join(FORBIDDEN).exists());
    let stray = walk(&omk.goal_dir(id))
        .into_iter()
        .find(|p| p.ends_with(FORBIDDEN));
    assert!(
        stray.is_none(),
        "the forbidden file reached the disk: {stray:?}"
    );

    let events = omk.events(id);
    let refused: Vec<&Value> = of_kind(&events, "agent_action")
        .into_iter()
        .filter(|e| e["payload"]["allowed"] == false)
        .collect();
    assert!(!refused.is_empty(), "no refusal in the log");
    for r in &refused {
        assert_eq!(r["payload"]["code"], "path.outside-write-set", "{r}");
        assert!(
            r["payload"]["action"]["target"]
                .as_str()
                .unwrap()
                .ends_with(FORBIDDEN),
            "{r}"
        );
        assert_eq!(r["actor"], format!("agent:{agent}"));
    }
    // Looked at in the worktree once the agent stopped, before cleanup:
    // the refused file was as it was when refused (not there).
    let checked = crate::support::refused_changes_checked(&events);
    assert!(
        checked["unchanged"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().ends_with(FORBIDDEN)),
        "{checked}"
    );
    assert_eq!(checked["changed"], json!([]), "{checked}");
    let allowed_write = of_kind(&events, "agent_action").into_iter().any(|e| {
        e["payload"]["allowed"] == true
            && e["payload"]["action"]["kind"] == "write_file"
            && e["payload"]["action"]["target"] == ALLOWED
    });
    assert!(allowed_write, "the allowed write was not judged live");
    let finished = of_kind(&events, "agent_finished");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["payload"]["exit_code"], 0, "{}", finished[0]);
    assert!(
        finished[0]["payload"]["tokens"].as_u64().unwrap() > 0,
        "{}",
        finished[0]
    );
    assert_eq!(of_kind(&events, "task_completed").len(), 1);

    let show = omk.run(&["goal", "show", id, "--json"]).json();
    let task = &show["graph"]["tasks"][0];
    assert_eq!(task["status"], "done", "{task}");
    let message = task["evidence"].as_array().unwrap().iter().any(|e| {
        e["kind"] == "agent-message"
            && e["summary"]
                .as_str()
                .unwrap()
                .contains("Done: wrote the notes.")
    });
    assert!(message, "the final message is not evidence: {task}");
    let proof = omk.proof(id);
    assert_eq!(proof["known_gaps"], json!([]), "{}", proof["known_gaps"]);
    // The log holds every live decision with its inputs: its chain
    // verifies, and the project's gates decide each of them the same again.
    omk.run(&["goal", "verify-log", id]).code(0);
    omk.run(&[
        "goal",
        "replay",
        id,
        "--gates",
        "project",
        "--fail-on-change",
    ])
    .code(0);
    events
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The model server saw the gate's reason in the conversation.
pub fn model_was_told(fake: &FakeModel) {
    let told = fake
        .requests()
        .iter()
        .any(|r| r.to_string().contains("refused by omk"));
    assert!(told, "the model never saw omk's reason");
}

fn os(s: impl Into<OsString>) -> OsString {
    s.into()
}

fn kimi_write(p: &str, c: &str) -> Value {
    json!({"name": "Write", "arguments": {"path": p, "content": c}})
}

fn kimi_usage() -> Value {
    json!({"prompt_tokens": 100, "completion_tokens": 20})
}

/// A fake OpenAI server scripted for Kimi, and Kimi's environment.
fn kimi_setup(omk: &Omk) -> (FakeModel, Vec<(&'static str, OsString)>) {
    kimi_setup_with(omk, &script(kimi_write, kimi_usage()))
}

pub fn kimi_setup_with(omk: &Omk, script: &Value) -> (FakeModel, Vec<(&'static str, OsString)>) {
    let home = omk.project().parent().unwrap().to_path_buf();
    let fake = FakeModel::start("fake_openai_chat", &home, script, &[]);
    let env = vec![
        ("KIMI_MODEL_NAME", os("fake-model")),
        ("KIMI_MODEL_API_KEY", os(crate::support::REAL_KEY)),
        ("KIMI_MODEL_PROVIDER_TYPE", os("openai")),
        (
            "KIMI_MODEL_BASE_URL",
            os(format!("http://127.0.0.1:{}/v1", fake.port)),
        ),
        ("KIMI_CODE_HOME", os(home.join("kimi-home"))),
        ("KIMI_LOOP_MAX_ATTEMPTS_PER_STEP", os("1")),
    ];
    (fake, env)
}

#[test]
fn any_acp_agent_is_gated_live() {
    // Kimi Code's `acp` command, named as a plain ACP agent.
    let Some(kimi) = clients::kimi() else { return };
    let omk = Omk::new();
    let (fake, env) = kimi_setup(&omk);
    // omk knows where Kimi Code keeps its state only as `--agent kimi`:
    // as any ACP agent, its state folder is granted like any other path.
    let home = omk.project().parent().unwrap().join("kimi-home");
    std::fs::create_dir_all(&home).unwrap();
    omk.sandbox_grant("write", &home);
    // …and its model server, whose address Kimi reaches directly, not
    // through omk's proxy (it bypasses proxies for loopback).
    omk.sandbox_add("connect", &format!("127.0.0.1:{}", fake.port));
    let agent = format!("acp:{kimi} acp");
    let (id, run) = run_task(&omk, &["--agent", &agent], &env);
    assert_gated(&omk, &id, &run, "acp");
    model_was_told(&fake);
}

#[test]
fn kimi_print_mode_is_not_gated_live_and_the_proof_says_so() {
    let Some(kimi) = clients::kimi() else { return };
    let omk = Omk::new();
    let (_fake, env) = kimi_setup(&omk);
    let (id, run) = run_task(&omk, &["--agent", "kimi-print", "--command", &kimi], &env);
    // Kimi wrote both files unasked; the outcome gate rejects the change.
    let gaps = rejected_at_the_outcome(&omk, &id, &run);
    assert!(gaps.contains("kimi-print"), "{gaps}");
}

/// An agent that asked nothing wrote the forbidden file: the outcome gate
/// failed the task and nothing of it was merged. Returns the proof's gaps.
fn rejected_at_the_outcome(omk: &Omk, id: &str, run: &Run) -> String {
    run.code(1);
    let show = omk.run(&["goal", "show", id, "--json"]).json();
    let task = &show["graph"]["tasks"][0];
    assert_eq!(task["status"], "failed", "{task}");
    assert!(
        task["failure"].as_str().unwrap().contains(FORBIDDEN),
        "{task}"
    );
    assert_eq!(
        omk.git(&["show", &format!("omk/{id}/notes:{FORBIDDEN}")]),
        ""
    );
    omk.proof(id)["known_gaps"].to_string()
}

#[test]
fn a_missing_or_unsupported_client_is_an_error_before_any_task() {
    let omk = Omk::new();
    omk.git_project(&[]);
    let run = omk.run(&[
        "goal",
        "run",
        "g",
        "--agent",
        "claude",
        "--command",
        "/nonexistent/claude",
    ]);
    run.code(2);
    assert!(run.stderr.contains("agent `claude`"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("help: install it (`npm install -g @anthropic-ai/claude-code`)"),
        "{}",
        run.stderr
    );
    // Kimi Code 2.x installs a `kimi` too, which has no wire mode.
    let kimi_code = omk.write("../kimi-code", "#!/bin/sh\necho 2.1.0\n");
    make_executable(&kimi_code);
    let run = omk.run(&[
        "goal",
        "run",
        "g",
        "--agent",
        "kimi-wire",
        "--command",
        kimi_code.to_str().unwrap(),
    ]);
    run.code(2);
    assert!(
        run.stderr.contains("agent `kimi-wire`") && run.stderr.contains("Kimi Code 2.x"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("help: install the legacy Kimi CLI"),
        "{}",
        run.stderr
    );
    // The legacy client without credentials: no task starts.
    let run = omk.run(&[
        "goal",
        "run",
        "g",
        "--agent",
        "kimi-wire",
        "--command",
        &kimi_cli(Wire::default()),
    ]);
    run.code(2);
    assert!(
        run.stderr.contains("no credentials found") && run.stderr.contains("KIMI_API_KEY"),
        "{}",
        run.stderr
    );
    let doctor = omk.run_env(
        &["doctor", "--json"],
        &[("OMK_CODEX", std::ffi::OsStr::new("/nonexistent/codex"))],
    );
    doctor.code(0);
    let codex = doctor.json()["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "codex")
        .cloned()
        .unwrap();
    assert_eq!(codex["usable"], false);
    assert!(
        codex["detail"]
            .as_str()
            .unwrap()
            .contains("--version` failed"),
        "{codex}"
    );
    assert!(omk.run(&["doctor"]).stdout.contains("gate toolchains"));
}

#[test]
fn kimi_code_over_acp_is_gated_live() {
    let Some(kimi) = clients::kimi() else { return };
    let omk = Omk::new();
    let (fake, env) = kimi_setup(&omk);
    let (id, run) = run_task(&omk, &["--agent", "kimi", "--command", &kimi], &env);
    let events = assert_gated(&omk, &id, &run, "kimi");
    model_was_told(&fake);
    // Kimi's `/usage` gave the session's total: 3 model calls × 120.
    assert_eq!(
        of_kind(&events, "agent_finished")[0]["payload"]["tokens"],
        360
    );
}

#[test]
fn the_gemini_cli_over_acp_is_gated_live() {
    let omk = Omk::new();
    let Some((program, env)) = gemini_env(&omk) else {
        return;
    };
    let home = omk.project().parent().unwrap().to_path_buf();
    let fake = FakeModel::start(
        "fake_gemini",
        &home,
        &script(
            |p, c| json!({"name": "write_file", "arguments": {"file_path": p, "content": c}}),
            json!({"input_tokens": 100, "output_tokens": 20}),
        ),
        &[],
    );
    let mut env = env;
    env.push((
        "GOOGLE_GEMINI_BASE_URL",
        os(format!("http://127.0.0.1:{}", fake.port)),
    ));
    let (id, run) = run_task(&omk, &["--agent", "gemini", "--command", &program], &env);
    let events = assert_gated(&omk, &id, &run, "gemini");
    // ACP's answer to a permission request carries no reason: the Gemini
    // CLI tells its model the user cancelled the call (the log has why).
    let told = fake
        .requests()
        .iter()
        .any(|r| r.to_string().contains("was canceled by the user"));
    assert!(told, "the model was not told the write did not happen");
    // Each write asks first (session/request_permission), and the allowed
    // one is written by omk (fs/write_text_file).
    let channels: Vec<&str> = of_kind(&events, "agent_action")
        .into_iter()
        .filter(|e| e["payload"]["action"]["kind"] == "write_file")
        .filter_map(|e| e["payload"]["action"]["detail"].as_str())
        .collect();
    assert!(
        channels
            .iter()
            .any(|d| d.starts_with("session/request_permission"))
            && channels.contains(&"fs/write_text_file"),
        "{channels:?}"
    );
}

#[test]
fn opencode_over_acp_is_gated_live() {
    let omk = Omk::new();
    let home = omk.project().parent().unwrap().to_path_buf();
    let fake = FakeModel::start(
        "fake_openai_chat",
        &home,
        &script(
            |p, c| json!({"name": "write", "arguments": {"filePath": p, "content": c}}),
            json!({"prompt_tokens": 100, "completion_tokens": 20}),
        ),
        &[],
    );
    let Some((program, env)) = opencode_env(&omk, fake.port) else {
        return;
    };
    // A goal's worktree has no `.opencode` of its own: only the user's.
    std::fs::remove_dir_all(omk.project().join(".opencode")).unwrap();
    let (id, run) = run_task(&omk, &["--agent", "opencode", "--command", &program], &env);
    let events = assert_gated(&omk, &id, &run, "opencode");
    // Each write asked first (session/request_permission).
    let asked = of_kind(&events, "agent_action").into_iter().any(|e| {
        e["payload"]["action"]["kind"] == "write_file"
            && e["payload"]["action"]["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("session/request_permission"))
    });
    assert!(asked, "no write asked for permission");
    // Confined, with the one port it serves itself on.
    let started = of_kind(&events, "task_started")[0]["payload"]["sandbox"].clone();
    assert_eq!(started["mode"], "enforce", "{started:#}");
    let port = started["tcp_serve"].as_u64().expect("a port to serve on");
    assert!(
        started["blocked"]
            .to_string()
            .contains(&format!("but on port {port}")),
        "{started:#}"
    );
    // The model heard the write was refused.
    let told = fake
        .requests()
        .iter()
        .any(|r| r.to_string().contains("rejected"));
    assert!(told, "the model was not told the write did not happen");
}

#[test]
fn claude_code_is_gated_live_through_its_permission_channel() {
    let Some(claude) = clients::claude() else {
        return;
    };
    let omk = Omk::new();
    let home = omk.project().parent().unwrap().to_path_buf();
    let fake = FakeModel::start(
        "fake_anthropic",
        &home,
        &script(
            |p, c| json!({"name": "Write", "arguments": {"file_path": p, "content": c}}),
            json!({"input_tokens": 100, "output_tokens": 20}),
        ),
        &[],
    );
    let env = claude_env(fake.port);
    let (id, run) = run_task(&omk, &["--agent", "claude", "--command", &claude], &env);
    let events = assert_gated(&omk, &id, &run, "claude");
    model_was_told(&fake);
    // 3 calls × (100 in + 20 out) at $3/$15 per Mtok: $0.0018.
    let finished = &of_kind(&events, "agent_finished")[0]["payload"];
    assert_eq!(
        (finished["tokens"].as_u64(), finished["usd_micros"].as_u64()),
        (Some(360), Some(1800))
    );
    let show = omk.run(&["goal", "show", &id, "--json"]).json();
    assert_eq!(
        show["goal"]["spent"]["usd_micros"], 1800,
        "{}",
        show["goal"]["spent"]
    );
}

/// Claude Code's environment with the fake Anthropic server on `port` as
/// its model, and nothing sent elsewhere.
pub fn claude_env(port: u16) -> Vec<(&'static str, OsString)> {
    vec![
        ("ANTHROPIC_BASE_URL", os(format!("http://127.0.0.1:{port}"))),
        ("ANTHROPIC_API_KEY", os(crate::support::REAL_KEY)),
        ("ANTHROPIC_MODEL", os("claude-sonnet-4-5")),
        ("CLAUDE_CODE_MAX_RETRIES", os("0")),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", os("1")),
        ("DISABLE_TELEMETRY", os("1")),
        ("DISABLE_AUTOUPDATER", os("1")),
        ("DISABLE_ERROR_REPORTING", os("1")),
    ]
}

#[test]
fn doctor_finds_the_gemini_cli_and_opencode() {
    let omk = Omk::new();
    // What `omk doctor --json` says of `agent`, run as `program` in `env`.
    let doctor = |agent: &str, program: &str, mut env: Vec<(&'static str, OsString)>| {
        env.push((
            if agent == "gemini" {
                "OMK_GEMINI"
            } else {
                "OMK_OPENCODE"
            },
            os(program),
        ));
        let envs: Vec<(&str, &std::ffi::OsStr)> =
            env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
        let doctor = omk.run_env(&["doctor", "--json"], &envs);
        doctor.code(0);
        doctor.json()["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["agent"] == agent)
            .cloned()
            .unwrap()
    };
    let Some((program, env)) = gemini_env(&omk) else {
        return;
    };
    let gemini = doctor("gemini", &program, env);
    assert_eq!(
        (&gemini["usable"], &gemini["version"]),
        (&json!(true), &json!("0.61.0")),
        "{gemini}"
    );
    assert!(
        gemini["detail"]
            .as_str()
            .unwrap()
            .contains("GEMINI_API_KEY"),
        "{gemini}"
    );
    let Some((program, env)) = opencode_env(&omk, 9) else {
        return;
    };
    let opencode = doctor("opencode", &program, env);
    assert_eq!(
        (&opencode["usable"], &opencode["version"]),
        (&json!(true), &json!("1.18.33")),
        "{opencode}"
    );
}

/// OpenCode with its user configuration as a first run online leaves it
/// (the plugin library it installs, from `tests/agent-clients.txt`'s
/// `opencode-plugin`, so that it does not spend a minute trying npm from
/// inside a sandbox), a provider on the fake chat-completions server on
/// `port` in `OPENCODE_CONFIG_CONTENT`, and no model list or updates
/// fetched.
pub fn opencode_env(omk: &Omk, port: u16) -> Option<(String, Vec<(&'static str, OsString)>)> {
    let program = clients::installed("opencode")?;
    let library = clients::installed("opencode-plugin")?;
    let library = library.ancestors().nth(4).unwrap().to_path_buf();
    // The user's configuration folder, and the project's (where a
    // project install puts omk's plugin), as OpenCode leaves them.
    for config in [
        omk.root().join(".config/opencode"),
        omk.project().join(".opencode"),
    ] {
        std::fs::create_dir_all(&config).unwrap();
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(library.join(f), config.join(f)).unwrap();
        }
        let copied = Command::new("cp")
            .arg("-r")
            .arg(library.join("node_modules"))
            .arg(&config)
            .status()
            .unwrap();
        assert!(copied.success());
    }
    let content = json!({
        "provider": {"fake": {"npm": "@ai-sdk/openai-compatible",
            "options": {"baseURL": format!("http://127.0.0.1:{port}/v1"), "apiKey": crate::support::REAL_KEY},
            "models": {"fake-model": {"tool_call": true}}}},
        "model": "fake/fake-model",
        "autoupdate": false,
    });
    Some((
        program.display().to_string(),
        vec![
            ("OPENCODE_CONFIG_CONTENT", os(content.to_string())),
            ("OPENCODE_DISABLE_MODELS_FETCH", os("1")),
            ("OPENCODE_DISABLE_AUTOUPDATE", os("1")),
            // OpenCode takes its project from `PWD`, as a shell sets it.
            ("PWD", os(omk.project())),
        ],
    ))
}

/// The Gemini CLI as `npm install -g` leaves it — a `gemini` that links
/// to its bundle, run by the `node` first on `PATH` (Node 22, put there)
/// — and its home (`GEMINI_CLI_HOME`), whose settings pick the API key,
/// and turn off telemetry and updates. The fake server's URL is the
/// caller's (`GOOGLE_GEMINI_BASE_URL`).
pub fn gemini_env(omk: &Omk) -> Option<(String, Vec<(&'static str, OsString)>)> {
    let bundle = clients::installed("gemini")?;
    let node = clients::installed("node22")?;
    let bin = omk.root().join("gemini-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let program = bin.join("gemini");
    if !program.exists() {
        std::os::unix::fs::symlink(&bundle, &program).unwrap();
    }
    let home = omk.root().join("gemini-home");
    std::fs::create_dir_all(home.join(".gemini")).unwrap();
    std::fs::write(
        home.join(".gemini/settings.json"),
        json!({"security": {"auth": {"selectedType": "gemini-api-key"}},
               "privacy": {"usageStatisticsEnabled": false},
               "telemetry": {"enabled": false},
               "general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false}})
        .to_string(),
    )
    .unwrap();
    let path = std::env::join_paths(std::iter::once(node.parent().unwrap().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    Some((
        program.display().to_string(),
        vec![
            ("PATH", path),
            ("GEMINI_CLI_HOME", os(&home)),
            ("GEMINI_API_KEY", os(crate::support::REAL_KEY)),
        ],
    ))
}

/// Codex's home, with a config that makes the fake Responses server on
/// `port` its model, and its environment.
pub fn codex_env(home: &std::path::Path, port: u16) -> Vec<(&'static str, OsString)> {
    let codex_home = home.join("codex-home");
    std::fs::create_dir_all(&codex_home).unwrap();
    let base = format!("http://127.0.0.1:{port}/v1");
    std::fs::write(
        codex_home.join("config.toml"),
        format!(
            "model = \"fake-model\"\nmodel_provider = \"fake\"\ncheck_for_update_on_startup = false\n\
             [analytics]\nenabled = false\n[features]\nplugins = false\nremote_plugin = false\nshell_snapshot = false\n\
             [model_providers.fake]\nname = \"fake\"\nbase_url = \"{base}\"\nenv_key = \"FAKE_API_KEY\"\n\
             wire_api = \"responses\"\nrequest_max_retries = 0\nstream_max_retries = 0\nmodel_catalog_url = \"{base}/models\"\n"
        ),
    )
    .unwrap();
    let tmp = home.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    vec![
        ("CODEX_HOME", os(&codex_home)),
        ("FAKE_API_KEY", os(crate::support::REAL_KEY)),
        ("TMPDIR", os(&tmp)),
    ]
}

#[test]
fn codex_is_gated_live_through_app_server_approvals() {
    let Some(codex) = clients::codex() else {
        return;
    };
    let omk = Omk::new();
    let home = omk.project().parent().unwrap().to_path_buf();
    let patch = |p: &str, c: &str| {
        json!({"name": "apply_patch",
               "input": format!("*** Begin Patch\n*** Add File: {p}\n+{}\n*** End Patch\n", c.trim_end())})
    };
    let fake = FakeModel::start(
        "fake_responses",
        &home,
        &script(patch, json!({"input_tokens": 100, "output_tokens": 20})),
        &[],
    );
    let env = codex_env(&home, fake.port);
    let (id, run) = run_task(&omk, &["--agent", "codex", "--command", &codex], &env);
    let events = assert_gated(&omk, &id, &run, "codex");
    // The thread's total: 3 responses × 120 tokens.
    assert_eq!(
        of_kind(&events, "agent_finished")[0]["payload"]["tokens"],
        360
    );
}

#[test]
fn at_the_deadline_the_turn_is_cancelled_and_the_agent_stopped() {
    let Some(kimi) = clients::kimi() else { return };
    let omk = Omk::new();
    // The model takes three minutes to answer; the task has 8 seconds.
    let mut script = script_with_budget(kimi_write, kimi_usage(), 8);
    script["turns"][0]["delay"] = json!(180);
    let (_fake, env) = kimi_setup_with(&omk, &script);
    let started = std::time::Instant::now();
    let (id, run) = run_task(&omk, &["--agent", "kimi", "--command", &kimi], &env);
    assert_stopped_at_the_deadline(&omk, &id, &run, started);
}

/// Both attempts of the task ran out of time and were stopped well before
/// the model's minute-long answer, and no process of the agent is left.
fn assert_stopped_at_the_deadline(omk: &Omk, id: &str, run: &Run, started: std::time::Instant) {
    run.code(1);
    // Two attempts (one retry) of their budget each, not the model's
    // minutes.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(110),
        "{:?}",
        started.elapsed()
    );
    let events = omk.events(id);
    let finished = of_kind(&events, "agent_finished");
    assert_eq!(finished.len(), 2, "{finished:?}");
    assert!(
        finished.iter().all(|f| f["payload"]["timed_out"] == true),
        "{finished:?}"
    );
    let task = &omk.run(&["goal", "show", id, "--json"]).json()["graph"]["tasks"][0];
    assert_eq!(task["status"], "failed", "{task}");
    assert!(
        task["failure"].as_str().unwrap().contains("timed out"),
        "{task}"
    );
    // Nothing of the agent is left running.
    let marker = "OMK_TASK_ID=notes";
    let alive = std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
        std::fs::read(p.path().join("environ")).is_ok_and(|env| {
            env.split(|&b| b == 0).any(|kv| kv == marker.as_bytes())
                && env
                    .split(|&b| b == 0)
                    .any(|kv| kv == format!("OMK_GOAL_ID={id}").as_bytes())
        })
    });
    assert!(!alive, "an agent process outlived the deadline");
}

#[test]
fn an_auth_failure_stops_the_goal_before_any_task_with_the_servers_words() {
    let Some(claude) = clients::claude() else {
        return;
    };
    let omk = Omk::new();
    let home = omk.project().parent().unwrap().to_path_buf();
    let mut script = script(
        |p, c| json!({"name": "Write", "arguments": {"file_path": p, "content": c}}),
        json!({"input_tokens": 100, "output_tokens": 20}),
    );
    script["error_status"] = json!(401);
    let fake = FakeModel::start("fake_anthropic", &home, &script, &[]);
    omk.git_project(&[]);
    let run = omk.run_env(
        &[
            "goal",
            "run",
            "g",
            "--agent",
            "claude",
            "--command",
            &claude,
        ],
        &[
            (
                "ANTHROPIC_BASE_URL",
                std::ffi::OsStr::new(&format!("http://127.0.0.1:{}", fake.port)),
            ),
            ("ANTHROPIC_API_KEY", std::ffi::OsStr::new("sk-ant-wrong")),
            ("CLAUDE_CODE_MAX_RETRIES", std::ffi::OsStr::new("0")),
        ],
    );
    run.code(2);
    assert!(run.stderr.contains("401"), "{}", run.stderr);
    assert!(
        run.stderr.to_lowercase().contains("authenticat"),
        "{}",
        run.stderr
    );
}

fn make_executable(p: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// How a wire test's Kimi CLI is set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wire {
    /// `default_yolo = true` in its config: it approves itself.
    pub yolo: bool,
    /// A server from before hooks (Kimi CLI 1.27), which only the
    /// stand-in plays.
    pub before_hooks: bool,
}

/// The legacy Kimi CLI's command line: the real client where it is
/// installed (`.ci/install-kimi-cli`), else — and for a server from before
/// hooks — `tests/fixtures/fake_kimi_wire.py`, a stand-in written from the
/// wire protocol's documentation.
pub fn kimi_cli(wire: Wire) -> String {
    if !wire.before_hooks
        && let Some(real) = clients::kimi_cli()
    {
        return real;
    }
    if !wire.before_hooks {
        eprintln!("the legacy Kimi CLI is not installed: using its stand-in");
    }
    format!(
        "python3 {}",
        crate::support::repo()
            .join("tests/fixtures/fake_kimi_wire.py")
            .display()
    )
}

/// A fake OpenAI server scripted for the legacy Kimi CLI, and the CLI's
/// environment: its share directory, with a `config.toml` that makes the
/// fake server its model.
pub fn wire_env(
    omk: &Omk,
    script: &Value,
    wire: Wire,
) -> (FakeModel, Vec<(&'static str, OsString)>) {
    let home = omk.project().parent().unwrap().to_path_buf();
    let fake = FakeModel::start("fake_openai_chat", &home, script, &[]);
    let share = home.join("kimi-share");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(
        share.join("config.toml"),
        format!(
            "default_model = \"fake\"\ndefault_yolo = {}\ntelemetry = false\n\
             [providers.fake]\ntype = \"kimi\"\nbase_url = \"http://127.0.0.1:{}/v1\"\napi_key = \"{}\"\n\
             [models.fake]\nprovider = \"fake\"\nmodel = \"fake-model\"\nmax_context_size = 262144\n\
             [loop_control]\nmax_retries_per_step = 1\n",
            wire.yolo,
            fake.port,
            crate::support::REAL_KEY
        ),
    )
    .unwrap();
    let mut env = vec![("KIMI_SHARE_DIR", os(share))];
    if wire.before_hooks {
        env.push(("FAKE_KIMI_VERSION", os("1.27.0")));
    }
    (fake, env)
}

/// [`wire_env`], then a goal run in a project whose `notes/` and `secret/`
/// exist — the CLI's `WriteFile` writes only into existing directories.
fn wire_run(omk: &Omk, script: &Value, wire: Wire) -> (FakeModel, String, Run, std::time::Instant) {
    let (fake, env) = wire_env(omk, script, wire);
    let started = std::time::Instant::now();
    let (id, run) = run_task_in(
        omk,
        &[
            ("README.md", "project\n"),
            ("notes/README.md", "notes\n"),
            ("secret/README.md", "secret\n"),
        ],
        &["--agent", "kimi-wire", "--command", &kimi_cli(wire)],
        &env,
    );
    (fake, id, run, started)
}

/// A wire run of the usual script that must be gated live, the model told
/// why; its events.
fn gated_wire_run(omk: &Omk, wire: Wire) -> Vec<Value> {
    let (fake, id, run, _) = wire_run(omk, &wire_script(), wire);
    let events = assert_gated(omk, &id, &run, "kimi-wire");
    model_was_told(&fake);
    events
}

fn wire_script() -> Value {
    script(
        |p, c| json!({"name": "WriteFile", "arguments": {"path": p, "content": c}}),
        kimi_usage(),
    )
}

/// The channels (`wire PreToolUse`, `wire ApprovalRequest`) of the actions
/// `which` picks, in order.
fn channels(events: &[Value], which: impl Fn(&Value) -> bool) -> Vec<String> {
    of_kind(events, "agent_action")
        .into_iter()
        .filter(|e| which(&e["payload"]))
        .map(|e| {
            e["payload"]["action"]["detail"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// What the wire server said of itself (`agent_session`).
fn wire_session(events: &[Value]) -> Value {
    of_kind(events, "agent_note")
        .into_iter()
        .find(|e| e["payload"]["note"] == "agent_session")
        .map(|e| e["payload"]["detail"].clone())
        .expect("an agent_session note")
}

/// The channels that judged writes to `target`.
fn channels_of(events: &[Value], target: &str) -> Vec<String> {
    channels(events, |p| p["action"]["target"] == target)
}

/// The channels the refusals came through.
fn refusal_channels(events: &[Value]) -> Vec<String> {
    channels(events, |p| p["allowed"] == false)
}

#[test]
fn the_legacy_kimi_cli_is_gated_live_over_the_wire() {
    let omk = Omk::new();
    let events = gated_wire_run(&omk, Wire::default());
    // The real client, where it is installed, said who it is.
    let session = wire_session(&events);
    if clients::kimi_cli().is_some() {
        assert_eq!(
            session["server"],
            json!({"name": "Kimi Code CLI", "version": "1.51.0"}),
            "{session}"
        );
    }
    assert_eq!(session["pre_tool_use_hook"], true, "{session}");
    // The PreToolUse hook refused the write before Kimi asked for it; the
    // allowed one was judged at its hook and again at its approval.
    assert_eq!(refusal_channels(&events), ["wire PreToolUse: WriteFile"]);
    assert_eq!(
        channels_of(&events, ALLOWED),
        [
            "wire PreToolUse: WriteFile",
            "wire ApprovalRequest: WriteFile (edit file)"
        ]
    );
    // Three steps of 120 tokens each.
    assert_eq!(
        of_kind(&events, "agent_finished")[0]["payload"]["tokens"],
        360
    );
}

#[test]
fn a_wire_server_without_hooks_is_gated_through_its_approvals() {
    let omk = Omk::new();
    let wire = Wire {
        before_hooks: true,
        ..Wire::default()
    };
    let events = gated_wire_run(&omk, wire);
    assert_eq!(
        refusal_channels(&events),
        ["wire ApprovalRequest: WriteFile (edit file)"]
    );
    assert_eq!(
        channels_of(&events, ALLOWED),
        ["wire ApprovalRequest: WriteFile (edit file)"]
    );
    let session = wire_session(&events);
    assert_eq!(session["pre_tool_use_hook"], false, "{session}");
}

#[test]
fn where_kimi_approves_itself_the_wire_hook_still_refuses() {
    let omk = Omk::new();
    let wire = Wire {
        yolo: true,
        ..Wire::default()
    };
    let events = gated_wire_run(&omk, wire);
    assert_eq!(refusal_channels(&events), ["wire PreToolUse: WriteFile"]);
    // Kimi asked no approval for the allowed write: only its hook judged it.
    assert_eq!(
        channels_of(&events, ALLOWED),
        ["wire PreToolUse: WriteFile"]
    );
}

#[test]
fn at_the_deadline_the_wire_turn_is_cancelled_and_kimi_stopped() {
    let omk = Omk::new();
    // 30 s a try: the Python client takes ~5 s of CPU to answer
    // `initialize`, three times that with four tests on two cores.
    let mut script = script_with_budget(
        |p, c| json!({"name": "WriteFile", "arguments": {"path": p, "content": c}}),
        kimi_usage(),
        30,
    );
    script["turns"][0]["delay"] = json!(180);
    let (_fake, id, run, started) = wire_run(&omk, &script, Wire::default());
    assert_stopped_at_the_deadline(&omk, &id, &run, started);
    // Kimi heard the cancel and ended its turn itself, before the kill.
    for f in of_kind(&omk.events(&id), "agent_finished") {
        let tail = f["payload"]["output_tail"].as_str().unwrap();
        assert!(tail.ends_with("cancelled"), "{tail}");
    }
}

#[test]
fn a_wire_server_that_approves_itself_without_hooks_leaves_a_gap_in_the_proof() {
    let omk = Omk::new();
    let wire = Wire {
        yolo: true,
        before_hooks: true,
    };
    let (_fake, id, run, _) = wire_run(&omk, &wire_script(), wire);
    // Nothing was asked, so the outcome gate found the forbidden change.
    let gaps = rejected_at_the_outcome(&omk, &id, &run);
    assert!(
        gaps.contains("agent `kimi-wire` took 4 action(s) without asking omk"),
        "{gaps}"
    );
}

/// Work in the background would outlive the task's deadline, and a
/// background subagent runs without hooks: the real Kimi CLI's background
/// command and background subagent are refused at its hook, the model is
/// told why, and neither ran.
#[test]
fn background_commands_and_subagents_are_refused_live() {
    let omk = Omk::new();
    let task = json!({"id": "notes", "title": "Write the notes", "write_set": ["notes"],
                      "acceptance": ["run: true"], "budget_secs": 300});
    let script = json!({"plan": format!("One task.\nOMK_TASK_PROPOSAL: {task}\n"),
        "turns": [
            {"tool_call": {"name": "Shell", "arguments": {
                "command": "echo ran > notes/background.txt", "run_in_background": true,
                "description": "write in the background"}}},
            {"tool_call": {"name": "Agent", "arguments": {
                "description": "a helper", "prompt": "write notes/helper.txt",
                "subagent_type": "coder", "run_in_background": true}}},
            {"text": "Done."}],
        "usage": kimi_usage()});
    let (fake, id, _run, _) = wire_run(&omk, &script, Wire::default());
    let refused: Vec<String> = of_kind(&omk.events(&id), "agent_note")
        .into_iter()
        .filter(|e| e["payload"]["note"] == "action_refused")
        .map(|e| {
            e["payload"]["detail"]["reason"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused[0].starts_with("`Shell` in the background"),
        "{refused:?}"
    );
    assert!(
        refused[1].starts_with("`Agent` in the background"),
        "{refused:?}"
    );
    let told = fake
        .requests()
        .iter()
        .filter(|r| r.to_string().contains("omk refuses background work"))
        .count();
    assert!(told >= 2, "the model was told of {told} of the 2 refusals");
    // Neither ran: nothing landed on the task's branch.
    let files = omk.git(&["ls-tree", "-r", "--name-only", &format!("omk/{id}/notes")]);
    assert!(
        !files.contains("background.txt") && !files.contains("helper.txt"),
        "{files}"
    );
}

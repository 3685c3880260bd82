//! Reads are judged (`omk:gate@0.2.0`'s `read-file`): a project whose path
//! gate sets `deny_read` keeps every real client from reading what it
//! names, live — in a goal's task and in a session run by hand — while the
//! task's other work goes on. Codex has no read tool of its own (it reads
//! with shell commands, judged as commands), so it is not here.

use std::ffi::OsString;

use serde_json::{Value, json};

use crate::support::clients::{self, FakeModel};
use crate::support::{Omk, Run, of_kind};

/// The file no agent may read, and what is in it.
const SECRET: &str = "private/key.txt";
const CONTENT: &str = "TOPSECRET-4242";
/// The file the task writes.
const ALLOWED: &str = "notes/allowed.md";

/// A git project with a secret, whose path gate denies reading `private`.
fn project(omk: &Omk) {
    omk.git_project(&[
        ("README.md", "project\n"),
        ("notes/README.md", "notes\n"),
        (SECRET, &format!("{CONTENT}\n")),
    ]);
    omk.write(
        ".omk/gates.toml",
        "[[gate]]\nname = \"budget\"\n\n[[gate]]\nname = \"path\"\n\
         config = { deny_read = [\"private\"] }\n\n[[gate]]\nname = \"acceptance\"\n",
    );
    omk.git(&["add", "-A"]);
    omk.git(&["commit", "-qm", "deny reading private/"]);
}

/// The plan (one task that writes `notes/`), then the task's turns: the
/// read of the secret, the allowed write, a last word.
fn script(read: Value, write: Value, usage: Value) -> Value {
    let task = json!({"id": "notes", "title": "Write the notes", "write_set": ["notes"],
                      "acceptance": [format!("run: test -f {ALLOWED}")], "budget_secs": 300});
    json!({"plan": format!("One task.\nOMK_TASK_PROPOSAL: {task}\n"),
        "turns": [{"tool_call": read}, {"tool_call": write}, {"text": "Done: wrote the notes."}],
        "usage": usage})
}

/// The model was told why, and never saw the secret.
fn model_kept_out(fake: &FakeModel, shown: &str) {
    let requests: String = fake.requests().iter().map(Value::to_string).collect();
    assert!(
        requests.contains("the project denies reading `private`"),
        "the model never saw the refusal: {shown}"
    );
    assert!(
        !requests.contains(CONTENT),
        "the model saw the secret: {shown}"
    );
}

/// The goal ran its task: the read of the secret was refused live by the
/// path gate, the write landed, the model never saw the secret.
fn assert_read_refused(omk: &Omk, id: &str, run: &Run, fake: &FakeModel) {
    let shown = format!("{}\n{}", run.stdout, run.stderr);
    run.code(0);
    assert_eq!(
        omk.git(&["show", &format!("omk/{id}/notes:{ALLOWED}")]),
        "hello\n",
        "{shown}"
    );
    let events = omk.events(id);
    let refused: Vec<&Value> = of_kind(&events, "agent_action")
        .into_iter()
        .filter(|e| e["payload"]["allowed"] == false)
        .map(|e| &e["payload"])
        .collect::<Vec<_>>();
    assert!(!refused.is_empty(), "no refusal: {shown}");
    // The client may read more under `private/` of its own accord (Kimi
    // Code looks for an `AGENTS.md` in every folder): refused all the same.
    for r in &refused {
        assert_eq!(r["code"], "path.read-denied", "{r}");
        assert_eq!(r["action"]["kind"], "read_file", "{r}");
        assert!(
            r["action"]["target"]
                .as_str()
                .unwrap()
                .starts_with("private/"),
            "{r}"
        );
    }
    let actions: Vec<&Value> = of_kind(&events, "agent_action")
        .into_iter()
        .map(|e| &e["payload"])
        .collect();
    assert!(
        refused.iter().any(|r| r["action"]["target"] == SECRET),
        "the read of {SECRET} was not refused: {actions:#?}"
    );
    model_kept_out(fake, &shown);
    omk.run(&["goal", "verify-log", id]).code(0);
}

/// Runs a goal with `agent` in the project, its model `fake`.
fn run(omk: &Omk, agent: &[&str], env: &[(&str, OsString)]) -> (String, Run) {
    crate::agents::run_goal(omk, agent, env)
}

#[test]
fn claude_codes_reads_are_judged_in_a_task() {
    let Some(claude) = clients::claude() else {
        return;
    };
    let omk = Omk::new();
    project(&omk);
    let fake = FakeModel::start(
        "fake_anthropic",
        omk.root(),
        &script(
            json!({"name": "Read", "arguments": {"file_path": SECRET}}),
            json!({"name": "Write", "arguments": {"file_path": ALLOWED, "content": "hello\n"}}),
            json!({"input_tokens": 100, "output_tokens": 20}),
        ),
        &[],
    );
    let env = crate::agents::claude_env(fake.port);
    let (id, r) = run(&omk, &["--agent", "claude", "--command", &claude], &env);
    assert_read_refused(&omk, &id, &r, &fake);
}

#[test]
fn kimi_codes_reads_over_acp_are_judged_in_a_task() {
    let Some(kimi) = clients::kimi() else { return };
    let omk = Omk::new();
    project(&omk);
    let (fake, env) = crate::agents::kimi_setup_with(
        &omk,
        &script(
            json!({"name": "Read", "arguments": {"path": SECRET}}),
            json!({"name": "Write", "arguments": {"path": ALLOWED, "content": "hello\n"}}),
            json!({"prompt_tokens": 100, "completion_tokens": 20}),
        ),
    );
    let (id, r) = run(&omk, &["--agent", "kimi", "--command", &kimi], &env);
    assert_read_refused(&omk, &id, &r, &fake);
}

#[test]
fn the_kimi_clis_reads_over_the_wire_are_judged_in_a_task() {
    let omk = Omk::new();
    project(&omk);
    let wire = crate::agents::Wire {
        yolo: false,
        before_hooks: false,
    };
    let (fake, env) = crate::agents::wire_env(
        &omk,
        &script(
            json!({"name": "ReadFile", "arguments": {"path": SECRET}}),
            json!({"name": "WriteFile", "arguments": {"path": ALLOWED, "content": "hello\n"}}),
            json!({"prompt_tokens": 100, "completion_tokens": 20}),
        ),
        wire,
    );
    let cli = crate::agents::kimi_cli(wire);
    let (id, r) = run(&omk, &["--agent", "kimi-wire", "--command", &cli], &env);
    assert_read_refused(&omk, &id, &r, &fake);
}

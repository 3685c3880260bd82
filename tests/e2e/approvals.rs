//! Asking a person: a task whose command gate asks waits for `omk
//! approve`, is refused on `--deny` or when no one answers, and an answer
//! binds to the exact action; every ask and answer is in the log and the
//! proof.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Omk, of_kind, proposal, shown};

/// A project whose command gate asks about every `git push`, with a bare
/// remote `origin` the task may write; the remote's path.
pub(crate) fn asking_project(omk: &Omk, approvals: &str) -> PathBuf {
    omk.git_project(&[]);
    let remote = omk.root().join("remote.git");
    let ok = std::process::Command::new("git")
        .args(["init", "--quiet", "--bare"])
        .arg(&remote)
        .status()
        .unwrap();
    assert!(ok.success());
    omk.git(&["remote", "add", "origin", remote.to_str().unwrap()]);
    omk.write(
        ".omk/gates.toml",
        format!(
            "[[gate]]\nname = \"budget\"\n\n[[gate]]\nname = \"path\"\n\n[[gate]]\nname = \"acceptance\"\n\n\
             [[gate]]\nname = \"command\"\nconfig = {{ ask = [[\"git\", \"push\"]] }}\n\n[approvals]\n{approvals}\n"
        ),
    );
    omk.sandbox_grant("write", &remote);
    remote
}

/// The branches the remote at `remote` has.
pub(crate) fn pushed(remote: &std::path::Path) -> String {
    let out = std::process::Command::new("git")
        .args(["for-each-ref", "--format=%(refname:short)"])
        .current_dir(remote)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `omk goal run` on `script` in the background.
pub(crate) fn start(omk: &Omk, steps: Value) -> std::process::Child {
    let script = json!({
        "plan": [proposal("push", 120, &["notes"])],
        "tasks": {"push": [{"steps": steps, "evidence": [
            {"kind": "note", "summary": "pushed what was approved", "criterion": "accept"}
        ]}]}
    });
    let path = omk.write("../script.json", script.to_string());
    omk.spawn(
        &[
            "goal",
            "run",
            "push the work",
            "--agent",
            "scripted",
            "--script",
            path.to_str().unwrap(),
            "--until-ready",
        ],
        &[],
    )
}

/// Waits for an ask of `target` to be listed by `omk approvals --json`.
fn waiting_for(omk: &Omk, target: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        let list = omk.run(&["approvals", "--json"]);
        list.code(0);
        if let Some(w) = list
            .json()
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["target"] == target)
        {
            return w.clone();
        }
        assert!(Instant::now() < until, "no ask of `{target}` was listed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn approve(omk: &Omk, args: &[&str]) -> crate::support::Run {
    let mut all = vec!["approve"];
    all.extend_from_slice(args);
    omk.run_env(&all, &[("USER", OsStr::new("alice"))])
}

#[test]
fn a_task_waits_for_a_person_and_goes_on_when_approved() {
    let omk = Omk::new();
    let remote = asking_project(&omk, "timeout = 120");
    let push = "git push origin HEAD:refs/heads/reviewed";
    let child = start(
        &omk,
        json!([{"run": push}, {"write": "notes/done.md", "content": "pushed\n"}]),
    );
    let w = waiting_for(&omk, push);
    assert_eq!(w["kind"], "run_command");
    assert_eq!(w["gate"], "command");
    assert_eq!(w["code"], "command.ask");
    assert_eq!(
        w["commands"],
        json!([["git", "push", "origin", "HEAD:refs/heads/reviewed"]])
    );
    assert_eq!(w["waiting_now"], true);
    let id = w["id"].as_str().unwrap().to_owned();
    assert!(
        pushed(&remote).is_empty(),
        "nothing is pushed while it waits"
    );
    let text = omk.run(&["approvals"]);
    assert!(
        text.stdout.contains(&id) && text.stdout.contains(push),
        "{}",
        text.stdout
    );

    let ok = approve(&omk, &[&id, "--note", "release 1.2"]);
    ok.code(0);
    assert!(
        ok.stdout.contains("the waiting task has it"),
        "{}",
        ok.stdout
    );
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", shown(&out));
    assert!(
        pushed(&remote).contains("reviewed"),
        "the approved push happened"
    );

    let goal = omk.latest_goal();
    let events = omk.events(&goal);
    let answered = of_kind(&events, "approval_answered");
    assert_eq!(answered.len(), 1);
    let a = &answered[0];
    assert_eq!(a["actor"], "user");
    assert_eq!(a["payload"]["by"], "alice");
    assert_eq!(a["payload"]["approved"], true);
    assert_eq!(a["payload"]["note"], "release 1.2");
    let let_through: Vec<_> = of_kind(&events, "agent_action")
        .into_iter()
        .filter(|e| e["payload"]["approval"] == id.as_str())
        .collect();
    assert_eq!(let_through.len(), 1);
    assert_eq!(let_through[0]["payload"]["allowed"], true);
    let proof = omk.proof(&goal);
    assert_eq!(proof["approvals"][0]["id"], id.as_str());
    assert_eq!(proof["approvals"][0]["answer"], "approved");
    assert_eq!(proof["approvals"][0]["by"], "alice");
    assert_eq!(proof["approvals"][0]["used"], 1);
    omk.run(&["goal", "verify-log", &goal]).code(0);
    // Replayed with the same gates, the ask comes out the same.
    let replay = omk.run(&["goal", "replay", &goal, "--gates", "project", "--json"]);
    replay.code(0);
    assert_eq!(replay.json()["changes"], json!([]), "{}", replay.stdout);
    // Under a policy that refuses pushes, the approved one would change.
    let strict = omk.write(
        "strict.toml",
        "[[gate]]\nname = \"command\"\nconfig = { deny = [[\"git\", \"push\"]] }\n",
    );
    let replay = omk.run(&[
        "goal",
        "replay",
        &goal,
        "--gates",
        strict.to_str().unwrap(),
        "--json",
    ]);
    let changes = replay.json()["changes"].clone();
    let push_change = changes
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["target"] == push)
        .unwrap_or_else(|| panic!("{changes:#}"));
    assert_eq!(push_change["old"]["accepted"], true);
    assert_eq!(push_change["old"]["approval"], id.as_str());
    assert_eq!(push_change["new"]["code"], "command.deny");

    let again = approve(&omk, &[&id]);
    again.code(2);
    assert!(
        again.stderr.contains("answered already"),
        "{}",
        again.stderr
    );
    let unknown = approve(&omk, &["ap-0123456789"]);
    unknown.code(2);
    assert!(
        unknown.stderr.contains("omk approvals"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn a_denied_changed_or_unanswered_push_does_not_happen() {
    let omk = Omk::new();
    let remote = asking_project(&omk, "timeout = 10\nremember = \"task\"");
    let one = "git push origin HEAD:refs/heads/one";
    let two = "git push origin HEAD:refs/heads/two";
    let three = "git push origin HEAD:refs/heads/three";
    let child = start(
        &omk,
        json!([{"run": one}, {"run": one}, {"run": two}, {"run": three}]),
    );
    let first = waiting_for(&omk, one);
    approve(&omk, &[first["id"].as_str().unwrap()]).code(0);
    // The same push again is remembered for the task; a changed one asks.
    let second = waiting_for(&omk, two);
    assert_ne!(second["id"], first["id"]);
    assert_ne!(second["digest"], first["digest"]);
    approve(
        &omk,
        &[
            second["id"].as_str().unwrap(),
            "--deny",
            "--note",
            "not two",
        ],
    )
    .code(0);
    // An answer left under the third ask's id for another action is not
    // applied: it waits on, and times out.
    let third = waiting_for(&omk, three);
    let goal = third["goal"].as_str().unwrap().to_owned();
    let forged =
        json!({"id": third["id"], "digest": first["digest"], "approved": true, "by": "mallory"});
    let requests = omk.goal_dir(&goal).join("requests");
    std::fs::create_dir_all(&requests).unwrap();
    std::fs::write(
        requests.join(format!("approval-{}.json", third["id"].as_str().unwrap())),
        forged.to_string(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", shown(&out));
    let branches = pushed(&remote);
    assert!(branches.contains("one"), "{branches}");
    assert!(
        !branches.contains("two") && !branches.contains("three"),
        "{branches}"
    );

    let events = omk.events(&goal);
    assert_eq!(of_kind(&events, "approval_asked").len(), 3);
    let actions: Vec<&Value> = of_kind(&events, "agent_action")
        .into_iter()
        .filter(|e| e["payload"]["action"]["kind"] == "run_command")
        .map(|e| &e["payload"])
        .collect();
    assert_eq!(actions.len(), 4, "{:?}", of_kind(&events, "agent_action"));
    assert_eq!(actions[0]["allowed"], true);
    assert_eq!(actions[1]["allowed"], true);
    assert_eq!(
        actions[1]["approval"], first["id"],
        "remembered for the task"
    );
    assert_eq!(actions[2]["allowed"], false);
    assert_eq!(actions[2]["code"], "omk.approval-denied");
    let denied = actions[2]["reason"].as_str().unwrap();
    assert!(
        denied.contains("alice denied") && denied.contains("not two"),
        "{denied}"
    );
    assert_eq!(actions[3]["allowed"], false);
    assert_eq!(actions[3]["code"], "omk.approval-timeout");
    let answers = of_kind(&events, "approval_answered");
    let timed_out = answers.last().unwrap();
    assert_eq!(timed_out["actor"], "omk");
    assert_eq!(timed_out["payload"]["timed_out"], true);
    assert!(
        answers.iter().all(|a| a["payload"]["by"] != "mallory"),
        "the forged answer is not in the log"
    );
    let proof = omk.proof(&goal);
    let answered: Vec<&str> = proof["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["answer"].as_str().unwrap())
        .collect();
    assert_eq!(answered, ["approved", "denied", "timed out"]);
    assert!(
        omk.run(&["approvals", "--json"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// A `Bash` call of `command` in session `session`, as the clients send it.
pub(crate) fn bash_event(omk: &Omk, session: &str, command: &str) -> Vec<u8> {
    json!({"hook_event_name": "PreToolUse", "session_id": session,
           "cwd": omk.project(), "tool_name": "Bash",
           "tool_input": {"command": command}})
    .to_string()
    .into_bytes()
}

/// The `ap-…` id in a refusal's text.
fn id_in(text: &str) -> String {
    let at = text.find("omk approve ap-").expect("the way to approve") + "omk approve ".len();
    text[at..at + 13].to_owned()
}

#[test]
fn a_guarded_session_is_refused_until_approved_and_claude_code_is_asked() {
    let omk = Omk::new();
    let remote = asking_project(&omk, "");
    let push = "git push origin HEAD:refs/heads/by-hand";
    // Codex has no prompt a hook can open: refused, with the way to
    // approve; approved, the same call goes through once.
    let first = omk.run_stdin(&["hook", "codex"], &bash_event(&omk, "c-1", push));
    first.code(2);
    assert!(first.stderr.contains("command.ask"), "{}", first.stderr);
    let id = id_in(&first.stderr);
    let listed = omk.run(&["approvals", "--json"]).json();
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed[0]["session_of"], "codex");
    assert_eq!(listed[0]["waiting_now"], false);
    let ok = approve(&omk, &[&id, "--note", "fine by me"]);
    ok.code(0);
    assert!(ok.stdout.contains("when the agent asks"), "{}", ok.stdout);
    omk.run_stdin(&["hook", "codex"], &bash_event(&omk, "c-1", push))
        .code(0);
    let changed = "git push origin HEAD:refs/heads/other";
    let other = omk.run_stdin(&["hook", "codex"], &bash_event(&omk, "c-1", changed));
    other.code(2);
    assert_ne!(id_in(&other.stderr), id, "a changed command is a new ask");
    let again = omk.run_stdin(&["hook", "codex"], &bash_event(&omk, "c-1", push));
    again.code(2);
    assert_ne!(id_in(&again.stderr), id, "one approval, one call");
    let session = crate::guard::the_session(&omk, "codex");
    let events = omk.events(&session);
    let through: Vec<_> = of_kind(&events, "agent_action")
        .into_iter()
        .filter(|e| e["payload"]["approval"] == id.as_str())
        .collect();
    assert_eq!(through.len(), 1);
    let proof = omk.run(&["goal", "proof", &session, "--json"]).json();
    assert_eq!(proof["approvals"][0]["note"], "fine by me", "{proof}");

    // Claude Code has a prompt: the hook asks it, with the gate's reason.
    let Some(hand) = crate::guard::claude_with(
        &omk,
        &json!({"turns": [
            {"tool_call": {"name": "Bash", "arguments": {"command": push}}},
            {"tool_call": {"name": "Bash", "arguments": {"command": "sleep 2"}}},
            {"tool_call": {"name": "Bash", "arguments": {"command": "git status"}}},
            {"text": "Done."}
        ], "usage": {"input_tokens": 10, "output_tokens": 2}}),
    ) else {
        return;
    };
    let envs: Vec<(&str, &OsStr)> = hand.env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    omk.run_env(&["guard", "install", "claude"], &envs).code(0);
    let out = crate::guard::client(&omk, &hand.program, &hand.env)
        .args(&hand.args)
        .output()
        .unwrap();
    omk.run_env(&["guard", "uninstall", "claude"], &envs)
        .code(0);
    let requests: String = hand.fake.requests().iter().map(Value::to_string).collect();
    assert!(
        requests.contains("command.ask") && requests.contains("asks a person"),
        "the model was not told why: {}",
        shown(&out)
    );
    assert!(
        pushed(&remote).is_empty(),
        "print mode has no prompt: nothing ran"
    );
    // The answer at its prompt (print mode has none: the call did not
    // run) is read from its transcript at the session's next calls (Claude
    // writes its transcript a moment after it answers the model).
    let claude = omk
        .run(&["goal", "list", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["guarded"]["client"] == "claude")
        .map(|g| g["id"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no claude session: {}", shown(&out)));
    let events = omk.events(&claude);
    let asked = of_kind(&events, "approval_asked");
    assert_eq!(asked.len(), 1, "{}", shown(&out));
    assert_eq!(asked[0]["payload"]["action"]["target"], push);
    assert!(asked[0]["payload"]["client_call"].as_str().is_some());
    let answered = of_kind(&events, "approval_answered");
    assert_eq!(answered.len(), 1, "{}", shown(&out));
    assert_eq!(answered[0]["payload"]["approved"], false);
    assert!(
        answered[0]["payload"]["by"]
            .as_str()
            .unwrap()
            .ends_with("at Claude Code's prompt")
    );
}

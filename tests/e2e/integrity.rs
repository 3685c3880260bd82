//! Integrity: what omk records and what it loads cannot be forged without
//! omk noticing. One test per attack of the integrity review, each
//! reproducing the attack against the real binary.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{Omk, copy_dir, proposal, repo};

/// `omk gate check --json` on the shipped examples, with the timings
/// removed: what the gates decided, nothing else.
fn decisions(omk: &Omk) -> Value {
    let run = crate::gate_check::check_examples(omk, &["--json"]);
    run.code(1);
    let mut out = run.json();
    for r in out["results"].as_array_mut().unwrap() {
        for d in r["decisions"].as_array_mut().unwrap() {
            d.as_object_mut().unwrap().remove("micros");
        }
    }
    out
}

/// The cache entry of the std gate `name` under the test's cache home.
fn cache_entry(omk: &Omk, name: &str) -> PathBuf {
    let gate = omk::gates::std_bundle::get(name).unwrap();
    let sha = omk::gates::sha256_hex(gate.bytes);
    let root = omk.cache_home().join("omk/components");
    let engine = std::fs::read_dir(&root).unwrap().flatten().next().unwrap();
    engine.path().join(format!("{sha}.cwasm"))
}

#[test]
fn a_swapped_random_or_truncated_cache_entry_changes_no_decision() {
    let omk = Omk::new();
    let want = decisions(&omk);
    let path = cache_entry(&omk, "path");
    let budget = cache_entry(&omk, "budget");
    assert!(path.exists() && budget.exists());
    let patch_hosts = |d: &Value| {
        d["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == "patch-hosts")
            .cloned()
            .unwrap()
    };
    assert_eq!(patch_hosts(&want)["rejection"]["code"], "path.absolute");

    let swapped = std::fs::read(&budget).unwrap();
    let random: Vec<u8> = (0..70_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let whole = std::fs::read(&path).unwrap();
    let attacks = [
        (
            "the budget gate's entry copied over the path gate's",
            swapped,
        ),
        ("random bytes", random),
        (
            "the path gate's own entry cut in half",
            whole[..whole.len() / 2].to_vec(),
        ),
    ];
    for (what, bytes) in attacks {
        std::fs::write(&path, bytes).unwrap();
        let got = decisions(&omk);
        assert_eq!(got, want, "{what}: the decisions changed");
        // The entry was compiled again and replaced by a sound one.
        assert_eq!(decisions(&omk), want, "{what}: after the repair");
    }
}

/// A goal whose log has refusals, gate decisions and checkpoints: the demo.
fn demo_goal(omk: &Omk) -> String {
    omk.run(&[
        "demo",
        "--dir",
        omk.project().join("demo").to_str().unwrap(),
    ])
    .code(0);
    omk.latest_goal()
}

fn verify_log(omk: &Omk, id: &str) -> crate::support::Run {
    omk.run(&["goal", "verify-log", id])
}

#[test]
fn the_log_verifies_and_names_its_anchors() {
    let omk = Omk::new();
    let id = demo_goal(&omk);
    let run = verify_log(&omk, &id);
    run.code(0);
    assert!(run.stdout.starts_with("OK  "), "{}", run.stdout);
    let v = omk.run(&["goal", "verify-log", &id, "--json"]).json();
    assert!(v["checkpoints"].as_u64().unwrap() >= 3, "{v:#}");
    assert!(v["trailers"].as_u64().unwrap() >= 4, "{v:#}");
    assert_eq!(v["unanchored_events"], 0, "{v:#}");
    assert_eq!(v["anchored_to"], v["events"], "{v:#}");
    // Another machine's omk does not trust this one's key unless told.
    let elsewhere = Omk::new();
    std::fs::create_dir_all(elsewhere.state_home()).unwrap();
    copy_dir(&omk.state_home(), &elsewhere.state_home());
    let untrusted = elsewhere.run(&["goal", "verify-log", &id]);
    untrusted.code(1);
    assert!(
        untrusted.stdout.contains("not trusted"),
        "{}",
        untrusted.stdout
    );
    let key = omk.root().join(".config/omk/keys/log.key.pub");
    elsewhere
        .run(&[
            "goal",
            "verify-log",
            &id,
            "--trust-key",
            key.to_str().unwrap(),
        ])
        .code(0);
}

fn log_lines(omk: &Omk, id: &str) -> Vec<String> {
    std::fs::read_to_string(omk.goal_dir(id).join("events.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_log(omk: &Omk, id: &str, lines: &[String]) {
    std::fs::write(
        omk.goal_dir(id).join("events.jsonl"),
        lines.join("\n") + "\n",
    )
    .unwrap();
}

#[test]
fn a_log_cut_short_is_caught() {
    let omk = Omk::new();
    let id = demo_goal(&omk);
    let lines = log_lines(&omk, &id);
    write_log(&omk, &id, &lines[..lines.len() - 12]);
    let run = verify_log(&omk, &id);
    run.code(1);
    assert!(run.stdout.contains("cut from its end"), "{}", run.stdout);
}

/// The log with every event `drop` picks removed and the chain hashed again
/// over the rest, exactly as omk writes it: what an attacker with the file
/// and the format, but not the key, can do.
fn rechained(lines: &[String], drop: impl Fn(&Value) -> bool) -> Vec<String> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::new();
    let mut prev = "0".repeat(64);
    for line in lines {
        let e: Value = serde_json::from_str(line).unwrap();
        if drop(&e) {
            continue;
        }
        let body = json!({
            "id": out.len() + 1, "run_id": e["run_id"], "ts": e["ts"],
            "schema_version": e["schema_version"], "kind": e["kind"], "actor": e["actor"],
            "payload": e["payload"], "prev_hash": prev,
        });
        let text = serde_json::to_string(&body).unwrap();
        prev = hex::encode(Sha256::digest(text.as_bytes()));
        out.push(format!("{},\"hash\":\"{prev}\"}}", &text[..text.len() - 1]));
    }
    out
}

#[test]
fn refusals_deleted_and_the_chain_rehashed_are_caught() {
    let omk = Omk::new();
    let id = demo_goal(&omk);
    let lines = log_lines(&omk, &id);
    let forged = rechained(&lines, |e| {
        e["kind"] == "task_rejected"
            || e["kind"] == "gate_decision"
            || (e["kind"] == "agent_action" && e["payload"]["allowed"] == false)
    });
    assert!(forged.len() < lines.len() - 10);
    write_log(&omk, &id, &forged);
    let run = verify_log(&omk, &id);
    run.code(1);
    assert!(
        run.stdout.contains("checkpoint") && run.stdout.contains("rehashed"),
        "{}",
        run.stdout
    );
    // Also without the checkpoints and `checkpoint.json`: not anchored, and
    // the commits' trailers disagree.
    let bare = rechained(&lines, |e| {
        e["kind"] == "task_rejected" || e["kind"] == "log_checkpoint"
    });
    write_log(&omk, &id, &bare);
    std::fs::remove_file(omk.goal_dir(&id).join("checkpoint.json")).unwrap();
    let run = verify_log(&omk, &id);
    run.code(1);
    assert!(run.stdout.contains("not anchored"), "{}", run.stdout);
    assert!(run.stdout.contains("trailer"), "{}", run.stdout);
}

#[test]
fn a_junk_line_in_the_middle_is_caught() {
    let omk = Omk::new();
    let id = demo_goal(&omk);
    let mut lines = log_lines(&omk, &id);
    let at = lines.len() / 2;
    lines.insert(at, "{\"id\":12,\"run_id\":\"run-torn".to_owned());
    write_log(&omk, &id, &lines);
    let run = verify_log(&omk, &id);
    run.code(1);
    assert!(
        run.stdout.contains(&format!(":{}: ", at + 1)) && run.stdout.contains("inserted"),
        "{}",
        run.stdout
    );
}

#[test]
fn task_ids_that_would_share_a_branch_or_worktree_are_refused() {
    let omk = Omk::new();
    let id = omk.new_goal("ids", &[]);
    let plan = omk.plan(
        "ids",
        json!([
            proposal("a/b", 60, &["src/one.md"]),
            proposal("a-b", 60, &["src/two.md"]),
            proposal("A/B", 60, &["src/three.md"]),
            proposal("_integration", 60, &["src/four.md"]),
            proposal("Integration", 60, &["src/five.md"]),
            proposal("_Plan", 60, &["src/eight.md"]),
            proposal("fine", 60, &["src/six.md"]),
        ]),
    );
    let run = omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"]);
    run.code(1);
    let ev = run.json();
    assert_eq!(ev["accepted"], json!(["a/b", "fine"]), "{ev:#}");
    for r in ev["rejected"].as_array().unwrap() {
        assert_eq!(r["code"], "omk.id-collision", "{r:#}");
        assert_eq!(r["gate"], "omk", "{r:#}");
    }
    // Against tasks of earlier waves too.
    let plan = omk.plan("ids-2", json!([proposal("FINE", 60, &["src/seven.md"])]));
    let run = omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"]);
    run.code(1);
    assert_eq!(run.json()["rejected"][0]["code"], "omk.id-collision");
}

/// A bundle at `version` (the std path gate under another name), packed and
/// signed with `key`.
fn team_bundle(omk: &Omk, version: &str, key: &str) -> String {
    let dir = omk.project().join(format!("src-bundles/team-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        repo().join("plugins/std-bundle/path.wasm"),
        dir.join("strict-path.wasm"),
    )
    .unwrap();
    std::fs::write(
        dir.join("bundle.toml"),
        format!(
            "name = \"team\"\nversion = \"{version}\"\nwit = \"0.1.0\"\n\n[[gate]]\nname = \"strict-path\"\nfile = \"strict-path.wasm\"\nstages = [\"proposal\"]\n"
        ),
    )
    .unwrap();
    let out = dir.with_extension("tar.gz").display().to_string();
    omk.run(&["bundle", "pack", dir.to_str().unwrap(), "-o", &out])
        .code(0);
    omk.run(&["bundle", "sign", &out, "--key", key]).code(0);
    out
}

#[test]
fn an_older_signed_bundle_does_not_replace_a_newer_one() {
    let omk = Omk::new();
    let key = omk.project().join("team.key");
    omk.run(&["bundle", "keygen", "--out", key.to_str().unwrap()])
        .code(0);
    let public = std::fs::read_to_string(format!("{}.pub", key.display())).unwrap();
    omk.write(
        ".omk/gates.toml",
        format!(
            "[trust]\nkeys = [\"{}\"]\n\n[[gate]]\nbundle = \"team\"\nname = \"strict-path\"\n",
            public.trim()
        ),
    );
    let key = key.to_str().unwrap();
    let (v1, v2) = (
        team_bundle(&omk, "1.0.0", key),
        team_bundle(&omk, "2.0.0", key),
    );
    omk.run(&["bundle", "install", &v2]).code(0);
    let refused = omk.run(&["bundle", "install", &v1]);
    refused.code(3);
    assert!(refused.stderr.contains("rollback"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--allow-downgrade"),
        "{}",
        refused.stderr
    );
    let installed = omk.project().join(".omk/bundles/team/bundle.toml");
    assert!(
        std::fs::read_to_string(&installed)
            .unwrap()
            .contains("2.0.0")
    );
    // Copying the old release into place by hand is refused at load.
    let check = |omk: &Omk| {
        omk.run(&[
            "gate",
            "check",
            "--proposal",
            repo().join("examples/proposals.json").to_str().unwrap(),
        ])
    };
    std::fs::remove_dir_all(omk.project().join(".omk/bundles/team")).unwrap();
    let sneak = omk.project().join("sneak");
    std::fs::create_dir_all(&sneak).unwrap();
    std::fs::rename(
        omk.project().join(".omk/bundles/installed.json"),
        sneak.join("kept"),
    )
    .unwrap();
    omk.run(&["bundle", "install", &v1]).code(0);
    std::fs::rename(
        sneak.join("kept"),
        omk.project().join(".omk/bundles/installed.json"),
    )
    .unwrap();
    let run = check(&omk);
    run.code(3);
    assert!(run.stderr.contains("rollback"), "{}", run.stderr);
    // Asked for, the rollback is made and recorded.
    omk.run(&["bundle", "install", &v1, "--allow-downgrade"])
        .code(0);
    check(&omk).code(1);
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(omk.project().join(".omk/bundles/installed.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["bundles"]["team"]["version"], "1.0.0");
    assert_eq!(record["bundles"]["team"]["highest"], "2.0.0");
    // A project may pin the oldest release it accepts.
    let pinned = std::fs::read_to_string(omk.project().join(".omk/gates.toml")).unwrap()
        + "\n[[bundle]]\nname = \"team\"\nmin_version = \"2.0.0\"\n";
    omk.write(".omk/gates.toml", pinned);
    let run = check(&omk);
    run.code(3);
    assert!(run.stderr.contains("older than 2.0.0"), "{}", run.stderr);
}

#[test]
fn an_acp_agent_is_never_told_always() {
    let omk = Omk::new();
    omk.git_project(&[]);
    let home = omk.project().parent().unwrap().to_path_buf();
    let task = json!({"id": "notes", "title": "Write the notes", "write_set": ["notes"],
                      "acceptance": ["run: true"], "budget_secs": 120});
    let script = json!({
        "plan": format!("OMK_TASK_PROPOSAL: {task}\n"),
        "write": {"path": "notes/a.md", "content": "hello\n"},
        "options": ["allow_always", "reject_once"],
    });
    // The agent logs what it receives: into a folder granted to it.
    let acp = home.join("acp");
    std::fs::create_dir_all(&acp).unwrap();
    omk.sandbox_grant("write", &acp);
    let script_path = acp.join("acp-script.json");
    std::fs::write(&script_path, script.to_string()).unwrap();
    let log = acp.join("acp-log.jsonl");
    let agent = format!(
        "acp:python3 {} --script {} --log {}",
        repo().join("tests/fixtures/fake_acp_agent.py").display(),
        script_path.display(),
        log.display()
    );
    let id = omk.new_goal("notes", &["--agent", &agent]);
    omk.run(&["goal", "execute", &id, "--json"]);
    // omk answered the permission request with the refusal it was offered,
    // never `allow_always`, and nothing was written.
    let answers: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|m: &Value| m["result"]["outcome"].is_object())
        .collect();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_ne!(answers[0]["result"]["outcome"]["optionId"], "allow_always");
    let events = omk.events(&id);
    assert!(
        events.iter().any(|e| e["kind"] == "agent_note"
            && e["payload"]["note"] == "permission_allow_once_missing"),
        "{events:#?}"
    );
    assert_eq!(
        omk.git(&["show", &format!("omk/{id}/notes:notes/a.md")]),
        ""
    );
}

#[test]
fn a_recorded_input_changed_after_the_fact_is_reported_by_replay() {
    let omk = Omk::new();
    let id = demo_goal(&omk);
    let path = omk.goal_dir(&id).join("artifacts/inputs.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let n = lines
        .iter()
        .position(|l| l.contains("\"write_set\""))
        .unwrap();
    lines[n] = lines[n].replacen("\"write_set\":[", "\"write_set\":[\"x\",", 1);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let run = omk.run(&["goal", "replay", &id, "--gates", "std"]);
    run.code(1);
    assert!(
        run.stdout.contains("DAMAGED") && run.stdout.contains(&format!("line {}", n + 1)),
        "{}",
        run.stdout
    );
}

#[test]
fn what_people_read_and_share_follows_the_umask() {
    let omk = Omk::new();
    let id = demo_goal(&omk);
    let report = omk.project().join("report.html");
    omk.run(&["goal", "report", &id, "--html", report.to_str().unwrap()])
        .code(0);
    let bundle = omk.project().join("std.tar.gz");
    let src = omk.project().join("std-src");
    copy_std_bundle(&src);
    omk.run(&[
        "bundle",
        "pack",
        src.to_str().unwrap(),
        "-o",
        bundle.to_str().unwrap(),
    ])
    .code(0);
    let g = omk.project().join("g");
    omk.run(&[
        "gate",
        "new",
        "g",
        "--lang",
        "rust",
        "--dir",
        g.to_str().unwrap(),
    ])
    .code(0);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // What a new file gets under this process's umask.
    let plain = omk.project().join("plain");
    std::fs::write(&plain, "x").unwrap();
    let want = mode(&plain);
    assert_ne!(want, 0o600, "the test needs a umask that lets others read");
    for p in [
        report,
        bundle,
        omk.project().join("g/cases.toml"),
        omk.goal_dir(&id).join("goal.json"),
    ] {
        assert_eq!(mode(&p), want, "{}", p.display());
    }
    let key = omk.root().join(".config/omk/keys/log.key");
    assert_eq!(mode(&key), 0o600);
}

fn copy_std_bundle(to: &Path) {
    std::fs::create_dir_all(to.join("signatures")).unwrap();
    for e in std::fs::read_dir(repo().join("plugins/std-bundle"))
        .unwrap()
        .flatten()
    {
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_closed_pipe_ends_omk_quietly() {
    let omk = Omk::new();
    let id = omk.new_goal("pipe", &[]);
    let many: Vec<Value> = (0..600)
        .map(|i| proposal(&format!("t{i}"), 1, &[&format!("src/f{i}.md")]))
        .collect();
    let plan = omk.plan("many", json!(many));
    omk.run(&["goal", "propose", &id, "--plan", &plan]);
    // Far more than a pipe holds, so omk is still writing when `head` goes.
    let all = omk.run(&["goal", "events", &id, "--json"]);
    assert!(all.stdout.len() > 1 << 20, "{}", all.stdout.len());
    // JSON lines: every line an event.
    for line in all.stdout.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        assert!(e["hash"].is_string(), "{line}");
    }
    let mut omk_events = omk.command();
    omk_events
        .args(["goal", "events", &id, "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = omk_events.spawn().unwrap();
    // Read one line, as `head -1` does, and close the pipe.
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr, "", "omk printed something when the pipe closed");
    assert!(out.status.success(), "exit {:?}", out.status);
}

#[test]
fn blank_paths_are_refused_at_every_stage() {
    let omk = Omk::new();
    let id = omk.new_goal("blank", &[]);
    let plan = omk.plan(
        "blank",
        json!([
            proposal("spaces", 60, &["   "]),
            proposal("blank-part", 60, &["src/  /x.md"]),
            proposal("nbsp", 60, &["\u{a0}"]),
        ]),
    );
    let run = omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"]);
    run.code(1);
    let codes: Vec<String> = run.json()["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes, ["path.empty", "path.blank", "path.empty"]);
    // An action and an outcome naming a blank path.
    let ctx = json!({"goal_id": "g", "policy_roots": ["src"]});
    let task = json!({"id": "t", "write_set": ["src"], "acceptance": ["done"], "budget_secs": 60});
    let action_case = json!({"case": [
        {"name": "blank write", "stage": "action", "proposal": task, "context": ctx,
         "action": {"task_id": "t", "kind": "write_file", "target": "src/ /x"}, "expect": "reject", "code": "path.blank"},
        {"name": "blank change", "stage": "outcome", "proposal": task, "context": ctx,
         "outcome": {"changed_files": ["   "], "checks": [], "evidence": []}, "expect": "reject", "code": "path.empty"}
    ]});
    let cases = omk.write("cases.json", action_case.to_string());
    omk.run(&[
        "gate",
        "test",
        repo()
            .join("plugins/std-bundle/path.wasm")
            .to_str()
            .unwrap(),
        "--cases",
        cases.to_str().unwrap(),
    ])
    .code(0);
}

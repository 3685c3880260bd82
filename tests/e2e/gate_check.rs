//! `omk gate check` and `omk gate inspect` end to end.

use serde_json::{Value, json};

use crate::support::{Omk, components, repo};

/// `omk gate check` on the shipped examples, with `extra` arguments.
pub(crate) fn check_examples(omk: &Omk, extra: &[&str]) -> crate::support::Run {
    let dir = repo().join("examples");
    let proposals = dir.join("proposals.json").display().to_string();
    let context = dir.join("context.json").display().to_string();
    let mut args = vec![
        "gate",
        "check",
        "--proposal",
        &proposals,
        "--context",
        &context,
    ];
    args.extend_from_slice(extra);
    omk.run(&args)
}

fn result<'a>(out: &'a Value, id: &str) -> &'a Value {
    out["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no result for {id}"))
}

#[test]
fn examples_show_accepts_and_rejects_with_codes() {
    let omk = Omk::new();
    let run = check_examples(&omk, &["--json"]);
    run.code(1);
    let out = run.json();

    let want = [
        ("add-login-form", None),
        ("patch-hosts", Some(("path", "path.absolute"))),
        (
            "rewrite-everything",
            Some(("budget", "budget.time-exceeded")),
        ),
        ("tidy-docs", Some(("acceptance", "acceptance.missing"))),
        ("login-tests", Some(("path", "path.conflict"))),
        ("login-docs", None),
    ];
    for (id, rejection) in want {
        let r = result(&out, id);
        match rejection {
            None => {
                assert_eq!(r["accepted"], true, "{id}: {r:#}");
                assert_eq!(r["rejection"], Value::Null);
            }
            Some((gate, code)) => {
                assert_eq!(r["accepted"], false, "{id}");
                assert_eq!(r["rejection"]["gate"], gate, "{id}: {r:#}");
                assert_eq!(r["rejection"]["code"], code, "{id}: {r:#}");
            }
        }
        // Every gate is recorded, in order, with version and digest.
        let decisions = r["decisions"].as_array().unwrap();
        let gates: Vec<&str> = decisions
            .iter()
            .map(|d| d["gate"].as_str().unwrap())
            .collect();
        assert_eq!(gates, ["budget", "path", "command", "acceptance"]);
        for d in decisions {
            assert_eq!(d["sha256"].as_str().unwrap().len(), 64);
            assert_eq!(d["version"], "0.3.0");
            assert!(d["micros"].is_u64());
            assert!(d["verdict"] == "accept" || d["verdict"] == "reject");
        }
    }
    let reason = result(&out, "patch-hosts")["rejection"]["reason"]
        .as_str()
        .unwrap();
    assert!(
        reason.contains("outside the allowed goal policy roots"),
        "{reason}"
    );
    let reason = result(&out, "rewrite-everything")["rejection"]["reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("would exceed goal time budget"), "{reason}");
    assert_eq!(
        out["summary"],
        json!({"total": 6, "accepted": 2, "rejected": 4})
    );
    assert_eq!(out["gates"].as_array().unwrap().len(), 4);
    assert_eq!(out["config"], Value::Null);
}

#[test]
fn text_output_names_verdicts_gates_and_reasons() {
    let omk = Omk::new();
    let run = check_examples(&omk, &[]);
    run.code(1);
    assert!(
        run.stdout.contains("ACCEPT  add-login-form"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("REJECT  patch-hosts  by `path`:")
            && run.stdout.contains("[path.absolute]"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("6 proposals: 2 accepted, 4 rejected"),
        "{}",
        run.stdout
    );
}

#[test]
fn all_accepted_exits_zero_and_one_object_is_one_proposal() {
    let omk = Omk::new();
    omk.write(
        "p.json",
        r#"{"id":"a","write_set":["src/a.rs"],"acceptance":["run: true"],"budget_secs":60}"#,
    );
    let out = omk.run(&["gate", "check", "--proposal", "p.json", "--json"]);
    out.code(0);
    assert_eq!(out.json()["summary"]["accepted"], 1);
}

#[test]
fn usage_and_input_errors_exit_two_with_help() {
    let omk = Omk::new();
    let missing = omk.run(&["gate", "check", "--proposal", "nope.json"]);
    missing.code(2);
    assert!(
        missing.stderr.contains("nope.json") && missing.stderr.contains("help:"),
        "{}",
        missing.stderr
    );

    omk.write("bad.json", "[{\"id\": \"a\",\n \"budget_secs\": }]");
    let bad = omk.run(&["gate", "check", "--proposal", "bad.json"]);
    bad.code(2);
    assert!(bad.stderr.contains("bad.json`:2:"), "{}", bad.stderr);
    // The position once, not again at the end.
    assert!(!bad.stderr.contains("at line"), "{}", bad.stderr);

    omk.write("typo.json", r#"[{"id":"a","writeset":["x"]}]"#);
    let typo = omk.run(&["gate", "check", "--proposal", "typo.json"]);
    typo.code(2);
    assert!(
        typo.stderr.contains("writeset") && typo.stderr.contains("proposal 1"),
        "{}",
        typo.stderr
    );

    omk.write("empty.json", "[]");
    omk.run(&["gate", "check", "--proposal", "empty.json"])
        .code(2);

    omk.run(&["gate", "check"]).code(2);
    omk.run(&["gate", "frobnicate"]).code(2);
}

#[test]
fn bad_config_names_file_line_and_key() {
    let omk = Omk::new();
    omk.write("p.json", r#"{"id":"a","acceptance":["x"],"budget_secs":1}"#);
    omk.write(
        ".omk/gates.toml",
        "[[gate]]\nname = \"budget\"\nconfgi = {}\n",
    );
    let run = omk.run(&["gate", "check", "--proposal", "p.json"]);
    run.code(2);
    assert!(run.stderr.contains(".omk/gates.toml:3: "), "{}", run.stderr);
    assert!(run.stderr.contains("confgi"), "{}", run.stderr);
    assert!(run.stderr.contains("help:"), "{}", run.stderr);
}

#[test]
fn project_config_orders_gates_passes_config_and_audits() {
    let omk = Omk::new();
    omk.write(
        ".omk/gates.toml",
        r#"
[[gate]]
name = "path"
config = { roots = ["src"] }

[[gate]]
name = "acceptance"
mode = "audit"
"#,
    );
    omk.write(
        "p.json",
        r#"[{"id":"in","write_set":["src/a.rs"],"budget_secs":1},
            {"id":"out","write_set":["docs/a.md"],"acceptance":["x"],"budget_secs":1}]"#,
    );
    let run = omk.run(&["gate", "check", "--proposal", "p.json", "--json"]);
    run.code(1);
    let out = run.json();
    assert!(out["config"].as_str().unwrap().ends_with(".omk/gates.toml"));
    // `in` has no acceptance criteria: the audit gate records it, but it is accepted.
    let r = result(&out, "in");
    assert_eq!(r["accepted"], true);
    let d = &r["decisions"][1];
    assert_eq!(
        (d["gate"].as_str(), d["mode"].as_str()),
        (Some("acceptance"), Some("audit"))
    );
    assert_eq!(d["code"], "acceptance.missing");
    // `out` is outside the roots the project configured.
    assert_eq!(
        result(&out, "out")["rejection"]["code"],
        "path.outside-roots"
    );
}

#[test]
fn second_run_loads_compiled_components_from_the_cache() {
    let omk = Omk::new();
    omk.write("p.json", r#"{"id":"a","acceptance":["x"],"budget_secs":1}"#);
    omk.run(&["gate", "check", "--proposal", "p.json"]).code(0);
    let entries = || -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
        let mut v: Vec<_> = walk(&omk.cache_home())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .map(|p| {
                let m = std::fs::metadata(&p).unwrap().modified().unwrap();
                (p, m)
            })
            .collect();
        v.sort();
        v
    };
    let first = entries();
    assert_eq!(first.len(), 4, "one entry per std gate: {first:?}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    omk.run(&["gate", "check", "--proposal", "p.json"]).code(0);
    assert_eq!(
        entries(),
        first,
        "the second run rewrote the cache: it compiled again"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn inspect_std_gates_shows_their_version_imports_and_stages() {
    let omk = Omk::new();
    // Gates built with the SDK import the host's context interface (the
    // SDK asks it only when a gate reads the goal's text, the tasks admitted
    // earlier in the wave or the task ids); the 0.1.0 build of the std
    // bundle, kept for the adapter's tests, imports nothing.
    let context = json!(["omk:gate/context@0.3.0"]);
    let (now, v1, v2) = (
        "plugins/std-bundle",
        "tests/fixtures/gates-0.1.0/std-bundle",
        "tests/fixtures/gates-0.2.0/std-bundle",
    );
    let all = vec!["proposal", "action", "outcome"];
    for (dir, version, name, stages, imports) in [
        (now, "0.3.0", "budget", vec!["proposal"], context.clone()),
        (now, "0.3.0", "path", all.clone(), context.clone()),
        (
            now,
            "0.3.0",
            "acceptance",
            vec!["proposal", "outcome"],
            context,
        ),
        (
            v2,
            "0.2.0",
            "path",
            all.clone(),
            json!(["omk:gate/context@0.2.0"]),
        ),
        (v1, "0.1.0", "path", all, json!([])),
    ] {
        let file = repo().join(format!("{dir}/{name}.wasm"));
        let run = omk.run(&["gate", "inspect", file.to_str().unwrap(), "--json"]);
        run.code(0);
        let i = run.json();
        assert_eq!(i["imports"], imports, "{name}");
        assert_eq!(i["world"], "gate");
        assert_eq!(i["wit_version"], version);
        assert_eq!(i["gate"]["name"], name);
        assert_eq!(i["gate"]["version"], version);
        assert_eq!(i["gate"]["stages"], json!(stages));
        let exports = i["exports"].as_array().unwrap();
        assert!(exports.contains(&json!(format!("omk:gate/policy@{version}#check-proposal"))));
        assert_eq!(
            exports.contains(&json!(format!("omk:gate/policy@{version}#validate-config"))),
            version != "0.1.0"
        );
        assert_eq!(
            i["size"].as_u64().unwrap(),
            std::fs::metadata(&file).unwrap().len()
        );

        let text = omk.run(&["gate", "inspect", file.to_str().unwrap()]);
        text.code(0);
        if imports == json!([]) {
            assert!(text.stdout.contains("imports:     none"), "{}", text.stdout);
        }
    }
}

#[test]
fn inspect_reports_what_a_non_gate_is() {
    let omk = Omk::new();
    let other = omk.write("other.wasm", components::other_world());
    let run = omk.run(&["gate", "inspect", other.to_str().unwrap(), "--json"]);
    run.code(0);
    let i = run.json();
    assert_eq!(i["world"], Value::Null);
    assert_eq!(i["exports"], json!(["answer"]));
    assert!(
        i["load_error"]
            .as_str()
            .unwrap()
            .contains("does not export `omk:gate/policy`")
    );

    let core = omk.write("core.wasm", components::core_module());
    let run = omk.run(&["gate", "inspect", core.to_str().unwrap()]);
    run.code(2);
    assert!(
        run.stderr.contains("core WebAssembly module"),
        "{}",
        run.stderr
    );
}

#[test]
fn proposals_come_from_several_files_and_from_stdin() {
    let omk = Omk::new();
    omk.write(
        "one.json",
        r#"{"id":"a","write_set":["src/a.rs"],"acceptance":["run: true"],"budget_secs":60}"#,
    );
    omk.write(
        "two.json",
        r#"[{"id":"b","write_set":["/etc/passwd"],"acceptance":["run: true"],"budget_secs":60}]"#,
    );
    let both = omk.run(&[
        "gate",
        "check",
        "--proposal",
        "one.json",
        "--proposal",
        "two.json",
        "--json",
    ]);
    both.code(1);
    let v = both.json();
    let ids: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"], "{v:#}");
    assert_eq!(v["summary"]["accepted"], 1);

    let out = omk.run_stdin(
        &["gate", "check", "--proposal", "-", "--json"],
        br#"{"id":"piped","write_set":["src/p.rs"],"acceptance":["run: true"],"budget_secs":60}"#,
    );
    out.code(0);
    let v = out.json();
    assert_eq!(v["results"][0]["id"], "piped");

    let twice = omk.run(&["gate", "check", "--proposal", "-", "--context", "-"]);
    twice.code(2);
    assert!(twice.stderr.contains("more than once"), "{}", twice.stderr);
}

#[test]
fn ci_formats_carry_every_proposal_and_each_rejections_code() {
    let omk = Omk::new();
    let junit = check_examples(&omk, &["--format", "junit"]);
    junit.code(1);
    // Well-formed XML with one test case per proposal, four failed.
    let parsed = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E\n\
             r = E.fromstring(sys.stdin.read())\n\
             cases = r.findall('.//testcase')\n\
             print(len(cases), sum(1 for c in cases if c.find('failure') is not None), \
                   ' '.join(sorted(f.get('type') for f in r.iter('failure'))))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(junit.stdout.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(parsed.status.success(), "{}", junit.stdout);
    assert_eq!(
        String::from_utf8_lossy(&parsed.stdout).trim(),
        "6 4 acceptance.missing budget.time-exceeded path.absolute path.conflict"
    );

    let github = check_examples(&omk, &["--format", "github"]);
    github.code(1);
    let errors: Vec<&str> = github
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error file="))
        .collect();
    assert_eq!(errors.len(), 4, "{}", github.stdout);
    assert!(
        errors
            .iter()
            .any(|l| l.contains("patch-hosts (path.absolute)")),
        "{}",
        github.stdout
    );

    let sarif = check_examples(&omk, &["--format", "sarif"]);
    sarif.code(1);
    let doc = sarif.json();
    assert_eq!(doc["version"], "2.1.0");
    let results = doc["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert!(results.iter().any(|r| r["ruleId"] == "path.conflict"));

    // Where every proposal is accepted, CI sees a passing suite.
    let ok = omk.write("ok.json", r#"{"id": "fine", "write_set": ["src/a.rs"], "budget_secs": 60, "acceptance": ["run: true"]}"#);
    let run = omk.run(&[
        "gate",
        "check",
        "--proposal",
        ok.to_str().unwrap(),
        "--format",
        "junit",
    ]);
    run.code(0);
    assert!(
        run.stdout.contains("tests=\"1\" failures=\"0\""),
        "{}",
        run.stdout
    );
}

/// `omk:gate@0.2.0` gates check their config in `validate-config` at load;
/// 0.1.0 gates (the std bundle's 0.1.0 build here) through a probe
/// decision. Either way a bad config stops `omk gate check` naming the line.
#[test]
fn every_gates_config_is_checked_at_load_whatever_its_version() {
    let omk = Omk::new();
    let old = omk.project().join("gates/old-budget.wasm");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::copy(
        repo().join("tests/fixtures/gates-0.1.0/std-bundle/budget.wasm"),
        &old,
    )
    .unwrap();
    let p = omk.write(
        "p.json",
        r#"{"id": "a", "write_set": ["src/a.rs"], "budget_secs": 60, "acceptance": ["run: true"]}"#,
    );
    for (gate, config, says) in [
        (
            "name = \"path\"",
            "{ deny_raed = [\"secrets\"] }",
            "deny_raed",
        ),
        (
            "name = \"path\"",
            "{ deny_read = [\"/etc\"] }",
            "`/etc` in `deny_read`",
        ),
        (
            "name = \"path\"",
            "{ roots = [\"../up\"] }",
            "`../up` in `roots`",
        ),
        ("name = \"acceptance\"", "{ strict = true }", "strict"),
        (
            "name = \"budget\"",
            "{ max_task_secs = \"an hour\" }",
            "an hour",
        ),
        (
            "path = \"gates/old-budget.wasm\"",
            "{ max_task_sec = 3600 }",
            "max_task_sec",
        ),
    ] {
        omk.write(
            ".omk/gates.toml",
            format!("# gates\n\n[[gate]]\n{gate}\nconfig = {config}\n"),
        );
        let run = omk.run(&["gate", "check", "--proposal", p.to_str().unwrap()]);
        run.code(2);
        // The line of the config (its key, where the reason names one).
        assert!(
            run.stderr.contains(".omk/gates.toml:5")
                && run.stderr.contains("is not valid")
                && run.stderr.contains(says)
                && run.stderr.contains("help:"),
            "{gate} {config}: {}",
            run.stderr
        );
    }
    // And a good one loads.
    omk.write(
        ".omk/gates.toml",
        "[[gate]]\nname = \"path\"\nconfig = { deny_read = [\"secrets\", \".env\"] }\n",
    );
    omk.run(&["gate", "check", "--proposal", p.to_str().unwrap()])
        .code(0);
}

#[test]
fn a_typo_in_a_gates_config_is_a_load_error_naming_the_line() {
    let omk = Omk::new();
    omk.write(
        ".omk/gates.toml",
        "[[gate]]\nname = \"path\"\n\n[[gate]]\nname = \"budget\"\n\n[gate.config]\nmax_task_secs = 60\nmax_task_sec = 3600\n",
    );
    let p = omk.write(
        "p.json",
        r#"{"id": "a", "write_set": ["src/a.rs"], "budget_secs": 60, "acceptance": ["run: true"]}"#,
    );
    let run = omk.run(&["gate", "check", "--proposal", p.to_str().unwrap()]);
    run.code(2);
    // The line that holds the bad key, not the `[[gate]]`'s.
    assert!(
        run.stderr.contains(".omk/gates.toml:9")
            && run.stderr.contains("gate `budget`")
            && run.stderr.contains("max_task_sec"),
        "{}",
        run.stderr
    );
    // A goal's wave stops the same way, before judging anything.
    let id = omk.new_goal("typo", &[]);
    let plan = omk.plan(
        "w1",
        json!([{"id": "a", "write_set": ["src/a.rs"], "budget_secs": 60}]),
    );
    let propose = omk.run(&["goal", "propose", &id, "--plan", &plan]);
    propose.code(2);
    assert!(
        propose.stderr.contains(".omk/gates.toml:9"),
        "{}",
        propose.stderr
    );
    assert!(
        crate::support::of_kind(&omk.events(&id), "gate_decision").is_empty(),
        "nothing was judged"
    );
    // Fixed, the same proposal is judged.
    omk.write(
        ".omk/gates.toml",
        "[[gate]]\nname = \"path\"\n\n[[gate]]\nname = \"budget\"\nconfig = { max_task_secs = 3600 }\n",
    );
    omk.run(&["gate", "check", "--proposal", p.to_str().unwrap()])
        .code(0);
}

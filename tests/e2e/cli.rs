//! The command line itself: completions, man pages, durations, filters
//! that name what they accept.

use crate::support::Omk;

#[test]
fn completions_and_man_pages_come_from_the_same_definitions() {
    let omk = Omk::new();
    let bash = omk.run(&["completions", "bash"]);
    bash.code(0);
    for word in ["goal", "gate", "bundle", "verify-log", "--budget-time"] {
        assert!(bash.stdout.contains(word), "bash completion lacks {word}");
    }
    omk.run(&["completions", "fish"]).code(0);
    omk.run(&["completions", "tcsh"]).code(2);

    let page = omk.run(&["man"]);
    page.code(0);
    assert!(
        page.stdout.starts_with(".ie") || page.stdout.contains(".TH omk"),
        "{:.200}",
        page.stdout
    );
    let dir = omk.root().join("man");
    omk.run(&["man", "--out", dir.to_str().unwrap()]).code(0);
    for page in ["omk.1", "omk-goal.1", "omk-goal-run.1", "omk-gate-check.1"] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.contains(".SH"), "{page}");
    }
}

#[test]
fn a_time_budget_may_combine_units_and_a_wrong_one_says_what_is_accepted() {
    let omk = Omk::new();
    let run = omk.run(&[
        "goal",
        "run",
        "combined",
        "--budget-time",
        "1h30m",
        "--json",
    ]);
    run.code(0);
    let id = run.json()["id"].as_str().unwrap().to_owned();
    let status = omk.run(&["goal", "status", &id, "--json"]).json();
    assert_eq!(status["limits"]["time_secs"], 5400);
    let bad = omk.run(&["goal", "run", "x", "--budget-time", "30m1h"]);
    bad.code(2);
    assert!(bad.stderr.contains("largest first"), "{}", bad.stderr);
}

#[test]
fn events_are_json_lines_and_an_unknown_kind_is_refused_with_the_known_ones() {
    let omk = Omk::new();
    let id = omk.new_goal("kinds", &[]);
    let all = omk.run(&["goal", "events", &id, "--json"]);
    all.code(0);
    let kinds: Vec<String> = all
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].to_string())
        .collect();
    assert!(kinds.contains(&"\"goal_created\"".to_owned()), "{kinds:?}");
    let typo = omk.run(&["goal", "events", &id, "--kind", "task_rejectd"]);
    typo.code(2);
    assert!(
        typo.stderr
            .contains("`task_rejectd` is not a kind of event")
            && typo.stderr.contains("task_rejected"),
        "{}",
        typo.stderr
    );
    omk.run(&["goal", "events", &id, "--kind", "task_rejected"])
        .code(0);
}

#[test]
fn the_readme_names_the_client_versions_the_tests_pin() {
    let repo = crate::support::repo();
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let start = readme
        .find("The versions the tests run, pinned in")
        .expect("the README's sentence on tested versions");
    let sentence = &readme[start..start + readme[start..].find("\n\n").unwrap_or(400)];
    let sentence = sentence.replace('\n', " ");
    let pins = std::fs::read_to_string(repo.join("tests/agent-clients.txt")).unwrap();
    for (name, shown) in [
        ("kimi", "Kimi Code"),
        ("claude", "Claude Code"),
        ("codex", "Codex"),
    ] {
        let line = pins
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap();
        let version = line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .rsplit('@')
            .next()
            .unwrap();
        assert!(
            sentence.contains(&format!("{shown} {version}")),
            "the README says otherwise than the pin {version} of {shown}: {sentence}"
        );
    }
    let installer = std::fs::read_to_string(repo.join(".ci/install-kimi-cli")).unwrap();
    let version = installer
        .lines()
        .find_map(|l| l.strip_prefix("version="))
        .unwrap();
    assert!(
        sentence.contains(&format!("Kimi CLI {version}")),
        "{sentence}"
    );
}

#[test]
fn messages_name_what_is_wrong_and_nothing_else() {
    let omk = Omk::new();
    // A gate test of a folder that is not there says so, not "cases.toml".
    let none = omk.run(&["gate", "test", "nosuchdir"]);
    none.code(2);
    assert!(
        none.stderr.contains("`nosuchdir`") && none.stderr.contains("nothing is there"),
        "{}",
        none.stderr
    );
    assert!(!none.stderr.contains("cases.toml"), "{}", none.stderr);

    // A goal outside a git repository: proposals can be judged, and the
    // user is told that no task can run.
    let run = omk.run(&["goal", "run", "judge only"]);
    run.code(0);
    assert!(
        run.stderr.contains("not a git repository") && run.stderr.contains("no task can run"),
        "{}",
        run.stderr
    );
    let id = omk.latest_goal();

    // A report into a folder that does not exist names the file asked
    // for, not omk's temporary one.
    let missing = omk.root().join("no/such/report.html");
    let report = omk.run(&["goal", "report", &id, "--html", missing.to_str().unwrap()]);
    report.code(2);
    assert!(
        report.stderr.contains("no/such/report.html"),
        "{}",
        report.stderr
    );
    assert!(!report.stderr.contains(".omk-tmp"), "{}", report.stderr);

    // The same commands, for scripts.
    let page = omk.root().join("report.html");
    let written = omk.run(&[
        "goal",
        "report",
        &id,
        "--html",
        page.to_str().unwrap(),
        "--json",
    ]);
    written.code(0);
    assert_eq!(written.json()["goal"], id.as_str());
    assert!(written.json()["bytes"].as_u64().unwrap() > 0);
    let dir = omk.root().join("gate-src");
    let created = omk.run(&[
        "gate",
        "new",
        "probe",
        "--lang",
        "rust",
        "--dir",
        dir.to_str().unwrap(),
        "--json",
    ]);
    created.code(0);
    let files = created.json()["files"].clone();
    assert!(files.as_array().is_some_and(|f| !f.is_empty()), "{files}");
    assert!(dir.join("omk-gate.toml").exists());
}

#[test]
fn under_json_an_error_is_json_on_stderr() {
    let omk = Omk::new();
    for args in [
        &["goal", "status", "nonsense", "--json"][..],
        &[
            "gate",
            "check",
            "--proposal",
            "nope.json",
            "--format",
            "json",
        ],
    ] {
        let run = omk.run(args);
        run.code(2);
        let err: serde_json::Value = serde_json::from_str(run.stderr.trim())
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", run.stderr));
        assert_eq!(err["kind"], "usage", "{err}");
        assert_eq!(err["exit"], 2, "{err}");
        assert!(
            err["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{err}"
        );
        assert!(err["help"].is_string(), "{args:?}: {err}");
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    // Without JSON, the same error is text.
    let text = omk.run(&["goal", "status", "nonsense"]);
    text.code(2);
    assert!(text.stderr.starts_with("error: "), "{}", text.stderr);
}

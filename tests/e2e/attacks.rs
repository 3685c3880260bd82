//! Path policy attacks: a corpus of hostile paths, none of which may
//! escape the project; each rejection names its rule.

use std::path::{Component, Path};

use omk::gates::{GateEngine, GateSet, GatesConfig};
use omk::sdk::{GoalContext, TaskProposal};
use serde_json::json;

/// At least 200 hostile paths, generated and hand-written.
pub fn corpus() -> Vec<String> {
    let mut c: Vec<String> = Vec::new();
    // `..` in every position of a few shapes.
    for shape in ["a/b/c/d", "src/x.rs", "docs/a/b"] {
        let parts: Vec<&str> = shape.split('/').collect();
        for i in 0..=parts.len() {
            let mut p = parts.clone();
            p.insert(i, "..");
            c.push(p.join("/"));
            let mut q = parts.clone();
            q.insert(i, "..");
            q.insert(i, "..");
            c.push(q.join("/"));
        }
    }
    for s in [
        "..",
        "../",
        "./..",
        "./../x",
        "src/../..",
        "src/..",
        "a/./../../b",
        "a//..//..//b",
        ".../../x",
        "src/./../../..",
        "docs/..",
        "a/b/../../../c",
        "./././../x",
        "../../../../../../../../etc/shadow",
    ] {
        c.push(s.into());
    }
    // Absolute, home, drives, UNC, backslashes.
    for s in [
        "/",
        "/etc/passwd",
        "//etc",
        "///x",
        "/./x",
        "/home/../etc",
        "~",
        "~/x",
        "~root/.ssh",
        "~/../x",
        "./~/.ssh/id_rsa",
        ".//~root/x",
        "./C:/Windows/win.ini",
        "C:",
        "c:",
        "C:/Windows",
        "C:\\Windows",
        "c:x",
        "Z:\\",
        "\\\\server\\share",
        "\\\\?\\C:\\x",
        "\\\\.\\pipe\\x",
        "\\x",
        "src\\..\\..\\x",
        "a\\b",
        "..\\x",
        ".\\.git\\config",
    ] {
        c.push(s.into());
    }
    for d in ['a', 'D', 'q', 'Y'] {
        c.push(format!("{d}:/x"));
        c.push(format!("{d}:\\x"));
    }
    // Every C0 control, DEL and the C1 controls, in several places.
    for b in (0u32..0x20).chain([0x7f]).chain(0x80..0xa0) {
        let ch = char::from_u32(b).expect("a char");
        c.push(format!("src/a{ch}b"));
        if b % 4 == 0 {
            c.push(format!("{ch}"));
            c.push(format!("x/{ch}/y"));
        }
    }
    // `.git` under every disguise.
    for g in [
        ".git",
        ".GIT",
        ".Git",
        ".gIt",
        ".git/",
        "./.git",
        "./.git/config",
        "a/.git/HEAD",
        ".git/hooks/pre-commit",
        ".gitmodules",
        ".gitattributes",
        ".github/workflows/ci.yml",
        "src/.git",
        ".git.",
        ".git..",
        ".git ",
        ".git. .",
        "sub/.GIT/x",
        "./a/../.git",
        ".//.git",
        "./././.git/x",
        ".GiThUb/x",
    ] {
        c.push(g.into());
    }
    // Overlong.
    c.push("a".repeat(5000));
    c.push(format!("src/{}", "b".repeat(300)));
    c.push(vec!["d"; 3000].join("/"));
    c
}

/// Unicode look-alikes and non-NFC forms: distinct names on Linux, so they
/// may be accepted, but must stay inside.
pub fn look_alikes() -> Vec<String> {
    let mut c: Vec<String> = Vec::new();
    for u in [
        "\u{ff0e}\u{ff0e}/etc",      // fullwidth dots
        "\u{2024}\u{2024}/etc",      // one dot leaders
        "\u{2025}/etc",              // two dot leader
        "\u{ff0f}etc\u{ff0f}passwd", // fullwidth solidus
        "\u{2215}etc",               // division slash
        ".gi\u{0307}t",              // combining dot
        ".g\u{0131}t",               // dotless i
        "\u{fe52}git",               // small full stop
        ".git\u{200b}",              // zero width space
        "\u{202e}tig.",              // right-to-left override (a control? no: a format char)
        "e\u{0301}/x",               // non-NFC é
        "\u{00e9}/x",                // NFC é
    ] {
        c.push(u.into());
    }
    c
}

/// Whether normalised project-relative `path`, joined to a root, stays in
/// it (lexically: every `..` is refused by the rules anyway).
fn stays_inside(path: &str) -> bool {
    let mut depth: i64 = 0;
    for comp in Path::new(path).components() {
        match comp {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => depth -= 1,
            Component::RootDir | Component::Prefix(_) => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    !path.contains('\\') && !path.contains('\0')
}

#[test]
fn no_attack_path_escapes_and_every_rejection_names_its_rule() {
    let engine = GateEngine::new(None).unwrap();
    let set = GateSet::load(&GatesConfig::std(Default::default()), &engine).unwrap();
    let ctx = GoalContext {
        policy_roots: vec!["src".into(), "docs".into(), "a".into(), "d".into()],
        ..Default::default()
    };
    let rules = [
        "path.empty",
        "path.absolute",
        "path.parent-dir",
        "path.home",
        "path.control-char",
        "path.backslash",
        "path.git",
        "path.too-long",
        "path.outside-roots",
        "path.outside-write-set",
    ];
    // The rule that refused `path` as `what`, or None when it was accepted
    // (then it must stay inside the project).
    let judge = |ctx: &GoalContext, path: &str, what: &str| -> Option<String> {
        let verdict = if what == "live write" {
            let task: TaskProposal =
                serde_json::from_value(json!({"id": "t", "write_set": ["src"], "budget_secs": 1}))
                    .unwrap();
            let action = omk::sdk::AgentAction {
                task_id: "t".into(),
                kind: omk::sdk::ActionKind::WriteFile,
                target: path.to_owned(),
                detail: String::new(),
                command: None,
                tool: None,
            };
            set.judge_action(&GoalContext::default(), &task, &action)
        } else {
            let p: TaskProposal = serde_json::from_value(json!({
                "id": "attack", what: [path], "acceptance": ["x"], "budget_secs": 1
            }))
            .unwrap();
            set.judge_proposal(ctx, &p)
        };
        match verdict.blocking() {
            Some(d) => {
                let r = d.decision.rejection().unwrap();
                assert_eq!(d.gate, "path", "{path:?} as {what}");
                assert!(
                    rules.contains(&r.code.as_str()),
                    "{path:?} as {what}: {}",
                    r.code
                );
                assert!(!r.reason.is_empty(), "{path:?} as {what}");
                Some(r.code.clone())
            }
            None => {
                let norm = omk::sdk::paths::check(path).unwrap();
                assert!(
                    stays_inside(&norm),
                    "{path:?} as {what} escapes as {norm:?}"
                );
                None
            }
        }
    };
    let mut corpus = corpus();
    corpus.extend(look_alikes());
    assert!(corpus.len() >= 200, "{} paths", corpus.len());
    let mut refused = 0;
    for path in &corpus {
        for what in ["write_set", "read_set", "live write"] {
            let rule = judge(&ctx, path, what);
            assert!(rule.is_some(), "{path:?} as {what} was accepted");
            refused += 1;
        }
    }
    assert_eq!(refused, corpus.len() * 3);
    // With the whole project as the root, a look-alike is a legal name: it
    // may be accepted, and then it stays inside.
    let whole = GoalContext::default();
    let mut inside = 0;
    for path in look_alikes() {
        if judge(&whole, &path, "write_set").is_none() {
            inside += 1;
        }
    }
    // The figures the README's Reliability table quotes.
    assert_eq!((corpus.len(), refused, inside), (207, 621, 11));
    println!(
        "path attacks: {} paths as write sets, read sets and live writes: {refused} of {refused} refused by a named rule; \
         with no roots, {inside} of {} Unicode look-alikes accepted, each proven inside the project",
        corpus.len(),
        look_alikes().len()
    );
    crate::support::figure(
        "attacks",
        format!(
            "| path attacks (`tests/e2e/attacks.rs`) | {} paths: `..` in every position, absolute, `~`, NUL and controls, backslashes, drive and UNC forms, `.git`/`.GIT`/`./.git/`, overlong, look-alikes, non-NFC; plus symlinks inside a worktree pointing outside, against live writes and outcomes | {refused} of {refused} (each path as a write set, a read set and a live write) refused by a named rule; with the whole project as the root, {inside} of the {} look-alikes are legal names, accepted and inside; no write escaped |",
            corpus.len(),
            look_alikes().len()
        ),
    );
}

/// A project whose committed `out` is an absolute symlink to a directory
/// outside it, so every worktree has it; returns that directory.
fn project_with_a_link_out(omk: &crate::support::Omk) -> std::path::PathBuf {
    let outside = omk.project().parent().unwrap().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    omk.git_project(&[("README.md", "x\n")]);
    std::os::unix::fs::symlink(&outside, omk.project().join("out")).unwrap();
    omk.git(&["add", "out"]);
    omk.git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qm",
        "link",
    ]);
    assert!(omk.git(&["ls-files", "out"]).contains("out"));
    outside
}

/// The write to `out/pwned.txt` was refused before it happened, by omk.
fn refused_through_the_link(events: &[serde_json::Value]) {
    let refusal = crate::support::of_kind(events, "agent_action")
        .into_iter()
        .find(|e| e["payload"]["allowed"] == false)
        .cloned()
        .expect("a refused action");
    assert_eq!(
        refusal["payload"]["code"], "omk.outside-worktree",
        "{refusal}"
    );
    assert!(
        refusal["payload"]["reason"]
            .as_str()
            .unwrap()
            .contains("through a symlink"),
        "{refusal}"
    );
}

#[test]
fn a_symlink_in_the_worktree_cannot_carry_a_write_outside() {
    let omk = crate::support::Omk::new();
    let outside = project_with_a_link_out(&omk);
    let script = json!({
        "plan": [{"id": "t", "write_set": ["out"], "acceptance": ["run: true"], "budget_secs": 30}],
        "tasks": {"t": [{"steps": [{"write": "out/pwned.txt", "content": "escaped"}]}]}
    });
    omk.run_script(&script);
    assert!(
        !outside.join("pwned.txt").exists(),
        "a write went through the symlink"
    );
    refused_through_the_link(&omk.events(&omk.latest_goal()));
}

#[test]
fn an_agent_that_writes_itself_cannot_write_through_a_symlink() {
    // The legacy Kimi CLI writes approved files itself, following links.
    let omk = crate::support::Omk::new();
    let outside = project_with_a_link_out(&omk);
    let task =
        json!({"id": "t", "write_set": ["out"], "acceptance": ["run: true"], "budget_secs": 30});
    let script = json!({"plan": format!("OMK_TASK_PROPOSAL: {task}\n"), "turns": [
        {"tool_call": {"name": "WriteFile", "arguments": {"path": "out/pwned.txt", "content": "escaped"}}},
        {"text": "Done."}]});
    let wire = crate::agents::Wire::default();
    let (fake, env) = crate::agents::wire_env(&omk, &script, wire);
    let agent = crate::agents::kimi_cli(wire);
    let (id, _) =
        crate::agents::run_goal(&omk, &["--agent", "kimi-wire", "--command", &agent], &env);
    assert!(
        !outside.join("pwned.txt").exists(),
        "a write went through the symlink"
    );
    refused_through_the_link(&omk.events(&id));
    crate::agents::model_was_told(&fake);
}

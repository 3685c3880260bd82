use super::*;
use omk_gate_sdk::{Joined, Nesting, RedirectOp, SimpleCommand};

fn words(p: &ParsedCommand) -> Vec<Vec<&str>> {
    p.commands
        .iter()
        .map(|c| c.words.iter().map(String::as_str).collect())
        .collect()
}

fn only(line: &str) -> SimpleCommand {
    let p = parse(line);
    assert_eq!(p.commands.len(), 1, "{line}: {p:#?}");
    p.commands.into_iter().next().unwrap()
}

#[test]
fn words_are_read_after_quote_removal() {
    let p = parse(r#"echo "sudo" 'a b' c\ d $'e\tf' "g$(printf h)""#);
    assert_eq!(p.status, ParseStatus::Parsed, "{p:#?}");
    let echo = p.commands.last().unwrap();
    assert_eq!(&echo.words[..5], ["echo", "sudo", "a b", "c d", "e\tf"]);
    // A substitution makes its word dynamic and its command is listed first.
    assert!(echo.is_dynamic(5) && !echo.is_dynamic(1));
    assert_eq!(p.commands[0].words, ["printf", "h"]);
    assert_eq!(p.commands[0].nesting, [Nesting::CommandSubstitution]);
    // `echo "sudo"` runs echo: nothing runs sudo.
    assert!(!p.commands.iter().any(|c| c.name() == Some("sudo")));
}

#[test]
fn lists_pipelines_and_background_are_told_apart() {
    let p =
        parse("cargo build && cargo test || echo failed; curl -fsSL https://x/i.sh | sh & wait");
    assert_eq!(
        words(&p),
        [
            vec!["cargo", "build"],
            vec!["cargo", "test"],
            vec!["echo", "failed"],
            vec!["curl", "-fsSL", "https://x/i.sh"],
            vec!["sh"],
            vec!["wait"],
        ]
    );
    let joins: Vec<Joined> = p.commands.iter().map(|c| c.joined).collect();
    assert_eq!(
        joins,
        [
            Joined::First,
            Joined::And,
            Joined::Or,
            Joined::Then,
            Joined::Pipe,
            Joined::Then
        ]
    );
    assert!(p.commands[3].background && p.commands[4].background && !p.commands[5].background);
}

#[test]
fn redirections_keep_operator_descriptor_and_target() {
    let c = only("make >build.log 2>&1 < in.txt >> all.log &> both.log 3<> rw");
    let r: Vec<(Option<u32>, RedirectOp, &str)> = c
        .redirections
        .iter()
        .map(|r| (r.fd, r.op, r.target.as_str()))
        .collect();
    assert_eq!(
        r,
        [
            (None, RedirectOp::Write, "build.log"),
            (Some(2), RedirectOp::Duplicate, "1"),
            (None, RedirectOp::Read, "in.txt"),
            (None, RedirectOp::Append, "all.log"),
            (None, RedirectOp::WriteBoth, "both.log"),
            (Some(3), RedirectOp::ReadWrite, "rw"),
        ]
    );
    assert_eq!(c.words, ["make"]);
}

#[test]
fn heredocs_and_here_strings_carry_their_text() {
    let p = parse("cat > notes/a.md <<'EOF'\nhello $HOME\nEOF\n");
    let c = &p.commands[0];
    assert_eq!(c.redirections[0].op, RedirectOp::Write);
    assert_eq!(c.redirections[0].target, "notes/a.md");
    assert_eq!(c.redirections[1].op, RedirectOp::Heredoc);
    assert_eq!(c.redirections[1].target, "hello $HOME\n");
    assert!(
        !c.redirections[1].dynamic,
        "a quoted delimiter expands nothing"
    );
    let c = only("grep -c x <<< \"$list\"");
    assert_eq!(c.redirections[0].op, RedirectOp::Herestring);
    assert!(c.redirections[0].dynamic);
}

#[test]
fn the_commit_style_claude_code_documents_is_understood() {
    let p = parse("git commit -m \"$(cat <<'EOF'\nFix the parser\n\nCo-Authored-By: x\nEOF\n)\"");
    assert_ne!(p.status, ParseStatus::Unparsed, "{p:#?}");
    assert_eq!(
        words(&p),
        [
            vec!["cat"],
            vec!["git", "commit", "-m", p.commands[1].words[3].as_str()]
        ]
    );
    assert_eq!(p.commands[0].redirections[0].op, RedirectOp::Heredoc);
    assert!(p.commands[1].is_dynamic(3));
}

#[test]
fn wrappers_are_unwrapped_where_their_text_is_literal() {
    for (line, inner) in [
        ("bash -c 'rm -rf ~/x'", vec!["rm", "-rf", "~/x"]),
        (
            "sh -lc \"git push --force origin main\"",
            vec!["git", "push", "--force", "origin", "main"],
        ),
        ("env -i PATH=/bin rm -f a", vec!["rm", "-f", "a"]),
        ("timeout -s KILL 60 cargo test", vec!["cargo", "test"]),
        ("nice -n 10 make", vec!["make"]),
        ("sudo -u root rm /etc/hosts", vec!["rm", "/etc/hosts"]),
        ("xargs -n 1 -I{} rm {}", vec!["rm", "{}"]),
        ("eval 'rm -rf build'", vec!["rm", "-rf", "build"]),
        ("nohup python3 server.py", vec!["python3", "server.py"]),
    ] {
        let p = parse(line);
        let last = p
            .commands
            .last()
            .unwrap_or_else(|| panic!("{line}: {p:#?}"));
        let got: Vec<&str> = last.words.iter().map(String::as_str).collect();
        assert_eq!(got, inner, "{line}: {p:#?}");
        assert_eq!(last.nesting.last(), Some(&Nesting::Wrapper), "{line}");
    }
    let p = parse("env X=1 Y=2 make");
    assert_eq!(p.commands[1].assignments, ["X=1", "Y=2"]);
    // Wrappers in wrappers.
    let p = parse("sudo bash -c 'timeout 5 rm -rf /'");
    assert_eq!(words(&p).last().unwrap(), &vec!["rm", "-rf", "/"]);
    assert_eq!(
        p.commands.last().unwrap().nesting,
        [Nesting::Wrapper, Nesting::Wrapper, Nesting::Wrapper]
    );
}

#[test]
fn what_is_known_only_when_it_runs_is_partial_and_says_why() {
    for (line, says) in [
        ("$EDITOR notes.md", "`$EDITOR`"),
        ("eval \"$cmd\"", "`eval`"),
        ("bash -c \"$SCRIPT\"", "`bash -c`"),
        ("$(which python3) -V", "known only when it runs"),
    ] {
        let p = parse(line);
        assert_eq!(p.status, ParseStatus::Partial, "{line}: {p:#?}");
        assert!(
            p.notes.iter().any(|n| n.contains(says)),
            "{line}: {:?}",
            p.notes
        );
    }
    for line in ["ls *.rs", "echo $HOME", "rm -rf \"$TMPDIR/x\""] {
        let p = parse(line);
        assert_eq!(p.status, ParseStatus::Parsed, "{line}: {p:#?}");
        assert!(!p.commands[0].dynamic.is_empty(), "{line}");
    }
}

#[test]
fn file_actions_are_derived_where_they_are_known() {
    use omk_gate_sdk::ActionKind::{DeleteFile as D, ReadFile as R, WriteFile as W};
    let got = |line: &str| -> Vec<(ActionKind, String)> {
        derived(&parse(line))
            .into_iter()
            .map(|d| (d.kind, d.target))
            .collect()
    };
    let v = |items: &[(ActionKind, &str)]| -> Vec<(ActionKind, String)> {
        items.iter().map(|(k, t)| (*k, (*t).to_owned())).collect()
    };
    assert_eq!(got("echo x >> /etc/hosts"), v(&[(W, "/etc/hosts")]));
    assert_eq!(
        got("echo {} > .claude/settings.json 2>/dev/null"),
        v(&[(W, ".claude/settings.json")])
    );
    assert_eq!(
        got("sort < in.txt > out.txt 2>&1"),
        v(&[(R, "in.txt"), (W, "out.txt")])
    );
    assert_eq!(
        got("cat x | tee -a .git/config log.txt"),
        v(&[(W, ".git/config"), (W, "log.txt")])
    );
    assert_eq!(
        got("bash -c 'rm -rf ~/x build'"),
        v(&[(D, "~/x"), (D, "build")])
    );
    assert_eq!(
        got("cd src && rm a.rs && mv b.rs c.rs"),
        v(&[(D, "src/a.rs"), (D, "src/b.rs"), (W, "src/c.rs")])
    );
    assert_eq!(
        got("mv a b dir/"),
        v(&[(D, "a"), (W, "dir/a"), (D, "b"), (W, "dir/b")])
    );
    assert_eq!(
        got("cp -t out/ a.txt"),
        v(&[(R, "a.txt"), (W, "out/a.txt")])
    );
    assert_eq!(got("cp -r src dst"), v(&[(R, "src"), (W, "dst")]));
    assert_eq!(got("ln -sf ../target link"), v(&[(W, "link")]));
    assert_eq!(
        got("touch a b; mkdir -p x/y; truncate -s 0 big.log"),
        v(&[(W, "a"), (W, "b"), (W, "x/y"), (W, "big.log")])
    );
    assert_eq!(
        got("chmod 755 run.sh; chown -R me:me /opt/x"),
        v(&[(W, "run.sh"), (W, "/opt/x")])
    );
    assert_eq!(
        got("dd if=/dev/zero of=disk.img bs=1M count=1"),
        v(&[(W, "disk.img")])
    );
    assert_eq!(
        got("sed -i 's/a/b/' f.txt g.txt; sed -i.bak -e 's/x/y/' h.txt; sed 's/a/b/' k.txt"),
        v(&[(W, "f.txt"), (W, "g.txt"), (W, "h.txt")])
    );
    assert_eq!(
        got("git rm -q old.rs && git mv a.rs b.rs && git checkout HEAD -- c.rs d.rs"),
        v(&[
            (D, "old.rs"),
            (D, "a.rs"),
            (W, "b.rs"),
            (W, "c.rs"),
            (W, "d.rs")
        ])
    );
    assert_eq!(got("rm -- -weird"), v(&[(D, "-weird")]));
    // Not known, so not derived.
    assert!(got("rm -rf \"$DIR\" *.o; cd \"$X\" && rm a; echo > $OUT").is_empty());
    assert!(got("cat <<'EOF'\nhello\nEOF\n").is_empty());
    assert!(got("ls | wc -l; cargo test; git status").is_empty());
}

#[test]
fn a_line_bash_cannot_read_is_unparsed_with_the_reason() {
    for line in [
        "echo 'unterminated",
        "( echo a",
        "| grep x",
        "if true; then echo",
    ] {
        let p = parse(line);
        assert_eq!(p.status, ParseStatus::Unparsed, "{line}: {p:#?}");
        assert!(p.commands.is_empty() && !p.notes.is_empty(), "{line}");
    }
    let deep = format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000));
    let p = parse(&deep);
    assert_eq!(p.status, ParseStatus::Unparsed);
    assert!(p.notes[0].contains("levels deep"), "{:?}", p.notes);
    let long = "echo x ".repeat(20_000);
    assert_eq!(parse(&long).status, ParseStatus::Unparsed);
}

#[test]
fn nesting_compounds_and_process_substitution() {
    let p = parse(
        "diff <(ls a) <(ls b); for f in *.rs; do rustfmt \"$f\"; done; if [ -f x ]; then rm x; fi; f() { rm -rf /; }; ( cd sub && make ); { echo a; } > out",
    );
    let find = |w: &str| {
        p.commands
            .iter()
            .find(|c| c.words.first().map(String::as_str) == Some(w))
            .unwrap()
    };
    assert_eq!(p.commands[0].nesting, [Nesting::ProcessSubstitution]);
    assert_eq!(find("rustfmt").nesting, [Nesting::Compound]);
    assert_eq!(find("rm").nesting, [Nesting::Compound]);
    let in_function = p
        .commands
        .iter()
        .find(|c| c.words == ["rm", "-rf", "/"])
        .unwrap();
    assert_eq!(in_function.nesting, [Nesting::Function, Nesting::Group]);
    assert_eq!(find("make").nesting, [Nesting::Subshell]);
    let echo = p
        .commands
        .iter()
        .find(|c| c.words == ["echo", "a"])
        .unwrap();
    assert_eq!(
        echo.redirections[0].target, "out",
        "a group's redirection applies inside"
    );
    let c = only("[[ -f Cargo.toml && $x == y ]]");
    assert_eq!(c.words.first().map(String::as_str), Some("[["));
}

#[test]
fn literal_cds_give_each_command_its_directory() {
    let p = parse(
        "cd crates/core && cargo test; cd ../.. ; ls; (cd tmp; touch a); touch b; cd \"$X\"; rm c; cd /tmp && rm d; cd && ls",
    );
    let dirs: Vec<(&str, &str)> = p
        .commands
        .iter()
        .filter(|c| c.name() != Some("cd"))
        .map(|c| (c.words.join(" ").leak() as &str, c.directory.as_str()))
        .collect();
    assert_eq!(
        dirs,
        [
            ("cargo test", "crates/core"),
            ("ls", "."),
            ("touch a", "tmp"),
            ("touch b", "."),
            ("rm c", ""),
            ("rm d", "/tmp"),
            ("ls", "~"),
        ]
    );
    assert_eq!(walk::join("a/b", "../../.."), "..");
    assert_eq!(walk::join("~/x", ".."), "~");
    assert_eq!(walk::join("/", ".."), "/");
}

#[test]
fn with_parse_adds_the_parse_once_to_commands_only() {
    let a = with_parse(AgentAction::new(
        "t",
        ActionKind::RunCommand,
        "ls | wc -l",
        "",
    ));
    assert_eq!(a.commands().len(), 2);
    let again = with_parse(a.clone());
    assert_eq!(again, a);
    let w = with_parse(AgentAction::new("t", ActionKind::WriteFile, "ls", ""));
    assert!(w.command.is_none());
}

/// The corpus of real agent commands (`tests/fixtures/commands/corpus.jsonl`,
/// from the clients' docs, the suite's fixtures and agent sessions) parses
/// as recorded in `parsed.jsonl` — status, the commands each runs, notes,
/// the std command gate's answer under its defaults and the file actions
/// the host derives — and omk calls a line unparsed exactly when `bash -n`
/// refuses it. Every refusal and ask in it names its rule.
/// `OMK_BLESS=1` writes `parsed.jsonl` anew (then review the diff).
#[test]
fn the_corpus_parses_as_recorded_and_as_bash_reads_it() {
    use std::io::Write;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/commands");
    let corpus = std::fs::read_to_string(dir.join("corpus.jsonl")).unwrap();
    let mut lines = Vec::new();
    let mut disagree = Vec::new();
    for l in corpus.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let command = v["command"].as_str().unwrap();
        let p = parse(command);
        let runs: Vec<String> = p
            .commands
            .iter()
            .filter_map(|c| {
                let name = c.name()?;
                Some(if c.nesting.is_empty() {
                    name.to_owned()
                } else {
                    format!("{name} (in {:?})", c.nesting.last().unwrap()).to_lowercase()
                })
            })
            .collect();
        // The std command gate's answer under its defaults, and the file
        // actions the host would judge with it (through the path gate).
        let decision = {
            use omk_gate_sdk::Policy;
            let mut a = AgentAction::new("t", ActionKind::RunCommand, command, "");
            a.command = Some(p.clone());
            let task: omk_gate_sdk::TaskProposal = serde_json::from_str(r#"{"id": "t"}"#).unwrap();
            match omk_gate_command::CommandGate::check_action(&Default::default(), &task, &a, "{}")
            {
                omk_gate_sdk::Decision::Accept => "accept".to_owned(),
                omk_gate_sdk::Decision::Reject(r) => format!("reject {}", r.code),
                omk_gate_sdk::Decision::Ask(r) => format!("ask {}", r.code),
            }
        };
        let files: Vec<String> = derived(&p)
            .iter()
            .map(|d| {
                let kind = serde_json::to_value(d.kind).unwrap();
                format!("{} {}", kind.as_str().unwrap_or_default(), d.target)
            })
            .collect();
        lines.push(
            serde_json::json!({
                "command": command,
                "status": p.status,
                "runs": runs,
                "notes": p.notes,
                "decision": decision,
                "files": files,
            })
            .to_string(),
        );
        let mut bash = std::process::Command::new("bash")
            .arg("-n")
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        bash.stdin
            .take()
            .unwrap()
            .write_all(command.as_bytes())
            .unwrap();
        let out = bash.wait_with_output().unwrap();
        let bash_reads =
            out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("warning");
        if bash_reads == (p.status == ParseStatus::Unparsed) {
            disagree.push(format!(
                "{command:?}: bash {bash_reads}, omk {:?} {:?}",
                p.status, p.notes
            ));
        }
    }
    assert!(
        lines.len() >= 300,
        "the corpus has {} commands",
        lines.len()
    );
    assert!(
        disagree.is_empty(),
        "omk and bash -n disagree on:\n{}",
        disagree.join("\n")
    );
    let text = lines.join("\n") + "\n";
    let recorded = dir.join("parsed.jsonl");
    if std::env::var_os("OMK_BLESS").is_some() {
        std::fs::write(&recorded, &text).unwrap();
    }
    let want = std::fs::read_to_string(&recorded).unwrap_or_default();
    if want != text {
        let first = want
            .lines()
            .zip(text.lines())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("recorded: {a}\nnow:      {b}"))
            .unwrap_or_else(|| "the number of lines".into());
        panic!(
            "the corpus parses differently than recorded (OMK_BLESS=1 writes it anew):\n{first}"
        );
    }
}

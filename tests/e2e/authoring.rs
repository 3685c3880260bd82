//! Writing gates: `omk gate new`, `omk gate build`, `omk gate test`, and
//! the example gates in every language agreeing on their shared cases.
//!
//! Toolchains: Rust is always there. JavaScript needs componentize-js
//! (`OMK_COMPONENTIZE_JS` or on PATH), Python componentize-py, C clang-19
//! and wasi-libc; where one is missing these tests say so and skip that
//! language, unless `OMK_REQUIRE_TOOLCHAINS` is set, as CI sets it after
//! installing them.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{Omk, copy_dir, proposal, repo};

/// The environment a toolchain needs although the test isolates `HOME`:
/// the real cargo and rustup homes, and one shared target dir, so that
/// wit-bindgen is compiled once for every gate built by the suite.
fn toolchain_env() -> Vec<(&'static str, OsString)> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME").unwrap_or_else(|| home.join(".cargo").into());
    let rustup_home =
        std::env::var_os("RUSTUP_HOME").unwrap_or_else(|| home.join(".rustup").into());
    vec![
        ("CARGO_HOME", cargo_home),
        ("RUSTUP_HOME", rustup_home),
        // Cargo's folder for tests' files (`target/tmp`), shared by the
        // gate builds so each compiles its dependencies once.
        (
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("gate-projects")
                .into_os_string(),
        ),
    ]
}

fn run_built(omk: &Omk, args: &[&str]) -> crate::support::Run {
    let env = toolchain_env();
    let env: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    omk.run_env(args, &env)
}

/// Whether `lang`'s toolchain is here; panics when it must be.
fn have(lang: &str) -> bool {
    let found = match lang {
        "rust" => true,
        "js" => std::env::var_os("OMK_COMPONENTIZE_JS").is_some() || on_path("componentize-js"),
        "python" => on_path("componentize-py"),
        "c" => on_path("clang-19") && Path::new("/usr/lib/wasm32-wasi/libc.a").is_file(),
        _ => false,
    };
    if !found {
        crate::support::skip(&format!(
            "the {lang} toolchain is not installed (see \"Write a gate\")"
        ));
    }
    found
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// Copies the component `wasm` into the project's `gates/`, lists it in
/// `.omk/gates.toml` after the gates in `before`, and returns the evidence
/// of one wave of `proposals` in a new goal.
fn wave_with_gate(omk: &Omk, wasm: &Path, before: &str, proposals: Value) -> Value {
    let name = wasm.file_name().unwrap().to_str().unwrap();
    std::fs::create_dir_all(omk.project().join("gates")).unwrap();
    std::fs::copy(wasm, omk.project().join("gates").join(name)).unwrap();
    omk.write(
        ".omk/gates.toml",
        format!("{before}[[gate]]\npath = \"gates/{name}\"\n"),
    );
    let id = omk.new_goal("a wave with a new gate", &[]);
    let plan = omk.plan("w1", proposals);
    omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"])
        .json()
}

#[test]
fn a_new_rust_gate_builds_passes_its_cases_and_judges_a_wave() {
    let omk = Omk::new();
    let dir = omk.project().join("gates-src/no-secrets");
    let new = new_args("no-secrets", "rust", &dir);
    omk.run(&new).code(0);
    // A second `new` into the same place is refused.
    let again = omk.run(&new);
    again.code(2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);

    let built = run_built(&omk, &["gate", "build", path_str(&dir), "--json"]);
    built.code(0);
    // The Rust gate calls nothing of the host's context: it imports nothing.
    assert_eq!(built.json()["component"]["imports"], json!([]));
    let tested = omk.run(&["gate", "test", path_str(&dir), "--json"]);
    tested.code(0);
    // Writes and reads under secrets/ refused, and a setting it does not
    // know refused by `validate-config`.
    // Its commands judged by their parse and tool calls by their arguments.
    assert_eq!(tested.json()["passed"], 8);
    assert_eq!(tested.json()["failed"], 0);

    // Break the gate: its cases catch it, naming the case and the verdict.
    let lib = dir.join("src/lib.rs");
    let src = std::fs::read_to_string(&lib).unwrap();
    let broken = src.replace(
        r#"path == SECRETS || path.starts_with("secrets/")"#,
        "false",
    );
    assert_ne!(broken, src);
    std::fs::write(&lib, broken).unwrap();
    run_built(&omk, &["gate", "build", path_str(&dir)]).code(0);
    let failing = omk.run(&["gate", "test", path_str(&dir)]);
    failing.code(1);
    assert!(
        failing
            .stdout
            .contains("FAIL  a write under secrets/ is rejected"),
        "{}",
        failing.stdout
    );
    assert!(
        failing.stdout.contains("got      accept"),
        "{}",
        failing.stdout
    );
    std::fs::write(&lib, src).unwrap();
    run_built(&omk, &["gate", "build", path_str(&dir)]).code(0);

    // In the project's gates, it judges a goal wave.
    let ev = wave_with_gate(
        &omk,
        &dir.join("no-secrets.wasm"),
        "[[gate]]\nname = \"path\"\n\n",
        json!([
            proposal("ok", 60, &["src/a.rs"]),
            proposal("leak", 60, &["secrets/prod.env"])
        ]),
    );
    assert_eq!(ev["accepted"], json!(["ok"]));
    assert_eq!(ev["rejected"][0]["gate"], "no-secrets");
    assert_eq!(ev["rejected"][0]["code"], "no-secrets.secrets");
}

#[test]
fn gate_build_adds_the_wasm_target_a_rustup_toolchain_lacks() {
    // A rustup that says the toolchain has no wasm target, logs what it
    // is asked, and hands `target add` to the real rustup (a no-op there).
    let omk = Omk::new();
    let real = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("rustup"))
        .find(|p| p.is_file())
        .expect("rustup on PATH");
    let bin = omk.root().join("fake-rustup");
    std::fs::create_dir_all(&bin).unwrap();
    let asked = omk.root().join("rustup-asked.txt");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{asked}'\ncase \"$*\" in\n  'target list --installed') echo x86_64-unknown-linux-gnu ;;\n  'target add '*) exec '{real}' \"$@\" ;;\n  *) exit 1 ;;\nesac\n",
        asked = asked.display(),
        real = real.display()
    );
    let fake = bin.join("rustup");
    std::fs::write(&fake, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

    let dir = omk.project().join("gates-src/target-probe");
    omk.run(&new_args("target-probe", "rust", &dir)).code(0);
    let mut env = toolchain_env();
    let path = std::env::join_paths(
        std::iter::once(bin.clone())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    env.push(("PATH", path));
    let env: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    let built = omk.run_env(&["gate", "build", path_str(&dir)], &env);
    built.code(0);
    assert!(
        built
            .stderr
            .contains("running: rustup target add wasm32-unknown-unknown"),
        "{}",
        built.stderr
    );
    let asked = std::fs::read_to_string(&asked).unwrap();
    assert!(
        asked
            .lines()
            .any(|l| l == "target add wasm32-unknown-unknown"),
        "{asked}"
    );
    assert!(dir.join("target-probe.wasm").is_file());
}

#[test]
fn gate_test_errors_name_the_file_and_the_fix() {
    let omk = Omk::new();
    // No project here.
    let r = omk.run(&["gate", "test"]);
    r.code(2);
    assert!(
        r.stderr.contains("omk-gate.toml") && r.stderr.contains("help:"),
        "{}",
        r.stderr
    );
    // A project that was never built.
    let dir = omk.project().join("g");
    omk.run(&["gate", "new", "g", "--lang", "js", "--dir", path_str(&dir)])
        .code(0);
    let r = omk.run(&["gate", "test", path_str(&dir)]);
    r.code(2);
    assert!(
        r.stderr.contains("g.wasm") && r.stderr.contains("omk gate build"),
        "{}",
        r.stderr
    );
    // A broken cases file, against a real component.
    let cases = omk.write("bad.toml", "[[case]]\nname = \"x\"\nstage = \"sideways\"\n");
    let std_gate = repo().join("plugins/std-bundle/path.wasm");
    let r = omk.run(&[
        "gate",
        "test",
        path_str(&std_gate),
        "--cases",
        path_str(&cases),
    ]);
    r.code(2);
    assert!(r.stderr.contains("bad.toml: line 3"), "{}", r.stderr);
    // A bad name.
    let r = omk.run(&["gate", "new", "Bad_Name", "--lang", "rust"]);
    r.code(2);
    assert!(r.stderr.contains("not a gate name"), "{}", r.stderr);
}

#[test]
fn gate_test_runs_cases_against_any_component() {
    let omk = Omk::new();
    let cases = omk.write(
        "cases.toml",
        r#"
[[case]]
name = "outside the roots"
stage = "proposal"
config = { roots = ["src"] }
proposal = { id = "a", write_set = ["docs/x.md"] }
expect = "reject"
code = "path.outside-roots"

[[case]]
name = "a write outside the write set"
stage = "action"
proposal = { id = "a", write_set = ["src"] }
action = { task_id = "a", kind = "write_file", target = "README.md" }
expect = "reject"
code = "path.outside-write-set"

[[case]]
name = "wrong on purpose"
stage = "proposal"
proposal = { id = "a", write_set = ["src/x.rs"] }
expect = "reject"
code = "path.nothing"
"#,
    );
    let std_gate = repo().join("plugins/std-bundle/path.wasm");
    let r = omk.run(&[
        "gate",
        "test",
        path_str(&std_gate),
        "--cases",
        path_str(&cases),
        "--json",
    ]);
    r.code(1);
    let v = r.json();
    assert_eq!(
        (v["passed"].clone(), v["failed"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(v["results"][2]["got"]["verdict"], "accept");
    // The path gate judges all three stages; only proposals saw both an
    // accept and a reject, and two codes were seen.
    assert_eq!(
        (
            v["coverage"]["covered"].clone(),
            v["coverage"]["judged"].clone()
        ),
        (json!(1), json!(3))
    );
    assert_eq!(
        v["coverage"]["codes"],
        json!(["path.outside-roots", "path.outside-write-set"])
    );

    // `--run` picks cases by name; the rest are not run.
    let only = |extra: &[&str]| {
        let mut args = vec![
            "gate",
            "test",
            path_str(&std_gate),
            "--cases",
            path_str(&cases),
        ];
        args.extend_from_slice(extra);
        omk.run(&args)
    };
    let picked = only(&["--run", "outside", "--json"]);
    picked.code(0);
    assert_eq!(picked.json()["passed"], 2);
    let none = only(&["--run", "no such case"]);
    none.code(2);
    assert!(none.stderr.contains("no case in"), "{}", none.stderr);

    // JUnit for CI: one test case per case, the wrong one failed.
    let junit = only(&["--format", "junit"]);
    junit.code(1);
    assert!(
        junit.stdout.contains("tests=\"3\" failures=\"1\""),
        "{}",
        junit.stdout
    );
    assert!(
        junit
            .stdout
            .contains("expected reject path.nothing, got accept"),
        "{}",
        junit.stdout
    );
    let text = only(&[]);
    assert!(text.stdout.contains("coverage: 1 of 3"), "{}", text.stdout);
}

/// `omk gate new NAME --lang LANG --dir DIR`.
fn new_args<'a>(name: &'a str, lang: &'a str, dir: &'a Path) -> [&'a str; 7] {
    ["gate", "new", name, "--lang", lang, "--dir", path_str(dir)]
}

/// `omk gate test WASM --cases CASES --json`.
fn test_json(omk: &Omk, wasm: &Path, cases: &Path) -> crate::support::Run {
    omk.run(&[
        "gate",
        "test",
        path_str(wasm),
        "--cases",
        path_str(cases),
        "--json",
    ])
}

/// Each case's name, verdict and code from `omk gate test --json`.
fn case_verdicts(v: &Value) -> Vec<Value> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["name"], c["got"]["verdict"], c["got"]["code"]]))
        .collect()
}

/// Builds the example in `lang` in a copy; returns the component.
fn build_example(omk: &Omk, lang: &str) -> PathBuf {
    let src = repo().join("plugins/examples/change-control").join(lang);
    let dir = omk.project().join(format!("examples/{lang}"));
    copy_dir(&src, &dir);
    // The examples keep their own copy of the contract: it must be this one.
    assert_eq!(
        std::fs::read_to_string(dir.join("wit/gate.wit")).unwrap(),
        std::fs::read_to_string(repo().join("wit/v0.3.0/gate.wit")).unwrap(),
        "plugins/examples/change-control/{lang}/wit/gate.wit is stale"
    );
    let r = run_built(omk, &["gate", "build", path_str(&dir), "--json"]);
    r.code(0);
    let imports = r.json()["component"]["imports"].clone();
    let imports: Vec<&str> = imports
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    // Nothing but omk's own context interface (which some toolchains import
    // whether the gate calls it or not) — and, from componentize-py, WASI,
    // which it imports whatever the gate does.
    let python = lang == "python";
    assert!(
        imports
            .iter()
            .all(|i| *i == "omk:gate/context@0.3.0" || (python && i.starts_with("wasi:"))),
        "{lang}: {imports:?}"
    );
    assert_eq!(python, imports.iter().any(|i| i.starts_with("wasi:")));
    dir.join("change-control.wasm")
}

#[test]
fn the_example_gates_agree_on_every_shared_case() {
    let omk = Omk::new();
    let cases = repo().join("plugins/examples/change-control/cases.toml");
    let commands = repo().join("plugins/examples/change-control/commands.toml");
    let mut verdicts: Vec<(String, Vec<Value>)> = Vec::new();
    let mut on_commands: Vec<(String, Vec<Value>)> = Vec::new();
    for lang in ["rust", "js", "c", "python"] {
        if !have(lang) {
            continue;
        }
        let wasm = build_example(&omk, lang);
        let r = test_json(&omk, &wasm, &cases);
        let v = r.json();
        assert_eq!(v["failed"], 0, "{lang}: {}", r.stdout);
        let got = case_verdicts(&v);
        // The README's count: every case of the shared file, each decided.
        let listed = std::fs::read_to_string(&cases)
            .unwrap()
            .matches("[[case]]")
            .count();
        assert_eq!((listed, got.len()), (17, 17), "{lang}");
        verdicts.push((lang.to_owned(), got));
        // Commands judged by their parsed words, asks included (0.3.0).
        let r = test_json(&omk, &wasm, &commands);
        assert_eq!(r.json()["failed"], 0, "{lang} on commands: {}", r.stdout);
        let got = case_verdicts(&r.json());
        assert_eq!(got.len(), 6, "{lang}");
        on_commands.push((lang.to_owned(), got));
    }
    // The example as built for `omk:gate@0.1.0` and `0.2.0`, kept in the
    // tests: served through the adapters, each decides every shared case as
    // the others do.
    for version in ["0.1.0", "0.2.0"] {
        let old = repo().join(format!(
            "tests/fixtures/gates-{version}/change-control.wasm"
        ));
        let r = test_json(&omk, &old, &cases);
        assert_eq!(r.json()["failed"], 0, "{version}: {}", r.stdout);
        let got = case_verdicts(&r.json());
        verdicts.push((format!("rust built for {version}"), got));
    }
    for (lang, got) in &on_commands[1..] {
        assert_eq!(
            got, &on_commands[0].1,
            "{lang} and {} disagree on commands",
            on_commands[0].0
        );
    }
    // Rust always builds; where another language's toolchain is missing its
    // test is listed as skipped (and fails under OMK_REQUIRE_TOOLCHAINS).
    assert_eq!(verdicts[0].0, "rust");
    for (lang, got) in &verdicts[1..] {
        assert_eq!(got, &verdicts[0].1, "{lang} and {} disagree", verdicts[0].0);
    }
    println!(
        "example gates: {} languages agree on every shared case",
        verdicts.len()
    );

    // The Rust one judges a wave through `.omk/gates.toml`.
    let mut risky = proposal("migrate", 60, &["migrations/001.sql"]);
    risky["acceptance"] = json!(["run: make test-migrations"]);
    let ev = wave_with_gate(
        &omk,
        &omk.project().join("examples/rust/change-control.wasm"),
        "",
        json!([proposal("docs", 60, &["docs/a.md"]), risky]),
    );
    assert_eq!(ev["accepted"], json!(["docs"]));
    assert_eq!(ev["rejected"][0]["code"], "change-control.migration-risk");

    // In a goal, its ask stops a `git push` where no person is asked, with
    // the rule and why; the task's other commands run.
    let run = Omk::new();
    run.git_project(&[("README.md", "project\n")]);
    std::fs::create_dir_all(run.project().join("gates")).unwrap();
    std::fs::copy(
        omk.project().join("examples/rust/change-control.wasm"),
        run.project().join("gates/cc.wasm"),
    )
    .unwrap();
    run.write(
        ".omk/gates.toml",
        "[[gate]]\nname = \"budget\"\n\n[[gate]]\nname = \"path\"\n\n[[gate]]\nname = \"acceptance\"\n\n[[gate]]\npath = \"gates/cc.wasm\"\n\n\
         [approvals]\ntimeout = \"1s\"\n",
    );
    let task = json!({"id": "ship", "write_set": ["notes.md"], "budget_secs": 60,
                      "acceptance": ["run: test -f notes.md && git push origin main"]});
    let agent = run.agent(&format!(
        "case \"$OMK_PHASE\" in\n  plan) echo 'OMK_TASK_PROPOSAL: {task}' ;;\n  execute) echo hi > notes.md ;;\nesac\n"
    ));
    run.run(&[
        "goal",
        "run",
        "ship",
        "--agent",
        "exec",
        "--command",
        &agent,
        "--until-ready",
    ])
    .code(1);
    let id = run.latest_goal();
    let asked: Vec<Value> = crate::support::of_kind(&run.events(&id), "agent_action")
        .into_iter()
        .filter(|e| e["payload"]["code"] == "omk.approval-timeout")
        .cloned()
        .collect();
    assert!(!asked.is_empty(), "the push was not asked about");
    // No one answered within the second `[approvals] timeout` gives it.
    let reason = asked[0]["payload"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("a person approves each push")
            && reason.contains("(change-control.push)")
            && reason.contains("timed out"),
        "{reason}"
    );
    assert_eq!(asked[0]["payload"]["allowed"], false);
    // The decision records the gate's ask, and the parse it was given.
    let events = run.events(&id);
    let decisions = crate::support::of_kind(&events, "gate_decision");
    let ask = decisions
        .iter()
        .find(|d| d["payload"]["verdict"] == "ask")
        .unwrap_or_else(|| panic!("no ask recorded: {decisions:#?}"));
    assert_eq!(ask["payload"]["gate"], "change-control");
    let parsed = &ask["payload"]["action"]["command"];
    assert_eq!(parsed["status"], "parsed", "{parsed:#}");
    assert_eq!(
        parsed["commands"][1]["words"],
        json!(["git", "push", "origin", "main"])
    );
}

#[test]
fn a_python_gate_needs_the_wasi_grant_and_then_judges() {
    if !have("python") {
        return;
    }
    let omk = Omk::new();
    let wasm = build_example(&omk, "python");
    let gates = omk.project().join("gates");
    std::fs::create_dir_all(&gates).unwrap();
    std::fs::copy(&wasm, gates.join("cc.wasm")).unwrap();
    omk.write(
        "p.json",
        r#"{"id":"m","write_set":["migrations/1.sql"],"acceptance":["x"]}"#,
    );
    // Not granted: refused at load, naming the imports and the fix.
    omk.write(".omk/gates.toml", "[[gate]]\npath = \"gates/cc.wasm\"\n");
    let r = omk.run(&["gate", "check", "--proposal", "p.json"]);
    r.code(2);
    assert!(
        r.stderr.contains("`wasi:cli/environment@0.2.9`")
            && r.stderr.contains("this gate was not granted")
            && r.stderr.contains("wasi = true"),
        "{}",
        r.stderr
    );
    // Granted: it judges.
    omk.write(
        ".omk/gates.toml",
        "[[gate]]\npath = \"gates/cc.wasm\"\nwasi = true\n",
    );
    let r = omk.run(&["gate", "check", "--proposal", "p.json", "--json"]);
    r.code(1);
    assert_eq!(
        r.json()["results"][0]["rejection"]["code"],
        "change-control.migration-risk"
    );
}

/// A Python gate that looks at everything sealed WASI withholds and says
/// what it saw in its rejection reason.
const PROBE: &str = r#"
import json, os, random, socket, sys, time
from wit_world import exports
from wit_world.exports.policy import Decision_Reject, GateInfo, Rejection, Stage

def attempt(f):
    try:
        return repr(f())
    except BaseException as e:
        return "refused: " + type(e).__name__

def read_file():
    with open("/etc/hostname") as f:
        return f.read()

def read_data():
    with open("/data/note.txt") as f:
        return f.read()

def write_data():
    with open("/data/new.txt", "w") as f:
        f.write("x")
    return "written"

def connect():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", 9))
    return "connected"

class Policy(exports.Policy):
    def describe(self):
        return GateInfo(name="probe", version="0.1.0", stages=[Stage.PROPOSAL], description="")

    def validate_config(self, config):
        pass

    def check_proposal(self, ctx, proposal, config):
        before = time.monotonic()
        time.sleep(3600)
        seen = {
            "time": time.time(),
            "slept": time.monotonic() - before,
            "urandom": os.urandom(8).hex(),
            "random": random.random(),
            "env": dict(os.environ),
            "argv": sys.argv,
            "file": attempt(read_file),
            "net": attempt(connect),
            "data": attempt(read_data),
            "data_write": attempt(write_data),
        }
        print("probe ran for", proposal.id)
        return Decision_Reject(Rejection(code="probe.seen", reason=json.dumps(seen, sort_keys=True)))

    def check_action(self, ctx, task, action, config):
        raise NotImplementedError

    def check_outcome(self, ctx, task, outcome, config):
        raise NotImplementedError
"#;

#[test]
fn a_gate_with_sealed_wasi_sees_nothing_and_decides_the_same_every_time() {
    if !have("python") {
        return;
    }
    let omk = Omk::new();
    let dir = omk.project().join("probe");
    let new = new_args("probe", "python", &dir);
    omk.run(&new).code(0);
    std::fs::write(dir.join("app.py"), PROBE).unwrap();
    run_built(&omk, &["gate", "build", path_str(&dir)]).code(0);
    let gates = omk.project().join("gates");
    std::fs::create_dir_all(&gates).unwrap();
    std::fs::copy(dir.join("probe.wasm"), gates.join("probe.wasm")).unwrap();
    omk.write("policy-data/note.txt", "hello");
    omk.write(
        ".omk/gates.toml",
        "[[gate]]\npath = \"gates/probe.wasm\"\nwasi = true\nwasi_dir = \"policy-data\"\n",
    );
    let id = omk.new_goal("probe", &[]);
    let plan = omk.plan("w1", json!([proposal("a", 60, &["src/a.rs"])]));
    omk.run(&["goal", "propose", &id, "--plan", &plan]).code(1);
    let events = omk.events(&id);
    let started = events.iter().find(|e| e["kind"] == "wave_started").unwrap();
    let now_ms = started["payload"]["now_ms"].as_u64().unwrap();
    let decision = events
        .iter()
        .find(|e| e["kind"] == "gate_decision" && e["payload"]["gate"] == "probe")
        .expect("the probe decided");
    let reason = decision["payload"]["reason"].as_str().unwrap();
    let seen: Value = serde_json::from_str(reason).unwrap();
    // The clock is the wave's, frozen; a sleep of an hour took no time.
    assert_eq!(
        (seen["time"].as_f64().unwrap() * 1000.0).round() as u64,
        now_ms,
        "{seen}"
    );
    assert_eq!(seen["slept"].as_f64().unwrap().round(), 3600.0, "{seen}");
    assert_eq!(seen["env"], json!({}));
    assert!(
        seen["file"].as_str().unwrap().starts_with("refused"),
        "{seen}"
    );
    assert!(
        seen["net"].as_str().unwrap().starts_with("refused"),
        "{seen}"
    );
    // The granted directory reads, read-only.
    assert_eq!(seen["data"], "'hello'", "{seen}");
    assert!(
        seen["data_write"].as_str().unwrap().starts_with("refused"),
        "{seen}"
    );
    assert!(!omk.project().join("policy-data/new.txt").exists());
    assert_eq!(
        decision["payload"]["output"].as_str().unwrap().trim(),
        "probe ran for a"
    );
    // The same inputs decide the same: on replay from the log, and twice
    // in `omk gate test`.
    let replay = omk.run(&["goal", "replay", &id, "--gates", "project", "--json"]);
    replay.code(0);
    let w = replay.json();
    assert!(w["rejudged"].as_u64().unwrap() >= 1, "{w}");
    assert_eq!(
        (&w["changes"], &w["nondeterministic"]),
        (&json!([]), &json!([])),
        "{w}"
    );
    let cases = omk.write(
        "probe.toml",
        "[[case]]\nname = \"sees\"\nstage = \"proposal\"\ncontext = { now_ms = 1700000000000 }\n\
         proposal = { id = \"a\" }\nexpect = \"reject\"\ncode = \"probe.seen\"\n",
    );
    let wasm = dir.join("probe.wasm");
    let test = || {
        let r = test_json(&omk, &wasm, &cases);
        r.code(0);
        r.json()["results"][0]["got"]["reason"].clone()
    };
    let (first, second) = (test(), test());
    assert_eq!(first, second);
    // `omk gate test` grants no directory.
    assert!(
        first.as_str().unwrap().contains("\"data\": \"refused"),
        "{first}"
    );
    assert!(first.as_str().unwrap().contains("\"urandom\""));
}

#[test]
fn a_granted_gate_still_may_not_import_beyond_wasi() {
    let omk = Omk::new();
    omk.write("p.json", r#"{"id":"a","budget_secs":1}"#);
    omk.write(
        "h.wasm",
        crate::support::components::gate_importing("wasi:http@0.2.0", "outgoing-handler"),
    );
    omk.write(
        ".omk/gates.toml",
        "[[gate]]\npath = \"h.wasm\"\nwasi = true\n",
    );
    let r = omk.run(&["gate", "check", "--proposal", "p.json"]);
    r.code(2);
    assert!(
        r.stderr
            .contains("imports `wasi:http/outgoing-handler@0.2.0`, which gates may not use"),
        "{}",
        r.stderr
    );
}

#[test]
fn every_other_template_builds_and_passes_its_cases() {
    let omk = Omk::new();
    for lang in ["js", "c", "python"] {
        if !have(lang) {
            continue;
        }
        let dir = omk.project().join(format!("mine-{lang}"));
        let new = new_args("mine", lang, &dir);
        omk.run(&new).code(0);
        run_built(&omk, &["gate", "build", path_str(&dir)]).code(0);
        let r = omk.run(&["gate", "test", path_str(&dir), "--json"]);
        r.code(0);
        assert_eq!(r.json()["passed"], 8, "{lang}");
    }
}

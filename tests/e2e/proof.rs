//! Proof, timeline replay, policy what-if and the HTML report, on the
//! demo's real run.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::Omk;

/// Runs the demo in `omk`'s project; returns the goal id.
fn demo(omk: &Omk) -> String {
    omk.run(&[
        "demo",
        "--dir",
        omk.project().join("demo").to_str().unwrap(),
    ])
    .code(0);
    omk.latest_goal()
}

fn changes(run: &crate::support::Run) -> Vec<(String, String, String, String)> {
    let w = run.json();
    let mut v: Vec<(String, String, String, String)> = w["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let o = |x: &Value| {
                if x["accepted"] == true {
                    "accept".to_owned()
                } else {
                    format!("reject {}", x["code"].as_str().unwrap_or(""))
                }
            };
            (
                c["task_id"].as_str().unwrap().to_owned(),
                c["stage"].as_str().unwrap().to_owned(),
                o(&c["old"]),
                o(&c["new"]),
            )
        })
        .collect();
    v.sort();
    v
}

fn tuples(list: &[(&str, &str, &str, &str)]) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = list
        .iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn the_proof_of_the_demo_is_ready_and_names_its_gates() {
    let omk = Omk::new();
    let id = demo(&omk);
    let written = omk.proof(&id);
    assert_eq!(written["readiness"]["ready"], true);
    let run = omk.run(&["goal", "proof", &id, "--json"]);
    run.code(0);
    let p = run.json();
    assert_eq!(p["status"], "ready");
    assert_eq!(p["tasks"]["done"], 4);
    assert_eq!(p["tasks"]["rejected_proposals"], 3);
    let gates: Vec<&str> = p["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(gates, ["acceptance", "budget", "command", "path"]);
    assert!(
        p["gates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["bundle"] == "std" && g["sha256"].as_str().unwrap().len() == 64)
    );
    assert_eq!(p["gates"][0]["by_code"]["acceptance.check-failed"], 1);
    assert_eq!(p["log"]["chain_intact"], true);
    let merged: Vec<&Value> = p["task_work"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["merged"] == true)
        .collect();
    assert_eq!(merged.len(), 4);
    assert!(
        merged
            .iter()
            .all(|t| t["commit"].as_str().unwrap().len() == 40)
    );
    let md = omk.run(&["goal", "proof", &id, "--md"]);
    md.code(0);
    assert!(md.stdout.starts_with("# Proof: "), "{}", md.stdout);
    assert!(md.stdout.contains("| budget | 0.3.0 |"), "{}", md.stdout);
}

#[test]
fn the_proof_names_gaps_and_says_not_ready_with_reasons() {
    let omk = Omk::new();
    omk.git_project(&[]);
    let agent = omk.agent(
        "case \"$OMK_PHASE\" in plan) echo 'OMK_TASK_PROPOSAL: {\"id\":\"t\",\"write_set\":[\"a\"],\"acceptance\":[\"run: false\"],\"budget_secs\":5}' ;; *) echo a > a ;; esac",
    );
    omk.run(&[
        "goal",
        "run",
        "g",
        "--agent",
        "exec",
        "--command",
        &agent,
        "--until-ready",
    ])
    .code(1);
    let id = omk.latest_goal();
    let run = omk.run(&["goal", "proof", &id, "--json"]);
    run.code(1);
    let p = run.json();
    assert_eq!(p["readiness"]["ready"], false);
    assert!(
        p["readiness"]["why"][0]
            .as_str()
            .unwrap()
            .contains("task `t` is failed"),
        "{p:#}"
    );
    assert!(
        p["known_gaps"][0]
            .as_str()
            .unwrap()
            .contains("`exec` had no live gating"),
        "{p:#}"
    );
}

#[test]
fn replay_with_the_original_gates_reproduces_every_decision() {
    let omk = Omk::new();
    let id = demo(&omk);
    for gates in ["std", "project"] {
        let run = omk.run(&[
            "goal",
            "replay",
            &id,
            "--gates",
            gates,
            "--json",
            "--fail-on-change",
        ]);
        run.code(0);
        let w = run.json();
        assert_eq!(w["changes"], json!([]), "{gates}");
        assert_eq!(w["nondeterministic"], json!([]));
        assert_eq!(w["missing_inputs"], 0);
        assert_eq!(w["rejudged"], w["judged"]);
        // Proposals (7), actions (5 writes + 1 refused), outcomes (5).
        assert!(w["judged"].as_u64().unwrap() >= 18, "{w}");
    }
    let text = omk.run(&["goal", "replay", &id, "--gates", "std"]);
    assert!(
        text.stdout.contains("every decision is reproduced exactly"),
        "{}",
        text.stdout
    );
}

#[test]
fn replay_with_a_stricter_and_a_looser_policy_reports_exactly_what_changes() {
    let omk = Omk::new();
    let id = demo(&omk);
    let strict = omk.write(
        "policies/strict.toml",
        "[[gate]]\nname = \"budget\"\nconfig = { max_task_secs = 100 }\n\n[[gate]]\nname = \"path\"\nconfig = { roots = [\"src\", \"tests\"] }\n\n[[gate]]\nname = \"acceptance\"\n",
    );
    let run = omk.run(&[
        "goal",
        "replay",
        &id,
        "--gates",
        strict.to_str().unwrap(),
        "--json",
        "--fail-on-change",
    ]);
    run.code(1);
    assert_eq!(
        changes(&run),
        tuples(&[
            (
                "add-multiply",
                "proposal",
                "accept",
                "reject budget.task-too-long"
            ),
            (
                "add-subtract",
                "proposal",
                "accept",
                "reject budget.task-too-long"
            ),
            (
                "add-divide",
                "proposal",
                "accept",
                "reject budget.task-too-long"
            ),
            (
                "rewrite-in-rust",
                "proposal",
                "reject budget.time-exceeded",
                "reject budget.task-too-long"
            ),
            (
                "write-usage-docs",
                "proposal",
                "accept",
                "reject path.outside-roots"
            ),
            (
                "write-usage-docs",
                "action",
                "accept",
                "reject path.outside-roots"
            ),
            (
                "write-usage-docs",
                "outcome",
                "accept",
                "reject path.outside-roots"
            ),
        ])
    );
    // For CI: a failed test case per changed decision, same exit code.
    let junit = omk.run(&[
        "goal",
        "replay",
        &id,
        "--gates",
        strict.to_str().unwrap(),
        "--format",
        "junit",
        "--fail-on-change",
    ]);
    junit.code(1);
    assert!(
        junit.stdout.contains("tests=\"7\" failures=\"7\"")
            && junit.stdout.contains("name=\"write-usage-docs action ")
            && junit.stdout.contains("type=\"replay.changed\""),
        "{}",
        junit.stdout
    );

    let loose = omk.write(
        "policies/loose.toml",
        "[[gate]]\nname = \"budget\"\n\n[[gate]]\nname = \"path\"\nmode = \"audit\"\n",
    );
    let run = omk.run(&[
        "goal",
        "replay",
        &id,
        "--gates",
        loose.to_str().unwrap(),
        "--json",
    ]);
    run.code(0);
    assert_eq!(
        changes(&run),
        tuples(&[
            (
                "set-prod-secrets",
                "proposal",
                "reject path.outside-roots",
                "accept"
            ),
            (
                "make-it-nicer",
                "proposal",
                "reject acceptance.missing",
                "accept"
            ),
            (
                "add-subtract",
                "action",
                "reject path.outside-write-set",
                "accept"
            ),
            (
                "add-divide",
                "outcome",
                "reject acceptance.check-failed",
                "accept"
            ),
        ])
    );
    let md = omk.run(&[
        "goal",
        "replay",
        &id,
        "--gates",
        loose.to_str().unwrap(),
        "--md",
    ]);
    assert!(
        md.stdout.contains("| make-it-nicer | proposal |"),
        "{}",
        md.stdout
    );
}

#[test]
fn a_tampered_log_still_replays_and_the_break_is_named() {
    let omk = Omk::new();
    let id = demo(&omk);
    let path = omk.goal_dir(&id).join("events.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let n = lines
        .iter()
        .position(|l| l.contains("\"task_rejected\""))
        .unwrap();
    let before = lines[n].clone();
    lines[n] = lines[n].replacen("\"reason\":\"", "\"reason\":\"(edited) ", 1);
    assert_ne!(lines[n], before);
    let m = n + 3;
    lines[m] = "{\"id\": this line was damaged".to_owned();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let replay = omk.run(&["goal", "replay", &id, "--json"]);
    replay.code(0);
    let t = replay.json();
    assert!(t["entries"].as_array().unwrap().len() > 100);
    assert_eq!(t["unparseable"], json!([m + 1]));
    let verify = omk.run(&["goal", "verify-log", &id, "--json"]);
    verify.code(1);
    assert_eq!(verify.json()["first_bad"]["line"], n + 1);
    let proof = omk.run(&["goal", "proof", &id, "--json"]);
    proof.code(1);
    let p = proof.json();
    assert_eq!(p["log"]["chain_intact"], false);
    assert_eq!(p["log"]["first_bad_line"], n + 1);
    assert!(
        p["known_gaps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g.as_str().unwrap().contains(&format!("line {}", n + 1)))
    );
}

/// Chromium, when this machine has it (CI installs it).
pub(crate) fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

#[test]
fn the_html_report_renders_in_headless_chromium_with_rejections_visible() {
    let Some(browser) = chromium() else {
        crate::support::skip("no chromium here (`apt-get install chromium poppler-utils`)");
        return;
    };
    let omk = Omk::new();
    let id = demo(&omk);
    let page = omk.project().join("report.html");
    omk.run(&["goal", "report", &id, "--html", page.to_str().unwrap()])
        .code(0);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("<script"),
        "self-contained"
    );

    let profile = omk.project().join("chromium-profile");
    let chrome = |extra: &[String]| {
        let out = std::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                &format!("--user-data-dir={}", profile.display()),
            ])
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let png = omk.project().join("report.png");
    chrome(&[
        "--window-size=1200,1600".into(),
        format!("--screenshot={}", png.display()),
    ]);
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "a real screenshot"
    );
    // The picture of the run, found in the pixels: the demo's attempts
    // (done ones on at least two agent lanes, as it runs three at once),
    // the action refused live, the check that failed, the merges.
    let shot = Screenshot::decode(&bytes);
    let done = shot.rows_of(0x2e7d32);
    assert!(!done.is_empty(), "no bar of a done attempt is drawn");
    assert!(
        bands(&done) >= 2,
        "done attempts on one lane only: rows {done:?}"
    );
    for (what, rgb) in [
        ("a live refusal", 0xd500f9),
        ("a failed check", 0xffab00),
        ("a merge", 0x1565c0),
    ] {
        assert!(!shot.rows_of(rgb).is_empty(), "{what} is not marked");
    }

    // What Chromium rendered, as text: only what is visible on the page.
    let pdf = omk.project().join("report.pdf");
    chrome(&[
        "--no-pdf-header-footer".into(),
        format!("--print-to-pdf={}", pdf.display()),
    ]);
    let out = std::process::Command::new("pdftotext")
        .arg(&pdf)
        .arg("-")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for visible in [
        "Rejected proposals",
        "path.outside-roots",
        "would exceed goal time budget",
        "has no acceptance criteria",
        "Actions refused while agents worked",
        "outside the task's write set",
        "ready",
    ] {
        assert!(
            text.contains(visible),
            "{visible:?} is not visible in the rendered page:\n{text}"
        );
    }
}

/// A screenshot's pixels.
struct Screenshot {
    width: usize,
    rgb: Vec<u8>,
}

impl Screenshot {
    /// Decodes what Chromium writes: 8-bit RGB or RGBA, not interlaced
    /// (anything else fails the test, naming it). By hand, with the
    /// `flate2` omk has: a PNG crate in the tests changes the features of
    /// crates the `omk` binary shares, and `cargo run` after the tests
    /// would compile them again.
    fn decode(png: &[u8]) -> Screenshot {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let (mut at, mut header, mut compressed) = (8, None, Vec::new());
        while at + 8 <= png.len() {
            let len = be32(&png[at..]);
            let data = &png[at + 8..at + 8 + len];
            match &png[at + 4..at + 8] {
                b"IHDR" => header = Some(data.to_vec()),
                b"IDAT" => compressed.extend_from_slice(data),
                b"IEND" => break,
                _ => {}
            }
            at += 12 + len; // length, kind, data, CRC
        }
        let h = header.expect("a PNG header");
        let (width, height) = (be32(&h[0..]), be32(&h[4..]));
        let (depth, colour, interlace) = (h[8], h[9], h[12]);
        let bpp = match (depth, colour, interlace) {
            (8, 2, 0) => 3,
            (8, 6, 0) => 4,
            other => panic!("a PNG of depth, colour type, interlace {other:?}"),
        };
        let mut raw = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::ZlibDecoder::new(&compressed[..]),
            &mut raw,
        )
        .unwrap();
        let stride = width * bpp;
        assert_eq!(raw.len(), height * (stride + 1), "the image data's length");
        let mut px = vec![0u8; stride * height];
        for y in 0..height {
            let filter = raw[y * (stride + 1)];
            for x in 0..stride {
                let at = y * stride + x;
                let a = if x >= bpp { px[at - bpp] } else { 0 };
                let b = if y > 0 { px[at - stride] } else { 0 };
                let c = if x >= bpp && y > 0 {
                    px[at - stride - bpp]
                } else {
                    0
                };
                let predicted = match filter {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                    4 => paeth(a, b, c),
                    f => panic!("a PNG row filter {f}"),
                };
                px[at] = raw[y * (stride + 1) + 1 + x].wrapping_add(predicted);
            }
        }
        Screenshot {
            width,
            rgb: px.chunks(bpp).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        }
    }

    /// The rows holding at least three pixels of exactly `colour`.
    fn rows_of(&self, colour: u32) -> Vec<usize> {
        let want = [(colour >> 16) as u8, (colour >> 8) as u8, colour as u8];
        self.rgb
            .chunks(self.width * 3)
            .enumerate()
            .filter(|(_, row)| row.chunks(3).filter(|p| *p == want).count() >= 3)
            .map(|(y, _)| y)
            .collect()
    }
}

/// PNG's Paeth predictor: of the left, upper and upper-left bytes, the
/// one nearest `a + b - c`.
fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

/// How many runs of consecutive rows `rows` holds.
fn bands(rows: &[usize]) -> usize {
    rows.windows(2).filter(|w| w[1] != w[0] + 1).count() + usize::from(!rows.is_empty())
}

/// Logs written by an earlier omk (`tests/fixtures/logs/`: the demo's run,
/// and a goal that was budgeted, paused, resumed, refused three proposals,
/// cancelled, and crashed mid-line once) still verify, replay and prove,
/// with the same output as when they were written. `OMK_BLESS=1` rewrites
/// the expected outputs, for a change that is meant.
#[test]
fn logs_from_an_earlier_omk_read_as_they_did() {
    let fixtures = crate::support::repo().join("tests/fixtures/logs");
    let key = fixtures.join("log.key.pub");
    let key = key.to_str().unwrap();
    // The demo's goal is ready; the cancelled one is not (exit 1).
    for (name, proof_exit) in [("demo", 0), ("lifecycle", 1)] {
        let omk = Omk::new();
        let goals = omk.state_home().join("omk/goals");
        std::fs::create_dir_all(&goals).unwrap();
        let src = fixtures.join(name);
        let id = std::fs::read_dir(&src)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .find(|n| n.starts_with("goal-"))
            .unwrap();
        crate::support::copy_dir(&src.join(&id), &goals.join(&id));
        // The goal's project is not here (as on any other machine): its
        // commits' `Omk-Log` trailers cannot be read, whatever this
        // machine's /tmp holds.
        let goal_file = goals.join(&id).join("goal.json");
        let mut goal: Value =
            serde_json::from_str(&std::fs::read_to_string(&goal_file).unwrap()).unwrap();
        let gone = omk.root().join("project-not-here").display().to_string();
        goal["project_dir"] = json!(gone);
        std::fs::write(&goal_file, serde_json::to_string_pretty(&goal).unwrap()).unwrap();
        let state = omk.state_home().display().to_string();
        let read = |args: &[&str], code: i32| -> Value {
            let run = omk.run(args);
            run.code(code);
            let out = run
                .stdout
                .replace(&state, "$STATE")
                .replace(&gone, "$PROJECT");
            serde_json::from_str(&out).unwrap()
        };
        let verify = read(
            &["goal", "verify-log", &id, "--trust-key", key, "--json"],
            0,
        );
        let mut outputs = vec![
            ("verify-log", verify),
            ("replay", read(&["goal", "replay", &id, "--json"], 0)),
            (
                "replay-std",
                read(&["goal", "replay", &id, "--gates", "std", "--json"], 0),
            ),
            ("status", read(&["goal", "status", &id, "--json"], 0)),
            ("show", read(&["goal", "show", &id, "--json"], 0)),
        ];
        let mut proof = read(
            &["goal", "proof", &id, "--trust-key", key, "--json"],
            proof_exit,
        );
        proof.as_object_mut().unwrap().remove("generated_at");
        outputs.push(("proof", proof));
        for (what, got) in outputs {
            let file = src.join("expected").join(format!("{what}.json"));
            if std::env::var_os("OMK_BLESS").is_some() {
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(&file, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
                continue;
            }
            let want: Value =
                serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            assert_eq!(got, want, "`{what}` of the {name} fixture changed");
        }
        // Re-judged by the std gates as they were built when the log was
        // written (`omk:gate@0.1.0`) and by the next ones (`0.2.0`), each
        // served through its adapter: every decision the same (and by the
        // newest: `replay-std` above).
        for version in ["0.1.0", "0.2.0"] {
            let old =
                crate::support::repo().join(format!("tests/fixtures/gates-{version}/std-bundle"));
            for gate in ["budget", "path", "acceptance"] {
                let to = omk.project().join(format!("gates-{version}/{gate}.wasm"));
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(old.join(format!("{gate}.wasm")), to).unwrap();
            }
            let toml = omk.write(
                ".omk/gates.toml",
                ["budget", "path", "acceptance"]
                    .map(|g| format!("[[gate]]\npath = \"gates-{version}/{g}.wasm\"\n\n"))
                    .concat(),
            );
            let old = read(
                &[
                    "goal",
                    "replay",
                    &id,
                    "--gates",
                    toml.to_str().unwrap(),
                    "--json",
                ],
                0,
            );
            assert_eq!(old["changes"], json!([]), "{version}: {old:#}");
            assert_eq!(old["rejudged"], old["judged"], "{version}: {old:#}");
            assert!(old["judged"].as_u64().unwrap() > 0);
        }
        // And the goal goes on: a new event chains onto the old ones.
        omk.run(&["goal", "verify-log", &id, "--trust-key", key])
            .code(0);
    }
}

#[test]
fn a_gate_in_audit_mode_is_a_gap_the_proof_names() {
    let omk = Omk::new();
    omk.write(
        ".omk/gates.toml",
        "[[gate]]\nname = \"budget\"\n\n[[gate]]\nname = \"path\"\nmode = \"audit\"\n\n[[gate]]\nname = \"acceptance\"\n",
    );
    let id = omk.new_goal("audited", &["--root", "src"]);
    let mut p = crate::support::proposal("outside", 60, &["secrets/prod.env"]);
    p["acceptance"] = json!(["run: true"]);
    let plan = omk.plan("w", json!([p]));
    let ev = omk
        .run(&["goal", "propose", &id, "--plan", &plan, "--json"])
        .code(0)
        .json();
    assert_eq!(ev["accepted"], json!(["outside"]), "audit does not enforce");
    let proof = omk.run(&["goal", "proof", &id, "--json"]).json();
    let gaps: Vec<&str> = proof["known_gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert!(
        gaps.iter()
            .any(|g| g.contains("gate `path` ran in audit mode")),
        "{gaps:?}"
    );
}

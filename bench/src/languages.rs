//! The `change-control` example gate in each language: built with `omk
//! gate build` (a language whose toolchain is missing says so in its row),
//! then its size, compile-and-load time with no cache, and per decision a
//! fresh instance plus call, and a call on a reused instance.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use omk::gates::{GateEngine, Limits};
use omk_gate_sdk::{Decision, GoalContext, TaskProposal};

use crate::figures::Figures;
use crate::process::omk_binary;
use crate::{ms, us};

pub fn languages(tmp: &Path, n: usize, figs: &mut Figures) {
    let Some(omk) = omk_binary() else {
        figs.table(
            "bench.languages",
            "(not measured: build the binary first, `cargo build --release -p omk`)".into(),
        );
        return;
    };
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/examples/change-control");
    let ctx = GoalContext::default();
    let p: TaskProposal = serde_json::from_value(serde_json::json!({
        "id": "m", "risk": "high", "write_set": ["migrations/001.sql", "src/db.rs"],
        "acceptance": ["run: make test-migrations"], "budget_secs": 60
    }))
    .expect("proposal");
    let mut rows = Vec::new();
    for lang in ["rust", "c", "js", "python"] {
        let dir = tmp.join(format!("lang-{lang}"));
        if let Err(e) = copy_dir(&examples.join(lang), &dir) {
            rows.push(format!(
                "| {lang} | not measured: cannot copy the example ({e}) | | | | |"
            ));
            continue;
        }
        let built = Command::new(&omk)
            .args(["gate", "build"])
            .arg(&dir)
            .stdin(std::process::Stdio::null())
            .output();
        let why = match built {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .find(|l| l.starts_with("error"))
                    .unwrap_or("build failed")
                    .to_owned(),
            ),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = why {
            rows.push(format!("| {lang} | not measured: {why} | | | | |"));
            continue;
        }
        let bytes = std::fs::read(dir.join("change-control.wasm")).expect("built component");
        let engine = GateEngine::new(None).expect("engine");
        let limits = Limits::default();
        let start = Instant::now();
        let gate = omk::gates::LoadedGate::load_granting(
            &engine,
            &bytes,
            lang,
            &limits,
            &omk::gates::wasi::Grant::sealed(),
        )
        .expect("the example loads");
        let load = start.elapsed();
        let mut fresh: Vec<Duration> = (0..n)
            .map(|_| {
                let t = Instant::now();
                let j = gate.check_proposal(&ctx, &p, "{}", &limits);
                assert!(
                    matches!(j.result, Ok(Decision::Accept)),
                    "{lang}: {:?}",
                    j.result
                );
                t.elapsed()
            })
            .collect();
        let mut reused_gate = gate.reuse(limits);
        let mut reused: Vec<Duration> = (0..n)
            .map(|_| {
                let t = Instant::now();
                let d = reused_gate
                    .check_proposal(&ctx, &p, "{}")
                    .expect("no fault");
                assert!(d.is_accept());
                t.elapsed()
            })
            .collect();
        fresh.sort();
        reused.sort();
        let (f, r) = (fresh[n / 2], reused[n / 2]);
        let size = if bytes.len() >= 1 << 20 {
            format!("{:.1} MiB", bytes.len() as f64 / (1 << 20) as f64)
        } else {
            format!("{:.0} KiB", bytes.len() as f64 / 1024.0)
        };
        rows.push(format!(
            "| {lang} | {size} | {} | {} | {} | {} |",
            ms(load),
            us(f),
            us(r),
            us(f.saturating_sub(r)),
        ));
    }
    figs.table(
        "bench.languages",
        format!(
            "| language | component | compile + load, no cache | fresh instance + call (median of {n}) | call, reused instance | instantiate (difference) |\n|---|---|---|---|---|---|\n{}",
            rows.join("\n")
        ),
    );
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}

//! `omk goal replay | proof | report`: reading back what a goal did.

use std::path::{Path, PathBuf};

use clap::Args;

use super::format::{self, Check, Format};
use super::{Outcome, Result, load, with_help};
use omk::gates::{GateEngine, GateSet, GatesConfig};
use omk::goal::GoalStore;
use omk::proof::anchors::Trust;
use omk::proof::document::Proof;
use omk::proof::replay::{self, WhatIf};
use omk::proof::report as html;
use omk::proof::timeline::Timeline;
use omk_signing::PublicKey;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The goal id, or `latest`.
    id: String,
    /// Re-judge every recorded decision with these gates: a gates.toml
    /// file, `std` (the embedded std bundle with defaults), or `project`
    /// (the goal's project configuration as it is now).
    #[arg(long, value_name = "CONFIG")]
    gates: Option<String>,
    /// Exit 1 if any decision would change (for CI checks of policy updates).
    #[arg(long)]
    fail_on_change: bool,
    /// With `--gates`, how to print the what-if: text, json, junit (a
    /// failed test case per changed decision), github or sarif.
    #[arg(long, value_enum, default_value = "text", requires = "gates")]
    format: Format,
    /// Print JSON.
    #[arg(long, conflicts_with = "md")]
    json: bool,
    /// Print Markdown.
    #[arg(long)]
    md: bool,
}

/// Which log signatures count beyond this machine's own key.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Also trust checkpoints signed by this key (`ed25519:<hex>`, or a
    /// `.pub` file): for a log made on another machine. This machine's own
    /// log key is always trusted.
    #[arg(long = "trust-key", value_name = "KEY")]
    trust_key: Vec<String>,
    /// Accept a log without any checkpoint (written by an omk from before
    /// checkpoints); its chain is still checked.
    #[arg(long)]
    allow_unanchored: bool,
}

impl TrustArgs {
    pub fn trust(&self) -> Result<Trust> {
        let mut trust = Trust {
            keys: Vec::new(),
            allow_unanchored: self.allow_unanchored,
        };
        for k in &self.trust_key {
            let key = if k.trim().starts_with("ed25519:") {
                PublicKey::parse(k)
            } else {
                std::fs::read_to_string(k)
                    .map_err(|e| format!("cannot read `{k}`: {e}"))
                    .and_then(|t| PublicKey::parse(t.lines().next().unwrap_or_default()))
            };
            trust.keys.push(key.map_err(|e| {
                with_help(
                    format!("--trust-key: {e}"),
                    "give `ed25519:<64 hex digits>` or a `.pub` file (`~/.config/omk/keys/log.key.pub` on the machine that ran the goal)",
                )
            })?);
        }
        Ok(trust)
    }
}

#[derive(Debug, Args)]
pub struct ProofArgs {
    /// The goal id, or `latest`.
    id: String,
    #[command(flatten)]
    trust: TrustArgs,
    /// Print JSON.
    #[arg(long, conflicts_with = "md")]
    json: bool,
    /// Print Markdown.
    #[arg(long)]
    md: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The goal id, or `latest`.
    id: String,
    #[command(flatten)]
    trust: TrustArgs,
    /// Where to write the page.
    #[arg(long, value_name = "FILE")]
    html: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// The gate set a `--gates` value names.
fn gate_set(value: &str, project: &Path) -> Result<GateSet> {
    let config = match value {
        "std" => GatesConfig::std(Default::default()),
        "project" => GatesConfig::for_project(project)?,
        path => {
            let file = Path::new(path);
            let text = std::fs::read_to_string(file).map_err(|e| {
                with_help(
                    format!("cannot read gates config `{path}`: {e}"),
                    "pass a gates.toml file, `std` or `project`",
                )
            })?;
            // Gate paths resolve against the project when the file is a
            // project's `.omk/gates.toml`, else against the file's folder.
            let dir = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let root = if dir.file_name().is_some_and(|n| n == ".omk") {
                dir.parent().unwrap_or(dir)
            } else {
                dir
            };
            GatesConfig::parse(&text, file, root)?
        }
    };
    Ok(GateSet::load(&config, GateEngine::shared()?)?)
}

pub fn replay(store: &GoalStore, a: ReplayArgs) -> Result<Outcome> {
    let (goal, _) = load(store, &a.id)?;
    let dir = store.dir(&goal.id);
    let Some(gates_arg) = a.gates else {
        // Printed as it is read: a log of a million events is never held.
        if a.json {
            let mut first = true;
            outln!("{{\n  \"entries\": [");
            let t = Timeline::scan(&dir, |e| {
                let sep = if std::mem::take(&mut first) {
                    ""
                } else {
                    ",\n"
                };
                out!("{sep}    {}", serde_json::to_string(&e).unwrap_or_default());
            })?;
            outln!(
                "\n  ],\n  \"unparseable\": {},\n  \"duplicates\": {},\n  \"gaps\": {}\n}}",
                serde_json::to_string(&t.unparseable)?,
                serde_json::to_string(&t.duplicates)?,
                serde_json::to_string(&t.gaps)?
            );
        } else if a.md {
            outln!(
                "# Timeline of {}\n\n| # | time | kind | actor | what |\n|---|---|---|---|---|",
                goal.id
            );
            let t = Timeline::scan(&dir, |e| {
                outln!(
                    "| {} | {} | {} | {} | {} |",
                    e.id,
                    e.ts.format("%H:%M:%S%.3f"),
                    e.kind,
                    e.actor,
                    e.summary.replace('|', "\\|")
                );
            })?;
            for p in t.problems() {
                outln!("\n> {p}");
            }
        } else {
            let t = Timeline::scan(&dir, |e| {
                outln!(
                    "{:>5}  {}  {:<19} {:<18} {}",
                    e.id,
                    e.ts.format("%H:%M:%S%.3f"),
                    e.kind,
                    e.actor,
                    e.summary
                );
            })?;
            for p in t.problems() {
                outln!("warning: {p}");
            }
        }
        return Ok(Outcome::Ok);
    };
    let gates = gate_set(&gates_arg, &goal.project_dir)?;
    let w = replay::what_if(&dir, &gates)?;
    match Format::pick(a.format, a.json) {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&w)?),
        Format::Text => print_what_if(&w, &gates_arg, a.md),
        other => out!(
            "{}",
            format::render(other, "omk goal replay", &what_if_checks(&w))
        ),
    }
    // A damaged record fails the replay whatever was asked: what it would
    // have re-judged cannot be trusted.
    Ok(
        if (a.fail_on_change && !w.exact()) || !w.damaged_inputs.is_empty() {
            Outcome::Rejected
        } else {
            Outcome::Ok
        },
    )
}

/// The what-if as checks for CI: a failed one per changed decision, per
/// gate that decided differently on the same input, per damaged input;
/// one passing check when every decision is reproduced.
fn what_if_checks(w: &WhatIf) -> Vec<Check> {
    let mut checks = Vec::new();
    for c in &w.changes {
        let gate = c.deciding_gate();
        let target = c
            .target
            .as_deref()
            .map(|t| format!(" {t}"))
            .unwrap_or_default();
        checks.push(Check {
            name: format!("{} {}{target}", c.task_id, c.stage.as_str()),
            file: None,
            failure: Some((
                "replay.changed".into(),
                format!("{} -> {} (deciding gate `{gate}`)", c.old, c.new),
            )),
        });
    }
    for n in &w.nondeterministic {
        checks.push(Check {
            name: format!("{} {} by {}", n.task_id, n.stage.as_str(), n.gate),
            file: None,
            failure: Some((
                "replay.nondeterministic".into(),
                format!(
                    "same input, component and config: was {}, now {}",
                    n.old, n.new
                ),
            )),
        });
    }
    for line in &w.damaged_inputs {
        checks.push(Check {
            name: format!("{} line {line}", omk::proof::inputs::INPUTS_FILE),
            file: None,
            failure: Some((
                "replay.damaged-input".into(),
                "the recorded input changed after it was written".into(),
            )),
        });
    }
    if checks.is_empty() {
        checks.push(Check {
            name: format!("{} of {} decisions re-judged", w.rejudged, w.judged),
            file: None,
            failure: None,
        });
    }
    checks
}

fn print_what_if(w: &WhatIf, gates: &str, md: bool) {
    let head = format!(
        "re-judged {} of {} recorded decisions with the gates `{gates}`",
        w.rejudged, w.judged
    );
    if md {
        outln!("# Policy what-if\n\n{head}.\n");
    } else {
        outln!("{head}");
    }
    if w.exact() {
        outln!("every decision is reproduced exactly");
    }
    if !w.damaged_inputs.is_empty() {
        let lines: Vec<String> = w.damaged_inputs.iter().map(|l| l.to_string()).collect();
        outln!(
            "DAMAGED  {} line(s) of {} do not match their address (changed after they were written): line {}",
            lines.len(),
            omk::proof::inputs::INPUTS_FILE,
            lines.join(", ")
        );
    }
    if w.missing_inputs > 0 {
        outln!(
            "{} decisions have no recorded input and were not re-judged",
            w.missing_inputs
        );
    }
    for n in &w.nondeterministic {
        outln!(
            "NOT DETERMINISTIC  gate `{}` ({}) on {} at {}: was {}, now {}",
            n.gate,
            &n.sha256[..n.sha256.len().min(12)],
            n.task_id,
            n.stage,
            n.old,
            n.new
        );
    }
    if w.changes.is_empty() {
        if !w.exact() {
            outln!("no overall decision would change");
        }
        return;
    }
    let summary: Vec<String> = w.summary.iter().map(|(k, n)| format!("{n} {k}")).collect();
    outln!(
        "{} decisions would change: {}",
        w.changes.len(),
        summary.join(", ")
    );
    if md {
        outln!(
            "\n| task | stage | target | old | new | deciding gate |\n|---|---|---|---|---|---|"
        );
    }
    for c in &w.changes {
        let gate = c.deciding_gate();
        let target = c.target.as_deref().unwrap_or("");
        if md {
            outln!(
                "| {} | {} | {} | {} | {} | {gate} |",
                c.task_id,
                c.stage,
                target,
                c.old,
                c.new
            );
        } else {
            outln!(
                "  {:<20} {:<8} {:<24} {} -> {}  ({gate})",
                c.task_id,
                c.stage.as_str(),
                target,
                c.old,
                c.new
            );
        }
    }
}

pub fn proof(store: &GoalStore, a: ProofArgs) -> Result<Outcome> {
    let id = store.resolve(&a.id)?;
    // The lock holder writes proof.json; a running goal's proof is built
    // without writing it.
    let trust = a.trust.trust()?;
    let proof = match omk::goal::Session::open(store, &id) {
        Ok(mut s) => s.write_proof(&trust)?,
        Err(_) => {
            let (goal, graph) = load(store, &id)?;
            Proof::build(&store.dir(&id), &goal, &graph, &trust)?
        }
    };
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&proof)?);
    } else if a.md {
        out!("{}", proof.markdown());
    } else {
        let ready = if proof.readiness.ready {
            "READY"
        } else {
            "NOT READY"
        };
        outln!("{}  {ready}  ({})", proof.goal_id, proof.status);
        for w in &proof.readiness.why {
            outln!("  - {w}");
        }
        let t = &proof.tasks;
        outln!(
            "  tasks: {} total, {} done, {} failed, {} pending; {} proposals rejected",
            t.total,
            t.done,
            t.failed,
            t.pending,
            t.rejected_proposals
        );
        for g in &proof.gates {
            outln!(
                "  gate {} {} ({}, {}): {} decisions",
                g.name,
                g.version,
                &g.sha256[..12.min(g.sha256.len())],
                g.bundle,
                g.decisions
            );
        }
        outln!(
            "  log: {} events, head {}",
            proof.log.events,
            proof.log.head_hash
        );
        for g in &proof.known_gaps {
            outln!("  gap: {g}");
        }
        outln!(
            "  file: {}",
            store
                .dir(&id)
                .join(omk::proof::document::PROOF_FILE)
                .display()
        );
    }
    Ok(if proof.readiness.ready {
        Outcome::Ok
    } else {
        Outcome::Rejected
    })
}

pub fn report(store: &GoalStore, a: ReportArgs) -> Result<Outcome> {
    let (goal, graph) = load(store, &a.id)?;
    let dir = store.dir(&goal.id);
    let (_, page) = html::page(&dir, &goal, &graph, &a.trust.trust()?)?;
    omk::atomic::write(&a.html, page.as_bytes()).map_err(|e| {
        with_help(
            format!("cannot write `{}`: {e}", a.html.display()),
            "pass a writable path",
        )
    })?;
    if a.json {
        let out = serde_json::json!({"goal": goal.id, "html": a.html, "bytes": page.len()});
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Ok);
    }
    outln!("wrote {} ({} bytes)", a.html.display(), page.len());
    Ok(Outcome::Ok)
}

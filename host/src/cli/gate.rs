//! `omk gate …`: judge proposals with a project's gates; inspect components.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use omk_gate_sdk::{GoalContext, TaskProposal};
use serde::Serialize;

use super::{Outcome, Result, read_json, with_help};
use crate::gates::{GateDecision, GateEngine, GateSet, inspect};
use crate::wave::relevant::Accepted;

#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Judge proposals with the project's gates.
    ///
    /// The proposals are judged in order as one wave: each accepted one is
    /// added to those accepted in the wave (each proposal sees in
    /// `accepted_in_wave` the ones it could conflict with) and its budget to
    /// `time_committed_secs` before the next is judged. Exit 0 if all are
    /// accepted, 1 if any is rejected, 2 on a usage or load error.
    Check(CheckArgs),
    /// Show a component's world, WIT version, imports, exports, stages,
    /// sha256 and size.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A JSON file with one proposal or an array of proposals.
    #[arg(long, value_name = "FILE")]
    proposal: PathBuf,
    /// A JSON file with the goal context (budget, policy roots, tasks
    /// already accepted); defaults to an empty goal with no limits.
    #[arg(long, value_name = "FILE")]
    context: Option<PathBuf>,
    /// The project whose `.omk/gates.toml` chooses the gates.
    #[arg(long, value_name = "DIR", default_value = ".")]
    project: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: GateCommand) -> Result<Outcome> {
    match cmd {
        GateCommand::Check(a) => check(a),
        GateCommand::Inspect(a) => inspect_cmd(a),
    }
}

#[derive(Serialize)]
struct GateSummary<'a> {
    name: &'a str,
    version: &'a str,
    sha256: &'a str,
    source: &'a str,
    mode: crate::gates::Mode,
    stages: &'a [omk_gate_sdk::Stage],
}

#[derive(Serialize)]
struct ProposalResult {
    id: String,
    accepted: bool,
    /// The decisive rejection, if rejected.
    rejection: Option<Rejected>,
    decisions: Vec<GateDecision>,
}

#[derive(Serialize)]
struct Rejected {
    gate: String,
    code: String,
    reason: String,
}

#[derive(Serialize)]
struct Summary {
    total: usize,
    accepted: usize,
    rejected: usize,
}

fn check(args: CheckArgs) -> Result<Outcome> {
    let proposals = read_proposals(&args.proposal)?;
    let mut ctx = match &args.context {
        Some(path) => read_json::<GoalContext>(path, "goal context")?,
        None => GoalContext::default(),
    };
    if ctx.now_ms == 0 {
        ctx.now_ms = now_ms();
    }
    if !args.project.is_dir() {
        return Err(with_help(
            format!(
                "project directory `{}` does not exist",
                args.project.display()
            ),
            "pass `--project DIR` with the directory that holds `.omk/gates.toml`",
        ));
    }
    let gates = GateSet::for_project(&args.project)?;

    let mut results = Vec::new();
    // Tasks the context file says were accepted, then those accepted here;
    // each proposal sees the ones it could conflict with, as in a wave.
    let mut accepted = Accepted::default();
    for t in std::mem::take(&mut ctx.accepted_in_wave) {
        accepted.push(t);
    }
    for p in &proposals {
        ctx.accepted_in_wave = accepted.relevant_to(p);
        let verdict = gates.judge_proposal(&ctx, p);
        if verdict.accepted {
            accepted.push(p.as_accepted());
            ctx.budget.time_committed_secs =
                ctx.budget.time_committed_secs.saturating_add(p.budget_secs);
        }
        let rejection = verdict.blocking().map(|d| {
            let r = d
                .decision
                .rejection()
                .expect("a blocking decision is a rejection");
            Rejected {
                gate: d.gate.clone(),
                code: r.code.clone(),
                reason: r.reason.clone(),
            }
        });
        results.push(ProposalResult {
            id: p.id.clone(),
            accepted: verdict.accepted,
            rejection,
            decisions: verdict.decisions,
        });
    }
    let accepted = results.iter().filter(|r| r.accepted).count();
    let summary = Summary {
        total: results.len(),
        accepted,
        rejected: results.len() - accepted,
    };
    let gate_list: Vec<GateSummary> = gates
        .entries()
        .iter()
        .map(|e| GateSummary {
            name: &e.name,
            version: &e.gate.info().version,
            sha256: e.gate.sha256(),
            source: &e.source,
            mode: e.mode,
            stages: &e.gate.info().stages,
        })
        .collect();

    if args.json {
        let out = serde_json::json!({
            "config": gates.config_file().map(|p| p.display().to_string()),
            "gates": gate_list,
            "results": results,
            "summary": summary,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_check(&results, &gate_list, gates.config_file(), &summary);
    }
    Ok(if summary.rejected == 0 {
        Outcome::Ok
    } else {
        Outcome::Rejected
    })
}

fn print_check(
    results: &[ProposalResult],
    gates: &[GateSummary],
    config: Option<&Path>,
    s: &Summary,
) {
    let width = gates.iter().map(|g| g.name.len()).max().unwrap_or(4);
    for r in results {
        match &r.rejection {
            None => println!("ACCEPT  {}", r.id),
            Some(rej) => println!(
                "REJECT  {}  by `{}`: {} [{}]",
                r.id, rej.gate, rej.reason, rej.code
            ),
        }
        for d in &r.decisions {
            let verdict = match (&d.decision, d.called) {
                (_, false) => "-".to_owned(),
                (omk_gate_sdk::Decision::Accept, _) => "accept".to_owned(),
                (omk_gate_sdk::Decision::Reject(rej), _) => {
                    let audit = if d.mode == crate::gates::Mode::Audit {
                        " (audit: not enforced)"
                    } else {
                        ""
                    };
                    format!("reject {}{audit}", rej.code)
                }
            };
            println!(
                "        {:width$}  {:8}  {}  {:>6}us  {verdict}",
                d.gate,
                d.version,
                &d.sha256[..12.min(d.sha256.len())],
                d.micros,
            );
        }
    }
    let from = match config {
        Some(p) => format!("from {}", p.display()),
        None => "from the embedded std bundle".to_owned(),
    };
    let names: Vec<&str> = gates.iter().map(|g| g.name).collect();
    println!(
        "{} proposals: {} accepted, {} rejected (gates {}: {})",
        s.total,
        s.accepted,
        s.rejected,
        from,
        names.join(", ")
    );
}

fn inspect_cmd(args: InspectArgs) -> Result<Outcome> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read `{}`", args.file.display()))?;
    let engine = GateEngine::shared()?;
    let shown = args.file.display().to_string();
    let i = inspect::inspect(engine, &bytes, &shown)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&i)?);
        return Ok(Outcome::Ok);
    }
    println!("file:        {}", i.file);
    println!("sha256:      {}", i.sha256);
    println!("size:        {} bytes", i.size);
    println!(
        "world:       {}",
        i.world.as_deref().unwrap_or("(not an omk gate)")
    );
    println!("wit version: {}", i.wit_version.as_deref().unwrap_or("-"));
    if i.imports.is_empty() {
        println!("imports:     none");
    } else {
        println!("imports:     {}", i.imports.join("\n             "));
    }
    println!("exports:     {}", i.exports.join("\n             "));
    match (&i.gate, &i.load_error) {
        (Some(g), _) => {
            let stages: Vec<&str> = g.stages.iter().map(|s| s.as_str()).collect();
            println!("gate:        {} {} — {}", g.name, g.version, g.description);
            println!("stages:      {}", stages.join(", "));
        }
        (None, Some(e)) => println!("loads:       no — {e}"),
        (None, None) => {}
    }
    Ok(Outcome::Ok)
}

fn read_proposals(path: &Path) -> Result<Vec<TaskProposal>> {
    let value: serde_json::Value = read_json(path, "proposals")?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        one @ serde_json::Value::Object(_) => vec![one],
        _ => {
            return Err(with_help(
                format!(
                    "`{}` holds neither a proposal object nor an array of them",
                    path.display()
                ),
                "write `{\"id\": \"…\", \"write_set\": […], \"budget_secs\": 60, …}` or a list of such objects",
            ));
        }
    };
    if items.is_empty() {
        return Err(with_help(
            format!("`{}` holds no proposals", path.display()),
            "add at least one proposal to the array",
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value(v).map_err(|e| {
                with_help(
                    format!("`{}`: proposal {} is invalid: {e}", path.display(), i + 1),
                    "proposal fields are id, title, description, dependencies, read_set, write_set, \
                     risk, acceptance, budget_secs, priority",
                )
            })
        })
        .collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

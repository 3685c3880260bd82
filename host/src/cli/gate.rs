//! `omk gate …`: judge proposals with a project's gates; inspect components.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use omk_gate_sdk::GoalContext;
use serde::Serialize;

use super::format::{self, Check, Format};
use super::{Outcome, Result, read_json, read_proposals, with_help};
use omk::author::{self, Lang};

/// The languages of `omk gate new --lang` (the library's [`Lang`]).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LangArg {
    Rust,
    Python,
    Js,
    C,
}

impl From<LangArg> for Lang {
    fn from(l: LangArg) -> Lang {
        match l {
            LangArg::Rust => Lang::Rust,
            LangArg::Python => Lang::Python,
            LangArg::Js => Lang::Js,
            LangArg::C => Lang::C,
        }
    }
}
use omk::gates::{Blocked, GateDecision, GateEngine, GateSet, Limits, LoadedGate, cases, inspect};

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
    /// Create a gate project: the WIT, a starter gate, test cases, a README.
    New(NewArgs),
    /// Build the gate project in DIR with its language's toolchain.
    Build(BuildArgs),
    /// Run test cases against a gate: pass/fail per case, exit 1 on any
    /// failure.
    Test(TestArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A JSON file with one proposal or an array of proposals (`-`:
    /// stdin). Given more than once, the files' proposals are judged as one
    /// wave, in order.
    #[arg(long, value_name = "FILE", required = true)]
    proposal: Vec<PathBuf>,
    /// A JSON file with the goal context (budget, policy roots, tasks
    /// already accepted; `-`: stdin); defaults to an empty goal with no
    /// limits.
    #[arg(long, value_name = "FILE")]
    context: Option<PathBuf>,
    /// The project whose `.omk/gates.toml` chooses the gates.
    #[arg(long, value_name = "DIR", default_value = ".")]
    project: PathBuf,
    /// How to print the results: text, json, junit (a test case per
    /// proposal), github (an annotation per rejection) or sarif.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Print JSON instead of text (`--format json`).
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
        GateCommand::New(a) => new_cmd(a),
        GateCommand::Build(a) => build_cmd(a),
        GateCommand::Test(a) => test_cmd(a),
    }
}

#[derive(Serialize)]
struct GateSummary<'a> {
    name: &'a str,
    version: &'a str,
    sha256: &'a str,
    source: &'a str,
    mode: omk::gates::Mode,
    stages: &'a [omk_gate_sdk::Stage],
}

#[derive(Serialize)]
struct ProposalResult {
    id: String,
    accepted: bool,
    /// The decisive rejection, if rejected.
    rejection: Option<Blocked>,
    decisions: Vec<GateDecision>,
}

#[derive(Serialize)]
struct Summary {
    total: usize,
    accepted: usize,
    rejected: usize,
}

fn check(args: CheckArgs) -> Result<Outcome> {
    let stdin = args
        .proposal
        .iter()
        .chain(&args.context)
        .filter(|p| p.as_os_str() == "-");
    if stdin.count() > 1 {
        return Err(with_help(
            "stdin (`-`) is given more than once",
            "pipe one file in; give the others by path",
        ));
    }
    let mut proposals = Vec::new();
    let mut files = Vec::new();
    for path in &args.proposal {
        let read = read_proposals(path)?;
        files.extend(std::iter::repeat_n(path.display().to_string(), read.len()));
        proposals.extend(read);
    }
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

    let verdicts = omk::wave::judge_detached(&gates, ctx, &proposals);
    let results: Vec<ProposalResult> = proposals
        .iter()
        .zip(verdicts)
        .map(|(p, verdict)| ProposalResult {
            id: p.id.clone(),
            accepted: verdict.accepted,
            rejection: verdict.rejection(),
            decisions: verdict.decisions,
        })
        .collect();
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

    match Format::pick(args.format, args.json) {
        Format::Json => {
            let out = serde_json::json!({
                "config": gates.config_file().map(|p| p.display().to_string()),
                "gates": gate_list,
                "results": results,
                "summary": summary,
            });
            outln!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Text => print_check(&results, &gate_list, gates.config_file(), &summary),
        other => {
            let checks: Vec<Check> = results
                .iter()
                .zip(files)
                .map(|(r, file)| Check {
                    name: r.id.clone(),
                    file: Some(file),
                    failure: r.rejection.as_ref().map(|rej| {
                        (
                            rej.code.clone(),
                            format!("rejected by `{}`: {}", rej.gate, rej.reason),
                        )
                    }),
                })
                .collect();
            out!("{}", format::render(other, "omk gate check", &checks));
        }
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
            None => outln!("ACCEPT  {}", r.id),
            Some(rej) => outln!(
                "REJECT  {}  by `{}`: {} [{}]",
                r.id,
                rej.gate,
                rej.reason,
                rej.code
            ),
        }
        for d in &r.decisions {
            let verdict = match (&d.decision, d.called) {
                (_, false) => "-".to_owned(),
                (omk_gate_sdk::Decision::Accept, _) => "accept".to_owned(),
                (omk_gate_sdk::Decision::Reject(rej) | omk_gate_sdk::Decision::Ask(rej), _) => {
                    let audit = if d.mode == omk::gates::Mode::Audit {
                        " (audit: not enforced)"
                    } else {
                        ""
                    };
                    let word = if d.decision.is_ask() { "ask" } else { "reject" };
                    format!("{word} {}{audit}", rej.code)
                }
            };
            outln!(
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
    outln!(
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
        outln!("{}", serde_json::to_string_pretty(&i)?);
        return Ok(Outcome::Ok);
    }
    outln!("file:        {}", i.file);
    outln!("sha256:      {}", i.sha256);
    outln!("size:        {} bytes", i.size);
    outln!(
        "world:       {}",
        i.world.as_deref().unwrap_or("(not an omk gate)")
    );
    outln!("wit version: {}", i.wit_version.as_deref().unwrap_or("-"));
    if i.imports.is_empty() {
        outln!("imports:     none");
    } else {
        outln!("imports:     {}", i.imports.join("\n             "));
    }
    outln!("exports:     {}", i.exports.join("\n             "));
    match (&i.gate, &i.load_error) {
        (Some(g), _) => {
            let stages: Vec<&str> = g.stages.iter().map(|s| s.as_str()).collect();
            outln!("gate:        {} {} — {}", g.name, g.version, g.description);
            outln!("stages:      {}", stages.join(", "));
        }
        (None, Some(e)) => outln!("loads:       no — {e}"),
        (None, None) => {}
    }
    Ok(Outcome::Ok)
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The gate's name (1–64 of a-z, 0-9 and `-`, starting with a letter);
    /// also the directory created, unless `--dir` is given.
    name: String,
    /// The language of the starter gate.
    #[arg(long, value_enum)]
    lang: LangArg,
    /// Where to create the project (default: ./NAME).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The gate project (the directory with `omk-gate.toml`).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// A gate project directory (its `<name>.wasm` and `cases.toml`), or a
    /// component `.wasm` (then `--cases` is needed unless `cases.toml` is
    /// beside it).
    #[arg(default_value = ".")]
    target: PathBuf,
    /// The test cases (TOML or JSON).
    #[arg(long, value_name = "FILE")]
    cases: Option<PathBuf>,
    /// Run only the cases whose name contains this text.
    #[arg(long, value_name = "PATTERN")]
    run: Option<String>,
    /// How to print the results: text, json, junit (a test case per
    /// case), github (an annotation per failure) or sarif.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Print JSON instead of text (`--format json`).
    #[arg(long)]
    json: bool,
}

fn new_cmd(args: NewArgs) -> Result<Outcome> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    let lang = Lang::from(args.lang);
    let files = author::create(&dir, &args.name, lang)?;
    if args.json {
        let out = serde_json::json!({"name": args.name, "lang": lang.as_str(), "dir": dir,
                                     "files": files});
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Ok);
    }
    outln!(
        "created the {} gate `{}` in {}:",
        lang.as_str(),
        args.name,
        dir.display()
    );
    for f in files {
        outln!("  {f}");
    }
    outln!(
        "next: cd {} && omk gate build && omk gate test",
        dir.display()
    );
    Ok(Outcome::Ok)
}

fn build_cmd(args: BuildArgs) -> Result<Outcome> {
    let project = author::GateProject::open(&args.dir)?;
    let json = args.json;
    let mut progress = |step: &str| {
        if !json {
            eprintln!("running: {step}");
        }
    };
    let report = author::build(&args.dir, &project, &mut progress)?;
    let bytes = std::fs::read(&report.component)
        .with_context(|| format!("cannot read `{}`", report.component.display()))?;
    let engine = GateEngine::shared()?;
    let shown = report.component.display().to_string();
    let i = inspect::inspect(engine, &bytes, &shown)?;
    if json {
        let out = serde_json::json!({"build": report, "component": i});
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        // A gate needing only sealed WASI loads once granted it.
        let needs_grant_only =
            !i.imports.is_empty() && i.imports.iter().all(|x| omk::gates::wasi::provides(x));
        let imports = if i.imports.is_empty() {
            "none".to_owned()
        } else if needs_grant_only {
            format!(
                "{} WASI 0.2 interfaces — list it with `wasi = true` in `.omk/gates.toml` (sealed WASI)",
                i.imports.len()
            )
        } else {
            i.imports.join(", ")
        };
        outln!(
            "built {shown} ({} bytes, sha256 {}), imports: {imports}",
            report.size,
            &i.sha256[..16],
        );
        if let (false, Some(e)) = (needs_grant_only, &i.load_error) {
            outln!("warning: omk cannot load it: {e}");
        }
    }
    Ok(Outcome::Ok)
}

fn test_cmd(args: TestArgs) -> Result<Outcome> {
    if !args.target.exists() {
        return Err(with_help(
            format!(
                "`{}` is neither a gate project nor a component: nothing is there",
                args.target.display()
            ),
            "name a gate project's folder (the one `omk gate new` made) or a built `.wasm` component",
        ));
    }
    let (component, default_cases) = if args.target.is_dir() {
        let project = author::GateProject::open(&args.target)?;
        (
            project.component(&args.target),
            args.target.join(author::CASES_FILE),
        )
    } else {
        let beside = args
            .target
            .parent()
            .unwrap_or(Path::new("."))
            .join(author::CASES_FILE);
        (args.target.clone(), beside)
    };
    let cases_path = args.cases.unwrap_or(default_cases);
    let mut cases = cases::read(&cases_path)?;
    if let Some(pattern) = &args.run {
        cases.retain(|c| c.name.contains(pattern.as_str()));
        if cases.is_empty() {
            return Err(with_help(
                format!(
                    "no case in `{}` has a name containing `{pattern}`",
                    cases_path.display()
                ),
                "`omk gate test` without `--run` lists every case",
            ));
        }
    }
    let bytes = std::fs::read(&component).map_err(|e| {
        with_help(
            format!("cannot read the gate `{}`: {e}", component.display()),
            "build it first: `omk gate build`",
        )
    })?;
    let engine = GateEngine::shared()?;
    let limits = Limits::default();
    let shown = component.display().to_string();
    // The workbench grants sealed WASI; a project grants it per gate.
    let gate = LoadedGate::load_granting(
        engine,
        &bytes,
        &shown,
        &limits,
        &omk::gates::wasi::Grant::sealed(),
    )?;
    let results = cases::run(&gate, &cases, &limits);
    let failed = results.iter().filter(|r| !r.passed).count();
    let coverage = cases::coverage(&gate.info().stages, &results);
    let want_got = |r: &cases::CaseResult| {
        let word = match r.expect {
            cases::Expect::Accept => "accept",
            cases::Expect::Reject => "reject",
            cases::Expect::Ask => "ask",
        };
        let want = match &r.expect_code {
            Some(c) => format!("{word} {c}"),
            None => word.to_owned(),
        };
        let got = match &r.got {
            omk_gate_sdk::Decision::Accept => "accept".to_owned(),
            omk_gate_sdk::Decision::Reject(rej) => format!("reject {} — {}", rej.code, rej.reason),
            omk_gate_sdk::Decision::Ask(rej) => format!("ask {} — {}", rej.code, rej.reason),
        };
        (want, got)
    };
    match Format::pick(args.format, args.json) {
        Format::Json => {
            let out = serde_json::json!({
                "gate": {"file": shown, "name": gate.info().name, "sha256": gate.sha256()},
                "cases": cases_path.display().to_string(),
                "passed": results.len() - failed,
                "failed": failed,
                "coverage": coverage,
                "results": results,
            });
            outln!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Text => {
            for r in &results {
                if r.passed {
                    outln!("ok    {}", r.name);
                    continue;
                }
                let (want, got) = want_got(r);
                outln!(
                    "FAIL  {} ({} stage)\n      expected {want}\n      got      {got}",
                    r.name,
                    r.stage.as_str()
                );
            }
            outln!(
                "{} cases: {} passed, {failed} failed ({} on {})",
                results.len(),
                results.len() - failed,
                cases_path.display(),
                shown
            );
            outln!("{}", coverage.line());
        }
        other => {
            let file = cases_path.display().to_string();
            let checks: Vec<Check> = results
                .iter()
                .map(|r| Check {
                    name: r.name.clone(),
                    file: Some(file.clone()),
                    failure: (!r.passed).then(|| {
                        let (want, got) = want_got(r);
                        let code = r
                            .got
                            .rejection()
                            .map_or("accept".to_owned(), |x| x.code.clone());
                        (code, format!("expected {want}, got {got}"))
                    }),
                })
                .collect();
            out!("{}", format::render(other, "omk gate test", &checks));
        }
    }
    Ok(if failed == 0 {
        Outcome::Ok
    } else {
        Outcome::Rejected
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

//! `omk goal …`: create goals, submit waves, and read their state and log.

use std::path::PathBuf;

use chrono::Utc;
use clap::{Args, Subcommand};
use serde_json::json;

use anyhow::Context;

use super::{Outcome, Result, load, read_json, with_help};
use omk::agents::AgentSpec;
use omk::gates::GateSet;
use omk::goal::budget::{self, format_time, format_usd};
use omk::goal::{
    Goal, GoalError, GoalStatus, GoalStore, Limits, MergePolicy, NewGoal, Request, Session,
    StoreError,
};
use omk::graph::{TaskGraph, TaskStatus};
use omk::proof::anchors;
use omk::proof::{Event, log};
use omk::wave::execute::{Executor, Observer, Progress, Quiet};
use omk::wave::{self, DispatchPlan};
use omk_gate_sdk::paths;

#[derive(Debug, Subcommand)]
pub enum GoalCommand {
    /// Create a goal; with `--agent`, plan it and admit its first wave;
    /// with `--until-ready` too, run it to a terminal status.
    Run(RunArgs),
    /// Run (or resume) a goal's pending tasks to a terminal status.
    Execute(ExecuteArgs),
    /// Submit a dispatch plan as a wave: every proposal is judged by omk's
    /// checks and the project's gates. Exit 1 if any is rejected.
    Propose(ProposeArgs),
    /// List goals, oldest first.
    List(JsonArg),
    /// A goal's status, budget and task counts.
    Status(IdArgs),
    /// A goal and its tasks.
    Show(IdArgs),
    /// A goal's event log, one event a line.
    Events(EventsArgs),
    /// Check a goal's event log hash chain. Exit 1 if it is broken.
    VerifyLog(VerifyLogArgs),
    /// Rebuild a goal's timeline from its log; with `--gates`, re-judge
    /// every recorded decision with other gates (policy what-if).
    Replay(super::proof::ReplayArgs),
    /// Write and show a goal's proof (`proof.json`).
    Proof(super::proof::ProofArgs),
    /// Write a one-page HTML report of a goal.
    Report(super::proof::ReportArgs),
    /// Pause a goal: no new waves until it is resumed.
    Pause(IdArgs),
    /// Resume a paused goal.
    Resume(IdArgs),
    /// Cancel a goal for good.
    Cancel(IdArgs),
    /// Raise a goal's budgets by positive amounts.
    BudgetAdd(BudgetAddArgs),
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The goal id, or `latest`.
    id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyLogArgs {
    /// The goal id, or `latest`.
    id: String,
    #[command(flatten)]
    trust: super::proof::TrustArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// What the goal is, in words.
    goal: String,
    /// Time budget in agent time: `30s`, `15m`, `8h`, `7d` or seconds.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    budget_time: Option<String>,
    /// Token budget.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    budget_tokens: Option<String>,
    /// USD budget (`2.50`).
    #[arg(long, value_name = "USD", allow_hyphen_values = true)]
    budget_usd: Option<String>,
    /// Most tasks that run at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    max_agents: u32,
    /// The project the goal works on.
    #[arg(long, value_name = "DIR", default_value = ".")]
    project: PathBuf,
    /// A project-relative directory tasks may touch (repeatable); the whole
    /// project when none is given.
    #[arg(long = "root", value_name = "PATH")]
    roots: Vec<String>,
    #[command(flatten)]
    agent: AgentArgs,
    /// Run the goal until it is ready (or cannot be): plan, waves,
    /// execution and outcome.
    #[arg(long)]
    until_ready: bool,
    /// What happens to accepted work.
    #[arg(long = "merge", value_enum, default_value_t = MergeArg::Integrate)]
    merge_policy: MergeArg,
    /// Keep the worktree of a task that failed for good, for inspection.
    #[arg(long)]
    keep_failed: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `--merge` (the library's [`MergePolicy`]).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MergeArg {
    /// Committed on the task's branch only.
    None,
    /// Also merged into `omk/<goal-id>/integration`.
    Integrate,
}

impl From<MergeArg> for MergePolicy {
    fn from(m: MergeArg) -> MergePolicy {
        match m {
            MergeArg::None => MergePolicy::None,
            MergeArg::Integrate => MergePolicy::Integrate,
        }
    }
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent backend: `kimi` (Kimi Code over ACP), `kimi-print` (Kimi
    /// Code's print mode, not gated live), `kimi-wire` (the legacy Kimi CLI
    /// over its wire protocol), `claude`, `codex`, `acp:CMD` (any ACP
    /// agent), `exec` (needs `--command`) or `scripted` (needs `--script`).
    #[arg(long, value_name = "NAME")]
    agent: Option<String>,
    /// The scripted agent's script (JSON).
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
    /// The exec agent's command, run with `sh -c` in each task's worktree;
    /// for `kimi`, `kimi-wire`, `claude` and `codex`, the command line that
    /// starts the client (default: `$OMK_KIMI`/`$OMK_KIMI_WIRE`/
    /// `$OMK_CLAUDE`/`$OMK_CODEX`, else the program on PATH); for `acp`,
    /// the agent's command.
    #[arg(long, value_name = "CMD")]
    command: Option<String>,
}

impl AgentArgs {
    fn spec(&self) -> Result<Option<AgentSpec>> {
        Ok(AgentSpec::parse(
            self.agent.as_deref(),
            self.script.as_deref(),
            self.command.as_deref(),
        )?)
    }
}

#[derive(Debug, Args)]
pub struct ExecuteArgs {
    /// The goal id, or `latest`.
    id: String,
    /// Keep the worktree of a task that failed for good, for inspection.
    #[arg(long)]
    keep_failed: bool,
    /// Print the goal as JSON at the end instead of a summary.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ProposeArgs {
    /// The goal id, or `latest`.
    id: String,
    /// A JSON dispatch plan: `{run_key, kind, proposals, allow_existing_task_ids}`.
    #[arg(long, value_name = "FILE")]
    plan: PathBuf,
    /// Wait up to SECS for another omk acting on the goal to finish.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    wait: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The goal id, or `latest`.
    id: String,
    /// Only events of this kind (`task_rejected`, `gate_decision`, …).
    #[arg(long)]
    kind: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct BudgetAddArgs {
    /// The goal id, or `latest`.
    id: String,
    /// Time to add: `30s`, `15m`, `8h`, `7d` or seconds.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    time: Option<String>,
    /// Tokens to add.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    tokens: Option<String>,
    /// USD to add (`2.50`).
    #[arg(long, value_name = "USD", allow_hyphen_values = true)]
    usd: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: GoalCommand) -> Result<Outcome> {
    let store = GoalStore::open_default()?;
    match cmd {
        GoalCommand::Run(a) => create(&store, a),
        GoalCommand::Execute(a) => execute(&store, a),
        GoalCommand::Propose(a) => propose(&store, a),
        GoalCommand::List(a) => list(&store, a.json),
        GoalCommand::Status(a) => status(&store, &a.id, a.json),
        GoalCommand::Show(a) => show(&store, &a.id, a.json),
        GoalCommand::Events(a) => events(&store, a),
        GoalCommand::VerifyLog(a) => verify_log(&store, a),
        GoalCommand::Replay(a) => super::proof::replay(&store, a),
        GoalCommand::Proof(a) => super::proof::proof(&store, a),
        GoalCommand::Report(a) => super::proof::report(&store, a),
        GoalCommand::Pause(a) => {
            change(&store, &a.id, a.json, Session::pause, Some(Request::Pause))
        }
        GoalCommand::Resume(a) => change(&store, &a.id, a.json, Session::resume, None),
        GoalCommand::Cancel(a) => change(
            &store,
            &a.id,
            a.json,
            Session::cancel,
            Some(Request::Cancel),
        ),
        GoalCommand::BudgetAdd(a) => budget_add(&store, a),
    }
}

fn parse_limits(time: Option<&str>, tokens: Option<&str>, usd: Option<&str>) -> Result<Limits> {
    Ok(Limits {
        time_secs: time.map(budget::parse_time).transpose()?,
        tokens: tokens.map(budget::parse_tokens).transpose()?,
        usd_micros: usd.map(budget::parse_usd).transpose()?,
    })
}

fn create(store: &GoalStore, a: RunArgs) -> Result<Outcome> {
    if a.goal.trim().is_empty() {
        return Err(with_help(
            "the goal is empty",
            "say what should be done: `omk goal run \"Add a login form\"`",
        ));
    }
    let limits = parse_limits(
        a.budget_time.as_deref(),
        a.budget_tokens.as_deref(),
        a.budget_usd.as_deref(),
    )?;
    if limits.time_secs == Some(0) {
        return Err(with_help(
            "a zero time budget admits no task",
            "give the goal some time: `--budget-time 1h`",
        ));
    }
    if a.max_agents == 0 {
        return Err(with_help(
            "`--max-agents` must be at least 1",
            "the default is 4",
        ));
    }
    let project_dir = a.project.canonicalize().map_err(|e| {
        with_help(
            format!("project `{}`: {e}", a.project.display()),
            "pass an existing directory",
        )
    })?;
    let agent = a.agent.spec()?;
    let repo = omk::worktree::repo_root(&project_dir);
    let (project_dir, base_commit) = match repo {
        Some(root) => {
            let head = omk::worktree::head_commit(&root).ok();
            (root, head)
        }
        None => (project_dir, None),
    };
    if agent.is_some() && base_commit.is_none() {
        return Err(with_help(
            format!(
                "`{}` is not a git repository with a commit",
                project_dir.display()
            ),
            "omk runs each task in a git worktree: `git init && git add -A && git commit -m init` first",
        ));
    }
    let mut roots = Vec::new();
    for r in &a.roots {
        let norm = paths::check(r).map_err(|v| {
            with_help(
                format!(
                    "`--root {r}` is not a project-relative directory: {}",
                    v.describe()
                ),
                "name a directory inside the project, like `src`",
            )
        })?;
        roots.push(norm);
    }
    let spec = NewGoal {
        text: a.goal,
        limits,
        max_agents: a.max_agents,
        project_dir,
        policy_roots: roots,
        agent,
        base_commit,
        merge_policy: a.merge_policy.into(),
    };
    let session = Session::create(store, spec, Utc::now())?;
    let g = &session.goal;
    if !a.json {
        outln!("created goal {}", g.id);
        outln!("  goal:    {}", g.normalized_goal);
        outln!("  budget:  {}", budget_line(g, &session.graph));
        outln!("  project: {}", g.project_dir.display());
        outln!("  state:   {}", session.dir().display());
    }
    if g.agent.is_none() {
        if a.json {
            outln!("{}", serde_json::to_string_pretty(g)?);
        } else {
            outln!("next: omk goal propose {} --plan PLAN.json", g.id);
        }
        return Ok(Outcome::Ok);
    }
    let id = g.id.clone();
    let runtime = runtime()?;
    let exec = executor(session, a.keep_failed, a.json)?;
    runtime.block_on(exec.plan())?;
    if !a.until_ready {
        if a.json {
            outln!("{}", serde_json::to_string_pretty(&store.load(&id)?)?);
        } else {
            outln!("next: omk goal execute {id}");
        }
        return Ok(Outcome::Ok);
    }
    let status = runtime.block_on(exec.run())?;
    drop(exec);
    finish_report(store, &id, status, a.json)
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// An executor for an open goal, with the project's gates and the goal's
/// agent.
pub(super) fn executor(
    session: Session,
    keep_failed: bool,
    quiet: bool,
) -> Result<std::sync::Arc<Executor>> {
    let observer: Box<dyn Observer> = if quiet {
        Box::new(Quiet)
    } else {
        Box::new(Printer::new())
    };
    Ok(Executor::for_goal(session, keep_failed, observer)?)
}

fn execute(store: &GoalStore, a: ExecuteArgs) -> Result<Outcome> {
    let id = store.resolve(&a.id)?;
    let session = Session::open(store, &id)?;
    let runtime = runtime()?;
    let exec = executor(session, a.keep_failed, a.json)?;
    let status = runtime.block_on(exec.run())?;
    drop(exec);
    finish_report(store, &id, status, a.json)
}

fn finish_report(store: &GoalStore, id: &str, status: GoalStatus, json: bool) -> Result<Outcome> {
    let (g, graph) = load(store, id)?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"goal": g, "graph": graph}))?
        );
    } else {
        let c = counts_json(&graph);
        outln!(
            "goal {} is {status}: {} tasks, {} done, {} failed{}",
            g.id,
            c["total"],
            c["done"],
            c["failed"],
            g.failure
                .as_deref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default()
        );
        if g.merge_policy == MergePolicy::Integrate && graph.tasks.iter().any(|t| t.merged) {
            outln!(
                "  merged work: branch {}",
                omk::worktree::integration_branch(&g.id)
            );
        }
        outln!("  state: {}", store.dir(&g.id).display());
    }
    Ok(match status {
        GoalStatus::Ready | GoalStatus::Paused => Outcome::Ok,
        _ => Outcome::Rejected,
    })
}

/// Prints what happens as it happens; a spinner with counts on a terminal.
struct Printer {
    bar: indicatif::ProgressBar,
    counts: std::sync::Mutex<[usize; 4]>,
}

impl Printer {
    fn new() -> Printer {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Printer {
            bar,
            counts: std::sync::Mutex::new([0; 4]),
        }
    }

    fn line(&self, s: String) {
        self.bar.suspend(|| outln!("{s}"));
    }
}

impl Observer for Printer {
    fn progress(&self, p: &Progress) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        // running, done, failed, rejected
        match p {
            Progress::Wave(ev) => {
                c[3] += ev.rejected_task_count;
                self.line(format!(
                    "wave `{}`: {}",
                    ev.run_key,
                    ev.worker_summary.as_deref().unwrap_or("")
                ));
                for r in &ev.rejected {
                    self.line(format!(
                        "  REJECT  {}  by `{}`: {} [{}]",
                        r.task_id, r.gate, r.reason, r.code
                    ));
                }
                for id in &ev.accepted {
                    self.line(format!("  ACCEPT  {id}"));
                }
            }
            Progress::Started { task, attempt } => {
                c[0] += 1;
                let again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                self.line(format!("start    {task}{again}"));
            }
            Progress::Refused {
                task,
                target,
                reason,
            } => {
                self.line(format!("REFUSED  {task}: `{target}`: {reason}"));
            }
            Progress::Done {
                task,
                commit,
                merged,
            } => {
                c[0] = c[0].saturating_sub(1);
                c[1] += 1;
                let commit = commit
                    .as_deref()
                    .map(|h| &h[..h.len().min(10)])
                    .unwrap_or("no changes");
                let merged = if *merged { ", merged" } else { "" };
                self.line(format!("done     {task}  ({commit}{merged})"));
            }
            Progress::Failed {
                task,
                reason,
                retry,
            } => {
                c[0] = c[0].saturating_sub(1);
                if !retry {
                    c[2] += 1;
                }
                let then = if *retry { " — will retry" } else { "" };
                self.line(format!("FAILED   {task}: {reason}{then}"));
            }
            Progress::Stopped { .. } => self.bar.finish_and_clear(),
        }
        self.bar.set_message(format!(
            "running {} · done {} · failed {} · rejected {}",
            c[0], c[1], c[2], c[3]
        ));
    }
}

fn propose(store: &GoalStore, a: ProposeArgs) -> Result<Outcome> {
    let plan: DispatchPlan = read_json(&a.plan, "dispatch plan")?;
    let id = store.resolve(&a.id)?;
    let mut session = Session::open_wait(store, &id, std::time::Duration::from_secs(a.wait))?;
    let gates = GateSet::for_project(&session.goal.project_dir)?;
    let evidence = wave::run_wave(&mut session, &gates, &plan, Utc::now())?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&evidence)?);
    } else {
        let again = if evidence.replayed {
            " (already judged; this is the record)"
        } else {
            ""
        };
        outln!(
            "wave `{}`: {}{again}",
            evidence.run_key,
            evidence.worker_summary.as_deref().unwrap_or("")
        );
        for p in &plan.proposals {
            if evidence.accepted.contains(&p.id) {
                outln!("ACCEPT  {}", p.id);
            }
        }
        for r in &evidence.rejected {
            outln!(
                "REJECT  {}  by `{}`: {} [{}]",
                r.task_id,
                r.gate,
                r.reason,
                r.code
            );
        }
        outln!("events: omk goal events {id}");
    }
    Ok(if evidence.rejected_task_count == 0 {
        Outcome::Ok
    } else {
        Outcome::Rejected
    })
}

fn list(store: &GoalStore, json: bool) -> Result<Outcome> {
    let mut goals = Vec::new();
    for id in store.ids()? {
        match store.load(&id) {
            Ok(g) => goals.push(g),
            Err(e) => eprintln!("warning: skipping goal `{id}`: {e}"),
        }
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&goals)?);
    } else if goals.is_empty() {
        outln!("no goals yet; create one with `omk goal run \"GOAL\"`");
    } else {
        for g in &goals {
            outln!(
                "{}  {:<17}  {:<10}  {}",
                g.id,
                g.status.as_str(),
                g.phase.as_str(),
                omk::text::clip(&g.normalized_goal, 60)
            );
        }
    }
    Ok(Outcome::Ok)
}

fn counts_json(graph: &TaskGraph) -> serde_json::Value {
    let c = graph.counts();
    let n = |s| c.get(&s).copied().unwrap_or(0);
    json!({
        "total": graph.tasks.len(),
        "pending": n(TaskStatus::Pending),
        "running": n(TaskStatus::Running),
        "done": n(TaskStatus::Done),
        "failed": n(TaskStatus::Failed),
        "cancelled": n(TaskStatus::Cancelled),
    })
}

fn budget_line(g: &Goal, graph: &TaskGraph) -> String {
    let committed = graph.committed_secs();
    let time = match g.limits.time_secs {
        Some(l) => format!(
            "time {} spent + {} committed of {}",
            format_time(g.spent.time_secs),
            format_time(committed),
            format_time(l)
        ),
        None => format!("time {} spent, unlimited", format_time(g.spent.time_secs)),
    };
    let tokens = match g.limits.tokens {
        Some(l) => format!("tokens {} of {l}", g.spent.tokens),
        None => "tokens unlimited".into(),
    };
    let usd = match g.limits.usd_micros {
        Some(l) => format!(
            "USD {} of {}",
            format_usd(g.spent.usd_micros),
            format_usd(l)
        ),
        None => "USD unlimited".into(),
    };
    format!("{time}; {tokens}; {usd}")
}

fn status(store: &GoalStore, id: &str, json: bool) -> Result<Outcome> {
    let (g, graph) = load(store, id)?;
    let committed = graph.committed_secs();
    if json {
        let remaining = g.remaining_time_secs(committed);
        let out = json!({
            "id": g.id,
            "goal": g.normalized_goal,
            "status": g.status,
            "phase": g.phase,
            "limits": g.limits,
            "spent": g.spent,
            "committed_time_secs": committed,
            "remaining_time_secs": remaining,
            "tasks": counts_json(&graph),
            "state_dir": store.dir(&g.id),
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Ok);
    }
    let c = counts_json(&graph);
    outln!("{}  {}  ({})", g.id, g.status, g.phase.as_str());
    outln!("  goal:   {}", g.normalized_goal);
    outln!("  budget: {}", budget_line(&g, &graph));
    outln!(
        "  tasks:  {} total: {} pending, {} running, {} done, {} failed",
        c["total"],
        c["pending"],
        c["running"],
        c["done"],
        c["failed"]
    );
    if let Some(f) = &g.failure {
        outln!("  failure: {f}");
    }
    Ok(Outcome::Ok)
}

fn show(store: &GoalStore, id: &str, json: bool) -> Result<Outcome> {
    let (g, graph) = load(store, id)?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"goal": g, "graph": graph}))?
        );
        return Ok(Outcome::Ok);
    }
    status(store, &g.id, false)?;
    outln!("  state:  {}", store.dir(&g.id).display());
    if graph.tasks.is_empty() {
        outln!("  no tasks yet");
    }
    for t in &graph.tasks {
        let deps = if t.dependencies.is_empty() {
            String::new()
        } else {
            format!("  after {}", t.dependencies.join(", "))
        };
        outln!(
            "  - {:<9} {}  {}  writes [{}]{deps}",
            t.status.as_str(),
            t.id,
            format_time(t.budget_secs),
            t.write_set.join(", ")
        );
    }
    Ok(Outcome::Ok)
}

fn events(store: &GoalStore, a: EventsArgs) -> Result<Outcome> {
    let id = store.resolve(&a.id)?;
    if let Some(kind) = a.kind.as_deref()
        && !omk::proof::events::KINDS.contains(&kind)
    {
        return Err(with_help(
            format!("`{kind}` is not a kind of event"),
            format!("the kinds are {}", omk::proof::events::KINDS.join(", ")),
        ));
    }
    let (all, unreadable) = log::read(&store.dir(&id))?;
    let shown: Vec<&Event> = all
        .iter()
        .filter(|e| a.kind.as_deref().is_none_or(|k| e.kind == k))
        .collect();
    if a.json {
        // JSON lines: one event a line, as the log holds them.
        for e in &shown {
            outln!("{}", serde_json::to_string(e)?);
        }
    } else {
        for e in &shown {
            outln!(
                "#{:<5} {}  {:<19} {}",
                e.id,
                e.ts.format("%Y-%m-%d %H:%M:%S%.3f"),
                e.kind,
                omk::proof::timeline::summarize(e)
            );
        }
    }
    if !unreadable.is_empty() {
        eprintln!(
            "warning: {} line(s) of the log could not be read (torn by a crash, or damaged): {:?}; \
             `omk goal verify-log {id}` tells which",
            unreadable.len(),
            unreadable
        );
    }
    Ok(Outcome::Ok)
}

fn verify_log(store: &GoalStore, a: VerifyLogArgs) -> Result<Outcome> {
    let id = store.resolve(&a.id)?;
    let trust = a.trust.trust()?;
    let goal = store.load(&id).ok();
    let v = anchors::verify_goal(&store.dir(&id), goal.as_ref(), &trust)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(if v.ok { Outcome::Ok } else { Outcome::Rejected });
    }
    if let Some(bad) = &v.first_bad {
        outln!("BROKEN  {}:{}: {}", v.path.display(), bad.line, bad.problem);
        outln!("{} events verified before it", v.events);
    }
    for p in &v.anchor_problems {
        outln!("BROKEN  {p}");
    }
    if v.ok {
        outln!("OK  {} events, chain intact, head {}", v.events, v.head);
        for t in &v.torn {
            outln!(
                "note: line {t} is a torn write left by a crash, recorded when omk resumed; the chain continues past it"
            );
        }
    }
    if v.first_bad.is_none() {
        outln!(
            "anchors: {} signed checkpoint(s) by {}; events 1–{} vouched for{}{}",
            v.checkpoints,
            if v.signers.is_empty() {
                "nobody".to_owned()
            } else {
                v.signers.join(", ")
            },
            v.anchored_to,
            if v.trailers > 0 {
                format!(", {} commit trailer(s) checked", v.trailers)
            } else {
                String::new()
            },
            if v.unanchored_events > 0 {
                format!(
                    "; the last {} not yet (appended since the last checkpoint)",
                    v.unanchored_events
                )
            } else {
                String::new()
            }
        );
    }
    Ok(if v.ok { Outcome::Ok } else { Outcome::Rejected })
}

fn change(
    store: &GoalStore,
    id: &str,
    json: bool,
    f: fn(&mut Session) -> std::result::Result<(), GoalError>,
    request: Option<Request>,
) -> Result<Outcome> {
    let id = store.resolve(id)?;
    let mut session = match (Session::open(store, &id), request) {
        (Ok(s), _) => s,
        (Err(GoalError::Store(StoreError::Locked { pid, .. })), Some(r)) => {
            // The goal is running: leave the request for the omk running it.
            store.request(&id, r)?;
            let who = pid.map_or("the omk running it".to_owned(), |p| {
                format!("the omk running it (pid {p})")
            });
            let what = if r == Request::Pause {
                "pause"
            } else {
                "cancel"
            };
            if json {
                outln!("{}", json!({"id": id, "requested": what, "by_pid": pid}));
            } else {
                outln!("{what} requested: {who} will {what} goal {id} between tasks");
            }
            return Ok(Outcome::Ok);
        }
        (Err(e), _) => return Err(e.into()),
    };
    f(&mut session)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&session.goal)?);
    } else {
        outln!("goal {} is {}", session.goal.id, session.goal.status);
    }
    Ok(Outcome::Ok)
}

fn budget_add(store: &GoalStore, a: BudgetAddArgs) -> Result<Outcome> {
    let add = parse_limits(a.time.as_deref(), a.tokens.as_deref(), a.usd.as_deref())?;
    let id = store.resolve(&a.id)?;
    let mut session = Session::open(store, &id)?;
    session.add_budget(add)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&session.goal)?);
    } else {
        outln!(
            "goal {}: {}",
            session.goal.id,
            budget_line(&session.goal, &session.graph)
        );
    }
    Ok(Outcome::Ok)
}

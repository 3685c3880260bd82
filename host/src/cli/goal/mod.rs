//! `omk goal …`: create goals, submit waves, and read their state and log.

use std::path::PathBuf;

use chrono::Utc;
use clap::{Args, Subcommand};
use serde_json::json;

mod printer;
mod run;
mod view;

use super::{Outcome, Result, load, read_json, with_help};
use omk::agents::AgentSpec;
use omk::gates::GateSet;
use omk::goal::budget::{self};
use omk::goal::{
    GoalError, GoalStatus, GoalStore, Limits, MergePolicy, NewGoal, Request, Session, StoreError,
};
use omk::wave::{self, DispatchPlan};
use omk_gate_sdk::paths;
pub(super) use run::{executor, runtime};
use view::{budget_line, counts_json, events, list, show, status, verify_log};

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
    /// Hand the tasks to `omk worker`s through this NATS JetStream server
    /// (`nats://HOST:4222`) instead of running them here.
    #[arg(long, value_name = "URL")]
    dispatch: Option<String>,
    /// Print nothing while agents plan and work, only the result.
    #[arg(long, short)]
    quiet: bool,
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
    /// Hand the tasks to `omk worker`s through this NATS JetStream server
    /// (`nats://HOST:4222`) instead of running them here; this omk stays
    /// the only writer of the goal's log, judges outcomes and merges.
    #[arg(long, value_name = "URL")]
    dispatch: Option<String>,
    /// Print nothing while it runs, only the summary at the end.
    #[arg(long, short)]
    quiet: bool,
    /// Wait up to SECS for another omk acting on the goal to finish.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    wait: u64,
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
        guarded: None,
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
    if g.base_commit.is_none() {
        // Proposals can still be judged; no task can run.
        eprintln!(
            "warning: `{}` is not a git repository with a commit: this goal's proposals can be judged, but no task can run until it is one (`git init && git add -A && git commit -m init`)",
            g.project_dir.display()
        );
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
    let exec = executor(
        &runtime,
        session,
        a.keep_failed,
        a.json || a.quiet,
        a.dispatch.as_deref(),
    )?;
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

fn execute(store: &GoalStore, a: ExecuteArgs) -> Result<Outcome> {
    let id = store.resolve(&a.id)?;
    let session = Session::open_wait(store, &id, std::time::Duration::from_secs(a.wait))?;
    let runtime = runtime()?;
    let exec = executor(
        &runtime,
        session,
        a.keep_failed,
        a.json || a.quiet,
        a.dispatch.as_deref(),
    )?;
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
        if g.merge_policy == MergePolicy::Integrate && graph.tasks().iter().any(|t| t.merged) {
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

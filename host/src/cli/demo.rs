//! `omk demo`: a goal on a throwaway project, end to end, in seconds.

use std::path::PathBuf;

use anyhow::Context;
use chrono::Utc;
use clap::Args;

use super::goal::{executor, runtime};
use super::{Outcome, Result};
use omk::agents::AgentSpec;
use omk::agents::process::{deadline_in, run_shell};
use omk::demo::{self, Account};
use omk::goal::budget::format_time;
use omk::goal::{GoalStatus, GoalStore, Limits, MergePolicy, NewGoal, Session};
use omk::proof::log;
use omk::worktree;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the throwaway project (default: a new temporary
    /// directory, kept for you to look at).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print the account as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: DemoArgs) -> Result<Outcome> {
    let root = match a.dir {
        Some(d) => {
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create `{}`", d.display()))?;
            d.canonicalize()?
        }
        None => tempfile::Builder::new()
            .prefix("omk-demo-")
            .tempdir()?
            .keep(),
    };
    let setup = demo::setup(&root).context("cannot create the demo project")?;
    let store = GoalStore::open_default()?;
    let spec = NewGoal {
        text: demo::GOAL.into(),
        limits: Limits {
            time_secs: Some(demo::TIME_BUDGET_SECS),
            ..Default::default()
        },
        max_agents: 3,
        project_dir: setup.project.clone(),
        policy_roots: demo::ROOTS.iter().map(|r| r.to_string()).collect(),
        agent: Some(AgentSpec::Scripted {
            script: setup.script.clone(),
        }),
        base_commit: Some(worktree::head_commit(&setup.project)?),
        merge_policy: MergePolicy::Integrate,
        guarded: None,
    };
    let session = Session::create(&store, spec, Utc::now())?;
    let id = session.goal.id.clone();
    if !a.json {
        outln!(
            "omk demo — a throwaway project: {}",
            setup.project.display()
        );
        outln!(
            "goal: {} (time budget {}, roots {}, std gates, scripted agent, 3 at once)\n",
            demo::GOAL,
            format_time(demo::TIME_BUDGET_SECS),
            demo::ROOTS.join(", ")
        );
    }
    let rt = runtime()?;
    let exec = executor(&rt, session, false, a.json, None)?;
    rt.block_on(exec.plan())?;
    let status = rt.block_on(exec.run())?;
    drop(exec);

    let (events, _) = log::read(&store.dir(&id))?;
    let account = Account::from_events(&events);
    let tests = rt.block_on(integration_tests(&setup.project, &id, &root));
    if a.json {
        let out = serde_json::json!({
            "goal_id": id, "status": status, "project": setup.project,
            "state": store.dir(&id), "account": account, "integration_tests_pass": tests.as_ref().ok(),
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        outln!("\nwhat happened (read back from the event log):");
        for [task, gate, code, reason] in &account.rejected {
            outln!("  rejected  {task} by `{gate}` [{code}]: {reason}");
        }
        for [task, target, reason] in &account.refused {
            outln!("  refused   {task} live, writing `{target}`: {reason}");
        }
        for [task, reason] in &account.retried {
            outln!("  retried   {task}: {reason}");
        }
        for [task, reason] in &account.failed {
            outln!("  failed    {task}: {reason}");
        }
        outln!(
            "  merged    {} into {}",
            account.merged.join(", "),
            worktree::integration_branch(&id)
        );
        match &tests {
            Ok(true) => outln!("  the integration branch passes `{}`", demo::TEST_COMMAND),
            Ok(false) => outln!("  the integration branch FAILS `{}`", demo::TEST_COMMAND),
            Err(e) => outln!("  could not run the tests on the integration branch: {e}"),
        }
        outln!("\ngoal {id} is {status}");
        outln!("  state:   {}", store.dir(&id).display());
        outln!("  look:    omk goal events {id}    omk goal verify-log {id}");
        outln!(
            "  project: git -C {} log --oneline --graph --all",
            setup.project.display()
        );
    }
    Ok(if status == GoalStatus::Ready && tests.unwrap_or(false) {
        Outcome::Ok
    } else {
        Outcome::Rejected
    })
}

/// Runs the project's tests on the integration branch, in a worktree of
/// its own.
async fn integration_tests(
    project: &std::path::Path,
    id: &str,
    root: &std::path::Path,
) -> anyhow::Result<bool> {
    let branch = worktree::integration_branch(id);
    let dir = root.join("integration-check");
    worktree::create_detached(project, &dir, &branch)?;
    let f = run_shell(
        demo::TEST_COMMAND,
        &dir,
        &[],
        // The demo's own check of what it merged, not a task's.
        &omk::sandbox::Confinement::none(),
        None,
        deadline_in(60),
        &|_| {},
        &mut |_| {},
    )
    .await;
    worktree::remove(project, &dir)?;
    Ok(f.success())
}

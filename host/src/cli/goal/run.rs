//! What `goal run` and `goal execute` run on: the async runtime, and an
//! executor for an open goal (its tasks run here, or handed to workers).

use anyhow::Context;

use super::super::Result;
use super::printer::Printer;
use omk::goal::Session;
use omk::wave::execute::{Executor, Observer, Quiet};

pub(in crate::cli) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// An executor for an open goal, with the project's gates and the goal's
/// agent; its tasks handed to the workers of `dispatch` when given.
pub(in crate::cli) fn executor(
    runtime: &tokio::runtime::Runtime,
    session: Session,
    keep_failed: bool,
    quiet: bool,
    dispatch: Option<&str>,
) -> Result<std::sync::Arc<Executor>> {
    let observer: Box<dyn Observer> = if quiet {
        Box::new(Quiet)
    } else {
        Box::new(Printer::new())
    };
    let dispatcher = match dispatch {
        None => None,
        Some(url) => {
            let g = &session.goal;
            let base = g.base_commit.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "goal `{}` has no base commit: nothing to hand to workers",
                    g.id
                )
            })?;
            let config = omk::gates::GatesConfig::for_project(&g.project_dir)?;
            let d = runtime.block_on(omk::dispatch::Dispatcher::start(
                url,
                &omk::dispatch::hub::Auth::from_env(),
                &g.id,
                &config,
                &g.project_dir,
                &base,
            ))?;
            if !quiet {
                eprintln!("dispatching to {}", d.hub.describe());
            }
            Some(d)
        }
    };
    Ok(Executor::for_goal_dispatching(
        session,
        keep_failed,
        observer,
        dispatcher,
    )?)
}

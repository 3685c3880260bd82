//! `omk demo`: the whole product in seconds, on a throwaway project.
//!
//! [`setup`] writes a tiny shell calculator with a test command
//! (`sh tests/run.sh`) into a fresh git repository, and the scripted
//! agent's script beside it. The script proposes seven tasks: one outside
//! the policy roots, one over the time budget and one without acceptance
//! criteria (all three rejected by the std gates); one that tries to write
//! outside its write set (refused live); one that fails its `run:` check
//! once and passes on retry; the rest merge. [`Account`] reads what happened
//! back from the event log — the proof, not the scheduler's memory.

use std::path::{Path, PathBuf};

use crate::proof::Event;
use crate::proof::events::Body;
use serde::Serialize;

/// The scripted agent's script.
pub const SCRIPT: &str = include_str!("script.json");

/// The throwaway project's files.
const FILES: [(&str, &str); 4] = [
    ("README.md", include_str!("project/README.md")),
    ("src/add.sh", include_str!("project/src/add.sh")),
    (
        "tests/test_add.sh",
        include_str!("project/tests/test_add.sh"),
    ),
    ("tests/run.sh", include_str!("project/tests/run.sh")),
];

/// The goal the demo runs.
pub const GOAL: &str = "Grow the calculator: multiplication, subtraction, division and usage docs";
/// The directories its tasks may touch.
pub const ROOTS: [&str; 3] = ["src", "tests", "docs"];
/// Its time budget, in seconds.
pub const TIME_BUDGET_SECS: u64 = 600;
/// The project's test command.
pub const TEST_COMMAND: &str = "sh tests/run.sh";

/// Where the demo put things.
#[derive(Debug, Clone)]
pub struct Setup {
    pub project: PathBuf,
    pub script: PathBuf,
}

/// Creates the project (a git repository with one commit) and the script
/// under `root`.
pub fn setup(root: &Path) -> anyhow::Result<Setup> {
    let project = root.join("calc");
    for (rel, text) in FILES {
        let path = project.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
    }
    crate::worktree::init_with_commit(&project, "calc: add, and a test runner")?;
    let script = root.join("demo-script.json");
    std::fs::write(&script, SCRIPT)?;
    Ok(Setup { project, script })
}

/// What happened, read back from the event log.
#[derive(Debug, Default, Serialize)]
pub struct Account {
    /// Proposals rejected before running: task, gate, code, reason.
    pub rejected: Vec<[String; 4]>,
    /// Actions refused while an agent worked: task, target, reason.
    pub refused: Vec<[String; 3]>,
    /// Attempts that failed and were retried: task, reason.
    pub retried: Vec<[String; 2]>,
    /// Tasks that failed for good: task, reason.
    pub failed: Vec<[String; 2]>,
    /// Tasks merged into the integration branch.
    pub merged: Vec<String>,
}

impl Account {
    pub fn from_events(events: &[Event]) -> Account {
        let mut a = Account::default();
        for e in events {
            match Body::of(e) {
                Body::TaskRejected(t) => {
                    let t = *t;
                    a.rejected.push([t.task_id, t.gate, t.code, t.reason])
                }
                Body::AgentAction(x) if !x.allowed => {
                    let x = *x;
                    a.refused
                        .push([x.task_id, x.action.target, x.reason.unwrap_or_default()])
                }
                Body::TaskFailed(f) if f.will_retry => a.retried.push([f.task_id, f.reason]),
                Body::TaskFailed(f) => a.failed.push([f.task_id, f.reason]),
                Body::TaskMerged(m) => a.merged.push(m.task_id),
                _ => {}
            }
        }
        a
    }
}

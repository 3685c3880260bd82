//! omk's own checks of a proposal, before any gate: recorded under the
//! gate name [`HOST_GATE`] with codes `omk.*` (listed in the wave's docs).

use std::collections::HashMap;

use omk_gate_sdk::TaskProposal;

use super::relevant::Accepted;
use super::{DispatchPlan, HOST_GATE, RejectedTask};
use crate::goal::Session;
use crate::graph::TaskStatus;
use crate::worktree;

/// The first of omk's checks `p` fails, as a rejection; `first_time` is
/// false when its id came earlier in the plan, `names` maps each task's
/// collision key to its id.
pub(super) fn host_check(
    session: &Session,
    plan: &DispatchPlan,
    p: &TaskProposal,
    first_time: bool,
    accepted_in_wave: &Accepted,
    names: &HashMap<String, String>,
) -> Option<RejectedTask> {
    let reject = |code: &str, reason: String| {
        Some(RejectedTask {
            task_id: p.id.clone(),
            gate: HOST_GATE.into(),
            code: code.into(),
            reason,
        })
    };
    if p.id.trim().is_empty() || p.id.len() > 200 || p.id.chars().any(char::is_control) {
        return reject(
            "omk.bad-id",
            format!(
                "task id `{}` is not usable: use 1 to 200 printable characters",
                p.id.escape_debug()
            ),
        );
    }
    if !first_time {
        return reject(
            "omk.duplicate-id",
            format!(
                "task id `{}` appears more than once in plan `{}`",
                p.id, plan.run_key
            ),
        );
    }
    let key = worktree::collision_key(&p.id);
    if worktree::RESERVED_NAMES.contains(&key.as_str()) {
        return reject(
            "omk.id-collision",
            format!(
                "task id `{}` would take the name `{key}`, which omk keeps for its own branches and checkouts; give the proposal another id",
                p.id
            ),
        );
    }
    if let Some(other) = names.get(&key).filter(|other| **other != p.id) {
        return reject(
            "omk.id-collision",
            format!(
                "task id `{}` would share the branch and worktree name `{key}` with task `{other}`; give the proposal an id that differs in more than case and punctuation",
                p.id
            ),
        );
    }
    // A task this very wave admitted before a crash is judged again.
    if let Some(existing) = session
        .graph
        .get(&p.id)
        .filter(|t| t.run_key != plan.run_key)
    {
        if !plan.allow_existing_task_ids {
            return reject(
                "omk.task-exists",
                format!(
                    "task `{}` already exists in the goal ({}); give the proposal a new id",
                    p.id,
                    existing.status.as_str()
                ),
            );
        }
        if matches!(existing.status, TaskStatus::Running | TaskStatus::Done) {
            return reject(
                "omk.task-exists",
                format!(
                    "task `{}` is {} and cannot be re-planned",
                    p.id,
                    existing.status.as_str()
                ),
            );
        }
    }
    for dep in &p.dependencies {
        if dep == &p.id {
            return reject(
                "omk.self-dependency",
                format!("task `{}` depends on itself", p.id),
            );
        }
        let in_wave = accepted_in_wave.contains(dep);
        let in_graph = session.graph.get(dep).is_some_and(|t| {
            matches!(
                t.status,
                TaskStatus::Done | TaskStatus::Pending | TaskStatus::Running
            )
        });
        if !in_wave && !in_graph {
            let why = match session.graph.get(dep) {
                Some(t) => format!("it is {}", t.status.as_str()),
                None if plan.proposals.iter().any(|q| &q.id == dep) => {
                    "it was not accepted earlier in this wave".to_owned()
                }
                None => "there is no such task".to_owned(),
            };
            return reject(
                "omk.unmet-dependency",
                format!(
                    "task `{}` depends on `{dep}`, which is neither done nor accepted: {why}",
                    p.id
                ),
            );
        }
    }
    None
}

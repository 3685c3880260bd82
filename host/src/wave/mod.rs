//! Waves: a dispatch plan of proposed tasks, judged one by one by omk's own
//! checks and then by the project's gates.
//!
//! For each proposal, in order, the log gets `task_proposed`, one
//! `gate_decision` per gate, then `task_accepted` (with a budget snapshot)
//! or `task_rejected` (with the deciding gate, code and reason). Accepted
//! tasks join the graph as pending, and count against the proposals after
//! them: their time is committed, their paths are in `accepted_in_wave`.
//!
//! Before the gates, omk itself rejects (gate `omk`): a duplicate id in
//! the plan (`omk.duplicate-id`), an id already in the graph unless the plan
//! allows it (`omk.task-exists`), an id whose branch and worktree name
//! would be another task's or omk's own once made safe for git and the file
//! system, without regard to case (`a/b` and `A-b`; `integration`:
//! `omk.id-collision`), a task that depends on itself
//! (`omk.self-dependency`), and a dependency that is neither done, nor
//! admitted, nor accepted earlier in the wave (`omk.unmet-dependency`).
//!
//! Waves are idempotent per `run_key`: a plan submitted again returns the
//! recorded evidence without judging anything. A wave cut short by a crash
//! resumes when the same plan is submitted again: decisions already in the
//! log are reused, the rest are judged, nothing is judged twice.

pub mod execute;
mod host_check;
pub mod relevant;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use omk_gate_sdk::{Budget, GoalContext, TaskProposal};

use sha2::{Digest, Sha256};

use self::host_check::host_check;
use self::relevant::Accepted;
use crate::gates::{GateSet, Verdict};
use crate::goal::{GoalError, GoalPhase, GoalStatus, Session};
use crate::graph::Task;
use crate::proof::events::{self, About, Body};
use crate::proof::inputs::Subject;
use crate::proof::log;
use crate::worktree;

/// The gate name omk's own checks are recorded under.
pub const HOST_GATE: &str = "omk";

/// Longest `run_key` accepted.
const MAX_RUN_KEY: usize = 200;

pub use omk_core::plan::{DispatchPlan, RejectedTask, WaveEvidence, WaveKind, WaveSummary};

/// Judges `plan` as a wave of the open goal, with `gates`, at `now`.
pub fn run_wave(
    session: &mut Session,
    gates: &GateSet,
    plan: &DispatchPlan,
    now: DateTime<Utc>,
) -> Result<WaveEvidence, GoalError> {
    check_plan(session, plan)?;
    let plan_sha256 = hex::encode(Sha256::digest(serde_json::to_vec(plan).unwrap_or_default()));
    session.log.flush()?;
    let prior = Prior::read(session, &plan.run_key, &plan_sha256)?;
    if let Some(mut evidence) = prior.completed {
        evidence.replayed = true;
        return Ok(evidence);
    }

    let now_ms = match prior.now_ms {
        Some(ms) => ms,
        None => {
            let now_ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
            session.log.record(
                events::OMK,
                &events::WaveStarted {
                    run_key: plan.run_key.clone(),
                    kind: plan.kind,
                    plan_sha256: Some(plan_sha256.clone()),
                    now_ms,
                    proposals: plan.proposals.len(),
                },
            )?;
            now_ms
        }
    };

    // Frozen for the wave: the graph's ids as the wave began, and the time
    // committed then; accepted tasks add to `committed` as they come.
    let mut wave = Wave {
        plan,
        now_ms,
        existing: session
            .graph
            .tasks()
            .iter()
            .filter(|t| t.run_key != plan.run_key)
            .map(|t| t.id.clone())
            .collect(),
        committed: session
            .graph
            .tasks()
            .iter()
            .filter(|t| t.status.commits_budget() && t.run_key != plan.run_key)
            .fold(0u64, |acc, t| acc.saturating_add(t.budget_secs)),
        accepted: Accepted::default(),
        names: session
            .graph
            .tasks()
            .iter()
            .map(|t| (worktree::collision_key(&t.id), t.id.clone()))
            .collect(),
    };
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    let mut seen = HashSet::new();
    for (index, p) in plan.proposals.iter().enumerate() {
        let first_time = seen.insert(p.id.as_str());
        let outcome = match prior.decided.get(&index) {
            Some(done) => done.clone(),
            None => {
                let outcome = wave.judge(session, gates, index, p, first_time)?;
                wave.record(session, index, p, &outcome)?;
                outcome
            }
        };
        match outcome {
            Decided::Accepted => {
                wave.committed = wave
                    .committed
                    .saturating_add(p.budget_secs)
                    .saturating_sub(wave.replanned_budget(session, p));
                admit(session, p, &plan.run_key, now);
                wave.accepted.push(p.as_accepted());
                wave.names
                    .insert(worktree::collision_key(&p.id), p.id.clone());
                accepted.push(p.id.clone());
            }
            Decided::Rejected(r) => rejected.push(r),
        }
    }

    if !accepted.is_empty() && session.goal.phase == GoalPhase::Planning {
        session.goal.phase = GoalPhase::Execution;
    }
    // The decisions are durable before the graph says what they decided.
    session.sync()?;
    session.save_graph(now)?;
    session.save_goal(now)?;

    let evidence = evidence(plan, accepted, rejected);
    session.log.record(
        events::OMK,
        &events::WaveCompleted {
            run_key: plan.run_key.clone(),
            plan_sha256: Some(plan_sha256),
            evidence: evidence.clone(),
        },
    )?;
    session.checkpoint()?;
    Ok(evidence)
}

/// A wave being judged.
struct Wave<'a> {
    plan: &'a DispatchPlan,
    now_ms: u64,
    /// The graph's task ids when the wave began (shared by every
    /// proposal's context).
    existing: omk_gate_sdk::Lazy<Vec<String>>,
    /// Seconds committed, including tasks accepted so far in the wave.
    committed: u64,
    accepted: Accepted,
    /// The graph's tasks by [`worktree::collision_key`], with those
    /// accepted so far in the wave.
    names: HashMap<String, String>,
}

impl Wave<'_> {
    /// The budget of the task a proposal re-plans (whose reservation it
    /// replaces), if it re-plans one.
    fn replanned_budget(&self, session: &Session, p: &TaskProposal) -> u64 {
        match session.graph.get(&p.id) {
            Some(t) if t.run_key != self.plan.run_key && t.status.commits_budget() => t.budget_secs,
            _ => 0,
        }
    }

    /// What the gates see for proposal `p`.
    fn context(&self, session: &Session, p: &TaskProposal) -> GoalContext {
        let committed = self
            .committed
            .saturating_sub(self.replanned_budget(session, p));
        let mut ctx = context_with(
            session,
            self.accepted.relevant_to(p),
            committed,
            self.now_ms,
        );
        ctx.existing_task_ids = self.existing.clone();
        ctx
    }

    /// omk's own checks, then the gates.
    fn judge(
        &self,
        session: &mut Session,
        gates: &GateSet,
        index: usize,
        p: &TaskProposal,
        first_time: bool,
    ) -> Result<Decided, GoalError> {
        let plan = self.plan;
        session.log.record(
            events::OMK,
            &events::TaskProposed {
                index: Some(index),
                task_id: p.id.clone(),
                run_key: plan.run_key.clone(),
                proposal: p.clone(),
            },
        )?;
        if let Some(r) = host_check(session, plan, p, first_time, &self.accepted, &self.names) {
            return Ok(Decided::Rejected(r));
        }
        let ctx = self.context(session, p);
        let input = session.inputs.record(
            &ctx,
            Some(&plan.run_key),
            Subject::Proposal {
                proposal: p.clone(),
            },
        )?;
        let verdict = gates.judge_proposal(&ctx, p);
        record_verdict(
            session,
            &verdict,
            &input,
            About {
                task_id: p.id.clone(),
                run_key: Some(plan.run_key.clone()),
                index: Some(index),
                ..About::default()
            },
        )?;
        Ok(decided(&verdict, &p.id))
    }

    fn record(
        &self,
        session: &mut Session,
        index: usize,
        p: &TaskProposal,
        outcome: &Decided,
    ) -> Result<(), GoalError> {
        let run_key = &self.plan.run_key;
        match outcome {
            Decided::Accepted => {
                let g = &session.goal;
                let before = self
                    .committed
                    .saturating_sub(self.replanned_budget(session, p));
                let after = before.saturating_add(p.budget_secs);
                let budget_snapshot = events::BudgetSnapshot {
                    task_budget_secs: p.budget_secs,
                    goal_time_budget_secs: g.limits.time_secs,
                    time_spent_secs: g.spent.time_secs,
                    committed_before_secs: before,
                    committed_after_secs: after,
                    remaining_secs: g.remaining_time_secs(after),
                };
                session.log.record(
                    events::OMK,
                    &events::TaskAccepted {
                        index: Some(index),
                        task_id: p.id.clone(),
                        run_key: run_key.clone(),
                        budget_snapshot,
                    },
                )?;
            }
            Decided::Rejected(r) => {
                session.log.record(
                    events::OMK,
                    &events::TaskRejected {
                        index: Some(index),
                        task_id: p.id.clone(),
                        run_key: run_key.clone(),
                        reason: r.reason.clone(),
                        code: r.code.clone(),
                        gate: r.gate.clone(),
                    },
                )?;
            }
        }
        Ok(())
    }
}

/// A proposal's fate.
#[derive(Debug, Clone)]
enum Decided {
    Accepted,
    Rejected(RejectedTask),
}

/// What the log already holds of this run key.
#[derive(Default)]
struct Prior {
    completed: Option<WaveEvidence>,
    now_ms: Option<u64>,
    decided: HashMap<usize, Decided>,
}

impl Prior {
    fn read(session: &Session, run_key: &str, plan_sha256: &str) -> Result<Prior, GoalError> {
        let mut prior = Prior::default();
        let same_plan = |recorded: Option<&str>| {
            if recorded == Some(plan_sha256) {
                Ok(())
            } else {
                Err(GoalError::state(
                    format!("run key `{run_key}` was already used for a different plan"),
                    "give this plan a new `run_key`; a run key names one plan for good",
                ))
            }
        };
        // One event at a time: a long goal's log is never held.
        let mut failed = None;
        log::each_event(session.dir(), |e| {
            if failed.is_some() {
                return;
            }
            let mut take = || -> Result<(), GoalError> {
                match Body::of(&e) {
                    Body::WaveStarted(w) if w.run_key == run_key => {
                        same_plan(w.plan_sha256.as_deref())?;
                        prior.now_ms = Some(w.now_ms);
                    }
                    Body::WaveCompleted(w) if w.run_key == run_key => {
                        same_plan(w.plan_sha256.as_deref())?;
                        prior.completed = Some(w.evidence.clone());
                    }
                    Body::TaskAccepted(t) if t.run_key == run_key => {
                        if let Some(index) = t.index {
                            prior.decided.insert(index, Decided::Accepted);
                        }
                    }
                    Body::TaskRejected(t) if t.run_key == run_key => {
                        if let Some(index) = t.index {
                            let t = *t;
                            let rejected = RejectedTask {
                                task_id: t.task_id,
                                gate: t.gate,
                                code: t.code,
                                reason: t.reason,
                            };
                            prior.decided.insert(index, Decided::Rejected(rejected));
                        }
                    }
                    _ => {}
                }
                Ok(())
            };
            if let Err(err) = take() {
                failed = Some(err);
            }
        })?;
        if let Some(err) = failed {
            return Err(err);
        }
        Ok(prior)
    }
}

fn check_plan(session: &Session, plan: &DispatchPlan) -> Result<(), GoalError> {
    let key = &plan.run_key;
    if key.trim().is_empty() || key.len() > MAX_RUN_KEY || key.chars().any(char::is_control) {
        return Err(GoalError::state(
            format!(
                "the plan's `run_key` `{}` is not usable",
                key.escape_debug()
            ),
            format!("use 1 to {MAX_RUN_KEY} printable characters, unique per plan (`wave-1`)"),
        ));
    }
    if plan.proposals.is_empty() {
        return Err(GoalError::state(
            format!("plan `{key}` has no proposals"),
            "a wave needs at least one proposed task",
        ));
    }
    let id = &session.goal.id;
    match session.goal.status {
        GoalStatus::Paused => Err(GoalError::state(
            format!("goal `{id}` is paused"),
            format!("resume it first: `omk goal resume {id}`"),
        )),
        s if s.is_terminal() => Err(GoalError::state(
            format!("goal `{id}` is {s}: it takes no more tasks"),
            "start a new goal with `omk goal run \"GOAL\"`",
        )),
        _ => Ok(()),
    }
}

/// Logs one `gate_decision` per gate of `verdict`, with the sha256 of the
/// recorded input and what it was about.
pub fn record_verdict(
    session: &mut Session,
    verdict: &Verdict,
    input_sha256: &str,
    about: About,
) -> Result<(), GoalError> {
    for d in &verdict.decisions {
        session.log.record(
            &events::gate_actor(&d.gate),
            &events::GateDecision {
                decision: d.clone(),
                input_sha256: Some(input_sha256.to_owned()),
                about: about.clone(),
            },
        )?;
    }
    Ok(())
}

fn decided(verdict: &Verdict, task_id: &str) -> Decided {
    match verdict.rejection() {
        None => Decided::Accepted,
        Some(b) => Decided::Rejected(RejectedTask {
            task_id: task_id.to_owned(),
            gate: b.gate,
            code: b.code,
            reason: b.reason,
        }),
    }
}

/// Judges `proposals` in order as one wave outside any goal (`omk gate
/// check`): each sees the tasks accepted before it that it could conflict
/// with — first those `ctx.accepted_in_wave` lists — and the time they
/// commit, as in a goal's wave. omk's own checks need a goal and are not
/// made.
pub fn judge_detached(
    gates: &GateSet,
    mut ctx: GoalContext,
    proposals: &[TaskProposal],
) -> Vec<Verdict> {
    let mut accepted = Accepted::default();
    for t in std::mem::take(&mut ctx.accepted_in_wave).iter() {
        accepted.push(t.clone());
    }
    proposals
        .iter()
        .map(|p| {
            ctx.accepted_in_wave = accepted.relevant_to(p).into();
            let verdict = gates.judge_proposal(&ctx, p);
            if verdict.accepted {
                accepted.push(p.as_accepted());
                ctx.budget.time_committed_secs =
                    ctx.budget.time_committed_secs.saturating_add(p.budget_secs);
            }
            verdict
        })
        .collect()
}

/// What the gates see of the goal when judging task `task_id` outside a
/// wave (actions and outcomes): its own reservation is left out of the
/// committed time.
pub fn goal_context(session: &Session, task_id: &str, now_ms: u64) -> GoalContext {
    let mut ctx = context_with(
        session,
        Vec::new(),
        session.graph.committed_secs_except(task_id),
        now_ms,
    );
    ctx.existing_task_ids = session.graph.tasks().iter().map(|t| t.id.clone()).collect();
    ctx
}

fn context_with(
    session: &Session,
    accepted_in_wave: Vec<omk_gate_sdk::AcceptedTask>,
    committed: u64,
    now_ms: u64,
) -> GoalContext {
    let g = &session.goal;
    GoalContext {
        goal_id: g.id.clone(),
        goal_text: g.normalized_goal.clone().into(),
        phase: g.phase.as_str().into(),
        now_ms,
        budget: Budget {
            time_limit_secs: g.limits.time_secs,
            time_spent_secs: g.spent.time_secs,
            time_committed_secs: committed,
            token_limit: g.limits.tokens,
            tokens_spent: g.spent.tokens,
            usd_limit_micros: g.limits.usd_micros,
            usd_spent_micros: g.spent.usd_micros,
        },
        policy_roots: g.policy_roots.clone(),
        accepted_in_wave: accepted_in_wave.into(),
        existing_task_ids: Default::default(),
    }
}

/// Puts an accepted proposal in the graph as a pending task (replacing a
/// re-planned one).
fn admit(session: &mut Session, p: &TaskProposal, run_key: &str, now: DateTime<Utc>) {
    let task = Task::admitted(p, run_key, now);
    match session.graph.get_mut(&p.id) {
        Some(existing) if existing.run_key == run_key => {}
        Some(existing) => existing.replan(task),
        None => session.graph.push(task),
    }
}

fn evidence(
    plan: &DispatchPlan,
    accepted: Vec<String>,
    rejected: Vec<RejectedTask>,
) -> WaveEvidence {
    let total = plan.proposals.len();
    let worker_summary = if accepted.is_empty() {
        let mut by_gate: Vec<(String, usize)> = Vec::new();
        for r in &rejected {
            match by_gate.iter_mut().find(|(g, _)| g == &r.gate) {
                Some((_, n)) => *n += 1,
                None => by_gate.push((r.gate.clone(), 1)),
            }
        }
        let by: Vec<String> = by_gate.iter().map(|(g, n)| format!("{g}: {n}")).collect();
        format!(
            "rejected all proposed agent tasks ({total}; by {})",
            by.join(", ")
        )
    } else {
        format!(
            "accepted {} of {total} proposed agent tasks; rejected {}",
            accepted.len(),
            rejected.len()
        )
    };
    WaveEvidence {
        run_key: plan.run_key.clone(),
        kind: plan.kind,
        accepted_task_count: accepted.len(),
        rejected_task_count: rejected.len(),
        summary: WaveSummary {
            completed: 0,
            failed: rejected.len(),
            total,
        },
        accepted,
        rejected,
        worker_summary: Some(worker_summary),
        replayed: false,
    }
}

#[cfg(test)]
pub(crate) mod tests;

//! `proof.json`: what a goal achieved, and the evidence for it.
//!
//! Built from the goal, its task graph and its event log alone, and written
//! (atomically) when the goal reaches a terminal status and on demand. A
//! goal is `ready` only when it has tasks, every task is done, and every
//! done task's last outcome was accepted by every gate that judged it;
//! otherwise the proof says why not. Known gaps — an agent without live
//! gating, a damaged log, gates in audit mode — are listed, never hidden.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Event;
use super::anchors::Trust;
use super::events::{self, Body};
use super::log::{self, Verification};
use crate::gates::Mode;
use crate::gates::{sha256_hex, std_bundle};
use crate::goal::{Goal, GoalStatus};
use crate::graph::{TaskGraph, TaskStatus};
use crate::sandbox::Profile;
use omk_core::sandbox::SandboxMode;
use omk_gate_sdk::{Decision, Stage};

/// The proof file in a goal's directory.
pub const PROOF_FILE: &str = "proof.json";
/// The version of `proof.json`'s layout.
pub const PROOF_SCHEMA: u32 = 1;

/// Whether the goal is ready, and why (not).
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// The decisive evidence when ready, the blocking reasons when not.
    pub why: Vec<String>,
}

/// Task counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskSummary {
    pub total: usize,
    pub done: usize,
    pub failed: usize,
    pub pending: usize,
    pub running: usize,
    pub cancelled: usize,
    /// Proposals rejected before they became tasks.
    pub rejected_proposals: usize,
}

/// A gate that took part.
#[derive(Debug, Clone, Serialize)]
pub struct GateUse {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// The bundle it came from (`std`, or a project bundle's name), else
    /// `project` for a component file.
    pub bundle: String,
    /// The bundle's version and digest (the sha256 of its signed statement).
    pub bundle_version: Option<String>,
    pub bundle_digest: Option<String>,
    /// The bundle's trusted signers (key ids).
    pub signer: Option<String>,
    pub decisions: usize,
    /// Rejections by code (`accept` counts acceptances).
    pub by_code: BTreeMap<String, usize>,
}

/// A task's work.
#[derive(Debug, Clone, Serialize)]
pub struct TaskProof {
    pub id: String,
    pub status: TaskStatus,
    pub attempts: u32,
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub merged: bool,
    pub changed_files: Vec<String>,
    pub failure: Option<String>,
    /// The profile its last attempt was confined to (`task_started`), or
    /// `None` for a task that never started or an omk from before
    /// confinement.
    pub sandbox: Option<Profile>,
}

/// The end of a profile's line: what it hides and which keys it brokers.
fn extra(p: &Profile) -> String {
    let mut out = String::new();
    if let Some(port) = p.tcp_serve {
        out.push_str(&format!("; serves itself on TCP port {port}"));
    }
    if !p.hidden.is_empty() {
        out.push_str(&format!(
            "; hidden {}{}",
            p.hidden.join(", "),
            if p.hidden_enforced {
                ""
            } else {
                " (judged only)"
            }
        ));
    }
    let brokered = p.secrets.iter().filter(|s| s.brokered).count();
    if !p.secrets.is_empty() {
        out.push_str(&format!(
            "; credentials {brokered} of {} brokered",
            p.secrets.len()
        ));
    }
    out
}

/// What the profiles of the tasks that ran say the kernel did not hold:
/// TCP by port only, `deny_read` only judged, a credential inside.
fn confinement_gaps(sandboxes: &HashMap<String, Profile>) -> Vec<String> {
    let mut tasks: Vec<(&String, &Profile)> = sandboxes.iter().collect();
    tasks.sort_by(|a, b| a.0.cmp(b.0));
    let mut by_port: Vec<String> = Vec::new();
    let mut why_ports = None;
    let mut unhidden: Vec<String> = Vec::new();
    let mut inside: Vec<String> = Vec::new();
    for (task, p) in tasks {
        if p.mode != SandboxMode::Enforce {
            continue;
        }
        if let Some(why) = &p.network_fallback {
            by_port.push(format!("`{task}`"));
            why_ports.get_or_insert_with(|| why.clone());
        }
        if !p.hidden.is_empty() && !p.hidden_enforced {
            unhidden.push(format!("`{task}`"));
        }
        for s in p.secrets.iter().filter(|s| !s.brokered) {
            inside.push(format!("task `{task}`: the credential in {}", s.source));
        }
    }
    let mut out = Vec::new();
    if !by_port.is_empty() {
        out.push(format!(
            "task(s) {} could reach any address on their allowed TCP ports: no network namespace could be made ({})",
            by_port.join(", "),
            why_ports.unwrap_or_default()
        ));
    }
    if !unhidden.is_empty() {
        out.push(format!(
            "task(s) {}: `deny_read` was judged but not hidden by the kernel (no mount namespace here), so a command could read it",
            unhidden.join(", ")
        ));
    }
    inside.dedup();
    for i in inside {
        out.push(format!(
            "{i} was inside the sandbox: the broker cannot reach its endpoint from here (a loopback endpoint needs a network namespace; one elsewhere, the egress proxy)"
        ));
    }
    out
}

impl TaskProof {
    /// The profile in one line, for people.
    pub fn sandbox_line(&self) -> String {
        let Some(p) = &self.sandbox else {
            return "-".into();
        };
        if p.mode != SandboxMode::Enforce {
            return "unconfined".into();
        }
        let ports: Vec<String> = p.tcp_connect.iter().map(u16::to_string).collect();
        format!(
            "confined: writes {} folder(s), reads {}; TCP {}; proxy hosts {}",
            p.writable.len(),
            p.readable.len(),
            if ports.is_empty() {
                "none".to_owned()
            } else {
                format!(
                    "to port(s) {} ({})",
                    ports.join(", "),
                    match p.network {
                        crate::sandbox::Network::Namespace => "by address: own network namespace",
                        crate::sandbox::Network::Ports => "by port",
                    }
                )
            },
            if p.hosts.is_empty() {
                "none".to_owned()
            } else {
                p.hosts.join(", ")
            }
        ) + &extra(p)
    }
}

/// The event log's state.
#[derive(Debug, Clone, Serialize)]
pub struct LogProof {
    pub events: usize,
    pub head_hash: String,
    /// Whether the chain, every line and every anchor hold.
    pub chain_intact: bool,
    pub first_bad_line: Option<usize>,
    pub torn_lines: Vec<usize>,
    /// Signed checkpoints in the log, and their signers' key ids.
    pub checkpoints: usize,
    pub signers: Vec<String>,
    /// The last event a signature or a commit trailer vouches for.
    pub anchored_to: u64,
    /// Anchors that do not hold (see `omk goal verify-log`).
    pub anchor_problems: Vec<String>,
}

/// `proof.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Proof {
    pub schema: u32,
    pub goal_id: String,
    pub goal: String,
    pub status: GoalStatus,
    pub readiness: Readiness,
    pub tasks: TaskSummary,
    pub gates: Vec<GateUse>,
    pub task_work: Vec<TaskProof>,
    pub log: LogProof,
    /// Every ask a gate made of a person, and its answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<ApprovalProof>,
    pub known_gaps: Vec<String>,
    pub generated_at: DateTime<Utc>,
}

/// One ask of a person and how it was answered.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalProof {
    pub id: String,
    pub task: String,
    pub kind: String,
    pub target: String,
    pub gate: String,
    pub code: String,
    pub reason: String,
    /// `approved`, `denied`, `timed out`, or `unanswered`.
    pub answer: String,
    pub by: Option<String>,
    pub note: Option<String>,
    pub answered_at: Option<DateTime<Utc>>,
    /// The actions it let through.
    pub used: usize,
}

impl Proof {
    /// Builds the proof of the goal in `dir`, its log verified with
    /// `trust` (see [`super::anchors::verify_goal`]).
    pub fn build(
        dir: &Path,
        goal: &Goal,
        graph: &TaskGraph,
        trust: &Trust,
    ) -> Result<Proof, log::LogError> {
        Proof::scan(dir, goal, graph, trust, |_, _| {})
    }

    /// [`Proof::build`], handing `also` every event of the log (and its
    /// body) once the proof has read it: one pass over the log for a reader
    /// that builds more than the proof from it (the report).
    pub fn scan(
        dir: &Path,
        goal: &Goal,
        graph: &TaskGraph,
        trust: &Trust,
        mut also: impl FnMut(Event, &Body),
    ) -> Result<Proof, log::LogError> {
        let mut fold = Fold::new();
        let v = super::anchors::scan_goal(dir, Some(goal), trust, |e| {
            let body = Body::of(&e);
            fold.event(&e, &body);
            also(e, &body);
        })?;
        Ok(fold.finish(goal, graph, &v))
    }

    /// Builds and writes `proof.json` in `dir`.
    pub fn write(
        dir: &Path,
        goal: &Goal,
        graph: &TaskGraph,
        trust: &Trust,
    ) -> Result<Proof, log::LogError> {
        let proof = Proof::build(dir, goal, graph, trust)?;
        let path = dir.join(PROOF_FILE);
        crate::atomic::write_json(&path, &proof).map_err(|e| log::LogError {
            path,
            detail: format!("cannot write the proof: {e}"),
        })?;
        Ok(proof)
    }

    /// The proof as Markdown.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let ready = if self.readiness.ready {
            "ready"
        } else {
            "not ready"
        };
        md.push_str(&format!("# Proof: {}\n\n", self.goal));
        md.push_str(&format!(
            "- goal: `{}`\n- status: **{}** ({ready})\n",
            self.goal_id, self.status
        ));
        for w in &self.readiness.why {
            md.push_str(&format!("  - {w}\n"));
        }
        let t = &self.tasks;
        md.push_str(&format!(
            "- tasks: {} total, {} done, {} failed, {} pending, {} running, {} cancelled; {} proposals rejected\n",
            t.total, t.done, t.failed, t.pending, t.running, t.cancelled, t.rejected_proposals
        ));
        md.push_str(&format!(
            "- event log: {} events, head `{}`, chain {}\n\n",
            self.log.events,
            self.log.head_hash,
            if self.log.chain_intact {
                "intact"
            } else {
                "BROKEN"
            }
        ));
        md.push_str("## Gates\n\n| gate | version | sha256 | bundle | decisions | by code |\n|---|---|---|---|---|---|\n");
        for g in &self.gates {
            let codes: Vec<String> = g.by_code.iter().map(|(c, n)| format!("{c}: {n}")).collect();
            md.push_str(&format!(
                "| {} | {} | `{}` | {} | {} | {} |\n",
                g.name,
                g.version,
                &g.sha256[..g.sha256.len().min(12)],
                g.bundle,
                g.decisions,
                codes.join(", ")
            ));
        }
        md.push_str("\n## Tasks\n\n| task | status | attempts | commit | merged | changed files | sandbox |\n|---|---|---|---|---|---|---|\n");
        for t in &self.task_work {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                t.id,
                t.status.as_str(),
                t.attempts,
                t.commit
                    .as_deref()
                    .map_or("-".into(), |c| format!("`{}`", &c[..c.len().min(10)])),
                if t.merged { "yes" } else { "no" },
                t.changed_files.join(", "),
                t.sandbox_line()
            ));
        }
        if !self.approvals.is_empty() {
            md.push_str("\n## Approvals\n\n| id | task | action | gate (code) | answer | by | note | used |\n|---|---|---|---|---|---|---|---|\n");
            for a in &self.approvals {
                md.push_str(&format!(
                    "| `{}` | {} | {} `{}` | {} ({}) | {} | {} | {} | {} |\n",
                    a.id,
                    a.task,
                    a.kind,
                    a.target.replace('|', "\\|"),
                    a.gate,
                    a.code,
                    a.answer,
                    a.by.as_deref().unwrap_or("-"),
                    a.note.as_deref().unwrap_or("").replace('|', "\\|"),
                    a.used
                ));
            }
        }
        if !self.known_gaps.is_empty() {
            md.push_str("\n## Known gaps\n\n");
            for g in &self.known_gaps {
                md.push_str(&format!("- {g}\n"));
            }
        }
        md
    }
}

/// The proof's view of the log, built one event at a time: what it keeps
/// grows with the tasks, gates and agents, not with the events.
struct Fold {
    std_digests: HashMap<String, &'static str>,
    gates: BTreeMap<(String, String), GateUse>,
    audit: BTreeSet<String>,
    no_live_gating: BTreeSet<String>,
    unconfined: BTreeSet<String>,
    sandboxes: HashMap<String, Profile>,
    /// Actions an agent took without asking: agent -> how many.
    unjudged: BTreeMap<String, usize>,
    /// The last outcome verdict of each task: gate -> accepted.
    last_outcome: HashMap<String, Vec<(String, bool)>>,
    rejected_proposals: usize,
    last_outcome_input: HashMap<String, String>,
    /// Refusals an agent worked around, found when its attempt ended.
    worked_around: Vec<String>,
    /// A guarded session's judged tool calls: (actions, refused).
    calls: (usize, usize),
    approvals: crate::approvals::Ledger,
    /// When each ask was answered; how many actions each approval let
    /// through.
    answered_at: HashMap<String, DateTime<Utc>>,
    used: HashMap<String, usize>,
}

impl Fold {
    fn new() -> Fold {
        Fold {
            std_digests: std_bundle::GATES
                .iter()
                .map(|g| (sha256_hex(g.bytes), g.name))
                .collect(),
            gates: BTreeMap::new(),
            audit: BTreeSet::new(),
            no_live_gating: BTreeSet::new(),
            unconfined: BTreeSet::new(),
            sandboxes: HashMap::new(),
            unjudged: BTreeMap::new(),
            last_outcome: HashMap::new(),
            rejected_proposals: 0,
            last_outcome_input: HashMap::new(),
            worked_around: Vec::new(),
            calls: (0, 0),
            approvals: Default::default(),
            answered_at: HashMap::new(),
            used: HashMap::new(),
        }
    }

    fn event(&mut self, e: &Event, body: &Body) {
        self.approvals.see(body);
        match body {
            Body::AgentAction(a) => {
                self.calls.0 += 1;
                self.calls.1 += usize::from(!a.allowed);
                if let (true, Some(id)) = (a.allowed, &a.approval) {
                    *self.used.entry(id.clone()).or_default() += 1;
                }
            }
            Body::ApprovalAnswered(a) => {
                self.answered_at.entry(a.id.clone()).or_insert(e.ts);
            }
            // A gate that does not judge a stage is recorded as accepting
            // without being called; it took no decision.
            Body::GateDecision(g) if g.decision.called => {
                let d = &g.decision;
                let entry = self
                    .gates
                    .entry((d.gate.clone(), d.sha256.clone()))
                    .or_insert_with(|| GateUse {
                        bundle: match &d.bundle {
                            Some(b) => b.name.clone(),
                            None if self.std_digests.contains_key(&d.sha256) => "std".into(),
                            None => "project".into(),
                        },
                        bundle_version: d.bundle.as_ref().map(|b| b.version.clone()),
                        bundle_digest: d.bundle.as_ref().map(|b| b.digest.clone()),
                        signer: d.bundle.as_ref().map(|b| b.signers.join(", ")),
                        name: d.gate.clone(),
                        version: d.version.clone(),
                        sha256: d.sha256.clone(),
                        decisions: 0,
                        by_code: BTreeMap::new(),
                    });
                entry.decisions += 1;
                let code = match &d.decision {
                    Decision::Accept => "accept".to_owned(),
                    Decision::Reject(r) | Decision::Ask(r) => r.code.clone(),
                };
                *entry.by_code.entry(code).or_default() += 1;
                if d.mode == Mode::Audit {
                    self.audit.insert(d.gate.clone());
                }
                if d.stage == Stage::Outcome {
                    let task = g.about.task_id.clone();
                    let input = g.input_sha256.clone().unwrap_or_default();
                    if self.last_outcome_input.get(&task) != Some(&input) {
                        self.last_outcome.insert(task.clone(), Vec::new());
                        self.last_outcome_input.insert(task.clone(), input);
                    }
                    let accepted = d.decision.is_accept() || d.mode == Mode::Audit;
                    self.last_outcome
                        .entry(task)
                        .or_default()
                        .push((d.gate.clone(), accepted));
                }
            }
            Body::TaskRejected(_) => self.rejected_proposals += 1,
            Body::TaskStarted(t) => {
                if !t.live_gating {
                    self.no_live_gating.insert(t.agent.clone());
                }
                // Tasks from before confinement carry no profile.
                if !t.confined() {
                    self.unconfined.insert(t.task_id.clone());
                }
                if let Some(profile) = &t.sandbox {
                    self.sandboxes.insert(t.task_id.clone(), profile.clone());
                }
            }
            Body::AgentNote(n)
                if let Some(checked) = n.detail_as::<events::RefusedChangesChecked>() =>
            {
                let present: Vec<String> =
                    checked.changed.iter().map(|p| format!("`{p}`")).collect();
                if !present.is_empty() {
                    self.worked_around.push(format!(
                        "task `{}`: file(s) whose change omk refused had changed in its worktree when its agent stopped ({}): the refusal was worked around; only the outcome gates stood in the way",
                        checked.task_id,
                        present.join(", ")
                    ));
                }
            }
            Body::AgentNote(n) if n.note == events::UNJUDGED_ACTION => {
                let agent = e.actor.strip_prefix("agent:").unwrap_or(&e.actor);
                *self.unjudged.entry(agent.to_owned()).or_default() += 1;
            }
            _ => {}
        }
    }

    fn finish(self, goal: &Goal, graph: &TaskGraph, v: &Verification) -> Proof {
        let Fold {
            gates,
            audit,
            no_live_gating,
            unconfined,
            sandboxes,
            unjudged,
            last_outcome,
            rejected_proposals,
            worked_around,
            calls,
            approvals: ledger,
            answered_at,
            used,
            ..
        } = self;
        let approvals = ledger
            .asked
            .iter()
            .map(|ask| {
                let answer = ledger.answer(&ask.id);
                ApprovalProof {
                    id: ask.id.clone(),
                    task: ask.task_id.clone(),
                    kind: events::word(&ask.action.kind),
                    target: ask.action.target.clone(),
                    gate: ask.gate.clone(),
                    code: ask.code.clone(),
                    reason: ask.reason.clone(),
                    answer: match answer {
                        None => "unanswered",
                        Some(a) if a.timed_out => "timed out",
                        Some(a) if a.approved => "approved",
                        Some(_) => "denied",
                    }
                    .to_owned(),
                    by: answer.map(|a| a.by.clone()),
                    note: answer.and_then(|a| a.note.clone()),
                    answered_at: answered_at.get(&ask.id).copied(),
                    used: used.get(&ask.id).copied().unwrap_or(0),
                }
            })
            .collect();

        let count = |st: TaskStatus| graph.tasks().iter().filter(|t| t.status == st).count();
        let tasks = TaskSummary {
            total: graph.tasks().len(),
            done: count(TaskStatus::Done),
            failed: count(TaskStatus::Failed),
            pending: count(TaskStatus::Pending),
            running: count(TaskStatus::Running),
            cancelled: count(TaskStatus::Cancelled),
            rejected_proposals,
        };

        let mut why = Vec::new();
        if graph.tasks().is_empty() && goal.guarded.is_none() {
            why.push("no task was admitted".to_owned());
        }
        for t in graph.tasks() {
            match t.status {
                TaskStatus::Done => match last_outcome.get(&t.id) {
                    Some(gs) if !gs.is_empty() && gs.iter().all(|(_, ok)| *ok) => {}
                    Some(gs) if !gs.is_empty() => {
                        why.push(format!("task `{}`: its last outcome was rejected", t.id))
                    }
                    _ => why.push(format!("task `{}`: no outcome decision is recorded", t.id)),
                },
                other => why.push(format!(
                    "task `{}` is {}{}",
                    t.id,
                    other.as_str(),
                    t.failure
                        .as_deref()
                        .map(|f| format!(": {f}"))
                        .unwrap_or_default()
                )),
            }
        }
        if !v.ok {
            why.push(match (&v.first_bad, v.anchor_problems.first()) {
                (Some(bad), _) => format!(
                    "the event log does not verify at line {}: {}",
                    bad.line, bad.problem
                ),
                (None, Some(p)) => format!("the event log is not anchored: {p}"),
                (None, None) => "the event log does not verify".to_owned(),
            });
        }
        let ready = why.is_empty();
        if let (true, Some(g)) = (ready, &goal.guarded) {
            why.push(format!(
            "a {} session run by hand: each of its {} action(s) was judged before it ran ({} refused), and its log verifies",
            g.client, calls.0, calls.1
        ));
        } else if ready {
            why.push(format!(
            "all {} tasks are done, and the last outcome of each was accepted by every gate ({})",
            graph.tasks().len(),
            gates
                .keys()
                .map(|(n, _)| n.as_str())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        ));
        }

        let mut known_gaps: Vec<String> = no_live_gating
        .iter()
        .map(|a| {
            format!("agent backend `{a}` had no live gating: its actions were judged only through the outcome")
        })
        .collect();
        for (agent, n) in &unjudged {
            known_gaps.push(format!(
            "agent `{agent}` took {n} action(s) without asking omk (it approved itself): they were judged only through the outcome"
        ));
        }
        if !unconfined.is_empty() {
            known_gaps.push(format!(
            "task(s) {} ran unconfined (`[sandbox] mode = \"off\"`, or an omk from before confinement): the kernel did not hold their processes to their profile",
            unconfined.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
        ));
        }
        known_gaps.extend(confinement_gaps(&sandboxes));
        known_gaps.extend(worked_around);
        for g in &audit {
            known_gaps.push(format!(
                "gate `{g}` ran in audit mode: its rejections were recorded, not enforced"
            ));
        }
        if let Some(bad) = &v.first_bad {
            known_gaps.push(format!(
                "the event log is broken at line {}: {}",
                bad.line, bad.problem
            ));
        }
        if !v.torn.is_empty() {
            known_gaps.push(format!(
                "the event log has lines torn by a crash: {:?}",
                v.torn
            ));
        }

        Proof {
            schema: PROOF_SCHEMA,
            goal_id: goal.id.clone(),
            goal: goal.normalized_goal.clone(),
            status: goal.status,
            readiness: Readiness { ready, why },
            tasks,
            gates: gates.into_values().collect(),
            task_work: graph
                .tasks()
                .iter()
                .map(|t| TaskProof {
                    id: t.id.clone(),
                    status: t.status,
                    attempts: t.retry_count + u32::from(t.status != TaskStatus::Pending),
                    branch: t.branch.clone(),
                    commit: t.commit.clone(),
                    merged: t.merged,
                    changed_files: t.changed_files.clone(),
                    failure: t.failure.clone(),
                    sandbox: sandboxes.get(&t.id).cloned(),
                })
                .collect(),
            log: LogProof {
                events: v.events,
                head_hash: v.head.clone(),
                chain_intact: v.ok,
                first_bad_line: v.first_bad.as_ref().map(|b| b.line),
                torn_lines: v.torn.clone(),
                checkpoints: v.checkpoints,
                signers: v.signers.clone(),
                anchored_to: v.anchored_to,
                anchor_problems: v.anchor_problems.clone(),
            },
            approvals,
            known_gaps,
            generated_at: Utc::now(),
        }
    }
}

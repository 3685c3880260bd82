//! What a running task's agent reaches omk through: every action it asks to
//! take judged (omk's own refusals first, then the gates) and logged; its
//! notes logged; and its sandbox — the profile, private folders and the
//! egress proxy whose every destination is judged the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use omk_gate_sdk::{AgentAction, GoalContext, TaskProposal};
use serde_json::Value;

use super::{Executor, Progress};
use crate::agents::{Hooks, Permit};
use crate::proof::events::{self, About};
use crate::proof::inputs::Subject;
use crate::sandbox::proxy::{Gatekeeper, Proxy};
use crate::sandbox::{Profile, ProfileInputs, SandboxError};
use crate::worktree;

impl Executor {
    /// The sandbox of one run: the profile of task `task` (of planning,
    /// with `None`), its private folders prepared, and the egress proxy it
    /// reaches the network through, judging with `gate`. `tree` is the
    /// task's worktree, or the checkout planning reads.
    pub(super) async fn sandbox(
        &self,
        task: Option<&TaskProposal>,
        tree: &std::path::Path,
        gate: Arc<dyn Gatekeeper>,
    ) -> Result<(Profile, Option<Proxy>), SandboxError> {
        let settings = &self.opts.sandbox;
        if settings.mode == crate::sandbox::SandboxMode::Off {
            return Ok((Profile::off(), None));
        }
        let proxy = if settings.network {
            Some(Proxy::start(gate).await.map_err(|e| SandboxError {
                message: format!("cannot start the egress proxy: {e}"),
            })?)
        } else {
            None
        };
        let (client, command) = self.backend.client();
        let mut commands: Vec<String> = command.into_iter().collect();
        if let Some(t) = task {
            commands.extend(
                t.acceptance
                    .iter()
                    .filter_map(|c| c.trim().strip_prefix("run:"))
                    .map(|c| c.trim().to_owned()),
            );
        }
        let task_dir = self.dir.sandbox(task.map(|t| t.id.as_str()));
        let private: Vec<PathBuf> = [
            crate::dirs::state_dir(),
            crate::dirs::cache_dir(),
            crate::dirs::config_dir(),
            Some(self.repo.clone()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let profile = Profile::derive(&ProfileInputs {
            settings,
            worktree: task.map(|_| tree),
            read_only_tree: task.is_none().then_some(tree),
            git_dir: self.git(|| worktree::git_common_dir(&self.repo)).ok(),
            task_dir: &task_dir,
            commands,
            client,
            proxy: proxy.as_ref().map(Proxy::addr),
            private,
            env: std::env::vars().collect(),
            deny_read: settings.hide.clone(),
        })?;
        if let Some(p) = &proxy {
            p.set_vault(profile.vault.0.clone());
        }
        Ok((profile, proxy))
    }
}

/// The hooks of one running task (or of planning, with no task).
pub(super) struct TaskHooks {
    exec: Arc<Executor>,
    task: Option<TaskProposal>,
    ctx: GoalContext,
    worktree: PathBuf,
    /// When confined: the hosts its profile lets through the egress proxy;
    /// a fetch elsewhere is refused before the gates are asked.
    hosts: Option<Vec<String>>,
    /// The worktree files whose change was refused, each with its state
    /// at the moment of refusal, for [`TaskHooks::check_refused`].
    refused: std::sync::Mutex<Vec<(String, Option<String>)>>,
    /// When the task's time budget runs out: an ask waits no longer.
    deadline: Option<std::time::Instant>,
}

impl TaskHooks {
    /// The hooks of `task` running in `worktree` under `profile`.
    pub(super) fn for_task(
        exec: Arc<Executor>,
        task: TaskProposal,
        ctx: GoalContext,
        worktree: PathBuf,
        profile: &Profile,
    ) -> TaskHooks {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(task.budget_secs);
        TaskHooks {
            exec,
            task: Some(task),
            ctx,
            worktree,
            hosts: (profile.mode == crate::sandbox::SandboxMode::Enforce)
                .then(|| profile.hosts.clone()),
            refused: std::sync::Mutex::new(Vec::new()),
            deadline: Some(deadline),
        }
    }

    pub(super) fn planning(exec: Arc<Executor>) -> TaskHooks {
        TaskHooks {
            exec,
            task: None,
            ctx: GoalContext::default(),
            worktree: PathBuf::new(),
            hosts: None,
            refused: std::sync::Mutex::new(Vec::new()),
            deadline: None,
        }
    }

    /// omk's own refusal of an action, before the gates: logged like a
    /// gate's.
    fn refuse(
        &self,
        task: &TaskProposal,
        action: &AgentAction,
        code: &str,
        reason: String,
    ) -> Permit {
        self.exec.log(
            &self.exec.agent_actor(),
            &events::AgentAction {
                task_id: task.id.clone(),
                action: action.clone(),
                allowed: false,
                gate: Some(crate::wave::HOST_GATE.into()),
                code: Some(code.into()),
                reason: Some(reason.clone()),
                approval: None,
            },
        );
        self.exec.observer.progress(&Progress::Refused {
            task: task.id.clone(),
            target: action.target.clone(),
            reason: reason.clone(),
        });
        Permit::Refused(reason)
    }
}

/// How an action came out: allowed or not, who refused it and why, and
/// the approval that let it through.
struct Judged {
    allowed: bool,
    gate: Option<String>,
    code: Option<String>,
    reason: Option<String>,
    approval: Option<String>,
}

impl Judged {
    /// As the gates' verdict says, where no one is asked.
    fn of(verdict: &crate::gates::Verdict) -> Judged {
        let blocked = verdict.rejection();
        Judged {
            allowed: verdict.accepted,
            gate: blocked.as_ref().map(|b| b.gate.clone()),
            code: blocked.as_ref().map(|b| b.code.clone()),
            reason: blocked.map(|b| b.reason),
            approval: None,
        }
    }

    /// omk's own refusal, with `code`.
    fn refused(code: &str, reason: String) -> Judged {
        Judged {
            allowed: false,
            gate: Some(crate::wave::HOST_GATE.into()),
            code: Some(code.into()),
            reason: Some(reason),
            approval: None,
        }
    }

    /// The way a person answered.
    fn answered(a: &events::ApprovalAnswered) -> Judged {
        if a.approved {
            return Judged {
                allowed: true,
                gate: None,
                code: None,
                reason: None,
                approval: Some(a.id.clone()),
            };
        }
        let note = a
            .note
            .as_deref()
            .map(|n| format!(": {n}"))
            .unwrap_or_default();
        Judged {
            approval: Some(a.id.clone()),
            ..Judged::refused(
                "omk.approval-denied",
                format!("{} denied approval {}{note}", a.by, a.id),
            )
        }
    }
}

impl TaskHooks {
    /// A gate asks about `action`: an answer already given decides (per
    /// `[approvals] remember`); else the ask is logged and the action
    /// waits for `omk approve` — bounded by `[approvals] timeout` and the
    /// task's deadline — while other tasks go on. A worker asks no one
    /// (its coordinator holds the goal): the ask is refused there.
    fn asked(
        &self,
        task: &TaskProposal,
        action: &AgentAction,
        verdict: &crate::gates::Verdict,
    ) -> Judged {
        let Some(blocking) = verdict.blocking() else {
            return Judged::of(verdict);
        };
        let asked_reason = match &blocking.decision {
            omk_gate_sdk::Decision::Ask(r) | omk_gate_sdk::Decision::Reject(r) => r.clone(),
            omk_gate_sdk::Decision::Accept => return Judged::of(verdict),
        };
        if !self.exec.opts.judge_outcomes {
            return Judged::of(verdict);
        }
        let settings = self.exec.opts.approvals;
        let digest = crate::approvals::digest(action);
        let decided = self
            .exec
            .approvals()
            .decides(&task.id, &digest, settings.remember)
            .cloned();
        if let Some(a) = decided {
            return Judged::answered(&a);
        }
        let now = std::time::Instant::now();
        let mut until = now + std::time::Duration::from_secs(settings.timeout_secs);
        if let Some(d) = self.deadline {
            until = until.min(d);
        }
        let wait = until.saturating_duration_since(now);
        let expires_at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        let ask = {
            let mut s = self.exec.session();
            let ask = events::ApprovalAsked {
                id: crate::approvals::new_id(
                    &self.exec.goal_id,
                    &task.id,
                    &digest,
                    s.log.last_id() + 1,
                ),
                task_id: task.id.clone(),
                action: action.clone(),
                digest: digest.clone(),
                gate: blocking.gate.clone(),
                code: asked_reason.code.clone(),
                reason: asked_reason.reason.clone(),
                expires_at: Some(expires_at),
                client_call: None,
            };
            if let Err(e) = s.log.record(&self.exec.agent_actor(), &ask) {
                drop(s);
                return Judged::refused(
                    "omk.approval-unrecorded",
                    format!("the ask cannot be recorded, so no one can answer it: {e}"),
                );
            }
            if let Err(e) = s.log.flush() {
                tracing::warn!("cannot flush the event log: {e}");
            }
            ask
        };
        self.exec.approvals().asked.push(ask.clone());
        self.exec.observer.progress(&Progress::Asked {
            task: task.id.clone(),
            id: ask.id.clone(),
            target: action.target.clone(),
            reason: ask.reason.clone(),
        });
        let goal_dir = self.exec.dir.path().to_owned();
        let answer = super::blocking(|| {
            let mut renewed = std::time::Instant::now();
            loop {
                match crate::approvals::take(&goal_dir, &ask.id) {
                    Some(Ok(a)) if a.digest == digest => return Some(a),
                    Some(Ok(a)) => tracing::warn!(
                        "an answer to {} was for another action (digest {}); not applied",
                        a.id,
                        a.digest
                    ),
                    Some(Err(e)) => tracing::warn!("{e}"),
                    None => {}
                }
                if std::time::Instant::now() >= until
                    || crate::goal::Request::Cancel.is_left_in(&goal_dir)
                {
                    return None;
                }
                if renewed.elapsed() >= std::time::Duration::from_secs(5) {
                    self.exec.renew(&task.id);
                    renewed = std::time::Instant::now();
                }
                std::thread::sleep(std::time::Duration::from_millis(150));
            }
        });
        let answered = match answer {
            Some(a) => events::ApprovalAnswered {
                id: ask.id.clone(),
                task_id: task.id.clone(),
                digest,
                approved: a.approved,
                by: a.by,
                note: a.note,
                timed_out: false,
            },
            None => events::ApprovalAnswered {
                id: ask.id.clone(),
                task_id: task.id.clone(),
                digest,
                approved: false,
                by: events::OMK.into(),
                note: Some(format!(
                    "no answer within {}s",
                    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
                )),
                timed_out: true,
            },
        };
        let actor = if answered.timed_out {
            events::OMK
        } else {
            events::USER
        };
        self.exec.log(actor, &answered);
        self.exec.approvals().answered.push(answered.clone());
        if answered.timed_out {
            return Judged {
                approval: Some(ask.id.clone()),
                ..Judged::refused(
                    "omk.approval-timeout",
                    format!(
                        "{} ({}): no one approved {} before it timed out ({}); approve it sooner, or raise `[approvals] timeout` in .omk/gates.toml",
                        ask.reason,
                        ask.code,
                        ask.id,
                        answered.note.clone().unwrap_or_default()
                    ),
                )
            };
        }
        Judged::answered(&answered)
    }
}

impl TaskHooks {
    /// Looks in the worktree, once the agent stopped and before anything
    /// is cleaned up, at each file whose change the gates refused, and
    /// notes which are as they were when refused (`unchanged`) and which
    /// are not (`changed`: the agent worked around a refusal; the proof
    /// lists it, and the outcome gates see the change). Nothing is noted
    /// when nothing was refused.
    pub(super) fn check_refused(&self) {
        let refused = self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if refused.is_empty() {
            return;
        }
        let mut unchanged = Vec::new();
        let mut changed = Vec::new();
        for (rel, then) in refused {
            let now = file_state(&self.worktree.join(&rel));
            if now == then {
                unchanged.push(rel);
            } else {
                changed.push(rel);
            }
        }
        unchanged.dedup();
        changed.dedup();
        let task = self.task.as_ref().map(|t| t.id.clone()).unwrap_or_default();
        self.exec.log(
            &self.exec.agent_actor(),
            &events::AgentNote::of(&events::RefusedChangesChecked {
                task_id: task,
                unchanged,
                changed,
            }),
        );
    }
}

/// What is at `path` (not following a last symlink): `None` when nothing,
/// else the sha256 of a file's bytes, `dir`, or a link's target.
fn file_state(path: &Path) -> Option<String> {
    use sha2::{Digest, Sha256};
    let meta = path.symlink_metadata().ok()?;
    if meta.is_symlink() {
        return Some(format!("link:{}", std::fs::read_link(path).ok()?.display()));
    }
    if meta.is_dir() {
        return Some("dir".into());
    }
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path).ok()?;
    std::io::copy(&mut file, &mut hasher).ok()?;
    Some(hex::encode(hasher.finalize()))
}

/// The egress proxy's judge for a task: the task's hooks (set once they
/// exist), so a destination is checked against the profile's hosts, judged
/// by the gates as a `fetch-url` action, and logged.
pub(super) struct TaskGate(std::sync::OnceLock<Arc<TaskHooks>>);

impl TaskGate {
    pub(super) fn new() -> TaskGate {
        TaskGate(std::sync::OnceLock::new())
    }

    /// Judges with `hooks` from now on (until then, every destination is
    /// refused).
    pub(super) fn attach(&self, hooks: Arc<TaskHooks>) {
        let _ = self.0.set(hooks);
    }
}

impl Gatekeeper for TaskGate {
    fn destination(&self, url: &str) -> Result<(), String> {
        let Some(hooks) = self.0.get() else {
            return Err("the task has not started".into());
        };
        let Some(task) = &hooks.task else {
            return Err("no task".into());
        };
        let permit = hooks.action(AgentAction {
            task_id: task.id.clone(),
            kind: omk_gate_sdk::ActionKind::FetchUrl,
            target: url.to_owned(),
            detail: "a connection through omk's egress proxy".into(),
            command: None,
            tool: None,
        });
        match permit.refusal() {
            None => Ok(()),
            Some(reason) => Err(reason),
        }
    }
}

impl Hooks for TaskHooks {
    fn tool_paths(&self) -> Option<&omk_core::mcp::ToolPathTable> {
        Some(self.exec.gates.tool_paths())
    }

    fn action(&self, action: AgentAction) -> Permit {
        // A command's parse is part of what is judged and recorded.
        let mut action = crate::command::with_parse(action);
        let Some(task) = &self.task else {
            // Planning takes no actions on the project.
            return Permit::Refused("actions are not allowed while planning".into());
        };
        if action.kind == omk_gate_sdk::ActionKind::FetchUrl
            && let Some(hosts) = &self.hosts
            && !crate::sandbox::proxy::host_allowed(hosts, &action.target)
        {
            let reason = format!(
                "`{}` is not a host this task may reach (its model endpoint, or `[sandbox] hosts` in .omk/gates.toml)",
                action.target
            );
            return self.refuse(task, &action, "omk.sandbox-host", reason);
        }
        // The file that would change, symlinks followed: agents that write
        // themselves (Claude, Codex, the Kimi CLI) follow them.
        if let Err(reason) = crate::agents::files::judged_target(&self.worktree, &mut action) {
            return self.refuse(task, &action, "omk.outside-worktree", reason);
        }
        let verdict = super::blocking(|| self.exec.gates.judge_action(&self.ctx, task, &action));
        let recorded = self.exec.record(
            &self.ctx,
            Subject::Action {
                task: task.clone(),
                action: action.clone(),
            },
            &verdict,
            About {
                task_id: task.id.clone(),
                action: Some(action.clone()),
                ..About::default()
            },
        );
        if let Err(e) = recorded {
            tracing::error!("cannot record an action decision: {e}");
        }
        let judged = if verdict.asks() {
            self.asked(task, &action, &verdict)
        } else {
            Judged::of(&verdict)
        };
        self.exec.log(
            &self.exec.agent_actor(),
            &events::AgentAction {
                task_id: task.id.clone(),
                action: action.clone(),
                allowed: judged.allowed,
                gate: judged.gate,
                code: judged.code,
                reason: judged.reason.clone(),
                approval: judged.approval.clone(),
            },
        );
        if let Some(id) = &judged.approval
            && judged.allowed
        {
            self.exec.approvals().used.insert(id.clone());
        }
        if judged.allowed {
            return Permit::Allowed;
        }
        if action.kind.is_file_change() {
            self.refused
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((
                    action.target.clone(),
                    file_state(&self.worktree.join(&action.target)),
                ));
        }
        let reason = judged
            .reason
            .unwrap_or_else(|| "refused by the gates".into());
        self.exec.observer.progress(&Progress::Refused {
            task: task.id.clone(),
            target: action.target.clone(),
            reason: reason.clone(),
        });
        Permit::Refused(reason)
    }

    fn note(&self, kind: &str, payload: Value) {
        self.exec.log(
            &self.exec.agent_actor(),
            &events::AgentNote {
                note: kind.to_owned(),
                detail: payload,
            },
        );
    }

    fn process_started(&self, pgid: u32) {
        let Some(task) = &self.task else { return };
        let mut s = self.exec.session();
        if let Some(t) = s.graph.get_mut(&task.id) {
            t.process_started(pgid);
        }
        if let Err(e) = s.save_graph(Utc::now()) {
            tracing::warn!("cannot record the agent's process group: {e}");
        }
    }
}

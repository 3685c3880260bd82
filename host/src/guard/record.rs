//! The record of a guarded session: a goal of its own (its `goal.json`
//! names the client and the client's session id), so `omk goal events`,
//! `proof`, `report`, `verify-log` and `replay --gates` read a hand-run
//! session as they read a goal.
//!
//! Each hook call is a process of its own, and a client may ask about
//! several tool calls at once: the session's goal is found (or created)
//! under a lock in `<state>/guard/`, one per client session, held for the
//! whole call, so calls are judged and recorded one after another.

use std::fs::File;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use omk_gate_sdk::{AgentAction, GoalContext, TaskProposal};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Client;
use crate::agents::{Hooks, Permit};
use crate::gates::GateSet;
use crate::goal::{GoalPhase, GoalStore, Guarded, Limits, MergePolicy, NewGoal, Session};
use crate::proof::events::{self, About};
use crate::proof::inputs::Subject;

/// The task id a guarded session's actions are judged under: a session
/// has no task, so the gates see one whose write set is `[guard]
/// write_roots`.
pub const SESSION_TASK: &str = "session";

/// How long a hook call waits for another call of the same session.
const WAIT: Duration = Duration::from_secs(20);

/// A guarded session's record, open for one hook call.
pub struct Record {
    session: Session,
    /// Held until the call ends: one call of a session at a time.
    _lock: File,
}

impl Record {
    /// Opens the record of `client`'s session `session_id` on the project
    /// at `root`, creating it on the session's first call; `roots` are its
    /// write roots.
    pub fn open(
        store: &GoalStore,
        client: Client,
        session_id: &str,
        root: &Path,
        roots: &[String],
    ) -> Result<Record, String> {
        let index_dir = store.root().parent().unwrap_or(store.root()).join("guard");
        std::fs::create_dir_all(&index_dir)
            .map_err(|e| format!("cannot create `{}`: {e}", index_dir.display()))?;
        let key = hex::encode(&Sha256::digest(session_id.as_bytes())[..12]);
        let index = index_dir.join(format!("{}-{key}", client.name()));
        let lock = crate::lockfile::take(&index.with_extension("lock"), WAIT)?;
        let known = std::fs::read_to_string(&index)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|id| !id.is_empty());
        let session = match known {
            Some(id) => Session::open_wait(store, &id, WAIT)
                .map_err(|e| format!("cannot open the session's record `{id}`: {e}"))?,
            None => {
                let now = Utc::now();
                let spec = NewGoal {
                    text: format!("{} session {session_id}, guarded by omk", client.name()),
                    limits: Limits::default(),
                    max_agents: 1,
                    project_dir: root.to_owned(),
                    policy_roots: roots.to_vec(),
                    agent: None,
                    base_commit: None,
                    merge_policy: MergePolicy::None,
                    guarded: Some(Guarded {
                        client: client.name().to_owned(),
                        session_id: session_id.to_owned(),
                    }),
                };
                let mut session = Session::create(store, spec, now)
                    .map_err(|e| format!("cannot create the session's record: {e}"))?;
                session.goal.phase = GoalPhase::Execution;
                session
                    .save_goal(now)
                    .map_err(|e| format!("cannot write the session's record: {e}"))?;
                crate::atomic::write(&index, format!("{}\n", session.goal.id).as_bytes())
                    .map_err(|e| format!("cannot write `{}`: {e}", index.display()))?;
                session
            }
        };
        Ok(Record {
            session,
            _lock: lock,
        })
    }

    /// The record's goal id.
    pub fn id(&self) -> &str {
        &self.session.goal.id
    }

    /// Records the answers given at Claude Code's own prompt to this
    /// session's asks, as its transcript at `transcript` shows them: a
    /// result of the asked call that is not an error is an approval, an
    /// error result (the person said no, or print mode has no prompt) a
    /// denial. Asks without an answer there yet stay open.
    pub fn read_prompt_answers(&mut self, transcript: &Path) -> Result<(), String> {
        self.session
            .log
            .flush()
            .map_err(|e| format!("cannot flush the session's log: {e}"))?;
        let ledger = crate::approvals::Ledger::read(self.session.dir().path());
        let open: Vec<&events::ApprovalAsked> = ledger
            .pending()
            .into_iter()
            .filter(|a| a.client_call.is_some())
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let Ok(text) = std::fs::read_to_string(transcript) else {
            return Ok(());
        };
        for ask in open {
            let Some(call) = &ask.client_call else {
                continue;
            };
            let Some(is_error) = tool_result(&text, call) else {
                continue;
            };
            let answered = events::ApprovalAnswered {
                id: ask.id.clone(),
                task_id: ask.task_id.clone(),
                digest: ask.digest.clone(),
                approved: !is_error,
                by: format!("{} at Claude Code's prompt", crate::approvals::local_user()),
                note: None,
                timed_out: false,
            };
            self.session
                .log
                .record(events::USER, &answered)
                .map_err(|e| format!("cannot append to the session's log: {e}"))?;
        }
        Ok(())
    }

    /// Makes everything recorded durable and anchors the log.
    pub fn close(mut self) -> Result<(), String> {
        self.session
            .checkpoint()
            .map_err(|e| format!("cannot anchor the session's log: {e}"))
    }
}

/// Whether the result of tool call `id` in a Claude Code transcript (JSON
/// lines) is an error; `None` when it has no result there yet.
fn tool_result(transcript: &str, id: &str) -> Option<bool> {
    transcript
        .lines()
        .filter(|l| l.contains(id) && l.contains("tool_result"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|line| {
            line["message"]["content"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "tool_result" && c["tool_use_id"] == id)
                .map(|c| c["is_error"].as_bool().unwrap_or(false))
        })
}

/// The hooks of one guarded call: every action judged by the project's
/// gates as an action of the session's task, and recorded with its input.
pub struct GuardHooks<'p> {
    record: Mutex<Record>,
    gates: &'p GateSet,
    root: &'p Path,
    client: Client,
    task: TaskProposal,
    remember: omk_core::approvals::Remember,
    /// The client's id of the call judged, for an ask its prompt answers.
    call_id: Option<String>,
}

impl<'p> GuardHooks<'p> {
    /// Judges with `policy`: its gates, on its project, where the session
    /// may write under its write roots.
    pub fn new(record: Record, policy: &'p super::Policy, client: Client) -> GuardHooks<'p> {
        let roots = policy.roots.clone();
        let task = TaskProposal {
            id: SESSION_TASK.into(),
            title: format!("a {} session run by hand", client.name()),
            description: String::new(),
            dependencies: Vec::new(),
            read_set: Vec::new(),
            write_set: roots,
            risk: "low".into(),
            acceptance: Vec::new(),
            budget_secs: 0,
            priority: 0,
        };
        GuardHooks {
            record: Mutex::new(record),
            gates: &policy.gates,
            root: &policy.root,
            client,
            task,
            remember: policy.approvals.remember,
            call_id: None,
        }
    }

    /// The hooks for the client's call `id` (Claude Code's
    /// `tool_use_id`), whose answer at its prompt is read back later.
    pub fn for_call(mut self, id: Option<String>) -> GuardHooks<'p> {
        self.call_id = id;
        self
    }

    /// The record, once every call is judged.
    pub fn into_record(self) -> Record {
        self.record
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn context(&self, record: &Record) -> GoalContext {
        let g = &record.session.goal;
        GoalContext {
            goal_id: g.id.clone(),
            goal_text: g.normalized_goal.clone().into(),
            phase: g.phase.as_str().into(),
            now_ms: u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0),
            policy_roots: self.task.write_set.clone(),
            existing_task_ids: vec![SESSION_TASK.to_owned()].into(),
            ..GoalContext::default()
        }
    }

    /// Logs an action and whether it was allowed.
    fn log_action(
        &self,
        record: &mut Record,
        action: &AgentAction,
        refusal: Option<(String, String, String)>,
        approval: Option<String>,
    ) -> Result<(), String> {
        let (gate, code, reason) = match refusal {
            Some((g, c, r)) => (Some(g), Some(c), Some(r)),
            None => (None, None, None),
        };
        record
            .session
            .log
            .record(
                &events::agent_actor(self.client.name()),
                &events::AgentAction {
                    task_id: SESSION_TASK.into(),
                    action: action.clone(),
                    allowed: gate.is_none(),
                    gate,
                    code,
                    reason,
                    approval,
                },
            )
            .map(|_| ())
            .map_err(|e| format!("cannot append to the session's log: {e}"))
    }

    /// A gate asks about `action`: an answer given already decides (one
    /// `omk approve` gave since the agent last asked, or one remembered
    /// per `[approvals] remember`); else the ask is recorded and the
    /// client's prompt asked (Claude Code), or the call refused with the
    /// way to approve it (the others).
    fn asked(
        &self,
        record: &mut Record,
        action: &AgentAction,
        verdict: &crate::gates::Verdict,
    ) -> Result<Permit, String> {
        let Some(blocking) = verdict.blocking() else {
            return Ok(Permit::Allowed);
        };
        let asked = match &blocking.decision {
            omk_gate_sdk::Decision::Ask(r) | omk_gate_sdk::Decision::Reject(r) => r.clone(),
            omk_gate_sdk::Decision::Accept => return Ok(Permit::Allowed),
        };
        let digest = crate::approvals::digest(action);
        record
            .session
            .log
            .flush()
            .map_err(|e| format!("cannot flush the session's log: {e}"))?;
        let ledger = crate::approvals::Ledger::read(record.session.dir().path());
        if let Some(a) = ledger.decides(SESSION_TASK, &digest, self.remember) {
            if a.approved {
                self.log_action(record, action, None, Some(a.id.clone()))?;
                return Ok(Permit::Allowed);
            }
            let note = a
                .note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default();
            let reason = format!("{} denied approval {}{note}", a.by, a.id);
            self.log_action(
                record,
                action,
                Some((
                    crate::wave::HOST_GATE.into(),
                    "omk.approval-denied".into(),
                    reason.clone(),
                )),
                Some(a.id.clone()),
            )?;
            return Ok(Permit::Refused(reason));
        }
        let id = crate::approvals::new_id(
            &record.session.goal.id,
            SESSION_TASK,
            &digest,
            record.session.log.last_id() + 1,
        );
        let ask = events::ApprovalAsked {
            id: id.clone(),
            task_id: SESSION_TASK.into(),
            action: action.clone(),
            digest,
            gate: blocking.gate.clone(),
            code: asked.code.clone(),
            reason: asked.reason.clone(),
            expires_at: None,
            client_call: match self.client {
                Client::Claude => self.call_id.clone(),
                _ => None,
            },
        };
        record
            .session
            .log
            .record(&events::agent_actor(self.client.name()), &ask)
            .map_err(|e| format!("cannot append to the session's log: {e}"))?;
        let said = format!(
            "gate `{}` ({}) asks a person: {}",
            ask.gate, ask.code, ask.reason
        );
        self.log_action(
            record,
            action,
            Some((ask.gate.clone(), ask.code.clone(), said.clone())),
            None,
        )?;
        Ok(Permit::Ask(match self.client {
            Client::Claude => format!(
                "{said} (approval {id}; answer here, or run `omk approve {id}` and ask again)"
            ),
            _ => format!(
                "{said}. No one can be asked from here: a person runs `omk approve {id}` (or `--deny`), then ask again"
            ),
        }))
    }

    fn judge(&self, action: AgentAction) -> Result<Permit, String> {
        let mut action = crate::command::with_parse(action);
        let mut record = self
            .record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(reason) = crate::agents::files::judged_target(self.root, &mut action) {
            let reason = reason.replace("agent's working tree", "project");
            self.log_action(
                &mut record,
                &action,
                Some((
                    crate::wave::HOST_GATE.into(),
                    "omk.outside-project".into(),
                    reason.clone(),
                )),
                None,
            )?;
            return Ok(Permit::Refused(reason));
        }
        let ctx = self.context(&record);
        let verdict = self.gates.judge_action(&ctx, &self.task, &action);
        let input = record
            .session
            .inputs
            .record(
                &ctx,
                None,
                Subject::Action {
                    task: self.task.clone(),
                    action: action.clone(),
                },
            )
            .map_err(|e| format!("cannot record the decision's input: {e}"))?;
        crate::wave::record_verdict(
            &mut record.session,
            &verdict,
            &input,
            About {
                task_id: SESSION_TASK.into(),
                action: Some(action.clone()),
                ..About::default()
            },
        )
        .map_err(|e| format!("cannot record the decision: {e}"))?;
        if verdict.asks() {
            return self.asked(&mut record, &action, &verdict);
        }
        let blocked = verdict.rejection();
        self.log_action(
            &mut record,
            &action,
            blocked
                .clone()
                .map(|b| (b.gate.clone(), b.code.clone(), b.reason.clone())),
            None,
        )?;
        Ok(match blocked {
            None => Permit::Allowed,
            Some(b) => Permit::Refused(format!("gate `{}` ({}): {}", b.gate, b.code, b.reason)),
        })
    }
}

impl Hooks for GuardHooks<'_> {
    /// Judged and recorded; anything that cannot be recorded is refused,
    /// so nothing is allowed that the record does not show.
    fn action(&self, action: AgentAction) -> Permit {
        match self.judge(action) {
            Ok(p) => p,
            Err(reason) => Permit::Refused(format!("omk fails closed: {reason}")),
        }
    }

    fn note(&self, kind: &str, payload: Value) {
        let mut record = self
            .record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let noted = record.session.log.record(
            &events::agent_actor(self.client.name()),
            &events::AgentNote {
                note: kind.to_owned(),
                detail: payload,
            },
        );
        if let Err(e) = noted {
            tracing::warn!("cannot note in the session's log: {e}");
        }
    }

    fn process_started(&self, _pgid: u32) {}

    fn tool_paths(&self) -> Option<&omk_core::mcp::ToolPathTable> {
        Some(self.gates.tool_paths())
    }
}

#[cfg(test)]
mod tests {
    use super::tool_result;

    #[test]
    fn the_answer_at_claudes_prompt_is_the_calls_result() {
        let t = concat!(
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"toolu_1"}]}}"#,
            "\n",
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"ok","is_error":false}]}}"#,
            "\n",
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"toolu_2","content":"no","is_error":true}]}}"#,
        );
        assert_eq!(tool_result(t, "toolu_1"), Some(false));
        assert_eq!(tool_result(t, "toolu_2"), Some(true));
        assert_eq!(tool_result(t, "toolu_3"), None);
    }
}

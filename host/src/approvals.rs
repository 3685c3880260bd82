//! Asking a person: what an answer binds to, where answers are left, and
//! what a goal's log says was asked and answered.
//!
//! When a gate answers `ask` (and none rejects), the action waits in a
//! goal run, and is refused with the way to approve it in a guarded
//! session whose client has no prompt of its own. Each ask is an
//! `approval_asked` event with an id; `omk approve ID` answers it:
//!
//! - while the goal runs, by leaving the answer in the goal's
//!   `requests/approval-ID.json`, which the running omk takes, checks
//!   (same digest) and logs as `approval_answered`;
//! - otherwise (a guarded session's record, or a goal that stopped), by
//!   logging the answer itself under the goal's lock; it is used when the
//!   same action is asked again.
//!
//! An answer binds to the [`digest`] of the exact action — its kind, its
//! target (a command line, a file, a URL, a tool) and a tool call's
//! server, tool and arguments — and to its goal (and task, unless
//! `[approvals] remember = "goal"`): a changed command is a new ask. An
//! action let through by an answer names it (`agent_action.approval`).

use std::collections::BTreeSet;
use std::path::Path;

use omk_core::approvals::Remember;
use omk_gate_sdk::AgentAction;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::goal::{GoalStore, REQUESTS_DIR};
use crate::proof::events::{ApprovalAnswered, ApprovalAsked, Body};

/// The digest an answer binds to: the action's kind, target and tool call,
/// not the words the agent gave for it.
pub fn digest(action: &AgentAction) -> String {
    let tool = action
        .tool
        .as_ref()
        .map(|t| serde_json::json!({"server": t.server, "tool": t.tool, "arguments": t.arguments}));
    let bound = serde_json::json!({
        "kind": crate::proof::events::word(&action.kind),
        "target": action.target,
        "tool": tool,
    });
    hex::encode(Sha256::digest(bound.to_string().as_bytes()))
}

/// A new ask's id: short enough to type, unique in its goal (it hashes
/// the goal, the task, the digest and the event's place in the log).
pub fn new_id(goal: &str, task: &str, digest: &str, seq: u64) -> String {
    let h = Sha256::digest(format!("{goal}\n{task}\n{digest}\n{seq}").as_bytes());
    format!("ap-{}", &hex::encode(h)[..10])
}

/// Whether `text` could be an id [`new_id`] made.
pub fn is_id(text: &str) -> bool {
    text.strip_prefix("ap-")
        .is_some_and(|h| h.len() == 10 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Who answers from this machine: the local user's name.
pub fn local_user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.trim().is_empty()))
        .unwrap_or_else(|| // SAFETY: getuid has no preconditions and cannot fail.
            format!("uid {}", unsafe { libc::getuid() }))
}

/// An answer left for the omk that runs a goal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub id: String,
    /// The digest of the ask the person saw: a different one is not
    /// applied.
    pub digest: String,
    pub approved: bool,
    pub by: String,
    #[serde(default)]
    pub note: Option<String>,
}

fn answer_file(goal_dir: &Path, id: &str) -> std::path::PathBuf {
    goal_dir
        .join(REQUESTS_DIR)
        .join(format!("approval-{id}.json"))
}

/// Leaves `answer` in the goal at `goal_dir` for the omk running it.
pub fn leave(goal_dir: &Path, answer: &Answer) -> std::io::Result<()> {
    let path = answer_file(goal_dir, &answer.id);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::atomic::write_json(&path, answer)
}

/// Takes the answer left for ask `id`, if one is there; a file that does
/// not read is removed and reported, never applied.
pub fn take(goal_dir: &Path, id: &str) -> Option<Result<Answer, String>> {
    let path = answer_file(goal_dir, id);
    let bytes = std::fs::read(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    Some(
        serde_json::from_slice::<Answer>(&bytes)
            .map_err(|e| format!("`{}` does not read as an answer: {e}", path.display()))
            .and_then(|a| {
                if a.id == id {
                    Ok(a)
                } else {
                    Err(format!(
                        "`{}` answers `{}`, not `{id}`",
                        path.display(),
                        a.id
                    ))
                }
            }),
    )
}

/// What a goal's log says was asked and answered.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub asked: Vec<ApprovalAsked>,
    pub answered: Vec<ApprovalAnswered>,
    /// The answers an action was let through by already.
    pub used: BTreeSet<String>,
    /// When each ask was logged (read from the log).
    pub asked_at: std::collections::BTreeMap<String, chrono::DateTime<chrono::Utc>>,
}

impl Ledger {
    /// Reads the ledger of the goal at `goal_dir` (empty without a log).
    /// Only the lines that name an approval are parsed: a guarded
    /// session's hook reads it on every call.
    pub fn read(goal_dir: &Path) -> Ledger {
        let mut ledger = Ledger::default();
        let path = goal_dir.join(crate::proof::EVENTS_FILE);
        let _ = crate::proof::log::each_line(&path, |_, line| {
            if memchr::memmem::find(line, b"approval").is_none() {
                return;
            }
            let Some(e) = crate::proof::log::parse_event(line) else {
                return;
            };
            let body = Body::of(&e);
            if let Body::ApprovalAsked(a) = &body {
                ledger.asked_at.insert(a.id.clone(), e.ts);
            }
            ledger.see(&body);
        });
        ledger
    }

    /// Takes in one event.
    pub fn see(&mut self, body: &Body) {
        match body {
            Body::ApprovalAsked(a) => self.asked.push((**a).clone()),
            Body::ApprovalAnswered(a) => self.answered.push((**a).clone()),
            Body::AgentAction(a) => {
                if let Some(id) = &a.approval {
                    self.used.insert(id.clone());
                }
            }
            _ => {}
        }
    }

    /// The asks no one has answered yet, oldest first.
    pub fn pending(&self) -> Vec<&ApprovalAsked> {
        self.asked
            .iter()
            .filter(|a| self.answer(&a.id).is_none())
            .collect()
    }

    /// The answer to ask `id`, if any (the first counts).
    pub fn answer(&self, id: &str) -> Option<&ApprovalAnswered> {
        self.answered.iter().find(|a| a.id == id)
    }

    /// The ask `id`.
    pub fn ask(&self, id: &str) -> Option<&ApprovalAsked> {
        self.asked.iter().find(|a| a.id == id)
    }

    /// The answer that decides a new ask of `digest` by task `task` without
    /// asking anyone: under `remember = "task"` or `"goal"`, the latest
    /// answer given to the same action in that scope; and, whatever the
    /// setting, an approval no action has used yet of the same action in
    /// the same task (given after the ask stopped waiting: a guarded
    /// session's, or a goal's that was not running).
    pub fn decides(
        &self,
        task: &str,
        digest: &str,
        remember: Remember,
    ) -> Option<&ApprovalAnswered> {
        let same = |a: &&ApprovalAnswered| a.digest == digest && !a.timed_out;
        let remembered = match remember {
            Remember::Once => None,
            Remember::Task => self
                .answered
                .iter()
                .rev()
                .filter(same)
                .find(|a| a.task_id == task),
            Remember::Goal => self.answered.iter().rev().find(same),
        };
        remembered.or_else(|| {
            self.answered
                .iter()
                .filter(same)
                .find(|a| a.task_id == task && a.approved && !self.used.contains(&a.id))
        })
    }
}

/// An ask no one has answered, as `omk approvals` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Waiting {
    pub id: String,
    pub goal: String,
    /// The client, for a guarded session's ask.
    pub session_of: Option<String>,
    pub task: String,
    pub kind: String,
    pub target: String,
    /// A command's simple commands, each as its words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<omk_gate_sdk::ToolCall>,
    pub gate: String,
    pub code: String,
    pub reason: String,
    pub digest: String,
    pub asked_at: Option<chrono::DateTime<chrono::Utc>>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether the ask still waits (its wait has not expired; else the
    /// answer is used when the agent asks again).
    pub waiting_now: bool,
}

impl Waiting {
    fn of(goal: &crate::goal::Goal, ask: &ApprovalAsked, ledger: &Ledger) -> Waiting {
        let a = &ask.action;
        Waiting {
            id: ask.id.clone(),
            goal: goal.id.clone(),
            session_of: goal.guarded.as_ref().map(|g| g.client.clone()),
            task: ask.task_id.clone(),
            kind: crate::proof::events::word(&a.kind),
            target: a.target.clone(),
            commands: a
                .command
                .as_ref()
                .map(|p| p.commands.iter().map(|c| c.words.clone()).collect())
                .unwrap_or_default(),
            tool: a.tool.clone(),
            gate: ask.gate.clone(),
            code: ask.code.clone(),
            reason: ask.reason.clone(),
            digest: ask.digest.clone(),
            asked_at: ledger.asked_at.get(&ask.id).copied(),
            expires_at: ask.expires_at,
            // Read, not probed: taking the goal's lock to look would make
            // an omk starting it then fail.
            waiting_now: ask.expires_at.is_some_and(|t| t > chrono::Utc::now()),
        }
    }
}

/// The asks waiting for an answer in goal `goal` (every goal and guarded
/// session of `store` without one), oldest first.
pub fn waiting(
    store: &GoalStore,
    goal: Option<&str>,
) -> Result<Vec<Waiting>, crate::goal::StoreError> {
    let ids = match goal {
        Some(id) => vec![store.resolve(id)?],
        None => store.ids()?,
    };
    let mut out = Vec::new();
    for id in ids {
        let Ok(g) = store.load(&id) else { continue };
        let ledger = Ledger::read(store.dir(&id).path());
        let pending = ledger.pending();
        if pending.is_empty() {
            continue;
        }
        out.extend(pending.into_iter().map(|a| Waiting::of(&g, a, &ledger)));
    }
    out.sort_by_key(|a| a.asked_at);
    Ok(out)
}

/// Why an answer could not be given.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no ask `{id}` in {where_}")]
    Unknown { id: String, where_: String },
    #[error("`{id}` was answered already: {how}")]
    Answered { id: String, how: String },
    #[error(transparent)]
    Store(#[from] crate::goal::StoreError),
    #[error(transparent)]
    Goal(#[from] crate::goal::GoalError),
    #[error("cannot leave the answer for the omk running goal `{goal}`: {source}")]
    Leave {
        goal: String,
        source: std::io::Error,
    },
}

impl omk_core::diagnose::Diagnose for ApprovalError {
    fn kind(&self) -> omk_core::diagnose::Kind {
        match self {
            ApprovalError::Store(e) => e.kind(),
            ApprovalError::Goal(e) => e.kind(),
            ApprovalError::Leave { .. } => omk_core::diagnose::Kind::System,
            _ => omk_core::diagnose::Kind::Usage,
        }
    }

    fn help(&self) -> Option<String> {
        match self {
            ApprovalError::Unknown { .. } => {
                Some("`omk approvals` lists what waits, with each ask's id".into())
            }
            ApprovalError::Answered { .. } => Some(
                "an answer binds to one ask; when the agent asks again, answer the new ask `omk approvals` lists".into(),
            ),
            ApprovalError::Store(e) => e.help(),
            ApprovalError::Goal(e) => e.help(),
            ApprovalError::Leave { .. } => None,
        }
    }
}

/// How an answer reached its goal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivered {
    /// Logged, and taken by the omk that waited for it.
    Applied,
    /// Logged in the goal's record: used when the agent asks again.
    Logged,
    /// Left for the omk running the goal, which has not taken it yet.
    Left,
}

/// Answers ask `id` (looked for in goal `goal`, else in every goal):
/// `approved` or not, by the local user, with `note`.
pub fn answer(
    store: &GoalStore,
    goal: Option<&str>,
    id: &str,
    approved: bool,
    note: Option<String>,
) -> Result<(String, Delivered), ApprovalError> {
    let ids = match goal {
        Some(g) => vec![store.resolve(g)?],
        None => store.ids()?,
    };
    let unknown = || ApprovalError::Unknown {
        id: id.to_owned(),
        where_: match goal {
            Some(g) => format!("goal `{g}`"),
            None => format!("any goal in {}", store.root().display()),
        },
    };
    if !is_id(id) {
        return Err(unknown());
    }
    let found = ids.into_iter().find_map(|g| {
        let ledger = Ledger::read(store.dir(&g).path());
        ledger.ask(id).cloned().map(|a| (g, a, ledger))
    });
    let Some((goal_id, ask, ledger)) = found else {
        return Err(unknown());
    };
    if let Some(a) = ledger.answer(id) {
        let how = match (a.timed_out, a.approved) {
            (true, _) => "it timed out".to_owned(),
            (false, true) => format!("approved by {}", a.by),
            (false, false) => format!("denied by {}", a.by),
        };
        return Err(ApprovalError::Answered { id: id.into(), how });
    }
    let by = local_user();
    let answered = ApprovalAnswered {
        id: id.to_owned(),
        task_id: ask.task_id.clone(),
        digest: ask.digest.clone(),
        approved,
        by: by.clone(),
        note: note.clone(),
        timed_out: false,
    };
    let guarded = store.load(&goal_id)?.guarded.is_some();
    // A guarded session's record is held for one hook call at a time: wait
    // for it. A goal held by a running omk gets the answer left for it.
    let opened = if guarded {
        crate::goal::Session::open_wait(store, &goal_id, std::time::Duration::from_secs(20))
    } else {
        crate::goal::Session::open(store, &goal_id)
    };
    match opened {
        // Nothing waits for it now (the session between hook calls, or a
        // goal that stopped): logged, it is used when the agent asks again.
        Ok(mut session) => {
            session
                .log
                .record(crate::proof::events::USER, &answered)
                .map_err(|e| ApprovalError::Goal(e.into()))?;
            session.checkpoint()?;
            Ok((goal_id, Delivered::Logged))
        }
        Err(crate::goal::GoalError::Store(crate::goal::StoreError::Locked { .. })) if !guarded => {
            let dir = store.dir(&goal_id).path().to_owned();
            leave(
                &dir,
                &Answer {
                    id: id.to_owned(),
                    digest: ask.digest.clone(),
                    approved,
                    by,
                    note,
                },
            )
            .map_err(|source| ApprovalError::Leave {
                goal: goal_id.clone(),
                source,
            })?;
            // The waiting omk looks every 150 ms.
            let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while std::time::Instant::now() < until {
                if Ledger::read(&dir).answer(id).is_some() {
                    return Ok((goal_id, Delivered::Applied));
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Ok((goal_id, Delivered::Left))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omk_gate_sdk::ActionKind;

    fn answered(id: &str, task: &str, digest: &str, approved: bool) -> ApprovalAnswered {
        ApprovalAnswered {
            id: id.into(),
            task_id: task.into(),
            digest: digest.into(),
            approved,
            by: "me".into(),
            note: None,
            timed_out: false,
        }
    }

    #[test]
    fn an_answer_binds_to_the_exact_action_not_its_description() {
        let push = AgentAction::new("t", ActionKind::RunCommand, "git push origin main", "a");
        let same = AgentAction::new("u", ActionKind::RunCommand, "git push origin main", "b");
        let forced = AgentAction::new("t", ActionKind::RunCommand, "git push -f origin main", "a");
        assert_eq!(digest(&push), digest(&same));
        assert_ne!(digest(&push), digest(&forced));
        let id = new_id("g", "t", &digest(&push), 7);
        assert!(is_id(&id), "{id}");
        assert_ne!(id, new_id("g", "t", &digest(&push), 8));
        assert!(!is_id("ap-xyz") && !is_id("01HX"));
    }

    #[test]
    fn remembered_answers_reach_as_far_as_the_setting_and_unused_ones_once() {
        let mut l = Ledger::default();
        l.answered.push(answered("ap-1", "t1", "d", true));
        // Unused: it decides the next ask of the same action in its task.
        assert_eq!(l.decides("t1", "d", Remember::Once).unwrap().id, "ap-1");
        assert!(l.decides("t2", "d", Remember::Once).is_none());
        assert!(l.decides("t1", "other", Remember::Once).is_none());
        l.used.insert("ap-1".into());
        assert!(l.decides("t1", "d", Remember::Once).is_none());
        assert_eq!(l.decides("t1", "d", Remember::Task).unwrap().id, "ap-1");
        assert!(l.decides("t2", "d", Remember::Task).is_none());
        assert_eq!(l.decides("t2", "d", Remember::Goal).unwrap().id, "ap-1");
        l.answered.push(answered("ap-2", "t1", "d", false));
        assert!(!l.decides("t1", "d", Remember::Task).unwrap().approved);
    }

    #[test]
    fn an_answer_file_for_another_ask_or_in_another_shape_is_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let a = Answer {
            id: "ap-0000000001".into(),
            digest: "d".into(),
            approved: true,
            by: "me".into(),
            note: Some("ok".into()),
        };
        leave(dir.path(), &a).unwrap();
        assert!(take(dir.path(), "ap-0000000002").is_none());
        assert_eq!(take(dir.path(), &a.id).unwrap().unwrap(), a);
        assert!(take(dir.path(), &a.id).is_none(), "taken once");
        std::fs::write(answer_file(dir.path(), "ap-0000000003"), "{").unwrap();
        assert!(take(dir.path(), "ap-0000000003").unwrap().is_err());
    }
}

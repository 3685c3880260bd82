//! The gate contract's data types, as plain Rust.
//!
//! Each type mirrors one item of `wit/v0.3.0/gate.wit` field for field; the
//! WIT file documents what every field means. [`GoalContext`] holds the
//! whole context: its [`Lazy`] fields are the ones gates ask the host for (since 0.2.0)
//! for (the `context` interface) rather than receive with every decision. These types are what gate
//! logic works with, natively (tests, benchmarks, the host) and inside a
//! component alike. Their JSON form uses `snake_case` field names, the names
//! of omk's files (`read_set`, `budget_secs`, …).

use serde::{Deserialize, Serialize};

use crate::Lazy;

/// A stage at which a gate judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Admission of a proposed task (`check-proposal`).
    Proposal,
    /// One step an agent asks to take while it works (`check-action`).
    Action,
    /// Acceptance of a finished task (`check-outcome`).
    Outcome,
}

impl Stage {
    /// Every stage, in the order a task meets them.
    pub const ALL: [Stage; 3] = [Stage::Proposal, Stage::Action, Stage::Outcome];

    /// The stage's name as written in files and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Proposal => "proposal",
            Stage::Action => "action",
            Stage::Outcome => "outcome",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a gate is; returned by `describe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateInfo {
    pub name: String,
    pub version: String,
    pub stages: Vec<Stage>,
    pub description: String,
}

/// The goal's budget as it stands when a decision is taken.
///
/// Time is agent-seconds; money is micro-USD (see the WIT file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budget {
    pub time_limit_secs: Option<u64>,
    pub time_spent_secs: u64,
    pub time_committed_secs: u64,
    pub token_limit: Option<u64>,
    pub tokens_spent: u64,
    pub usd_limit_micros: Option<u64>,
    pub usd_spent_micros: u64,
}

/// A task admitted earlier in the same wave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcceptedTask {
    pub id: String,
    pub read_set: Vec<String>,
    pub write_set: Vec<String>,
    pub dependencies: Vec<String>,
}

/// What a gate knows about the goal; frozen for the length of a wave.
///
/// The [`Lazy`] fields read like the values they hold (`ctx.goal_text.len()`,
/// `ctx.accepted_in_wave.iter()`); inside a component the first read
/// asks the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GoalContext {
    pub goal_id: String,
    pub goal_text: Lazy<String>,
    pub phase: String,
    pub now_ms: u64,
    pub budget: Budget,
    pub policy_roots: Vec<String>,
    pub accepted_in_wave: Lazy<Vec<AcceptedTask>>,
    pub existing_task_ids: Lazy<Vec<String>>,
}

/// A proposed task, or an admitted one in the action and outcome stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskProposal {
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub dependencies: Vec<String>,
    #[serde(default)]
    pub read_set: Vec<String>,
    #[serde(default)]
    pub write_set: Vec<String>,
    #[serde(default = "default_risk")]
    pub risk: String,
    #[serde(default)]
    pub acceptance: Vec<String>,
    #[serde(default)]
    pub budget_secs: u64,
    #[serde(default)]
    pub priority: i32,
}

fn default_risk() -> String {
    "low".to_owned()
}

impl TaskProposal {
    /// The part of a task that later proposals of the same wave are checked
    /// against.
    pub fn as_accepted(&self) -> AcceptedTask {
        AcceptedTask {
            id: self.id.clone(),
            read_set: self.read_set.clone(),
            write_set: self.write_set.clone(),
            dependencies: self.dependencies.clone(),
        }
    }
}

/// The kind of step an agent asks to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    WriteFile,
    DeleteFile,
    /// Read a file, or search a directory (new in 0.2.0).
    ReadFile,
    RunCommand,
    FetchUrl,
    /// Call a tool of an MCP server or a client (new in 0.3.0).
    CallTool,
    Other,
}

impl ActionKind {
    /// Whether the action changes a file named by its target.
    pub fn is_file_change(self) -> bool {
        matches!(self, ActionKind::WriteFile | ActionKind::DeleteFile)
    }
}

/// One step an agent asks to take while it works on a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentAction {
    pub task_id: String,
    pub kind: ActionKind,
    pub target: String,
    #[serde(default)]
    pub detail: String,
    /// For `run_command`: what the host parsed from `target` (new in 0.3.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<ParsedCommand>,
    /// For `call_tool`: the call (new in 0.3.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolCall>,
}

impl AgentAction {
    /// An action with no parse and no tool call (the host adds a
    /// command's parse before the gates are asked).
    pub fn new(
        task_id: impl Into<String>,
        kind: ActionKind,
        target: impl Into<String>,
        detail: impl Into<String>,
    ) -> AgentAction {
        AgentAction {
            task_id: task_id.into(),
            kind,
            target: target.into(),
            detail: detail.into(),
            command: None,
            tool: None,
        }
    }

    /// The simple commands of a parsed command line (none otherwise).
    pub fn commands(&self) -> &[SimpleCommand] {
        self.command.as_ref().map_or(&[], |c| c.commands.as_slice())
    }
}

/// How a simple command is joined to the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Joined {
    First,
    Pipe,
    And,
    Or,
    Then,
}

/// What a simple command sits inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Nesting {
    Subshell,
    Group,
    CommandSubstitution,
    ProcessSubstitution,
    Compound,
    Function,
    Wrapper,
}

/// The operator of a redirection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedirectOp {
    Write,
    Append,
    Clobber,
    Read,
    ReadWrite,
    WriteBoth,
    AppendBoth,
    Duplicate,
    Heredoc,
    Herestring,
    Process,
}

impl RedirectOp {
    /// Whether it writes to its target (`>`, `>>`, `>|`, `<>`, `&>`, `&>>`).
    pub fn writes(self) -> bool {
        matches!(
            self,
            RedirectOp::Write
                | RedirectOp::Append
                | RedirectOp::Clobber
                | RedirectOp::ReadWrite
                | RedirectOp::WriteBoth
                | RedirectOp::AppendBoth
        )
    }

    /// Whether it reads its target as a file (`<`, `<>`).
    pub fn reads(self) -> bool {
        matches!(self, RedirectOp::Read | RedirectOp::ReadWrite)
    }
}

/// One redirection of a simple command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd: Option<u32>,
    pub op: RedirectOp,
    pub target: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dynamic: bool,
}

/// One simple command of a parsed command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimpleCommand {
    pub words: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dynamic: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignments: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirections: Vec<Redirection>,
    pub joined: Joined,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub background: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nesting: Vec<Nesting>,
    #[serde(default)]
    pub directory: String,
}

impl SimpleCommand {
    /// The command's name (its first word), if it has one.
    pub fn name(&self) -> Option<&str> {
        self.words.first().map(String::as_str)
    }

    /// Whether word `i` is dynamic (not known before the command runs).
    pub fn is_dynamic(&self, i: usize) -> bool {
        self.dynamic.iter().any(|&d| d as usize == i)
    }

    /// Whether its words start with `prefix`, each word literal.
    pub fn starts_with(&self, prefix: &[&str]) -> bool {
        prefix.len() <= self.words.len()
            && prefix
                .iter()
                .enumerate()
                .all(|(i, p)| !self.is_dynamic(i) && self.words[i] == *p)
    }
}

/// How much of a command line the host could know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParseStatus {
    Parsed,
    Partial,
    Unparsed,
}

/// What the host parsed from a command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParsedCommand {
    pub status: ParseStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(default)]
    pub commands: Vec<SimpleCommand>,
}

/// A call of a tool: an MCP server's, or one a client defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    pub server: String,
    pub tool: String,
    /// JSON text.
    pub arguments: String,
    #[serde(default)]
    pub definition_digest: String,
}

/// Something recorded to show a criterion is met.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Evidence {
    pub kind: String,
    pub summary: String,
    pub path: Option<String>,
    pub criterion: Option<String>,
}

/// The result of one acceptance check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckResult {
    pub name: String,
    pub command: String,
    pub exit_code: Option<i32>,
    pub passed: bool,
    pub output_tail: String,
}

/// What a finished task produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskOutcome {
    pub task_id: String,
    pub changed_files: Vec<String>,
    pub evidence: Vec<Evidence>,
    pub checks: Vec<CheckResult>,
}

/// Why a gate said no.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Stable, machine-readable: `<gate>.<rule>`.
    pub code: String,
    /// For people.
    pub reason: String,
}

/// A gate's verdict. `Ask` (new in 0.3.0) only answers an action: allowed
/// once a person approves it; at a proposal or an outcome it counts as a
/// rejection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Decision {
    Accept,
    Reject(Rejection),
    Ask(Rejection),
}

impl Decision {
    /// A rejection with a stable `code` and a `reason` for people.
    pub fn reject(code: impl Into<String>, reason: impl Into<String>) -> Self {
        Decision::Reject(Rejection {
            code: code.into(),
            reason: reason.into(),
        })
    }

    /// An ask: allowed once a person approves; `code` names the rule.
    pub fn ask(code: impl Into<String>, reason: impl Into<String>) -> Self {
        Decision::Ask(Rejection {
            code: code.into(),
            reason: reason.into(),
        })
    }

    /// Whether this is an acceptance.
    pub fn is_accept(&self) -> bool {
        matches!(self, Decision::Accept)
    }

    /// Whether this asks a person.
    pub fn is_ask(&self) -> bool {
        matches!(self, Decision::Ask(_))
    }

    /// The rejection's (or the ask's) code and reason, if this is not an
    /// acceptance.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Decision::Accept => None,
            Decision::Reject(r) | Decision::Ask(r) => Some(r),
        }
    }

    /// This decision where no person can be asked (a proposal, an
    /// outcome): an ask becomes a rejection with the same code and reason.
    pub fn without_ask(self) -> Decision {
        match self {
            Decision::Ask(r) => Decision::Reject(r),
            d => d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposal_json_uses_file_names_and_defaults() {
        let p: TaskProposal =
            serde_json::from_str(r#"{"id":"a","write_set":["README.md"],"budget_secs":120}"#)
                .unwrap();
        assert_eq!(p.write_set, ["README.md"]);
        assert_eq!(p.budget_secs, 120);
        assert_eq!(p.risk, "low");
    }

    #[test]
    fn proposal_json_refuses_unknown_fields() {
        // A typo must not silently drop a write set.
        let err = serde_json::from_str::<TaskProposal>(r#"{"id":"a","writeset":["x"]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("writeset"), "{err}");
    }

    #[test]
    fn decision_json_is_tagged() {
        let d = Decision::reject("path.conflict", "overlaps");
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"verdict":"reject","code":"path.conflict","reason":"overlaps"}"#
        );
        assert_eq!(
            serde_json::to_string(&Decision::Accept).unwrap(),
            r#"{"verdict":"accept"}"#
        );
    }
}

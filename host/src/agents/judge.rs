//! Judging what an agent asks to do, in one place: each backend turns its
//! client's request into actions (a kind and a target) and asks a
//! [`Judge`], which asks the gates through the task's [`Hooks`] in order
//! and stops at the first refusal. While planning there is no task, and
//! nothing may change: every request is refused without asking the gates.

use omk_gate_sdk::{ActionKind, AgentAction, ToolCall};

use super::{Hooks, Permit};

/// One action a client's request would take: its kind and target, and for
/// a tool call the call itself. A `(kind, target)` pair is one too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub kind: ActionKind,
    pub target: String,
    pub tool: Option<ToolCall>,
}

impl From<(ActionKind, String)> for Step {
    fn from((kind, target): (ActionKind, String)) -> Step {
        Step {
            kind,
            target,
            tool: None,
        }
    }
}

impl Step {
    /// The call of tool `name` with `arguments`, where `name` is an MCP
    /// tool as clients name them (`mcp__<server>__<tool>`); `None` for a
    /// client's own tool.
    pub fn mcp(name: &str, arguments: &serde_json::Value) -> Option<Step> {
        let (server, tool) = name.strip_prefix("mcp__")?.split_once("__")?;
        Step::tool_call(server, tool, arguments)
    }

    /// The call of `tool` of MCP server `server` with `arguments`, named
    /// as clients name it (`mcp__<server>__<tool>`); `None` when either
    /// name is empty.
    pub fn tool_call(server: &str, tool: &str, arguments: &serde_json::Value) -> Option<Step> {
        if server.is_empty() || tool.is_empty() {
            return None;
        }
        Some(Step {
            kind: ActionKind::CallTool,
            target: format!("mcp__{server}__{tool}"),
            tool: Some(ToolCall {
                server: server.to_owned(),
                tool: tool.to_owned(),
                arguments: arguments.to_string(),
                definition_digest: String::new(),
            }),
        })
    }
}

/// The refusal of any change while an agent plans.
pub const PLANNING: &str = "nothing may change while planning";

/// Asks the gates about the actions of task `task` (`None`: planning).
#[derive(Clone, Copy)]
pub struct Judge<'a> {
    hooks: &'a dyn Hooks,
    task: Option<&'a str>,
}

impl<'a> Judge<'a> {
    pub fn new(hooks: &'a dyn Hooks, task: Option<&'a str>) -> Judge<'a> {
        Judge { hooks, task }
    }

    /// Judges one action; `detail` says which request of the client asked.
    pub fn one(&self, kind: ActionKind, target: impl Into<String>, detail: &str) -> Permit {
        self.all([(kind, target.into())], detail)
    }

    /// Judges `actions` in order; the first refusal is the answer, and the
    /// actions after it are not asked about. No actions: allowed.
    pub fn all<S: Into<Step>>(&self, actions: impl IntoIterator<Item = S>, detail: &str) -> Permit {
        let Some(task) = self.task else {
            return Permit::Refused(PLANNING.into());
        };
        for step in actions {
            let step = step.into();
            let mut action = AgentAction::new(task, step.kind, step.target, detail);
            action.tool = step.tool;
            let permit = with_its_files(self.hooks, action);
            if !permit.allowed() {
                return permit;
            }
        }
        Permit::Allowed
    }
}

/// Judges `action` and each file action it takes that omk can know, as
/// the writes, deletes and reads they are, through the same path rules as
/// a client's own file tools: for a command, those of its parse
/// ([`crate::command::derived`]: its redirections, the operands of `rm`,
/// `mv`, `tee`, `chmod`, …); for a tool call, the files its arguments name
/// ([`crate::mcp::paths::named`]). The first refusal answers, naming the
/// command or argument and the path.
pub fn with_its_files(hooks: &dyn Hooks, action: AgentAction) -> Permit {
    let action = crate::command::with_parse(action);
    let files: Vec<(ActionKind, String, String)> =
        match (&action.kind, &action.command, &action.tool) {
            (ActionKind::RunCommand, Some(parsed), _) => crate::command::derived(parsed)
                .into_iter()
                .map(|d| (d.kind, d.target, format!("`{}`", d.command)))
                .collect(),
            (ActionKind::CallTool, _, Some(call)) => match hooks.tool_paths() {
                Some(table) => crate::mcp::paths::named(call, table)
                    .into_iter()
                    .map(|n| (n.kind, n.target, n.by))
                    .collect(),
                None => Vec::new(),
            },
            _ => Vec::new(),
        };
    let (task, detail) = (action.task_id.clone(), action.detail.clone());
    let tool = action.tool.clone();
    let permit = hooks.action(action);
    if !permit.allowed() {
        return permit;
    }
    for (kind, target, by) in files {
        let verb = match kind {
            ActionKind::DeleteFile => "delete",
            ActionKind::ReadFile => "read",
            _ => "write",
        };
        let file = AgentAction::new(
            task.clone(),
            kind,
            target.clone(),
            format!("{by} would {verb} it ({detail})"),
        );
        let permit = hooks.action(file);
        if let Permit::Refused(reason) | Permit::Ask(reason) = &permit {
            let reason = reason.clone();
            if let Some(call) = tool {
                // The call was allowed as a call: its record says it was not.
                let refused = crate::proof::events::ToolRefused {
                    server: call.server,
                    tool: call.tool,
                    file: target.clone(),
                    reason: reason.clone(),
                };
                hooks.note(
                    <crate::proof::events::ToolRefused as crate::proof::events::NoteDetail>::NOTE,
                    serde_json::to_value(refused).unwrap_or_default(),
                );
            }
            let why = format!("{by} would {verb} `{target}`: {reason}");
            return match permit {
                Permit::Ask(_) => Permit::Ask(why),
                _ => Permit::Refused(why),
            };
        }
    }
    Permit::Allowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Hooks that refuse targets starting with `no` and record what was asked.
    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>, omk_core::mcp::ToolPathTable);

    impl Hooks for Recording {
        fn action(&self, a: AgentAction) -> Permit {
            self.0.lock().unwrap().push(a.target.clone());
            if a.target.starts_with("no") {
                Permit::Refused(format!("`{}` is refused", a.target))
            } else {
                Permit::Allowed
            }
        }
        fn note(&self, _: &str, _: serde_json::Value) {}
        fn process_started(&self, _: u32) {}
        fn tool_paths(&self) -> Option<&omk_core::mcp::ToolPathTable> {
            Some(&self.1)
        }
    }

    #[test]
    fn the_first_refusal_answers_and_later_actions_are_not_asked() {
        let hooks = Recording::default();
        let judge = Judge::new(&hooks, Some("t"));
        let actions = ["a", "no-b", "c"].map(|t| (ActionKind::WriteFile, t.to_owned()));
        assert_eq!(
            judge.all(actions, "test"),
            Permit::Refused("`no-b` is refused".into())
        );
        assert_eq!(*hooks.0.lock().unwrap(), ["a", "no-b"]);
        assert_eq!(
            judge.one(ActionKind::RunCommand, "ls", "test"),
            Permit::Allowed
        );
    }

    #[test]
    fn a_commands_files_are_judged_after_it_and_the_first_refusal_names_both() {
        let hooks = Recording::default();
        let judge = Judge::new(&hooks, Some("t"));
        let permit = judge.one(ActionKind::RunCommand, "cat a > b; rm no-such", "test");
        assert_eq!(
            permit,
            Permit::Refused("`rm no-such` would delete `no-such`: `no-such` is refused".into())
        );
        assert_eq!(
            *hooks.0.lock().unwrap(),
            ["cat a > b; rm no-such", "b", "no-such"]
        );
    }

    #[test]
    fn a_tool_calls_files_are_judged_after_it_as_the_table_names_them() {
        let mut hooks = Recording::default();
        hooks.1.insert(
            "fs/write_file".into(),
            omk_core::mcp::ToolPaths {
                write: vec!["/path".into()],
                read: Vec::new(),
            },
        );
        let judge = Judge::new(&hooks, Some("t"));
        let args = serde_json::json!({"path": "no-way", "content": "x"});
        let step = Step::mcp("mcp__fs__write_file", &args).unwrap();
        assert_eq!(
            judge.all([step], "test"),
            Permit::Refused(
                "`fs/write_file` with `/path` would write `no-way`: `no-way` is refused".into()
            )
        );
        assert_eq!(*hooks.0.lock().unwrap(), ["mcp__fs__write_file", "no-way"]);
    }

    #[test]
    fn mcp_tools_are_tool_calls_and_the_clients_own_are_not() {
        let args = serde_json::json!({"path": "/etc/passwd"});
        let s = Step::mcp("mcp__filesystem__write_file", &args).unwrap();
        assert_eq!(s.kind, ActionKind::CallTool);
        let t = s.tool.unwrap();
        assert_eq!(
            (t.server.as_str(), t.tool.as_str()),
            ("filesystem", "write_file")
        );
        assert_eq!(t.arguments, r#"{"path":"/etc/passwd"}"#);
        assert!(Step::mcp("TodoWrite", &args).is_none());
        assert!(Step::mcp("mcp__nameonly", &args).is_none());
    }

    #[test]
    fn while_planning_nothing_is_asked_and_everything_refused() {
        let hooks = Recording::default();
        let judge = Judge::new(&hooks, None);
        assert_eq!(
            judge.one(ActionKind::WriteFile, "a", "test"),
            Permit::Refused(PLANNING.into())
        );
        assert!(hooks.0.lock().unwrap().is_empty());
    }
}

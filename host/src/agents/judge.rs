//! Judging what an agent asks to do, in one place: each backend turns its
//! client's request into actions (a kind and a target) and asks a
//! [`Judge`], which asks the gates through the task's [`Hooks`] in order
//! and stops at the first refusal. While planning there is no task, and
//! nothing may change: every request is refused without asking the gates.

use omk_gate_sdk::{ActionKind, AgentAction};

use super::{Hooks, Permit};

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
    pub fn all(
        &self,
        actions: impl IntoIterator<Item = (ActionKind, String)>,
        detail: &str,
    ) -> Permit {
        let Some(task) = self.task else {
            return Permit::Refused(PLANNING.into());
        };
        for (kind, target) in actions {
            let permit = self.hooks.action(AgentAction {
                task_id: task.to_owned(),
                kind,
                target,
                detail: detail.to_owned(),
            });
            if !permit.allowed() {
                return permit;
            }
        }
        Permit::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Hooks that refuse targets starting with `no` and record what was asked.
    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>);

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

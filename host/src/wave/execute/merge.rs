//! Landing accepted work: committed on the task's branch with the log's
//! head in an `Omk-Log:` trailer, then — under the `integrate` policy —
//! merged into the goal's integration branch, one task at a time. A
//! conflict fails the task with both branches left as they were.

use omk_gate_sdk::Evidence;

use super::Executor;
use super::attempt::Started;
use crate::goal::{GoalError, MergePolicy};
use crate::proof::events;
use crate::worktree::{self, Merge};

impl Executor {
    /// Commits and merges the work of attempt `st`: its commit (`None`
    /// when it changed nothing) and whether it was merged, or `None` when
    /// the attempt ended here.
    pub(super) async fn land(
        &self,
        st: &Started,
    ) -> Result<Option<(Option<String>, bool)>, GoalError> {
        let (id, wt) = (st.id.as_str(), &st.wt);
        let trailer = self.session().log_trailer()?;
        let message = format!(
            "omk: {} ({id})\n\ngoal {}, task {id}\n\n{trailer}",
            first_line(&st.task.title, id),
            self.goal_id
        );
        let commit = match self.git(|| worktree::commit(&self.repo, wt, &message)) {
            Ok(c) => c,
            Err(e) => {
                let reason = format!("cannot commit its work: {e}");
                self.end_attempt(id, wt, &reason, "omk.git", false)?;
                return Ok(None);
            }
        };
        if self.merge_policy != MergePolicy::Integrate || commit.is_none() {
            return Ok(Some((commit, false)));
        }
        match self.merge(&st.branch, id).await {
            Ok(Merge::Merged(head)) => {
                self.log(
                    events::OMK,
                    &events::TaskMerged {
                        task_id: id.to_owned(),
                        branch: st.branch.clone(),
                        into: worktree::integration_branch(&self.goal_id),
                        commit: head,
                    },
                );
                Ok(Some((commit, true)))
            }
            Ok(Merge::Conflict(files)) => {
                if let Some(t) = self.session().graph.get_mut(id) {
                    t.add_evidence(Evidence {
                        kind: "merge-conflict".into(),
                        summary: format!(
                            "conflicts with the integration branch in: {}",
                            files.join(", ")
                        ),
                        path: files.first().cloned(),
                        criterion: None,
                    });
                }
                let reason = format!(
                    "its work conflicts with the integration branch in {}; both branches are kept as they were",
                    files.join(", ")
                );
                self.end_attempt(id, wt, &reason, "omk.merge-conflict", false)?;
                Ok(None)
            }
            Err(e) => {
                let reason = format!("cannot merge its work: {e}");
                self.end_attempt(id, wt, &reason, "omk.git", false)?;
                Ok(None)
            }
        }
    }

    /// Merges `branch` into the integration branch, in its own worktree.
    async fn merge(&self, branch: &str, id: &str) -> Result<Merge, worktree::GitError> {
        let _one_at_a_time = self.merging.lock().await;
        let dir = self.dir.integration_worktree();
        let integration = worktree::integration_branch(&self.goal_id);
        let trailer = self
            .session()
            .log_trailer()
            .map_err(|e| worktree::GitError {
                args: "merge".into(),
                dir: dir.clone(),
                detail: format!("cannot make the log durable first: {e}"),
            })?;
        self.git(|| worktree::ensure(&self.repo, &dir, &integration, &self.base))?;
        self.git(|| worktree::merge(&dir, branch, &format!("omk: merge task {id}\n\n{trailer}")))
    }
}

/// The first line of a task's title, for its commit message.
fn first_line<'a>(title: &'a str, fallback: &'a str) -> &'a str {
    title
        .lines()
        .next()
        .filter(|l| !l.trim().is_empty())
        .unwrap_or(fallback)
}

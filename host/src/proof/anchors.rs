//! A goal's log verified against everything that anchors it: this
//! machine's log key (and any key the user names), `checkpoint.json`, and
//! the `Omk-Log:` trailers of omk's commits in the goal's repository. What
//! each catches is in [`crate::proof::log`]'s docs.

use std::path::Path;

use omk_signing::PublicKey;

use super::log::{self, LogError, Trailer, Verification, VerifyOptions};
use crate::goal::Goal;

/// What to trust beyond this machine's own key.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Keys whose checkpoints also count (a log made on another machine).
    pub keys: Vec<PublicKey>,
    /// Accept a log without checkpoints (from an omk before them).
    pub allow_unanchored: bool,
}

/// Verifies the log in `dir` of `goal` (its repository's trailers are
/// checked when `goal` is given and its project is at hand).
pub fn verify_goal(
    dir: &Path,
    goal: Option<&Goal>,
    trust: &Trust,
) -> Result<Verification, LogError> {
    scan_goal(dir, goal, trust, |_| {})
}

/// [`verify_goal`], giving `f` every event that parses as it goes (see
/// [`log::scan`]).
pub fn scan_goal(
    dir: &Path,
    goal: Option<&Goal>,
    trust: &Trust,
    f: impl FnMut(super::Event),
) -> Result<Verification, LogError> {
    let mut keys = trust.keys.clone();
    match crate::keys::dir().and_then(|d| crate::keys::existing_log_key(&d)) {
        Ok(Some(k)) => keys.push(k.public()),
        Ok(None) => {}
        Err(e) => tracing::warn!("this machine's log key is unusable: {e}"),
    }
    let trailers = goal.map(trailers_of).unwrap_or_default();
    let opts = VerifyOptions {
        trusted: Some(keys),
        trailers,
        allow_unanchored: trust.allow_unanchored,
    };
    log::scan(dir, &opts, f)
}

/// The log heads in the trailers of the goal's commits; none where the
/// project is gone or not a repository.
fn trailers_of(goal: &Goal) -> Vec<Trailer> {
    match crate::worktree::trailer_commits(&goal.project_dir, &goal.id) {
        Ok(commits) => commits
            .iter()
            .filter_map(|(c, m)| Trailer::parse(c, m))
            .collect(),
        Err(e) => {
            tracing::debug!("no commit trailers checked for goal `{}`: {e}", goal.id);
            Vec::new()
        }
    }
}

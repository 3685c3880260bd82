//! One way to read any error omk returns: its [`Kind`] (and so the exit
//! code) and its `help:` line.
//!
//! Each error type implements [`Diagnose`] next to its definition. The
//! kinds, their exit codes and the rule for undiagnosed errors are in
//! [`omk_core::diagnose`]. An error reaches the command line through
//! `anyhow`, which erases its type; [`diagnose`] finds omk's errors in the
//! chain again through the one list below — adding an error type means
//! adding it there.

use std::error::Error as StdError;

pub use omk_core::diagnose::{Diagnose, Kind, REJECTED_EXIT, io_kind};

/// What is known about a failed command's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub kind: Kind,
    /// The first fix any error in the chain offers.
    pub help: Option<String>,
}

/// An error found at the command line, with its fix.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Help {
    pub message: String,
    pub help: String,
}

impl Diagnose for Help {
    fn help(&self) -> Option<String> {
        Some(self.help.clone())
    }
}

/// Every error type of omk, for finding them behind `dyn Error`.
macro_rules! find_diagnosable {
    ($($ty:ty),* $(,)?) => {
        fn as_diagnose<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a dyn Diagnose> {
            $(
                if let Some(d) = e.downcast_ref::<$ty>() {
                    return Some(d);
                }
            )*
            None
        }
    };
}

find_diagnosable![
    Help,
    crate::wave::execute::StartError,
    crate::goal::GoalError,
    crate::goal::StoreError,
    crate::goal::BudgetError,
    crate::gates::GatesError,
    crate::guard::install::InstallError,
    crate::guard::confine::RunError,
    crate::mcp::McpError,
    crate::mcp::pins::PinError,
    crate::approvals::ApprovalError,
    crate::gates::LoadError,
    crate::gates::ConfigError,
    crate::gates::EngineError,
    crate::gates::bundle::BundleError,
    crate::gates::cases::CasesError,
    crate::agents::AgentError,
    crate::author::ProjectError,
    crate::author::BuildError,
    crate::author::TemplateError,
    crate::sandbox::SandboxError,
    crate::keys::KeyError,
    crate::worktree::GitError,
    crate::graph::GraphError,
    omk_core::lifecycle::TransitionError,
    crate::proof::LogError,
    crate::dispatch::hub::HubError,
];

/// Reads `err` and its causes: the kind is the outermost one known (an
/// I/O error's by [`io_kind`]; [`Kind::Usage`] when none is), the help the
/// first offered.
pub fn diagnose(err: &(dyn StdError + 'static)) -> Diagnosis {
    let mut kind = None;
    let mut help = None;
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(d) = as_diagnose(e) {
            kind = kind.or(Some(d.kind()));
            help = help.or_else(|| d.help());
        } else if let Some(io) = e.downcast_ref::<std::io::Error>() {
            kind = kind.or(Some(io_kind(io)));
        }
        cause = e.source();
    }
    Diagnosis {
        kind: kind.unwrap_or(Kind::Usage),
        help,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_error_keeps_its_kind_and_its_help() {
        let store = crate::goal::StoreError::Locked {
            id: "g".into(),
            pid: Some(7),
        };
        let goal = crate::goal::GoalError::from(store);
        let start = crate::wave::execute::StartError::from(goal);
        let d = diagnose(&start);
        assert_eq!(d.kind, Kind::System);
        assert!(d.help.is_some_and(|h| h.contains("--wait")));
    }

    #[test]
    fn the_outermost_kind_wins_and_a_bare_io_error_is_read_by_its_kind() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(diagnose(&full).kind, Kind::System);
        let tampered = crate::gates::bundle::BundleError::new("b", "changed", None).integrity();
        let d = diagnose(&tampered);
        assert_eq!((d.kind, d.help), (Kind::Integrity, None));
        let plain = std::fmt::Error;
        assert_eq!(diagnose(&plain).kind, Kind::Usage);
    }
}

//! What kind of failure an error is, and how to fix it.
//!
//! Every error type omk defines implements [`Diagnose`]: its [`Kind`]
//! decides the exit code of the command that failed, and its `help` is the
//! `help:` line printed under it. The kinds and their codes:
//!
//! | exit | kind                  | meaning                                                        |
//! |------|-----------------------|----------------------------------------------------------------|
//! | 0    | —                     | done                                                           |
//! | 1    | (a rejection)         | a gate refused, a test failed, a check found a difference      |
//! | 2    | [`Kind::Usage`]       | the input is wrong: arguments, a config, a plan, a missing file |
//! | 3    | [`Kind::Integrity`]   | something signed or hashed does not hold: a bundle's signature, a pinned digest, a rollback, damaged state |
//! | 4    | [`Kind::System`]      | the machine failed: a write, a sync, a lock, the kernel lacks what omk needs |
//! | 5    | [`Kind::Internal`]    | omk broke its own rules: a bug                                 |
//!
//! A rejection is not an error: commands return it as their outcome. An
//! error nobody diagnosed is a usage error (exit 2), the most common kind at
//! the command line.

/// The kind of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The input is wrong; the user fixes it.
    Usage,
    /// Something signed, pinned or hash-chained does not hold.
    Integrity,
    /// The machine failed: I/O, locks, the kernel.
    System,
    /// A bug in omk.
    Internal,
}

impl Kind {
    /// The process exit code for a command that failed this way.
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Usage => 2,
            Kind::Integrity => 3,
            Kind::System => 4,
            Kind::Internal => 5,
        }
    }

    /// A one-word name for `--json` output and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Usage => "usage",
            Kind::Integrity => "integrity",
            Kind::System => "system",
            Kind::Internal => "internal",
        }
    }
}

/// The exit code of a command whose answer is "no" (see the table above).
pub const REJECTED_EXIT: u8 = 1;

/// What an error knows about itself beyond its message.
pub trait Diagnose {
    /// Its kind; [`Kind::Usage`] unless the type says otherwise.
    fn kind(&self) -> Kind {
        Kind::Usage
    }

    /// The fix to print under it as `help:`, if there is one.
    fn help(&self) -> Option<String> {
        None
    }
}

/// The kind of an I/O failure: a missing file or a refused permission is
/// the user's to fix; anything else is the machine's.
pub fn io_kind(e: &std::io::Error) -> Kind {
    use std::io::ErrorKind as E;
    match e.kind() {
        E::NotFound | E::PermissionDenied | E::AlreadyExists | E::InvalidInput => Kind::Usage,
        _ => Kind::System,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_own_exit_code_and_none_is_a_rejection() {
        let kinds = [Kind::Usage, Kind::Integrity, Kind::System, Kind::Internal];
        let mut codes: Vec<u8> = kinds.iter().map(|k| k.exit_code()).collect();
        codes.push(REJECTED_EXIT);
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len() + 1);
        assert!(!codes.contains(&0));
    }

    #[test]
    fn a_missing_file_is_the_users_and_a_full_disk_the_machines() {
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(io_kind(&missing), Kind::Usage);
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(io_kind(&full), Kind::System);
    }
}

//! Confinement: the kernel enforces what the gates decided.
//!
//! The gates judge a *description* of what an agent is about to do; a
//! shell command, a `run:` check or a tool the hooks do not see could do
//! something else. So every process omk starts for a task — each agent
//! backend's client and all its descendants, the scripted agent's `run`
//! steps, every `run:` check, and an agent's planning session — starts
//! confined to a [`Profile`] derived from the admitted task, deny by
//! default:
//!
//! | what | allowed |
//! |---|---|
//! | write | the task's worktree; a private `TMPDIR` and `HOME` for the task; what `[sandbox] write` grants |
//! | read | those, the system and toolchain directories (`/usr`, `/lib*`, `/bin`, `/sbin`, `/etc`, `/opt`, `/sys`, `/proc`), the directories of the programs on `PATH`, the client's own install, the repository's git metadata (read only: omk commits), and what `[sandbox] read` grants — **not** the rest of the user's home, other tasks' worktrees, the project's checkout, the goal's state, or omk's cache and keys |
//! | devices | `/dev/null`, `/dev/zero`, `/dev/full`, `/dev/tty` read and write; `/dev/random`, `/dev/urandom` read |
//! | TCP | connect only to the egress [`proxy`] omk runs on 127.0.0.1 and to the agent's model endpoint where it is a loopback address; no bind |
//! | sockets | no UDP, raw, packet or netlink sockets, and no new `AF_UNIX` socket (pairs of connected ones are fine) |
//! | signals, abstract sockets | only within the task's own processes |
//!
//! The filesystem, TCP and scoping rules are Landlock's (the kernel's
//! unprivileged access control; ABI 6, Linux 6.12, for all of them); the
//! socket rules are a seccomp filter, since Landlock on this kernel does
//! not cover UDP or UNIX sockets. Both are built once per task attempt in
//! omk ([`Confinement::prepare`]); one thread of omk restricts itself with
//! them and starts every process of the task ([`Confinement::spawn`]),
//! which inherits the restrictions. omk's other threads are never
//! restricted, and a confined start costs about what an unconfined one
//! does: nothing runs between `fork` and `exec`, so the standard library
//! keeps starting processes with `posix_spawn` (the benchmark prints the
//! figure).
//!
//! Fail closed: where the kernel cannot enforce a rule the profile needs,
//! [`Confinement::prepare`] refuses, naming the rule and the ABI it needs,
//! and no agent starts; `[sandbox] mode = "off"` runs unconfined, and the
//! proof lists that as a gap.
//!
//! What is not enforced, and why, is in README.md ("Confinement").

mod enforce;
mod profile;
pub mod proxy;

pub use enforce::{Confinement, landlock_abi};
pub use profile::{ClientState, Profile, ProfileInputs, host_port};

pub use omk_core::sandbox::{SandboxMode, SandboxSettings};

/// The Landlock ABI every rule of a profile needs: filesystem (1), TCP
/// ports (4), signal and abstract-socket scoping (6).
pub const REQUIRED_ABI: i32 = 6;

/// One rule of a profile, and whether this kernel can enforce it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelRule {
    pub rule: &'static str,
    /// The Landlock ABI it needs (0 for the seccomp filter).
    pub needs_abi: i32,
    pub usable: bool,
}

/// What this kernel can enforce of a profile, rule by rule, for `omk doctor`.
pub fn kernel_rules() -> (i32, Vec<KernelRule>) {
    let abi = landlock_abi();
    // SAFETY: PR_GET_SECCOMP only reads the calling thread's mode.
    let seccomp = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) } >= 0;
    let rules = [
        ("filesystem: read, write, execute by folder", 1),
        ("TCP: connect and bind by port", 4),
        ("signals and abstract UNIX sockets scoped to the task", 6),
    ]
    .into_iter()
    .map(|(rule, needs_abi)| KernelRule {
        rule,
        needs_abi,
        usable: abi >= needs_abi,
    })
    .chain(std::iter::once(KernelRule {
        rule: "seccomp: no UDP, raw, packet, netlink or new UNIX sockets",
        needs_abi: 0,
        usable: seccomp,
    }))
    .collect();
    (abi, rules)
}

/// Refuses, before any task starts, where `settings` asks for confinement
/// this kernel cannot give.
pub fn check_kernel(settings: &SandboxSettings) -> Result<(), SandboxError> {
    if settings.mode == SandboxMode::Off {
        return Ok(());
    }
    let abi = landlock_abi();
    if abi < REQUIRED_ABI {
        return Err(SandboxError {
            message: enforce::missing_abi(abi),
        });
    }
    Ok(())
}

/// Why a task cannot be confined.
#[derive(Debug, thiserror::Error)]
#[error("cannot confine the task's processes: {message}")]
pub struct SandboxError {
    pub message: String,
}

impl omk_core::diagnose::Diagnose for SandboxError {
    fn kind(&self) -> omk_core::diagnose::Kind {
        omk_core::diagnose::Kind::System
    }

    fn help(&self) -> Option<String> {
        Some(
            "omk confines every process it starts for a task with Landlock (Linux 6.12 or newer, \
             Landlock enabled at boot) and seccomp; `omk doctor` shows what this kernel offers. \
             To run unconfined, set `[sandbox] mode = \"off\"` in .omk/gates.toml (the proof lists the gap)"
                .into(),
        )
    }
}

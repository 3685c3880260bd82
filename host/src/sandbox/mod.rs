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
//! | TCP | connect only to the egress [`proxy`] omk runs on 127.0.0.1 and to the agent's model endpoint where it is a loopback address — by address and port: the run has a network namespace of its own whose only listeners are omk's relays to those ports ([`netns`]); no bind, but for a client that serves itself (OpenCode's `opencode acp`): one port, free when the profile was made, it may listen on and connect to (`tcp_serve`), never relayed out |
//! | sockets and system calls | an allow-list ([`seccomp`]): TCP over IPv4/IPv6 only, `AF_UNIX` pairs (new `AF_UNIX` sockets with `[sandbox] unix_sockets`); no io_uring, namespaces, mounts, `TIOCSTI`, bpf or keyrings; any system call the list does not name fails |
//! | `deny_read` | hidden from every process of the run by a mount namespace of its own ([`hide`]) |
//! | credentials | the run holds placeholders; omk puts the keys back on requests to their endpoints ([`secrets`]) |
//! | signals, abstract sockets | only within the task's own processes |
//!
//! The filesystem, TCP port and scoping rules are Landlock's (the kernel's
//! unprivileged access control; ABI 6, Linux 6.12, for all of them); the
//! system calls a seccomp filter's; the namespaces are made in the user
//! namespace omk enters at start. Where the namespaces cannot be made, TCP
//! is held by port only and `deny_read` is only judged: the profile
//! records it (`network_fallback`) and the proof lists the gap. Both are built once per task attempt in
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
mod hide;
pub mod netns;
mod profile;
pub mod proxy;
mod seccomp;
pub mod secrets;

pub use enforce::{Confinement, landlock_abi};
pub use profile::{ClientState, Network, Profile, ProfileInputs, VaultRef, host_port};

pub use omk_core::sandbox::{SandboxMode, SandboxSettings};

/// The Landlock ABI every rule of a profile needs: filesystem (1), TCP
/// ports (4), signal and abstract-socket scoping (6).
pub const REQUIRED_ABI: i32 = 6;

/// One rule of a profile, and whether this kernel can enforce it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelRule {
    pub rule: &'static str,
    /// What enforces it: `Landlock ABI N`, `seccomp`, `namespaces`, `omk`.
    pub by: String,
    /// The Landlock ABI it needs (0 for the others).
    pub needs_abi: i32,
    pub usable: bool,
    /// Whether no task starts confined without it; a rule that is not
    /// required falls back, and the proof lists the gap.
    pub required: bool,
    /// Why it is not usable, or what it falls back to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// What this kernel can enforce of a profile, rule by rule, for `omk doctor`.
pub fn kernel_rules() -> (i32, Vec<KernelRule>) {
    let abi = landlock_abi();
    // SAFETY: PR_GET_SECCOMP only reads the calling thread's mode.
    let seccomp = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) } >= 0;
    let mut rules: Vec<KernelRule> = [
        ("filesystem: read, write, execute by folder", 1),
        ("TCP: connect and bind by port", 4),
        ("signals and abstract UNIX sockets scoped to the task", 6),
    ]
    .into_iter()
    .map(|(rule, needs_abi)| KernelRule {
        rule,
        by: format!("Landlock ABI {needs_abi}"),
        needs_abi,
        usable: abi >= needs_abi,
        required: true,
        why: (abi < needs_abi).then(|| enforce::missing_abi(abi)),
    })
    .collect();
    rules.push(KernelRule {
        rule: "system calls: an allow-list (TCP sockets only; no io_uring, namespaces, mounts)",
        by: "seccomp".into(),
        needs_abi: 0,
        usable: seccomp,
        required: true,
        why: (!seccomp).then(|| "this kernel has no seccomp filters".to_owned()),
    });
    let ns = netns::available();
    for rule in [
        "TCP by address: a network namespace per run, relays to the allowed ports",
        "`deny_read` hidden: a mount namespace per run",
    ] {
        rules.push(KernelRule {
            rule,
            by: "namespaces".into(),
            needs_abi: 0,
            usable: ns.is_ok(),
            required: false,
            why: ns.clone().err().map(|e| {
                format!("{e}; falls back to Landlock's ports, and the proof lists the gap")
            }),
        });
    }
    rules.push(KernelRule {
        rule: "credentials outside the sandbox: placeholders, keys put back by omk",
        by: "omk".into(),
        needs_abi: 0,
        usable: ns.is_ok(),
        required: false,
        why: ns.err().map(|_| {
            "only for endpoints reached through the egress proxy: a loopback endpoint needs the network namespace"
                .to_owned()
        }),
    });
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

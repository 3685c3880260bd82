//! Enforcing a [`Profile`]: a Landlock ruleset and a seccomp filter, built
//! in omk and applied in each child between `fork` and `exec`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, Scope,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::{Profile, REQUIRED_ABI, SandboxError, SandboxMode};

/// The Landlock ABI the running kernel offers (0: none).
pub fn landlock_abi() -> i32 {
    // SAFETY: with a null attribute, size 0 and the VERSION flag the call
    // only returns the ABI version (or -1).
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    i32::try_from(v).unwrap_or(0).max(0)
}

/// What is missing where the kernel offers Landlock ABI `abi`.
pub(super) fn missing_abi(abi: i32) -> String {
    if abi == 0 {
        "this kernel has no Landlock (omk needs Linux 6.12 or newer, with `landlock` in the `lsm=` boot list)".into()
    } else {
        format!(
            "this kernel offers Landlock ABI {abi}; omk needs ABI {REQUIRED_ABI} (Linux 6.12): filesystem rules (ABI 1), TCP port rules (ABI 4), signal and abstract-socket scoping (ABI 6)"
        )
    }
}

/// A profile made ready to apply: the ruleset's file descriptor and the
/// compiled seccomp filter. Cheap to clone; apply it to any number of
/// processes.
#[derive(Debug, Clone)]
pub struct Confinement {
    inner: Option<Arc<Ready>>,
    env: Vec<(String, String)>,
    handed: Option<std::path::PathBuf>,
}

#[derive(Debug)]
struct Ready {
    ruleset: OwnedFd,
    filter: BpfProgram,
}

impl Confinement {
    /// No confinement (`[sandbox] mode = "off"`, or omk's own tools).
    pub fn none() -> Confinement {
        Confinement {
            inner: None,
            env: Vec::new(),
            handed: None,
        }
    }

    /// Builds the Landlock ruleset and the seccomp filter of `profile`;
    /// refuses where the kernel cannot enforce every rule.
    pub fn prepare(profile: &Profile) -> Result<Confinement, SandboxError> {
        if profile.mode == SandboxMode::Off {
            return Ok(Confinement::none());
        }
        let abi = landlock_abi();
        if abi < REQUIRED_ABI {
            return Err(SandboxError {
                message: missing_abi(abi),
            });
        }
        let e = |what: &str, detail: String| SandboxError {
            message: format!("{what}: {detail}"),
        };
        let target = ABI::V6;
        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(AccessFs::from_all(target))
            .and_then(|r| r.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp))
            .and_then(|r| r.scope(Scope::Signal | Scope::AbstractUnixSocket))
            .and_then(|r| r.create())
            .map_err(|x| e("the Landlock ruleset", x.to_string()))?;
        let rw = AccessFs::from_all(target);
        let ro = AccessFs::from_read(target);
        for (paths, access) in [(&profile.writable, rw), (&profile.readable, ro)] {
            for p in paths {
                let fd = match PathFd::new(p) {
                    Ok(fd) => fd,
                    // Gone since the profile was made: nothing to grant.
                    Err(_) => continue,
                };
                // A file takes only the rights that apply to files.
                let access = if p.is_dir() {
                    access
                } else {
                    access & AccessFs::from_file(target)
                };
                ruleset = ruleset
                    .add_rule(PathBeneath::new(fd, access))
                    .map_err(|x| e(&format!("the rule for `{}`", p.display()), x.to_string()))?;
            }
        }
        for port in &profile.tcp_connect {
            ruleset = ruleset
                .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
                .map_err(|x| e(&format!("the rule for TCP port {port}"), x.to_string()))?;
        }
        let ruleset: Option<OwnedFd> = ruleset.into();
        let ruleset = ruleset.ok_or_else(|| e("the Landlock ruleset", "not created".into()))?;
        Ok(Confinement {
            inner: Some(Arc::new(Ready {
                ruleset,
                filter: socket_filter()?,
            })),
            env: profile.env.clone(),
            handed: Some(profile.handed.clone()),
        })
    }

    /// Where omk puts files a confined client must read but not change;
    /// `None` when unconfined (any folder will do).
    pub fn handed_dir(&self) -> Option<&std::path::Path> {
        self.handed.as_deref()
    }

    /// Whether processes started with it are confined.
    pub fn enforced(&self) -> bool {
        self.inner.is_some()
    }

    /// The variables the profile sets (`HOME`, `TMPDIR`, proxies), to add
    /// after the task's own.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Makes `cmd` start confined: its environment gets the profile's
    /// variables, and the child, after `fork`, sets no-new-privileges,
    /// installs the seccomp filter and restricts itself with the ruleset
    /// before it `exec`s. Nothing there allocates or takes a lock.
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let Some(ready) = self.inner.clone() else {
            return;
        };
        // SAFETY: the closure runs in the child between fork and exec and
        // makes only the async-signal-safe system calls prctl, seccomp and
        // landlock_restrict_self on memory the parent prepared (the
        // filter's instructions, the ruleset's descriptor, which the child
        // inherits); on any failure it returns the OS error, and the spawn
        // fails rather than run unconfined.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let prog = libc::sock_fprog {
                    len: u16::try_from(ready.filter.len()).unwrap_or(u16::MAX),
                    filter: ready.filter.as_ptr().cast_mut().cast(),
                };
                if libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &prog as *const libc::sock_fprog,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::syscall(
                    libc::SYS_landlock_restrict_self,
                    ready.ruleset.as_raw_fd(),
                    0u32,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// `socket(2)` refused with `EPERM` for what Landlock cannot restrict on
/// this kernel: UDP and raw IP sockets, packet and netlink sockets, and new
/// `AF_UNIX` sockets (which could reach any listening socket by path).
/// `socketpair(2)` stays allowed: pipes between a process and its children.
fn socket_filter() -> Result<BpfProgram, SandboxError> {
    let e = |x: seccompiler::BackendError| SandboxError {
        message: format!("the seccomp filter: {x}"),
    };
    let domain = |d: i32| {
        SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            u64::try_from(d).unwrap_or(0),
        )
    };
    // The type without SOCK_NONBLOCK / SOCK_CLOEXEC.
    let kind = |t: i32| {
        SeccompCondition::new(
            1,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(0xf),
            u64::try_from(t).unwrap_or(0),
        )
    };
    let mut rules = Vec::new();
    for d in [libc::AF_UNIX, libc::AF_PACKET, libc::AF_NETLINK] {
        rules.push(SeccompRule::new(vec![domain(d).map_err(e)?]).map_err(e)?);
    }
    for d in [libc::AF_INET, libc::AF_INET6] {
        for t in [libc::SOCK_DGRAM, libc::SOCK_RAW] {
            rules.push(
                SeccompRule::new(vec![domain(d).map_err(e)?, kind(t).map_err(e)?]).map_err(e)?,
            );
        }
    }
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|x| SandboxError {
        message: format!("seccomp on `{}`: {x}", std::env::consts::ARCH),
    })?;
    let filter = SeccompFilter::new(
        [(libc::SYS_socket, rules)].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(u32::try_from(libc::EPERM).unwrap_or(1)),
        arch,
    )
    .map_err(e)?;
    BpfProgram::try_from(filter).map_err(e)
}

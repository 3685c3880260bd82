//! Enforcing a [`Profile`]: a Landlock ruleset and a seccomp filter, built
//! in omk, with which one thread of omk restricts itself and then starts
//! the task's processes, which inherit both. The rest of omk stays
//! unrestricted, and the processes start as fast as unconfined ones: no
//! step runs between `fork` and `exec`, so the standard library keeps
//! using `posix_spawn`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, Scope,
};
use seccompiler::BpfProgram;

use super::netns::{self, Bytes, Forward};
use super::profile::Network;
use super::secrets::Rewrite;
use super::{Profile, REQUIRED_ABI, SandboxError, SandboxMode, hide, seccomp};

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

/// A profile made ready to apply: a thread of omk's that confined itself
/// to the profile and starts every process of the task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Confinement {
    inner: Option<Arc<Spawner>>,
    env: Vec<(String, String)>,
    handed: Option<std::path::PathBuf>,
    serve_port: Option<u16>,
    /// The run's keys, kept out of every variable its processes get.
    vault: Option<Arc<super::secrets::Vault>>,
}

/// A request to the confined thread: the command, and where to answer.
type Request = (
    tokio::process::Command,
    std::sync::mpsc::SyncSender<std::io::Result<tokio::process::Child>>,
);

/// The confined thread's mailbox; the thread ends with the last sender.
/// The relays into its network namespace stop with it.
#[derive(Debug)]
struct Spawner {
    tx: std::sync::Mutex<std::sync::mpsc::Sender<Request>>,
    relays: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Spawner {
    fn drop(&mut self) {
        for r in &self.relays {
            r.abort();
        }
    }
}

/// What the confined thread set up before it restricted itself.
struct Entered {
    listeners: Vec<std::net::TcpListener>,
}

impl Confinement {
    /// No confinement (`[sandbox] mode = "off"`, or omk's own tools).
    pub fn none() -> Confinement {
        Confinement {
            inner: None,
            env: Vec::new(),
            handed: None,
            serve_port: None,
            vault: None,
        }
    }

    /// Builds the Landlock ruleset and the seccomp filter of `profile`, and
    /// a thread that restricts itself with them and then starts the task's
    /// processes, which inherit its restrictions. Refuses where the kernel
    /// cannot enforce every rule. Needs a Tokio runtime (the processes are
    /// Tokio's).
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
        if let Some(port) = profile.tcp_serve {
            ruleset = ruleset
                .add_rule(NetPort::new(
                    port,
                    AccessNet::BindTcp | AccessNet::ConnectTcp,
                ))
                .map_err(|x| {
                    e(
                        &format!("the rule for serving on TCP port {port}"),
                        x.to_string(),
                    )
                })?;
        }
        let ruleset: Option<OwnedFd> = ruleset.into();
        let ruleset = ruleset.ok_or_else(|| e("the Landlock ruleset", "not created".into()))?;
        let filters = seccomp::filters(profile.unix_sockets)?;
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|x| e("the confined spawner", x.to_string()))?;
        let namespace = profile.network == Network::Namespace;
        let ports = profile.tcp_connect.clone();
        let hidden = profile.hidden.clone();
        let hidden_enforced = profile.hidden_enforced;
        let tree = profile.tree.clone();
        let empty = profile.handed.join(".hidden");
        let (tx, rx) = std::sync::mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let spawner_handle = handle.clone();
        std::thread::Builder::new()
            .name("omk-confined-spawner".into())
            .spawn(move || {
                let entered = (|| -> Result<Entered, String> {
                    let listeners = if namespace {
                        netns::enter(&ports)?
                    } else {
                        Vec::new()
                    };
                    if hidden_enforced && let Some(tree) = &tree {
                        hide::hide(tree, &hidden, &empty)?;
                    }
                    restrict_this_thread(&ruleset, &filters)
                        .map_err(|x| format!("restricting the spawner: {x}"))?;
                    Ok(Entered { listeners })
                })();
                drop(ruleset);
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                if !ok {
                    return;
                }
                let _runtime = spawner_handle.enter();
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .map_err(|x| e("the confined spawner", x.to_string()))?;
        let entered = ready_rx
            .recv()
            .map_err(|_| {
                e(
                    "the confined spawner",
                    "it stopped before restricting itself".into(),
                )
            })?
            .map_err(|x| SandboxError { message: x })?;
        // The relays run on omk's runtime, in omk's own namespace.
        let _runtime = handle.enter();
        let mut relays = Vec::new();
        for listener in entered.listeners {
            let port = listener
                .local_addr()
                .map_err(|x| e("a relay", x.to_string()))?
                .port();
            let how: Arc<dyn Forward> = match profile.vault.0.as_ref().and_then(|v| {
                v.endpoints()
                    .into_iter()
                    .find(|ep| ep.is_loopback() && ep.port == port)
                    .map(|ep| (v, ep))
            }) {
                Some((vault, endpoint)) => Arc::new(Rewrite {
                    vault: Arc::clone(vault),
                    endpoint,
                }),
                None => Arc::new(Bytes),
            };
            relays.push(
                netns::relay(listener, how)
                    .map_err(|x| e(&format!("the relay for port {port}"), x.to_string()))?,
            );
        }
        Ok(Confinement {
            inner: Some(Arc::new(Spawner {
                tx: std::sync::Mutex::new(tx),
                relays,
            })),
            env: profile.env.clone(),
            handed: Some(profile.handed.clone()),
            serve_port: profile.tcp_serve,
            vault: profile.vault.0.clone(),
        })
    }

    /// Where omk puts files a confined client must read but not change;
    /// `None` when unconfined (any folder will do).
    pub fn handed_dir(&self) -> Option<&std::path::Path> {
        self.handed.as_deref()
    }

    /// The TCP port a client that serves itself may listen on; `None`
    /// when unconfined (any port will do) or for other clients.
    pub fn serve_port(&self) -> Option<u16> {
        self.serve_port
    }

    /// Gives `cmd` every variable it would get that holds a key of the
    /// run with the key's placeholder instead: a configuration in a
    /// variable (`OPENCODE_CONFIG_CONTENT`), whoever set or extended it.
    fn scrub_env(&self, cmd: &mut tokio::process::Command) {
        let Some(vault) = &self.vault else { return };
        let set: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)> = cmd
            .as_std()
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(ToOwned::to_owned)))
            .collect();
        let inherited = std::env::vars_os()
            .filter(|(k, _)| !set.iter().any(|(s, _)| s == k))
            .map(|(k, v)| (k, Some(v)));
        let all: Vec<_> = set.iter().cloned().chain(inherited).collect();
        for (key, value) in all {
            if let Some(clean) = value
                .as_deref()
                .and_then(std::ffi::OsStr::to_str)
                .and_then(|v| vault.scrub_text(v))
            {
                cmd.env(key, clean);
            }
        }
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

    /// Starts `cmd` with the profile's variables, confined: the confined
    /// thread starts it (with `posix_spawn`, as any unconfined process),
    /// and it inherits the thread's Landlock domain, seccomp filter and
    /// no-new-privileges. `cmd` is used up.
    pub fn spawn(
        &self,
        cmd: &mut tokio::process::Command,
    ) -> std::io::Result<tokio::process::Child> {
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self.scrub_env(cmd);
        let Some(spawner) = &self.inner else {
            return cmd.spawn();
        };
        let cmd = std::mem::replace(cmd, tokio::process::Command::new("/nonexistent"));
        let (reply_tx, reply_rx) = std::sync::mpsc::sync_channel(1);
        let gone = || std::io::Error::other("the task's confined spawner is gone");
        spawner
            .tx
            .lock()
            .map_err(|_| gone())?
            .send((cmd, reply_tx))
            .map_err(|_| gone())?;
        reply_rx.recv().map_err(|_| gone())?
    }
}

/// Confines the calling thread — and every process it starts from now on —
/// with no-new-privileges, the seccomp `filters` and the Landlock `ruleset`.
fn restrict_this_thread(ruleset: &OwnedFd, filters: &[BpfProgram]) -> std::io::Result<()> {
    // SAFETY: plain system calls on the calling thread: prctl with
    // constant arguments; landlock_restrict_self with a ruleset descriptor
    // this thread holds.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    seccomp::install(filters)?;
    // SAFETY: as above.
    unsafe {
        if libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

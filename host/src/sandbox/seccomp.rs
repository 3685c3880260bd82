//! The seccomp filter of a confined task: an allow-list, deny by default.
//!
//! Every system call a task's processes may make is named here; any other
//! — one this list does not know, one a newer kernel adds — fails with
//! `EPERM`, so a new kernel feature cannot open a hole by default. The
//! list follows Docker's default profile for a container without
//! `CAP_SYS_ADMIN`, minus what omk keeps out besides:
//!
//! | family | allowed | refused, and why |
//! |---|---|---|
//! | files, directories, xattrs, `mknod` | all (Landlock decides what each may touch) | `open_by_handle_at` (opens any inode by handle, past path checks), `name_to_handle_at` kept (it only names) |
//! | memory, processes, threads, signals, timers, futexes | all that act on the caller and its children | `userfaultfd`, `kcmp`, `pidfd_getfd`, `process_madvise`; `personality` only with the values Docker allows |
//! | new processes | `fork`, `vfork`, `clone` without a namespace flag, `execve(at)` | `clone3` (its flags sit in memory seccomp cannot read; it fails with `ENOSYS`, and libc falls back to `clone`) |
//! | namespaces, mounts, root | — | `unshare`, `setns`, `mount`, `umount2`, `pivot_root`, `chroot`, `fsopen`/`fsmount`/`move_mount`/`open_tree`/`mount_setattr`: the task's view of the filesystem and the network is omk's to set |
//! | sockets | `socket` for `AF_INET`/`AF_INET6` stream sockets with protocol 0 or `IPPROTO_TCP`, `AF_UNIX` only with `[sandbox] unix_sockets = true`; `socketpair` for `AF_UNIX`; every call on a socket one has | every other family, type and protocol: UDP, raw, packet, netlink, MPTCP (`IPPROTO_MPTCP`), SCTP, vsock, Bluetooth, … |
//! | asynchronous I/O | `io_setup`/`io_submit`/… (the old AIO, which opens nothing) | `io_uring_setup`, `io_uring_enter`, `io_uring_register`: io_uring makes sockets and connects them without the system calls this filter sees |
//! | terminals | `ioctl` | `ioctl(TIOCSTI)` and `ioctl(TIOCLINUX)`: typing into the terminal a session was started from, which its shell runs after the task ends |
//! | kernel | — | `bpf`, `perf_event_open`, `kexec_*`, `*_module`, `reboot`, `swapon`/`swapoff`, `acct`, `quotactl`, `syslog`, `keyctl`/`add_key`/`request_key`, `lookup_dcookie`, `sethostname`/`setdomainname`, `settimeofday`/`clock_settime`/`adjtimex` with changes, `iopl`/`ioperm`, `vhangup`, `nfsservctl` |
//! | Landlock, seccomp, `prctl` | all: a process may only restrict itself further | — |
//!
//! 32-bit x86 system calls (`int 0x80`) end the process: the filter
//! checks the architecture first.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::SandboxError;

/// System calls newer than the `libc` crate's tables (numbers shared by
/// x86_64 and aarch64 since Linux 5.1 unified them).
mod newer {
    pub const CACHESTAT: i64 = 451;
    pub const MAP_SHADOW_STACK: i64 = 453;
    pub const FUTEX_WAKE: i64 = 454;
    pub const FUTEX_WAIT: i64 = 455;
    pub const FUTEX_REQUEUE: i64 = 456;
    pub const STATMOUNT: i64 = 457;
    pub const LISTMOUNT: i64 = 458;
    pub const SETXATTRAT: i64 = 463;
    pub const GETXATTRAT: i64 = 464;
    pub const LISTXATTRAT: i64 = 465;
    pub const REMOVEXATTRAT: i64 = 466;
}

/// The system calls allowed whatever their arguments.
fn unconditional() -> Vec<i64> {
    use libc::*;
    let mut v: Vec<i64> = vec![
        // Files and directories (Landlock decides which).
        SYS_read,
        SYS_write,
        SYS_readv,
        SYS_writev,
        SYS_pread64,
        SYS_pwrite64,
        SYS_preadv,
        SYS_pwritev,
        SYS_preadv2,
        SYS_pwritev2,
        SYS_openat,
        SYS_openat2,
        SYS_close,
        SYS_close_range,
        SYS_lseek,
        SYS_newfstatat,
        SYS_fstat,
        SYS_statx,
        SYS_statfs,
        SYS_fstatfs,
        SYS_getdents64,
        SYS_faccessat,
        SYS_faccessat2,
        SYS_readlinkat,
        SYS_mkdirat,
        SYS_mknodat,
        SYS_unlinkat,
        SYS_renameat,
        SYS_renameat2,
        SYS_linkat,
        SYS_symlinkat,
        SYS_fchmod,
        SYS_fchmodat,
        SYS_fchmodat2,
        SYS_fchown,
        SYS_fchownat,
        SYS_truncate,
        SYS_ftruncate,
        SYS_fallocate,
        SYS_fadvise64,
        SYS_readahead,
        SYS_fsync,
        SYS_fdatasync,
        SYS_sync,
        SYS_syncfs,
        SYS_sync_file_range,
        SYS_flock,
        SYS_fcntl,
        SYS_dup,
        SYS_dup3,
        SYS_getcwd,
        SYS_chdir,
        SYS_fchdir,
        SYS_umask,
        SYS_utimensat,
        SYS_copy_file_range,
        SYS_sendfile,
        SYS_splice,
        SYS_tee,
        SYS_vmsplice,
        SYS_name_to_handle_at,
        SYS_getxattr,
        SYS_lgetxattr,
        SYS_fgetxattr,
        SYS_setxattr,
        SYS_lsetxattr,
        SYS_fsetxattr,
        SYS_listxattr,
        SYS_llistxattr,
        SYS_flistxattr,
        SYS_removexattr,
        SYS_lremovexattr,
        SYS_fremovexattr,
        SYS_inotify_init1,
        SYS_inotify_add_watch,
        SYS_inotify_rm_watch,
        SYS_fanotify_mark,
        SYS_memfd_create,
        SYS_memfd_secret,
        newer::CACHESTAT,
        newer::SETXATTRAT,
        newer::GETXATTRAT,
        newer::LISTXATTRAT,
        newer::REMOVEXATTRAT,
        newer::STATMOUNT,
        newer::LISTMOUNT,
        // Pipes, events, polling.
        SYS_pipe2,
        SYS_eventfd2,
        SYS_epoll_create1,
        SYS_epoll_ctl,
        SYS_epoll_pwait,
        SYS_epoll_pwait2,
        SYS_ppoll,
        SYS_pselect6,
        SYS_signalfd4,
        SYS_timerfd_create,
        SYS_timerfd_settime,
        SYS_timerfd_gettime,
        // Memory.
        SYS_brk,
        SYS_mmap,
        SYS_munmap,
        SYS_mremap,
        SYS_mprotect,
        SYS_madvise,
        SYS_mincore,
        SYS_msync,
        SYS_mlock,
        SYS_mlock2,
        SYS_munlock,
        SYS_mlockall,
        SYS_munlockall,
        SYS_membarrier,
        SYS_pkey_alloc,
        SYS_pkey_free,
        SYS_pkey_mprotect,
        SYS_mseal,
        SYS_remap_file_pages,
        newer::MAP_SHADOW_STACK,
        // Processes, threads, identity (within what the user namespace maps).
        SYS_execve,
        SYS_execveat,
        SYS_exit,
        SYS_exit_group,
        SYS_wait4,
        SYS_waitid,
        SYS_getpid,
        SYS_getppid,
        SYS_gettid,
        SYS_getpgid,
        SYS_setpgid,
        SYS_getsid,
        SYS_setsid,
        SYS_getuid,
        SYS_geteuid,
        SYS_getgid,
        SYS_getegid,
        SYS_getresuid,
        SYS_getresgid,
        SYS_getgroups,
        SYS_setuid,
        SYS_setgid,
        SYS_setreuid,
        SYS_setregid,
        SYS_setresuid,
        SYS_setresgid,
        SYS_setfsuid,
        SYS_setfsgid,
        SYS_setgroups,
        SYS_capget,
        SYS_capset,
        SYS_prctl,
        SYS_getrlimit,
        SYS_setrlimit,
        SYS_prlimit64,
        SYS_getrusage,
        SYS_getpriority,
        SYS_setpriority,
        SYS_sched_yield,
        SYS_sched_getaffinity,
        SYS_sched_setaffinity,
        SYS_sched_getparam,
        SYS_sched_setparam,
        SYS_sched_getscheduler,
        SYS_sched_setscheduler,
        SYS_sched_getattr,
        SYS_sched_setattr,
        SYS_sched_get_priority_max,
        SYS_sched_get_priority_min,
        SYS_sched_rr_get_interval,
        SYS_set_tid_address,
        SYS_set_robust_list,
        SYS_get_robust_list,
        SYS_rseq,
        SYS_futex,
        SYS_futex_waitv,
        newer::FUTEX_WAKE,
        newer::FUTEX_WAIT,
        newer::FUTEX_REQUEUE,
        SYS_ioprio_get,
        SYS_ioprio_set,
        SYS_getcpu,
        SYS_uname,
        SYS_sysinfo,
        SYS_getrandom,
        SYS_restart_syscall,
        SYS_pidfd_open,
        SYS_pidfd_send_signal,
        SYS_process_mrelease,
        // Tracing within the task (Landlock keeps it from processes outside).
        SYS_ptrace,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        // Signals (Landlock scopes them to the task's own processes).
        SYS_kill,
        SYS_tgkill,
        SYS_tkill,
        SYS_rt_sigaction,
        SYS_rt_sigprocmask,
        SYS_rt_sigreturn,
        SYS_rt_sigpending,
        SYS_rt_sigsuspend,
        SYS_rt_sigtimedwait,
        SYS_rt_sigqueueinfo,
        SYS_rt_tgsigqueueinfo,
        SYS_sigaltstack,
        // Time.
        SYS_clock_gettime,
        SYS_clock_getres,
        SYS_clock_nanosleep,
        SYS_nanosleep,
        SYS_gettimeofday,
        SYS_getitimer,
        SYS_setitimer,
        SYS_timer_create,
        SYS_timer_settime,
        SYS_timer_gettime,
        SYS_timer_getoverrun,
        SYS_timer_delete,
        SYS_times,
        // The old asynchronous I/O (it opens nothing).
        SYS_io_setup,
        SYS_io_destroy,
        SYS_io_submit,
        SYS_io_cancel,
        SYS_io_getevents,
        // System V and POSIX IPC (namespaced with the user namespace).
        SYS_shmget,
        SYS_shmat,
        SYS_shmdt,
        SYS_shmctl,
        SYS_semget,
        SYS_semop,
        SYS_semctl,
        SYS_semtimedop,
        SYS_msgget,
        SYS_msgsnd,
        SYS_msgrcv,
        SYS_msgctl,
        SYS_mq_open,
        SYS_mq_unlink,
        SYS_mq_timedsend,
        SYS_mq_timedreceive,
        SYS_mq_notify,
        SYS_mq_getsetattr,
        // Calls on sockets a process has (which sockets it may make: below).
        SYS_connect,
        SYS_accept,
        SYS_accept4,
        SYS_bind,
        SYS_listen,
        SYS_shutdown,
        SYS_getsockname,
        SYS_getpeername,
        SYS_getsockopt,
        SYS_setsockopt,
        SYS_sendto,
        SYS_recvfrom,
        SYS_sendmsg,
        SYS_recvmsg,
        SYS_sendmmsg,
        SYS_recvmmsg,
        // Restricting oneself further.
        SYS_seccomp,
        SYS_landlock_create_ruleset,
        SYS_landlock_add_rule,
        SYS_landlock_restrict_self,
    ];
    // The older names of the same calls, which x86_64 still has.
    #[cfg(target_arch = "x86_64")]
    v.extend([
        SYS_open,
        SYS_creat,
        SYS_stat,
        SYS_lstat,
        SYS_access,
        SYS_readlink,
        SYS_mkdir,
        SYS_rmdir,
        SYS_unlink,
        SYS_rename,
        SYS_link,
        SYS_symlink,
        SYS_chmod,
        SYS_chown,
        SYS_lchown,
        SYS_mknod,
        SYS_getdents,
        SYS_utime,
        SYS_utimes,
        SYS_futimesat,
        SYS_dup2,
        SYS_pipe,
        SYS_eventfd,
        SYS_epoll_create,
        SYS_epoll_wait,
        SYS_poll,
        SYS_select,
        SYS_signalfd,
        SYS_inotify_init,
        SYS_fork,
        SYS_vfork,
        SYS_getpgrp,
        SYS_pause,
        SYS_alarm,
        SYS_time,
        SYS_arch_prctl,
        SYS_modify_ldt,
        SYS_set_thread_area,
        SYS_get_thread_area,
    ]);
    v
}

/// Builds the filter: the allow-list, and `clone3` answered `ENOSYS` (a
/// second program, since seccompiler gives one filter one refusal).
/// `unix_sockets` lets the task create `AF_UNIX` sockets.
pub fn filters(unix_sockets: bool) -> Result<Vec<BpfProgram>, SandboxError> {
    let e = |x: seccompiler::BackendError| SandboxError {
        message: format!("the seccomp filter: {x}"),
    };
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|x| SandboxError {
        message: format!("seccomp on `{}`: {x}", std::env::consts::ARCH),
    })?;
    let arg = |index: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, value: u64| {
        SeccompCondition::new(index, len, op, value).map_err(e)
    };
    let word = |v: i32| u64::try_from(v).unwrap_or(u64::MAX);
    let rule = |conds: Vec<SeccompCondition>| SeccompRule::new(conds).map_err(e);

    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = unconditional()
        .into_iter()
        .map(|n| (n, Vec::new()))
        .collect();

    // socket(domain, type, protocol): TCP over IPv4 and IPv6 only; the
    // type without SOCK_NONBLOCK and SOCK_CLOEXEC.
    let mut socket = Vec::new();
    for domain in [libc::AF_INET, libc::AF_INET6] {
        for protocol in [0, libc::IPPROTO_TCP] {
            socket.push(rule(vec![
                arg(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, word(domain))?,
                arg(
                    1,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::MaskedEq(0xf),
                    word(libc::SOCK_STREAM),
                )?,
                arg(2, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, word(protocol))?,
            ])?);
        }
    }
    if unix_sockets {
        socket.push(rule(vec![
            arg(
                0,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                word(libc::AF_UNIX),
            )?,
            arg(2, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, 0)?,
        ])?);
    }
    rules.insert(libc::SYS_socket, socket);
    // socketpair: connected pairs between a process and its children.
    rules.insert(
        libc::SYS_socketpair,
        vec![rule(vec![arg(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            word(libc::AF_UNIX),
        )?])?],
    );
    // clone without a namespace flag (arg 0 on x86_64 and aarch64).
    let namespaces = libc::CLONE_NEWNS
        | libc::CLONE_NEWCGROUP
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET;
    rules.insert(
        libc::SYS_clone,
        vec![rule(vec![arg(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(word(namespaces)),
            0,
        )?])?],
    );
    // ioctl, but not typing into a terminal.
    rules.insert(
        libc::SYS_ioctl,
        vec![rule(vec![
            arg(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Ne,
                u64::from(libc::TIOCSTI as u32),
            )?,
            arg(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Ne,
                u64::from(libc::TIOCLINUX as u32),
            )?,
        ])?],
    );
    // personality: reading it, and the values Docker allows.
    rules.insert(
        libc::SYS_personality,
        [0u64, 8, 0x20000, 0x20008, 0xffff_ffff]
            .into_iter()
            .map(|v| rule(vec![arg(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, v)?]))
            .collect::<Result<_, _>>()?,
    );
    let eperm = SeccompAction::Errno(u32::try_from(libc::EPERM).unwrap_or(1));
    let allow_list = SeccompFilter::new(rules, eperm, SeccompAction::Allow, arch).map_err(e)?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(u32::try_from(libc::ENOSYS).unwrap_or(38)),
        arch,
    )
    .map_err(e)?;
    [allow_list, clone3]
        .into_iter()
        .map(|f| BpfProgram::try_from(f).map_err(e))
        .collect()
}

/// Installs `filters` on the calling thread, in order (no-new-privileges
/// must be set already).
pub fn install(filters: &[BpfProgram]) -> std::io::Result<()> {
    for filter in filters {
        let prog = libc::sock_fprog {
            len: u16::try_from(filter.len()).unwrap_or(u16::MAX),
            filter: filter.as_ptr().cast_mut().cast(),
        };
        // SAFETY: seccomp with a program that outlives the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `IPPROTO_MPTCP`, the protocol the old deny-list let through.
    const IPPROTO_MPTCP: i32 = 262;

    /// Runs `probe` on a thread of its own confined by the filters, and
    /// returns what it returned.
    fn confined<T: Send + 'static>(unix: bool, probe: fn() -> T) -> T {
        let filters = filters(unix).unwrap();
        std::thread::spawn(move || {
            // SAFETY: a constant prctl on this thread.
            assert_eq!(
                unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
                0
            );
            install(&filters).unwrap();
            probe()
        })
        .join()
        .unwrap()
    }

    /// `socket(domain, type, protocol)`: the descriptor (closed) or errno.
    fn socket(domain: i32, kind: i32, protocol: i32) -> Result<(), i32> {
        // SAFETY: plain system calls.
        let fd = unsafe { libc::socket(domain, kind, protocol) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        unsafe { libc::close(fd) };
        Ok(())
    }

    #[test]
    fn only_tcp_sockets_are_made_and_io_uring_is_refused() {
        let got = confined(false, || {
            let io_uring = {
                let mut params = [0u8; 120];
                // SAFETY: io_uring_setup with a zeroed params buffer.
                let r =
                    unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
                if r >= 0 {
                    unsafe { libc::close(r as i32) };
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
                }
            };
            let unshare = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            let clone3 = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
            let clone3_errno = std::io::Error::last_os_error().raw_os_error();
            (
                [
                    socket(libc::AF_INET, libc::SOCK_STREAM, 0),
                    socket(
                        libc::AF_INET6,
                        libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                        libc::IPPROTO_TCP,
                    ),
                    socket(libc::AF_INET, libc::SOCK_STREAM, IPPROTO_MPTCP),
                    socket(libc::AF_INET, libc::SOCK_STREAM, 132), // SCTP
                    socket(libc::AF_INET, libc::SOCK_DGRAM, 0),
                    socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
                    socket(libc::AF_UNIX, libc::SOCK_STREAM, 0),
                    socket(libc::AF_NETLINK, libc::SOCK_RAW, 0),
                    socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0),
                    io_uring,
                ],
                unshare,
                clone3,
                clone3_errno,
            )
        });
        let (sockets, unshare, clone3, clone3_errno) = got;
        assert_eq!(sockets[0], Ok(()), "TCP over IPv4");
        assert_eq!(sockets[1], Ok(()), "TCP over IPv6");
        for (i, what) in [
            (2, "MPTCP"),
            (3, "SCTP"),
            (4, "UDP"),
            (5, "raw"),
            (6, "AF_UNIX"),
            (7, "netlink"),
            (8, "vsock"),
            (9, "io_uring"),
        ] {
            assert_eq!(sockets[i], Err(libc::EPERM), "{what}");
        }
        assert_eq!(unshare, -1, "unshare");
        assert_eq!((clone3, clone3_errno), (-1, Some(libc::ENOSYS)));
    }

    #[test]
    fn nothing_is_typed_into_a_terminal() {
        // On a pipe the kernel would answer ENOTTY; the filter answers
        // first, whatever the descriptor.
        fn sti() -> i32 {
            let mut fds = [0i32; 2];
            // SAFETY: a pipe, an ioctl on it with a byte that outlives it.
            unsafe {
                assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
                let c = b'x';
                let r = libc::ioctl(fds[0], libc::TIOCSTI, &c);
                let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                libc::close(fds[0]);
                libc::close(fds[1]);
                if r == 0 { 0 } else { errno }
            }
        }
        assert_eq!(sti(), libc::ENOTTY, "unconfined");
        assert_eq!(confined(false, sti), libc::EPERM, "confined");
        // Other ioctls still reach the kernel.
        let fionread = confined(false, || {
            let mut fds = [0i32; 2];
            let mut n: libc::c_int = -1;
            // SAFETY: as above.
            unsafe {
                libc::pipe(fds.as_mut_ptr());
                let r = libc::ioctl(fds[0], libc::FIONREAD, &mut n);
                libc::close(fds[0]);
                libc::close(fds[1]);
                (r, n)
            }
        });
        assert_eq!(fionread, (0, 0));
    }

    #[test]
    fn a_unix_socket_grant_opens_af_unix_only_and_processes_still_start() {
        let got = confined(true, || {
            let unix = socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            let udp = socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            // A child process starts (clone3 refused, clone without
            // namespaces allowed) and runs.
            let child = std::process::Command::new("/bin/sh")
                .args(["-c", "exit 7"])
                .status()
                .map(|s| s.code());
            (unix, udp, child.ok().flatten())
        });
        assert_eq!(got, (Ok(()), Err(libc::EPERM), Some(7)));
    }
}

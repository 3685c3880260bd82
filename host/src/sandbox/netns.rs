//! TCP by address: each confined run gets a network namespace of its own.
//!
//! The confined spawner thread (see [`super::Confinement`]) moves itself
//! into a new, empty network namespace before it restricts itself, so the
//! task's processes, which it starts, have only a loopback interface and
//! nothing behind it. For each TCP port the profile may reach (the egress
//! proxy, a loopback model endpoint, `[sandbox] connect`, the guard's
//! judge), the thread binds a listener on that port of the namespace's
//! `127.0.0.1` (and `::1`), and omk relays each connection to the same
//! address and port in its own namespace ([`relay`]), where the real
//! server listens. Nothing else answers inside: a connection to another
//! port, to `127.0.0.2` on the proxy's port, or to any other host has no
//! route or no listener, whatever the system call that makes it.
//!
//! The namespace needs `CAP_SYS_ADMIN` in omk's user namespace, which omk
//! has once it entered one of its own ([`crate::worktree::overlay::enter`]);
//! [`available`] probes that once. Where it cannot be made, profiles fall
//! back to Landlock's rules by port and say so (`network: "ports"`).

use std::net::{SocketAddr, TcpListener};
use std::sync::OnceLock;

/// The environment variable that turns the per-run namespaces off
/// (`off`): TCP is then held by port only and `deny_read` only judged, as
/// where the kernel refuses them, and the proof says so.
pub const ENV: &str = "OMK_NAMESPACES";

/// Whether a network namespace can be made here; `Err` says why not.
pub fn available() -> Result<(), String> {
    static PROBED: OnceLock<Result<(), String>> = OnceLock::new();
    PROBED
        .get_or_init(|| {
            if std::env::var(ENV).is_ok_and(|v| v == "off") {
                return Err(format!("{ENV}=off"));
            }
            // A thread of its own: the namespace goes with it.
            std::thread::spawn(|| enter(&[]).map(|_| ()))
                .join()
                .unwrap_or_else(|_| Err("the probe panicked".into()))
        })
        .clone()
}

/// Moves the calling thread into a new network namespace, brings its
/// loopback interface up, and binds a listener on each of `ports` on
/// `127.0.0.1` and, where the namespace has IPv6, `::1`.
pub(super) fn enter(ports: &[u16]) -> Result<Vec<TcpListener>, String> {
    // SAFETY: unshare with a constant flag; it changes only this thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "cannot make a network namespace: {}",
            std::io::Error::last_os_error()
        ));
    }
    loopback_up().map_err(|e| format!("cannot bring up the namespace's loopback: {e}"))?;
    let mut listeners = Vec::new();
    for &port in ports {
        let v4 = TcpListener::bind(("127.0.0.1", port))
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port} in the namespace: {e}"))?;
        listeners.push(v4);
        // No IPv6 in the namespace (a kernel booted without it): fine.
        if let Ok(v6) = TcpListener::bind(("::1", port)) {
            listeners.push(v6);
        }
    }
    Ok(listeners)
}

/// `ip link set lo up`, with an ioctl.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: a socket for the ioctl, closed below; `ifreq` is plain data,
    // zeroed, its name NUL-terminated.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *s as libc::c_char;
        }
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// What a relay does with one connection it accepted inside the namespace.
pub(super) trait Forward: Send + Sync + 'static {
    /// Carries `inside` to `to` in omk's namespace.
    fn forward(
        self: std::sync::Arc<Self>,
        inside: tokio::net::TcpStream,
        to: SocketAddr,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>;
}

/// Bytes both ways, unchanged.
pub(super) struct Bytes;

impl Forward for Bytes {
    fn forward(
        self: std::sync::Arc<Self>,
        mut inside: tokio::net::TcpStream,
        to: SocketAddr,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>> {
        Box::pin(async move {
            let mut outside = tokio::net::TcpStream::connect(to).await?;
            tokio::io::copy_bidirectional(&mut inside, &mut outside).await?;
            Ok(())
        })
    }
}

/// Relays every connection `listener` (bound inside a task's namespace)
/// accepts to the same address and port in omk's namespace, with `how`.
/// Runs until aborted. Must run on a thread of omk's namespace: the
/// runtime's, never the confined spawner.
pub(super) fn relay(
    listener: TcpListener,
    how: std::sync::Arc<dyn Forward>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let to = listener.local_addr()?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((inside, _)) = listener.accept().await else {
                continue;
            };
            let how = std::sync::Arc::clone(&how);
            tokio::spawn(async move {
                if let Err(e) = how.forward(inside, to).await {
                    tracing::debug!("relay to {to}: {e}");
                }
            });
        }
    }))
}

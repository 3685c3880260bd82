//! The egress proxy: the one way out of a confined task to the network.
//!
//! A task's processes may connect by TCP only to this proxy (and to a
//! loopback model endpoint), which omk runs on `127.0.0.1` for the task's
//! attempt; their environment names it (`HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY`, `NODE_USE_ENV_PROXY=1`). It speaks HTTP/1.1 `CONNECT`
//! (for TLS, which it does not open) and plain HTTP requests in absolute
//! form. Every destination — `https://host:port` for a tunnel, the URL for
//! plain HTTP — goes to a [`Gatekeeper`] first: omk checks the host against
//! the profile's hosts and asks the gates' `check-action` (`fetch-url`),
//! logging the decision. A refused one gets `403 Forbidden` with the reason;
//! nothing is sent to it. Plain HTTP connections carry one request each
//! (`Connection: close`), so every request is judged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::secrets::Vault;

/// Decides whether a destination may be reached.
pub trait Gatekeeper: Send + Sync + 'static {
    /// `Ok` to let `url` through; `Err(reason)` to refuse it. May block.
    fn destination(&self, url: &str) -> Result<(), String>;
}

/// Largest request head read.
/// A gatekeeper that lets through the hosts it is given, once it is given
/// them, and nothing else: where no task exists for the gates to judge a
/// destination (planning; a client run by hand under `omk guard run`),
/// the client's model endpoint and `[sandbox] hosts`.
pub struct HostsOnly {
    hosts: std::sync::OnceLock<Vec<String>>,
    /// What a refusal says after the URL.
    refusal: &'static str,
}

impl HostsOnly {
    /// Refuses everything (saying `` `URL` {refusal} ``) until [`allow`](Self::allow).
    pub fn new(refusal: &'static str) -> HostsOnly {
        HostsOnly {
            hosts: std::sync::OnceLock::new(),
            refusal,
        }
    }

    /// Lets `hosts` (patterns, `host:port`) through from now on.
    pub fn allow(&self, hosts: Vec<String>) {
        let _ = self.hosts.set(hosts);
    }
}

impl Gatekeeper for HostsOnly {
    fn destination(&self, url: &str) -> Result<(), String> {
        match self.hosts.get() {
            Some(hosts) if host_allowed(hosts, url) => Ok(()),
            _ => Err(format!("`{url}` {}", self.refusal)),
        }
    }
}

/// Whether `url`'s host and port match one of `hosts`.
pub fn host_allowed(hosts: &[String], url: &str) -> bool {
    super::host_port(url).is_some_and(|(h, p)| {
        hosts
            .iter()
            .any(|pat| omk_core::sandbox::host_matches(pat, &h, p))
    })
}

const MAX_HEAD: usize = 64 * 1024;
/// How long a client may take to send its request head, and an upstream to
/// accept a connection.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A running proxy; it stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    vault: Arc<std::sync::OnceLock<Arc<Vault>>>,
}

/// The keys of the run the proxy serves, once its profile is made.
type VaultCell = Arc<std::sync::OnceLock<Arc<Vault>>>;

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Starts a proxy on `127.0.0.1` (a free port), judging with `gate`.
    pub async fn start(gate: Arc<dyn Gatekeeper>) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let vault: VaultCell = Arc::default();
        let keys = Arc::clone(&vault);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let gate = Arc::clone(&gate);
                let keys = keys.get().cloned();
                tokio::spawn(async move {
                    if let Err(e) = serve(client, gate, keys).await {
                        tracing::debug!("egress proxy: {e}");
                    }
                });
            }
        });
        Ok(Proxy { addr, task, vault })
    }

    /// Puts keys back on requests to the endpoints `vault` binds them to
    /// (see [`super::secrets`]), from now on.
    pub fn set_vault(&self, vault: Option<Arc<Vault>>) {
        if let Some(v) = vault {
            let _ = self.vault.set(v);
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// One client connection.
async fn serve(
    mut client: TcpStream,
    gate: Arc<dyn Gatekeeper>,
    vault: Option<Arc<Vault>>,
) -> std::io::Result<()> {
    let (head, rest) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client)).await {
        Ok(r) => r?,
        Err(_) => return Ok(()),
    };
    let Some(req) = Request::parse(&head) else {
        return respond(
            &mut client,
            400,
            "omk's egress proxy could not read the request",
        )
        .await;
    };
    let url = req.url();
    let decision = {
        let gate = Arc::clone(&gate);
        let url = url.clone();
        tokio::task::spawn_blocking(move || gate.destination(&url))
            .await
            .unwrap_or_else(|_| Err("omk could not judge the destination".into()))
    };
    if let Err(reason) = decision {
        return respond(&mut client, 403, &format!("refused by omk: {reason}")).await;
    }
    // A tunnel to an endpoint keys are bound to: answered with TLS here,
    // so that the keys can be put back (see `secrets`).
    if req.connect
        && let Some(vault) = vault.as_ref().filter(|v| v.bound_to(&req.host, req.port))
    {
        let config = match vault.server_config(&req.host) {
            Ok(c) => c,
            Err(e) => {
                return respond(
                    &mut client,
                    502,
                    &format!("omk cannot answer for {url}: {e}"),
                )
                .await;
            }
        };
        client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
        let tls = tokio_rustls::TlsAcceptor::from(config)
            .accept(client)
            .await?;
        let upstream = super::secrets::Upstream {
            addr: super::secrets::UpstreamAddr::Name(req.host.clone(), req.port),
            tls: Some(req.host.clone()),
        };
        return super::secrets::serve_http(tls, Arc::clone(vault), req.host, req.port, upstream)
            .await;
    }
    let upstream = tokio::time::timeout(
        HEAD_TIMEOUT,
        TcpStream::connect((req.host.as_str(), req.port)),
    )
    .await;
    let mut upstream = match upstream {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return respond(&mut client, 502, &format!("cannot reach {url}: {e}")).await,
        Err(_) => return respond(&mut client, 504, &format!("{url} did not answer")).await,
    };
    if req.connect {
        client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
    } else {
        let head = req.forwarded_head(vault.as_deref());
        upstream.write_all(head.as_bytes()).await?;
    }
    upstream.write_all(&rest).await?;
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    Ok(())
}

/// Reads up to the end of the request head; returns it and the bytes after.
async fn read_head(client: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "closed before the request head ended",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn respond(client: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        502 => "Bad Gateway",
        _ => "Gateway Timeout",
    };
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}\n",
        body.len() + 1
    );
    client.write_all(msg.as_bytes()).await?;
    client.shutdown().await
}

/// A proxied request's head.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    connect: bool,
    host: String,
    port: u16,
    /// For plain HTTP: the method, the path and query, the version, and
    /// the header lines.
    method: String,
    path: String,
    version: String,
    headers: Vec<String>,
}

impl Request {
    fn parse(head: &str) -> Option<Request> {
        let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
        let mut first = lines.next()?.split(' ');
        let (method, target, version) = (first.next()?, first.next()?, first.next()?);
        let headers: Vec<String> = lines.map(str::to_owned).collect();
        if method.eq_ignore_ascii_case("CONNECT") {
            let (host, port) = split_host_port(target, 443)?;
            return Some(Request {
                connect: true,
                host,
                port,
                method: method.into(),
                path: String::new(),
                version: version.into(),
                headers,
            });
        }
        let rest = target.strip_prefix("http://")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = split_host_port(authority, 80)?;
        Some(Request {
            connect: false,
            host,
            port,
            method: method.into(),
            path: path.into(),
            version: version.into(),
            headers,
        })
    }

    /// The destination as the gates see it.
    fn url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.connect {
            format!("https://{host}:{}", self.port)
        } else {
            format!("http://{host}:{}{}", self.port, self.path)
        }
    }

    /// The head sent upstream: origin form, no proxy headers, one request;
    /// with `vault`'s keys put back in the credential headers.
    fn forwarded_head(&self, vault: Option<&Vault>) -> String {
        let mut out = format!("{} {} {}\r\n", self.method, self.path, self.version);
        for h in &self.headers {
            let (name, value) = h.split_once(':').unwrap_or((h, ""));
            let name = name.trim().to_ascii_lowercase();
            if name.starts_with("proxy-") || name == "connection" || name == "keep-alive" {
                continue;
            }
            let revealed = vault
                .filter(|_| super::secrets::AUTH_HEADERS.contains(&name.as_str()))
                .and_then(|v| v.reveal(value.trim(), &self.host, self.port));
            match revealed {
                Some(real) => out.push_str(&format!("{name}: {real}")),
                None => out.push_str(h),
            }
            out.push_str("\r\n");
        }
        out.push_str("Connection: close\r\n\r\n");
        out
    }
}

/// `host:port`, `[v6]:port` or `host` (with `default` as the port).
fn split_host_port(s: &str, default: u16) -> Option<(String, u16)> {
    if let Some(v6) = s.strip_prefix('[') {
        let (h, rest) = v6.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default,
        };
        return Some((h.to_owned(), port));
    }
    let (h, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (s, default),
    };
    (!h.is_empty() && !h.contains(['/', ' ', '@'])).then(|| (h.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_and_forwarded_as_one() {
        let r = Request::parse("CONNECT api.example.org:443 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert!(r.connect);
        assert_eq!(r.url(), "https://api.example.org:443");
        let r = Request::parse(
            "GET http://127.0.0.1:8080/v1/x?q=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.url(), "http://127.0.0.1:8080/v1/x?q=1");
        assert_eq!(
            r.forwarded_head(None),
            "GET /v1/x?q=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        );
        assert!(Request::parse("GET /relative HTTP/1.1\r\n\r\n").is_none());
        assert!(Request::parse("CONNECT user@host:1 HTTP/1.1\r\n\r\n").is_none());
    }

    struct Only(String);
    impl Gatekeeper for Only {
        fn destination(&self, url: &str) -> Result<(), String> {
            if url.starts_with(&self.0) {
                Ok(())
            } else {
                Err(format!("`{url}` is not allowed"))
            }
        }
    }

    #[tokio::test]
    async fn judged_destinations_pass_and_refused_ones_get_403() {
        let server = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = server.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = server.accept().await {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let seen = String::from_utf8_lossy(&buf[..n]).into_owned();
                let body = seen.lines().next().unwrap_or("").to_owned();
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        let proxy = Proxy::start(Arc::new(Only(format!("http://127.0.0.1:{port}/ok"))))
            .await
            .unwrap();
        let addr = proxy.addr();
        let ask = |path: &'static str| async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(
                format!("GET http://127.0.0.1:{port}{path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).await.unwrap();
            out
        };
        let ok = ask("/ok").await;
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.ends_with("GET /ok HTTP/1.1"),
            "{ok}"
        );
        let no = ask("/secret").await;
        assert!(
            no.starts_with("HTTP/1.1 403") && no.contains("refused by omk"),
            "{no}"
        );
    }
}

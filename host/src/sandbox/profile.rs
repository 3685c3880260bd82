//! A task's [`Profile`]: what its processes may read, write and reach,
//! derived from the admitted task, the client that runs it and `[sandbox]`,
//! deny by default. It is data: recorded in `task_started`, shown in the
//! proof, and enforced by [`super::Confinement`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::secrets::{Brokered, Endpoint, Found, Vault};
use super::{SandboxError, SandboxMode, SandboxSettings};

/// System and toolchain directories every task may read.
const SYSTEM_READ: [&str; 10] = [
    "/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/opt", "/sys", "/proc",
];
/// Devices every task may read and write.
const DEVICES_RW: [&str; 4] = ["/dev/null", "/dev/zero", "/dev/full", "/dev/tty"];
/// Devices every task may read.
const DEVICES_RO: [&str; 2] = ["/dev/random", "/dev/urandom"];

/// Where a client keeps its settings and credentials, and where it talks
/// to its model: what a confined task's private home gets a copy of, and
/// which endpoint its profile lets it reach.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientState {
    /// The variable naming its state folder, if it has one (`CODEX_HOME`).
    pub dir_env: Option<&'static str>,
    /// The variable naming the home its state folder is in, when it reads
    /// one instead of `HOME` (the Gemini CLI's `GEMINI_CLI_HOME`).
    pub home_env: Option<&'static str>,
    /// Its state folder under the home otherwise (`.codex`); empty for none.
    pub home_dir: &'static str,
    /// Files (or folders) of that folder copied in: settings, credentials.
    pub files: &'static [&'static str],
    /// Files of the home itself copied in (`.claude.json`).
    pub home_files: &'static [&'static str],
    /// Variables naming its model endpoint (`ANTHROPIC_BASE_URL`), or
    /// holding a JSON configuration whose `base_url`, `baseUrl` or
    /// `baseURL` fields do.
    pub endpoint_env: &'static [&'static str],
    /// Its endpoints when neither a variable nor its settings name one.
    pub default_endpoints: &'static [&'static str],
    /// Whether it serves itself over loopback HTTP (`opencode acp` is a
    /// client of its own server): the profile gives it one TCP port it
    /// may listen on and connect to ([`Profile::tcp_serve`]).
    pub serves_itself: bool,
}

/// What a task's processes may do; see the table in [`super`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub mode: SandboxMode,
    /// Readable and writable, with everything below.
    pub writable: Vec<PathBuf>,
    /// Readable (and executable), with everything below.
    pub readable: Vec<PathBuf>,
    /// TCP ports connect may reach (on any address; see README.md).
    pub tcp_connect: Vec<u16>,
    /// The one TCP port the run may listen on, and connect to, for a
    /// client that serves itself: free in omk's namespace when the profile
    /// was made, and in the run's own namespace never relayed anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_serve: Option<u16>,
    /// The egress proxy, `127.0.0.1:PORT`, when there is one.
    pub proxy: Option<String>,
    /// Hosts the proxy lets through (patterns), after the gates agree.
    pub hosts: Vec<String>,
    /// The private home and temporary folder.
    pub home: PathBuf,
    pub tmp: PathBuf,
    /// A folder the task may read but not write, for files omk hands a
    /// client (Claude Code's settings).
    pub handed: PathBuf,
    /// What is kept out besides the filesystem: socket families, signals.
    pub blocked: Vec<String>,
    /// Variables set for the task's processes (`HOME`, `TMPDIR`, proxies).
    pub env: Vec<(String, String)>,
    /// How TCP is held to `tcp_connect`: by address, in a network
    /// namespace of the run's own, or by port only (older logs, or where
    /// no namespace can be made).
    #[serde(default, skip_serializing_if = "Network::is_ports")]
    pub network: Network,
    /// Why the namespace could not be made, when `network` is `ports`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_fallback: Option<String>,
    /// The run's tree: the task's worktree, the checkout planning reads,
    /// the project a guarded session works in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<PathBuf>,
    /// Project-relative paths no process of the run may read (the path
    /// gate's `deny_read`), hidden in the run's tree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<String>,
    /// Whether `hidden` is enforced by the kernel (a mount namespace), or
    /// only judged (no namespace here): the proof lists that as a gap.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden_enforced: bool,
    /// The credentials found for the run, and whether each is brokered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Brokered>,
    /// Whether the run may create `AF_UNIX` sockets (`[sandbox]
    /// unix_sockets`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unix_sockets: bool,
    /// The keys themselves, in memory only.
    #[serde(skip)]
    pub vault: VaultRef,
}

/// How a run's TCP connections are held to its profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Landlock's rules by port: any address on an allowed port.
    #[default]
    Ports,
    /// A network namespace whose only listeners are omk's relays to the
    /// allowed ports: by address and port.
    Namespace,
}

impl Network {
    /// By port only: what a profile without the field means.
    pub fn is_ports(&self) -> bool {
        *self == Network::Ports
    }
}

/// The run's [`Vault`], shared; profiles compare equal whatever it holds
/// (it is not part of what is recorded).
#[derive(Debug, Clone, Default)]
pub struct VaultRef(pub Option<std::sync::Arc<Vault>>);

impl PartialEq for VaultRef {
    fn eq(&self, _: &VaultRef) -> bool {
        true
    }
}
impl Eq for VaultRef {}

/// What a profile is derived from.
#[derive(Debug, Clone)]
pub struct ProfileInputs<'a> {
    pub settings: &'a SandboxSettings,
    /// The task's worktree: writable. `None` when planning.
    pub worktree: Option<&'a Path>,
    /// A tree readable only: the base checkout a planning session looks at.
    pub read_only_tree: Option<&'a Path>,
    /// The repository's git folder (read only: omk commits).
    pub git_dir: Option<PathBuf>,
    /// The task's own folder: `home/` and `tmp/` are made in it.
    pub task_dir: &'a Path,
    /// The command lines the task runs (the agent's, `run:` checks): the
    /// programs and files they name are readable.
    pub commands: Vec<String>,
    pub client: ClientState,
    pub proxy: Option<SocketAddr>,
    /// Folders nothing inferred may open up: omk's state, cache and config,
    /// the project's checkout, the user's home itself.
    pub private: Vec<PathBuf>,
    /// The environment the task would otherwise get (omk's own).
    pub env: Vec<(String, String)>,
    /// Project-relative paths no process may read (the path gate's
    /// `deny_read`), hidden in `worktree` (or `read_only_tree`).
    pub deny_read: Vec<String>,
}

impl Profile {
    /// An unconfined profile (`[sandbox] mode = "off"`).
    pub fn off() -> Profile {
        Profile {
            mode: SandboxMode::Off,
            writable: Vec::new(),
            readable: Vec::new(),
            tcp_connect: Vec::new(),
            tcp_serve: None,
            proxy: None,
            hosts: Vec::new(),
            home: PathBuf::new(),
            tmp: PathBuf::new(),
            handed: PathBuf::new(),
            blocked: Vec::new(),
            env: Vec::new(),
            network: Network::Ports,
            network_fallback: None,
            tree: None,
            hidden: Vec::new(),
            hidden_enforced: false,
            secrets: Vec::new(),
            unix_sockets: false,
            vault: VaultRef::default(),
        }
    }

    /// Derives the profile, and prepares the task's private home (with
    /// copies of the client's settings) and an empty temporary folder.
    pub fn derive(inputs: &ProfileInputs) -> Result<Profile, SandboxError> {
        if inputs.settings.mode == SandboxMode::Off {
            return Ok(Profile::off());
        }
        let err = |what: &str, p: &Path, e: std::io::Error| SandboxError {
            message: format!("cannot {what} `{}`: {e}", p.display()),
        };
        let home = inputs.task_dir.join("home");
        let tmp = inputs.task_dir.join("tmp");
        let handed = inputs.task_dir.join("handed");
        for d in [&tmp, &handed] {
            if d.exists() {
                std::fs::remove_dir_all(d).map_err(|e| err("empty", d, e))?;
            }
        }
        for d in [&home, &tmp, &handed] {
            std::fs::create_dir_all(d).map_err(|e| err("create", d, e))?;
        }
        let var = |k: &str| env_var(&inputs.env, k);
        let user_home = var("HOME").map(PathBuf::from);

        let mut env: Vec<(String, String)> = vec![
            ("HOME".into(), home.display().to_string()),
            ("TMPDIR".into(), tmp.display().to_string()),
            ("TMP".into(), tmp.display().to_string()),
            ("TEMP".into(), tmp.display().to_string()),
            (
                "XDG_CONFIG_HOME".into(),
                home.join(".config").display().to_string(),
            ),
            (
                "XDG_CACHE_HOME".into(),
                home.join(".cache").display().to_string(),
            ),
            (
                "XDG_DATA_HOME".into(),
                home.join(".local/share").display().to_string(),
            ),
            (
                "XDG_STATE_HOME".into(),
                home.join(".local/state").display().to_string(),
            ),
        ];

        // The client's settings and credentials, copied into the home.
        let c = inputs.client;
        let mut config_texts = Vec::new();
        // The copies, for the secrets broker: where, and how shown.
        let mut copies: Vec<(PathBuf, String)> = Vec::new();
        if !c.home_dir.is_empty() {
            let from = c
                .dir_env
                .and_then(var)
                .map(PathBuf::from)
                .or_else(|| {
                    c.home_env
                        .and_then(var)
                        .map(|h| PathBuf::from(h).join(c.home_dir))
                })
                .or_else(|| user_home.as_ref().map(|h| h.join(c.home_dir)));
            let to = home.join(c.home_dir);
            std::fs::create_dir_all(&to).map_err(|e| err("create", &to, e))?;
            if let Some(from) = from {
                for f in c.files {
                    let src = from.join(f);
                    if src.exists() {
                        copy_into(&src, &to.join(f)).map_err(|e| err("copy", &src, e))?;
                        if let Ok(text) = std::fs::read_to_string(&src) {
                            config_texts.push(text);
                        }
                        // A library holds no keys: not for the broker to read.
                        if *f != "node_modules" {
                            copies.push((to.join(f), format!("{}/{f}", c.home_dir)));
                        }
                    }
                }
            }
            if let Some(v) = c.dir_env {
                env.push((v.into(), to.display().to_string()));
            }
            if let Some(v) = c.home_env {
                env.push((v.into(), home.display().to_string()));
            }
        }
        if let Some(h) = &user_home {
            for f in c.home_files {
                let src = h.join(f);
                if src.is_file() {
                    copy_into(&src, &home.join(f)).map_err(|e| err("copy", &src, e))?;
                    copies.push((home.join(f), (*f).to_owned()));
                }
            }
        }

        // Where the client talks to its model.
        // A variable holds a URL, or a whole configuration naming some
        // (OpenCode's `OPENCODE_CONFIG_CONTENT`).
        let mut endpoints: Vec<String> = Vec::new();
        for value in c.endpoint_env.iter().filter_map(|v| var(v)) {
            if value.trim_start().starts_with('{') {
                endpoints.extend(base_urls(&value));
            } else {
                endpoints.push(value);
            }
        }
        for text in &config_texts {
            endpoints.extend(base_urls(text));
        }
        if endpoints.is_empty() {
            endpoints.extend(c.default_endpoints.iter().map(|s| (*s).to_owned()));
        }
        let mut tcp_connect = Vec::new();
        let mut hosts = inputs.settings.hosts.clone();
        let mut no_proxy = Vec::new();
        // Loopback ports the project names are reached directly.
        for (host, port) in &inputs.settings.connect {
            tcp_connect.push(*port);
            no_proxy.push(host.clone());
        }
        for url in &endpoints {
            let Some((host, port)) = host_port(url) else {
                continue;
            };
            if is_loopback(&host) {
                // A local model server: reached directly, on its port only.
                tcp_connect.push(port);
                no_proxy.push(host);
            } else {
                hosts.push(format!("{host}:{port}"));
            }
        }
        let netns = super::netns::available();
        let network = if netns.is_ok() {
            Network::Namespace
        } else {
            Network::Ports
        };
        let proxy = inputs.proxy.filter(|_| inputs.settings.network);
        if let Some(p) = proxy {
            tcp_connect.push(p.port());
            let url = format!("http://{p}");
            for k in [
                "HTTP_PROXY",
                "HTTPS_PROXY",
                "ALL_PROXY",
                "http_proxy",
                "https_proxy",
                "all_proxy",
            ] {
                env.push((k.into(), url.clone()));
            }
            // Node's own fetch honours the variables only when asked to.
            env.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
            let np = no_proxy.join(",");
            env.push(("NO_PROXY".into(), np.clone()));
            env.push(("no_proxy".into(), np));
        }
        tcp_connect.sort_unstable();
        tcp_connect.dedup();
        let tcp_serve = if c.serves_itself {
            Some(free_port(&tcp_connect).map_err(|e| SandboxError {
                message: format!("cannot find a free TCP port for the client to serve on: {e}"),
            })?)
        } else {
            None
        };
        hosts.sort();
        hosts.dedup();

        // The credentials: placeholders for the task, the keys kept here.
        let client_endpoints: Vec<Endpoint> = endpoints
            .iter()
            .filter_map(|u| Endpoint::of_url(u))
            .collect();
        let super::secrets::Collected {
            vault,
            records: secrets,
            env: secret_env,
        } = Vault::collect(&Found {
            env: &inputs.env,
            files: &copies,
            client_endpoints: &client_endpoints,
            config_vars: c.endpoint_env,
            loopback: network == Network::Namespace,
            remote: proxy.is_some(),
        })
        .map_err(|message| SandboxError { message })?;
        env.extend(secret_env);
        env.extend(
            vault
                .trust_files(&handed, &inputs.env)
                .map_err(|e| err("write the run's certificate authority into", &handed, e))?,
        );

        // What may be written and read: the task's own folders (which may
        // not exist yet: the worktree is made after the profile), then what
        // is there of the rest.
        let existing =
            |v: Vec<PathBuf>| -> Vec<PathBuf> { v.into_iter().filter(|p| p.exists()).collect() };
        let mut writable: Vec<PathBuf> = Vec::new();
        writable.extend(inputs.worktree.map(Path::to_owned));
        writable.push(home.clone());
        writable.push(tmp.clone());
        writable.extend(existing(DEVICES_RW.iter().map(PathBuf::from).collect()));
        writable.extend(existing(
            inputs
                .settings
                .write
                .iter()
                .filter_map(|g| g.resolve(user_home.as_deref()))
                .collect(),
        ));
        let mut readable: Vec<PathBuf> = vec![handed.clone()];
        readable.extend(inputs.read_only_tree.map(Path::to_owned));
        readable.extend(inputs.git_dir.clone());
        readable.extend(existing(SYSTEM_READ.iter().map(PathBuf::from).collect()));
        readable.extend(existing(DEVICES_RO.iter().map(PathBuf::from).collect()));
        let mut inferred = Vec::new();
        if let Some(path) = var("PATH") {
            for dir in std::env::split_paths(&path) {
                if dir.is_absolute() {
                    inferred.push(toolchain_prefix(&dir).unwrap_or_else(|| dir.clone()));
                    inferred.push(dir);
                }
            }
        }
        for command in &inputs.commands {
            inferred.extend(named_paths(command, var("PATH").as_deref()));
        }
        readable.extend(existing(
            inferred
                .into_iter()
                .filter(|p| !opens_up(p, &inputs.private, user_home.as_deref()))
                .collect(),
        ));
        readable.extend(existing(
            inputs
                .settings
                .read
                .iter()
                .filter_map(|g| g.resolve(user_home.as_deref()))
                .collect(),
        ));
        let sorted = |mut v: Vec<PathBuf>| {
            v.sort();
            v.dedup();
            v
        };
        Ok(Profile {
            mode: SandboxMode::Enforce,
            writable: sorted(writable),
            readable: sorted(readable),
            tcp_connect,
            tcp_serve,
            proxy: proxy.map(|p| p.to_string()),
            hosts,
            home,
            tmp,
            handed,
            blocked: blocked(inputs.settings.unix_sockets, network, tcp_serve),
            env,
            network,
            network_fallback: netns.err(),
            tree: inputs
                .worktree
                .or(inputs.read_only_tree)
                .map(Path::to_owned),
            hidden: inputs.deny_read.clone(),
            hidden_enforced: !inputs.deny_read.is_empty() && network == Network::Namespace,
            secrets,
            unix_sockets: inputs.settings.unix_sockets,
            vault: VaultRef((!vault.is_empty()).then(|| std::sync::Arc::new(vault))),
        })
    }
}

/// A TCP port free on 127.0.0.1 now, and none of `taken` (the relayed
/// ports of the run's namespace).
fn free_port(taken: &[u16]) -> std::io::Result<u16> {
    for _ in 0..16 {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
            .local_addr()?
            .port();
        if !taken.contains(&port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("every port tried is relayed"))
}

/// What a profile keeps out besides the filesystem, as the proof lists it.
fn blocked(unix_sockets: bool, network: Network, serve: Option<u16>) -> Vec<String> {
    let mut out: Vec<String> = vec![
        match serve {
            Some(port) => format!("TCP bind, but on port {port} (the client serves itself there)"),
            None => "TCP bind".into(),
        },
        "every socket but TCP over IPv4/IPv6 (UDP, raw, packet, netlink, MPTCP, SCTP, …)".into(),
    ];
    if !unix_sockets {
        out.push("new AF_UNIX sockets".into());
    }
    if network == Network::Namespace {
        out.push("TCP to any address but the relays to the allowed ports".into());
    }
    out.extend(
        [
            "io_uring",
            "namespaces, mounts, chroot",
            "typing into the terminal (TIOCSTI)",
            "bpf, perf events, kernel keyrings, modules",
            "system calls the allow-list does not name",
            "signals to processes outside the task",
            "abstract UNIX sockets outside the task",
        ]
        .map(String::from),
    );
    out
}

/// Copies a file, or a folder recursively, to `to`.
fn copy_into(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            copy_into(&e.path(), &to.join(e.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(|_| ())
    }
}

/// The last value of variable `k` in `env`, if not empty.
pub(super) fn env_var(env: &[(String, String)], k: &str) -> Option<String> {
    env.iter()
        .rev()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
}

/// Every string value of a `base_url` (or `baseUrl`) key in a TOML or
/// JSON settings file.
fn base_urls(text: &str) -> Vec<String> {
    super::secrets::fields(text, &["base_url", "baseUrl", "baseURL"])
}

/// The host and port of an `http(s)://host[:port]/…` URL.
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, rest) = v6.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default,
        };
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h.to_ascii_lowercase(), p.parse().ok()?)),
        None => Some((authority.to_ascii_lowercase(), default)),
    }
    .filter(|(h, _)| !h.is_empty())
}

pub(super) fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The prefix a toolchain's `bin`, `sbin` or `shims` folder belongs to
/// (`~/.pyenv` for `~/.pyenv/shims`), whose libraries its programs read.
fn toolchain_prefix(dir: &Path) -> Option<PathBuf> {
    let name = dir.file_name()?.to_str()?;
    matches!(name, "bin" | "sbin" | "shims")
        .then(|| dir.parent().map(Path::to_owned))
        .flatten()
}

/// The paths a command line names that a confined run must read: each
/// word that is an existing absolute path, the program it runs (found on
/// `path`), what their symlinks and `#!` lines lead to, and the install
/// each belongs to (the folder holding its `node_modules`, or the prefix
/// of its `bin`).
fn named_paths(command: &str, path: Option<&str>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let words: Vec<&str> = command
        .split_whitespace()
        .map(|w| w.trim_matches(['"', '\'']))
        .collect();
    let mut candidates: Vec<PathBuf> = words
        .iter()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    if let Some(first) = words.first().filter(|w| !w.contains('/'))
        && let Some(path) = path
    {
        candidates.extend(
            std::env::split_paths(path)
                .map(|d| d.join(first))
                .filter(|p| p.is_file())
                .take(1),
        );
    }
    let mut seen = 0;
    while let Some(p) = candidates.pop() {
        seen += 1;
        if seen > 64 || !p.exists() {
            continue;
        }
        if let Ok(real) = p.canonicalize()
            && real != p
        {
            candidates.push(real);
        }
        // A script's interpreter.
        if p.is_file()
            && let Ok(head) = read_head(&p)
            && let Some(line) = head.strip_prefix("#!")
            && let Some(interp) = line
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().next())
        {
            candidates.push(PathBuf::from(interp));
        }
        out.push(install_of(&p).unwrap_or_else(|| p.clone()));
        out.push(p);
    }
    out
}

fn read_head(p: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = [0u8; 256];
    let n = std::fs::File::open(p)?.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The install a program belongs to: the folder holding the `node_modules`
/// it sits in, or the prefix of the `bin` it sits in (a venv, a toolchain).
fn install_of(p: &Path) -> Option<PathBuf> {
    let mut found = None;
    for a in p.ancestors().skip(1) {
        if a.file_name().is_some_and(|n| n == "node_modules") {
            found = a.parent().map(Path::to_owned);
        }
    }
    found.or_else(|| {
        p.parent()
            .filter(|d| d.file_name().is_some_and(|n| n == "bin"))
            .and_then(Path::parent)
            .map(Path::to_owned)
    })
}

/// Whether granting `p` would open up one of `private` (it holds one, or
/// lies in one), or the user's whole home.
fn opens_up(p: &Path, private: &[PathBuf], home: Option<&Path>) -> bool {
    p == Path::new("/")
        || home.is_some_and(|h| h.starts_with(p))
        || private.iter().any(|d| d.starts_with(p) || p.starts_with(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_hosts_and_ports() {
        assert_eq!(
            host_port("http://127.0.0.1:8080/v1"),
            Some(("127.0.0.1".into(), 8080))
        );
        assert_eq!(
            host_port("https://api.example.org"),
            Some(("api.example.org".into(), 443))
        );
        assert_eq!(host_port("http://[::1]:9/x"), Some(("::1".into(), 9)));
        assert_eq!(host_port("ftp://x"), None);
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && !is_loopback("10.0.0.1"));
        let toml = "[model_providers.fake]\nbase_url = \"http://127.0.0.1:5/v1\"\n";
        assert_eq!(base_urls(toml), ["http://127.0.0.1:5/v1"]);
    }

    #[test]
    fn inferred_grants_never_open_up_private_folders() {
        let private = [PathBuf::from("/home/u/.local/state/omk")];
        let home = Some(Path::new("/home/u"));
        assert!(opens_up(Path::new("/home/u/.local"), &private, home));
        assert!(opens_up(Path::new("/home"), &private, home));
        assert!(opens_up(
            Path::new("/home/u/.local/state/omk/goals"),
            &private,
            home
        ));
        assert!(!opens_up(Path::new("/home/u/.pyenv"), &private, home));
        assert_eq!(
            install_of(Path::new("/c/agents/kimi/node_modules/@m/k/dist/main.mjs")),
            Some(PathBuf::from("/c/agents/kimi"))
        );
        assert_eq!(
            install_of(Path::new("/p/venv/bin/python3")),
            Some(PathBuf::from("/p/venv"))
        );
    }

    #[test]
    fn a_profile_is_deny_by_default() {
        let tmp = tempfile::tempdir().unwrap();
        let wt = tmp.path().join("wt");
        std::fs::create_dir_all(&wt).unwrap();
        let settings = SandboxSettings::new();
        let inputs = ProfileInputs {
            settings: &settings,
            worktree: Some(&wt),
            read_only_tree: None,
            git_dir: None,
            task_dir: &tmp.path().join("task"),
            commands: vec!["sh -c true".into()],
            client: ClientState {
                endpoint_env: &["MODEL_URL"],
                ..ClientState::default()
            },
            proxy: Some("127.0.0.1:4000".parse().unwrap()),
            private: vec![tmp.path().to_owned()],
            deny_read: Vec::new(),
            env: vec![
                ("HOME".into(), tmp.path().display().to_string()),
                ("MODEL_URL".into(), "http://127.0.0.1:7000/v1".into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ],
        };
        let p = Profile::derive(&inputs).unwrap();
        assert_eq!(p.tcp_connect, [4000, 7000]);
        assert!(p.writable.contains(&wt));
        assert!(p.writable.contains(&p.home) && p.writable.contains(&p.tmp));
        assert!(!p.readable.iter().any(|r| r == tmp.path()));
        assert!(p.env.contains(&("NO_PROXY".into(), "127.0.0.1".into())));
        assert!(
            p.env
                .contains(&("HOME".into(), p.home.display().to_string()))
        );
    }
}

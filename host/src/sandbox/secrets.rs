//! The secrets broker: the user's model credentials never enter a task.
//!
//! A confined task's private home gets copies of its client's settings
//! and credentials, and its processes inherit omk's environment; without
//! the broker, anything the agent runs could read the user's API key and
//! send it out through the model endpoint it may reach. With it:
//!
//! 1. [`Vault::collect`] finds the credentials: the variables clients read
//!    their keys from ([`KNOWN`]: `ANTHROPIC_API_KEY`, `OPENAI_API_KEY`,
//!    `KIMI_MODEL_API_KEY`, …, and any variable a copied config names with
//!    `env_key`), and the values of key-like fields (`api_key`,
//!    `accessToken`, `OPENAI_API_KEY`, …) in the copied settings and
//!    credential files. Each gets a placeholder of the same length and
//!    prefix, and is bound to the endpoints it is for: its client's model
//!    endpoint (the variable that names it, or the default).
//! 2. The task sees only placeholders: its environment overrides each
//!    variable with one, and the copied files are rewritten with them.
//! 3. On the way out, omk puts the real key back — only in the request
//!    headers that carry credentials ([`AUTH_HEADERS`]), never in a body
//!    (a model could echo a prompt back), and only on requests to an
//!    endpoint the key is bound to. A loopback endpoint is reached through
//!    the task's network namespace, whose relay for that port speaks
//!    HTTP/1.1 and rewrites ([`Rewrite`]); an HTTPS endpoint elsewhere is
//!    reached through the egress proxy, which for those hosts answers the
//!    tunnel with TLS itself, with a certificate from a certificate
//!    authority made for this run alone ([`Vault::server_config`]), and
//!    opens its own TLS connection upstream, checked against the system's
//!    roots. The task is told to trust that authority (`NODE_EXTRA_CA_CERTS`,
//!    `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`); its key never
//!    leaves omk's memory.
//!
//! Where a key cannot be brokered — a loopback endpoint without a network
//! namespace, or an endpoint with no proxy to reach it — the real value is
//! kept and the profile says so ([`Brokered::brokered`] false), which the
//! proof lists as a gap.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Variables that hold a model credential: the variable, the variables
/// naming the endpoint it is for, and that endpoint's default.
pub const KNOWN: &[(&str, &[&str], &[&str])] = &[
    (
        "ANTHROPIC_API_KEY",
        &["ANTHROPIC_BASE_URL"],
        &["https://api.anthropic.com"],
    ),
    (
        "ANTHROPIC_AUTH_TOKEN",
        &["ANTHROPIC_BASE_URL"],
        &["https://api.anthropic.com"],
    ),
    (
        "CLAUDE_CODE_OAUTH_TOKEN",
        &["ANTHROPIC_BASE_URL"],
        &["https://api.anthropic.com"],
    ),
    (
        "OPENAI_API_KEY",
        &["OPENAI_BASE_URL"],
        &["https://api.openai.com"],
    ),
    (
        "CODEX_API_KEY",
        &["OPENAI_BASE_URL"],
        &["https://api.openai.com"],
    ),
    (
        "KIMI_MODEL_API_KEY",
        &["KIMI_MODEL_BASE_URL"],
        &["https://api.moonshot.ai", "https://api.kimi.com"],
    ),
    (
        "KIMI_API_KEY",
        &["KIMI_BASE_URL"],
        &["https://api.moonshot.ai", "https://api.kimi.com"],
    ),
    (
        "MOONSHOT_API_KEY",
        &["MOONSHOT_BASE_URL"],
        &["https://api.moonshot.ai"],
    ),
    (
        "GEMINI_API_KEY",
        &["GOOGLE_GEMINI_BASE_URL"],
        &["https://generativelanguage.googleapis.com"],
    ),
    (
        "GOOGLE_API_KEY",
        &["GOOGLE_GEMINI_BASE_URL"],
        &["https://generativelanguage.googleapis.com"],
    ),
];

/// Fields of settings and credential files whose string values are
/// credentials.
const SECRET_FIELDS: &[&str] = &[
    "api_key",
    "apiKey",
    "apikey",
    "primaryApiKey",
    "OPENAI_API_KEY",
    "access_token",
    "accessToken",
    "refresh_token",
    "refreshToken",
    "id_token",
    "idToken",
];

/// Credential entries tagged by their `type`, and the fields that are keys
/// in each: OpenCode's `auth.json` holds `{"anthropic": {"type": "api",
/// "key": …}}`, OAuth tokens as `access` and `refresh`, and a well-known
/// provider's `token` (whose `key` names a variable, and is no key).
const TYPED_SECRET_FIELDS: &[(&str, &[&str])] = &[
    ("api", &["key"]),
    ("oauth", &["access", "refresh"]),
    ("wellknown", &["token"]),
];

/// The request headers in which a placeholder is replaced by its key.
pub const AUTH_HEADERS: &[&str] = &["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/// An endpoint a key is released to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Endpoint {
    /// The endpoint of an `http(s)://` URL.
    pub fn of_url(url: &str) -> Option<Endpoint> {
        let (host, port) = super::host_port(url)?;
        Some(Endpoint {
            host,
            port,
            tls: url.trim().to_ascii_lowercase().starts_with("https://"),
        })
    }

    pub fn is_loopback(&self) -> bool {
        super::profile::is_loopback(&self.host)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// One credential, as the profile records it (never its value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Brokered {
    /// Where it was found: ``environment `ANTHROPIC_API_KEY` `` or
    /// ``file `.codex/auth.json` ``.
    pub source: String,
    /// The endpoints it is released to.
    pub endpoints: Vec<String>,
    /// Whether the task holds a placeholder (true) or, where the broker
    /// cannot reach the endpoint, the real value (false: a gap).
    pub brokered: bool,
}

/// A credential the vault holds.
struct Secret {
    placeholder: String,
    value: String,
    endpoints: Vec<Endpoint>,
}

/// The credentials of one confined run, with their placeholders, and the
/// run's certificate authority. Lives in omk's memory only.
pub struct Vault {
    secrets: Vec<Secret>,
    ca: Option<Authority>,
    /// Server configurations made so far, by host.
    servers: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("secrets", &self.secrets.len())
            .field("ca", &self.ca.is_some())
            .finish()
    }
}

/// The run's certificate authority.
struct Authority {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pem: String,
}

/// What [`Vault::collect`] found.
pub struct Collected {
    pub vault: Vault,
    /// What the profile records.
    pub records: Vec<Brokered>,
    /// The variables to set for the task: each key's placeholder.
    pub env: Vec<(String, String)>,
}

/// What [`Vault::collect`] is given.
pub struct Found<'a> {
    /// The task's would-be environment (omk's own).
    pub env: &'a [(String, String)],
    /// The copied settings and credential files (and folders), with the
    /// name each is shown by.
    pub files: &'a [(PathBuf, String)],
    /// The running client's model endpoints, for keys found in its files.
    pub client_endpoints: &'a [Endpoint],
    /// Variables that may hold the client's configuration as JSON
    /// (`OPENCODE_CONFIG_CONTENT`): their key fields are its keys too.
    pub config_vars: &'a [&'static str],
    /// Whether a loopback endpoint can be brokered (the run has a network
    /// namespace) and whether one elsewhere can (it has the proxy).
    pub loopback: bool,
    pub remote: bool,
}

impl Vault {
    /// An empty vault: nothing brokered.
    pub fn empty() -> Vault {
        Vault {
            secrets: Vec::new(),
            ca: None,
            servers: Mutex::new(HashMap::new()),
        }
    }

    /// Finds the credentials, gives each brokered one a placeholder, and
    /// rewrites the copied files with them.
    pub fn collect(found: &Found) -> Result<Collected, String> {
        let var = |k: &str| super::profile::env_var(found.env, k);
        let brokerable = |e: &Endpoint| {
            if e.is_loopback() {
                found.loopback
            } else {
                found.remote
            }
        };
        let mut vault = Vault::empty();
        let mut records: Vec<Brokered> = Vec::new();
        let mut env = Vec::new();
        let mut add =
            |vault: &mut Vault, source: String, value: String, endpoints: Vec<Endpoint>| {
                if value.len() < 8 {
                    return None;
                }
                let shown: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
                let brokered = !endpoints.is_empty() && endpoints.iter().all(&brokerable);
                records.push(Brokered {
                    source,
                    endpoints: shown,
                    brokered,
                });
                if !brokered {
                    return None;
                }
                if let Some(s) = vault.secrets.iter_mut().find(|s| s.value == value) {
                    for e in endpoints {
                        if !s.endpoints.contains(&e) {
                            s.endpoints.push(e);
                        }
                    }
                    return Some(s.placeholder.clone());
                }
                let placeholder = placeholder_for(&value);
                vault.secrets.push(Secret {
                    placeholder: placeholder.clone(),
                    value,
                    endpoints,
                });
                Some(placeholder)
            };

        // Variables, known and named by `env_key` in a copied config.
        let texts: Vec<String> = found
            .files
            .iter()
            .flat_map(|(p, _)| files_under(p))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect();
        let mut named: Vec<(String, Vec<Endpoint>)> = KNOWN
            .iter()
            .map(|(name, endpoint_vars, defaults)| {
                let mut endpoints: Vec<Endpoint> = endpoint_vars
                    .iter()
                    .filter_map(|v| var(v))
                    .filter_map(|u| Endpoint::of_url(&u))
                    .collect();
                if endpoints.is_empty() {
                    endpoints = defaults
                        .iter()
                        .filter_map(|u| Endpoint::of_url(u))
                        .collect();
                }
                ((*name).to_owned(), endpoints)
            })
            .collect();
        for text in &texts {
            for name in fields(text, &["env_key"]) {
                if !named.iter().any(|(n, _)| *n == name) {
                    named.push((name, found.client_endpoints.to_vec()));
                }
            }
        }
        for (name, endpoints) in named {
            if let Some(value) = var(&name)
                && let Some(p) = add(
                    &mut vault,
                    format!("environment `{name}`"),
                    value,
                    endpoints,
                )
            {
                env.push((name, p));
            }
        }
        // Fields of configurations held in variables: the variable is
        // given with placeholders when the task's processes start
        // ([`Vault::scrub_text`]).
        for name in found.config_vars {
            if let Some(value) = var(name) {
                for key in secret_fields(&value) {
                    add(
                        &mut vault,
                        format!("environment `{name}`"),
                        key,
                        found.client_endpoints.to_vec(),
                    );
                }
            }
        }
        // Fields of the copied files.
        for (path, shown) in found.files {
            for file in files_under(path) {
                let Ok(text) = std::fs::read_to_string(&file) else {
                    continue;
                };
                let rel = file
                    .strip_prefix(path)
                    .ok()
                    .filter(|r| !r.as_os_str().is_empty())
                    .map_or_else(|| shown.clone(), |r| format!("{shown}/{}", r.display()));
                for value in secret_fields(&text) {
                    add(
                        &mut vault,
                        format!("file `{rel}`"),
                        value,
                        found.client_endpoints.to_vec(),
                    );
                }
            }
        }
        // Every copied file holds placeholders only.
        for (path, _) in found.files {
            for file in files_under(path) {
                vault
                    .scrub_file(&file)
                    .map_err(|e| format!("cannot rewrite `{}`: {e}", file.display()))?;
            }
        }
        records.sort_by(|a, b| a.source.cmp(&b.source));
        records.dedup();
        if vault
            .secrets
            .iter()
            .any(|s| s.endpoints.iter().any(|e| e.tls))
        {
            vault.ca = Some(Authority::new()?);
        }
        Ok(Collected {
            vault,
            records,
            env,
        })
    }

    /// Whether any key is released to `host:port`.
    pub fn bound_to(&self, host: &str, port: u16) -> bool {
        self.secrets
            .iter()
            .any(|s| s.endpoints.iter().any(|e| e.host == host && e.port == port))
    }

    /// Whether it holds any key.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The endpoints keys are released to.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = Vec::new();
        for e in self.secrets.iter().flat_map(|s| &s.endpoints) {
            if !out.contains(e) {
                out.push(e.clone());
            }
        }
        out
    }

    /// `value` (a request header's) with each placeholder bound to
    /// `host:port` replaced by its key; `None` when it holds none.
    pub fn reveal(&self, value: &str, host: &str, port: u16) -> Option<String> {
        let mut out = value.to_owned();
        let mut changed = false;
        for s in &self.secrets {
            if out.contains(&s.placeholder)
                && s.endpoints.iter().any(|e| e.host == host && e.port == port)
            {
                out = out.replace(&s.placeholder, &s.value);
                changed = true;
            }
        }
        changed.then_some(out)
    }

    /// Replaces every key in `file` by its placeholder.
    fn scrub_file(&self, file: &Path) -> std::io::Result<()> {
        let Ok(text) = std::fs::read_to_string(file) else {
            return Ok(()); // not text: nothing a key could be in
        };
        match self.scrub_text(&text) {
            Some(out) => crate::atomic::write(file, out.as_bytes()),
            None => Ok(()),
        }
    }

    /// `text` with every key it holds replaced by its placeholder; `None`
    /// when it holds none.
    pub fn scrub_text(&self, text: &str) -> Option<String> {
        let mut out = text.to_owned();
        for s in &self.secrets {
            out = out.replace(&s.value, &s.placeholder);
        }
        (out != text).then_some(out)
    }

    /// The run's certificate authority, PEM, when it has one.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca.as_ref().map(|c| c.pem.as_str())
    }

    /// A TLS server configuration for `host` (a name or an address), with
    /// a certificate the run's authority signs; HTTP/1.1 only.
    pub fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, String> {
        let ca = self
            .ca
            .as_ref()
            .ok_or("this run has no certificate authority")?;
        let mut servers = self.servers.lock().map_err(|_| "poisoned")?;
        if let Some(c) = servers.get(host) {
            return Ok(Arc::clone(c));
        }
        let e = |x: rcgen::Error| format!("a certificate for `{host}`: {x}");
        let key = rcgen::KeyPair::generate().map_err(e)?;
        let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).map_err(e)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, host);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let issuer = rcgen::Issuer::from_params(&ca.params, &ca.key);
        let cert = params.signed_by(&key, &issuer).map_err(e)?;
        let chain = vec![cert.der().clone()];
        let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
        );
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|x| x.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|x| x.to_string())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        servers.insert(host.to_owned(), Arc::clone(&config));
        Ok(config)
    }

    /// Writes what the task needs to trust the run's authority into
    /// `dir` (the task's read-only handed folder): the authority alone and
    /// a bundle of it with the system's roots; returns the variables that
    /// point clients at them. Nothing when the vault has no authority.
    pub fn trust_files(
        &self,
        dir: &Path,
        env: &[(String, String)],
    ) -> std::io::Result<Vec<(String, String)>> {
        let Some(pem) = self.ca_pem() else {
            return Ok(Vec::new());
        };
        let ca = dir.join("omk-run-ca.pem");
        crate::atomic::write(&ca, pem.as_bytes())?;
        let system = env
            .iter()
            .rev()
            .find(|(k, _)| k == "SSL_CERT_FILE")
            .map(|(_, v)| PathBuf::from(v))
            .into_iter()
            .chain(
                [
                    "/etc/ssl/certs/ca-certificates.crt",
                    "/etc/pki/tls/certs/ca-bundle.crt",
                    "/etc/ssl/cert.pem",
                ]
                .map(PathBuf::from),
            )
            .find(|p| p.is_file());
        let mut bundle = system
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        if !bundle.is_empty() && !bundle.ends_with('\n') {
            bundle.push('\n');
        }
        bundle.push_str(pem);
        let bundle_path = dir.join("omk-run-ca-bundle.pem");
        crate::atomic::write(&bundle_path, bundle.as_bytes())?;
        let (ca, bundle) = (ca.display().to_string(), bundle_path.display().to_string());
        Ok(vec![
            ("NODE_EXTRA_CA_CERTS".into(), ca),
            ("SSL_CERT_FILE".into(), bundle.clone()),
            ("REQUESTS_CA_BUNDLE".into(), bundle.clone()),
            ("CURL_CA_BUNDLE".into(), bundle),
        ])
    }
}

impl Authority {
    fn new() -> Result<Authority, String> {
        let e = |x: rcgen::Error| format!("the run's certificate authority: {x}");
        let key = rcgen::KeyPair::generate().map_err(e)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(e)?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "omk run (secrets broker)");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let now = rcgen::date_time_ymd(2024, 1, 1);
        params.not_before = now;
        let cert = params.self_signed(&key).map_err(e)?;
        Ok(Authority {
            pem: cert.pem(),
            params,
            key,
        })
    }
}

/// The public prefixes of the keys providers issue, which some clients
/// check; a placeholder keeps the one its key starts with.
const KEY_PREFIXES: &[&str] = &[
    "sk-ant-api03-",
    "sk-ant-oat01-",
    "sk-ant-",
    "sk-proj-",
    "sk-svcacct-",
    "sk-",
    "AIza",
];

/// A placeholder for `value`: the public prefix it starts with (of
/// [`KEY_PREFIXES`]; nothing of the key itself), then `omk` and random hex,
/// as long as the value (clients that check a key's shape still start).
fn placeholder_for(value: &str) -> String {
    let prefix = KEY_PREFIXES
        .iter()
        .filter(|p| value.starts_with(**p))
        .max_by_key(|p| p.len())
        .copied()
        .unwrap_or("");
    let mut random = [0u8; 32];
    let _ = getrandom::fill(&mut random);
    let mut out = format!("{prefix}omk{}", hex::encode(random));
    let want = value.chars().count().max(prefix.len() + 24);
    out.truncate(want);
    out
}

/// Every file at `path` (itself, or below it when it is a folder).
fn files_under(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// The string values of the fields named `names`, anywhere in a JSON or
/// TOML text.
pub(super) fn fields(text: &str, names: &[&str]) -> Vec<String> {
    fields_typed(text, names, &[])
}

/// The credentials in a settings or credential file's text: the string
/// values of [`SECRET_FIELDS`] anywhere, and of [`TYPED_SECRET_FIELDS`]
/// in an object of that `type`.
fn secret_fields(text: &str) -> Vec<String> {
    fields_typed(text, SECRET_FIELDS, TYPED_SECRET_FIELDS)
}

/// [`fields`], and in an object whose `type` is one of `typed`'s, the
/// string values of the fields listed for it.
fn fields_typed(text: &str, names: &[&str], typed: &[(&str, &[&str])]) -> Vec<String> {
    fn walk(
        v: &serde_json::Value,
        names: &[&str],
        typed: &[(&str, &[&str])],
        out: &mut Vec<String>,
    ) {
        match v {
            serde_json::Value::Object(m) => {
                let of_type = m
                    .get("type")
                    .and_then(|t| t.as_str())
                    .and_then(|t| typed.iter().find(|(name, _)| *name == t))
                    .map_or(&[][..], |(_, fields)| *fields);
                for (k, v) in m {
                    if (names.contains(&k.as_str()) || of_type.contains(&k.as_str()))
                        && let Some(s) = v.as_str()
                    {
                        out.push(s.to_owned());
                    }
                    walk(v, names, typed, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, names, typed, out)),
            _ => {}
        }
    }
    let value = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .or_else(|| {
            toml::from_str::<toml::Value>(text)
                .ok()
                .and_then(|t| serde_json::to_value(t).ok())
        });
    let mut out = Vec::new();
    if let Some(v) = value {
        walk(&v, names, typed, &mut out);
    }
    out
}

// --- putting keys back ------------------------------------------------------

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where a rewritten request goes: an address in omk's namespace, over
/// TLS checked against the system's roots for `tls` (the server's name).
#[derive(Debug, Clone)]
pub struct Upstream {
    pub addr: UpstreamAddr,
    pub tls: Option<String>,
}

/// An upstream's address: resolved already (a relay's), or a name.
#[derive(Debug, Clone)]
pub enum UpstreamAddr {
    Socket(std::net::SocketAddr),
    Name(String, u16),
}

/// Serves HTTP/1.1 on `stream` (a task's connection to `host:port`),
/// sending each request to `upstream` with its placeholders replaced.
pub async fn serve_http<S>(
    stream: S,
    vault: Arc<Vault>,
    host: String,
    port: u16,
    upstream: Upstream,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let (vault, host, upstream) = (Arc::clone(&vault), host.clone(), upstream.clone());
        async move {
            Ok::<_, std::convert::Infallible>(
                match forward_one(req, &vault, &host, port, &upstream).await {
                    Ok(r) => r,
                    Err(e) => text_response(502, &format!("omk could not reach the endpoint: {e}")),
                },
            )
        }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await
        .map_err(std::io::Error::other)
}

type Body = BoxBody<Bytes, hyper::Error>;

fn text_response(status: u16, text: &str) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(
        Full::new(Bytes::from(format!("{text}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    r
}

async fn forward_one(
    mut req: hyper::Request<Incoming>,
    vault: &Vault,
    host: &str,
    port: u16,
    upstream: &Upstream,
) -> Result<hyper::Response<Body>, String> {
    for name in AUTH_HEADERS {
        let revealed = req
            .headers()
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| vault.reveal(v, host, port));
        if let Some(real) = revealed {
            let value = hyper::header::HeaderValue::from_str(&real).map_err(|e| e.to_string())?;
            req.headers_mut().insert(*name, value);
        }
    }
    let tcp = match &upstream.addr {
        UpstreamAddr::Socket(a) => tokio::net::TcpStream::connect(a).await,
        UpstreamAddr::Name(h, p) => tokio::net::TcpStream::connect((h.as_str(), *p)).await,
    }
    .map_err(|e| e.to_string())?;
    let response = match &upstream.tls {
        None => send(tcp, req).await?,
        Some(name) => {
            let server = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| format!("`{name}`: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(upstream_tls()?)
                .connect(server, tcp)
                .await
                .map_err(|e| format!("TLS with `{name}`: {e}"))?;
            send(tls, req).await?
        }
    };
    Ok(response.map(BodyExt::boxed))
}

/// Sends one HTTP/1.1 request over `io` (a connection of its own).
pub(crate) async fn send<T, B>(
    io: T,
    req: hyper::Request<B>,
) -> Result<hyper::Response<Incoming>, String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("an HTTP upstream's connection: {e}");
        }
    });
    sender.send_request(req).await.map_err(|e| e.to_string())
}

/// The TLS client configuration omk talks to endpoints with: the system's
/// roots (and `SSL_CERT_FILE`'s, as omk's environment names it).
pub(crate) fn upstream_tls() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no trusted root certificates on this system".into());
            }
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
}

/// A relay (see [`super::netns`]) that serves HTTP and puts keys back, for
/// a loopback endpoint keys are bound to.
pub(super) struct Rewrite {
    pub vault: Arc<Vault>,
    pub endpoint: Endpoint,
}

impl super::netns::Forward for Rewrite {
    fn forward(
        self: Arc<Self>,
        inside: tokio::net::TcpStream,
        to: std::net::SocketAddr,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>> {
        Box::pin(async move {
            let (host, port) = (self.endpoint.host.clone(), self.endpoint.port);
            let upstream = Upstream {
                addr: UpstreamAddr::Socket(to),
                tls: self.endpoint.tls.then(|| host.clone()),
            };
            if self.endpoint.tls {
                let config = self
                    .vault
                    .server_config(&host)
                    .map_err(std::io::Error::other)?;
                let tls = tokio_rustls::TlsAcceptor::from(config)
                    .accept(inside)
                    .await?;
                serve_http(tls, Arc::clone(&self.vault), host, port, upstream).await
            } else {
                serve_http(inside, Arc::clone(&self.vault), host, port, upstream).await
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_keep_the_shape_and_nothing_of_the_key() {
        let key = "sk-ant-api03-THEREALKEYthereal0123456789";
        let p = placeholder_for(key);
        assert_eq!(p.len(), key.len());
        assert!(p.starts_with("sk-ant-api03-omk"), "{p}");
        assert!(!p.contains("THEREAL"));
        assert_ne!(p, placeholder_for(key), "each run its own");
        assert!(placeholder_for("short").len() >= 24);
    }

    #[test]
    fn keys_are_found_replaced_in_files_and_revealed_only_to_their_endpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let codex = tmp.path().join(".codex");
        std::fs::create_dir_all(&codex).unwrap();
        std::fs::write(
            codex.join("config.toml"),
            "[model_providers.fake]\nbase_url = \"http://127.0.0.1:9/v1\"\nenv_key = \"FAKE_API_KEY\"\n",
        )
        .unwrap();
        std::fs::write(
            codex.join("auth.json"),
            r#"{"OPENAI_API_KEY": "sk-file-SECRET-0123456789abcdef"}"#,
        )
        .unwrap();
        let env: Vec<(String, String)> = vec![
            (
                "ANTHROPIC_API_KEY".into(),
                "sk-ant-ENV-SECRET-0123456789".into(),
            ),
            ("ANTHROPIC_BASE_URL".into(), "http://127.0.0.1:7000".into()),
            ("FAKE_API_KEY".into(), "fake-ENV-SECRET-abcdefabcdef".into()),
            ("PATH".into(), "/usr/bin".into()),
        ];
        let client = [Endpoint::of_url("http://127.0.0.1:9/v1").unwrap()];
        let files = [(codex.clone(), ".codex".to_owned())];
        let Collected {
            vault,
            records,
            env: task_env,
        } = Vault::collect(&Found {
            env: &env,
            files: &files,
            client_endpoints: &client,
            config_vars: &[],
            loopback: true,
            remote: true,
        })
        .unwrap();
        let names: Vec<&str> = task_env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["ANTHROPIC_API_KEY", "FAKE_API_KEY"]);
        for (_, v) in &task_env {
            assert!(!v.contains("SECRET"), "{v}");
        }
        let auth = std::fs::read_to_string(codex.join("auth.json")).unwrap();
        assert!(!auth.contains("SECRET"), "{auth}");
        assert!(records.iter().all(|r| r.brokered), "{records:?}");
        assert!(
            records
                .iter()
                .any(|r| r.source == "file `.codex/auth.json`")
        );
        // Revealed to its endpoint only.
        let anthropic = &task_env[0].1;
        let header = format!("Bearer {anthropic}");
        assert_eq!(
            vault.reveal(&header, "127.0.0.1", 7000).as_deref(),
            Some("Bearer sk-ant-ENV-SECRET-0123456789")
        );
        assert_eq!(vault.reveal(&header, "127.0.0.1", 9), None);
        assert_eq!(vault.reveal(&header, "evil.example", 7000), None);
        assert!(vault.ca_pem().is_none(), "no TLS endpoint, no authority");
    }

    #[test]
    fn opencodes_stored_credentials_are_brokered_by_their_type() {
        let tmp = tempfile::tempdir().unwrap();
        let share = tmp.path().join("auth.json");
        std::fs::write(
            &share,
            r#"{"anthropic": {"type": "api", "key": "sk-ant-API-SECRET-0123456789"},
                "openai": {"type": "oauth", "refresh": "rt-REFRESH-SECRET-0123", "access": "at-ACCESS-SECRET-0123", "expires": 1},
                "corp": {"type": "wellknown", "key": "CORP_TOKEN_VARIABLE", "token": "wk-TOKEN-SECRET-0123"}}"#,
        )
        .unwrap();
        let client = [Endpoint::of_url("https://api.anthropic.com").unwrap()];
        let files = [(share.clone(), ".local/share/opencode/auth.json".to_owned())];
        let collected = Vault::collect(&Found {
            env: &[],
            files: &files,
            client_endpoints: &client,
            config_vars: &[],
            loopback: true,
            remote: true,
        })
        .unwrap();
        let auth = std::fs::read_to_string(&share).unwrap();
        assert!(!auth.contains("SECRET"), "{auth}");
        // A variable's name is not a key: it stays as it was.
        assert!(auth.contains("\"CORP_TOKEN_VARIABLE\""), "{auth}");
        assert_eq!(collected.vault.secrets.len(), 4);
        assert!(collected.records.iter().all(|r| r.brokered));
    }

    #[test]
    fn a_key_in_a_configuration_variable_is_brokered_and_scrubbed() {
        let config = r#"{"provider": {"p": {"options": {"baseURL": "http://127.0.0.1:9/v1", "apiKey": "sk-CONFIG-SECRET-0123456789"}}}}"#;
        let env: Vec<(String, String)> = vec![("CONFIG".into(), config.into())];
        let client = [Endpoint::of_url("http://127.0.0.1:9/v1").unwrap()];
        let Collected { vault, records, .. } = Vault::collect(&Found {
            env: &env,
            files: &[],
            client_endpoints: &client,
            config_vars: &["CONFIG"],
            loopback: true,
            remote: true,
        })
        .unwrap();
        assert!(
            records
                .iter()
                .any(|r| r.source == "environment `CONFIG`" && r.brokered),
            "{records:?}"
        );
        // The variable as the task gets it, extended or not.
        let extended = config.replacen('{', r#"{"permission": "ask", "#, 1);
        let clean = vault.scrub_text(&extended).unwrap();
        assert!(
            !clean.contains("SECRET") && clean.contains("\"permission\""),
            "{clean}"
        );
        assert_eq!(vault.scrub_text("nothing here"), None);
    }

    #[test]
    fn a_key_that_cannot_be_brokered_is_kept_and_said_so() {
        let env: Vec<(String, String)> = vec![
            ("ANTHROPIC_API_KEY".into(), "sk-ant-KEPT-0123456789".into()),
            ("ANTHROPIC_BASE_URL".into(), "http://127.0.0.1:7000".into()),
        ];
        let Collected {
            vault,
            records,
            env: task_env,
        } = Vault::collect(&Found {
            env: &env,
            files: &[],
            client_endpoints: &[],
            config_vars: &[],
            loopback: false,
            remote: true,
        })
        .unwrap();
        assert!(vault.is_empty() && task_env.is_empty());
        assert_eq!(records.len(), 1);
        assert!(!records[0].brokered);
    }

    #[tokio::test]
    async fn an_https_endpoint_is_answered_with_the_runs_authority_and_keys_put_back() {
        // The upstream: plain HTTP here (the broker's TLS upstream is
        // rustls with the system's roots), echoing the header it got.
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = upstream.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                let key = head
                    .lines()
                    .find_map(|l| l.strip_prefix("x-api-key: "))
                    .unwrap_or("none")
                    .to_owned();
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{key}",
                            key.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        let env: Vec<(String, String)> = vec![
            ("ANTHROPIC_API_KEY".into(), "sk-ant-real-0123456789".into()),
            (
                "ANTHROPIC_BASE_URL".into(),
                "https://api.example.test".into(),
            ),
        ];
        let Collected {
            vault,
            env: task_env,
            ..
        } = Vault::collect(&Found {
            env: &env,
            files: &[],
            client_endpoints: &[],
            config_vars: &[],
            loopback: true,
            remote: true,
        })
        .unwrap();
        let vault = Arc::new(vault);
        let pem = vault
            .ca_pem()
            .expect("an authority for a TLS endpoint")
            .to_owned();
        // The broker's side of a tunnel to api.example.test:443.
        let (client_io, broker_io) = tokio::io::duplex(64 * 1024);
        let v = Arc::clone(&vault);
        tokio::spawn(async move {
            let config = v.server_config("api.example.test").unwrap();
            let tls = tokio_rustls::TlsAcceptor::from(config)
                .accept(broker_io)
                .await
                .unwrap();
            let upstream = Upstream {
                addr: UpstreamAddr::Socket(up),
                tls: None,
            };
            let _ = serve_http(tls, v, "api.example.test".into(), 443, upstream).await;
        });
        // The task's side: trusts the run's authority only.
        let mut roots = rustls::RootCertStore::empty();
        let der = pem_der(&pem);
        roots
            .add(rustls::pki_types::CertificateDer::from(der))
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("api.example.test").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, client_io)
            .await
            .expect("the task trusts the run's certificate");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let placeholder = &task_env[0].1;
        tls.write_all(
            format!("GET /v1/models HTTP/1.1\r\nHost: api.example.test\r\nx-api-key: {placeholder}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        let _ = tls.read_to_string(&mut out).await;
        assert!(out.ends_with("sk-ant-real-0123456789"), "{out}");
    }

    fn pem_der(pem: &str) -> Vec<u8> {
        use base64::Engine;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }
}

//! `omk bundle …`: keys, packing, signing, verifying, installing and
//! distributing gate bundles.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;

use super::{Outcome, Result, with_help};
use omk::gates::bundle::installed::{INSTALLED_FILE, Installed};
use omk::gates::bundle::sign::{self, PrivateKey, PublicKey, TrustPolicy};
use omk::gates::bundle::{self, Bundle, oci};
use omk::gates::{BUNDLES_DIR, GatesConfig, std_bundle};

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Create a signing key: KEYFILE (mode 0600) and KEYFILE.pub.
    Keygen(KeygenArgs),
    /// Pack a bundle directory into a deterministic .tar.gz, filling in the
    /// gates' sha256.
    Pack(PackArgs),
    /// Sign a bundle (directory or .tar.gz) in place.
    Sign(SignArgs),
    /// Verify a bundle's files, signatures and signers. Exit 1 if refused.
    Verify(VerifyArgs),
    /// Show a bundle's manifest, gates, signers and sizes (`std` for the
    /// embedded one).
    Inspect(InspectArgs),
    /// Verify a bundle against the project's trust policy and install it
    /// into `.omk/bundles/<name>/`.
    Install(InstallArgs),
    /// Push a bundle to an OCI registry.
    Push(PushArgs),
    /// Pull a bundle from an OCI registry into a .tar.gz (verified first).
    Pull(PullArgs),
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key.
    #[arg(long, value_name = "KEYFILE")]
    out: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// The bundle directory (with bundle.toml).
    dir: PathBuf,
    /// The archive to write.
    #[arg(short = 'o', long, value_name = "FILE")]
    out: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The bundle (directory or .tar.gz).
    bundle: PathBuf,
    /// The private key file.
    #[arg(long, value_name = "KEYFILE")]
    key: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Trust this key (`ed25519:<hex>` or a .pub file); repeatable.
    /// Without any, the project's `[trust]` is used.
    #[arg(long = "trust", value_name = "KEY")]
    trust: Vec<String>,
    /// Trusted signers needed.
    #[arg(long, value_name = "N")]
    min_signers: Option<usize>,
    /// Accept an unsigned bundle.
    #[arg(long)]
    allow_unsigned: bool,
    /// The project whose `.omk/gates.toml` holds the trust policy.
    #[arg(long, value_name = "DIR", default_value = ".")]
    project: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle (directory, .tar.gz, or oci://…).
    bundle: String,
    #[command(flatten)]
    trust: TrustArgs,
    /// Use plain HTTP for the registry.
    #[arg(long)]
    plain_http: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The bundle (directory, .tar.gz, oci://…, or `std`).
    bundle: String,
    /// Use plain HTTP for the registry.
    #[arg(long)]
    plain_http: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The bundle (directory, .tar.gz, or oci://…).
    bundle: String,
    #[command(flatten)]
    trust: TrustArgs,
    /// Install it even if it is older than a version of it installed here
    /// before (a rollback, refused by default).
    #[arg(long)]
    allow_downgrade: bool,
    /// Use plain HTTP for the registry.
    #[arg(long)]
    plain_http: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The bundle (directory or .tar.gz).
    bundle: PathBuf,
    /// Where: `oci://HOST[:PORT]/REPO:TAG`.
    reference: String,
    /// Use plain HTTP (automatic for localhost and 127.0.0.1).
    #[arg(long)]
    plain_http: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// What: `oci://HOST[:PORT]/REPO:TAG` or `…@sha256:…`.
    reference: String,
    /// The archive to write.
    #[arg(short = 'o', long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    /// Use plain HTTP.
    #[arg(long)]
    plain_http: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: BundleCommand) -> Result<Outcome> {
    match cmd {
        BundleCommand::Keygen(a) => keygen(a),
        BundleCommand::Pack(a) => pack(a),
        BundleCommand::Sign(a) => sign_cmd(a),
        BundleCommand::Verify(a) => verify(a),
        BundleCommand::Inspect(a) => inspect(a),
        BundleCommand::Install(a) => install(a),
        BundleCommand::Push(a) => push(a),
        BundleCommand::Pull(a) => pull(a),
    }
}

fn keygen(a: KeygenArgs) -> Result<Outcome> {
    if a.out.exists() {
        return Err(with_help(
            format!("`{}` already exists", a.out.display()),
            "choose another path; omk never overwrites a key",
        ));
    }
    let key = PrivateKey::generate()
        .map_err(|e| with_help(e, "this machine has no source of randomness"))?;
    let pub_path = key.save(&a.out).map_err(|e| {
        with_help(
            format!("cannot write `{}`: {e}", a.out.display()),
            "check the directory",
        )
    })?;
    if a.json {
        let out = json!({"public": key.public().to_string(), "key_id": key.public().id(),
                         "private_file": a.out, "public_file": pub_path});
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Ok);
    }
    outln!("{}", key.public());
    eprintln!(
        "wrote {} (private, mode 0600) and {} (public, id {})",
        a.out.display(),
        pub_path.display(),
        key.public().id()
    );
    Ok(Outcome::Ok)
}

fn write_bundle(bundle: &Bundle, to: &Path) -> Result<()> {
    if to.is_dir() {
        bundle.write_dir(to)?;
    } else {
        omk::atomic::write(to, &bundle.to_tar_gz())?;
    }
    Ok(())
}

fn pack(a: PackArgs) -> Result<Outcome> {
    if !a.dir.is_dir() {
        return Err(with_help(
            format!("`{}` is not a directory", a.dir.display()),
            "pack a directory holding bundle.toml and the components",
        ));
    }
    let mut b = Bundle::open(&a.dir)?;
    let filled = bundle::complete_manifest(&mut b)?;
    // A bundle may target a WIT version newer than this omk: pack anyway.
    b.check_files()?;
    if !b.signatures.is_empty() && filled > 0 {
        b.signatures.clear();
        eprintln!(
            "note: the manifest changed, so its old signatures were dropped; sign the archive again"
        );
    }
    omk::atomic::write(&a.out, &b.to_tar_gz())?;
    if a.json {
        let out = json!({"bundle": b.name(), "version": b.manifest.version,
                         "gates": b.manifest.gates.len(), "size": b.size(), "digest": b.digest(),
                         "file": a.out, "filled_sha256": filled});
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Ok);
    }
    outln!(
        "packed {} {} ({} gates, {} bytes) into {}{}",
        b.name(),
        b.manifest.version,
        b.manifest.gates.len(),
        b.size(),
        a.out.display(),
        if filled > 0 {
            format!("; filled the sha256 of {filled} gates")
        } else {
            String::new()
        }
    );
    Ok(Outcome::Ok)
}

fn sign_cmd(a: SignArgs) -> Result<Outcome> {
    let key = PrivateKey::load(&a.key)
        .map_err(|e| with_help(e, "pass a key made by `omk bundle keygen`"))?;
    let mut b = Bundle::open(&a.bundle)?;
    b.check_files()?;
    let id = sign::sign(&mut b, &key);
    write_bundle(&b, &a.bundle)?;
    if a.json {
        let out = json!({"bundle": b.name(), "version": b.manifest.version,
                         "key_id": id.to_string(), "signatures": b.signatures.len()});
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Ok);
    }
    outln!(
        "signed {} {} with key {id} ({} signatures now)",
        b.name(),
        b.manifest.version,
        b.signatures.len()
    );
    Ok(Outcome::Ok)
}

/// The trust policy from flags, else from the project.
fn policy(t: &TrustArgs) -> Result<TrustPolicy> {
    let mut p = if t.trust.is_empty() {
        GatesConfig::for_project(&t.project)?.trust
    } else {
        let keys = t
            .trust
            .iter()
            .map(|k| super::trusted_key(k))
            .collect::<Result<Vec<_>>>()?;
        TrustPolicy {
            keys,
            require_signature: true,
            minimum_signers: 1,
            min_version: None,
        }
    };
    if let Some(n) = t.min_signers {
        p.minimum_signers = n;
    }
    if t.allow_unsigned {
        p.require_signature = false;
    }
    Ok(p)
}

/// The `min_version` the project's `.omk/gates.toml` pins for bundle
/// `name`, if any.
fn project_min_version(project: &std::path::Path, name: &str) -> Result<Option<semver::Version>> {
    Ok(GatesConfig::for_project(project)?
        .bundles
        .into_iter()
        .find(|b| b.name == name)
        .and_then(|b| b.trust.min_version))
}

/// Opens a path or pulls an `oci://` reference.
fn open(source: &str, plain_http: bool) -> Result<Bundle> {
    if source.starts_with("oci://") {
        let r = oci::parse(source, plain_http)
            .map_err(|e| with_help(e, "write `oci://HOST/REPO:TAG`"))?;
        let rt = super::goal::runtime()?;
        return Ok(rt.block_on(oci::pull(&r))?);
    }
    if source == "std" {
        return Ok(std_bundle::bundle());
    }
    Ok(Bundle::open(Path::new(source))?)
}

fn verify(a: VerifyArgs) -> Result<Outcome> {
    let b = open(&a.bundle, a.plain_http)?;
    let p = policy(&a.trust)?;
    match sign::verify(&b, &p) {
        Ok(v) => {
            if a.json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"ok": true, "verified": v}))?
                );
            } else {
                let trusted = v.trusted_signers();
                outln!(
                    "OK  {} {} digest {}; signed by {} (trusted: {})",
                    v.bundle,
                    v.version,
                    v.digest,
                    if v.signers.is_empty() {
                        "nobody".to_owned()
                    } else {
                        v.signers
                            .iter()
                            .map(|s| s.key_id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    if trusted.is_empty() {
                        "none".to_owned()
                    } else {
                        trusted.join(", ")
                    }
                );
            }
            Ok(Outcome::Ok)
        }
        Err(e) => {
            if a.json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"ok": false, "error": e.to_string(), "help": e.help})
                    )?
                );
            } else {
                outln!("REFUSED  {e}");
                if let Some(h) = e.help.clone() {
                    outln!("help: {h}");
                }
            }
            Ok(Outcome::Rejected)
        }
    }
}

fn inspect(a: InspectArgs) -> Result<Outcome> {
    let b = open(&a.bundle, a.plain_http)?;
    let (verified, policy_note) = if a.bundle == "std" {
        (sign::verify(&b, &std_bundle::trust()).ok(), "release key")
    } else {
        (
            sign::verify(
                &b,
                &TrustPolicy {
                    keys: vec![],
                    require_signature: false,
                    minimum_signers: 0,
                    min_version: None,
                },
            )
            .ok(),
            "integrity only",
        )
    };
    let signers: Vec<serde_json::Value> = b
        .signatures
        .values()
        .filter_map(|d| std::str::from_utf8(d).ok())
        .filter_map(|t| toml::from_str::<sign::SignatureFile>(t).ok())
        .map(|s| {
            let id = PublicKey::parse(&s.key).map(|k| k.id()).unwrap_or_default();
            json!({"key": s.key, "key_id": id})
        })
        .collect();
    let gates: Vec<serde_json::Value> = b
        .manifest
        .gates
        .iter()
        .map(|g| {
            json!({"name": g.name, "file": g.file, "sha256": g.sha256, "stages": g.stages,
                   "size": b.files.get(&g.file).map_or(0, Vec::len), "config": g.config})
        })
        .collect();
    let out = json!({
        "name": b.manifest.name, "version": b.manifest.version, "wit": b.manifest.wit,
        "description": b.manifest.description, "digest": b.digest(), "size": b.size(),
        "gates": gates, "signers": signers,
        "intact": verified.is_some(),
    });
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Ok);
    }
    outln!(
        "bundle:  {} {} (omk:gate {})",
        b.manifest.name,
        b.manifest.version,
        b.manifest.wit
    );
    if !b.manifest.description.is_empty() {
        outln!("         {}", b.manifest.description);
    }
    outln!("digest:  {}", b.digest());
    outln!("size:    {} bytes", b.size());
    outln!(
        "intact:  {} ({policy_note})",
        if verified.is_some() { "yes" } else { "NO" }
    );
    for g in &b.manifest.gates {
        let stages: Vec<&str> = g.stages.iter().map(|s| s.as_str()).collect();
        outln!(
            "gate:    {}  {}  {} bytes  sha256 {}  stages {}",
            g.name,
            g.file,
            b.files.get(&g.file).map_or(0, Vec::len),
            &g.sha256[..g.sha256.len().min(16)],
            stages.join(", ")
        );
    }
    if signers.is_empty() {
        outln!("signers: none (unsigned)");
    }
    for s in &signers {
        outln!(
            "signer:  {} ({})",
            s["key_id"].as_str().unwrap_or(""),
            s["key"].as_str().unwrap_or("")
        );
    }
    Ok(Outcome::Ok)
}

fn install(a: InstallArgs) -> Result<Outcome> {
    let b = open(&a.bundle, a.plain_http)?;
    let mut p = policy(&a.trust)?;
    // The project's pin of this bundle holds whatever keys are trusted.
    if p.min_version.is_none() {
        p.min_version = project_min_version(&a.trust.project, b.name())?;
    }
    let v = sign::verify(&b, &p)?;
    let bundles = a.trust.project.join(BUNDLES_DIR);
    let mut record = Installed::read(&bundles)?;
    record.check(b.name(), &v.version, a.allow_downgrade)?;
    let dest = bundles.join(b.name());
    b.write_dir(&dest).map_err(|e| {
        with_help(
            format!("cannot write `{}`: {e}", dest.display()),
            "check the project directory",
        )
    })?;
    record.record(b.name(), &v.version, &v.digest);
    record.write(&bundles).map_err(|e| {
        with_help(
            format!(
                "cannot write `{}`: {e}",
                bundles.join(INSTALLED_FILE).display()
            ),
            "check the project directory",
        )
    })?;
    // Trusted for the install by `--trust`, but not by the project: its
    // gates would not load. Say exactly what to add.
    let mut untrusted: Vec<String> = Vec::new();
    if !a.trust.trust.is_empty() {
        let project = GatesConfig::for_project(&a.trust.project)?.trust;
        untrusted = v
            .signers
            .iter()
            .filter(|s| s.trusted)
            .filter(|s| !project.keys.iter().any(|k| k.to_string() == s.key))
            .map(|s| s.key.clone())
            .collect();
    }
    if a.json {
        let gates: Vec<&str> = b.manifest.gates.iter().map(|g| g.name.as_str()).collect();
        let out = json!({"bundle": v.bundle, "version": v.version, "digest": v.digest,
                         "dir": dest, "gates": gates, "trust_keys_to_add": untrusted});
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Ok);
    }
    outln!(
        "installed {} {} into {} (digest {})",
        v.bundle,
        v.version,
        dest.display(),
        v.digest
    );
    if !untrusted.is_empty() {
        outln!(
            "the project does not trust its signer yet; its gates load once .omk/gates.toml has (beside any keys it lists):"
        );
        let keys: Vec<String> = untrusted.iter().map(|k| format!("\"{k}\"")).collect();
        outln!("  [trust]\n  keys = [{}]", keys.join(", "));
    }
    outln!("use its gates in .omk/gates.toml:");
    for g in &b.manifest.gates {
        outln!(
            "  [[gate]]\n  bundle = \"{}\"\n  name = \"{}\"",
            b.name(),
            g.name
        );
    }
    Ok(Outcome::Ok)
}

fn push(a: PushArgs) -> Result<Outcome> {
    let b = Bundle::open(&a.bundle)?;
    b.check_files()?;
    let r = oci::parse(&a.reference, a.plain_http)
        .map_err(|e| with_help(e, "write `oci://HOST/REPO:TAG`"))?;
    let rt = super::goal::runtime()?;
    let at = rt.block_on(oci::push(&b, &r))?;
    if a.json {
        let out = json!({"bundle": b.name(), "version": b.manifest.version,
                         "reference": a.reference, "digest_reference": at});
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Ok);
    }
    outln!(
        "pushed {} {} to {}",
        b.name(),
        b.manifest.version,
        a.reference
    );
    outln!("{at}");
    Ok(Outcome::Ok)
}

fn pull(a: PullArgs) -> Result<Outcome> {
    let b = open(&a.reference, a.plain_http)?;
    let p = policy(&a.trust)?;
    let v = sign::verify(&b, &p)?;
    omk::atomic::write(&a.out, &b.to_tar_gz())?;
    if a.json {
        let out = json!({"bundle": v.bundle, "version": v.version, "digest": v.digest,
                         "file": a.out});
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Ok);
    }
    outln!(
        "pulled {} {} (digest {}) into {}",
        v.bundle,
        v.version,
        v.digest,
        a.out.display()
    );
    Ok(Outcome::Ok)
}

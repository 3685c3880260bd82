//! Signed bundles: keys, packing, signing, verification and trust, the
//! embedded std bundle, and distribution through a real OCI registry.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Omk, repo};

/// A bundle source directory with one gate (the std path gate's component
/// under another name, with default settings).
pub(crate) fn bundle_dir(omk: &Omk, name: &str, wit: &str) -> PathBuf {
    let dir = omk.project().join("src-bundles").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        repo().join("plugins/std-bundle/path.wasm"),
        dir.join("strict-path.wasm"),
    )
    .unwrap();
    std::fs::write(
        dir.join("bundle.toml"),
        format!(
            "name = \"{name}\"\nversion = \"1.0.0\"\nwit = \"{wit}\"\ndescription = \"a team policy\"\n\n[[gate]]\nname = \"strict-path\"\nfile = \"strict-path.wasm\"\nstages = [\"proposal\", \"action\", \"outcome\"]\nconfig = {{ roots = [\"src\"] }}\n"
        ),
    )
    .unwrap();
    dir
}

pub(crate) fn keygen(omk: &Omk, name: &str) -> (String, String) {
    let key = omk.project().join(format!("{name}.key"));
    let run = omk.run(&["bundle", "keygen", "--out", key.to_str().unwrap()]);
    run.code(0);
    (key.display().to_string(), format!("{}.pub", key.display()))
}

/// Packs and signs `dir` with `keys`; returns the archive.
pub(crate) fn packed(omk: &Omk, dir: &Path, keys: &[&str]) -> String {
    let out = dir.with_extension("tar.gz").display().to_string();
    omk.run(&["bundle", "pack", dir.to_str().unwrap(), "-o", &out])
        .code(0);
    for k in keys {
        omk.run(&["bundle", "sign", &out, "--key", k]).code(0);
    }
    out
}

fn verify(omk: &Omk, bundle: &str, extra: &[&str]) -> crate::support::Run {
    let mut args = vec!["bundle", "verify", bundle];
    args.extend_from_slice(extra);
    omk.run(&args)
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_can_read() {
    let omk = Omk::new();
    let (key, public) = keygen(&omk, "team");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        std::fs::read_to_string(&public)
            .unwrap()
            .starts_with("ed25519:")
    );
    omk.run(&["bundle", "keygen", "--out", &key]).code(2);
}

#[test]
fn round_trip_keygen_pack_sign_verify_install_and_run_in_a_goal() {
    let omk = Omk::new();
    let (key, public) = keygen(&omk, "team");
    let archive = packed(&omk, &bundle_dir(&omk, "team", "0.1.0"), &[&key]);
    let ok = verify(&omk, &archive, &["--trust", &public]);
    ok.code(0);
    assert!(ok.stdout.starts_with("OK  team 1.0.0"), "{}", ok.stdout);

    omk.write(".omk/gates.toml", "[trust]\nkeys = [\"team.key.pub\"]\n\n[[gate]]\nbundle = \"team\"\nname = \"strict-path\"\n\n[[gate]]\nname = \"budget\"\n");
    let install = omk.run(&["bundle", "install", &archive]);
    install.code(0);
    assert!(omk.project().join(".omk/bundles/team/bundle.toml").exists());
    assert!(omk.project().join(".omk/bundles/team/signatures").is_dir());

    let id = omk.new_goal("bundle goal", &[]);
    let plan = omk.plan(
        "w",
        json!([
            {"id": "in", "write_set": ["src/a.rs"], "budget_secs": 10},
            {"id": "out", "write_set": ["docs/a.md"], "budget_secs": 10}
        ]),
    );
    let run = omk.run(&["goal", "propose", &id, "--plan", &plan, "--json"]);
    run.code(1);
    let ev = run.json();
    assert_eq!(ev["accepted"], json!(["in"]));
    assert_eq!(ev["rejected"][0]["gate"], "strict-path");
    assert_eq!(ev["rejected"][0]["code"], "path.outside-roots");
    // The proof names the bundle, its digest and its signer.
    let proof = omk.run(&["goal", "proof", &id, "--json"]).json();
    let gate = proof["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "strict-path")
        .unwrap()
        .clone();
    assert_eq!(gate["bundle"], "team");
    assert_eq!(gate["bundle_digest"].as_str().unwrap().len(), 64);
    let key_id =
        omk.run(&["bundle", "inspect", &archive, "--json"]).json()["signers"][0]["key_id"].clone();
    assert_eq!(gate["signer"], key_id);
}

#[test]
fn each_refusal_names_the_bundle_the_file_and_the_reason() {
    let omk = Omk::new();
    let (team, team_pub) = keygen(&omk, "team");
    let (other, _) = keygen(&omk, "other");
    let trust = ["--trust", team_pub.as_str()];

    let unsigned = packed(&omk, &bundle_dir(&omk, "unsigned", "0.1.0"), &[]);
    let r = verify(&omk, &unsigned, &trust);
    r.code(1);
    assert!(
        r.stdout.contains("bundle `unsigned") && r.stdout.contains("is unsigned"),
        "{}",
        r.stdout
    );
    verify(&omk, &unsigned, &["--allow-unsigned"]).code(0);

    let untrusted = packed(&omk, &bundle_dir(&omk, "untrusted", "0.1.0"), &[&other]);
    let r = verify(&omk, &untrusted, &trust);
    r.code(1);
    assert!(
        r.stdout
            .contains("signed only by keys this project does not trust"),
        "{}",
        r.stdout
    );
    // The help names the exact line to add: the untrusted signer's key.
    let other_key = std::fs::read_to_string(format!("{other}.pub")).unwrap();
    let other_key = other_key.lines().next().unwrap();
    assert!(
        r.stdout.contains(&format!("help: if you trust its publisher, add its key to .omk/gates.toml: `[trust] keys = [\"{other_key}\"]`")),
        "{}",
        r.stdout
    );

    // Directory bundles, edited after signing.
    let signed = |name: &str| {
        let dir = bundle_dir(&omk, name, "0.1.0");
        let archive = packed(&omk, &dir, &[&team]);
        let out = omk.project().join("installed").join(name);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let entries = std::process::Command::new("tar")
            .args(["-xzf", &archive, "-C"])
            .arg({
                std::fs::create_dir_all(&out).unwrap();
                &out
            })
            .status()
            .unwrap();
        assert!(entries.success());
        out
    };
    let changed = signed("changed");
    std::fs::write(
        changed.join("strict-path.wasm"),
        b"\0asm\x0d\0\x01\0tampered",
    )
    .unwrap();
    let r = verify(&omk, changed.to_str().unwrap(), &trust);
    r.code(1);
    assert!(
        r.stdout
            .contains("`strict-path.wasm` was changed after key"),
        "{}",
        r.stdout
    );

    let added = signed("added");
    std::fs::write(added.join("extra.wasm"), b"x").unwrap();
    let r = verify(&omk, added.to_str().unwrap(), &trust);
    r.code(1);
    assert!(
        r.stdout.contains("`extra.wasm` was added after key"),
        "{}",
        r.stdout
    );

    let missing = signed("missing");
    std::fs::remove_file(missing.join("strict-path.wasm")).unwrap();
    let r = verify(&omk, missing.to_str().unwrap(), &trust);
    r.code(1);
    assert!(
        r.stdout.contains("`strict-path.wasm` was signed by key")
            && r.stdout.contains("is missing"),
        "{}",
        r.stdout
    );

    let future = packed(&omk, &bundle_dir(&omk, "future", "0.9.0"), &[&team]);
    let r = verify(&omk, &future, &trust);
    r.code(1);
    assert!(
        r.stdout
            .contains("targets `omk:gate@0.9.0`, which this omk does not support"),
        "{}",
        r.stdout
    );

    // Nothing from a refused bundle runs: loading the project fails first,
    // as an integrity failure (exit 3).
    omk.write(".omk/gates.toml", "[trust]\nkeys = [\"team.key.pub\"]\n\n[[bundle]]\nname = \"changed\"\npath = \"installed/changed\"\n\n[[gate]]\nbundle = \"changed\"\nname = \"strict-path\"\n");
    omk.write("p.json", r#"{"id":"a","budget_secs":1}"#);
    let r = omk.run(&["gate", "check", "--proposal", "p.json"]);
    r.code(3);
    assert!(
        r.stderr.contains("was changed after key") && r.stderr.contains("help:"),
        "{}",
        r.stderr
    );
}

#[test]
fn two_signers_one_trusted_passes_only_with_minimum_one() {
    let omk = Omk::new();
    let (a, a_pub) = keygen(&omk, "a");
    let (b, _) = keygen(&omk, "b");
    let archive = packed(&omk, &bundle_dir(&omk, "pair", "0.1.0"), &[&a, &b]);
    let inspect = omk.run(&["bundle", "inspect", &archive, "--json"]).json();
    assert_eq!(inspect["signers"].as_array().unwrap().len(), 2);
    verify(&omk, &archive, &["--trust", &a_pub, "--min-signers", "1"]).code(0);
    let r = verify(&omk, &archive, &["--trust", &a_pub, "--min-signers", "2"]);
    r.code(1);
    assert!(
        r.stdout
            .contains("has 1 trusted signer(s), and this project requires 2"),
        "{}",
        r.stdout
    );
}

#[test]
fn the_std_bundle_is_a_signed_bundle_like_any_other() {
    let omk = Omk::new();
    let i = omk.run(&["bundle", "inspect", "std", "--json"]);
    i.code(0);
    let i = i.json();
    assert_eq!(i["name"], "std");
    assert_eq!(i["intact"], true);
    assert_eq!(i["gates"].as_array().unwrap().len(), 4);
    let release = repo().join("plugins/release-key/release.pub");
    verify(&omk, "std", &["--trust", release.to_str().unwrap()]).code(0);
    // The same files on disk verify too.
    let dir = repo().join("plugins/std-bundle");
    verify(
        &omk,
        dir.to_str().unwrap(),
        &["--trust", release.to_str().unwrap()],
    )
    .code(0);
}

/// A real OCI registry (Debian's `docker-registry`, the CNCF distribution
/// registry) on a free loopback port, storing into a temp dir.
struct Registry {
    child: std::process::Child,
    port: u16,
    storage: PathBuf,
}

impl Registry {
    fn start(dir: &Path) -> Option<Registry> {
        Registry::start_with(dir, "")
    }

    /// A registry that needs the login `user`/`password` (htpasswd, bcrypt).
    fn with_login(dir: &Path, user: &str, password: &str) -> Option<Registry> {
        let hash = std::process::Command::new("python3")
            .args([
                "-W",
                "ignore",
                "-c",
                "import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
                password,
            ])
            .output()
            .unwrap();
        assert!(hash.status.success(), "bcrypt through python3's crypt");
        let file = dir.join("htpasswd");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            &file,
            format!("{user}:{}", String::from_utf8_lossy(&hash.stdout).trim()),
        )
        .unwrap();
        let auth = format!(
            "auth:\n  htpasswd:\n    realm: omk-test\n    path: {}\n",
            file.display()
        );
        Registry::start_with(dir, &auth)
    }

    fn start_with(dir: &Path, extra: &str) -> Option<Registry> {
        let bin = Path::new("/usr/bin/docker-registry");
        if !bin.exists() {
            crate::support::skip("no docker-registry here (`apt-get install docker-registry`)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let storage = dir.join("registry");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
                storage.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Registry {
            child,
            port,
            storage,
        })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn push_and_pull_through_a_real_registry_and_refuse_a_modified_layer() {
    let omk = Omk::new();
    let Some(reg) = Registry::start(&omk.project()) else {
        return;
    };
    let (key, public) = keygen(&omk, "team");
    let archive = packed(&omk, &bundle_dir(&omk, "team", "0.1.0"), &[&key]);
    let tag = format!("oci://127.0.0.1:{}/policies/team:1.0.0", reg.port);
    let push = omk.run(&["bundle", "push", &archive, &tag]);
    push.code(0);
    let by_digest = push.stdout.lines().last().unwrap().trim().to_owned();
    assert!(by_digest.contains("@sha256:"), "{}", push.stdout);

    let pulled = omk.project().join("pulled.tar.gz");
    omk.run(&[
        "bundle",
        "pull",
        &tag,
        "-o",
        pulled.to_str().unwrap(),
        "--trust",
        &public,
    ])
    .code(0);
    assert_eq!(
        std::fs::read(&pulled).unwrap(),
        std::fs::read(&archive).unwrap(),
        "byte for byte"
    );
    let pulled2 = omk.project().join("pulled2.tar.gz");
    omk.run(&[
        "bundle",
        "pull",
        &by_digest,
        "-o",
        pulled2.to_str().unwrap(),
        "--trust",
        &public,
    ])
    .code(0);

    // Pull refuses an untrusted signer, and install works straight from the registry.
    let r = omk.run(&[
        "bundle",
        "pull",
        &tag,
        "-o",
        omk.project().join("untrusted.tar.gz").to_str().unwrap(),
        "--trust",
        "ed25519:0a0f0d1b1a34a2a5c3de5cd5f15b1f4cbb4c22a1cbd5cf20c1b3e5bf67f18f4e",
    ]);
    assert_ne!(r.code, 0);
    assert!(
        !omk.project().join("untrusted.tar.gz").exists(),
        "a refused bundle is never written"
    );
    omk.run(&["bundle", "install", &tag, "--trust", &public])
        .code(0);
    assert!(
        omk.project()
            .join(".omk/bundles/team/strict-path.wasm")
            .exists()
    );

    // The registry serves a modified layer: the pull is refused.
    let layer_digest = {
        let data = std::fs::read(&archive).unwrap();
        omk::gates::sha256_hex(&data)
    };
    let blob = reg.storage.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{layer_digest}/data",
        &layer_digest[..2]
    ));
    assert!(blob.exists(), "{}", blob.display());
    let mut data = std::fs::read(&blob).unwrap();
    let n = data.len() / 2;
    data[n] ^= 0xff;
    std::fs::write(&blob, data).unwrap();
    let r = omk.run(&[
        "bundle",
        "pull",
        &tag,
        "-o",
        pulled.to_str().unwrap(),
        "--trust",
        &public,
    ]);
    r.code(2);
    assert!(
        r.stderr.contains("cannot pull") || r.stderr.contains("changed after"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_install_trusted_by_flag_says_what_the_project_must_trust() {
    let omk = Omk::new();
    let (team, team_pub) = keygen(&omk, "team");
    let archive = packed(&omk, &bundle_dir(&omk, "team", "0.1.0"), &[&team]);
    let install = omk.run(&["bundle", "install", &archive, "--trust", &team_pub]);
    install.code(0);
    let key = std::fs::read_to_string(&team_pub).unwrap();
    let key = key.lines().next().unwrap();
    let lines = format!("  [trust]\n  keys = [\"{key}\"]");
    assert!(install.stdout.contains(&lines), "{}", install.stdout);
    // Without those lines the gates do not load; with them they do.
    let gate =
        "[[bundle]]\nname = \"team\"\n\n[[gate]]\nbundle = \"team\"\nname = \"strict-path\"\n";
    omk.write(".omk/gates.toml", gate);
    omk.write(
        "p.json",
        r#"{"id":"a","write_set":["src/a.rs"],"acceptance":["x"],"budget_secs":1}"#,
    );
    let refused = omk.run(&["gate", "check", "--proposal", "p.json"]);
    refused.code(3);
    assert!(
        refused.stderr.contains(&format!("[\"{key}\"]")),
        "{}",
        refused.stderr
    );
    let trusted: String = lines.lines().map(|l| format!("{}\n", l.trim())).collect();
    omk.write(".omk/gates.toml", format!("{trusted}\n{gate}"));
    omk.run(&["gate", "check", "--proposal", "p.json"]).code(0);
}

#[test]
fn registry_logins_come_from_the_docker_config_and_errors_keep_their_cause() {
    let omk = Omk::new();
    let Some(reg) = Registry::with_login(&omk.root().join("reg"), "omk", "s3cret") else {
        return;
    };
    let (key, public) = keygen(&omk, "team");
    let archive = packed(&omk, &bundle_dir(&omk, "team", "0.1.0"), &[&key]);
    let host = format!("127.0.0.1:{}", reg.port);
    let tag = format!("oci://{host}/policies/team:1.0.0");
    let docker = omk.root().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    fn with(config: &Path) -> [(&'static str, &std::ffi::OsStr); 1] {
        [("DOCKER_CONFIG", config.as_os_str())]
    }

    // No login anywhere: the registry says no, and the help says where
    // omk looks.
    let empty = omk.root().join("no-docker");
    let r = omk.run_env(&["bundle", "push", &archive, &tag], &with(&empty));
    r.code(2);
    assert!(r.stderr.contains("docker login"), "{}", r.stderr);

    // `docker login`'s own file: `auths` with the user and password.
    let login = "b21rOnMzY3JldA=="; // base64 of omk:s3cret
    std::fs::write(
        docker.join("config.json"),
        json!({"auths": {&host: {"auth": login}}}).to_string(),
    )
    .unwrap();
    omk.run_env(&["bundle", "push", &archive, &tag], &with(&docker))
        .code(0);

    // A credential helper, as `credHelpers` names it.
    let bin = omk.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-omktest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"omk\",\"Secret\":\"s3cret\"}' \"$server\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let helped = omk.root().join("helped");
    std::fs::create_dir_all(&helped).unwrap();
    std::fs::write(
        helped.join("config.json"),
        json!({"credHelpers": {&host: "omktest"}}).to_string(),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let pulled = omk.root().join("pulled.tar.gz");
    omk.run_env(
        &[
            "bundle",
            "pull",
            &tag,
            "-o",
            pulled.to_str().unwrap(),
            "--trust",
            &public,
        ],
        &[
            ("DOCKER_CONFIG", helped.as_os_str()),
            ("PATH", std::ffi::OsStr::new(&path)),
        ],
    )
    .code(0);
    assert_eq!(
        std::fs::read(&pulled).unwrap(),
        std::fs::read(&archive).unwrap()
    );

    // The registry gone: the error says the connection was refused.
    drop(reg);
    let r = omk.run_env(
        &["bundle", "pull", &tag, "-o", pulled.to_str().unwrap()],
        &with(&docker),
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.to_lowercase().contains("connection refused"),
        "{}",
        r.stderr
    );
}

#[test]
fn every_bundle_command_answers_in_json_when_asked() {
    let omk = Omk::new();
    let key = omk.project().join("ci.key");
    let made = omk.run(&["bundle", "keygen", "--out", key.to_str().unwrap(), "--json"]);
    made.code(0);
    let made = made.json();
    assert!(made["public"].as_str().unwrap().starts_with("ed25519:"));
    let public = made["public_file"].as_str().unwrap().to_owned();

    let dir = bundle_dir(&omk, "team", "0.1.0");
    let out = omk.project().join("team.tar.gz");
    let (dir, out) = (dir.to_str().unwrap(), out.to_str().unwrap());
    let pack = omk.run(&["bundle", "pack", dir, "-o", out, "--json"]);
    pack.code(0);
    assert_eq!(pack.json()["gates"], 1);
    assert!(pack.json()["digest"].as_str().is_some());

    let key = key.to_str().unwrap();
    let sign = omk.run(&["bundle", "sign", out, "--key", key, "--json"]);
    sign.code(0);
    assert_eq!(sign.json()["signatures"], 1);
    assert_eq!(sign.json()["key_id"], made["key_id"]);

    // Trusted for this install only: the JSON names the key the project
    // still has to trust.
    let install = omk.run(&["bundle", "install", out, "--trust", &public, "--json"]);
    install.code(0);
    let v = install.json();
    assert_eq!(v["gates"], json!(["strict-path"]));
    assert_eq!(v["trust_keys_to_add"], json!([made["public"]]));
}

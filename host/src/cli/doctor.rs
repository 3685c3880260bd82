//! `omk doctor`: which agents, gate toolchains and directories are usable
//! here, and why not.

use clap::Args;
use serde_json::json;

use super::{Outcome, Result};
use omk::agents::doctor;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also check this NATS server for `omk worker` and `--dispatch`:
    /// reachable, JetStream enabled, omk's streams (exit 1 if not usable).
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// A gate toolchain: what it builds, the tool (the first found of), the
/// variable that overrides it, how to install it.
const TOOLCHAINS: &[(&str, &[&str], Option<&str>, &str)] = &[
    (
        "rust",
        &["cargo"],
        None,
        "install Rust, then `rustup target add wasm32-unknown-unknown`",
    ),
    (
        "c",
        &["clang-19", "clang"],
        Some("OMK_CLANG"),
        "install clang-19, lld-19 and wasi-libc",
    ),
    (
        "python",
        &["componentize-py"],
        Some("OMK_COMPONENTIZE_PY"),
        "pip install componentize-py==0.25.1",
    ),
    (
        "js",
        &["componentize-js"],
        Some("OMK_COMPONENTIZE_JS"),
        "npm install @bytecodealliance/componentize-js@0.23",
    ),
];

pub fn run(a: DoctorArgs) -> Result<Outcome> {
    let agents = doctor::check_all();
    let here = std::env::current_dir().unwrap_or_default();
    let toolchains: Vec<_> = TOOLCHAINS
        .iter()
        .map(|(lang, tool, var, install)| {
            let found = omk::author::find_tool(&here, tool, *var);
            json!({"language": lang, "tool": tool[0], "usable": found.is_some(),
                   "help": found.is_none().then_some(*install),
                   "path": found.map(|p| p.display().to_string())})
        })
        .collect();
    let dirs: Vec<_> = [
        ("cache", omk::dirs::cache_dir()),
        ("state", omk::dirs::state_dir()),
    ]
    .into_iter()
    .map(|(name, d)| {
        let problem = match &d {
            None => Some("cannot be named: HOME is not set".to_owned()),
            Some(d) => writable(d).err(),
        };
        json!({"name": name, "path": d.map(|d| d.display().to_string()),
                   "usable": problem.is_none(), "problem": problem})
    })
    .collect();
    let nats = match &a.nats {
        Some(url) => Some(super::goal::runtime()?.block_on(omk::dispatch::hub::check(
            url,
            &omk::dispatch::hub::Auth::from_env(),
        ))),
        None => None,
    };
    let nats_ok = nats
        .as_ref()
        .is_none_or(|n| n["reachable"] == true && n["jetstream"] == true);
    let outcome = if nats_ok {
        Outcome::Ok
    } else {
        Outcome::Rejected
    };
    let (abi, rules) = omk::sandbox::kernel_rules();
    let sandbox = json!({"landlock_abi": abi, "needs_abi": omk::sandbox::REQUIRED_ABI,
                         "usable": rules.iter().all(|r| r.usable || !r.required), "rules": rules});
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "agents": agents, "acp": "any ACP agent: `--agent acp:CMD`",
                "toolchains": toolchains, "dirs": dirs, "sandbox": sandbox, "nats": nats}))?
        );
        return Ok(outcome);
    }
    if let Some(n) = &nats {
        outln!("NATS for workers ({})", n["url"].as_str().unwrap_or(""));
        let mark = |ok: bool| if ok { "ok " } else { "no " };
        let reachable = n["reachable"] == true;
        outln!(
            "  {} reachable  {}",
            mark(reachable),
            if reachable {
                format!(
                    "server {} {}",
                    n["server"].as_str().unwrap_or(""),
                    n["version"].as_str().unwrap_or("")
                )
            } else {
                n["problem"].as_str().unwrap_or("").to_owned()
            }
        );
        if reachable {
            outln!("  {} JetStream", mark(n["jetstream"] == true));
            if let Some(p) = n["problem"].as_str() {
                outln!("           help: {p}; start the server with `-js`");
            }
            for (name, have) in n["streams"].as_object().into_iter().flatten() {
                outln!(
                    "  {} {name}  {}",
                    mark(true),
                    if *have == true {
                        "exists"
                    } else {
                        "made on first use"
                    }
                );
            }
        }
    }
    outln!("agents");
    for c in &agents {
        let mark = if c.usable { "ok " } else { "no " };
        let version = c
            .version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        outln!(
            "  {mark} {:<10}{version}  {}  ({})",
            c.agent,
            c.detail,
            c.command
        );
        if let Some(h) = &c.help {
            outln!("           help: {h}");
        }
    }
    outln!("  ok  acp         any Agent Client Protocol agent: `--agent acp:CMD`");
    outln!("gate toolchains (omk gate build)");
    for t in &toolchains {
        let mark = if t["usable"] == true { "ok " } else { "no " };
        outln!(
            "  {mark} {:<10}{}  {}",
            t["language"].as_str().unwrap_or(""),
            t["tool"].as_str().unwrap_or(""),
            t["path"].as_str().unwrap_or("not found")
        );
        if let Some(h) = t["help"].as_str() {
            outln!("           help: {h}");
        }
    }
    outln!(
        "confinement of task processes (Landlock ABI {abi} here; omk needs {})",
        omk::sandbox::REQUIRED_ABI
    );
    for r in &rules {
        let mark = if r.usable { "ok " } else { "no " };
        outln!("  {mark} {:<84}{}", r.rule, r.by);
        if let Some(why) = r.why.as_deref().filter(|_| !r.usable) {
            outln!("           {why}");
        }
    }
    if sandbox["usable"] != true {
        outln!(
            "           help: agents will not start confined; upgrade the kernel (Linux 6.12+), or set `[sandbox] mode = \"off\"` in .omk/gates.toml (the proof lists the gap)"
        );
    }
    outln!("directories");
    for d in &dirs {
        let mark = if d["usable"] == true { "ok " } else { "no " };
        outln!(
            "  {mark} {:<10}{}  {}",
            d["name"].as_str().unwrap_or(""),
            d["path"].as_str().unwrap_or("-"),
            d["problem"].as_str().unwrap_or("")
        );
    }
    Ok(outcome)
}

/// Whether omk can create files in `dir` (creating it if need be).
fn writable(dir: &std::path::Path) -> std::result::Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create it: {e}"))?;
    tempfile::tempfile_in(dir)
        .map(drop)
        .map_err(|e| format!("cannot write in it: {e}"))
}

//! The std `path` gate: tasks touch only what they declared, inside the
//! goal's policy roots, and never what another task of the wave touches.
//!
//! - **proposal**: every read and write path must pass
//!   [`paths::check`](omk_gate_sdk::paths::check) (`path.absolute`,
//!   `path.parent-dir`, `path.home`, `path.empty`, `path.control-char`,
//!   `path.backslash`, `path.git`, `path.too-long`) and lie inside a policy
//!   root (`path.outside-roots`); escapes and paths outside the roots are
//!   "outside the allowed goal policy roots". A write that overlaps a write
//!   or read of a task already accepted in the wave, or a read that overlaps
//!   its writes, is a `path.conflict` unless one task depends on the other.
//! - **action**: a file write or delete outside the task's write set is
//!   refused (`path.outside-write-set`); a read of a path under a
//!   `deny_read` entry, or a search of a directory that holds one, is
//!   refused (`path.read-denied`).
//! - **outcome**: every changed file must lie inside the write set.
//! - at every stage, a write under `.omk/` — omk's own folder: the gates
//!   and bundles that judge the task — is refused (`path.omk`), like
//!   `.git`, unless the project allows it; and so is a write or delete of
//!   the agents' own hook and tool configuration — `.claude/settings*.json`,
//!   `.claude/hooks/`, `.codex/`, `.kimi/`, `.gemini/`, `.opencode/`,
//!   `.cursor/`, `.mcp.json` — where an agent could switch its guard off
//!   for every later session (`path.agent-config`), unless the project
//!   allows it (`allow_agent_config_writes`).
//!
//! - a tool call (`omk:gate@0.3.0`'s `call-tool`) is accepted here; the
//!   `tools` setting says which of its arguments name files, and omk judges
//!   each such file, after the call, as the write or read it is (so this
//!   gate sees it as a `write-file` or `read-file` action, with its target
//!   resolved against the project the way a client's own `Write` is).
//!
//! Settings (all optional): `roots` (list of project-relative directories;
//! replaces the goal's policy roots); `allow_omk_writes` (default false);
//! `allow_agent_config_writes` (default false);
//! `deny_read` (list of project-relative paths no agent may read, such as
//! `["secrets", ".env"]`; default empty); `tools` (a table of
//! `"SERVER/TOOL" = { write = ["/path"], read = ["/source"] }`: which of a
//! tool call's arguments, as JSON pointers, are paths it writes or reads;
//! default empty). Every path in them must be a clean project-relative
//! path, every pointer a JSON pointer: `validate-config` refuses any other
//! at load.

use std::collections::{HashMap, HashSet};

use omk_gate_sdk::paths::{self, Violation};
use omk_gate_sdk::{
    AgentAction, Decision, GateInfo, GoalContext, Policy, Rejection, Stage, TaskOutcome,
    TaskProposal, config,
};
use serde::Deserialize;

/// The gate's name, as used in `.omk/gates.toml` and in codes.
pub const NAME: &str = "path";

/// The phrase every escape from the policy roots carries.
pub const OUTSIDE_ROOTS: &str = "outside the allowed goal policy roots";

/// The `path` gate.
pub struct PathGate;

/// The gate's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Project-relative directories tasks may touch; replaces the goal's
    /// policy roots when set.
    pub roots: Option<Vec<String>>,
    /// Whether tasks may write under `.omk/` (default false).
    pub allow_omk_writes: bool,
    /// Whether tasks may write the agents' hook and tool configuration
    /// (default false).
    pub allow_agent_config_writes: bool,
    /// Project-relative paths agents may not read (default none).
    pub deny_read: Vec<String>,
    /// For each tool (`SERVER/TOOL`), the JSON pointers of the arguments
    /// that name paths it writes and reads.
    pub tools: std::collections::BTreeMap<String, ToolPaths>,
}

/// Which arguments of a tool call are paths.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolPaths {
    /// JSON pointers to paths the tool writes (`/path`, `/edits/0/path`).
    pub write: Vec<String>,
    /// JSON pointers to paths it reads.
    pub read: Vec<String>,
}

impl Policy for PathGate {
    fn info() -> GateInfo {
        GateInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            stages: vec![Stage::Proposal, Stage::Action, Stage::Outcome],
            description:
                "keeps tasks inside the policy roots, their write sets, and apart from each other"
                    .into(),
        }
    }

    fn validate_config(raw: &str) -> Result<(), Rejection> {
        let settings: Settings = config::settings(NAME, raw)?;
        let named = settings.roots.iter().flatten().map(|r| ("roots", r));
        for (setting, path) in named.chain(settings.deny_read.iter().map(|d| ("deny_read", d))) {
            paths::check(path).map_err(|v| Rejection {
                code: format!("{NAME}.config-invalid"),
                reason: format!(
                    "`{}` in `{setting}` is not a project-relative path: {}",
                    path.escape_debug(),
                    v.describe()
                ),
            })?;
        }
        for (tool, paths) in &settings.tools {
            let bad_key = tool
                .split_once('/')
                .is_none_or(|(s, t)| s.is_empty() || t.is_empty());
            let bad_pointer = paths
                .write
                .iter()
                .chain(&paths.read)
                .find(|p| !p.is_empty() && !p.starts_with('/'));
            if bad_key || bad_pointer.is_some() {
                return Err(Rejection {
                    code: format!("{NAME}.config-invalid"),
                    reason: match bad_pointer {
                        Some(p) => format!(
                            "`{}` in `tools.\"{tool}\"` is not a JSON pointer: write `/path`, `/edits/0/path`",
                            p.escape_debug()
                        ),
                        None => format!(
                            "`{}` in `tools` does not name a tool: write `SERVER/TOOL` (`filesystem/write_file`)",
                            tool.escape_debug()
                        ),
                    },
                });
            }
        }
        Ok(())
    }

    fn check_proposal(ctx: &GoalContext, p: &TaskProposal, raw: &str) -> Decision {
        let roots = match roots(ctx, raw) {
            Ok(r) => r,
            Err(d) => return d,
        };
        let writes = match checked_set(&p.write_set, "write", &roots) {
            Ok(w) => w,
            Err(d) => return d,
        };
        if let Some(d) = writes.iter().find_map(|w| protected(w, "write", raw)) {
            return d;
        }
        let reads = match checked_set(&p.read_set, "read", &roots) {
            Ok(r) => r,
            Err(d) => return d,
        };
        conflicts(ctx, p, &writes, &reads).unwrap_or(Decision::Accept)
    }

    fn check_action(
        ctx: &GoalContext,
        task: &TaskProposal,
        a: &AgentAction,
        raw: &str,
    ) -> Decision {
        if a.kind == omk_gate_sdk::ActionKind::ReadFile {
            return read_denied(&a.target, raw).unwrap_or(Decision::Accept);
        }
        if !a.kind.is_file_change() {
            return Decision::Accept;
        }
        let roots = match roots(ctx, raw) {
            Ok(r) => r,
            Err(d) => return d,
        };
        let verb = if a.kind == omk_gate_sdk::ActionKind::DeleteFile {
            "delete"
        } else {
            "write"
        };
        inside_write_set(task, &a.target, verb, &roots)
            .or_else(|| protected(&a.target, verb, raw))
            .unwrap_or(Decision::Accept)
    }

    fn check_outcome(
        ctx: &GoalContext,
        task: &TaskProposal,
        o: &TaskOutcome,
        raw: &str,
    ) -> Decision {
        let roots = match roots(ctx, raw) {
            Ok(r) => r,
            Err(d) => return d,
        };
        o.changed_files
            .iter()
            .find_map(|f| {
                inside_write_set(task, f, "change", &roots).or_else(|| protected(f, "change", raw))
            })
            .unwrap_or(Decision::Accept)
    }
}

/// The effective policy roots, normalised: the `roots` setting, else the
/// goal's, else the whole project.
fn roots(ctx: &GoalContext, raw: &str) -> Result<Vec<String>, Decision> {
    let settings: Settings = config::parse(NAME, raw)?;
    let declared = settings.roots.unwrap_or_else(|| ctx.policy_roots.clone());
    if declared.is_empty() {
        return Ok(vec![".".to_owned()]);
    }
    declared
        .iter()
        .map(|r| {
            paths::check(r).map_err(|v| {
                Decision::reject(
                    "path.bad-root",
                    format!(
                        "policy root `{}` is not usable: {}",
                        r.escape_debug(),
                        v.describe()
                    ),
                )
            })
        })
        .collect()
}

/// The refusal of a read of `target` under a `deny_read` entry, or of a
/// search of a directory that holds one (its results would show what is
/// under it). `.` and `..` in the target are resolved first; a target
/// outside the project (absolute, `~`, or above the root) is left to the
/// host's confinement.
fn read_denied(target: &str, raw: &str) -> Option<Decision> {
    let settings: Settings = match config::parse(NAME, raw) {
        Ok(s) => s,
        Err(d) => return Some(d),
    };
    let norm = inside_project(target)?;
    let denied = settings
        .deny_read
        .iter()
        .filter_map(|d| paths::check(d).ok())
        .find(|d| paths::overlap(&norm, d))?;
    let reason = if paths::within(&norm, &denied) {
        format!(
            "may not read `{norm}`: the project denies reading `{denied}` (`deny_read` on the path gate)"
        )
    } else {
        format!(
            "may not search `{norm}`: it holds `{denied}`, which the project denies reading (`deny_read` on the path gate); search a directory that does not hold it"
        )
    };
    Some(Decision::reject("path.read-denied", reason))
}

/// `target` relative to the project with `.` and `..` resolved (`.` for the
/// root), or `None` if it names something outside the project.
fn inside_project(target: &str) -> Option<String> {
    if target.starts_with(['/', '~']) {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    })
}

/// The refusal of a write of what judges or guards the task: `.omk/`, or
/// an agent's hook and tool configuration.
fn protected(path: &str, verb: &str, raw: &str) -> Option<Decision> {
    omk_folder(path, verb, raw).or_else(|| agent_config(path, verb, raw))
}

/// Whether `norm` (a clean path) is an agent's hook or tool configuration.
pub fn is_agent_config(norm: &str) -> bool {
    let lower = norm.to_ascii_lowercase();
    let mut parts = lower.split('/').map(|p| p.trim_end_matches(['.', ' ']));
    let first = parts.next().unwrap_or_default();
    let second = parts.next();
    match first {
        ".codex" | ".kimi" | ".gemini" | ".opencode" | ".cursor" => true,
        ".mcp.json" => second.is_none(),
        ".claude" => match second {
            None => true, // the folder itself: what it holds goes with it
            Some("hooks") => true,
            Some(f) => f.starts_with("settings") && f.ends_with(".json"),
        },
        _ => false,
    }
}

/// The refusal of a write of an agent's hook or tool configuration, unless
/// the settings allow it.
fn agent_config(path: &str, verb: &str, raw: &str) -> Option<Decision> {
    let norm = paths::check(path).ok()?;
    if !is_agent_config(&norm) {
        return None;
    }
    let allowed = config::parse::<Settings>(NAME, raw).is_ok_and(|s| s.allow_agent_config_writes);
    (!allowed).then(|| {
        Decision::reject(
            "path.agent-config",
            format!(
                "may not {verb} `{norm}`: it configures an agent's hooks or tools, where a task could switch its own guard off for every later session; a project that wants tasks to change it sets `allow_agent_config_writes = true` on the path gate"
            ),
        )
    })
}

/// The refusal of a write under `.omk/` (any case, as `.git` is judged),
/// unless the settings allow it.
fn omk_folder(path: &str, verb: &str, raw: &str) -> Option<Decision> {
    let norm = paths::check(path).ok()?;
    let first = norm.split('/').next()?.trim_end_matches(['.', ' ']);
    if !first.eq_ignore_ascii_case(".omk") {
        return None;
    }
    let allowed = config::parse::<Settings>(NAME, raw).is_ok_and(|s| s.allow_omk_writes);
    (!allowed).then(|| {
        Decision::reject(
            "path.omk",
            format!(
                "may not {verb} `{norm}`: `.omk/` holds the gates and bundles that judge the task; a project that wants tasks to change it sets `allow_omk_writes = true` on the path gate"
            ),
        )
    })
}

fn violation(kind: &str, path: &str, v: Violation) -> Decision {
    let shown = path.escape_debug();
    let reason = if v.escapes_project() {
        format!("{kind} path `{shown}` is {OUTSIDE_ROOTS}: {}", v.describe())
    } else {
        format!("{kind} path `{shown}` is not allowed: {}", v.describe())
    };
    Decision::reject(format!("path.{}", v.rule()), reason)
}

fn check_in_roots(kind: &str, path: &str, roots: &[String]) -> Result<String, Decision> {
    let norm = paths::check(path).map_err(|v| violation(kind, path, v))?;
    if roots.iter().any(|r| paths::within(&norm, r)) {
        Ok(norm)
    } else {
        Err(Decision::reject(
            "path.outside-roots",
            format!(
                "{kind} path `{}` is {OUTSIDE_ROOTS} ({})",
                path.escape_debug(),
                list(roots)
            ),
        ))
    }
}

fn checked_set(set: &[String], kind: &str, roots: &[String]) -> Result<Vec<String>, Decision> {
    set.iter().map(|p| check_in_roots(kind, p, roots)).collect()
}

/// `None` when `path` may be changed by `task`, else the rejection.
fn inside_write_set(
    task: &TaskProposal,
    path: &str,
    verb: &str,
    roots: &[String],
) -> Option<Decision> {
    let norm = match check_in_roots(verb, path, roots) {
        Ok(n) => n,
        Err(d) => return Some(d),
    };
    let allowed = task
        .write_set
        .iter()
        .filter_map(|w| paths::check(w).ok())
        .any(|w| paths::within(&norm, &w));
    (!allowed).then(|| {
        Decision::reject(
            "path.outside-write-set",
            format!(
                "task `{}` may not {verb} `{norm}`: it is outside the task's write set ({})",
                task.id,
                list(&task.write_set)
            ),
        )
    })
}

fn conflicts(
    ctx: &GoalContext,
    p: &TaskProposal,
    writes: &[String],
    reads: &[String],
) -> Option<Decision> {
    let deps: HashMap<&str, &[String]> = ctx
        .accepted_in_wave
        .iter()
        .map(|t| (t.id.as_str(), t.dependencies.as_slice()))
        .chain([(p.id.as_str(), p.dependencies.as_slice())])
        .collect();
    for other in &ctx.accepted_in_wave {
        if other.id == p.id || reaches(&deps, &p.id, &other.id) || reaches(&deps, &other.id, &p.id)
        {
            continue;
        }
        let their_writes: Vec<String> = other
            .write_set
            .iter()
            .filter_map(|w| paths::check(w).ok())
            .collect();
        let their_reads: Vec<String> = other
            .read_set
            .iter()
            .filter_map(|r| paths::check(r).ok())
            .collect();
        let clash = writes
            .iter()
            .find_map(|w| {
                their_writes
                    .iter()
                    .find(|t| paths::overlap(w, t))
                    .map(|t| (w, "writes", t, "writes"))
                    .or_else(|| {
                        their_reads
                            .iter()
                            .find(|t| paths::overlap(w, t))
                            .map(|t| (w, "writes", t, "reads"))
                    })
            })
            .or_else(|| {
                reads.iter().find_map(|r| {
                    their_writes
                        .iter()
                        .find(|t| paths::overlap(r, t))
                        .map(|t| (r, "reads", t, "writes"))
                })
            });
        if let Some((mine, my_verb, theirs, their_verb)) = clash {
            return Some(Decision::reject(
                "path.conflict",
                format!(
                    "task `{}` {my_verb} `{mine}` while task `{}`, accepted earlier in this wave, \
                     {their_verb} `{theirs}`; make one depend on the other or split the paths",
                    p.id, other.id
                ),
            ));
        }
    }
    None
}

/// Whether `from` depends on `to`, directly or through other tasks.
fn reaches(deps: &HashMap<&str, &[String]>, from: &str, to: &str) -> bool {
    let mut seen = HashSet::new();
    let mut stack = vec![from];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for d in deps.get(id).copied().unwrap_or_default() {
            if d == to {
                return true;
            }
            stack.push(d);
        }
    }
    false
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    items
        .iter()
        .map(|i| format!("`{}`", i.escape_debug()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(target_arch = "wasm32")]
omk_gate_sdk::export_gate!(PathGate);

#[cfg(test)]
mod tests {
    use super::*;
    use omk_gate_sdk::{AcceptedTask, ActionKind};
    use serde_json::json;

    fn proposal(v: serde_json::Value) -> TaskProposal {
        serde_json::from_value(v).unwrap()
    }

    fn code(d: &Decision) -> &str {
        d.rejection().map_or("accept", |r| r.code.as_str())
    }

    fn accepted(id: &str, writes: &[&str], reads: &[&str], deps: &[&str]) -> AcceptedTask {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        AcceptedTask {
            id: id.into(),
            read_set: s(reads),
            write_set: s(writes),
            dependencies: s(deps),
        }
    }

    #[test]
    fn absolute_write_is_outside_the_roots() {
        let d = PathGate::check_proposal(
            &GoalContext::default(),
            &proposal(json!({"id": "b", "write_set": ["/absolute/path.md"]})),
            "",
        );
        let r = d.rejection().unwrap();
        assert_eq!(r.code, "path.absolute");
        assert!(r.reason.contains(OUTSIDE_ROOTS), "{}", r.reason);
    }

    #[test]
    fn roots_from_context_and_settings() {
        let ctx = GoalContext {
            policy_roots: vec!["src".into()],
            ..Default::default()
        };
        let p = proposal(json!({"id": "a", "write_set": ["docs/x.md"]}));
        let d = PathGate::check_proposal(&ctx, &p, "");
        assert_eq!(code(&d), "path.outside-roots");
        assert!(d.rejection().unwrap().reason.contains(OUTSIDE_ROOTS));
        assert!(PathGate::check_proposal(&ctx, &p, r#"{"roots":["docs"]}"#).is_accept());
        let d = PathGate::check_proposal(&ctx, &p, r#"{"roots":["../up"]}"#);
        assert_eq!(code(&d), "path.bad-root");
    }

    #[test]
    fn every_path_rule_has_its_code() {
        for (path, want) in [
            ("", "path.empty"),
            ("../x", "path.parent-dir"),
            ("~/x", "path.home"),
            ("a\u{0}", "path.control-char"),
            ("a\\b", "path.backslash"),
            (".git/config", "path.git"),
            ("C:/x", "path.absolute"),
        ] {
            let p = proposal(json!({"id": "a", "read_set": [path]}));
            assert_eq!(
                code(&PathGate::check_proposal(&GoalContext::default(), &p, "")),
                want,
                "{path:?}"
            );
        }
    }

    #[test]
    fn conflicts_unless_ordered() {
        let mut ctx = GoalContext {
            accepted_in_wave: vec![accepted("first", &["src"], &["docs"], &[])].into(),
            ..Default::default()
        };
        let ww = proposal(json!({"id": "b", "write_set": ["src/lib.rs"]}));
        assert_eq!(
            code(&PathGate::check_proposal(&ctx, &ww, "")),
            "path.conflict"
        );
        let wr = proposal(json!({"id": "b", "write_set": ["docs/a.md"]}));
        assert_eq!(
            code(&PathGate::check_proposal(&ctx, &wr, "")),
            "path.conflict"
        );
        let rw = proposal(json!({"id": "b", "read_set": ["src/main.rs"]}));
        assert_eq!(
            code(&PathGate::check_proposal(&ctx, &rw, "")),
            "path.conflict"
        );
        let rr = proposal(json!({"id": "b", "read_set": ["docs"]}));
        assert!(PathGate::check_proposal(&ctx, &rr, "").is_accept());
        let apart = proposal(json!({"id": "b", "write_set": ["srcx/lib.rs"]}));
        assert!(PathGate::check_proposal(&ctx, &apart, "").is_accept());
        // Ordered directly, or through a task in between.
        let after = proposal(json!({"id": "b", "write_set": ["src"], "dependencies": ["first"]}));
        assert!(PathGate::check_proposal(&ctx, &after, "").is_accept());
        ctx.accepted_in_wave
            .push(accepted("middle", &["other"], &[], &["first"]));
        let later = proposal(json!({"id": "c", "write_set": ["src"], "dependencies": ["middle"]}));
        assert!(PathGate::check_proposal(&ctx, &later, "").is_accept());
    }

    #[test]
    fn actions_and_outcomes_stay_in_the_write_set() {
        let task = proposal(json!({"id": "t", "write_set": ["src", "README.md"]}));
        let act = |kind, target: &str| AgentAction {
            task_id: "t".into(),
            kind,
            target: target.into(),
            detail: String::new(),
            command: None,
            tool: None,
        };
        let ctx = GoalContext::default();
        assert!(
            PathGate::check_action(&ctx, &task, &act(ActionKind::WriteFile, "src/a.rs"), "")
                .is_accept()
        );
        assert!(
            PathGate::check_action(&ctx, &task, &act(ActionKind::WriteFile, "./README.md"), "")
                .is_accept()
        );
        let d = PathGate::check_action(&ctx, &task, &act(ActionKind::DeleteFile, "Cargo.toml"), "");
        assert_eq!(code(&d), "path.outside-write-set");
        let d = PathGate::check_action(
            &ctx,
            &task,
            &act(ActionKind::WriteFile, "src/../../etc"),
            "",
        );
        assert_eq!(code(&d), "path.parent-dir");
        assert!(
            PathGate::check_action(&ctx, &task, &act(ActionKind::RunCommand, "rm -rf /"), "")
                .is_accept()
        );

        let out = |files: &[&str]| TaskOutcome {
            task_id: "t".into(),
            changed_files: files.iter().map(|f| f.to_string()).collect(),
            ..Default::default()
        };
        assert!(
            PathGate::check_outcome(&ctx, &task, &out(&["src/a.rs", "README.md"]), "").is_accept()
        );
        let d = PathGate::check_outcome(&ctx, &task, &out(&["src/a.rs", "build.rs"]), "");
        assert_eq!(code(&d), "path.outside-write-set");
    }

    #[test]
    fn tool_calls_are_left_to_the_files_omk_derives_and_the_tools_setting_is_checked() {
        let ctx = GoalContext::default();
        let task = proposal(json!({"id": "t", "write_set": ["src"]}));
        let config = r#"{"tools": {"filesystem/write_file": {"write": ["/path"]},
                                   "filesystem/read_file": {"read": ["/path"]}}}"#;
        assert!(PathGate::validate_config(config).is_ok());
        let mut a = AgentAction::new("t", ActionKind::CallTool, "mcp__filesystem__write_file", "");
        a.tool = Some(omk_gate_sdk::ToolCall {
            server: "filesystem".into(),
            tool: "write_file".into(),
            arguments: json!({"path": "/etc/passwd"}).to_string(),
            definition_digest: String::new(),
        });
        // omk judges `/etc/passwd` as the write it is; the call itself passes.
        assert!(PathGate::check_action(&ctx, &task, &a, config).is_accept());
        for bad in [
            r#"{"tools": {"nameonly": {}}}"#,
            r#"{"tools": {"a/b": {"write": ["path"]}}}"#,
        ] {
            assert_eq!(
                PathGate::validate_config(bad).unwrap_err().code,
                "path.config-invalid"
            );
        }
    }

    #[test]
    fn the_agents_own_configuration_is_not_the_tasks_unless_allowed() {
        let ctx = GoalContext::default();
        let task = proposal(json!({"id": "t", "write_set": ["."]}));
        for (path, protected) in [
            (".claude/settings.json", true),
            (".claude/settings.local.json", true),
            ("./.Claude/Settings.Json", true),
            (".claude/hooks/pre.sh", true),
            (".claude", true),
            (".codex/hooks.json", true),
            (".codex/config.toml", true),
            (".kimi/config.toml", true),
            (".gemini/settings.json", true),
            (".opencode/plugins/x.js", true),
            (".cursor/mcp.json", true),
            (".mcp.json", true),
            (".claude/commands/review.md", false),
            ("docs/.mcp.json", false),
            ("src/claude/settings.json", false),
        ] {
            for kind in [ActionKind::WriteFile, ActionKind::DeleteFile] {
                let act = AgentAction::new("t", kind, path, "");
                let d = PathGate::check_action(&ctx, &task, &act, "");
                assert_eq!(!d.is_accept(), protected, "{path}: {d:?}");
                if protected {
                    assert_eq!(code(&d), "path.agent-config");
                    let allow = r#"{"allow_agent_config_writes": true}"#;
                    assert!(PathGate::check_action(&ctx, &task, &act, allow).is_accept());
                }
            }
        }
        let p = proposal(json!({"id": "a", "write_set": [".codex"]}));
        assert_eq!(
            code(&PathGate::check_proposal(&ctx, &p, "")),
            "path.agent-config"
        );
        let out = TaskOutcome {
            task_id: "t".into(),
            changed_files: vec![".mcp.json".into()],
            ..Default::default()
        };
        assert_eq!(
            code(&PathGate::check_outcome(&ctx, &task, &out, "")),
            "path.agent-config"
        );
    }

    #[test]
    fn the_omk_folder_is_not_the_tasks_unless_allowed() {
        let ctx = GoalContext::default();
        let p = proposal(json!({"id": "a", "write_set": [".omk/gates.toml"]}));
        assert_eq!(code(&PathGate::check_proposal(&ctx, &p, "")), "path.omk");
        let allow = r#"{"allow_omk_writes": true}"#;
        assert!(PathGate::check_proposal(&ctx, &p, allow).is_accept());
        let reads = proposal(json!({"id": "a", "read_set": [".omk/gates.toml"]}));
        assert!(PathGate::check_proposal(&ctx, &reads, "").is_accept());
        let task = proposal(json!({"id": "t", "write_set": ["."]}));
        let act = AgentAction {
            task_id: "t".into(),
            kind: ActionKind::WriteFile,
            target: "./.OMK./bundles/x".into(),
            detail: String::new(),
            command: None,
            tool: None,
        };
        assert_eq!(
            code(&PathGate::check_action(&ctx, &task, &act, "")),
            "path.omk"
        );
        let out = TaskOutcome {
            task_id: "t".into(),
            changed_files: vec!["src/a.rs".into(), ".omk/gates.toml".into()],
            ..Default::default()
        };
        assert_eq!(
            code(&PathGate::check_outcome(&ctx, &task, &out, "")),
            "path.omk"
        );
        assert!(PathGate::check_outcome(&ctx, &task, &out, allow).is_accept());
    }
}

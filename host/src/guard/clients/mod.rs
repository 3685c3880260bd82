//! What each client's `PreToolUse` hook sends and how omk answers it.
//!
//! | client | stdin | tools and what omk judges |
//! |---|---|---|
//! | Claude Code | `session_id`, `cwd`, `tool_name`, `tool_input` | `Write`, `Edit`, `MultiEdit` (`file_path`), `NotebookEdit` (`notebook_path`): write-file; `Bash`: run-command; `WebFetch`: fetch-url; `mcp__SERVER__TOOL`: call-tool; any other: `other` with its name and input |
//! | Codex | `session_id`, `cwd`, `tool_name`, `tool_input` | `Bash` (`command`): run-command; `apply_patch` (the patch in `command`): write-file or delete-file per `*** Add/Update/Delete File:` and `*** Move to:`; `mcp__SERVER__TOOL`: call-tool; any other: `other` |
//! | Kimi CLI | `session_id`, `cwd`, `tool_name`, `tool_input` | `WriteFile`, `StrReplaceFile` (`path`): write-file; `Shell`: run-command; `FetchURL`: fetch-url; any other: `other` (its `path`, if any) |
//! | Gemini CLI | `session_id`, `cwd`, `hook_event_name: BeforeTool`, `tool_name`, `tool_input`, `mcp_context` | see [`gemini`] |
//! | OpenCode (omk's plugin) | `session_id`, `cwd`, `hook_event_name: tool.execute.before`, `tool_name`, `tool_input`, `tool_use_id`, `mcp_servers` | see [`opencode`] |
//!
//! All of them take the same answer: exit 0 with nothing printed lets the
//! client go on as it would have (its own permission rules still apply);
//! exit 2 with the reason on stderr blocks the tool call and gives the
//! model the reason. Any other exit lets the tool run in every one, so
//! the installed command ends in `|| exit 2` (see [`super::install`]).

use std::path::PathBuf;

use omk_gate_sdk::ActionKind;
use serde_json::Value;

use super::{Client, Reply};
use crate::agents::Permit;
use crate::agents::judge::Step;

pub mod gemini;
pub mod opencode;

fn steps(actions: Vec<(ActionKind, String)>) -> Vec<Step> {
    actions.into_iter().map(Step::from).collect()
}

/// One tool call a hook asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The client's session id.
    pub session_id: String,
    /// Where the client runs, if it said.
    pub cwd: Option<PathBuf>,
    /// The tool's name.
    pub tool: String,
    /// The actions the call would take, or why omk refuses it without
    /// asking the gates.
    pub actions: Result<Vec<Step>, String>,
    /// The client's id of this tool call (Claude Code's `tool_use_id`).
    pub call_id: Option<String>,
    /// The client's transcript of the session (Claude Code's
    /// `transcript_path`), where the answer given at its prompt shows.
    pub transcript: Option<PathBuf>,
}

/// The field of an event omk's MCP gateway writes ([`crate::mcp`]): the
/// digest of the tool's definition as the server listed it.
pub const DIGEST_FIELD: &str = "omk_definition_digest";

/// Reads a hook event of `client`.
pub fn call(client: Client, event: &Value) -> Result<Call, String> {
    let field = |k: &str| event[k].as_str().filter(|s| !s.is_empty());
    if let Some(e) = field("hook_event_name")
        && e != client.event()
    {
        return Err(format!(
            "omk answers `{}` hooks, and this event is `{e}`: install the hook with `omk guard install {}`",
            client.event(),
            client.name()
        ));
    }
    let session_id = field("session_id")
        .ok_or("the hook's event has no `session_id`")?
        .to_owned();
    let tool = field("tool_name")
        .ok_or("the hook's event has no `tool_name`")?
        .to_owned();
    let input = &event["tool_input"];
    // The Gemini CLI names the server and tool apart (`mcp_context`).
    let context = &event["mcp_context"];
    let named = match (
        context["server_name"].as_str(),
        context["tool_name"].as_str(),
    ) {
        (Some(server), Some(name)) => Step::tool_call(server, name, input),
        // OpenCode's are `SERVER_TOOL`; its plugin says which servers.
        _ if client == Client::OpenCode => opencode::mcp_call(&tool, &event["mcp_servers"], input),
        _ => Step::mcp(&tool, input),
    };
    let actions = match named {
        Some(mut call) => {
            // omk's MCP gateway says which definition of the tool it saw.
            if let (Some(t), Some(d)) = (&mut call.tool, field(DIGEST_FIELD)) {
                t.definition_digest = d.to_owned();
            }
            Ok(vec![call])
        }
        None => match client {
            Client::Claude => Ok(vec![claude(&tool, input).into()]),
            Client::Codex => codex(&tool, input).map(steps),
            Client::Kimi => kimi(&tool, input).map(steps),
            Client::Gemini => gemini::actions(&tool, input).map(steps),
            Client::OpenCode => opencode::actions(&tool, input).map(steps),
        },
    };
    Ok(Call {
        session_id,
        cwd: field("cwd").map(PathBuf::from),
        tool,
        actions,
        call_id: field("tool_use_id").map(str::to_owned),
        transcript: field("transcript_path").map(PathBuf::from),
    })
}

/// The answer to a hook call, as every client reads it.
///
/// An ask goes to Claude Code's own prompt (`permissionDecision: "ask"`,
/// the reason shown to the person); the other clients have no prompt a
/// hook can open, so there it is a refusal whose reason says how to
/// approve.
pub fn reply(client: Client, permit: &Permit) -> Reply {
    let refused = |reason: &str| Reply {
        stdout: String::new(),
        stderr: format!("refused by omk guard ({} hook): {reason}\n", client.name()),
        code: 2,
        record: None,
    };
    match permit {
        Permit::Allowed => Reply {
            stdout: String::new(),
            stderr: String::new(),
            code: 0,
            record: None,
        },
        Permit::Refused(reason) => refused(reason),
        Permit::Ask(reason) if client == Client::Claude => Reply {
            stdout: serde_json::json!({"hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "ask",
                "permissionDecisionReason": format!("omk guard: {reason}"),
            }})
            .to_string(),
            stderr: String::new(),
            code: 0,
            record: None,
        },
        Permit::Ask(reason) => refused(reason),
    }
}

/// The action of a Claude Code tool call.
fn claude(tool: &str, input: &Value) -> (ActionKind, String) {
    crate::agents::claude::action_of(tool, input)
}

/// The actions of a Kimi CLI tool call. Work it starts in the background
/// is judged as in the foreground: a hand-run session has no deadline for
/// it to outlive, and the client's subagents ask the same hook.
fn kimi(tool: &str, input: &Value) -> Result<Vec<(ActionKind, String)>, String> {
    let mut input = input.clone();
    if let Some(map) = input.as_object_mut() {
        map.remove("run_in_background");
    }
    crate::agents::wire::actions::tool_actions(tool, &input)
}

/// The actions of a Codex tool call.
fn codex(tool: &str, input: &Value) -> Result<Vec<(ActionKind, String)>, String> {
    let command = input["command"].as_str();
    match tool {
        "Bash" => command
            .filter(|c| !c.trim().is_empty())
            .map(|c| vec![(ActionKind::RunCommand, c.to_owned())])
            .ok_or_else(|| "a `Bash` call without a command".to_owned()),
        "apply_patch" => {
            let patch = command.ok_or("an `apply_patch` call without a patch")?;
            let files = patch_files(patch);
            if files.is_empty() {
                return Err(
                    "omk cannot tell which files this patch would change, so it refuses it".into(),
                );
            }
            Ok(files)
        }
        other => Ok(vec![(
            ActionKind::Other,
            format!("{other} {}", crate::text::clip(&input.to_string(), 300)),
        )]),
    }
}

/// The files a Codex patch (`*** Begin Patch` … `*** End Patch`) changes:
/// added and updated files are writes, deleted ones deletes, and a moved
/// file is a write of the new path and a delete of the old.
pub(super) fn patch_files(patch: &str) -> Vec<(ActionKind, String)> {
    let mut out: Vec<(ActionKind, String)> = Vec::new();
    let mut current: Option<String> = None;
    for line in patch.lines() {
        let line = line.trim_end();
        let header = |p: &str| line.strip_prefix(p).map(|s| s.trim().to_owned());
        if let Some(p) = header("*** Add File:").or_else(|| header("*** Update File:")) {
            out.push((ActionKind::WriteFile, p.clone()));
            current = Some(p);
        } else if let Some(p) = header("*** Delete File:") {
            out.push((ActionKind::DeleteFile, p));
            current = None;
        } else if let Some(to) = header("*** Move to:") {
            out.push((ActionKind::WriteFile, to));
            if let Some(from) = current.take() {
                out.push((ActionKind::DeleteFile, from));
            }
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(tool: &str, input: Value) -> Value {
        json!({"hook_event_name": "PreToolUse", "session_id": "s1", "cwd": "/p",
               "tool_name": tool, "tool_input": input})
    }

    fn actions(client: Client, tool: &str, input: Value) -> Vec<(ActionKind, String)> {
        call(client, &event(tool, input))
            .unwrap()
            .actions
            .unwrap()
            .into_iter()
            .map(|s| (s.kind, s.target))
            .collect()
    }

    #[test]
    fn each_clients_tools_become_actions() {
        assert_eq!(
            actions(
                Client::Claude,
                "Write",
                json!({"file_path": "/p/a.md", "content": "x"})
            ),
            [(ActionKind::WriteFile, "/p/a.md".to_owned())]
        );
        assert_eq!(
            actions(Client::Codex, "Bash", json!({"command": "make test"})),
            [(ActionKind::RunCommand, "make test".to_owned())]
        );
        assert_eq!(
            actions(
                Client::Kimi,
                "WriteFile",
                json!({"path": "src/a.rs", "content": ""})
            ),
            [(ActionKind::WriteFile, "src/a.rs".to_owned())]
        );
        // MCP tools are tool calls, with their arguments, in every client.
        for client in [Client::Claude, Client::Codex] {
            let c = call(client, &event("mcp__db__query", json!({"sql": "drop"}))).unwrap();
            let steps = c.actions.unwrap();
            assert_eq!(steps[0].kind, ActionKind::CallTool);
            assert_eq!(steps[0].target, "mcp__db__query");
            let t = steps[0].tool.as_ref().unwrap();
            assert_eq!((t.server.as_str(), t.tool.as_str()), ("db", "query"));
            assert_eq!(t.arguments, r#"{"sql":"drop"}"#);
        }
        let other = actions(Client::Codex, "web_search", json!({"q": "x"}));
        assert_eq!(other[0].0, ActionKind::Other);
        let c = call(Client::Claude, &event("Read", json!({}))).unwrap();
        assert_eq!(
            (c.session_id.as_str(), c.cwd, c.tool.as_str()),
            ("s1", Some(PathBuf::from("/p")), "Read")
        );
    }

    #[test]
    fn gemini_sends_before_tool_and_names_mcp_servers_apart() {
        let mut e = event("mcp_db_query", json!({"sql": "drop"}));
        e["hook_event_name"] = json!("BeforeTool");
        e["mcp_context"] =
            json!({"server_name": "db", "tool_name": "query", "command": "db-server"});
        let steps = call(Client::Gemini, &e).unwrap().actions.unwrap();
        assert_eq!(
            (steps[0].kind, steps[0].target.as_str()),
            (ActionKind::CallTool, "mcp__db__query")
        );
        assert_eq!(steps[0].tool.as_ref().unwrap().server, "db");
        // Its own event name only.
        assert!(
            call(Client::Gemini, &event("write_file", json!({})))
                .unwrap_err()
                .contains("`BeforeTool`")
        );
    }

    #[test]
    fn a_codex_patch_names_every_file_it_changes() {
        let patch = "*** Begin Patch\n*** Add File: new.txt\n+hi\n*** Update File: src/a.rs\n*** Move to: src/b.rs\n@@\n-x\n+y\n*** Delete File: old.txt\n*** End Patch\n";
        assert_eq!(
            actions(Client::Codex, "apply_patch", json!({"command": patch})),
            [
                (ActionKind::WriteFile, "new.txt".to_owned()),
                (ActionKind::WriteFile, "src/a.rs".to_owned()),
                (ActionKind::WriteFile, "src/b.rs".to_owned()),
                (ActionKind::DeleteFile, "src/a.rs".to_owned()),
                (ActionKind::DeleteFile, "old.txt".to_owned()),
            ]
        );
        let empty = call(
            Client::Codex,
            &event(
                "apply_patch",
                json!({"command": "*** Begin Patch\n*** End Patch"}),
            ),
        )
        .unwrap();
        assert!(empty.actions.unwrap_err().contains("cannot tell"));
    }

    #[test]
    fn events_omk_cannot_read_are_errors() {
        let mut e = event("Write", json!({}));
        e["hook_event_name"] = json!("PostToolUse");
        assert!(
            call(Client::Claude, &e)
                .unwrap_err()
                .contains("PostToolUse")
        );
        assert!(
            call(Client::Claude, &json!({"tool_name": "Write"}))
                .unwrap_err()
                .contains("session_id")
        );
        assert_eq!(
            actions(
                Client::Kimi,
                "Shell",
                json!({"command": "sleep 1", "run_in_background": true})
            ),
            [(ActionKind::RunCommand, "sleep 1".to_owned())]
        );
    }

    #[test]
    fn a_refusal_is_exit_two_with_the_reason_on_stderr() {
        let r = reply(Client::Codex, &Permit::Refused("no".into()));
        assert_eq!((r.code, r.stdout.as_str()), (2, ""));
        assert!(r.stderr.contains("no"), "{}", r.stderr);
        assert_eq!(reply(Client::Kimi, &Permit::Allowed).code, 0);
    }
}

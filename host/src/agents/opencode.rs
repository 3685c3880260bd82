//! The OpenCode backend: `opencode acp` through the ACP backend
//! ([`super::acp`]), with what OpenCode needs on top: the TCP port of its
//! own HTTP server (`--port`, the one a confined run allows), and its
//! configuration variable extended so that every tool asks.

use super::{AgentError, acp, clients, launch_command};

/// OpenCode over ACP: `opencode acp` on the port a confined run gives it
/// (it is a client of an HTTP server of its own), every tool asking first
/// and a refusal ending only its call, not the turn: `"permission": "ask"`
/// and `experimental.continue_loop_on_deny` added to
/// `OPENCODE_CONFIG_CONTENT`, which OpenCode merges over the user's and
/// the project's configuration.
pub(super) fn launch(command: Option<&str>) -> Result<acp::Launch, AgentError> {
    let current = std::env::var("OPENCODE_CONFIG_CONTENT").ok();
    let mut launch = launch_command("opencode", &clients::OPENCODE, command, &["acp"]);
    launch.env.push((
        "OPENCODE_CONFIG_CONTENT".into(),
        content(current.as_deref())?,
    ));
    launch.port_flag = Some("--port");
    Ok(launch)
}

/// `OPENCODE_CONFIG_CONTENT` for a task: `current` with omk's rules.
fn content(current: Option<&str>) -> Result<String, AgentError> {
    let bad = |message: String| AgentError {
        agent: "opencode".into(),
        message,
        help: Some(
            "fix or unset OPENCODE_CONFIG_CONTENT; omk adds its permission rules to it".into(),
        ),
    };
    let mut config = clients::opencode_config(current).map_err(bad)?;
    config.insert("permission".into(), serde_json::json!("ask"));
    config
        .entry("experimental")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or_else(|| bad("OPENCODE_CONFIG_CONTENT's `experimental` is not an object".into()))?
        .insert("continue_loop_on_deny".into(), serde_json::json!(true));
    Ok(serde_json::Value::Object(config).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opencode_asks_for_everything_over_the_users_configuration() {
        let merged = content(Some(
            r#"{"provider": {"p": {}}, "permission": {"bash": "allow"}, "experimental": {"x": 1}}"#,
        ))
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(v["permission"], "ask");
        assert_eq!(v["experimental"]["continue_loop_on_deny"], true);
        assert_eq!(v["experimental"]["x"], 1);
        assert!(v["provider"]["p"].is_object());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&content(None).unwrap()).unwrap()["permission"],
            "ask"
        );
        for bad in ["[1]", "{", r#"{"experimental": 3}"#] {
            let e = content(Some(bad)).unwrap_err();
            assert!(e.message.contains("OPENCODE_CONFIG_CONTENT"), "{e}");
            assert!(e.help.unwrap().contains("fix or unset"));
        }
    }
}

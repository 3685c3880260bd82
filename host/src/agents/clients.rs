//! The real agent clients omk knows: how each is started (its program,
//! the variable that overrides it), which versions work, how to install
//! it, and where it keeps its settings and talks to its model (for a
//! confined task, see [`crate::sandbox`]). The data only: [`super::doctor`]
//! checks a client, the backends start it.

use crate::sandbox::ClientState;

/// A client omk knows.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub agent: &'static str,
    pub program: &'static str,
    pub env: &'static str,
    /// How to install it, as advice.
    pub install: &'static str,
    /// How to update it.
    pub update: &'static str,
    /// The oldest version omk supports: the one tested, or for the Kimi
    /// CLI the first whose approvals carry feedback (wire 1.6), so the
    /// model hears why omk refused (tested at 1.51.0).
    pub min_version: (u64, u64, u64),
    /// Versions from which on the program is not this client any more
    /// (another under the same name, or a stub), newest first, and what to
    /// say then.
    pub not_from: &'static [((u64, u64, u64), &'static str)],
    /// Its settings, credentials and model endpoint, for a confined task.
    pub state: ClientState,
}

pub const KIMI: Client = Client {
    agent: "kimi",
    program: "kimi",
    env: "OMK_KIMI",
    install: "install it (`npm install -g @moonshot-ai/kimi-code`)",
    update: "npm install -g @moonshot-ai/kimi-code@latest",
    min_version: (2, 1, 0),
    not_from: &[],
    state: ClientState {
        dir_env: Some("KIMI_CODE_HOME"),
        home_env: None,
        home_dir: ".kimi-code",
        files: &["config.toml", "credentials"],
        home_files: &[],
        endpoint_env: &["KIMI_MODEL_BASE_URL"],
        default_endpoints: &["https://api.moonshot.ai", "https://api.kimi.com"],
        serves_itself: false,
    },
};
/// The legacy Kimi CLI (Python, 1.x), driven over its wire protocol. Kimi
/// Code 2.x installs a `kimi` too, without wire mode.
pub const KIMI_WIRE: Client = Client {
    agent: "kimi-wire",
    program: "kimi",
    env: "OMK_KIMI_WIRE",
    install: "install the legacy Kimi CLI (`uv tool install kimi-cli==1.51.0`, or `pip install kimi-cli==1.51.0` with Python ≥ 3.12)",
    update: "uv tool upgrade kimi-cli",
    min_version: (1, 25, 0),
    state: ClientState {
        dir_env: Some("KIMI_SHARE_DIR"),
        home_env: None,
        home_dir: ".kimi",
        files: &["config.toml", "credentials"],
        home_files: &[],
        endpoint_env: &["KIMI_BASE_URL"],
        default_endpoints: &["https://api.moonshot.ai", "https://api.kimi.com"],
        serves_itself: false,
    },
    not_from: &[
        (
            (2, 0, 0),
            "this `kimi` is Kimi Code 2.x, which has no wire mode: use `--agent kimi` for it, or set OMK_KIMI_WIRE to the legacy Kimi CLI's command line",
        ),
        (
            (1, 52, 0),
            "kimi-cli 1.52.0, its final release, only prints a deprecation notice: install kimi-cli 1.51.0, the last that works, or move to Kimi Code (`--agent kimi`)",
        ),
    ],
};
pub const CLAUDE: Client = Client {
    agent: "claude",
    program: "claude",
    env: "OMK_CLAUDE",
    install: "install it (`npm install -g @anthropic-ai/claude-code`)",
    update: "npm install -g @anthropic-ai/claude-code@latest",
    min_version: (2, 1, 0),
    not_from: &[],
    state: ClientState {
        dir_env: None,
        home_env: None,
        home_dir: ".claude",
        files: &["settings.json", ".credentials.json"],
        home_files: &[".claude.json"],
        endpoint_env: &["ANTHROPIC_BASE_URL"],
        default_endpoints: &["https://api.anthropic.com"],
        serves_itself: false,
    },
};
pub const CODEX: Client = Client {
    agent: "codex",
    program: "codex",
    env: "OMK_CODEX",
    install: "install it (`npm install -g @openai/codex`)",
    update: "npm install -g @openai/codex@latest",
    min_version: (0, 169, 0),
    not_from: &[],
    state: ClientState {
        dir_env: Some("CODEX_HOME"),
        home_env: None,
        home_dir: ".codex",
        files: &["config.toml", "auth.json"],
        home_files: &[],
        endpoint_env: &["OPENAI_BASE_URL"],
        default_endpoints: &["https://api.openai.com", "https://chatgpt.com"],
        serves_itself: false,
    },
};
pub const GEMINI: Client = Client {
    agent: "gemini",
    program: "gemini",
    env: "OMK_GEMINI",
    install: "install it (`npm install -g @google/gemini-cli`)",
    update: "npm install -g @google/gemini-cli@latest",
    min_version: (0, 61, 0),
    not_from: &[],
    state: ClientState {
        dir_env: None,
        home_env: Some("GEMINI_CLI_HOME"),
        home_dir: ".gemini",
        files: &[
            "settings.json",
            "oauth_creds.json",
            "google_accounts.json",
            "installation_id",
            "trustedFolders.json",
            ".env",
        ],
        home_files: &[],
        endpoint_env: &["GOOGLE_GEMINI_BASE_URL", "GOOGLE_VERTEX_BASE_URL"],
        default_endpoints: &[
            "https://generativelanguage.googleapis.com",
            "https://cloudcode-pa.googleapis.com",
            "https://oauth2.googleapis.com",
        ],
        serves_itself: false,
    },
};
pub const OPENCODE: Client = Client {
    agent: "opencode",
    program: "opencode",
    env: "OMK_OPENCODE",
    install: "install it (`npm install -g opencode-ai`)",
    update: "npm install -g opencode-ai@latest",
    min_version: (1, 18, 0),
    not_from: &[],
    state: ClientState {
        dir_env: None,
        home_env: None,
        home_dir: ".config/opencode",
        // Its plugin library too: without it OpenCode spends a minute
        // trying to install it from npm, which a confined run cannot reach.
        files: &[
            "opencode.json",
            "opencode.jsonc",
            "config.json",
            "plugins",
            "package.json",
            "package-lock.json",
            "node_modules",
        ],
        home_files: &[".local/share/opencode/auth.json"],
        endpoint_env: &["OPENCODE_CONFIG_CONTENT"],
        default_endpoints: &[
            "https://opencode.ai",
            "https://api.anthropic.com",
            "https://api.openai.com",
        ],
        // `opencode acp` is a client of an HTTP server of its own.
        serves_itself: true,
    },
};

impl Client {
    /// The command line to run: `explicit`, else `$OMK_…`, else the program.
    pub fn command(&self, explicit: Option<&str>) -> String {
        explicit
            .map(str::to_owned)
            .or_else(|| {
                std::env::var(self.env)
                    .ok()
                    .filter(|s| !s.trim().is_empty())
            })
            .unwrap_or_else(|| self.program.to_owned())
    }
}

/// `OPENCODE_CONFIG_CONTENT`'s value `current` (if any) as the JSON object
/// omk adds to (its plugin, its permission rule): empty when unset.
pub fn opencode_config(
    current: Option<&str>,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let Some(text) = current.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(serde_json::Map::new());
    };
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err("OPENCODE_CONFIG_CONTENT is not a JSON object".into()),
        Err(e) => Err(format!("OPENCODE_CONFIG_CONTENT is not JSON: {e}")),
    }
}

/// The environment that keeps Kimi Code quiet: no telemetry, no update
/// check.
pub fn kimi_quiet_env() -> Vec<(String, String)> {
    vec![
        ("KIMI_DISABLE_TELEMETRY".into(), "1".into()),
        ("KIMI_CODE_NO_AUTO_UPDATE".into(), "1".into()),
    ]
}

//! The std `command` gate: commands judged by what they run.
//!
//! It judges `run-command` actions by the host's parse (`omk:gate@0.3.0`),
//! every simple command of it — nested in a pipeline, a substitution, a
//! subshell, or unwrapped from `bash -c '…'`, `env`, `timeout`, `sudo` and
//! the like — never by the command line's text: `echo "sudo"` runs `echo`.
//!
//! **Rules** (`deny`, `ask`, `allow`) are argv patterns, matched against
//! each simple command: the first element is the command's name (or the
//! last part of its path: `/usr/bin/sudo` is `sudo`); each later element
//! must match a later word, in order, words in between allowed; `*` matches
//! any one word; an option `-f` also matches a cluster of short options
//! holding it (`-rf`), and `--force` also `--force=…`. A word known only
//! when the command runs matches only `*`. A rule is a list (`["git",
//! "push", "--force"]`) or a table with `argv`, `examples` and
//! `not_examples` (command lines it must and must not match, checked at
//! load: a rule that misses its own example stops the load), and `hint`
//! (what the refusal tells the agent to do instead).
//!
//! **Answers.** For each simple command, the project's rules first: of
//! those that match, the strictest wins (deny, then ask, then allow); a
//! command a project rule matched is decided by it — an `allow` rule
//! exempts it from the defaults. A command no project rule matched meets
//! the defaults (unless `defaults = false`):
//!
//! | default | answer | code |
//! |---|---|---|
//! | `sudo`, `su`, `doas`, `pkexec`, `run0`: running as another user | deny | `command.privileged` |
//! | a download piped (or substituted) into a shell or interpreter: `curl … \| sh`, `bash <(wget …)`, `sh -c "$(curl …)"` | deny | `command.download-exec` |
//! | `rm -r` of `/`, `~`, `.`, `..`, or `*` where the command line starts | deny | `command.rm-root` |
//! | `git push --force`, `-f`, `--force-with-lease`, `--force-if-includes`, or a `+refspec` | ask | `command.force-push` |
//! | `git push` to a remote `remotes` does not name (no remote: `origin`) | ask | `command.push-remote` |
//!
//! The command line as a whole gets the strictest answer of its commands.
//! A command line only partly parsed (a variable as a command's name,
//! `eval` of built text, a wrapper whose command is not literal) or not
//! parsed gets `dynamic` (`accept`, `ask` — the default — or `deny`;
//! `command.dynamic`). An ask is allowed once a person approves; where no
//! person can be asked, omk refuses it with the reason. The host judges a
//! command's writes (redirections, `rm`, `tee`, `chmod`, …) as file actions
//! of their own, through the path gate: that is where a write outside the
//! write set or into `.git` is refused.
//!
//! Settings (all optional): `deny`, `ask`, `allow` (lists of rules, default
//! none), `dynamic` (default `"ask"`), `remotes` (the remotes a push may go
//! to without asking, default none), `defaults` (default true).

use omk_gate_sdk::{
    ActionKind, AgentAction, Decision, GateInfo, GoalContext, Nesting, ParseStatus, Policy,
    Rejection, SimpleCommand, Stage, TaskProposal, config,
};
use serde::Deserialize;

/// The gate's name, as used in `.omk/gates.toml` and in codes.
pub const NAME: &str = "command";

/// The `command` gate.
pub struct CommandGate;

/// A rule as written: a pattern, or a table with examples.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Rule {
    Argv(Vec<String>),
    Table(RuleTable),
}

/// A rule with its examples.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTable {
    pub argv: Vec<String>,
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default)]
    pub not_examples: Vec<String>,
    /// What the refusal tells the agent to do instead.
    #[serde(default)]
    pub hint: Option<String>,
}

impl Rule {
    fn argv(&self) -> &[String] {
        match self {
            Rule::Argv(a) => a,
            Rule::Table(t) => &t.argv,
        }
    }

    fn hint(&self) -> Option<&str> {
        match self {
            Rule::Argv(_) => None,
            Rule::Table(t) => t.hint.as_deref(),
        }
    }
}

/// What a partly parsed or unparsed command line gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dynamic {
    Accept,
    #[default]
    Ask,
    Deny,
}

/// The gate's settings.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub deny: Vec<Rule>,
    pub ask: Vec<Rule>,
    pub allow: Vec<Rule>,
    pub dynamic: Dynamic,
    pub remotes: Vec<String>,
    pub defaults: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            deny: Vec::new(),
            ask: Vec::new(),
            allow: Vec::new(),
            dynamic: Dynamic::Ask,
            remotes: Vec::new(),
            defaults: true,
        }
    }
}

/// An answer, ordered by strictness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    Allow,
    Ask,
    Deny,
}

/// One command's answer: how strict, the code, the reason.
#[derive(Debug, Clone)]
struct Verdict {
    answer: Answer,
    code: String,
    reason: String,
}

impl Policy for CommandGate {
    fn info() -> GateInfo {
        GateInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            stages: vec![Stage::Action],
            description: "judges commands by what they run: argv rules, and defaults against escalation, download-and-run, rm of the root, force pushes"
                .into(),
        }
    }

    fn validate_config(raw: &str) -> Result<(), Rejection> {
        let s: Settings = config::settings(NAME, raw)?;
        let invalid = |reason: String| Rejection {
            code: format!("{NAME}.config-invalid"),
            reason,
        };
        for (list, rules) in [("deny", &s.deny), ("ask", &s.ask), ("allow", &s.allow)] {
            for rule in rules {
                let argv = rule.argv();
                let shown = argv.join(" ");
                if argv.is_empty() || argv[0].is_empty() || argv[0] == "*" {
                    return Err(invalid(format!(
                        "a rule in `{list}` must start with a command's name (`[\"git\", \"push\"]`), not `{shown}`"
                    )));
                }
                if let Rule::Table(t) = rule {
                    let as_words = |e: &str| example(e);
                    for e in &t.examples {
                        let w = as_words(e);
                        if !matches(argv, &literal(&w)) {
                            return Err(invalid(format!(
                                "the rule `{shown}` in `{list}` does not match its example `{e}`"
                            )));
                        }
                    }
                    for e in &t.not_examples {
                        let w = as_words(e);
                        if matches(argv, &literal(&w)) {
                            return Err(invalid(format!(
                                "the rule `{shown}` in `{list}` matches `{e}`, which it lists in `not_examples`"
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn check_action(_: &GoalContext, _: &TaskProposal, a: &AgentAction, raw: &str) -> Decision {
        if a.kind != ActionKind::RunCommand {
            return Decision::Accept;
        }
        let settings: Settings = match config::parse(NAME, raw) {
            Ok(s) => s,
            Err(d) => return d,
        };
        let Some(parsed) = &a.command else {
            // A host that does not parse: this gate cannot judge.
            return answer(
                settings.dynamic.into(),
                "command.dynamic",
                format!(
                    "omk gave no parse of `{}`, so this gate cannot tell what it runs",
                    a.target
                ),
            );
        };
        let mut worst: Option<Verdict> = None;
        let mut keep = |v: Verdict| {
            if worst.as_ref().is_none_or(|w| v.answer > w.answer) {
                worst = Some(v);
            }
        };
        if parsed.status != ParseStatus::Parsed {
            let why = if parsed.notes.is_empty() {
                "it cannot be parsed".to_owned()
            } else {
                parsed.notes.join("; ")
            };
            keep(Verdict {
                answer: settings.dynamic.into(),
                code: "command.dynamic".into(),
                reason: format!(
                    "omk cannot know all that `{}` runs: {why} (`dynamic` on the command gate); write the command out literally",
                    a.target
                ),
            });
        }
        for (i, c) in parsed.commands.iter().enumerate() {
            if let Some(v) = project_rules(&settings, c) {
                keep(v);
            } else if settings.defaults
                && let Some(v) = defaults(&settings, &parsed.commands, i)
            {
                keep(v);
            }
        }
        match worst {
            Some(v) => answer(v.answer, &v.code, v.reason),
            None => Decision::Accept,
        }
    }
}

impl From<Dynamic> for Answer {
    fn from(d: Dynamic) -> Answer {
        match d {
            Dynamic::Accept => Answer::Allow,
            Dynamic::Ask => Answer::Ask,
            Dynamic::Deny => Answer::Deny,
        }
    }
}

fn answer(a: Answer, code: &str, reason: String) -> Decision {
    match a {
        Answer::Allow => Decision::Accept,
        Answer::Ask => Decision::ask(code, reason),
        Answer::Deny => Decision::reject(code, reason),
    }
}

/// The project's rules on one command: the strictest that matches.
fn project_rules(s: &Settings, c: &SimpleCommand) -> Option<Verdict> {
    let shown = shown(c);
    [
        (Answer::Deny, "deny", &s.deny),
        (Answer::Ask, "ask", &s.ask),
        (Answer::Allow, "allow", &s.allow),
    ]
    .into_iter()
    .find_map(|(answer, list, rules)| {
        let rule = rules.iter().find(|r| matches(r.argv(), &words(c)))?;
        let hint = rule
            .hint()
            .map(|h| format!(": {h}"))
            .unwrap_or_else(|| match answer {
                Answer::Deny => ": do it another way, or ask the user".into(),
                Answer::Ask => ": a person must approve it".into(),
                Answer::Allow => String::new(),
            });
        Some(Verdict {
            answer,
            code: format!("command.{list}"),
            reason: format!(
                "`{shown}` matches the rule `{}` in `{list}` of the project's command gate{hint}",
                rule.argv().join(" ")
            ),
        })
    })
}

/// A command's words as the matcher sees them: dynamic ones as `None`.
fn words(c: &SimpleCommand) -> Vec<Option<&str>> {
    c.words
        .iter()
        .enumerate()
        .map(|(i, w)| (!c.is_dynamic(i)).then_some(w.as_str()))
        .collect()
}

/// Words as the matcher sees them, every one literal.
fn literal(words: &[String]) -> Vec<Option<&str>> {
    words.iter().map(|w| Some(w.as_str())).collect()
}

/// The words of an example command line (quotes and backslashes read as a
/// shell would; an example is one simple command).
fn example(line: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut started = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(ch);
                started = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    started = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if started || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if started || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Whether `argv` (a rule) matches `words` (a command).
fn matches(argv: &[String], words: &[Option<&str>]) -> bool {
    let Some((first, rest)) = argv.split_first() else {
        return false;
    };
    let Some(Some(name)) = words.first() else {
        return false;
    };
    let base = name.rsplit('/').next().unwrap_or(name);
    if first != name && first != base {
        return false;
    }
    let mut at = 1;
    for pat in rest {
        let found = words[at.min(words.len())..]
            .iter()
            .position(|w| word_matches(pat, *w));
        match found {
            Some(k) => at += k + 1,
            None => return false,
        }
    }
    true
}

fn word_matches(pat: &str, word: Option<&str>) -> bool {
    if pat == "*" {
        return true;
    }
    let Some(w) = word else {
        return false;
    };
    if w == pat {
        return true;
    }
    if let Some(long) = pat.strip_prefix("--") {
        return w
            .strip_prefix("--")
            .is_some_and(|l| l.strip_prefix(long).is_some_and(|r| r.starts_with('=')));
    }
    // `-f` in a cluster of short options: `-rf`.
    if let Some(flag) = pat.strip_prefix('-').filter(|f| f.len() == 1) {
        return w.starts_with('-')
            && !w.starts_with("--")
            && w.len() > 2
            && w[1..].chars().all(|c| c.is_ascii_alphabetic())
            && w[1..].contains(flag);
    }
    false
}

/// How a command reads in a reason.
fn shown(c: &SimpleCommand) -> String {
    let text = c.words.join(" ");
    if text.chars().count() > 200 {
        let cut: String = text.chars().take(200).collect();
        format!("{cut}…")
    } else {
        text
    }
}

const PRIVILEGED: [&str; 5] = ["sudo", "su", "doas", "pkexec", "run0"];
const DOWNLOADERS: [&str; 4] = ["curl", "wget", "fetch", "aria2c"];
const RUNNERS: [&str; 16] = [
    "sh", "bash", "zsh", "dash", "ksh", "fish", "ash", "python", "python3", "node", "deno", "bun",
    "perl", "ruby", "php", "pwsh",
];

fn name_of(c: &SimpleCommand) -> Option<&str> {
    c.name()
        .filter(|_| !c.is_dynamic(0))
        .map(|n| n.rsplit('/').next().unwrap_or(n))
}

/// The defaults on command `i` of `all`.
fn defaults(s: &Settings, all: &[SimpleCommand], i: usize) -> Option<Verdict> {
    let c = &all[i];
    let name = name_of(c)?;
    let shown = shown(c);
    if PRIVILEGED.contains(&name) {
        return Some(Verdict {
            answer: Answer::Deny,
            code: "command.privileged".into(),
            reason: format!(
                "`{shown}` runs a command as another user, which the command gate refuses (command.privileged): run it without `{name}`, or ask the user to"
            ),
        });
    }
    if RUNNERS.contains(&name) && fed_a_download(all, i) {
        return Some(Verdict {
            answer: Answer::Deny,
            code: "command.download-exec".into(),
            reason: format!(
                "`{shown}` runs what a download gives it, which the command gate refuses (command.download-exec): download the file, read it, then run it"
            ),
        });
    }
    if name == "rm" && rm_root(c) {
        return Some(Verdict {
            answer: Answer::Deny,
            code: "command.rm-root".into(),
            reason: format!(
                "`{shown}` removes a root (`/`, `~`, the project or above it), which the command gate refuses (command.rm-root): remove the folders you mean by name"
            ),
        });
    }
    if name == "git"
        && let Some(push) = git_push(c)
    {
        let force = push.iter().any(|w| {
            matches!(
                *w,
                "-f" | "--force" | "--force-with-lease" | "--force-if-includes"
            ) || w.starts_with("--force-with-lease=")
                || (w.starts_with('-')
                    && !w.starts_with("--")
                    && w[1..].contains('f')
                    && w[1..].chars().all(|c| c.is_ascii_alphabetic()))
                || (w.starts_with('+') && w.len() > 1)
        });
        if force {
            return Some(Verdict {
                answer: Answer::Ask,
                code: "command.force-push".into(),
                reason: format!(
                    "`{shown}` rewrites the remote's history, which the command gate asks a person about (command.force-push): push without --force, or ask the user"
                ),
            });
        }
        let remote = push
            .iter()
            .find(|w| !w.starts_with('-'))
            .copied()
            .unwrap_or("origin");
        if !s.remotes.iter().any(|r| r == remote) {
            return Some(Verdict {
                answer: Answer::Ask,
                code: "command.push-remote".into(),
                reason: format!(
                    "`{shown}` pushes to `{remote}`, a remote the command gate's `remotes` does not name, so a person must approve it (command.push-remote)"
                ),
            });
        }
    }
    None
}

/// The words after `git [options] push`, if `c` is a push.
fn git_push(c: &SimpleCommand) -> Option<Vec<&str>> {
    let mut i = 1;
    while i < c.words.len() && c.words[i].starts_with('-') {
        i += if matches!(
            c.words[i].as_str(),
            "-C" | "-c" | "--git-dir" | "--work-tree"
        ) {
            2
        } else {
            1
        };
    }
    (c.words.get(i).map(String::as_str) == Some("push") && !c.is_dynamic(i)).then(|| {
        c.words[i + 1..]
            .iter()
            .enumerate()
            .filter(|(k, _)| !c.is_dynamic(i + 1 + k))
            .map(|(_, w)| w.as_str())
            .collect()
    })
}

/// Whether command `i`, a shell or interpreter, runs a download: the one
/// before it in its pipeline downloads, or a download's output is one of
/// its words (a substitution listed just before it).
fn fed_a_download(all: &[SimpleCommand], i: usize) -> bool {
    let c = &all[i];
    if c.joined == omk_gate_sdk::Joined::Pipe
        && let Some(prev) = all[..i].iter().rev().find(|p| p.nesting == c.nesting)
        && name_of(prev).is_some_and(|n| DOWNLOADERS.contains(&n))
    {
        return true;
    }
    // `bash <(curl …)`, `sh -c "$(curl …)"`: the substitution's commands
    // come right before the command whose words they make.
    let has_dynamic_word = !c.dynamic.is_empty();
    has_dynamic_word
        && all[..i]
            .iter()
            .rev()
            .take_while(|p| p.nesting.len() > c.nesting.len())
            .any(|p| {
                name_of(p).is_some_and(|n| DOWNLOADERS.contains(&n))
                    && p.nesting.iter().any(|n| {
                        matches!(
                            n,
                            Nesting::CommandSubstitution | Nesting::ProcessSubstitution
                        )
                    })
            })
}

/// Whether `rm` with `-r` removes a root: `/`, `~`, `.`, `..`, or `*`
/// where the command line starts.
fn rm_root(c: &SimpleCommand) -> bool {
    let recursive = c.words[1..].iter().any(|w| {
        w == "--recursive"
            || (w.starts_with('-') && !w.starts_with("--") && w[1..].contains(['r', 'R']))
    });
    if !recursive {
        return false;
    }
    let at_start = c.directory == "." || c.directory.is_empty();
    c.words[1..].iter().any(|w| {
        let t = w.trim_end_matches('/');
        matches!(t, "" | "/*" | "~" | "$HOME" | "${HOME}" | ".." | "../..")
            || (at_start && matches!(t, "." | "*" | "./*" | "./."))
    })
}

#[cfg(target_arch = "wasm32")]
omk_gate_sdk::export_gate!(CommandGate);

#[cfg(test)]
mod tests;

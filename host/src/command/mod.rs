//! Commands as structure: what a command line runs, parsed by the host so
//! that no gate has to parse shell (`omk:gate@0.3.0`'s `parsed-command`).
//!
//! [`parse`] reads a command line with bash's grammar (the `brush-parser`
//! crate, chosen over `yash-syntax` because agents write bash: `[[ … ]]`,
//! process substitution, `$'…'`, here-strings; README.md, "Commands as
//! structure", has the comparison on the corpus) and lists every simple
//! command it holds, in the order the text holds them:
//!
//! - its words after quote removal, and which words hold something known
//!   only when the command runs (a variable, a substitution, a glob, a
//!   brace expansion) — those keep the text as written;
//! - its assignments and redirections (operator, descriptor, target);
//! - how it is joined to the command before it (`|`, `&&`, `||`, `;`),
//!   whether it runs in the background, what it is nested in (subshell,
//!   group, substitution, a compound command's body, a function, a
//!   wrapper), and the directory literal `cd`s put it in;
//! - the command a wrapper runs, unwrapped where its text is literal
//!   ([`wrappers`]): `sh -c '…'`, `bash -c`, `env`, `xargs`, `nice`,
//!   `timeout`, `sudo`, `watch`, …, and the text of `eval` and `watch`.
//!
//! The status says how much is known: `parsed`, `partial` (a dynamic
//! command name, `eval` of text built when it runs, a wrapper whose command
//! is not literal: `notes` says which), or `unparsed` (the parser's reason; nothing is
//! guessed). The parse becomes part of the action omk records, so replay
//! gives every gate the same structure. Limits: a line longer than
//! [`MAX_LINE`] or nested deeper than [`MAX_DEPTH`] is `unparsed`; the
//! parser's own failures (it may panic on input it does not expect) are
//! caught and reported the same way.
//!
//! [`derived`] lists the file actions a parse takes that omk can know
//! exactly — redirections and the operands of the common file tools — which
//! the host judges with the command, as writes, deletes and reads.

mod derive;
mod walk;
pub mod wrappers;

pub use derive::{Derived, derived};

use omk_gate_sdk::{ActionKind, AgentAction, ParseStatus, ParsedCommand};

/// The longest command line omk parses (64 KiB).
pub const MAX_LINE: usize = 64 * 1024;

/// How deep commands may nest (brackets, substitutions, wrappers).
pub const MAX_DEPTH: usize = 48;

/// Parses `line` as bash would read it.
pub fn parse(line: &str) -> ParsedCommand {
    if line.len() > MAX_LINE {
        return unparsed(format!(
            "the command line is {} bytes long; omk parses up to {MAX_LINE}",
            line.len()
        ));
    }
    if let Some(depth) = too_deep(line) {
        return unparsed(format!(
            "the command line nests {depth} levels deep; omk parses up to {MAX_DEPTH}"
        ));
    }
    match std::panic::catch_unwind(|| walk::parse(line, 0)) {
        Ok(p) => p,
        Err(_) => unparsed("the shell parser failed on this line".into()),
    }
}

/// `action` with its command's parse, when it runs a command and has none
/// yet (the parse travels with the action from then on: recorded, replayed).
pub fn with_parse(mut action: AgentAction) -> AgentAction {
    if action.kind == ActionKind::RunCommand && action.command.is_none() {
        action.command = Some(parse(&action.target));
    }
    action
}

fn unparsed(reason: String) -> ParsedCommand {
    ParsedCommand {
        status: ParseStatus::Unparsed,
        notes: vec![reason],
        commands: Vec::new(),
    }
}

/// The depth of brackets in `line`, quotes skipped, if it is over
/// [`MAX_DEPTH`]: the parser recurses per level, and a line of a million
/// `(` must not take the host's stack with it.
fn too_deep(line: &str) -> Option<usize> {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in line.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => {}
            (_, '\\') => escaped = true,
            (Some('"'), '"') => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (_, '(' | '{' | '[') => {
                depth += 1;
                max = max.max(depth);
            }
            (_, ')' | '}' | ']') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    (max > MAX_DEPTH).then_some(max)
}

#[cfg(test)]
mod tests;

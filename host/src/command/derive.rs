//! The file actions a parsed command takes that omk can know exactly, so
//! that a write by `echo … >> /etc/hosts` is judged as the write it is,
//! through the same path rules as a write by a client's `Write` tool.
//!
//! | what | derived |
//! |---|---|
//! | a redirection `>`, `>>`, `>|`, `<>`, `&>`, `&>>`, `N>` | a write of its target; `<` and `<>` a read |
//! | `rm`, `rmdir`, `unlink`, `shred` | a delete of each operand |
//! | `mv SRC… DEST`, `mv -t DIR SRC…` | a delete of each source, a write of the destination (`DEST/NAME` where the destination is a folder) |
//! | `cp SRC… DEST`, `cp -t DIR SRC…`, `install` likewise | a read of each source, a write of the destination |
//! | `ln [-s] TARGET… LINK` | a write of the link (`LINK/NAME` into a folder; `NAME` in the directory when only a target is given) |
//! | `touch`, `mkdir`, `truncate`, `chmod`, `chown`, `chgrp`, `tee` | a write of each operand (`chmod`'s mode, `chown`'s owner, `truncate -s SIZE` skipped) |
//! | `dd` | a write of `of=`, a read of `if=` |
//! | `sed -i` (`-i.bak`, `--in-place`) | a write of each file operand (the script is the first operand unless `-e`/`-f` gives it) |
//! | `git rm`, `git mv SRC… DEST`, `git checkout [REV] -- PATH…`, `git restore PATH…` | a delete, a move, a write of each path |
//!
//! A path is taken relative to the directory the command runs in (the
//! parse's `directory`, from literal `cd`s); a word known only when the
//! command runs (a variable, a glob) or a command whose directory is not
//! known is not derived — nothing is guessed: the kernel, where it runs,
//! is the backstop. `/dev/null`, `/dev/stdout`, `/dev/stderr`, `/dev/tty`,
//! `/dev/fd/N` and `-` are no files. Options are skipped by their usual
//! spelling; an operand after `--` is an operand whatever it looks like.

use omk_gate_sdk::{ActionKind, ParsedCommand, SimpleCommand};

use super::walk::join;

/// One file action a command takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub kind: ActionKind,
    /// The path, relative to where the command line runs, absolute, or `~…`.
    pub target: String,
    /// The simple command it comes from, as words.
    pub command: String,
}

/// Every file action of `parsed` omk can know exactly, in order.
pub fn derived(parsed: &ParsedCommand) -> Vec<Derived> {
    let mut out = Vec::new();
    for c in &parsed.commands {
        if c.directory.is_empty() {
            continue; // where it runs is not known
        }
        let shown = c.words.join(" ");
        let mut push = |kind: ActionKind, path: &str| {
            if is_device(path) {
                return;
            }
            out.push(Derived {
                kind,
                target: at(&c.directory, path),
                command: shown.clone(),
            });
        };
        for r in &c.redirections {
            if r.dynamic {
                continue;
            }
            if r.op.writes() {
                push(ActionKind::WriteFile, &r.target);
            } else if r.op.reads() {
                push(ActionKind::ReadFile, &r.target);
            }
        }
        for (kind, path) in operands(c) {
            push(kind, &path);
        }
    }
    out.dedup();
    out
}

/// `path` as seen from where the command line runs.
fn at(directory: &str, path: &str) -> String {
    if directory == "." || path.starts_with('/') || path.starts_with('~') {
        path.to_owned()
    } else {
        join(directory, path)
    }
}

fn is_device(path: &str) -> bool {
    matches!(
        path,
        "-" | "/dev/null" | "/dev/stdout" | "/dev/stderr" | "/dev/stdin" | "/dev/tty" | "/dev/zero"
    ) || path.starts_with("/dev/fd/")
}

/// The words of `c` after its options (literal only), and the values of
/// the options named in `valued` (which take the next word, or `=value`).
struct Split {
    operands: Vec<String>,
    values: Vec<(String, String)>,
    /// A word after the name that is known only when it runs.
    dynamic: bool,
}

fn split(c: &SimpleCommand, from: usize, valued: &[&str]) -> Split {
    let mut s = Split {
        operands: Vec::new(),
        values: Vec::new(),
        dynamic: false,
    };
    let mut i = from;
    let mut options_done = false;
    while i < c.words.len() {
        let w = &c.words[i];
        if c.is_dynamic(i) {
            s.dynamic = true;
            i += 1;
            continue;
        }
        if !options_done && w == "--" {
            options_done = true;
        } else if !options_done && w.starts_with('-') && w.len() > 1 {
            let (name, inline) = match w.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (w.as_str(), None),
            };
            if valued.contains(&name) {
                match inline {
                    Some(v) => s.values.push((name.to_owned(), v)),
                    None => {
                        if let Some(v) = c.words.get(i + 1) {
                            s.values.push((name.to_owned(), v.clone()));
                        }
                        i += 1;
                    }
                }
            } else if let Some(short) = valued
                .iter()
                .find(|v| v.len() == 2 && !v.starts_with("--") && w.starts_with(**v) && w.len() > 2)
            {
                // `-tDIR`.
                s.values.push(((*short).to_owned(), w[2..].to_owned()));
            }
        } else {
            s.operands.push(w.clone());
        }
        i += 1;
    }
    s
}

/// The file actions a known file tool takes on its operands.
fn operands(c: &SimpleCommand) -> Vec<(ActionKind, String)> {
    use ActionKind::{DeleteFile, ReadFile, WriteFile};
    let Some(name) = c.name().filter(|_| !c.is_dynamic(0)) else {
        return Vec::new();
    };
    let name = name.rsplit('/').next().unwrap_or(name);
    let each = |kind: ActionKind, paths: Vec<String>| -> Vec<(ActionKind, String)> {
        paths.into_iter().map(|p| (kind, p)).collect()
    };
    match name {
        "rm" | "rmdir" | "unlink" | "shred" => each(DeleteFile, split(c, 1, &[]).operands),
        "touch" | "mkdir" | "tee" => {
            let s = split(
                c,
                1,
                &["-m", "--mode", "-d", "--date", "-r", "--reference", "-t"],
            );
            each(WriteFile, s.operands)
        }
        "truncate" => each(
            WriteFile,
            split(c, 1, &["-s", "--size", "-r", "--reference"]).operands,
        ),
        "chmod" => {
            let s = split(c, 1, &["--reference"]);
            // The first operand is the mode (unless `--reference` gave it).
            let skip = usize::from(!s.values.iter().any(|(n, _)| n == "--reference"));
            each(WriteFile, s.operands.into_iter().skip(skip).collect())
        }
        "chown" | "chgrp" => {
            let s = split(c, 1, &["--reference", "--from"]);
            let skip = usize::from(!s.values.iter().any(|(n, _)| n == "--reference"));
            each(WriteFile, s.operands.into_iter().skip(skip).collect())
        }
        "mv" | "cp" | "install" | "ln" => moves(c, name),
        "dd" => c.words[1..]
            .iter()
            .enumerate()
            .filter(|(i, _)| !c.is_dynamic(i + 1))
            .filter_map(|(_, w)| {
                w.strip_prefix("of=")
                    .map(|p| (WriteFile, p.to_owned()))
                    .or_else(|| w.strip_prefix("if=").map(|p| (ReadFile, p.to_owned())))
            })
            .collect(),
        "sed" => {
            let in_place = c.words[1..].iter().any(|w| {
                w == "-i"
                    || w.starts_with("-i") && !w.starts_with("--")
                    || w.starts_with("--in-place")
            });
            if !in_place {
                return Vec::new();
            }
            let s = split(
                c,
                1,
                &["-e", "--expression", "-f", "--file", "-l", "--line-length"],
            );
            let scripted = s
                .values
                .iter()
                .any(|(n, _)| matches!(n.as_str(), "-e" | "--expression" | "-f" | "--file"));
            each(
                WriteFile,
                s.operands
                    .into_iter()
                    .skip(usize::from(!scripted))
                    .collect(),
            )
        }
        "git" => git(c),
        _ => Vec::new(),
    }
}

/// `mv`, `cp`, `install`, `ln`: sources and a destination.
fn moves(c: &SimpleCommand, name: &str) -> Vec<(ActionKind, String)> {
    use ActionKind::{DeleteFile, ReadFile, WriteFile};
    let valued: &[&str] = match name {
        "install" => &[
            "-t",
            "--target-directory",
            "-m",
            "--mode",
            "-o",
            "--owner",
            "-g",
            "--group",
            "-S",
            "--suffix",
        ],
        _ => &["-t", "--target-directory", "-S", "--suffix"],
    };
    let s = split(c, 1, valued);
    let target_dir = s
        .values
        .iter()
        .find(|(n, _)| n == "-t" || n == "--target-directory")
        .map(|(_, v)| v.clone());
    let directories = name == "install" && c.words.iter().any(|w| w == "-d" || w == "--directory");
    if directories {
        return s.operands.into_iter().map(|p| (WriteFile, p)).collect();
    }
    let (sources, dest): (Vec<String>, Option<String>) = match target_dir {
        Some(d) => (s.operands, Some(format!("{}/", d.trim_end_matches('/')))),
        None if name == "ln" && s.operands.len() == 1 => {
            // `ln -s TARGET`: a link named for the target, here.
            let t = &s.operands[0];
            let base = t.trim_end_matches('/').rsplit('/').next().unwrap_or(t);
            return vec![(WriteFile, base.to_owned())];
        }
        None => {
            let mut ops = s.operands;
            let dest = ops.pop();
            (ops, dest)
        }
    };
    let Some(dest) = dest else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let into_dir = dest.ends_with('/') || sources.len() > 1;
    for src in &sources {
        match name {
            "mv" => out.push((DeleteFile, src.clone())),
            "cp" | "install" => out.push((ReadFile, src.clone())),
            _ => {}
        }
        if into_dir {
            let base = src.trim_end_matches('/').rsplit('/').next().unwrap_or(src);
            out.push((WriteFile, format!("{}/{base}", dest.trim_end_matches('/'))));
        }
    }
    if !into_dir && !sources.is_empty() {
        out.push((WriteFile, dest));
    }
    out
}

/// `git rm`, `git mv`, `git checkout -- PATH…`, `git restore PATH…`.
fn git(c: &SimpleCommand) -> Vec<(ActionKind, String)> {
    use ActionKind::{DeleteFile, WriteFile};
    // Skip git's own options (`-C DIR`, `-c k=v`).
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
    let Some(sub) = c.words.get(i).filter(|_| !c.is_dynamic(i)) else {
        return Vec::new();
    };
    let from = i + 1;
    match sub.as_str() {
        "rm" => split(c, from, &[])
            .operands
            .into_iter()
            .map(|p| (DeleteFile, p))
            .collect(),
        "mv" => {
            let mut s = split(c, from, &[]).operands;
            let Some(dest) = s.pop() else {
                return Vec::new();
            };
            let mut out: Vec<(ActionKind, String)> =
                s.iter().map(|p| (DeleteFile, p.clone())).collect();
            if s.len() > 1 {
                for src in &s {
                    let base = src.trim_end_matches('/').rsplit('/').next().unwrap_or(src);
                    out.push((WriteFile, format!("{}/{base}", dest.trim_end_matches('/'))));
                }
            } else if !s.is_empty() {
                out.push((WriteFile, dest));
            }
            out
        }
        "checkout" => match c.words[from..].iter().position(|w| w == "--") {
            Some(k) => c.words[from + k + 1..]
                .iter()
                .enumerate()
                .filter(|(j, _)| !c.is_dynamic(from + k + 1 + j))
                .map(|(_, p)| (WriteFile, p.clone()))
                .collect(),
            None => Vec::new(),
        },
        "restore" => split(c, from, &["-s", "--source"])
            .operands
            .into_iter()
            .map(|p| (WriteFile, p))
            .collect(),
        _ => Vec::new(),
    }
}

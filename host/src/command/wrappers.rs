//! Commands that run another command: what each runs, so that a gate sees
//! `rm -rf ~/x` inside `bash -c 'rm -rf ~/x'`, `env X=1 rm`, `timeout 5
//! rm`, `sudo rm`, `xargs rm`.
//!
//! | wrapper | what it runs |
//! |---|---|
//! | `sh`, `bash`, `dash`, `zsh`, `ksh`, `ash`, `busybox sh` with `-c TEXT` (or `-lc`, `-ec`, `-xc`, …) | `TEXT`, parsed as a command line |
//! | `eval WORDS…` | the words joined by spaces, parsed |
//! | `watch [-n N] … TEXT…` | the text, parsed (watch runs it with `sh -c`) |
//! | `env [-i] [-u NAME] [NAME=VALUE]… CMD…` | `CMD…`, with the assignments |
//! | `xargs [options] CMD…` | `CMD…` (the arguments xargs adds come when it runs) |
//! | `nice [-n N]`, `nohup`, `setsid`, `stdbuf -oL …`, `ionice [-c N] [-n N]`, `time [-p]`, `command [-p]` (not `-v`/`-V`), `exec [-a NAME]`, `chroot DIR`, `timeout [options] DURATION`, `sudo [options]`, `doas [-u USER]`, `flock [options] FILE`, `unbuffer`, `taskset MASK`, `chrt PRIORITY` | what follows their options |
//!
//! A wrapper whose command is not literal (`sh -c "$CMD"`, `env $X`) makes
//! the parse `partial`, with a note; one with no command (`env`, `sudo -l`)
//! runs nothing more.

use omk_gate_sdk::SimpleCommand;

/// What a simple command runs besides itself.
pub enum Inner {
    /// Nothing: not a wrapper, or one with no command.
    None,
    /// A command line to parse (`sh -c TEXT`, `eval`, `watch`).
    Text(String),
    /// A command given as words (`env`, `xargs`, `timeout`, …).
    Command(SimpleCommand),
    /// A command known only when it runs; why.
    Dynamic(String),
}

/// The shells whose `-c` runs a command line.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "fish"];

/// What `c` runs besides itself.
pub fn inner(c: &SimpleCommand) -> Inner {
    let Some(name) = c.name() else {
        return Inner::None;
    };
    if c.is_dynamic(0) {
        return Inner::None; // noted as a dynamic name already
    }
    let base = name.rsplit('/').next().unwrap_or(name);
    let args = &c.words[1..];
    let dynamic_at = |i: usize| c.is_dynamic(i + 1);
    // The rest of the words from argument `i` on, as a command of its own.
    let rest = |i: usize, assignments: Vec<String>| -> Inner {
        if i >= args.len() {
            return Inner::None;
        }
        let words = args[i..].to_vec();
        let dynamic: Vec<u32> = (i..args.len())
            .filter(|&k| dynamic_at(k))
            .filter_map(|k| u32::try_from(k - i).ok())
            .collect();
        if dynamic.first() == Some(&0) {
            return Inner::Dynamic(format!(
                "`{base}` runs a command known only when it runs (`{}`)",
                words[0]
            ));
        }
        Inner::Command(SimpleCommand {
            words,
            dynamic,
            assignments,
            redirections: Vec::new(),
            joined: c.joined,
            background: c.background,
            nesting: c.nesting.clone(),
            directory: c.directory.clone(),
        })
    };
    match base {
        s if SHELLS.contains(&s) => shell_text(base, args, &dynamic_at),
        "busybox" if args.first().is_some_and(|a| SHELLS.contains(&a.as_str())) => {
            shell_text(base, &args[1..], &|i| dynamic_at(i + 1))
        }
        "eval" => {
            if args.is_empty() {
                Inner::None
            } else if (0..args.len()).any(dynamic_at) {
                Inner::Dynamic("`eval` runs text put together when it runs".into())
            } else {
                Inner::Text(args.join(" "))
            }
        }
        "watch" => {
            let i = skip_options(args, &["-n", "--interval"]);
            if i >= args.len() {
                Inner::None
            } else if (i..args.len()).any(dynamic_at) {
                Inner::Dynamic("`watch` runs text put together when it runs".into())
            } else {
                Inner::Text(args[i..].join(" "))
            }
        }
        "env" => {
            let mut i = 0;
            let mut assignments = Vec::new();
            while i < args.len() {
                let a = args[i].as_str();
                if matches!(
                    a,
                    "-u" | "--unset" | "-C" | "--chdir" | "-S" | "--split-string"
                ) {
                    if a == "-S" || a == "--split-string" {
                        // The string is a command line of its own.
                        return match args.get(i + 1) {
                            Some(t) if !dynamic_at(i + 1) => Inner::Text(t.clone()),
                            Some(_) => Inner::Dynamic(
                                "`env -S` runs text put together when it runs".into(),
                            ),
                            None => Inner::None,
                        };
                    }
                    i += 2;
                } else if a.starts_with('-') && a != "-" {
                    i += 1;
                } else if let Some((k, _)) = a.split_once('=')
                    && !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    assignments.push(a.to_owned());
                    i += 1;
                } else {
                    break;
                }
            }
            rest(i, assignments)
        }
        "xargs" => {
            let with_value = [
                "-n",
                "-I",
                "-i",
                "-L",
                "-l",
                "-P",
                "-d",
                "-s",
                "-E",
                "-e",
                "-a",
                "--max-args",
                "--replace",
                "--max-lines",
                "--max-procs",
                "--delimiter",
                "--max-chars",
                "--eof",
                "--arg-file",
            ];
            let i = skip_options(args, &with_value);
            // xargs with no command runs `echo`.
            rest(i, Vec::new())
        }
        "nice" => rest(skip_options(args, &["-n", "--adjustment"]), Vec::new()),
        "nohup" | "setsid" | "unbuffer" => rest(skip_options(args, &[]), Vec::new()),
        "time" => rest(skip_options(args, &["-f", "-o"]), Vec::new()),
        "stdbuf" => rest(skip_options(args, &["-i", "-o", "-e"]), Vec::new()),
        "ionice" => rest(
            skip_options(args, &["-c", "-n", "-p", "-P", "-u"]),
            Vec::new(),
        ),
        "command" => {
            if args.iter().any(|a| a == "-v" || a == "-V") {
                Inner::None
            } else {
                rest(skip_options(args, &[]), Vec::new())
            }
        }
        "exec" => rest(skip_options(args, &["-a"]), Vec::new()),
        "chroot" => {
            let i = skip_options(args, &["--userspec", "--groups"]);
            // The new root, then the command (`sh -i` when none).
            rest(i + 1, Vec::new())
        }
        "timeout" => {
            let i = skip_options(args, &["-s", "--signal", "-k", "--kill-after"]);
            // The duration, then the command.
            rest(i + 1, Vec::new())
        }
        "sudo" => {
            let with_value = [
                "-u",
                "--user",
                "-g",
                "--group",
                "-h",
                "--host",
                "-p",
                "--prompt",
                "-C",
                "--close-from",
                "-D",
                "--chdir",
                "-r",
                "--role",
                "-t",
                "--type",
                "-T",
                "--command-timeout",
                "-U",
                "--other-user",
            ];
            if args.iter().any(|a| {
                matches!(
                    a.as_str(),
                    "-l" | "--list" | "-v" | "--validate" | "-k" | "-K" | "-e" | "--edit"
                )
            }) && !args.iter().any(|a| !a.starts_with('-'))
            {
                return Inner::None;
            }
            let i = skip_options(args, &with_value);
            rest(i, Vec::new())
        }
        "doas" => rest(skip_options(args, &["-u", "-C"]), Vec::new()),
        "flock" => {
            let with_value = [
                "-w",
                "--timeout",
                "-E",
                "--conflict-exit-code",
                "-c",
                "--command",
            ];
            if let Some(k) = args.iter().position(|a| a == "-c" || a == "--command") {
                return match args.get(k + 1) {
                    Some(t) if !dynamic_at(k + 1) => Inner::Text(t.clone()),
                    Some(_) => {
                        Inner::Dynamic("`flock -c` runs text put together when it runs".into())
                    }
                    None => Inner::None,
                };
            }
            let i = skip_options(args, &with_value);
            // The lock file, then the command.
            rest(i + 1, Vec::new())
        }
        "taskset" | "chrt" => {
            let i = skip_options(args, &[]);
            rest(i + 1, Vec::new())
        }
        _ => Inner::None,
    }
}

/// The index of the first argument after the options: words starting with
/// `-` (those in `with_value` take the next word too; `-n5` and
/// `--signal=KILL` carry theirs), up to `--`.
fn skip_options(args: &[String], with_value: &[&str]) -> usize {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" {
            return i + 1;
        }
        if !a.starts_with('-') || a == "-" {
            break;
        }
        let takes = with_value.contains(&a);
        i += if takes { 2 } else { 1 };
    }
    i
}

/// `SHELL [options] -c TEXT [ARG0 ARGS…]`: the text, when literal.
fn shell_text(shell: &str, args: &[String], dynamic_at: &dyn Fn(usize) -> bool) -> Inner {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" || !a.starts_with('-') && !a.starts_with('+') {
            // A script file or no `-c`: the shell reads a file or its input.
            return Inner::None;
        }
        if a == "-o" || a == "+o" || a == "-O" || a == "+O" {
            i += 2; // an option's name follows
            continue;
        }
        let short = a.strip_prefix('-').filter(|f| !f.starts_with('-'));
        if short.is_some_and(|f| f.contains('c')) {
            return match args.get(i + 1) {
                Some(t) if !dynamic_at(i + 1) => Inner::Text(t.clone()),
                Some(_) => {
                    Inner::Dynamic(format!("`{shell} -c` runs text put together when it runs"))
                }
                None => Inner::None,
            };
        }
        i += 1;
    }
    Inner::None
}

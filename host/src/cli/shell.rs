//! `omk completions SHELL` and `omk man`: shell completions and man pages,
//! generated from the same clap definitions that parse the arguments.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};

use super::{Cli, Outcome, Result};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The folder to write `omk.1` and one page per subcommand
    /// (`omk-goal-run.1`, …) into; without it, `omk.1` goes to stdout.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Prints the completion script of `shell` for `omk`.
pub fn completions(a: CompletionsArgs) -> Result<Outcome> {
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut Cli::command(), "omk", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Ok(Outcome::Ok)
}

/// Writes the man pages.
pub fn man(a: ManArgs) -> Result<Outcome> {
    let cmd = Cli::command();
    let Some(dir) = a.out else {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut page)
            .context("cannot render the man page")?;
        out!("{}", String::from_utf8_lossy(&page));
        return Ok(Outcome::Ok);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    clap_mangen::generate_to(cmd, &dir)
        .with_context(|| format!("cannot write the man pages into `{}`", dir.display()))?;
    outln!("wrote the man pages into {}", dir.display());
    Ok(Outcome::Ok)
}

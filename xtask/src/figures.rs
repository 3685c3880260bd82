//! `cargo xtask figures [--check]`: the README's figures come from runs,
//! not from hands. Each file in [`SOURCES`] is written by a run (the bench
//! with `--figures FILE`) and holds named blocks,
//! `<!-- figures:NAME -->` … `<!-- /figures -->`; README.md has the same
//! markers where it shows each. This copies every block into the README;
//! with `--check` it changes nothing and fails if the README shows a block
//! other than the one the run wrote, has a marker no run wrote, or misses
//! one a run wrote.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// The files runs write their figures to, and the command that writes each.
pub const SOURCES: [(&str, &str); 2] = [
    (
        "bench/figures.md",
        "cargo build --release -p omk && cargo run --release -p omk-bench --features peers -- --figures bench/figures.md",
    ),
    ("tests/figures.md", "cargo xtask test"),
];

/// The rows of the README's Reliability table, in order: each written by
/// the test of that name (`support::figure`).
const RELIABILITY_ROWS: [&str; 12] = [
    "hostile",
    "capabilities",
    "attacks",
    "bad-input",
    "kill-waves-7",
    "kill-waves-8",
    "kill-waves-9",
    "kill-waves-10",
    "kill-executions",
    "load-processes",
    "load-wave",
    "disk-full",
];

/// After a passing run of the suite: the rows its tests measured, in
/// `dir`, become `tests/figures.md` — when every row was measured (a
/// filtered run leaves the file as it is).
pub fn write_reliability(root: &Path, dir: &Path) -> Result<()> {
    let rows: Vec<Option<String>> = RELIABILITY_ROWS
        .iter()
        .map(|k| std::fs::read_to_string(dir.join(format!("{k}.md"))).ok())
        .collect();
    let missing: Vec<&str> = RELIABILITY_ROWS
        .iter()
        .zip(&rows)
        .filter(|(_, r)| r.is_none())
        .map(|(k, _)| *k)
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "reliability figures: tests/figures.md left as it is ({} of {} rows measured; missing {})",
            RELIABILITY_ROWS.len() - missing.len(),
            RELIABILITY_ROWS.len(),
            missing.join(", ")
        );
        return Ok(());
    }
    let table: Vec<String> = rows
        .into_iter()
        .flatten()
        .map(|r| r.trim().to_owned())
        .collect();
    let text = format!(
        "<!-- Written by `cargo xtask test` from what the suite measured; `cargo xtask figures` copies it into README.md. -->\n\n{OPEN}reliability.measured -->\n| what | how | result |\n|---|---|---|\n{}\n{CLOSE}\n",
        table.join("\n")
    );
    let path = root.join("tests/figures.md");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&path, text).context("cannot write tests/figures.md")?;
        eprintln!("reliability figures: tests/figures.md written");
    }
    Ok(())
}

const OPEN: &str = "<!-- figures:";
const CLOSE: &str = "<!-- /figures -->";

/// The named blocks of `text`, in order: (name, inner text, byte range of
/// the inner text).
fn blocks(text: &str, file: &str) -> Result<Vec<(String, String, std::ops::Range<usize>)>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(start) = text[at..].find(OPEN).map(|i| i + at) {
        let name_end = text[start..]
            .find("-->")
            .map(|i| i + start)
            .with_context(|| format!("{file}: an unclosed `{OPEN}` marker"))?;
        let name = text[start + OPEN.len()..name_end].trim().to_owned();
        let inner_start = name_end + 3;
        let close = text[inner_start..]
            .find(CLOSE)
            .map(|i| i + inner_start)
            .with_context(|| format!("{file}: block `{name}` has no `{CLOSE}`"))?;
        if text[inner_start..close].contains(OPEN) {
            bail!("{file}: block `{name}` holds another block before its `{CLOSE}`");
        }
        out.push((
            name,
            text[inner_start..close].trim().to_owned(),
            inner_start..close,
        ));
        at = close + CLOSE.len();
    }
    Ok(out)
}

pub fn figures(root: &Path, check: bool) -> Result<()> {
    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).context("cannot read README.md")?;
    let mut wrote: BTreeMap<String, (String, &str)> = BTreeMap::new();
    for (file, command) in SOURCES {
        let text = std::fs::read_to_string(root.join(file))
            .with_context(|| format!("cannot read {file}: write it with `{command}`"))?;
        for (name, inner, _) in blocks(&text, file)? {
            wrote.insert(name, (inner, file));
        }
    }
    let shown = blocks(&readme, "README.md")?;
    let mut problems = Vec::new();
    let mut updated = readme.clone();
    // From the end, so earlier ranges stay valid.
    for (name, inner, range) in shown.iter().rev() {
        match wrote.get(name) {
            None => problems.push(format!(
                "README.md shows figures `{name}`, which no run wrote"
            )),
            Some((fresh, file)) if fresh != inner => {
                problems.push(format!(
                    "README.md's figures `{name}` differ from what the run wrote to {file}"
                ));
                updated.replace_range(range.clone(), &format!("\n{fresh}\n"));
            }
            Some(_) => {}
        }
    }
    for (name, (_, file)) in &wrote {
        if !shown.iter().any(|(n, ..)| n == name) {
            problems.push(format!(
                "{file} has figures `{name}`, which README.md does not show: add `{OPEN}{name} -->` … `{CLOSE}` where they belong"
            ));
        }
    }
    if check {
        if problems.is_empty() {
            println!(
                "README.md shows the figures the runs wrote ({} blocks)",
                shown.len()
            );
            return Ok(());
        }
        bail!(
            "{}\nhelp: `cargo xtask figures` copies them into README.md",
            problems.join("\n")
        );
    }
    if updated != readme {
        std::fs::write(&readme_path, updated).context("cannot write README.md")?;
    }
    let missing: Vec<&String> = problems
        .iter()
        .filter(|p| !p.contains("differ from"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "{}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    println!(
        "README.md updated from {}",
        SOURCES.map(|(f, _)| f).join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_read_with_their_names_and_places() {
        let text = "a\n<!-- figures:x -->\n| t |\n<!-- /figures -->\nb <!-- figures:y -->z<!-- /figures -->";
        let b = blocks(text, "f").unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].0.as_str(), b[0].1.as_str()), ("x", "| t |"));
        assert_eq!(&text[b[1].2.clone()], "z");
        assert!(blocks("<!-- figures:x -->", "f").is_err());
        assert!(
            blocks(
                "<!-- figures:x --> <!-- figures:y --><!-- /figures -->",
                "f"
            )
            .is_err()
        );
    }
}

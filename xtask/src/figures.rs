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
pub const SOURCES: [(&str, &str); 1] = [(
    "bench/figures.md",
    "cargo build --release -p omk && cargo run --release -p omk-bench --features peers -- --figures bench/figures.md",
)];

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

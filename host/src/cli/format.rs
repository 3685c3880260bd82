//! Output formats for the commands a CI job runs — `gate check` and
//! `gate test` — beside their text and JSON: JUnit XML (test reports of
//! every CI system), GitHub Actions workflow commands (annotations on the
//! run) and SARIF 2.1.0 (code scanning). The spelling is `--format`, with
//! `--json` kept as the short form of `--format json`.
//!
//! A command turns its results into [`Check`]s — one per proposal or case,
//! passed or failed with a rule code and a message — and [`render`] writes
//! them in the format asked for.

use std::fmt::Write;

use clap::ValueEnum;

/// How a check command prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Lines for people (the default).
    Text,
    /// One JSON document.
    Json,
    /// JUnit XML: one test case per proposal or case.
    Junit,
    /// GitHub Actions `::error` annotations, one per failure.
    Github,
    /// SARIF 2.1.0, one result per failure.
    Sarif,
}

impl Format {
    /// The format `--format` and `--json` ask for together (`--json` wins
    /// only where `--format` was left at text).
    pub fn pick(format: Format, json: bool) -> Format {
        if json && format == Format::Text {
            Format::Json
        } else {
            format
        }
    }
}

/// One checked thing: a proposal judged or a case run.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    /// The file it came from, as given on the command line.
    pub file: Option<String>,
    /// Why it failed: a rule code (`budget.over`) and the message.
    pub failure: Option<(String, String)>,
}

/// Writes `checks` as `format` (`junit`, `github` or `sarif`); `suite`
/// names the command (`omk gate check`).
pub fn render(format: Format, suite: &str, checks: &[Check]) -> String {
    match format {
        Format::Junit => junit(suite, checks),
        Format::Github => github(suite, checks),
        Format::Sarif => sarif(checks),
        Format::Text | Format::Json => String::new(),
    }
}

fn junit(suite: &str, checks: &[Check]) -> String {
    let failures = checks.iter().filter(|c| c.failure.is_some()).count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{0}\" tests=\"{1}\" failures=\"{failures}\">\n  <testsuite name=\"{0}\" tests=\"{1}\" failures=\"{failures}\">",
        xml(suite),
        checks.len()
    );
    for c in checks {
        let class = xml(c.file.as_deref().unwrap_or(suite));
        match &c.failure {
            None => {
                let _ = writeln!(
                    x,
                    "    <testcase name=\"{}\" classname=\"{class}\"/>",
                    xml(&c.name)
                );
            }
            Some((code, message)) => {
                let _ = writeln!(
                    x,
                    "    <testcase name=\"{}\" classname=\"{class}\">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                    xml(&c.name),
                    xml(code),
                    xml(message),
                    xml(&format!("{code}: {message}"))
                );
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// Escapes text for XML content and attributes: as for HTML, with line
/// breaks kept in attributes and the control characters XML 1.0 forbids
/// replaced.
fn xml(s: &str) -> String {
    omk::text::esc(s)
        .chars()
        .map(|c| match c {
            '\n' => "&#10;".to_owned(),
            c if (c as u32) < 0x20 && c != '\t' && c != '\r' => '\u{FFFD}'.to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn github(suite: &str, checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let Some((code, message)) = &c.failure else {
            continue;
        };
        let mut props = Vec::new();
        if let Some(f) = &c.file {
            props.push(format!("file={}", gh_property(f)));
        }
        props.push(format!(
            "title={}",
            gh_property(&format!("{suite}: {} ({code})", c.name))
        ));
        let _ = writeln!(out, "::error {}::{}", props.join(","), gh_data(message));
    }
    let failed = checks.iter().filter(|c| c.failure.is_some()).count();
    let _ = writeln!(
        out,
        "::notice title={}::{} checked, {failed} failed",
        gh_property(suite),
        checks.len()
    );
    out
}

/// Escapes a workflow command's message.
fn gh_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value.
fn gh_property(s: &str) -> String {
    gh_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn sarif(checks: &[Check]) -> String {
    let mut rules: Vec<&str> = checks
        .iter()
        .filter_map(|c| c.failure.as_ref().map(|(code, _)| code.as_str()))
        .collect();
    rules.sort_unstable();
    rules.dedup();
    let results: Vec<serde_json::Value> = checks
        .iter()
        .filter_map(|c| {
            let (code, message) = c.failure.as_ref()?;
            let mut r = serde_json::json!({
                "ruleId": code,
                "level": "error",
                "message": {"text": format!("{}: {message}", c.name)},
            });
            if let Some(f) = &c.file {
                r["locations"] = serde_json::json!([
                    {"physicalLocation": {"artifactLocation": {"uri": f}}}
                ]);
            }
            Some(r)
        })
        .collect();
    let doc = serde_json::json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {
                "name": "omk",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/omk-dev/omk",
                "rules": rules.iter().map(|r| serde_json::json!({"id": r})).collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks() -> Vec<Check> {
        vec![
            Check {
                name: "ok-task".into(),
                file: Some("plan.json".into()),
                failure: None,
            },
            Check {
                name: "bad <task>".into(),
                file: Some("dir/plan,1.json".into()),
                failure: Some(("budget.over".into(), "60s > 30s: 100% \"over\"\nsee".into())),
            },
        ]
    }

    #[test]
    fn junit_counts_and_escapes() {
        let x = render(Format::Junit, "omk gate check", &checks());
        assert!(x.contains("tests=\"2\" failures=\"1\""), "{x}");
        assert!(x.contains("name=\"bad &lt;task&gt;\""), "{x}");
        assert!(x.contains("type=\"budget.over\""), "{x}");
        assert!(x.contains("&quot;over&quot;&#10;see"), "{x}");
        assert!(!x.contains("<task>"), "{x}");
    }

    #[test]
    fn github_annotations_escape_their_properties_and_data() {
        let g = render(Format::Github, "omk gate check", &checks());
        let first = g.lines().next().unwrap();
        assert!(
            first.starts_with(
                "::error file=dir/plan%2C1.json,title=omk gate check%3A bad <task> (budget.over)::"
            ),
            "{first}"
        );
        assert!(first.ends_with("100%25 \"over\"%0Asee"), "{first}");
        assert_eq!(g.lines().filter(|l| l.starts_with("::error")).count(), 1);
    }

    #[test]
    fn sarif_lists_each_failure_with_its_rule() {
        let s: serde_json::Value =
            serde_json::from_str(&render(Format::Sarif, "x", &checks())).unwrap();
        assert_eq!(s["version"], "2.1.0");
        let run = &s["runs"][0];
        assert_eq!(run["tool"]["driver"]["rules"][0]["id"], "budget.over");
        assert_eq!(run["results"].as_array().unwrap().len(), 1);
        assert_eq!(
            run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "dir/plan,1.json"
        );
    }

    #[test]
    fn json_is_the_short_form_of_format_json() {
        assert_eq!(Format::pick(Format::Text, true), Format::Json);
        assert_eq!(Format::pick(Format::Junit, false), Format::Junit);
        assert_eq!(Format::pick(Format::Text, false), Format::Text);
    }
}

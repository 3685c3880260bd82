//! The bench's figures: every table it prints, kept under a name, and with
//! `--figures FILE` written to FILE for `cargo xtask figures` to copy into
//! README.md, between the README's `<!-- figures:NAME -->` and
//! `<!-- /figures -->` lines. The README quotes no figure of the bench
//! that a run did not write.

use std::path::Path;

/// What one run measured, table by table.
pub struct Figures {
    /// The command line, as the file's header says it.
    command: String,
    blocks: Vec<(String, String)>,
}

impl Figures {
    pub fn new(command: String) -> Figures {
        Figures {
            command,
            blocks: Vec::new(),
        }
    }

    /// The command line of this run.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Prints `text` (a markdown table, or a line) and keeps it as block
    /// `name` (`bench.engines`).
    pub fn table(&mut self, name: &str, text: String) {
        println!("{text}");
        self.blocks
            .push((name.to_owned(), text.trim_end().to_owned()));
    }

    /// Writes every block to `path`.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut out = format!(
            "<!-- Written by `{}`; `cargo xtask figures` copies each block into README.md. -->\n",
            self.command
        );
        for (name, text) in &self.blocks {
            out.push_str(&format!(
                "\n<!-- figures:{name} -->\n{text}\n<!-- /figures -->\n"
            ));
        }
        std::fs::write(path, out)
    }
}

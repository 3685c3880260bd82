//! `.omk/gates.toml` as anyone could write it: a config or an error with
//! the file named, never a panic.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use omk_core::config::GatesConfig;

fn root() -> &'static Path {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOT.get_or_init(|| tempfile::tempdir().expect("temp dir")).path()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = root().join(".omk/gates.toml");
    if let Err(e) = GatesConfig::parse(text, &file, root()) {
        assert!(e.to_string().contains("gates.toml"), "{e}");
    }
});

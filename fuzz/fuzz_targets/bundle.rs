//! Bundles as they arrive from a registry or a download: the archive
//! reader, the manifest and the signature files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omk_core::bundle::{Bundle, read_tar_gz};
use omk_signing::SignatureFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = SignatureFile::check(text);
        let _ = omk_signing::PublicKey::parse(text);
        // The same bytes as a bundle.toml beside nothing.
        let entries = [("bundle.toml".to_owned(), data.to_vec())].into_iter().collect();
        if let Ok(b) = Bundle::from_entries("fuzz", entries) {
            let _ = b.check_manifest();
        }
    }
    if let Ok(entries) = read_tar_gz(data) {
        if let Ok(b) = Bundle::from_entries("fuzz", entries) {
            let _ = b.check_manifest();
            let _ = b.digest();
        }
    }
});

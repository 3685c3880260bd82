//! The path normaliser: any string either gets a rule's rejection or a
//! normal form that cannot leave the project and is stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omk_gate_sdk::paths;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Two paths, so `within` and `overlap` are exercised on pairs.
    let (a, b) = text.split_once('\u{1f}').unwrap_or((text, "src"));
    let Ok(norm) = paths::check(a) else {
        return;
    };
    assert!(!norm.is_empty());
    assert!(!norm.starts_with('/') && !norm.starts_with('~'));
    assert!(!norm.contains('\\') && !norm.chars().any(char::is_control));
    for part in norm.split('/') {
        assert!(part != ".." && part != "" && (part != "." || norm == "."));
        assert!(!part.trim().is_empty(), "{norm:?}");
        let lower = part.trim_end_matches(['.', ' ']).to_ascii_lowercase();
        assert!(!lower.starts_with(".git"), "{norm:?}");
    }
    // Idempotent: the normal form normalises to itself.
    assert_eq!(paths::check(&norm).as_deref(), Ok(norm.as_str()));
    if let Ok(other) = paths::check(b) {
        assert!(paths::within(&norm, &norm));
        assert_eq!(paths::overlap(&norm, &other), paths::overlap(&other, &norm));
        if paths::within(&norm, &other) {
            assert!(paths::overlap(&norm, &other));
        }
    }
});

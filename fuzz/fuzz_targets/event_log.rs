//! The event log reader: any bytes in `events.jsonl` (and in
//! `checkpoint.json`) give a verdict on the chain and its anchors, never a
//! panic; a log that verifies has as many events as lines that parse.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use omk_core::log;

fuzz_target!(|data: &[u8]| {
    // The first line, if it is one, doubles as `checkpoint.json`.
    let anchor = data
        .split(|&b| b == b'\n')
        .next()
        .map(|l| serde_json::from_slice::<log::Checkpoint>(l).map_err(|e| e.to_string()));
    let opts = log::VerifyOptions {
        allow_unanchored: true,
        ..Default::default()
    };
    let v = log::verify_data(PathBuf::from("events.jsonl"), data, anchor, &opts);
    if v.ok {
        assert!(v.first_bad.is_none());
        assert!(v.events <= v.lines);
    } else {
        assert!(v.first_bad.is_some() || !v.anchor_problems.is_empty());
    }
});

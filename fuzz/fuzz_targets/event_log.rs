//! The event log reader: any bytes in `events.jsonl` give a verdict on the
//! chain, never a panic; a log that verifies has as many events as lines
//! that parse.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use omk_core::log;

fuzz_target!(|data: &[u8]| {
    let v = log::verify_data(PathBuf::from("events.jsonl"), data);
    if v.ok {
        assert!(v.first_bad.is_none());
        assert!(v.events <= v.lines);
    } else {
        assert!(v.first_bad.is_some());
    }
});

//! Proof: the record of everything that happened to a goal.
//!
//! - [`log`]: the append-only, hash-chained event log (`events.jsonl`).
//! - [`kinds`]: the event kinds omk writes, and who writes them.

pub mod kinds;
pub mod log;

pub use log::{BadLine, EVENTS_FILE, Event, EventLog, LogError, Verification};

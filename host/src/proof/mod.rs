//! Proof: the record of everything that happened to a goal.
//!
//! - [`log`]: the append-only, hash-chained event log (`events.jsonl`),
//!   anchored by signed checkpoints; [`anchors`] verifies a goal's log
//!   against this machine's key and the goal's commits.
//! - [`events`]: the events omk writes, one type per kind.
//! - [`inputs`]: every gate input, content-addressed, for exact replay.
//! - [`timeline`]: the timeline rebuilt from the log alone.
//! - [`replay`]: policy what-if, re-judging history with other gates.
//! - [`document`]: `proof.json`; [`report`]: the one-page HTML report,
//!   opening with [`picture`], the run drawn over time.

pub mod anchors;
pub mod document;
pub mod events;
pub mod inputs;
pub mod picture;
pub mod replay;
pub mod report;
pub mod timeline;

#[cfg(test)]
mod tests;

pub use log::{BadLine, EVENTS_FILE, Event, EventLog, LogError, Verification};
pub use omk_core::log;

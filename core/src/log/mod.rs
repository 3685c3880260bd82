//! The event log: `events.jsonl`, append-only and hash-chained.
//!
//! Each line is one JSON object:
//!
//! ```json
//! {"id":1,"run_id":"run-…","ts":"…","schema_version":1,"kind":"goal_created",
//!  "actor":"omk","payload":{…},"prev_hash":"000…","hash":"…"}
//! ```
//!
//! `hash` is the sha256 of the line's exact bytes without the `hash` field
//! (the line up to `,"hash":` plus the closing `}`), and each line carries
//! the previous line's hash in `prev_hash` (64 zeros for the first). So any
//! change to a written line, and any line removed, inserted or reordered,
//! breaks the chain at that line — [`verify`] names the first one.
//!
//! Lines are only ever appended. A crash mid-append leaves a torn last line;
//! [`EventLog::open`] detects it and appends a `log_repaired` event naming
//! the torn bytes (their sha256 and length) on a fresh line, chaining from
//! the last whole event, so nothing before it is lost. Only the last line
//! of a log may be unreadable, or a line a `log_repaired` event right after
//! it names: anything else is junk inserted after the fact.
//! Appends are buffered; [`EventLog::sync`] writes them out and makes them
//! durable — omk calls it when a wave ends and before any task starts. A
//! crash can lose only the unsynced tail of an unfinished wave, which the
//! wave's resume judges again.
//!
//! # Anchoring
//!
//! A chain alone proves only that the lines agree with each other: cut the
//! tail, or delete events and hash the rest again, and it still verifies.
//! So the log is anchored by signatures of a key the agents cannot reach
//! (the machine's `log.key`, see `omk::keys`), at the end of every wave,
//! every task and the goal ([`EventLog::checkpoint`]):
//!
//! - a `log_checkpoint` event, whose payload is a [`Checkpoint`]: the id
//!   and hash of the event before it, signed — rehashing the chain breaks
//!   every checkpoint after the first change;
//! - `checkpoint.json` beside the log: the id and hash of the last event
//!   (the checkpoint event itself), signed — cutting the tail leaves it
//!   vouching for an event that is gone;
//! - omk's commits on the goal's branches carry the head of the log in an
//!   `Omk-Log:` trailer ([`Trailer`]), checked where the repository is at
//!   hand — an anchor outside the goal's folder.
//!
//! [`verify`] checks the chain, the lines, every checkpoint and every
//! anchor given, and reports each problem by name.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use omk_signing::{PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

mod verify;
use verify::NOT_A_FILE;
pub use verify::{
    BadLine, Verification, each_event, each_line, lines_parsed, parse_event, read,
    read_checkpoint_file, read_file, scan, verify, verify_data,
};

/// The event log file in a goal's directory.
pub const EVENTS_FILE: &str = "events.jsonl";
/// The version of the event layout.
pub const EVENT_SCHEMA: u32 = 1;
/// `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How much of the log's end [`EventLog::open`] reads to find the last event
/// before falling back to reading it all.
const TAIL_BYTES: u64 = 1 << 20;

/// The kind of the events that anchor the log ([`Checkpoint`] payloads).
pub const CHECKPOINT: &str = "log_checkpoint";
/// The kind of the event that records a torn line left by a crash.
pub const REPAIRED: &str = "log_repaired";
/// The latest signed head, beside the log.
pub const CHECKPOINT_FILE: &str = "checkpoint.json";
/// The commit trailer that carries the log's head.
pub const TRAILER: &str = "Omk-Log";

/// A signed statement that event `seq` of goal `goal_id`'s log has hash
/// `head`, so everything up to it is as it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub goal_id: String,
    pub seq: u64,
    pub head: String,
    /// The signer, `ed25519:<hex>`.
    pub key: String,
    /// Over [`Checkpoint::message`], hex.
    pub signature: String,
}

impl Checkpoint {
    /// The text a checkpoint signs.
    pub fn message(goal_id: &str, seq: u64, head: &str) -> String {
        format!("omk-log-checkpoint-v1\ngoal {goal_id}\nevent {seq}\nhead {head}\n")
    }

    /// `key`'s checkpoint of event `seq` with hash `head`.
    pub fn sign(goal_id: &str, seq: u64, head: &str, key: &PrivateKey) -> Checkpoint {
        Checkpoint {
            goal_id: goal_id.to_owned(),
            seq,
            head: head.to_owned(),
            key: key.public().to_string(),
            signature: key.sign_message(Checkpoint::message(goal_id, seq, head).as_bytes()),
        }
    }

    /// The signer's key if the signature is genuine and the signer trusted
    /// (`None` trusts any signer).
    pub fn check(&self, trusted: Option<&[PublicKey]>) -> Result<PublicKey, String> {
        let key = PublicKey::parse(&self.key)?;
        let message = Checkpoint::message(&self.goal_id, self.seq, &self.head);
        if !key.verify_message(message.as_bytes(), &self.signature) {
            return Err(format!(
                "its signature by key {} does not match what it claims",
                key.id()
            ));
        }
        if let Some(trusted) = trusted
            && !trusted.contains(&key)
        {
            return Err(format!(
                "it is signed by key {}, which is not trusted here",
                key.id()
            ));
        }
        Ok(key)
    }
}

/// A log head recorded in a commit's `Omk-Log: <seq> <head>` trailer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trailer {
    pub commit: String,
    pub seq: u64,
    pub head: String,
}

impl Trailer {
    /// The trailer line for event `seq` with hash `head`.
    pub fn line(seq: u64, head: &str) -> String {
        format!("{TRAILER}: {seq} {head}")
    }

    /// The trailer in commit message `message` of `commit`, if any.
    pub fn parse(commit: &str, message: &str) -> Option<Trailer> {
        let value = message
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(TRAILER)?.strip_prefix(':'))?;
        let (seq, head) = value.trim().split_once(' ')?;
        Some(Trailer {
            commit: commit.to_owned(),
            seq: seq.parse().ok()?,
            head: head.trim().to_owned(),
        })
    }
}

/// What [`verify`] holds the log against besides its own chain.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The keys whose checkpoints count (this machine's, and any the user
    /// names); `None` accepts any genuine signature and reports its signer.
    pub trusted: Option<Vec<PublicKey>>,
    /// Heads from the trailers of omk's commits.
    pub trailers: Vec<Trailer>,
    /// Accept a log with no checkpoint at all: one written by an omk from
    /// before checkpoints.
    pub allow_unanchored: bool,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub id: u64,
    pub run_id: String,
    pub ts: DateTime<Utc>,
    pub schema_version: u32,
    pub kind: String,
    pub actor: String,
    pub payload: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The payload of one kind of event: one type per kind, written with
/// [`EventLog::record`] and read back with [`Event::decode`]. The kinds
/// omk's runs write are in `omk::proof::events`; the log's own are
/// [`Checkpoint`] and [`Repaired`].
pub trait Payload: Serialize + serde::de::DeserializeOwned {
    /// The `kind` its events carry.
    const KIND: &'static str;
}

impl Event {
    /// The payload as `P`: `None` when the event is of another kind, an
    /// error when it is of `P`'s kind but does not read as one.
    pub fn decode<P: Payload>(&self) -> Option<Result<P, serde_json::Error>> {
        (self.kind == P::KIND).then(|| P::deserialize(&self.payload))
    }
}

/// `log_repaired`: the torn line a crash left just before this event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repaired {
    pub torn_sha256: String,
    pub torn_bytes: usize,
}

impl Payload for Repaired {
    const KIND: &'static str = REPAIRED;
}

impl Payload for Checkpoint {
    const KIND: &'static str = CHECKPOINT;
}

/// An event before it is hashed; serialises to the hashed bytes.
#[derive(Serialize)]
struct Body<'a> {
    id: u64,
    run_id: &'a str,
    ts: DateTime<Utc>,
    schema_version: u32,
    kind: &'a str,
    actor: &'a str,
    payload: &'a Value,
    prev_hash: &'a str,
}

/// Why the log could not be read or appended to.
#[derive(Debug, thiserror::Error)]
#[error("event log `{}`: {detail}", path.display())]
pub struct LogError {
    pub path: PathBuf,
    pub detail: String,
}

/// An open log, ready to append. Only the holder of the goal's lock opens
/// one.
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
    file: BufWriter<File>,
    run_id: String,
    last_hash: String,
    next_id: u64,
    /// The file did not end with a newline when opened: a torn last line,
    /// which a `log_repaired` event now records.
    torn_tail: bool,
    /// The id of the last event a checkpoint vouches for.
    anchored: u64,
}

impl crate::diagnose::Diagnose for LogError {
    fn kind(&self) -> crate::diagnose::Kind {
        crate::diagnose::Kind::System
    }
}

impl EventLog {
    /// Opens (or creates) the log in `dir`; events appended are stamped with
    /// `run_id`.
    pub fn open(dir: &Path, run_id: &str) -> Result<EventLog, LogError> {
        let path = dir.join(EVENTS_FILE);
        let err = |detail: String| LogError {
            path: path.clone(),
            detail,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| err(format!("cannot open it: {e}")))?;
        let meta = file.metadata().map_err(|e| err(e.to_string()))?;
        if !meta.is_file() {
            return Err(err(NOT_A_FILE.into()));
        }
        let len = meta.len();
        let (last, torn) = last_event(&mut file, len).map_err(|e| err(e.to_string()))?;
        let (last_hash, next_id) = match last {
            Some(e) => (e.hash, e.id + 1),
            None => (GENESIS_HASH.to_owned(), 1),
        };
        let mut log = EventLog {
            path,
            file: BufWriter::with_capacity(1 << 16, file),
            run_id: run_id.to_owned(),
            last_hash,
            next_id,
            torn_tail: torn.is_some(),
            anchored: next_id - 1,
        };
        if let Some(bytes) = torn {
            tracing::warn!(
                "{}: the last line is torn (a crash mid-write); it is kept, and recorded as such",
                log.path.display()
            );
            // On a fresh line: the torn one stays as it is.
            log.file
                .write_all(b"\n")
                .map_err(|e| log.error(format!("cannot append: {e}")))?;
            log.record(
                "omk",
                &Repaired {
                    torn_sha256: hex::encode(Sha256::digest(&bytes)),
                    torn_bytes: bytes.len(),
                },
            )?;
        }
        Ok(log)
    }

    /// Whether the log ended with a torn line when it was opened.
    pub fn torn_tail(&self) -> bool {
        self.torn_tail
    }

    /// The id of the last event appended (0 for an empty log).
    pub fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    /// Whether events were appended since the last checkpoint.
    pub fn unanchored(&self) -> bool {
        self.last_id() > self.anchored
    }

    /// Anchors everything appended so far: a `log_checkpoint` event signed
    /// with `key` for goal `goal_id`, then the log made durable, then
    /// `checkpoint.json` replaced by the signed head (the checkpoint event
    /// itself). Nothing to do when nothing was appended since the last.
    pub fn checkpoint(&mut self, goal_id: &str, key: &PrivateKey) -> Result<(), LogError> {
        if !self.unanchored() {
            return Ok(());
        }
        let cp = Checkpoint::sign(goal_id, self.last_id(), &self.last_hash, key);
        self.record("omk", &cp)?;
        self.sync()?;
        let head = Checkpoint::sign(goal_id, self.last_id(), &self.last_hash, key);
        let file = self.path.with_file_name(CHECKPOINT_FILE);
        crate::atomic::write_json(&file, &head).map_err(|e| LogError {
            path: file.clone(),
            detail: format!("cannot write the checkpoint: {e}"),
        })?;
        self.anchored = self.last_id();
        Ok(())
    }

    /// The hash of the last event (the head of the chain).
    pub fn head(&self) -> &str {
        &self.last_hash
    }

    /// Appends one event of `P`'s kind.
    pub fn record<P: Payload>(&mut self, actor: &str, payload: &P) -> Result<Event, LogError> {
        let value = serde_json::to_value(payload).map_err(|e| self.error(e.to_string()))?;
        self.append(P::KIND, actor, value)
    }

    /// Appends one event.
    pub fn append(&mut self, kind: &str, actor: &str, payload: Value) -> Result<Event, LogError> {
        let body = Body {
            id: self.next_id,
            run_id: &self.run_id,
            ts: Utc::now(),
            schema_version: EVENT_SCHEMA,
            kind,
            actor,
            payload: &payload,
            prev_hash: &self.last_hash,
        };
        let body_json = serde_json::to_string(&body).map_err(|e| self.error(e.to_string()))?;
        let hash = hex::encode(Sha256::digest(body_json.as_bytes()));
        let mut line = String::with_capacity(body_json.len() + 80);
        line.push_str(&body_json[..body_json.len() - 1]);
        line.push_str(",\"hash\":\"");
        line.push_str(&hash);
        line.push_str("\"}\n");
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| self.error(format!("cannot append: {e}")))?;
        let event = Event {
            id: body.id,
            run_id: self.run_id.clone(),
            ts: body.ts,
            schema_version: EVENT_SCHEMA,
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            payload,
            prev_hash: std::mem::replace(&mut self.last_hash, hash.clone()),
            hash,
        };
        self.next_id += 1;
        Ok(event)
    }

    /// Writes buffered events to the file (not yet durable).
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.file
            .flush()
            .map_err(|e| self.error(format!("cannot write: {e}")))
    }

    /// Makes every appended event durable.
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.flush()?;
        self.file
            .get_ref()
            .sync_data()
            .map_err(|e| self.error(format!("cannot sync: {e}")))
    }

    fn error(&self, detail: String) -> LogError {
        LogError {
            path: self.path.clone(),
            detail,
        }
    }
}

/// The last whole event of the log, and the bytes of a torn last line.
fn last_event(file: &mut File, len: u64) -> std::io::Result<(Option<Event>, Option<Vec<u8>>)> {
    if len == 0 {
        return Ok((None, None));
    }
    let mut start = len.saturating_sub(TAIL_BYTES);
    loop {
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let torn = buf.last() != Some(&b'\n');
        // The first segment may be a partial line when reading from the middle.
        let lines: Vec<&[u8]> = buf.split(|&b| b == b'\n').collect();
        let whole = if torn {
            &lines[..lines.len() - 1]
        } else {
            &lines[..]
        };
        let skip_first = usize::from(start > 0);
        let found = whole
            .iter()
            .skip(skip_first)
            .rev()
            .find_map(|l| serde_json::from_slice::<Event>(l).ok());
        if found.is_some() || start == 0 {
            // With an event found, the chunk holds a newline before the torn
            // part, so the torn line is whole in it; from 0 it always is.
            let torn_bytes = torn.then(|| lines[lines.len() - 1].to_vec());
            return Ok((found, torn_bytes));
        }
        start = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The chain alone, as for a log from before checkpoints.
    fn chain(dir: &Path) -> Verification {
        let opts = VerifyOptions {
            allow_unanchored: true,
            ..VerifyOptions::default()
        };
        verify(dir, &opts).unwrap()
    }

    fn log_with(n: usize) -> (tempfile::TempDir, EventLog) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path(), "run-1").unwrap();
        for i in 0..n {
            log.append("thing", "omk", json!({"i": i, "text": "héllo \"quoted\""}))
                .unwrap();
        }
        log.sync().unwrap();
        (dir, log)
    }

    #[test]
    fn chains_and_verifies() {
        let (dir, log) = log_with(5);
        let v = chain(dir.path());
        assert!(v.ok, "{v:?}");
        assert_eq!((v.lines, v.events), (5, 5));
        assert_eq!(v.head, log.head());
        let (events, bad) = read(dir.path()).unwrap();
        assert!(bad.is_empty());
        assert_eq!(events[0].prev_hash, GENESIS_HASH);
        assert_eq!(events[1].prev_hash, events[0].hash);
        assert_eq!(
            events.iter().map(|e| e.id).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn reopening_continues_the_chain() {
        let (dir, log) = log_with(3);
        drop(log);
        let mut log = EventLog::open(dir.path(), "run-2").unwrap();
        let e = log.append("more", "omk", json!({})).unwrap();
        assert_eq!(e.id, 4);
        assert!(chain(dir.path()).ok);
    }

    #[test]
    fn one_changed_byte_is_named() {
        let (dir, _log) = log_with(5);
        let path = dir.path().join(EVENTS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let tampered = text.replacen("\"i\":2", "\"i\":3", 1);
        std::fs::write(&path, tampered).unwrap();
        let v = chain(dir.path());
        assert!(!v.ok);
        assert_eq!(v.first_bad.unwrap().line, 3);
    }

    #[test]
    fn a_damaged_line_that_no_longer_parses_is_named() {
        let (dir, _log) = log_with(4);
        let path = dir.path().join(EVENTS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines[1] = lines[1].replacen('{', "[", 1);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let v = chain(dir.path());
        assert_eq!(v.first_bad.unwrap().line, 2);
    }

    #[test]
    fn removed_and_reordered_lines_are_named() {
        let (dir, _log) = log_with(4);
        let path = dir.path().join(EVENTS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, [lines[0], lines[2], lines[3]].join("\n") + "\n").unwrap();
        assert_eq!(chain(dir.path()).first_bad.unwrap().line, 2);
        std::fs::write(&path, [lines[1], lines[2]].join("\n") + "\n").unwrap();
        assert_eq!(chain(dir.path()).first_bad.unwrap().line, 1);
    }

    #[test]
    fn a_torn_last_line_is_survived_and_recorded() {
        let (dir, log) = log_with(3);
        let head = log.head().to_owned();
        drop(log);
        let path = dir.path().join(EVENTS_FILE);
        let torn = b"{\"id\":4,\"run_id\":\"run-1\",\"ts\":\"20";
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(torn).unwrap();
        drop(f);

        let v = chain(dir.path());
        assert!(v.ok);
        assert_eq!(v.torn, [4]);

        let mut log = EventLog::open(dir.path(), "run-2").unwrap();
        assert!(log.torn_tail());
        assert_ne!(log.head(), head, "the repair is recorded first");
        let e = log.append("after_crash", "omk", json!({})).unwrap();
        assert_eq!(e.id, 5);
        drop(log);
        let v = chain(dir.path());
        assert!(v.ok, "{v:?}");
        assert_eq!((v.events, v.torn.clone()), (5, vec![4]));
        let (events, unreadable) = read(dir.path()).unwrap();
        assert_eq!(events[3].kind, REPAIRED);
        assert_eq!(
            events[3].payload["torn_sha256"],
            hex::encode(Sha256::digest(torn))
        );
        assert_eq!(unreadable, [4]);
    }

    #[test]
    fn junk_in_the_middle_is_named_even_when_the_chain_continues() {
        let (dir, _log) = log_with(4);
        let path = dir.path().join(EVENTS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.insert(2, "{\"id\":3,\"torn");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let v = chain(dir.path());
        assert!(!v.ok);
        let bad = v.first_bad.unwrap();
        assert_eq!(bad.line, 3);
        assert!(bad.problem.contains("inserted"), "{}", bad.problem);
    }

    fn anchored(n: usize, key: &PrivateKey) -> (tempfile::TempDir, EventLog) {
        let (dir, mut log) = log_with(0);
        for i in 0..n {
            log.append("thing", "omk", json!({"i": i})).unwrap();
            if i % 4 == 3 {
                log.checkpoint("g1", key).unwrap();
            }
        }
        log.checkpoint("g1", key).unwrap();
        (dir, log)
    }

    fn trusting(key: &PrivateKey) -> VerifyOptions {
        VerifyOptions {
            trusted: Some(vec![key.public()]),
            ..VerifyOptions::default()
        }
    }

    #[test]
    fn checkpoints_anchor_the_log() {
        let key = PrivateKey::generate().unwrap();
        let (dir, _log) = anchored(10, &key);
        let v = verify(dir.path(), &trusting(&key)).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!(v.checkpoints, 3);
        assert_eq!(v.anchored_to, v.events as u64);
        assert_eq!(v.unanchored_events, 0);
        // Another machine's key is not trusted; no checkpoint at all is
        // not anchored.
        let other = PrivateKey::generate().unwrap();
        assert!(!verify(dir.path(), &trusting(&other)).unwrap().ok);
        let (plain, _log) = log_with(2);
        let v = verify(plain.path(), &trusting(&key)).unwrap();
        assert!(
            !v.ok && v.anchor_problems[0].contains("not anchored"),
            "{v:?}"
        );
    }

    #[test]
    fn a_cut_tail_is_caught_by_the_checkpoint_file() {
        let key = PrivateKey::generate().unwrap();
        let (dir, _log) = anchored(10, &key);
        let path = dir.path().join(EVENTS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, lines[..lines.len() - 3].join("\n") + "\n").unwrap();
        let v = verify(dir.path(), &trusting(&key)).unwrap();
        assert!(!v.ok);
        assert!(v.anchor_problems[0].contains("cut from its end"), "{v:?}");
        // Removing the checkpoint file as well is named too.
        std::fs::remove_file(dir.path().join(CHECKPOINT_FILE)).unwrap();
        let v = verify(dir.path(), &trusting(&key)).unwrap();
        assert!(v.anchor_problems[0].contains("missing"), "{v:?}");
    }

    #[test]
    fn a_rehashed_chain_breaks_the_checkpoints() {
        let key = PrivateKey::generate().unwrap();
        let (dir, _log) = anchored(10, &key);
        // Drop event 2 and rebuild the chain over the rest.
        let (events, _) = read(dir.path()).unwrap();
        let mut out = String::new();
        let mut prev = GENESIS_HASH.to_owned();
        for (i, e) in events.iter().filter(|e| e.id != 2).enumerate() {
            let body = Body {
                id: i as u64 + 1,
                run_id: &e.run_id,
                ts: e.ts,
                schema_version: e.schema_version,
                kind: &e.kind,
                actor: &e.actor,
                payload: &e.payload,
                prev_hash: &prev,
            };
            let json = serde_json::to_string(&body).unwrap();
            prev = hex::encode(Sha256::digest(json.as_bytes()));
            out.push_str(&format!(
                "{},\"hash\":\"{prev}\"}}\n",
                &json[..json.len() - 1]
            ));
        }
        std::fs::write(dir.path().join(EVENTS_FILE), out).unwrap();
        assert!(
            chain(dir.path()).first_bad.is_some(),
            "the checkpoints notice"
        );
        let v = verify(dir.path(), &trusting(&key)).unwrap();
        let bad = v.first_bad.unwrap();
        assert!(bad.problem.contains("rehashed"), "{}", bad.problem);
    }

    #[test]
    fn trailers_anchor_from_outside() {
        let key = PrivateKey::generate().unwrap();
        let (dir, log) = anchored(6, &key);
        let mut opts = trusting(&key);
        let message = format!("omk: task a\n\n{}\n", Trailer::line(3, "00"));
        opts.trailers = vec![Trailer::parse("abc123", &message).unwrap()];
        let v = verify(dir.path(), &opts).unwrap();
        assert!(v.anchor_problems[0].contains("rewritten"), "{v:?}");
        opts.trailers = vec![Trailer {
            commit: "abc".into(),
            seq: log.last_id() + 5,
            head: "00".into(),
        }];
        let v = verify(dir.path(), &opts).unwrap();
        assert!(v.anchor_problems[0].contains("cut"), "{v:?}");
    }

    #[test]
    fn the_tail_is_found_past_a_large_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path(), "r").unwrap();
        // Each event is longer than the tail read first.
        let big = "x".repeat(1_500_000);
        for _ in 0..5 {
            log.append("big", "omk", json!({ "blob": big })).unwrap();
        }
        drop(log);
        let mut log = EventLog::open(dir.path(), "r").unwrap();
        assert_eq!(log.append("next", "omk", json!({})).unwrap().id, 6);
        assert!(chain(dir.path()).ok);
    }
}

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
//! [`EventLog::open`] detects it, and the next append starts on a fresh line,
//! chaining from the last whole event, so nothing before it is lost.
//! Appends are buffered; [`EventLog::sync`] writes them out and makes them
//! durable — omk calls it when a wave ends and before any task starts. A
//! crash can lose only the unsynced tail of an unfinished wave, which the
//! wave's resume judges again.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The event log file in a goal's directory.
pub const EVENTS_FILE: &str = "events.jsonl";
/// The version of the event layout.
pub const EVENT_SCHEMA: u32 = 1;
/// `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How much of the log's end [`EventLog::open`] reads to find the last event
/// before falling back to reading it all.
const TAIL_BYTES: u64 = 1 << 20;

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
    /// The file does not end with a newline: a torn last line.
    torn_tail: bool,
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
        let len = file.metadata().map_err(|e| err(e.to_string()))?.len();
        let (last, torn_tail) = last_event(&mut file, len).map_err(|e| err(e.to_string()))?;
        if torn_tail {
            tracing::warn!(
                "{}: the last line is torn (a crash mid-write); it is kept, and the next event starts a new line",
                path.display()
            );
        }
        let (last_hash, next_id) = match last {
            Some(e) => (e.hash, e.id + 1),
            None => (GENESIS_HASH.to_owned(), 1),
        };
        Ok(EventLog {
            path,
            file: BufWriter::with_capacity(1 << 16, file),
            run_id: run_id.to_owned(),
            last_hash,
            next_id,
            torn_tail,
        })
    }

    /// Whether the log ended with a torn line when it was opened (and no
    /// event has been appended since).
    pub fn torn_tail(&self) -> bool {
        self.torn_tail
    }

    /// The hash of the last event (the head of the chain).
    pub fn head(&self) -> &str {
        &self.last_hash
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
        if self.torn_tail {
            line.push('\n');
        }
        line.push_str(&body_json[..body_json.len() - 1]);
        line.push_str(",\"hash\":\"");
        line.push_str(&hash);
        line.push_str("\"}\n");
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| self.error(format!("cannot append: {e}")))?;
        self.torn_tail = false;
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

/// The last whole event of the log, and whether the file ends mid-line.
fn last_event(file: &mut File, len: u64) -> std::io::Result<(Option<Event>, bool)> {
    if len == 0 {
        return Ok((None, false));
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
            return Ok((found, torn));
        }
        start = 0;
    }
}

/// What is wrong with one line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    pub problem: String,
}

/// The result of checking a log's hash chain.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub path: PathBuf,
    /// Whether every event is intact and chained.
    pub ok: bool,
    pub lines: usize,
    pub events: usize,
    /// The hash of the last intact event.
    pub head: String,
    /// The first line that breaks the chain.
    pub first_bad: Option<BadLine>,
    /// Lines left torn by a crash mid-write, which the chain skips.
    pub torn: Vec<usize>,
}

/// Reads every event of the log in `dir` that parses, in order, with the
/// numbers of lines that do not (torn or damaged).
pub fn read(dir: &Path) -> Result<(Vec<Event>, Vec<usize>), LogError> {
    let path = dir.join(EVENTS_FILE);
    let data = read_file(&path)?;
    let mut events = Vec::new();
    let mut unreadable = Vec::new();
    for (i, line) in lines(&data) {
        match serde_json::from_slice::<Event>(line) {
            Ok(e) => events.push(e),
            Err(_) => unreadable.push(i),
        }
    }
    Ok((events, unreadable))
}

/// The bytes of `path`; a missing file reads as empty.
pub fn read_file(path: &Path) -> Result<Vec<u8>, LogError> {
    match std::fs::read(path) {
        Ok(d) => Ok(d),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(LogError {
            path: path.to_owned(),
            detail: format!("cannot read it: {e}"),
        }),
    }
}

/// Non-empty lines with their 1-based numbers.
fn lines(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    data.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.is_empty())
}

/// Checks the hash chain of the log in `dir`.
pub fn verify(dir: &Path) -> Result<Verification, LogError> {
    let path = dir.join(EVENTS_FILE);
    let data = read_file(&path)?;
    Ok(verify_data(path, &data))
}

/// Checks the hash chain of a log's bytes, read from `path`.
pub fn verify_data(path: PathBuf, data: &[u8]) -> Verification {
    let mut v = Verification {
        path,
        ok: true,
        lines: 0,
        events: 0,
        head: GENESIS_HASH.to_owned(),
        first_bad: None,
        torn: Vec::new(),
    };
    let mut prev_id = 0u64;
    let mut prev_line = 0usize;
    for (n, line) in lines(data) {
        v.lines = n;
        let Ok(event) = serde_json::from_slice::<Event>(line) else {
            v.torn.push(n);
            continue;
        };
        let problem = check_line(line, &event, &v.head, prev_id, prev_line);
        if let Some(problem) = problem {
            // A chain that does not continue across an unreadable line means
            // that line was a whole event once: it was damaged, not torn.
            let line = match v.torn.last() {
                Some(&t) if t > prev_line && event.prev_hash != v.head => t,
                _ => n,
            };
            let problem = if line != n {
                "this line is unreadable and the chain does not continue across it: it was changed after it was written"
                    .to_owned()
            } else {
                problem
            };
            v.torn.retain(|&t| t != line);
            v.ok = false;
            v.first_bad = Some(BadLine { line, problem });
            return v;
        }
        v.head = event.hash;
        v.events += 1;
        prev_id = event.id;
        prev_line = n;
    }
    v
}

fn check_line(
    raw: &[u8],
    e: &Event,
    prev_hash: &str,
    prev_id: u64,
    prev_line: usize,
) -> Option<String> {
    const SUFFIX_LEN: usize = ",\"hash\":\"\"}".len() + 64;
    let expected_suffix = format!(",\"hash\":\"{}\"}}", e.hash);
    if raw.len() < SUFFIX_LEN || !raw.ends_with(expected_suffix.as_bytes()) {
        return Some("the `hash` field is not where omk writes it: the line was rewritten".into());
    }
    let mut body = raw[..raw.len() - SUFFIX_LEN].to_vec();
    body.push(b'}');
    if hex::encode(Sha256::digest(&body)) != e.hash {
        return Some(
            "its content does not match its hash: it was changed after it was written".into(),
        );
    }
    if e.prev_hash != prev_hash {
        return Some(if prev_line == 0 {
            "the first event does not start the chain: lines before it were removed".into()
        } else {
            format!(
                "its `prev_hash` does not match line {prev_line}: a line was removed, inserted or reordered"
            )
        });
    }
    if e.id != prev_id + 1 {
        return Some(format!(
            "its id is {} where {} was expected",
            e.id,
            prev_id + 1
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let v = verify(dir.path()).unwrap();
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
        assert!(verify(dir.path()).unwrap().ok);
    }

    #[test]
    fn one_changed_byte_is_named() {
        let (dir, _log) = log_with(5);
        let path = dir.path().join(EVENTS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let tampered = text.replacen("\"i\":2", "\"i\":3", 1);
        std::fs::write(&path, tampered).unwrap();
        let v = verify(dir.path()).unwrap();
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
        let v = verify(dir.path()).unwrap();
        assert_eq!(v.first_bad.unwrap().line, 2);
    }

    #[test]
    fn removed_and_reordered_lines_are_named() {
        let (dir, _log) = log_with(4);
        let path = dir.path().join(EVENTS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, [lines[0], lines[2], lines[3]].join("\n") + "\n").unwrap();
        assert_eq!(verify(dir.path()).unwrap().first_bad.unwrap().line, 2);
        std::fs::write(&path, [lines[1], lines[2]].join("\n") + "\n").unwrap();
        assert_eq!(verify(dir.path()).unwrap().first_bad.unwrap().line, 1);
    }

    #[test]
    fn a_torn_last_line_is_survived() {
        let (dir, log) = log_with(3);
        let head = log.head().to_owned();
        drop(log);
        let path = dir.path().join(EVENTS_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"id\":4,\"run_id\":\"run-1\",\"ts\":\"20")
            .unwrap();
        drop(f);

        let v = verify(dir.path()).unwrap();
        assert!(v.ok);
        assert_eq!(v.torn, [4]);

        let mut log = EventLog::open(dir.path(), "run-2").unwrap();
        assert!(log.torn_tail());
        assert_eq!(log.head(), head);
        let e = log.append("after_crash", "omk", json!({})).unwrap();
        assert_eq!(e.id, 4);
        drop(log);
        let v = verify(dir.path()).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!((v.events, v.torn.clone()), (4, vec![4]));
        let (events, unreadable) = read(dir.path()).unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(unreadable, [4]);
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
        assert!(verify(dir.path()).unwrap().ok);
    }
}

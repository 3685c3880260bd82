//! Reading and checking a log: its lines, its chain, its checkpoints and
//! the anchors given ([`verify`]), each problem named by line.
//!
//! Every reader goes one line at a time ([`each_line`], [`each_event`],
//! [`scan`]): memory holds one line and what the reader folds from it, so a
//! log of a million events is read in one pass without being held.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::*;

/// What is wrong with one line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    pub problem: String,
}

/// The result of checking a log: its chain, its lines and its anchors.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub path: PathBuf,
    /// Whether every event is intact and chained, no line is junk, and
    /// every anchor holds.
    pub ok: bool,
    pub lines: usize,
    pub events: usize,
    /// The hash of the last intact event.
    pub head: String,
    /// The first line that breaks the chain, or is junk.
    pub first_bad: Option<BadLine>,
    /// Lines left torn by a crash mid-write, which the chain skips: the
    /// last line, or one a `log_repaired` event records.
    pub torn: Vec<usize>,
    /// Checkpoint events whose signature holds.
    pub checkpoints: usize,
    /// The key ids of their signers.
    pub signers: Vec<String>,
    /// The last event a valid signature vouches for (a checkpoint event,
    /// `checkpoint.json`, or a commit trailer: those are not signed, but
    /// live outside the goal's folder).
    pub anchored_to: u64,
    /// Events after it: appended since the last checkpoint (a goal still
    /// running, or a crash).
    pub unanchored_events: u64,
    /// Commit trailers checked.
    pub trailers: usize,
    /// Each anchor that does not hold, named: a cut tail, a rehashed
    /// chain, a forged or untrusted signature, a missing checkpoint.
    pub anchor_problems: Vec<String>,
}

/// Reads every event of the log in `dir` that parses, in order, with the
/// numbers of lines that do not (torn or damaged). It holds the whole log:
/// readers of logs that grow with the work use [`each_event`].
pub fn read(dir: &Path) -> Result<(Vec<Event>, Vec<usize>), LogError> {
    let mut events = Vec::new();
    let unreadable = each_event(dir, |e| events.push(e))?;
    Ok((events, unreadable))
}

/// Calls `f` with every event of the log in `dir` that parses, in order,
/// reading one line at a time; returns the numbers of lines that do not
/// parse (torn or damaged).
pub fn each_event(dir: &Path, mut f: impl FnMut(Event)) -> Result<Vec<usize>, LogError> {
    let mut unreadable = Vec::new();
    each_line(&dir.join(EVENTS_FILE), |n, line| match parse_event(line) {
        Some(e) => f(e),
        None => unreadable.push(n),
    })?;
    Ok(unreadable)
}

thread_local! {
    static PARSED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many log lines this thread has parsed as events so far: the work a
/// reader did, which tests hold to one parse per line.
pub fn lines_parsed() -> u64 {
    PARSED.with(std::cell::Cell::get)
}

/// One line as an event (counted in [`lines_parsed`]).
pub fn parse_event(line: &[u8]) -> Option<Event> {
    PARSED.with(|c| c.set(c.get() + 1));
    serde_json::from_slice::<Event>(line).ok()
}

pub(super) const NOT_A_FILE: &str =
    "it is not a regular file (a device, a pipe or a directory in the log's place)";

/// The bytes of `path`; a missing file reads as empty.
pub fn read_file(path: &Path) -> Result<Vec<u8>, LogError> {
    let mut data = Vec::new();
    if let Some(mut r) = open(path)? {
        r.read_to_end(&mut data).map_err(|e| LogError {
            path: path.to_owned(),
            detail: format!("cannot read it: {e}"),
        })?;
    }
    Ok(data)
}

/// `path` opened for reading; `None` when it does not exist.
fn open(path: &Path) -> Result<Option<BufReader<File>>, LogError> {
    // A device or a pipe in the log's place would be read forever.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return Err(LogError {
            path: path.to_owned(),
            detail: NOT_A_FILE.into(),
        });
    }
    match File::open(path) {
        Ok(f) => Ok(Some(BufReader::with_capacity(1 << 16, f))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError {
            path: path.to_owned(),
            detail: format!("cannot read it: {e}"),
        }),
    }
}

/// Calls `f` with each non-empty line of the file at `path` (without its
/// newline) and its 1-based number, holding one line at a time; a missing
/// file has no lines.
pub fn each_line(path: &Path, f: impl FnMut(usize, &[u8])) -> Result<(), LogError> {
    match open(path)? {
        Some(r) => lines_of(r, f).map_err(|e| LogError {
            path: path.to_owned(),
            detail: format!("cannot read it: {e}"),
        }),
        None => Ok(()),
    }
}

/// [`each_line`] over any reader.
fn lines_of(mut r: impl BufRead, mut f: impl FnMut(usize, &[u8])) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        n += 1;
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if !line.is_empty() {
            f(n, line);
        }
    }
}

/// Checks the log in `dir`: its chain and lines, its checkpoints, and its
/// `checkpoint.json`, with `opts`.
pub fn verify(dir: &Path, opts: &VerifyOptions) -> Result<Verification, LogError> {
    scan(dir, opts, |_| {})
}

/// [`verify`], giving `f` every event that parses (intact or not) as it
/// goes: one pass over the log, one line in memory, for readers that build
/// something from the log and need its verdict too.
pub fn scan(
    dir: &Path,
    opts: &VerifyOptions,
    mut f: impl FnMut(Event),
) -> Result<Verification, LogError> {
    let path = dir.join(EVENTS_FILE);
    let mut v = Verifier::new(path.clone(), read_checkpoint_file(dir), opts);
    each_line(&path, |n, line| {
        if let Some(e) = v.line(n, line) {
            f(e);
        }
    })?;
    Ok(v.finish())
}

/// `checkpoint.json` in `dir`: `None` when there is none, `Some(Err)` when
/// it cannot be read.
pub fn read_checkpoint_file(dir: &Path) -> Option<Result<Checkpoint, String>> {
    let path = dir.join(CHECKPOINT_FILE);
    match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(format!("cannot read `{CHECKPOINT_FILE}`: {e}"))),
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes)
                .map_err(|e| format!("`{CHECKPOINT_FILE}` is damaged: {e}")),
        ),
    }
}

/// Checks a log's bytes, read from `path`, against `anchor` (the contents
/// of `checkpoint.json`, see [`read_checkpoint_file`]) and `opts`.
pub fn verify_data(
    path: PathBuf,
    data: &[u8],
    anchor: Option<Result<Checkpoint, String>>,
    opts: &VerifyOptions,
) -> Verification {
    let mut v = Verifier::new(path, anchor, opts);
    // Reading from memory cannot fail.
    let _ = lines_of(data, |n, line| {
        v.line(n, line);
    });
    v.finish()
}

/// A log checked line by line: it keeps the chain's head and the hashes of
/// the events its anchors name, never the events themselves.
struct Verifier<'a> {
    v: Verification,
    opts: &'a VerifyOptions,
    anchor: Option<Result<Checkpoint, String>>,
    /// A problem was found: the verdict is final; lines are still parsed
    /// for the caller.
    failed: bool,
    prev_id: u64,
    prev_line: usize,
    last_line: usize,
    /// The hashes of the events the anchors vouch for, by id.
    wanted: BTreeMap<u64, Option<String>>,
    /// An unreadable line not yet accounted for: (line, sha256 of its bytes).
    unexplained: Option<(usize, String)>,
    goal_id: Option<String>,
}

impl<'a> Verifier<'a> {
    fn new(
        path: PathBuf,
        anchor: Option<Result<Checkpoint, String>>,
        opts: &'a VerifyOptions,
    ) -> Verifier<'a> {
        let mut wanted = BTreeMap::new();
        if let Some(Ok(cp)) = &anchor {
            wanted.insert(cp.seq, None);
        }
        for t in &opts.trailers {
            wanted.insert(t.seq, None);
        }
        Verifier {
            v: Verification {
                path,
                ok: true,
                lines: 0,
                events: 0,
                head: GENESIS_HASH.to_owned(),
                first_bad: None,
                torn: Vec::new(),
                checkpoints: 0,
                signers: Vec::new(),
                anchored_to: 0,
                unanchored_events: 0,
                trailers: 0,
                anchor_problems: Vec::new(),
            },
            opts,
            anchor,
            failed: false,
            prev_id: 0,
            prev_line: 0,
            last_line: 0,
            wanted,
            unexplained: None,
            goal_id: None,
        }
    }

    fn fail(&mut self, line: usize, problem: String) {
        self.v.torn.retain(|&t| t != line);
        self.v.ok = false;
        self.v.first_bad = Some(BadLine { line, problem });
        self.failed = true;
    }

    /// Checks line `n`; returns its event if it parses.
    fn line(&mut self, n: usize, line: &[u8]) -> Option<Event> {
        let parsed = parse_event(line);
        if self.failed {
            return parsed;
        }
        self.last_line = n;
        self.v.lines = n;
        let Some(event) = parsed else {
            if let Some((junk, _)) = self.unexplained {
                // Two unreadable lines in a row: the first one was not torn.
                self.fail(junk, JUNK.into());
                return None;
            }
            self.v.torn.push(n);
            self.unexplained = Some((n, hex::encode(Sha256::digest(line))));
            return None;
        };
        if let Err((line, problem)) = self.check(n, line, &event) {
            self.fail(line, problem);
        }
        Some(event)
    }

    /// Checks intact line `n` holding `event`: on a problem, the line to
    /// blame and why.
    fn check(&mut self, n: usize, line: &[u8], event: &Event) -> Result<(), (usize, String)> {
        let v = &mut self.v;
        if let Some(problem) = check_line(line, event, &v.head, self.prev_id, self.prev_line) {
            // A chain that does not continue across an unreadable line means
            // that line was a whole event once: it was damaged, not torn.
            return Err(match v.torn.last() {
                Some(&t) if t > self.prev_line && event.prev_hash != v.head => (
                    t,
                    "this line is unreadable and the chain does not continue across it: it was changed after it was written"
                        .to_owned(),
                ),
                _ => (n, problem),
            });
        }
        if let Some((junk, sha)) = self.unexplained.take() {
            // Only a torn line a crash left, and the next omk recorded, may
            // sit between events.
            let repaired =
                matches!(event.decode::<Repaired>(), Some(Ok(r)) if r.torn_sha256 == sha);
            if !repaired {
                return Err((junk, JUNK.into()));
            }
        }
        if let Some(cp) = event.decode::<Checkpoint>() {
            let prev_id = self.prev_id;
            let goal_id = &mut self.goal_id;
            let cp = cp
                .map_err(|e| format!("its payload is not a checkpoint: {e}"))
                .and_then(|cp| {
                    let key = cp.check(self.opts.trusted.as_deref())?;
                    if cp.seq != prev_id || cp.head != v.head {
                        return Err(format!(
                            "it vouches for event {} with hash {}, but the event before it is {} with hash {}: events before it were removed, changed or rehashed",
                            cp.seq,
                            short(&cp.head),
                            prev_id,
                            short(&v.head)
                        ));
                    }
                    match goal_id {
                        Some(g) if *g != cp.goal_id => {
                            return Err(format!(
                                "it is for goal `{}`, and earlier checkpoints for `{g}`",
                                cp.goal_id
                            ));
                        }
                        _ => *goal_id = Some(cp.goal_id.clone()),
                    }
                    Ok(key)
                });
            match cp {
                Ok(key) => {
                    v.checkpoints += 1;
                    if !v.signers.contains(&key.id()) {
                        v.signers.push(key.id());
                    }
                    v.anchored_to = v.anchored_to.max(prev_id);
                }
                Err(problem) => return Err((n, format!("checkpoint: {problem}"))),
            }
        }
        v.head = event.hash.clone();
        v.events += 1;
        if let Some(slot) = self.wanted.get_mut(&event.id) {
            *slot = Some(event.hash.clone());
        }
        self.prev_id = event.id;
        self.prev_line = n;
        Ok(())
    }

    /// The verdict, once every line was given.
    fn finish(mut self) -> Verification {
        if self.failed {
            return self.v;
        }
        // What is left unexplained may only be the very last line.
        if let Some((junk, _)) = self.unexplained.take()
            && junk != self.last_line
        {
            self.fail(junk, JUNK.into());
            return self.v;
        }
        let (wanted, prev_id) = (&self.wanted, self.prev_id);
        let mut v = self.v;
        let hold = |what: &str, seq: u64, head: &str, v: &mut Verification| {
            match wanted.get(&seq).cloned().flatten() {
            Some(h) if h == head => v.anchored_to = v.anchored_to.max(seq),
            Some(h) => v.anchor_problems.push(format!(
                "{what} vouches for event {seq} with hash {}, but the log's event {seq} has hash {}: the log was rewritten",
                short(head),
                short(&h)
            )),
            None => v.anchor_problems.push(format!(
                "{what} vouches for event {seq}, but the log ends at event {prev_id}: events were cut from its end"
            )),
        }
        };
        let trusted = self.opts.trusted.as_deref();
        match self.anchor {
            Some(Ok(cp)) => match cp.check(trusted) {
                Ok(_) => {
                    if self.goal_id.as_ref().is_some_and(|g| *g != cp.goal_id) {
                        v.anchor_problems.push(format!(
                            "`{CHECKPOINT_FILE}` is for goal `{}`, the log's checkpoints for another",
                            cp.goal_id
                        ));
                    }
                    hold(&format!("`{CHECKPOINT_FILE}`"), cp.seq, &cp.head, &mut v);
                }
                Err(problem) => v
                    .anchor_problems
                    .push(format!("`{CHECKPOINT_FILE}`: {problem}")),
            },
            Some(Err(problem)) => v.anchor_problems.push(problem),
            None if v.checkpoints > 0 => v.anchor_problems.push(format!(
                "`{CHECKPOINT_FILE}` is missing, though the log has checkpoints: the latest signed head was removed"
            )),
            None => {}
        }
        for t in &self.opts.trailers {
            v.trailers += 1;
            hold(
                &format!("the `{TRAILER}` trailer of commit {}", short(&t.commit)),
                t.seq,
                &t.head,
                &mut v,
            );
        }
        if v.checkpoints == 0 && v.events > 0 && !self.opts.allow_unanchored {
            v.anchor_problems.push(
                "the log has no checkpoint: it is not anchored (omk signs one when a goal is created), so it cannot be told apart from a rewritten one".into(),
            );
        }
        v.unanchored_events = prev_id.saturating_sub(v.anchored_to);
        if !v.anchor_problems.is_empty() {
            v.ok = false;
        }
        v
    }
}

/// What junk in the middle of a log is.
const JUNK: &str = "this line is not an event and is not the log's last line (only a crash's torn last line may be unreadable, and omk records one when it resumes): it was inserted after the fact";

/// The first 12 hex digits of a hash, for messages.
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
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

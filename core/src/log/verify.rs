//! Reading and checking a log: its lines, its chain, its checkpoints and
//! the anchors given ([`verify`]), each problem named by line.

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

pub(super) const NOT_A_FILE: &str =
    "it is not a regular file (a device, a pipe or a directory in the log's place)";

/// The bytes of `path`; a missing file reads as empty.
pub fn read_file(path: &Path) -> Result<Vec<u8>, LogError> {
    // A device or a pipe in the log's place would be read forever.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return Err(LogError {
            path: path.to_owned(),
            detail: NOT_A_FILE.into(),
        });
    }
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

/// Checks the log in `dir`: its chain and lines, its checkpoints, and its
/// `checkpoint.json`, with `opts`.
pub fn verify(dir: &Path, opts: &VerifyOptions) -> Result<Verification, LogError> {
    let path = dir.join(EVENTS_FILE);
    let data = read_file(&path)?;
    let anchor = read_checkpoint_file(dir);
    Ok(verify_data(path, &data, anchor, opts))
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
    let mut v = Verification {
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
    };
    let trusted = opts.trusted.as_deref();
    let mut prev_id = 0u64;
    let mut prev_line = 0usize;
    // Hashes of intact events by id, for the anchors.
    let mut hashes: Vec<String> = Vec::new();
    // An unreadable line not yet accounted for: (line, sha256 of its bytes).
    let mut unexplained: Option<(usize, String)> = None;
    let mut goal_id: Option<String> = None;
    let fail = |v: &mut Verification, line: usize, problem: String| {
        v.ok = false;
        v.first_bad = Some(BadLine { line, problem });
    };
    let all: Vec<(usize, &[u8])> = lines(data).collect();
    let last_line = all.last().map_or(0, |(n, _)| *n);
    for &(n, line) in &all {
        v.lines = n;
        let Ok(event) = serde_json::from_slice::<Event>(line) else {
            if let Some((junk, _)) = unexplained {
                // Two unreadable lines in a row: the first one was not torn.
                v.torn.retain(|&t| t != junk);
                fail(&mut v, junk, JUNK.into());
                return v;
            }
            v.torn.push(n);
            unexplained = Some((n, hex::encode(Sha256::digest(line))));
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
            fail(&mut v, line, problem);
            return v;
        }
        if let Some((junk, sha)) = unexplained.take() {
            // Only a torn line a crash left, and the next omk recorded, may
            // sit between events.
            let repaired =
                matches!(event.decode::<Repaired>(), Some(Ok(r)) if r.torn_sha256 == sha);
            if !repaired {
                v.torn.retain(|&t| t != junk);
                fail(&mut v, junk, JUNK.into());
                return v;
            }
        }
        if let Some(cp) = event.decode::<Checkpoint>() {
            let cp = cp
                .map_err(|e| format!("its payload is not a checkpoint: {e}"))
                .and_then(|cp| {
                    let key = cp.check(trusted)?;
                    if cp.seq != prev_id || cp.head != v.head {
                        return Err(format!(
                            "it vouches for event {} with hash {}, but the event before it is {} with hash {}: events before it were removed, changed or rehashed",
                            cp.seq,
                            short(&cp.head),
                            prev_id,
                            short(&v.head)
                        ));
                    }
                    match &goal_id {
                        Some(g) if *g != cp.goal_id => {
                            return Err(format!(
                                "it is for goal `{}`, and earlier checkpoints for `{g}`",
                                cp.goal_id
                            ));
                        }
                        _ => goal_id = Some(cp.goal_id.clone()),
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
                Err(problem) => {
                    fail(&mut v, n, format!("checkpoint: {problem}"));
                    return v;
                }
            }
        }
        v.head = event.hash.clone();
        v.events += 1;
        hashes.push(event.hash);
        prev_id = event.id;
        prev_line = n;
    }
    // What is left unexplained may only be the very last line.
    if let Some((junk, _)) = unexplained
        && junk != last_line
    {
        v.torn.retain(|&t| t != junk);
        fail(&mut v, junk, JUNK.into());
        return v;
    }
    let hash_of = |seq: u64| -> Option<&String> {
        usize::try_from(seq)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| hashes.get(i))
    };
    let hold = |what: &str, seq: u64, head: &str, v: &mut Verification| {
        match hash_of(seq) {
        Some(h) if h == head => v.anchored_to = v.anchored_to.max(seq),
        Some(h) => v.anchor_problems.push(format!(
            "{what} vouches for event {seq} with hash {}, but the log's event {seq} has hash {}: the log was rewritten",
            short(head),
            short(h)
        )),
        None => v.anchor_problems.push(format!(
            "{what} vouches for event {seq}, but the log ends at event {prev_id}: events were cut from its end"
        )),
    }
    };
    match anchor {
        Some(Ok(cp)) => match cp.check(trusted) {
            Ok(_) => {
                if goal_id.as_ref().is_some_and(|g| *g != cp.goal_id) {
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
    for t in &opts.trailers {
        v.trailers += 1;
        hold(
            &format!("the `{TRAILER}` trailer of commit {}", short(&t.commit)),
            t.seq,
            &t.head,
            &mut v,
        );
    }
    if v.checkpoints == 0 && v.events > 0 && !opts.allow_unanchored {
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

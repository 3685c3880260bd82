//! Every gate input, recorded so that any decision can be re-run bit for
//! bit (`artifacts/inputs.jsonl`).
//!
//! Each gate call's input — the goal context, the proposal, or the task with
//! the action or outcome — is stored once, content-addressed: a line
//! `{"sha256":"…","input":…}` where `sha256` is that of the input's JSON
//! exactly as stored (its bytes, not a re-serialisation, so the address
//! does not depend on how a build of serde_json orders keys).
//! `gate_decision` events carry the `input_sha256` (and the gate's name,
//! version, component sha256 and config), which is all a replay needs.
//!
//! Two parts of a context grow with the goal and would make the record
//! large, so they are stored by reference: `existing_task_ids` as an input
//! of its own (a list, shared by every call that saw the same graph), and
//! `accepted_in_wave` as the ids of tasks accepted in wave `run_key`, whose
//! proposals the log holds.
//!
//! The file is appended like the event log and synced with it; a torn last
//! line is skipped on read, and any other line whose bytes do not match its
//! address is reported ([`Inputs::damaged`]), never silently dropped.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use omk_gate_sdk::{AcceptedTask, AgentAction, GoalContext, TaskOutcome, TaskProposal};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Event;
use super::events::Body;
use super::log::LogError;

/// The inputs file, relative to a goal's directory.
pub const INPUTS_FILE: &str = "artifacts/inputs.jsonl";

/// What a gate judged, besides the context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Subject {
    Proposal {
        proposal: TaskProposal,
    },
    Action {
        task: TaskProposal,
        action: AgentAction,
    },
    Outcome {
        task: TaskProposal,
        outcome: TaskOutcome,
    },
}

impl Subject {
    /// The task the decision is about.
    pub fn task_id(&self) -> &str {
        match self {
            Subject::Proposal { proposal } => &proposal.id,
            Subject::Action { task, .. } | Subject::Outcome { task, .. } => &task.id,
        }
    }
}

/// Which tasks accepted earlier in a wave the gates saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveRef {
    pub run_key: String,
    pub ids: Vec<String>,
}

/// One recorded gate input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// The context, with `accepted_in_wave` and `existing_task_ids` empty:
    /// they are restored from the references below.
    pub context: GoalContext,
    /// The sha256 of the `existing_task_ids` list input.
    pub existing_task_ids: String,
    pub accepted_in_wave: Option<WaveRef>,
    #[serde(flatten)]
    pub subject: Subject,
}

/// A line's layout: `{"sha256":"<64 hex>","input":<json>}`.
const LINE_HEAD: &str = "{\"sha256\":\"";
const LINE_MID: &str = "\",\"input\":";

/// The address and the input's exact bytes of one line, if it has the
/// layout omk writes.
fn split_line(line: &[u8]) -> Option<(&str, &[u8])> {
    let rest = line.strip_prefix(LINE_HEAD.as_bytes())?;
    let (sha, rest) = rest.split_at_checked(64)?;
    let json = rest.strip_prefix(LINE_MID.as_bytes())?.strip_suffix(b"}")?;
    Some((std::str::from_utf8(sha).ok()?, json))
}

/// The appender of a goal's inputs file; only the goal's lock holder has one.
#[derive(Debug)]
pub struct InputStore {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    written: HashSet<String>,
}

impl InputStore {
    /// The store of the goal in `dir` (the file is created on first write).
    pub fn new(dir: &Path) -> InputStore {
        InputStore {
            path: dir.join(INPUTS_FILE),
            file: None,
            written: HashSet::new(),
        }
    }

    /// Records the input of a decision on `subject` in `ctx`; returns its
    /// sha256. `wave` names the wave when `ctx.accepted_in_wave` is the
    /// list of tasks it accepted so far.
    pub fn record(
        &mut self,
        ctx: &GoalContext,
        wave: Option<&str>,
        subject: Subject,
    ) -> Result<String, LogError> {
        let ids = self.put(&ctx.existing_task_ids)?;
        let input = Input {
            context: GoalContext {
                accepted_in_wave: Default::default(),
                existing_task_ids: Default::default(),
                ..ctx.clone()
            },
            existing_task_ids: ids,
            accepted_in_wave: wave.map(|run_key| WaveRef {
                run_key: run_key.to_owned(),
                ids: ctx.accepted_in_wave.iter().map(|t| t.id.clone()).collect(),
            }),
            subject,
        };
        self.put(&input)
    }

    fn put(&mut self, value: &impl Serialize) -> Result<String, LogError> {
        let json = serde_json::to_string(value).map_err(|e| LogError {
            path: self.path.clone(),
            detail: format!("cannot encode an input: {e}"),
        })?;
        self.put_json(&json)
    }

    /// Records a line of another goal's inputs file (a worker's record of
    /// an attempt it ran for this goal) as it is; refuses one whose sha256
    /// is not that of its input. Returns the sha256.
    pub fn put_line(&mut self, line: &str) -> Result<String, LogError> {
        let bad = |detail: &str| LogError {
            path: self.path.clone(),
            detail: detail.to_owned(),
        };
        let (sha, json) = split_line(line.trim_end().as_bytes())
            .ok_or_else(|| bad("a worker sent an input line omk cannot read"))?;
        let json = std::str::from_utf8(json).map_err(|_| bad("an input line is not UTF-8"))?;
        if hex::encode(Sha256::digest(json.as_bytes())) != sha {
            return Err(bad(&format!(
                "a worker sent the input {sha} with content of another sha256"
            )));
        }
        self.put_json(json)
    }

    fn put_json(&mut self, json: &str) -> Result<String, LogError> {
        let sha = hex::encode(Sha256::digest(json.as_bytes()));
        if self.written.contains(&sha) {
            return Ok(sha);
        }
        let err = |detail: String| LogError {
            path: self.path.clone(),
            detail,
        };
        if self.file.is_none() {
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
            }
            let f = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| err(format!("cannot open it: {e}")))?;
            // A torn last line from a crash was never a whole input (the wave
            // that wrote it records it again when it resumes): cut it, so
            // that every line but a torn last one is whole.
            cut_torn_tail(&f).map_err(|e| err(format!("cannot repair a torn last line: {e}")))?;
            self.file = Some(BufWriter::with_capacity(1 << 16, f));
        }
        let line = format!("{{\"sha256\":\"{sha}\",\"input\":{json}}}\n");
        if let Some(f) = self.file.as_mut() {
            f.write_all(line.as_bytes())
                .map_err(|e| err(format!("cannot append: {e}")))?;
        }
        self.written.insert(sha.clone());
        Ok(sha)
    }

    /// Makes every recorded input durable.
    pub fn sync(&mut self) -> Result<(), LogError> {
        let path = self.path.clone();
        match &mut self.file {
            Some(f) => f
                .flush()
                .and_then(|()| f.get_ref().sync_data())
                .map_err(|e| LogError {
                    path,
                    detail: format!("cannot sync: {e}"),
                }),
            None => Ok(()),
        }
    }
}

/// The lines of the inputs file of the goal in `dir` whose sha256 is in
/// `wanted`, and those the inputs among them name (their task ids): what a
/// worker sends with the decisions it took for a coordinator.
pub fn lines_for(dir: &Path, wanted: &HashSet<String>) -> Result<Vec<String>, LogError> {
    let path = dir.join(INPUTS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(LogError {
                path,
                detail: format!("cannot read it: {e}"),
            });
        }
    };
    let mut named: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((sha, json)) = split_line(line.as_bytes()) else {
            continue;
        };
        if wanted.contains(sha) {
            if let Ok(input) = serde_json::from_slice::<Input>(json) {
                named.insert(input.existing_task_ids);
            }
            out.push(line.to_owned());
        }
    }
    for line in text.lines() {
        if let Some((sha, _)) = split_line(line.as_bytes())
            && named.contains(sha)
            && !wanted.contains(sha)
        {
            out.push(line.to_owned());
        }
    }
    Ok(out)
}

/// Truncates `f` after its last newline, if it does not end with one.
fn cut_torn_tail(f: &File) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = f.metadata()?.len();
    let mut end = len;
    let mut buf = vec![0u8; 1 << 16];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep < len {
                f.set_len(keep)?;
            }
            return Ok(());
        }
        end = start;
    }
    // No newline at all: the only line is torn.
    if len > 0 {
        f.set_len(0)?;
    }
    Ok(())
}

/// A goal's recorded inputs, read back for replay: an index of where each
/// input sits in the file (read once, each line's address checked), and
/// each input read from the file when it is asked for, so memory grows
/// with the number of inputs' addresses, not their bytes.
#[derive(Debug, Default)]
pub struct Inputs {
    file: Option<File>,
    /// Where each input's JSON is: sha256 -> (offset, length).
    at: HashMap<[u8; 32], (u64, usize)>,
    /// Line numbers (1-based) of lines that are not a torn last line and
    /// whose bytes do not match their address: changed after they were
    /// written.
    pub damaged: Vec<usize>,
    /// Proposals not yet accepted, by wave and place in the plan.
    proposals: HashMap<(String, usize), TaskProposal>,
    /// Proposals accepted in each wave, by id.
    accepted: HashMap<String, HashMap<String, AcceptedTask>>,
    /// The last list of task ids read: consecutive decisions share one.
    ids: std::sync::Mutex<Option<(String, std::sync::Arc<Vec<String>>)>>,
}

impl Inputs {
    /// Reads the inputs of the goal in `dir`, and from `events` the tasks
    /// each wave accepted.
    pub fn read(dir: &Path, events: &[Event]) -> Result<Inputs, LogError> {
        let mut inputs = Inputs::open(dir)?;
        for e in events {
            inputs.event(&Body::of(e));
        }
        Ok(inputs)
    }

    /// Indexes the inputs of the goal in `dir`; the tasks each wave
    /// accepted are learnt from the log's events, given to
    /// [`Inputs::event`] in order.
    pub fn open(dir: &Path) -> Result<Inputs, LogError> {
        use std::io::BufRead;
        let path = dir.join(INPUTS_FILE);
        let err = |e: std::io::Error| LogError {
            path: path.clone(),
            detail: format!("cannot read it: {e}"),
        };
        let mut inputs = Inputs::default();
        if std::fs::metadata(&path).is_ok_and(|m| !m.is_file()) {
            return Err(LogError {
                path,
                detail: "it is not a regular file".into(),
            });
        }
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(inputs),
            Err(e) => return Err(err(e)),
        };
        let mut r = std::io::BufReader::with_capacity(1 << 16, file.try_clone().map_err(err)?);
        let (mut buf, mut offset, mut n) = (Vec::new(), 0u64, 0usize);
        loop {
            buf.clear();
            let read = r.read_until(b'\n', &mut buf).map_err(err)?;
            if read == 0 {
                break;
            }
            n += 1;
            let whole = buf.ends_with(b"\n");
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            // Only inputs whose bytes match their address count.
            let good = split_line(line).and_then(|(sha, json)| {
                let digest: [u8; 32] = Sha256::digest(json).into();
                (hex::encode(digest) == sha).then(|| {
                    let start = offset + (line.len() - json.len() - 1) as u64;
                    (digest, (start, json.len()))
                })
            });
            match good {
                Some((digest, at)) => {
                    inputs.at.insert(digest, at);
                }
                None if line.is_empty() => {}
                // A crash mid-append tears only the last line.
                None if !whole => {}
                None => inputs.damaged.push(n),
            }
            offset += read as u64;
        }
        inputs.file = Some(file);
        Ok(inputs)
    }

    /// Learns from one event of the log which tasks each wave accepted.
    pub fn event(&mut self, body: &Body) {
        match body {
            Body::TaskProposed(t) => {
                if let Some(index) = t.index {
                    self.proposals
                        .insert((t.run_key.clone(), index), t.proposal.clone());
                }
            }
            Body::TaskAccepted(t) => {
                if let Some(index) = t.index
                    && let Some(p) = self.proposals.remove(&(t.run_key.clone(), index))
                {
                    self.accepted
                        .entry(t.run_key.clone())
                        .or_default()
                        .insert(p.id.clone(), p.as_accepted());
                }
            }
            _ => {}
        }
    }

    /// How many inputs were read.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// The bytes of input `sha`, read from the file.
    fn bytes(&self, sha: &str) -> Option<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let digest: [u8; 32] = hex::decode(sha).ok()?.try_into().ok()?;
        let &(offset, len) = self.at.get(&digest)?;
        let mut buf = vec![0; len];
        self.file.as_ref()?.read_exact_at(&mut buf, offset).ok()?;
        // Changed since it was indexed: not the input recorded.
        (hex::encode(Sha256::digest(&buf)) == sha).then_some(buf)
    }

    /// The full context and subject of the input `sha`, as the gates saw
    /// them.
    pub fn get(&self, sha: &str) -> Option<(GoalContext, Subject)> {
        let input: Input = serde_json::from_slice(&self.bytes(sha)?).ok()?;
        let ids = {
            let mut cache = self.ids.lock().unwrap_or_else(|e| e.into_inner());
            match &*cache {
                // Shared, not copied: a long goal has thousands of ids.
                Some((key, ids)) if *key == input.existing_task_ids => ids.clone(),
                _ => {
                    let ids: Vec<String> =
                        serde_json::from_slice(&self.bytes(&input.existing_task_ids)?).ok()?;
                    let ids = std::sync::Arc::new(ids);
                    *cache = Some((input.existing_task_ids.clone(), ids.clone()));
                    ids
                }
            }
        };
        let mut ctx = input.context;
        ctx.existing_task_ids = omk_gate_sdk::Lazy::from_shared(ids);
        if let Some(w) = input.accepted_in_wave {
            // A wave that accepted nothing has no entry; its decisions saw
            // no accepted tasks.
            let wave = self.accepted.get(&w.run_key);
            ctx.accepted_in_wave = w
                .ids
                .iter()
                .map(|id| wave.and_then(|wave| wave.get(id)).cloned())
                .collect::<Option<Vec<_>>>()?
                .into();
        }
        Some((ctx, input.subject))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_one(dir: &Path) -> String {
        let mut store = InputStore::new(dir);
        let sha = store
            .record(
                &GoalContext::default(),
                None,
                Subject::Proposal {
                    proposal: serde_json::from_str(r#"{"id":"t","risk":"low"}"#).unwrap(),
                },
            )
            .unwrap();
        store.sync().unwrap();
        sha
    }

    #[test]
    fn an_input_is_addressed_by_its_stored_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let sha = store_one(dir.path());
        assert!(Inputs::read(dir.path(), &[]).unwrap().get(&sha).is_some());
        // The same input with other spacing, as another serialiser might
        // write it, under the address of those bytes: still found.
        let json = r#"{"sha256": "x"}"#;
        let other = hex::encode(Sha256::digest(json.as_bytes()));
        let line = format!("{LINE_HEAD}{other}{LINE_MID}{json}}}\n");
        let path = dir.path().join(INPUTS_FILE);
        let mut data = std::fs::read(&path).unwrap();
        data.extend_from_slice(line.as_bytes());
        std::fs::write(&path, data).unwrap();
        let inputs = Inputs::read(dir.path(), &[]).unwrap();
        assert_eq!(inputs.len(), 3, "two from the store and the added one");
        assert!(inputs.damaged.is_empty());
    }

    #[test]
    fn a_changed_line_is_reported_and_a_torn_last_line_cut() {
        let dir = tempfile::tempdir().unwrap();
        store_one(dir.path());
        let path = dir.path().join(INPUTS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let changed = text.replacen("\"risk\":\"", "\"risk\":\"x", 1);
        assert_ne!(changed, text);
        std::fs::write(&path, format!("{changed}{{\"sha256\":\"torn")).unwrap();
        let inputs = Inputs::read(dir.path(), &[]).unwrap();
        assert_eq!(
            inputs.damaged,
            [2],
            "the proposal's line; the torn one is not counted"
        );
        // The next writer cuts the torn line and appends whole ones.
        store_one(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("}\n") && !text.contains("torn"), "{text}");
    }
}

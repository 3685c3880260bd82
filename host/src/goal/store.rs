//! Where goals live on disk, and the lock that gives a goal one writer.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::{Goal, is_goal_id};
use crate::atomic;
use omk_core::diagnose::{Diagnose, Kind};

/// The goal file in a goal's directory.
pub const GOAL_FILE: &str = "goal.json";
/// The lock file in a goal's directory.
pub const LOCK_FILE: &str = "lock";
/// The artifacts directory in a goal's directory.
pub const ARTIFACTS_DIR: &str = "artifacts";
/// Where requests to a running omk (`pause`, `cancel`) are left.
pub const REQUESTS_DIR: &str = "requests";

/// What another process may ask of the omk that holds a goal's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Pause,
    Cancel,
}

impl Request {
    /// Whether this request waits in the goal at `goal_dir`, not taken yet.
    pub fn is_left_in(self, goal_dir: &Path) -> bool {
        goal_dir.join(REQUESTS_DIR).join(self.file()).exists()
    }

    fn file(self) -> &'static str {
        match self {
            Request::Pause => "pause",
            Request::Cancel => "cancel",
        }
    }
}

/// Why goal state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no state directory: neither `XDG_STATE_HOME` nor `HOME` is set to an absolute path")]
    NoStateDir,
    #[error("`{input}` is not a goal id")]
    BadId { input: String },
    #[error("there is no goal `{id}` in {}", root.display())]
    NotFound { id: String, root: PathBuf },
    #[error("there are no goals yet in {}", root.display())]
    NoGoals { root: PathBuf },
    #[error("goal `{id}` is locked by {}", pid.map_or("another process".to_owned(), |p| format!("pid {p}")))]
    Locked { id: String, pid: Option<u32> },
    #[error("`{}` is damaged: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Diagnose for StoreError {
    fn kind(&self) -> Kind {
        match self {
            StoreError::Locked { .. } => Kind::System,
            StoreError::Corrupt { .. } => Kind::Integrity,
            StoreError::Io { source, .. } => omk_core::diagnose::io_kind(source),
            _ => Kind::Usage,
        }
    }

    fn help(&self) -> Option<String> {
        Some(match self {
            StoreError::NoStateDir => "set `XDG_STATE_HOME` to the directory omk should keep goals in".into(),
            StoreError::BadId { .. } | StoreError::NotFound { .. } => {
                "`omk goal list` shows the goals; `latest` names the newest".into()
            }
            StoreError::NoGoals { .. } => "create one with `omk goal run \"GOAL\"`".into(),
            StoreError::Locked { .. } => {
                "another omk is acting on this goal; wait for it to finish (the lock is released when it exits), or pass `--wait SECS`".into()
            }
            StoreError::Corrupt { .. } => {
                "the file was changed outside omk or by a faulty version; restore it from a backup, or remove the goal"
                    .into()
            }
            StoreError::Io { .. } => return None,
        })
    }
}

impl StoreError {
    pub(crate) fn io(
        action: &'static str,
        path: &Path,
    ) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.to_owned();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    }
}

/// The directory of goals.
#[derive(Debug, Clone)]
pub struct GoalStore {
    root: PathBuf,
}

/// The one-writer lock of a goal, held until dropped (or the process
/// exits: the OS releases it, so a crash never leaves a goal locked).
#[derive(Debug)]
pub struct GoalLock {
    _file: File,
    id: String,
}

impl GoalLock {
    /// The locked goal's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl GoalStore {
    /// The store in omk's state directory.
    pub fn open_default() -> Result<GoalStore, StoreError> {
        crate::dirs::state_dir()
            .map(|d| GoalStore::new(d.join("goals")))
            .ok_or(StoreError::NoStateDir)
    }

    /// The store at `root`.
    pub fn new(root: PathBuf) -> GoalStore {
        GoalStore { root }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A goal's folder.
    pub fn dir(&self, id: &str) -> super::GoalDir {
        super::GoalDir::new(self.root.join(id))
    }

    /// Creates the directory of a new goal, locks it and writes `goal`.
    pub fn create(&self, goal: &Goal) -> Result<GoalLock, StoreError> {
        let dir = self.dir(&goal.id);
        std::fs::create_dir_all(&self.root).map_err(StoreError::io("create", &self.root))?;
        std::fs::create_dir(&dir).map_err(StoreError::io("create", &dir))?;
        std::fs::create_dir(dir.join(ARTIFACTS_DIR)).map_err(StoreError::io("create", &dir))?;
        let lock = self.lock(&goal.id)?;
        self.save(&lock, goal)?;
        Ok(lock)
    }

    /// The id `input` names: a goal id, or `latest` for the newest goal.
    pub fn resolve(&self, input: &str) -> Result<String, StoreError> {
        if input == "latest" {
            return self
                .ids()?
                .into_iter()
                .max()
                .ok_or_else(|| StoreError::NoGoals {
                    root: self.root.clone(),
                });
        }
        if !is_goal_id(input) {
            return Err(StoreError::BadId {
                input: input.to_owned(),
            });
        }
        if !self.dir(input).join(GOAL_FILE).is_file() {
            return Err(StoreError::NotFound {
                id: input.to_owned(),
                root: self.root.clone(),
            });
        }
        Ok(input.to_owned())
    }

    /// Every goal id in the store, oldest first.
    pub fn ids(&self) -> Result<Vec<String>, StoreError> {
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("read", &self.root)(e)),
        };
        let mut ids: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| is_goal_id(name) && self.dir(name).join(GOAL_FILE).is_file())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Reads a goal.
    pub fn load(&self, id: &str) -> Result<Goal, StoreError> {
        let path = self.dir(id).join(GOAL_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound {
                id: id.to_owned(),
                root: self.root.clone(),
            },
            _ => StoreError::io("read", &path)(e),
        })?;
        let goal: Goal = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if goal.id != id {
            return Err(StoreError::Corrupt {
                path,
                detail: format!("it holds goal `{}`", goal.id),
            });
        }
        Ok(goal)
    }

    /// Writes a goal, atomically; the lock proves this process is its
    /// writer.
    pub fn save(&self, lock: &GoalLock, goal: &Goal) -> Result<(), StoreError> {
        debug_assert_eq!(lock.id, goal.id);
        let path = self.dir(&goal.id).join(GOAL_FILE);
        atomic::write_json(&path, goal).map_err(StoreError::io("write", &path))
    }

    /// Leaves a request for the process holding the goal's lock; it acts on
    /// it between tasks. Needs no lock: each request is its own file.
    pub fn request(&self, id: &str, r: Request) -> Result<(), StoreError> {
        let dir = self.dir(id).join(REQUESTS_DIR);
        std::fs::create_dir_all(&dir).map_err(StoreError::io("create", &dir))?;
        let path = dir.join(r.file());
        atomic::write(&path, b"requested\n").map_err(StoreError::io("write", &path))
    }

    /// Takes the pending requests of a goal (cancel first), removing them.
    pub fn take_requests(&self, _lock: &GoalLock, id: &str) -> Vec<Request> {
        let dir = self.dir(id).join(REQUESTS_DIR);
        [Request::Cancel, Request::Pause]
            .into_iter()
            .filter(|r| std::fs::remove_file(dir.join(r.file())).is_ok())
            .collect()
    }

    /// Takes a goal's lock, waiting up to `wait` for the process holding it.
    pub fn lock_wait(&self, id: &str, wait: std::time::Duration) -> Result<GoalLock, StoreError> {
        let until = std::time::Instant::now() + wait;
        loop {
            match self.lock(id) {
                Err(StoreError::Locked { .. }) if std::time::Instant::now() < until => {
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                other => return other,
            }
        }
    }

    /// Takes a goal's one-writer lock, or fails at once naming the holder.
    pub fn lock(&self, id: &str) -> Result<GoalLock, StoreError> {
        let path = self.dir(id).join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(StoreError::io("open", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(StoreError::Locked {
                    id: id.to_owned(),
                    pid: text.trim().parse().ok(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io("lock", &path)(e)),
        }
        // Record who holds it, for the message another process prints
        // while it is held. Not synced: after a crash the lock is free and
        // the pid means nothing, and a sync here cost every hook call a
        // journal commit.
        let record = (|| -> std::io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{}", std::process::id())
        })();
        record.map_err(StoreError::io("write", &path))?;
        Ok(GoalLock {
            _file: file,
            id: id.to_owned(),
        })
    }
}

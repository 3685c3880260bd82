//! The task graph of a goal: every admitted task, its state and its
//! dependencies (`task-graph.json`).
//!
//! The graph is checked every time it is loaded or saved
//! ([`TaskGraph::validate`]): duplicate ids, missing or self dependencies
//! and cycles are errors that name the tasks involved. Rejected proposals
//! never enter the graph; they live in the event log.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use omk_gate_sdk::{AcceptedTask, Evidence, TaskProposal};
use serde::{Deserialize, Serialize};

use crate::atomic;

/// The task graph file in a goal's directory.
pub const GRAPH_FILE: &str = "task-graph.json";
/// The version of `task-graph.json`'s layout.
pub const GRAPH_SCHEMA: u32 = 1;
/// Retries a task gets by default.
pub const DEFAULT_MAX_RETRIES: u32 = 1;

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Admitted, waiting for its dependencies or a free agent.
    Pending,
    /// An agent is working on it.
    Running,
    /// Finished and accepted by the outcome gates.
    Done,
    /// Finished without being accepted, out of retries.
    Failed,
    /// Stopped because the goal was cancelled.
    Cancelled,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Done => "done",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the task still holds part of the time budget in reserve.
    pub fn commits_budget(self) -> bool {
        matches!(self, TaskStatus::Pending | TaskStatus::Running)
    }
}

/// One admitted task.
///
/// Its first fields repeat [`TaskProposal`]'s rather than holding one:
/// `task-graph.json` keeps them flat (goals written by every earlier omk
/// read as they were), and serde cannot flatten a struct that refuses
/// unknown fields into one that does too. [`Task::admitted`] and
/// [`Task::as_proposal`] are the one place the two meet; a field added to
/// the proposal is added here and in both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub id: String,
    pub title: String,
    pub description: String,
    pub status: TaskStatus,
    pub dependencies: Vec<String>,
    pub read_set: Vec<String>,
    pub write_set: Vec<String>,
    pub risk: String,
    pub acceptance: Vec<String>,
    pub budget_secs: u64,
    pub priority: i32,
    /// The wave that admitted it.
    pub run_key: String,
    pub evidence: Vec<Evidence>,
    pub retry_count: u32,
    pub max_retries: u32,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Why it failed, for people.
    pub failure: Option<String>,
    /// Its branch, once it has run.
    #[serde(default)]
    pub branch: Option<String>,
    /// The commit holding its accepted work.
    #[serde(default)]
    pub commit: Option<String>,
    /// Whether its work was merged into the integration branch.
    #[serde(default)]
    pub merged: bool,
    /// Files its accepted work changed.
    #[serde(default)]
    pub changed_files: Vec<String>,
    /// The process group of its agent while it runs, and the token its
    /// processes carry, so a later omk can stop them after a crash.
    #[serde(default)]
    pub pgid: Option<u32>,
    #[serde(default)]
    pub lease_token: Option<String>,
    /// Follow-up tasks its agent proposed, and whether they were judged.
    #[serde(default)]
    pub follow_ups: Vec<TaskProposal>,
    #[serde(default)]
    pub follow_ups_judged: bool,
}

impl Task {
    /// A pending task from an admitted proposal.
    pub fn admitted(p: &TaskProposal, run_key: &str, now: DateTime<Utc>) -> Task {
        Task {
            id: p.id.clone(),
            title: p.title.clone(),
            description: p.description.clone(),
            status: TaskStatus::Pending,
            dependencies: p.dependencies.clone(),
            read_set: p.read_set.clone(),
            write_set: p.write_set.clone(),
            risk: p.risk.clone(),
            acceptance: p.acceptance.clone(),
            budget_secs: p.budget_secs,
            priority: p.priority,
            run_key: run_key.to_owned(),
            evidence: Vec::new(),
            retry_count: 0,
            max_retries: DEFAULT_MAX_RETRIES,
            lease_expires_at: None,
            created_at: now,
            completed_at: None,
            failure: None,
            branch: None,
            commit: None,
            merged: false,
            changed_files: Vec::new(),
            pgid: None,
            lease_token: None,
            follow_ups: Vec::new(),
            follow_ups_judged: false,
        }
    }

    /// The task in the shape gates judge it.
    pub fn as_proposal(&self) -> TaskProposal {
        TaskProposal {
            id: self.id.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            dependencies: self.dependencies.clone(),
            read_set: self.read_set.clone(),
            write_set: self.write_set.clone(),
            risk: self.risk.clone(),
            acceptance: self.acceptance.clone(),
            budget_secs: self.budget_secs,
            priority: self.priority,
        }
    }

    /// The part later proposals are checked against.
    pub fn as_accepted(&self) -> AcceptedTask {
        AcceptedTask {
            id: self.id.clone(),
            read_set: self.read_set.clone(),
            write_set: self.write_set.clone(),
            dependencies: self.dependencies.clone(),
        }
    }
}

/// A goal's tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, from = "StoredGraph")]
pub struct TaskGraph {
    pub schema: u32,
    pub goal_id: String,
    pub updated_at: DateTime<Utc>,
    /// In the order they were added; read with [`TaskGraph::tasks`], added
    /// with [`TaskGraph::push`] only, so that `index` holds every id.
    tasks: Vec<Task>,
    /// Task positions by id, kept by [`TaskGraph::push`] (and rebuilt at
    /// load): a miss is a task the graph does not have, found without a
    /// scan, which a wave of 10,000 proposals asks about once each.
    #[serde(skip)]
    index: HashMap<String, usize>,
}

/// A graph as stored: its index is built when it is read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredGraph {
    schema: u32,
    goal_id: String,
    updated_at: DateTime<Utc>,
    tasks: Vec<Task>,
}

impl From<StoredGraph> for TaskGraph {
    fn from(g: StoredGraph) -> TaskGraph {
        let mut graph = TaskGraph {
            schema: g.schema,
            goal_id: g.goal_id,
            updated_at: g.updated_at,
            tasks: g.tasks,
            index: HashMap::new(),
        };
        graph.reindex();
        graph
    }
}

impl PartialEq for TaskGraph {
    fn eq(&self, other: &Self) -> bool {
        (self.schema, &self.goal_id, self.updated_at, &self.tasks)
            == (other.schema, &other.goal_id, other.updated_at, &other.tasks)
    }
}

impl Eq for TaskGraph {}

/// A task graph that breaks its invariants, or cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("task id `{0}` appears more than once")]
    DuplicateId(String),
    #[error("task `{task}` depends on `{missing}`, which is not in the graph")]
    MissingDependency { task: String, missing: String },
    #[error("task `{0}` depends on itself")]
    SelfDependency(String),
    #[error("tasks depend on each other in a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("`{path}` is damaged: {detail}")]
    Unreadable { path: String, detail: String },
}

impl crate::diagnose::Diagnose for GraphError {
    fn kind(&self) -> crate::diagnose::Kind {
        match self {
            GraphError::Unreadable { .. } => crate::diagnose::Kind::Integrity,
            _ => crate::diagnose::Kind::Usage,
        }
    }
}

impl TaskGraph {
    /// An empty graph for `goal_id`.
    pub fn new(goal_id: &str, now: DateTime<Utc>) -> TaskGraph {
        TaskGraph {
            schema: GRAPH_SCHEMA,
            goal_id: goal_id.to_owned(),
            updated_at: now,
            tasks: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Reads and validates the graph in `dir`; a goal without one has an
    /// empty graph.
    pub fn load(dir: &Path, goal_id: &str) -> Result<TaskGraph, GraphError> {
        let path = dir.join(GRAPH_FILE);
        let unreadable = |detail: String| GraphError::Unreadable {
            path: path.display().to_string(),
            detail,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(TaskGraph::new(goal_id, Utc::now()));
            }
            Err(e) => return Err(unreadable(e.to_string())),
        };
        TaskGraph::parse(&text, goal_id).map_err(|e| match e {
            GraphError::Unreadable { detail, .. } => unreadable(detail),
            other => other,
        })
    }

    /// Parses and validates a graph of goal `goal_id` from its JSON text
    /// (errors name no file; [`TaskGraph::load`] adds it).
    pub fn parse(text: &str, goal_id: &str) -> Result<TaskGraph, GraphError> {
        let unreadable = |detail: String| GraphError::Unreadable {
            path: String::new(),
            detail,
        };
        let graph: TaskGraph = serde_json::from_str(text).map_err(|e| unreadable(e.to_string()))?;
        if graph.goal_id != goal_id {
            return Err(unreadable(format!(
                "it belongs to goal `{}`",
                graph.goal_id
            )));
        }
        graph.validate()?;
        Ok(graph)
    }

    /// Validates and writes the graph to `dir`, atomically.
    pub fn save(&mut self, dir: &Path, now: DateTime<Utc>) -> Result<(), GraphError> {
        self.validate()?;
        self.updated_at = now;
        let path = dir.join(GRAPH_FILE);
        atomic::write_json(&path, self).map_err(|e| GraphError::Unreadable {
            path: path.display().to_string(),
            detail: format!("cannot write it: {e}"),
        })
    }

    /// The position of the task with this id.
    fn position(&self, id: &str) -> Option<usize> {
        let i = *self.index.get(id)?;
        // A task's id is not changed once added (nothing does); were it
        // changed through `get_mut`, the task is not found by either id.
        self.tasks.get(i).is_some_and(|t| t.id == id).then_some(i)
    }

    /// The tasks, in the order they were added.
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// The tasks, to change them (not their ids).
    pub fn tasks_mut(&mut self) -> &mut [Task] {
        &mut self.tasks
    }

    /// The task with this id.
    pub fn get(&self, id: &str) -> Option<&Task> {
        self.position(id).map(|i| &self.tasks[i])
    }

    /// The task with this id, to change it.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Task> {
        self.position(id).map(|i| &mut self.tasks[i])
    }

    /// Adds a task.
    pub fn push(&mut self, task: Task) {
        self.index.insert(task.id.clone(), self.tasks.len());
        self.tasks.push(task);
    }

    fn reindex(&mut self) {
        self.index = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
    }

    /// Seconds reserved by tasks that have not finished.
    pub fn committed_secs(&self) -> u64 {
        self.committed_secs_except("")
    }

    /// Seconds reserved by unfinished tasks other than `id` (a re-planned
    /// task's old reservation does not count against itself).
    pub fn committed_secs_except(&self, id: &str) -> u64 {
        self.tasks
            .iter()
            .filter(|t| t.status.commits_budget() && t.id != id)
            .fold(0u64, |acc, t| acc.saturating_add(t.budget_secs))
    }

    /// How many tasks are in each status.
    pub fn counts(&self) -> HashMap<TaskStatus, usize> {
        let mut counts = HashMap::new();
        for t in &self.tasks {
            *counts.entry(t.status).or_insert(0) += 1;
        }
        counts
    }

    /// Checks ids and dependencies.
    pub fn validate(&self) -> Result<(), GraphError> {
        let mut seen = HashSet::new();
        for t in &self.tasks {
            if !seen.insert(t.id.as_str()) {
                return Err(GraphError::DuplicateId(t.id.clone()));
            }
        }
        for t in &self.tasks {
            for d in &t.dependencies {
                if d == &t.id {
                    return Err(GraphError::SelfDependency(t.id.clone()));
                }
                if !seen.contains(d.as_str()) {
                    return Err(GraphError::MissingDependency {
                        task: t.id.clone(),
                        missing: d.clone(),
                    });
                }
            }
        }
        if let Some(cycle) = self.find_cycle() {
            return Err(GraphError::Cycle(cycle));
        }
        Ok(())
    }

    /// A dependency cycle as `a, b, …, a`, if there is one.
    fn find_cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Closed,
        }
        let index: HashMap<&str, usize> = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str(), i))
            .collect();
        let mut mark = vec![Mark::New; self.tasks.len()];
        for start in 0..self.tasks.len() {
            if mark[start] != Mark::New {
                continue;
            }
            // Iterative depth-first search: (task, next dependency to visit).
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            mark[start] = Mark::Open;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                let deps = &self.tasks[node].dependencies;
                if *next < deps.len() {
                    let dep = deps[*next].as_str();
                    *next += 1;
                    let Some(&child) = index.get(dep) else {
                        continue;
                    };
                    match mark[child] {
                        Mark::New => {
                            mark[child] = Mark::Open;
                            stack.push((child, 0));
                        }
                        Mark::Open => {
                            let from = stack.iter().position(|&(n, _)| n == child).unwrap_or(0);
                            let mut cycle: Vec<String> = stack[from..]
                                .iter()
                                .map(|&(n, _)| self.tasks[n].id.clone())
                                .collect();
                            cycle.push(self.tasks[child].id.clone());
                            return Some(cycle);
                        }
                        Mark::Closed => {}
                    }
                } else {
                    mark[node] = Mark::Closed;
                    stack.pop();
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, deps: &[&str]) -> Task {
        let p: TaskProposal = serde_json::from_value(serde_json::json!({
            "id": id, "dependencies": deps, "budget_secs": 10
        }))
        .unwrap();
        Task::admitted(&p, "run", Utc::now())
    }

    fn graph(tasks: Vec<Task>) -> TaskGraph {
        let mut g = TaskGraph::new("goal-x", Utc::now());
        for t in tasks {
            g.push(t);
        }
        g
    }

    #[test]
    fn tasks_are_found_by_their_index_however_the_graph_was_made() {
        let made = graph(vec![task("a", &[]), task("b", &["a"])]);
        let read: TaskGraph = serde_json::from_str(&serde_json::to_string(&made).unwrap()).unwrap();
        for g in [&made, &read] {
            // Every id is in the index, so a miss needs no scan.
            assert_eq!(g.index.len(), g.tasks().len());
            assert_eq!(g.get("b").map(|t| t.id.as_str()), Some("b"));
            assert!(g.get("c").is_none());
        }
        let mut changed = read.clone();
        changed.push(task("c", &["b"]));
        assert_eq!(changed.position("c"), Some(2));
    }

    #[test]
    fn validation_names_the_tasks() {
        assert!(
            graph(vec![task("a", &[]), task("b", &["a"])])
                .validate()
                .is_ok()
        );
        assert_eq!(
            graph(vec![task("a", &[]), task("a", &[])]).validate(),
            Err(GraphError::DuplicateId("a".into()))
        );
        assert_eq!(
            graph(vec![task("a", &["a"])]).validate(),
            Err(GraphError::SelfDependency("a".into()))
        );
        assert_eq!(
            graph(vec![task("a", &["ghost"])]).validate(),
            Err(GraphError::MissingDependency {
                task: "a".into(),
                missing: "ghost".into()
            })
        );
        let e = graph(vec![
            task("x", &[]),
            task("a", &["c"]),
            task("b", &["a"]),
            task("c", &["b", "x"]),
        ])
        .validate()
        .unwrap_err();
        assert_eq!(
            e,
            GraphError::Cycle(vec!["a".into(), "c".into(), "b".into(), "a".into()])
        );
        assert_eq!(
            e.to_string(),
            "tasks depend on each other in a cycle: a -> c -> b -> a"
        );
    }

    #[test]
    fn deep_chains_do_not_overflow_the_stack() {
        let tasks: Vec<Task> = (0..50_000)
            .map(|i| {
                let prev = format!("t{}", i.max(1) - 1);
                let deps: Vec<&str> = if i == 0 { vec![] } else { vec![prev.as_str()] };
                task(&format!("t{i}"), &deps)
            })
            .collect();
        assert!(graph(tasks).validate().is_ok());
    }

    #[test]
    fn save_and_load_round_trip_and_validate() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = graph(vec![task("a", &[]), task("b", &["a"])]);
        g.save(dir.path(), Utc::now()).unwrap();
        assert_eq!(TaskGraph::load(dir.path(), "goal-x").unwrap(), g);
        // A graph edited into a cycle is refused on load.
        let text = std::fs::read_to_string(dir.path().join(GRAPH_FILE)).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["tasks"][0]["dependencies"] = serde_json::json!(["b"]);
        std::fs::write(dir.path().join(GRAPH_FILE), v.to_string()).unwrap();
        assert!(matches!(
            TaskGraph::load(dir.path(), "goal-x"),
            Err(GraphError::Cycle(_))
        ));
    }
}

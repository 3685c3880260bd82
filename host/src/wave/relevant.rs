//! Which tasks accepted earlier in a wave a proposal is judged against.
//!
//! A gate sees, in `accepted-in-wave`, every task accepted earlier in the
//! wave that the proposal could conflict with: those that write a path
//! overlapping one the proposal reads or writes, those that read a path
//! overlapping one it writes (one path is the other or lies below it), and
//! those it depends on, directly or through other tasks of the wave. Two
//! readers never conflict, so a shared read does not make tasks relevant to
//! each other. Passing every accepted task instead would make a wave of n
//! proposals cost n² — 50 million task records for 10,000 proposals.
//!
//! [`Accepted`] indexes accepted paths in sorted maps, so a query costs the
//! depth of the path plus the matches, not the size of the wave.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use omk_gate_sdk::{AcceptedTask, TaskProposal, paths};

/// Accepted paths of one kind (reads or writes), by normal form.
#[derive(Debug, Default)]
struct PathIndex {
    by_path: BTreeMap<String, Vec<usize>>,
    /// Tasks naming the whole project (`.`), which overlaps everything.
    everywhere: Vec<usize>,
}

impl PathIndex {
    fn insert(&mut self, raw: &str, task: usize) {
        match paths::check(raw) {
            Ok(n) if n == "." => self.everywhere.push(task),
            Ok(n) => self.by_path.entry(n).or_default().push(task),
            Err(_) => {}
        }
    }

    /// Adds to `picked` every task with a path overlapping normalised `q`.
    fn overlapping(&self, q: &str, picked: &mut BTreeSet<usize>) {
        picked.extend(&self.everywhere);
        if q == "." {
            picked.extend(self.by_path.values().flatten());
            return;
        }
        // The path itself and every folder above it.
        let mut prefix = q;
        loop {
            if let Some(hits) = self.by_path.get(prefix) {
                picked.extend(hits);
            }
            match prefix.rfind('/') {
                Some(i) => prefix = &prefix[..i],
                None => break,
            }
        }
        // Everything below it: keys from `q/` up to `q0` (`0` follows `/`).
        let (lo, hi) = (format!("{q}/"), format!("{q}0"));
        for (_, hits) in self.by_path.range(lo..hi) {
            picked.extend(hits);
        }
    }
}

/// The tasks accepted so far in a wave, indexed by path and id.
#[derive(Debug, Default)]
pub struct Accepted {
    tasks: Vec<AcceptedTask>,
    reads: PathIndex,
    writes: PathIndex,
    by_id: HashMap<String, usize>,
}

impl Accepted {
    /// Records an accepted task.
    pub fn push(&mut self, t: AcceptedTask) {
        let i = self.tasks.len();
        for p in &t.read_set {
            self.reads.insert(p, i);
        }
        for p in &t.write_set {
            self.writes.insert(p, i);
        }
        self.by_id.insert(t.id.clone(), i);
        self.tasks.push(t);
    }

    /// Whether a task with this id was accepted.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// The accepted tasks `p` could conflict with, in acceptance order.
    pub fn relevant_to(&self, p: &TaskProposal) -> Vec<AcceptedTask> {
        let mut picked = BTreeSet::new();
        for raw in &p.read_set {
            if let Ok(q) = paths::check(raw) {
                self.writes.overlapping(&q, &mut picked);
            }
        }
        for raw in &p.write_set {
            if let Ok(q) = paths::check(raw) {
                self.writes.overlapping(&q, &mut picked);
                self.reads.overlapping(&q, &mut picked);
            }
        }
        // Its dependencies within the wave, and theirs.
        let mut stack: Vec<&str> = p.dependencies.iter().map(String::as_str).collect();
        while let Some(id) = stack.pop() {
            if let Some(&i) = self.by_id.get(id)
                && picked.insert(i)
            {
                stack.extend(self.tasks[i].dependencies.iter().map(String::as_str));
            }
        }
        picked.into_iter().map(|i| self.tasks[i].clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(id: &str, w: &[&str], r: &[&str], deps: &[&str]) -> AcceptedTask {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        AcceptedTask {
            id: id.into(),
            read_set: s(r),
            write_set: s(w),
            dependencies: s(deps),
        }
    }

    fn proposal(w: &[&str], deps: &[&str]) -> TaskProposal {
        reading(w, &[], deps)
    }

    fn reading(w: &[&str], r: &[&str], deps: &[&str]) -> TaskProposal {
        serde_json::from_value(
            serde_json::json!({"id": "p", "write_set": w, "read_set": r, "dependencies": deps}),
        )
        .unwrap()
    }

    fn ids(v: Vec<AcceptedTask>) -> Vec<String> {
        v.into_iter().map(|t| t.id).collect()
    }

    #[test]
    fn overlaps_above_below_and_equal_and_dependency_chains() {
        let mut a = Accepted::default();
        a.push(accepted("dir", &["src"], &[], &[]));
        a.push(accepted("file", &["src/a/b.rs"], &[], &[]));
        a.push(accepted("sibling", &["srcx/y"], &[], &[]));
        a.push(accepted("reader", &[], &["docs/x.md"], &[]));
        a.push(accepted("base", &["lib/base.rs"], &[], &[]));
        a.push(accepted("mid", &["lib/mid.rs"], &[], &["base"]));
        a.push(accepted("root", &["."], &[], &[]));
        assert_eq!(
            ids(a.relevant_to(&proposal(&["src/a"], &[]))),
            ["dir", "file", "root"]
        );
        assert_eq!(
            ids(a.relevant_to(&proposal(&["./docs/x.md"], &[]))),
            ["reader", "root"]
        );
        assert_eq!(
            ids(a.relevant_to(&proposal(&["other"], &["mid"]))),
            ["base", "mid", "root"]
        );
        assert_eq!(a.relevant_to(&proposal(&["."], &[])).len(), 7);
        // Readers are relevant to writers only: two reads never conflict.
        assert_eq!(ids(a.relevant_to(&reading(&[], &["docs"], &[]))), ["root"]);
        assert_eq!(
            ids(a.relevant_to(&reading(&[], &["src/a/b.rs"], &[]))),
            ["dir", "file", "root"]
        );
        assert_eq!(a.relevant_to(&reading(&[], &["."], &[])).len(), 6);
    }

    #[test]
    fn the_path_gate_decides_the_same_on_the_relevant_tasks_as_on_all() {
        use omk_gate_path::PathGate;
        use omk_gate_sdk::{GoalContext, Policy};
        let mut a = Accepted::default();
        let mut all = Vec::new();
        let dirs = ["src", "src/a", "docs", "tests/x", "lib"];
        for i in 0..60 {
            let t = accepted(
                &format!("t{i}"),
                &[&format!("{}/f{}.rs", dirs[i % 5], i % 7)],
                &[dirs[(i + 2) % 5]],
                if i % 9 == 3 { &["t0"] } else { &[] },
            );
            a.push(t.clone());
            all.push(t);
        }
        for w in [
            "src",
            "src/a/f1.rs",
            "docs/f2.rs",
            "nowhere",
            "tests",
            "lib/f3.rs",
        ] {
            for (deps, r) in [(&[][..], "docs"), (&["t12"][..], "src/a"), (&[][..], ".")] {
                let p = reading(&[w], &[r], deps);
                let full = GoalContext {
                    accepted_in_wave: all.clone().into(),
                    ..Default::default()
                };
                let part = GoalContext {
                    accepted_in_wave: a.relevant_to(&p).into(),
                    ..Default::default()
                };
                assert_eq!(
                    PathGate::check_proposal(&full, &p, ""),
                    PathGate::check_proposal(&part, &p, ""),
                    "{w} {deps:?}"
                );
            }
        }
    }
}

//! Which tasks accepted earlier in a wave a proposal is judged against.
//!
//! A gate sees, in `accepted-in-wave`, every task accepted earlier in the
//! wave that the proposal could conflict with: those whose read or write
//! paths overlap the proposal's (one is the other or lies below it), and
//! those it depends on, directly or through other tasks of the wave. Passing
//! every accepted task instead would make a wave of n proposals cost n² —
//! 50 million task records for 10,000 proposals.
//!
//! [`Accepted`] indexes accepted paths in a sorted map, so a query costs the
//! depth of the path plus the matches, not the size of the wave.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use omk_gate_sdk::{AcceptedTask, TaskProposal, paths};

/// The tasks accepted so far in a wave, indexed by path and id.
#[derive(Debug, Default)]
pub struct Accepted {
    tasks: Vec<AcceptedTask>,
    by_path: BTreeMap<String, Vec<usize>>,
    by_id: HashMap<String, usize>,
    /// Tasks touching the whole project (`.`), which overlap everything.
    everywhere: Vec<usize>,
}

impl Accepted {
    /// Records an accepted task.
    pub fn push(&mut self, t: AcceptedTask) {
        let i = self.tasks.len();
        for p in t.read_set.iter().chain(&t.write_set) {
            match paths::check(p) {
                Ok(n) if n == "." => self.everywhere.push(i),
                Ok(n) => self.by_path.entry(n).or_default().push(i),
                Err(_) => {}
            }
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
        let mut picked: BTreeSet<usize> = self.everywhere.iter().copied().collect();
        for raw in p.read_set.iter().chain(&p.write_set) {
            let Ok(q) = paths::check(raw) else { continue };
            if q == "." {
                return self.tasks.clone();
            }
            // The path itself and every folder above it.
            let mut prefix = q.as_str();
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
        serde_json::from_value(serde_json::json!({"id": "p", "write_set": w, "dependencies": deps}))
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
            for deps in [&[][..], &["t12"][..]] {
                let p = proposal(&[w], deps);
                let full = GoalContext {
                    accepted_in_wave: all.clone(),
                    ..Default::default()
                };
                let part = GoalContext {
                    accepted_in_wave: a.relevant_to(&p),
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

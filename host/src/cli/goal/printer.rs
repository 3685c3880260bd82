//! What `omk goal run` and `goal execute` print while a goal runs: a line
//! per event, and a spinner with counts on a terminal.

use omk::wave::execute::{Observer, Progress};

/// Prints what happens as it happens; a spinner with counts on a terminal.
pub(super) struct Printer {
    bar: indicatif::ProgressBar,
    counts: std::sync::Mutex<[usize; 4]>,
}

impl Printer {
    pub(super) fn new() -> Printer {
        // Drawn on a terminal only (indicatif hides it on a pipe): the time
        // since the run began, then the counts.
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Printer {
            bar,
            counts: std::sync::Mutex::new([0; 4]),
        }
    }

    fn line(&self, s: String) {
        self.bar.suspend(|| outln!("{s}"));
    }
}

impl Observer for Printer {
    fn progress(&self, p: &Progress) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        // running, done, failed, rejected
        match p {
            Progress::Wave(ev) => {
                c[3] += ev.rejected_task_count;
                self.line(format!(
                    "wave `{}`: {}",
                    ev.run_key,
                    ev.worker_summary.as_deref().unwrap_or("")
                ));
                for r in &ev.rejected {
                    self.line(format!(
                        "  REJECT  {}  by `{}`: {} [{}]",
                        r.task_id, r.gate, r.reason, r.code
                    ));
                }
                for id in &ev.accepted {
                    self.line(format!("  ACCEPT  {id}"));
                }
            }
            Progress::Started { task, attempt } => {
                c[0] += 1;
                let again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                self.line(format!("start    {task}{again}"));
            }
            Progress::Refused {
                task,
                target,
                reason,
            } => {
                self.line(format!("REFUSED  {task}: `{target}`: {reason}"));
            }
            Progress::Asked {
                task,
                id,
                target,
                reason,
            } => {
                self.line(format!(
                    "ASK      {task}: `{target}`: {reason}\n         waits for a person: `omk approve {id}` (or `--deny`); `omk approvals` lists what waits"
                ));
            }
            Progress::Done {
                task,
                commit,
                merged,
            } => {
                c[0] = c[0].saturating_sub(1);
                c[1] += 1;
                let commit = commit
                    .as_deref()
                    .map(|h| &h[..h.len().min(10)])
                    .unwrap_or("no changes");
                let merged = if *merged { ", merged" } else { "" };
                self.line(format!("done     {task}  ({commit}{merged})"));
            }
            Progress::Failed {
                task,
                reason,
                retry,
            } => {
                c[0] = c[0].saturating_sub(1);
                if !retry {
                    c[2] += 1;
                }
                let then = if *retry { " — will retry" } else { "" };
                self.line(format!("FAILED   {task}: {reason}{then}"));
            }
            Progress::Stopped { .. } => self.bar.finish_and_clear(),
        }
        self.bar.set_message(format!(
            "running {} · done {} · failed {} · rejected {}",
            c[0], c[1], c[2], c[3]
        ));
    }
}

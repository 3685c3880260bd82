//! One turn of a live agent, the same for every client: its clock — the
//! time its setup may take, its deadline, and the grace after the cancel
//! omk sends at the deadline before the process group is killed
//! ([`stdio::Agent::finish`](super::stdio::Agent::finish)) — and how it
//! ended ([`TurnEnd`]), which becomes a task's [`Report`] or a plan.
//!
//! A backend's loop waits on the client's messages and on this clock:
//!
//! ```text
//! select! {
//!     msg = next message           => handle it (refused while `stopping()`),
//!     _ = clock.deadline()          => send the client's cancel; clock.cancelled(),
//!     _ = clock.grace_over()        => give up: the turn ends,
//! }
//! ```

use std::time::Duration;

use omk_gate_sdk::TaskProposal;
use tokio::time::Instant;

use super::{Backend, BoxFuture, Brief, Hooks, Job, Place, Report, prompt};
use crate::sandbox::ClientState;

/// A client omk drives one turn at a time and gates live — ACP agents,
/// Claude Code, Codex, the Kimi CLI's wire. What is its own: how it is
/// started and shown, its words, and [`LiveClient::turn`]; the rest —
/// planning, judging its start, the report — is the same for all of them
/// (the [`Backend`] every `LiveClient` is).
pub trait LiveClient: Send + Sync {
    /// The backend's name (`codex`).
    fn name(&self) -> &'static str;
    /// Its name in reasons (`Codex`).
    fn who(&self) -> &str;
    /// Its word for a turn that finished (`completed`).
    fn done(&self) -> &'static str;
    /// Its command as the gates see it when it starts, and what starting
    /// it does.
    fn start(&self) -> (String, String);
    /// Where it keeps its settings and talks to its model, and its command.
    fn client(&self) -> (ClientState, Option<String>);
    /// Starts it in `place`, runs one turn with `text` until it ends or
    /// the deadline, and stops it. `task` is `None` while planning.
    fn turn<'a>(
        &'a self,
        place: Place<'a>,
        text: String,
        deadline: Instant,
        hooks: &'a dyn Hooks,
        task: Option<&'a str>,
    ) -> BoxFuture<'a, TurnEnd>;
}

impl<C: LiveClient> Backend for C {
    fn name(&self) -> &'static str {
        LiveClient::name(self)
    }

    fn live_gating(&self) -> bool {
        true
    }

    fn plan<'a>(
        &'a self,
        brief: &'a Brief,
        hooks: &'a dyn Hooks,
    ) -> BoxFuture<'a, Result<Vec<TaskProposal>, String>> {
        Box::pin(async move {
            let text = prompt::plan(brief);
            let end = self
                .turn(brief.place(), text, super::plan_deadline(), hooks, None)
                .await;
            end.into_plan(self.done(), self.who(), hooks)
        })
    }

    fn run<'a>(&'a self, job: &'a Job, hooks: &'a dyn Hooks) -> BoxFuture<'a, Report> {
        Box::pin(async move {
            let (shown, detail) = self.start();
            if let Some(refused) = super::refuse_start(hooks, job, &shown, &detail) {
                return refused;
            }
            let task = Some(job.task.id.as_str());
            let end = self
                .turn(job.place(), prompt::task(job), job.deadline, hooks, task)
                .await;
            end.into_report(self.done(), self.who(), hooks, &job.task.id)
        })
    }

    fn client(&self) -> (ClientState, Option<String>) {
        LiveClient::client(self)
    }
}

/// How long a client has to stop after omk cancels its turn.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// Longest a client's setup (its handshake, a new session) may take.
pub const START_SECS: u64 = 60;

/// The deadline of a turn, and whether it was reached.
#[derive(Debug, Clone, Copy)]
pub struct TurnClock {
    deadline: Instant,
    grace: Duration,
    give_up: Option<Instant>,
}

impl TurnClock {
    /// A turn due at `deadline`, with [`CANCEL_GRACE`] after it.
    pub fn new(deadline: Instant) -> TurnClock {
        TurnClock::with_grace(deadline, CANCEL_GRACE)
    }

    pub fn with_grace(deadline: Instant, grace: Duration) -> TurnClock {
        TurnClock {
            deadline,
            grace,
            give_up: None,
        }
    }

    /// When setup steps must be done by: [`START_SECS`] from now, never
    /// past the deadline.
    pub fn start_until(&self) -> Instant {
        (Instant::now() + Duration::from_secs(START_SECS)).min(self.deadline)
    }

    /// Whether the deadline has passed (for a setup that failed).
    pub fn passed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Whether the turn was cancelled at its deadline: what the client
    /// still asks is refused.
    pub fn stopping(&self) -> bool {
        self.give_up.is_some()
    }

    /// Resolves at the deadline, once: after [`TurnClock::cancelled`], never.
    pub async fn deadline(&self) {
        if self.give_up.is_none() {
            tokio::time::sleep_until(self.deadline).await;
        } else {
            std::future::pending::<()>().await;
        }
    }

    /// Records that the client was told to stop now.
    pub fn cancelled(&mut self) {
        self.give_up = Some(Instant::now() + self.grace);
    }

    /// Resolves when the grace after the cancel is over; never before the
    /// cancel.
    pub async fn grace_over(&self) {
        match self.give_up {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending::<()>().await,
        }
    }
}

/// How one turn of an agent ended: what every live backend gathers.
#[derive(Debug, Default)]
pub struct TurnEnd {
    /// Why the turn could not run or ended badly.
    pub error: Option<String>,
    pub timed_out: bool,
    /// The client's word for how the turn ended (ACP's and Claude's
    /// `end_turn`, Codex `completed`, the Kimi CLI `finished`).
    pub status: Option<String>,
    /// The final message.
    pub message: String,
    pub tokens: u64,
    pub usd_micros: u64,
    /// The client process's exit code, where omk saw it exit.
    pub exit_code: Option<i32>,
    pub stderr_tail: String,
}

impl TurnEnd {
    pub fn failed(error: String) -> TurnEnd {
        TurnEnd {
            error: Some(error),
            ..Default::default()
        }
    }

    /// Whether the turn ended as `done` says a finished turn ends.
    fn finished(&self, done: &str) -> bool {
        self.error.is_none() && self.status.as_deref() == Some(done) && !self.timed_out
    }

    /// How it stopped, in words; `who` names the agent.
    fn stopped(&self, who: &str) -> String {
        match (&self.error, &self.status, self.exit_code) {
            (Some(e), _, _) => e.clone(),
            (None, Some(s), _) => s.clone(),
            _ if self.timed_out => "stopped at the deadline".into(),
            (None, None, Some(c)) => format!("{who} exited with {c} before the turn ended"),
            (None, None, None) => format!("{who} exited before the turn ended"),
        }
    }

    /// A task's report; `done` is the status of a turn that finished.
    pub fn into_report(self, done: &str, who: &str, hooks: &dyn Hooks, task: &str) -> Report {
        let ok = self.finished(done);
        let stopped = self.stopped(who);
        let mut report = Report {
            exit_code: if self.timed_out {
                None
            } else if ok {
                Some(0)
            } else {
                Some(self.exit_code.filter(|c| *c != 0).unwrap_or(1))
            },
            timed_out: self.timed_out,
            tokens: self.tokens,
            usd_micros: self.usd_micros,
            ..Default::default()
        };
        prompt::read_final(&self.message, &stopped, &mut report, hooks, task);
        if !ok {
            // The reason last: it is the line a failed task is reported with.
            let message = crate::text::clip(self.message.trim(), 2000);
            report.output_tail = [self.stderr_tail.as_str(), &message, &stopped]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("\n");
        }
        report
    }

    /// The proposals of a planning turn.
    pub fn into_plan(
        self,
        done: &str,
        who: &str,
        hooks: &dyn Hooks,
    ) -> Result<Vec<TaskProposal>, String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.finished(done) {
            return Ok(prompt::read_plan(&self.message, hooks));
        }
        let said = format!("{}\n{}", self.message.trim(), self.stderr_tail);
        Err(format!(
            "{who} did not plan ({}): {}",
            self.stopped(who),
            crate::text::clip(said.trim(), 500)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_deadline_fires_once_and_then_the_grace_runs() {
        let (ms, grace) = (Duration::from_millis(60), Duration::from_millis(80));
        let start = Instant::now();
        let mut clock = TurnClock::with_grace(start + ms, grace);
        assert!(!clock.stopping());
        tokio::select! {
            _ = clock.deadline() => {}
            _ = clock.grace_over() => panic!("no grace before the cancel"),
        }
        assert!(Instant::now() - start >= ms);
        clock.cancelled();
        assert!(clock.stopping() && clock.passed());
        tokio::select! {
            _ = clock.deadline() => panic!("the deadline fires once"),
            _ = clock.grace_over() => {}
        }
        assert!(Instant::now() - start >= ms + grace);
    }
}

//! The clock of one turn of a live agent, the same for every client: the
//! time its setup may take, its deadline, and the grace after the cancel
//! omk sends at the deadline before the process group is killed
//! ([`stdio::Agent::finish`](super::stdio::Agent::finish)).
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

use tokio::time::Instant;

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

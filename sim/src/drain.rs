//! The healed phase's wait for the platform to settle, and when it gives up: the liveness
//! horizon.
//!
//! After healing, the platform must finish everything in flight (every activity terminal, every
//! pay and refund ended) without going [`DRAIN_HORIZON`] of simulated time without progress,
//! or the run is a liveness failure. Progress is the work still settling reaching a new low:
//! a backlog that keeps draining (a peak's event consumers, then the last notifications'
//! schedule) is not stuck however long it takes, up to [`DRAIN_LIMIT`]; work that stops
//! shrinking is given the horizon from its last low.

use crate::cluster::Cluster;
use crate::services::Scope;
use crate::workload::now_ms;
use paylab_invariants::liveness::{self, Unfinished};
use std::time::Duration;

/// Simulated time without progress after which the drain gives up.
pub const DRAIN_HORIZON: Duration = Duration::from_secs(120);
/// The longest drain, progress or not.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(900);
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// When a drain started at `start` gives up, given the settling work it sees at each poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    start: u64,
    deadline: u64,
    fewest: usize,
}

impl Horizon {
    pub fn new(start_ms: u64) -> Self {
        Horizon {
            start: start_ms,
            deadline: start_ms + DRAIN_HORIZON.as_millis() as u64,
            fewest: usize::MAX,
        }
    }

    /// Takes in that `settling` items were still settling at `now_ms`; returns whether the
    /// drain is over (nothing settling, or the horizon passed since the last new low).
    pub fn over(&mut self, now_ms: u64, settling: usize) -> bool {
        if settling < self.fewest {
            self.fewest = settling;
            let limit = self.start + DRAIN_LIMIT.as_millis() as u64;
            let extended = now_ms + DRAIN_HORIZON.as_millis() as u64;
            self.deadline = self.deadline.max(extended).min(limit);
        }
        settling == 0 || now_ms >= self.deadline
    }
}

/// Waits until nothing is unfinished and nothing is settling (an unsent outbox row gives a
/// resender its chance), or until the [`Horizon`] gives up; returns what is still unfinished
/// then, and when everything had settled (`None` if it never did). Settling work left at the
/// horizon is not a liveness failure: the at-rest checks judge it.
pub async fn drain(cluster: &Cluster) -> (Vec<Unfinished>, Option<u64>) {
    let mut horizon = Horizon::new(now_ms());
    loop {
        let obs = cluster.observe(Scope::Progress);
        let settling = liveness::settling(&obs).len();
        if horizon.over(now_ms(), settling) {
            return (liveness::unfinished(&obs), (settling == 0).then(now_ms));
        }
        madsim::time::sleep(DRAIN_POLL).await;
        crate::cluster::forget_finished_tasks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 120_000;

    #[test]
    fn a_drain_ends_when_nothing_settles() {
        let mut h = Horizon::new(1_000);
        assert!(!h.over(1_000, 3));
        assert!(h.over(1_050, 0));
    }

    #[test]
    fn work_that_stops_shrinking_gets_the_horizon_from_its_last_low() {
        let mut h = Horizon::new(0);
        assert!(!h.over(0, 5));
        assert!(!h.over(10_000, 2), "a new low at 10 s");
        // No lower than 2 since: stuck, from 10 s on.
        assert!(!h.over(10_000 + H - 1, 2));
        assert!(!h.over(10_000 + H - 1, 3), "more work is not progress");
        assert!(h.over(10_000 + H, 2));
    }

    #[test]
    fn work_that_stays_put_from_the_start_gets_the_horizon() {
        let mut h = Horizon::new(0);
        assert!(!h.over(0, 4));
        assert!(!h.over(H - 1, 4));
        assert!(h.over(H, 4));
    }

    #[test]
    fn a_backlog_that_keeps_draining_is_waited_for_up_to_the_limit() {
        let mut h = Horizon::new(0);
        let limit = DRAIN_LIMIT.as_millis() as u64;
        // One item finishes every 100 s: each a new low, so the drain goes on past 120 s...
        let mut at = 0;
        for left in (1..=20).rev() {
            assert!(!h.over(at, left), "{left} left at {at} ms");
            at += 100_000;
            if at >= limit {
                break;
            }
        }
        // ...but not past the limit.
        assert!(h.over(limit, 11));
    }
}

//! A per-node clock: simulated time plus an offset the harness can move (clock skew).
//!
//! madsim has one global clock; real machines do not agree on the time. Platform code reads
//! time only through its node's [`NodeClock`], so a skewed node stamps its records and judges
//! its own timeouts by its own wrong clock, exactly as a real one would.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Cloneable handle to one node's clock; the harness keeps a clone to skew it.
#[derive(Clone, Debug, Default)]
pub struct NodeClock {
    offset_ms: Arc<AtomicI64>,
}

impl NodeClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Milliseconds since the simulation started, as this node believes (never below zero).
    pub fn now_ms(&self) -> u64 {
        let sim = madsim::time::TimeHandle::current().elapsed().as_millis() as i64;
        (sim + self.offset_ms.load(Ordering::Relaxed)).max(0) as u64
    }

    /// The current skew of this node against simulated time.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Sets the skew (positive: this node runs ahead).
    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }

    /// Moves the clock forward or backward by `delta_ms`.
    pub fn jump_ms(&self, delta_ms: i64) {
        self.offset_ms.fetch_add(delta_ms, Ordering::Relaxed);
    }

    /// Sleeps until this node's clock reads `deadline_ms`. A clock jumped forward wakes early;
    /// one jumped back sleeps longer, which is how skew moves timeouts on one node only.
    pub async fn sleep_until_ms(&self, deadline_ms: u64) {
        loop {
            let now = self.now_ms();
            if now >= deadline_ms {
                return;
            }
            // Re-read the clock at least every 100 ms so a jump is noticed.
            let step = (deadline_ms - now).min(100);
            madsim::time::sleep(Duration::from_millis(step)).await;
        }
    }
}

//! Evidence for invariant 19 (durability), group-commit form: every sync of a node's log that
//! returns has made durable every byte the log held when the call began.
//!
//! The check runs at the moment it happens, inside [`crate::log::DurableLog`]'s `sync` and
//! `sync_unshared`, against the disk's own durable length (not the log's belief about it); a
//! breach is recorded here, in the run's [`crate::probes::Probes`], and the harness turns each
//! into a `durability` violation. The platform never reads this back: it is the harness's
//! evidence, like the platform digest beside it.

use std::sync::{Arc, Mutex};

/// One sync that returned before the bytes it promised were durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncBreach {
    /// The node whose log it is (`role/index`).
    pub node: String,
    /// The log's file on the node's disk.
    pub file: String,
    /// Which call returned: `sync` or `sync_unshared`.
    pub call: &'static str,
    /// The file's length when the call began: what its return promises durable.
    pub promised_len: u64,
    /// The file's durable length when the call returned.
    pub durable_len: u64,
    /// When it returned: simulated ms since the run began.
    pub at_ms: u64,
    /// A loss the node's configuration chose (the broker's async flush acknowledges before
    /// its fsync, unsafe by design): reported as an expected anomaly, not a breach.
    pub by_design: bool,
}

/// The breaches of one run, in the order they happened (a simulation is one thread, so the
/// order is the simulation's, hence deterministic).
#[derive(Debug, Default, Clone)]
pub struct Breaches(Arc<Mutex<Vec<SyncBreach>>>);

impl Breaches {
    /// Records one breach.
    pub fn record(&self, breach: SyncBreach) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(breach);
    }

    /// Every breach recorded since the last call, oldest first; each is handed out once.
    pub fn take(&self) -> Vec<SyncBreach> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// How many breaches wait to be taken.
    pub fn pending(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

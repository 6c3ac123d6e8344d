//! The run's event log and its trace hash.
//!
//! Every observable step (operation invoked and completed, node crashed and restarted, snapshot
//! checked) is recorded with its simulated time. The run's fingerprint, the trace hash, is the
//! FNV-1a hash of the whole log followed by the platform digest of the run's [`Probes`] (every
//! durable record a node appended and every RPC reply a node sent, see
//! `paylab_system::probes`): platform-internal nondeterminism that moves no client's timing
//! still changes it. Two processes running the same seed must print the same hash: that is the
//! determinism guarantee, and a test checks it.

use paylab_system::probes::Probes;
use serde::Serialize;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

/// One event of the run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum TraceEvent {
    Invoke {
        at_ms: u64,
        request: String,
    },
    Complete {
        at_ms: u64,
        request: String,
        outcome: String,
        attempts: u32,
    },
    Crash {
        at_ms: u64,
        node: String,
        lost_bytes: usize,
        torn_bytes: usize,
    },
    Restart {
        at_ms: u64,
        node: String,
    },
    Healed {
        at_ms: u64,
    },
    Fault {
        at_ms: u64,
        fault: String,
    },
    FaultEnd {
        at_ms: u64,
        fault: String,
    },
    Snapshot {
        at_ms: u64,
        vouchers: usize,
        violations: usize,
    },
}

/// A cloneable handle to the run's event log, and to the run's probes whose platform digest
/// its hash covers.
#[derive(Debug, Clone)]
pub struct Trace {
    events: Arc<Mutex<Vec<TraceEvent>>>,
    probes: Probes,
}

impl Trace {
    /// The event log of the run whose platform events `probes` digests.
    pub fn new(probes: &Probes) -> Self {
        Trace {
            events: Arc::default(),
            probes: probes.clone(),
        }
    }

    pub fn record(&self, event: TraceEvent) {
        tracing::debug!(?event, "trace");
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }

    /// FNV-1a over every event in order, then over the platform digest and its event count.
    pub fn hash(&self) -> u64 {
        let mut h = fnv::FnvHasher::default();
        for e in self.events.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            e.hash(&mut h);
        }
        self.probes.platform_digest().hash(&mut h);
        self.probes.platform_events().hash(&mut h);
        h.finish()
    }

    /// The platform digest the hash covers (see the module comment).
    pub fn platform_digest(&self) -> u64 {
        self.probes.platform_digest()
    }

    pub fn len(&self) -> usize {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last `n` events, oldest first (for failure reports).
    pub fn tail(&self, n: usize) -> Vec<TraceEvent> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events[events.len().saturating_sub(n)..].to_vec()
    }
}

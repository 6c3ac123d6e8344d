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
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

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

impl TraceEvent {
    /// Whether the event is a fault starting or ending, a crash, a restart or the heal.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            TraceEvent::Crash { .. }
                | TraceEvent::Restart { .. }
                | TraceEvent::Healed { .. }
                | TraceEvent::Fault { .. }
                | TraceEvent::FaultEnd { .. }
        )
    }
}

/// Serializes a hash as the 16 hex digits the CLI prints.
pub fn serialize_hex<S: serde::Serializer>(hash: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{hash:016x}"))
}

/// How many of the latest events a trace keeps for failure reports; older ones live on only in
/// the running hash, so a trace's memory does not grow with the run.
pub const TRACE_KEPT: usize = 1_000;

/// A cloneable handle to the run's event log, and to the run's probes whose platform digest
/// its hash covers.
#[derive(Debug, Clone)]
pub struct Trace {
    log: Arc<Mutex<Log>>,
    probes: Probes,
}

/// The running FNV-1a state over every event so far, their number, and the latest
/// [`TRACE_KEPT`].
#[derive(Debug)]
struct Log {
    hash: u64,
    len: usize,
    latest: VecDeque<TraceEvent>,
    /// Every fault, crash, restart and heal event of the run (few: a plan bounds them), for
    /// timelines that need the whole run's faults and not only the latest events.
    faults: Vec<TraceEvent>,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            hash: fnv::FnvHasher::default().finish(),
            len: 0,
            latest: VecDeque::new(),
            faults: Vec::new(),
        }
    }
}

impl Trace {
    /// The event log of the run whose platform events `probes` digests.
    pub fn new(probes: &Probes) -> Self {
        Trace {
            log: Arc::default(),
            probes: probes.clone(),
        }
    }

    pub fn record(&self, event: TraceEvent) {
        // `--trace` shows every operation, fault, crash and restart at its default level;
        // the periodic snapshots only at debug.
        match &event {
            TraceEvent::Snapshot { .. } => tracing::debug!(?event, "trace"),
            _ => tracing::info!(?event, "trace"),
        }
        let mut log = self.log();
        let mut h = fnv::FnvHasher::with_key(log.hash);
        event.hash(&mut h);
        log.hash = h.finish();
        log.len += 1;
        if event.is_fault() {
            log.faults.push(event.clone());
        }
        if log.latest.len() == TRACE_KEPT {
            log.latest.pop_front();
        }
        log.latest.push_back(event);
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// FNV-1a over every event in order, then over the platform digest and its event count.
    pub fn hash(&self) -> u64 {
        let mut h = fnv::FnvHasher::with_key(self.log().hash);
        self.probes.platform_digest().hash(&mut h);
        self.probes.platform_events().hash(&mut h);
        h.finish()
    }

    /// The platform digest the hash covers (see the module comment).
    pub fn platform_digest(&self) -> u64 {
        self.probes.platform_digest()
    }

    pub fn len(&self) -> usize {
        self.log().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every fault, crash, restart and heal event of the run, oldest first.
    pub fn fault_events(&self) -> Vec<TraceEvent> {
        self.log().faults.clone()
    }

    /// The last `n` events (at most [`TRACE_KEPT`]), oldest first (for failure reports).
    pub fn tail(&self, n: usize) -> Vec<TraceEvent> {
        let log = self.log();
        let skip = log.latest.len().saturating_sub(n);
        log.latest.iter().skip(skip).cloned().collect()
    }
}

//! The nemesis: executes a fault plan against the cluster during the faulted phase.
//!
//! Each event waits until the workload has completed its `after_ops` operations (or the
//! workload is over), applies its fault, records it in the trace and fires the kind's coverage
//! probe, and undoes it when its duration is over (a crashed node is restarted). Network-wide
//! settings (loss, latency, duplication, delay) are windows: while several windows of a kind
//! overlap, the strongest holds; when the last one closes, the setting returns to normal.

use crate::cluster::Cluster;
use crate::history::History;
use crate::plan::{Fault, FaultEvent, FaultKind, FaultPlan, IN_WINDOW_WAIT_MS};
use crate::trace::{Trace, TraceEvent};
use crate::workload::now_ms;
use paylab_system::buggify::Point;
use paylab_system::node::NodeName;
use paylab_system::probes::names;
use paylab_system::wire::Wire;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a pending event looks at the workload's progress.
const POLL: Duration = Duration::from_millis(5);
/// How often a crash aimed at a window looks whether its node has fired the point.
const WINDOW_POLL: Duration = Duration::from_millis(5);

/// madsim's default datagram latency, restored when latency windows close.
const NORMAL_LATENCY: Range<Duration> = paylab_system::wire::DEFAULT_LATENCY;

/// The network-wide windows currently open, by kind, with their settings.
#[derive(Default)]
struct Windows {
    open: BTreeMap<u64, Fault>,
    next: u64,
}

/// Everything the nemesis needs.
#[derive(Clone)]
pub struct Nemesis {
    pub cluster: Arc<Cluster>,
    pub history: History,
    pub trace: Trace,
    /// Set when every client has finished: pending events then fire at once.
    pub workload_done: Arc<AtomicBool>,
    windows: Arc<Mutex<Windows>>,
}

impl Nemesis {
    pub fn new(
        cluster: Arc<Cluster>,
        history: History,
        trace: Trace,
        workload_done: Arc<AtomicBool>,
    ) -> Self {
        Nemesis {
            cluster,
            history,
            trace,
            workload_done,
            windows: Arc::default(),
        }
    }

    /// Runs every event of the plan; returns once all have been applied and undone.
    pub async fn run(&self, plan: &FaultPlan) {
        let tasks: Vec<_> = plan
            .events
            .iter()
            .cloned()
            .map(|event| {
                let nemesis = self.clone();
                madsim::task::spawn(async move { nemesis.execute(event).await })
            })
            .collect();
        for t in tasks {
            t.await.expect("a fault task finishes");
        }
    }

    /// Waits for the event's moment, applies its fault, and records its end (a crash and a
    /// clock jump have no end of their own: a restart, or nothing, undoes them).
    async fn execute(&self, event: FaultEvent) {
        while (self.history.completed() as u64) < event.after_ops
            && !self.workload_done.load(Ordering::SeqCst)
        {
            madsim::time::sleep(POLL).await;
        }
        let Some(fault) = event.fault.on_nodes(|n| self.cluster.has_node(n)) else {
            // A slot this configuration lacks (the broker of a run without messages): the
            // plan is the same for every strategy and message mode, the run skips it.
            self.cluster.probes.hit(names::FAULT_SKIPPED);
            self.trace.record(TraceEvent::Fault {
                at_ms: now_ms(),
                fault: format!("skipped (no such node in this run): {}", event.fault),
            });
            return;
        };
        self.cluster.probes.hit(fault.kind().probe());
        self.trace.record(TraceEvent::Fault {
            at_ms: now_ms(),
            fault: fault.to_string(),
        });
        if self.apply(&fault).await {
            self.trace.record(TraceEvent::FaultEnd {
                at_ms: now_ms(),
                fault: fault.to_string(),
            });
        }
    }

    /// Applies one fault for its duration and undoes it; returns whether it had a window to
    /// close.
    async fn apply(&self, fault: &Fault) -> bool {
        let cluster = &self.cluster;
        match fault {
            Fault::Crash {
                node,
                down_ms,
                torn_keep,
                in_window,
            } => {
                self.crash_in(node, *in_window, *down_ms, *torn_keep).await;
                return false;
            }
            Fault::Pause { node, for_ms } => {
                cluster.pause(node);
                sleep_ms(*for_ms).await;
                cluster.resume(node);
            }
            Fault::Partition {
                side,
                other,
                for_ms,
            } => {
                let cut = |on: bool| {
                    for a in side {
                        for b in other {
                            cluster.set_link(a, b, on);
                            cluster.set_link(b, a, on);
                        }
                    }
                };
                cut(true);
                sleep_ms(*for_ms).await;
                cut(false);
            }
            Fault::OneWay { from, to, for_ms } => {
                cluster.set_link(from, to, true);
                sleep_ms(*for_ms).await;
                cluster.set_link(from, to, false);
            }
            Fault::ClockJump { node, by_ms } => {
                cluster.jump_clock(node, *by_ms);
                return false;
            }
            Fault::SlowDisk {
                node,
                fsync_ms,
                for_ms,
            } => {
                cluster.set_slow_disk(node, Some(Duration::from_millis(*fsync_ms)));
                sleep_ms(*for_ms).await;
                cluster.set_slow_disk(node, None);
            }
            Fault::Buggify {
                point,
                for_ms,
                chance,
            } => {
                cluster.buggify.open(*point, *chance);
                sleep_ms(*for_ms).await;
                cluster.buggify.close(*point);
            }
            window @ (Fault::Loss { for_ms, .. }
            | Fault::Latency { for_ms, .. }
            | Fault::Duplicate { for_ms, .. }
            | Fault::Delay { for_ms, .. }) => {
                let id = self.open_window(window.clone());
                sleep_ms(*for_ms).await;
                self.close_window(id);
            }
        }
        true
    }

    /// Crashes `node`, once it fires `in_window` if the crash is aimed at a window.
    async fn crash_in(
        &self,
        node: &NodeName,
        in_window: Option<Point>,
        down_ms: u64,
        torn_keep: Option<f64>,
    ) {
        if let Some(point) = in_window {
            self.await_window(node, point).await;
        }
        self.crash(node, down_ms, torn_keep).await;
    }

    /// Waits until `node` fires buggify point `point` (work is then paused inside the
    /// window), or [`IN_WINDOW_WAIT_MS`] has passed.
    async fn await_window(&self, node: &NodeName, point: Point) {
        let name = node.to_string();
        let buggify = &self.cluster.buggify;
        let before = buggify.fired(point, &name);
        let mut waited = 0;
        while buggify.fired(point, &name) == before && waited < IN_WINDOW_WAIT_MS {
            madsim::time::sleep(WINDOW_POLL).await;
            waited += WINDOW_POLL.as_millis() as u64;
        }
    }

    /// Crashes a node (its power cut, so unsynced writes may be lost or torn) and restarts it
    /// `down_ms` later.
    async fn crash(&self, node: &NodeName, down_ms: u64, torn_keep: Option<f64>) {
        let cluster = &self.cluster;
        let lost = cluster.crash(node, torn_keep);
        if lost.lost_bytes > 0 {
            cluster.probes.hit(names::POWER_LOSS_DROPPED);
        }
        if lost.torn_bytes > 0 {
            cluster.probes.hit(names::TORN_TAIL);
        }
        self.trace.record(TraceEvent::Crash {
            at_ms: now_ms(),
            node: node.to_string(),
            lost_bytes: lost.lost_bytes,
            torn_bytes: lost.torn_bytes,
        });
        sleep_ms(down_ms).await;
        cluster.restart(node);
        self.trace.record(TraceEvent::Restart {
            at_ms: now_ms(),
            node: node.to_string(),
        });
    }

    fn open_window(&self, fault: Fault) -> u64 {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let id = w.next;
        w.next += 1;
        w.open.insert(id, fault);
        self.apply_windows(&w);
        id
    }

    fn close_window(&self, id: u64) {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        w.open.remove(&id);
        self.apply_windows(&w);
    }

    /// Sets every network-wide knob to the strongest open window of its kind, or to normal.
    fn apply_windows(&self, w: &Windows) {
        let strongest = |kind: FaultKind| {
            w.open
                .values()
                .filter(move |f| f.kind() == kind)
                .cloned()
                .collect::<Vec<_>>()
        };
        let loss = strongest(FaultKind::Loss)
            .iter()
            .filter_map(|f| match f {
                Fault::Loss { rate, .. } => Some(*rate),
                _ => None,
            })
            .fold(0.0, f64::max);
        let latency = strongest(FaultKind::Latency)
            .iter()
            .filter_map(|f| match f {
                Fault::Latency { min_ms, max_ms, .. } => Some((*min_ms, *max_ms)),
                _ => None,
            })
            .max_by_key(|(_, max)| *max)
            .map_or(NORMAL_LATENCY, |(min, max)| {
                Duration::from_millis(min)..Duration::from_millis(max.max(min + 1))
            });
        Wire::current().set_conditions(loss, latency);
        let faults = &self.cluster.faults;
        let duplicate = strongest(FaultKind::Duplicate)
            .iter()
            .filter_map(|f| match f {
                Fault::Duplicate { rate, .. } => Some(*rate),
                _ => None,
            })
            .fold(0.0, f64::max);
        faults.set_duplicate_rate(duplicate);
        match strongest(FaultKind::Delay)
            .iter()
            .filter_map(|f| match f {
                Fault::Delay {
                    rate,
                    min_ms,
                    max_ms,
                    ..
                } => Some((*rate, *min_ms, *max_ms)),
                _ => None,
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
        {
            Some((rate, min, max)) => faults.set_delay(
                rate,
                Duration::from_millis(min)..Duration::from_millis(max.max(min + 1)),
            ),
            None => faults.set_delay(0.0, Duration::ZERO..Duration::ZERO),
        }
    }

    /// Ends the faulted phase: every window closed, every network knob normal.
    pub fn heal(&self) {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        w.open.clear();
        self.apply_windows(&w);
        self.cluster.faults.heal();
        self.cluster.heal();
    }
}

async fn sleep_ms(ms: u64) {
    madsim::time::sleep(Duration::from_millis(ms)).await;
}

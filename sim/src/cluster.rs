//! The simulated platform of a run: one node per entry of the service registry
//! ([`crate::services`]), with the harness-owned handles (disks, clocks) that survive crashes,
//! node lifecycles (crash, restart, pause) and god's-eye reads of state. It knows no role by
//! name: everything kind-specific is behind [`ServiceKind`] and [`NodeService`].

use crate::config::RunConfig;
use crate::services::{self, LiveService, NodeService, RunContext, Scope};
use madsim::runtime::{Handle, NodeBuilder, NodeHandle};
use paylab_invariants::world::World;
use paylab_invariants::{Delta, Observation};
use paylab_system::buggify::Buggify;
use paylab_system::bugs::Bugs;
use paylab_system::clock::NodeClock;
use paylab_system::disk::{Disk, PowerLossReport};
use paylab_system::node::{stream_seed, NodeEnv, NodeName};
use paylab_system::probes::Probes;
use paylab_system::transport::NetFaults;
use paylab_system::wire::Wire;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// The address functions, where the workload and the bench have always found them.
pub use crate::services::broker::addr_of as broker_addr;
pub use crate::services::client_addr;
pub use crate::services::ledger::addr_of as ledger_addr;
pub use crate::services::payment::addr_of as payment_addr;
pub use crate::services::topology;
pub use crate::services::trade::addr_of as trade_addr;

type Live = Arc<Mutex<Option<Arc<dyn LiveService>>>>;

/// One serving node as the harness sees it.
struct Slot {
    node: NodeHandle,
    env: NodeEnv,
    service: Arc<dyn NodeService>,
    /// `None` while the node is down.
    live: Live,
    /// How many times the node has booted (its incarnation while it is up).
    boots: Arc<AtomicU64>,
}

/// One serving node as the capture ([`crate::capture`]) reads it, at this instant.
pub struct NodeRead<'a> {
    slot: &'a Slot,
    live: Option<Arc<dyn LiveService>>,
}

impl NodeRead<'_> {
    pub fn name(&self) -> &NodeName {
        &self.slot.env.name
    }

    /// The node's incarnation (a new one after every boot), `None` while it is down.
    pub fn incarnation(&self) -> Option<u64> {
        self.live
            .as_ref()
            .map(|_| self.slot.boots.load(Ordering::SeqCst))
    }

    /// Adds what changed on the running node since its last read (nothing if it is down).
    pub fn changes(&self, out: &mut Delta) {
        if let Some(live) = &self.live {
            live.changes(&self.slot.env, out);
        }
    }

    /// Reads the node whole (a down node through its durable log) and adds what turns the
    /// checker's `world` into it; the next [`NodeRead::changes`] continues from this read.
    pub fn resync(&self, world: &World, out: &mut Delta) {
        let mut whole = Observation::default();
        match &self.live {
            Some(live) => live.resync(&self.slot.env, &mut whole),
            None => self
                .slot
                .service
                .observe_durable(&self.slot.env, Scope::Instant, &mut whole),
        }
        self.slot.service.diff(&self.slot.env, &whole, world, out);
    }
}

/// The whole simulated platform of a run.
pub struct Cluster {
    handle: Handle,
    slots: Vec<Slot>,
    pub faults: NetFaults,
    pub probes: Probes,
    pub bugs: Bugs,
    pub buggify: Buggify,
    /// Whether the run has a message layer.
    messages: bool,
}

impl Cluster {
    /// Creates every serving node; must run inside the simulation.
    pub fn start(config: &RunConfig, probes: Probes, faults: NetFaults) -> Cluster {
        let handle = Handle::current();
        let bugs = config.bug.map_or(Bugs::none(), Bugs::planted);
        let buggify = Buggify::default();
        let topology = services::topology(config);
        let run = RunContext {
            config,
            topology: &topology,
        };
        let slots = services::nodes(config)
            .into_iter()
            .map(|(name, kind)| {
                let env = NodeEnv {
                    addr: kind.addr(name.index),
                    name: name.clone(),
                    disk: Disk::new(),
                    clock: NodeClock::new(),
                    faults: faults.clone(),
                    probes: probes.clone(),
                    bugs,
                    buggify: buggify.for_node(
                        &name.to_string(),
                        stream_seed(config.seed, &name.to_string(), "buggify", 0),
                    ),
                    seed: config.seed,
                    serve_loops: config.serve_loops(),
                };
                let service = kind.node(&run, name.index);
                let live: Live = Arc::default();
                let boots = Arc::new(AtomicU64::new(0));
                let node = spawn(&handle, env.clone(), service.clone(), (&live, &boots));
                Slot {
                    node,
                    env,
                    service,
                    live,
                    boots,
                }
            })
            .collect();
        Cluster {
            handle,
            slots,
            faults,
            probes,
            bugs,
            buggify,
            messages: config.messages.is_some(),
        }
    }

    /// Names of every serving node, in start order.
    pub fn node_names(&self) -> Vec<NodeName> {
        self.slots.iter().map(|s| s.env.name.clone()).collect()
    }

    /// Waits until every node has recovered and is serving.
    pub async fn wait_ready(&self) {
        while self.slots.iter().any(|s| lock(&s.live).is_none()) {
            madsim::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn slot(&self, name: &NodeName) -> &Slot {
        self.slots
            .iter()
            .find(|s| &s.env.name == name)
            .unwrap_or_else(|| panic!("{name} is not a node of this run"))
    }

    /// Whether the named node exists.
    pub fn has_node(&self, name: &NodeName) -> bool {
        self.slots.iter().any(|s| &s.env.name == name)
    }

    /// Kills a node and cuts its power: unsynced writes are lost, maybe leaving a torn tail.
    pub fn crash(&self, name: &NodeName, torn_keep: Option<f64>) -> PowerLossReport {
        let slot = self.slot(name);
        self.kill(slot);
        *lock(&slot.live) = None;
        let report = slot.env.disk.power_loss(torn_keep);
        slot.service.on_crash(&report, &self.probes);
        report
    }

    /// Restarts a crashed node; its `init` recovers from the disk.
    pub fn restart(&self, name: &NodeName) {
        let slot = self.slot(name);
        // Kill first even if already down: a restart of a live node would keep its ports bound.
        self.kill(slot);
        self.handle.restart(slot.node.id());
    }

    /// Freezes every task of a node (it keeps its state and its ports).
    pub fn pause(&self, name: &NodeName) {
        self.handle.pause(self.slot(name).node.id());
    }

    pub fn resume(&self, name: &NodeName) {
        self.handle.resume(self.slot(name).node.id());
    }

    /// Cuts (or restores) the link from `from` to `to`, one way.
    pub fn set_link(&self, from: &NodeName, to: &NodeName, cut: bool) {
        let (from, to) = (self.slot(from).env.addr.ip(), self.slot(to).env.addr.ip());
        Wire::current().set_link(from, to, cut);
    }

    /// Moves a node's clock.
    pub fn jump_clock(&self, name: &NodeName, by_ms: i64) {
        self.slot(name).env.clock.jump_ms(by_ms);
    }

    /// Makes a node's disk slow (every fsync takes `latency`) or normal again.
    pub fn set_slow_disk(&self, name: &NodeName, latency: Option<Duration>) {
        self.slot(name).env.disk.set_slow_fsync(latency);
    }

    /// Removes every fault the nemesis can leave behind: paused nodes resume, every link is
    /// restored, clocks and disks are normal again, every buggify point is off. Crashed nodes
    /// are restarted by their own crash's schedule.
    pub fn heal(&self) {
        let wire = Wire::current();
        for a in &self.slots {
            self.handle.resume(a.node.id());
            a.env.clock.set_offset_ms(0);
            a.env.disk.set_slow_fsync(None);
            for b in &self.slots {
                wire.set_link(a.env.addr.ip(), b.env.addr.ip(), false);
            }
        }
        self.buggify.clear();
    }

    /// Reads every node at this instant into an observation (without the history, which the
    /// harness keeps). A node that is down is read from its durable logs, exactly what it will
    /// recover when it restarts, except for [`Scope::Progress`], where being down is itself
    /// what liveness reports.
    pub fn observe(&self, scope: Scope) -> Observation {
        self.read_each(scope, |_| {})
    }

    /// The final read: [`Cluster::observe`], letting each node go as soon as it is read (killed,
    /// so that nothing runs on it again, and its disk discarded), so that the run's last
    /// observation and every node's disk are never in memory at once. Every node is still
    /// read at this one instant: nothing runs between two reads. The executor drops a killed
    /// node's tasks, and with them its live state, when it next runs.
    pub fn observe_releasing(&self, scope: Scope) -> Observation {
        self.read_each(scope, |slot| {
            self.kill(slot);
            *lock(&slot.live) = None;
            slot.env.disk.discard();
        })
    }

    /// Reads every node in start order, calling `after` on each once it is read.
    fn read_each(&self, scope: Scope, after: impl Fn(&Slot)) -> Observation {
        let mut obs = Observation::default();
        for slot in &self.slots {
            let live = lock(&slot.live).clone();
            match &live {
                Some(service) => service.observe(&slot.env, scope, &mut obs),
                None if scope == Scope::Progress => {}
                None => slot.service.observe_durable(&slot.env, scope, &mut obs),
            }
            if scope == Scope::Rest {
                slot.service.observe_strategy(&slot.env, &mut obs);
            }
            if live.is_none() && scope.progress() {
                obs.progress.down.push(slot.env.name.to_string());
            }
            drop(live);
            after(slot);
        }
        obs.messages.enabled = self.messages && scope.messages();
        obs
    }

    /// Every serving node, in start order, as the capture reads it at this instant.
    pub fn reads(&self) -> Vec<NodeRead<'_>> {
        self.slots
            .iter()
            .map(|slot| NodeRead {
                slot,
                live: lock(&slot.live).clone(),
            })
            .collect()
    }

    fn kill(&self, slot: &Slot) {
        kill_node(&self.handle, &slot.node, slot.env.addr.ip());
    }
}

/// A new madsim node at `ip`, made known to the run's wire first: datagrams to it reach the
/// link even before it binds, as madsim resolves them. Every node of a run is made here.
pub fn node_at(handle: &Handle, ip: IpAddr) -> NodeBuilder<'_> {
    Wire::current().add_node(ip);
    handle.create_node().ip(ip)
}

/// Kills a node's tasks and closes its sockets on the wire (what madsim's kill does to its
/// own network). Every kill of a run is made here.
pub fn kill_node(handle: &Handle, node: &NodeHandle, ip: IpAddr) {
    handle.kill(node.id());
    Wire::current().reset(ip);
}

/// Lets madsim free what it keeps of every task that has finished. Each node lists every task
/// ever spawned on it (for a kill to wake them), and a finished task's entry keeps its
/// allocation alive until the list is pruned, which counting the tasks does. Without this a
/// run's memory grows with every request ever served. The harness prunes at every periodic
/// snapshot, at every poll of the drain and before the final read. Changes nothing a node
/// sees: the list keeps its order, and a kill wakes the same live tasks.
pub fn forget_finished_tasks() {
    let _ = madsim::runtime::Handle::current().metrics().num_tasks();
}

/// Locks `m`; a lock a panic poisoned still holds consistent data (no thread panics while
/// holding one inside a simulation), so it is recovered rather than cascaded.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn spawn(
    handle: &Handle,
    env: NodeEnv,
    service: Arc<dyn NodeService>,
    (live, boots): (&Live, &Arc<AtomicU64>),
) -> NodeHandle {
    let ip = env.addr.ip();
    let (live, boots) = (live.clone(), boots.clone());
    node_at(handle, ip)
        .name(env.name.clone())
        .init(move || {
            let (env, service, live) = (env.clone(), service.clone(), live.clone());
            let boots = boots.clone();
            async move {
                let running = service.start(&env).await;
                boots.fetch_add(1, Ordering::SeqCst);
                *lock(&live) = Some(running);
                // A node whose init task returns is considered exited by madsim, which would
                // stop its serving tasks: the init task lives as long as the node.
                std::future::pending::<()>().await
            }
        })
        .build()
}

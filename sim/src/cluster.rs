//! The simulated topology: ledger nodes (one per shard) and client nodes, with the
//! harness-owned handles (disks, clocks) that survive crashes, and god's-eye reads of state.

use crate::config::RunConfig;
use crate::observe;
use madsim::runtime::{Handle, NodeHandle};
use paylab_invariants::ShardSnapshot;
use paylab_system::bugs::Bugs;
use paylab_system::clock::NodeClock;
use paylab_system::disk::{Disk, PowerLossReport};
use paylab_system::ledger::{LedgerConfig, LedgerNode};
use paylab_system::node::NodeEnv;
use paylab_system::probes::Probes;
use paylab_system::transport::NetFaults;
use paylab_system::ShardId;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LEDGER_PORT: u16 = 7000;
const CLIENT_PORT: u16 = 7100;

/// The address of ledger shard `shard`.
pub fn ledger_addr(shard: u32) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1 + shard as u8)),
        LEDGER_PORT,
    )
}

/// The address of client `client`.
pub fn client_addr(client: u32) -> SocketAddr {
    let ip = Ipv4Addr::new(10, 2, (client / 200) as u8, 1 + (client % 200) as u8);
    SocketAddr::new(IpAddr::V4(ip), CLIENT_PORT)
}

type Live = Arc<Mutex<Option<LedgerNode>>>;

/// One ledger node as the harness sees it.
struct LedgerSlot {
    node: NodeHandle,
    env: NodeEnv,
    config: LedgerConfig,
    /// The running service, published by the node's `init`; `None` while the node is down.
    live: Live,
}

/// The whole simulated platform of a run.
pub struct Cluster {
    handle: Handle,
    ledgers: Vec<LedgerSlot>,
    pub faults: NetFaults,
    pub probes: Probes,
    pub bugs: Bugs,
}

impl Cluster {
    /// Creates every ledger node; must run inside the simulation.
    pub fn start(config: &RunConfig, probes: Probes, faults: NetFaults) -> Cluster {
        let handle = Handle::current();
        let bugs = config.bug.map_or(Bugs::none(), Bugs::planted);
        let ledgers = (0..config.shards)
            .map(|s| {
                let env = NodeEnv {
                    name: format!("ledger-{s}"),
                    addr: ledger_addr(s),
                    disk: Disk::new(),
                    clock: NodeClock::new(),
                    faults: faults.clone(),
                    probes: probes.clone(),
                    bugs,
                };
                let ledger_config = LedgerConfig {
                    shard: ShardId(s),
                    shards: config.shards,
                    fsync_latency: Duration::from_millis(config.fsync_latency_ms),
                };
                let live: Live = Arc::default();
                let node = spawn_ledger(&handle, env.clone(), ledger_config, live.clone());
                LedgerSlot {
                    node,
                    env,
                    config: ledger_config,
                    live,
                }
            })
            .collect();
        Cluster {
            handle,
            ledgers,
            faults,
            probes,
            bugs,
        }
    }

    /// Waits until every ledger node has recovered and is serving.
    pub async fn wait_ready(&self) {
        while self.ledgers.iter().any(|l| lock(&l.live).is_none()) {
            madsim::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn slot(&self, name: &str) -> Option<&LedgerSlot> {
        self.ledgers.iter().find(|l| l.env.name == name)
    }

    /// Whether the named node exists.
    pub fn has_node(&self, name: &str) -> bool {
        self.slot(name).is_some()
    }

    /// Kills a node and cuts its power: unsynced writes are lost, maybe leaving a torn tail.
    pub fn crash(&self, name: &str, torn_keep: Option<f64>) -> PowerLossReport {
        let slot = self.slot(name).expect("crash of a known node");
        self.handle.kill(slot.node.id());
        *lock(&slot.live) = None;
        slot.env.disk.power_loss(torn_keep)
    }

    /// Restarts a crashed node; its `init` recovers from the disk.
    pub fn restart(&self, name: &str) {
        let slot = self.slot(name).expect("restart of a known node");
        // Kill first even if already down: a restart of a live node would keep its ports bound.
        self.handle.kill(slot.node.id());
        self.handle.restart(slot.node.id());
    }

    /// Reads every shard at this instant. A shard whose node is down is read from its durable
    /// log: exactly what it will recover when it restarts.
    pub fn snapshot(&self) -> Vec<ShardSnapshot> {
        self.ledgers
            .iter()
            .map(|l| match lock(&l.live).as_ref() {
                Some(node) => node.read(observe::shard_snapshot),
                None => observe::shard_snapshot(&LedgerNode::durable_state(&l.env.disk, l.config)),
            })
            .collect()
    }

    /// Kills every node, so no task outlives the runtime.
    pub fn kill_all(&self) {
        for l in &self.ledgers {
            self.handle.kill(l.node.id());
            *lock(&l.live) = None;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn spawn_ledger(handle: &Handle, env: NodeEnv, config: LedgerConfig, live: Live) -> NodeHandle {
    let name = env.name.clone();
    let ip = env.addr.ip();
    handle
        .create_node()
        .name(name)
        .ip(ip)
        .init(move || {
            let (env, live) = (env.clone(), live.clone());
            async move {
                let node = LedgerNode::start(&env, config)
                    .await
                    .expect("a restarted node can bind its address");
                *lock(&live) = Some(node);
                // A node whose init task returns is considered exited by madsim, which would
                // stop its serving tasks: the init task lives as long as the node.
                std::future::pending::<()>().await
            }
        })
        .build()
}

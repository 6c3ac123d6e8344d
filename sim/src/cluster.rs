//! The simulated topology: ledger shards, trade shards, payment nodes and clients, with the
//! harness-owned handles (disks, clocks) that survive crashes, and god's-eye reads of state.

use crate::config::RunConfig;
use crate::observe;
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use paylab_invariants::{ActivityState, MessageSnapshot, ShardSnapshot, TradeState};
use paylab_system::broker::{BrokerConfig, BrokerNode, BrokerNodeConfig, CheckPolicy, RetryPolicy};
use paylab_system::buggify::Buggify;
use paylab_system::bugs::Bugs;
use paylab_system::clock::NodeClock;
use paylab_system::disk::{Disk, PowerLossReport};
use paylab_system::ledger::{LedgerConfig, LedgerNode};
use paylab_system::node::NodeEnv;
use paylab_system::notify::{
    MerchantConfig, MerchantEndpoint, NotifyConfig, NotifyNode, SIMULATION_NOTIFY_SCHEDULE_MS,
};
use paylab_system::payment::{PaymentConfig, PaymentNode};
use paylab_system::probes::{names, Probes};
use paylab_system::replica::{ConsumerRecordsCore, MerchantQueryCore, ReplicaConfig, ReplicaNode};
use paylab_system::topology::Topology;
use paylab_system::trade::events::producer_group;
use paylab_system::trade::{
    TradeConfig, TradeCore, TradeMessaging, TradeNode, TRADE_EVENTS_QUEUES, TRADE_EVENTS_TOPIC,
};
use paylab_system::transport::NetFaults;
use paylab_system::ShardId;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn addr(net: u8, index: u32, port: u16) -> SocketAddr {
    let ip = Ipv4Addr::new(10, net, (index / 200) as u8, 1 + (index % 200) as u8);
    SocketAddr::new(IpAddr::V4(ip), port)
}

/// The address of ledger shard `shard`.
pub fn ledger_addr(shard: u32) -> SocketAddr {
    addr(1, shard, 7000)
}

/// The address of client `client`.
pub fn client_addr(client: u32) -> SocketAddr {
    addr(2, client, 7100)
}

/// The address of trade shard `shard`.
pub fn trade_addr(shard: u32) -> SocketAddr {
    addr(3, shard, 7200)
}

/// The address of payment node `index`.
pub fn payment_addr(index: u32) -> SocketAddr {
    addr(4, index, 7300)
}

/// The address of the broker.
pub fn broker_addr() -> SocketAddr {
    addr(5, 0, 7400)
}

/// The address of replica `index` (0: consumer records, 1: merchant query).
pub fn replica_addr(index: u32) -> SocketAddr {
    addr(6, index, 7500)
}

/// The address of the notification node.
pub fn notify_addr() -> SocketAddr {
    addr(7, 0, 7600)
}

/// The address of the simulated merchant endpoint.
pub fn merchant_addr() -> SocketAddr {
    addr(8, 0, 7700)
}

/// The broker's check-back policy in a run: first check after 600 ms, then every second, 15
/// checks (RocketMQ's count, at simulation speed), so an undecided half outlives any single
/// fault of a plan before it is discarded.
pub fn run_check_policy() -> CheckPolicy {
    CheckPolicy {
        first_ms: 600,
        interval_ms: 1_000,
        max_checks: 15,
    }
}

/// The address book of a run's serving nodes.
pub fn topology(config: &RunConfig) -> Topology {
    Topology {
        ledgers: (0..config.shards).map(ledger_addr).collect(),
        trades: (0..config.trade_shards).map(trade_addr).collect(),
        payments: (0..config.payment_nodes).map(payment_addr).collect(),
    }
}

/// What a node runs.
#[derive(Clone)]
enum Role {
    Ledger(LedgerConfig),
    Trade(TradeConfig),
    Payment(PaymentConfig, Topology),
    Broker(BrokerNodeConfig),
    ConsumerRecords(ReplicaConfig),
    MerchantQuery(ReplicaConfig),
    Notify(NotifyConfig),
    Merchant(MerchantConfig, Topology),
}

/// A running service, published by its node's `init`.
#[derive(Clone)]
enum Service {
    Ledger(LedgerNode),
    Trade(TradeNode),
    Payment(PaymentNode),
    Broker(BrokerNode),
    ConsumerRecords(ReplicaNode<ConsumerRecordsCore>),
    MerchantQuery(ReplicaNode<MerchantQueryCore>),
    Notify(NotifyNode),
    Merchant(MerchantEndpoint),
}

type Live = Arc<Mutex<Option<Service>>>;

/// One serving node as the harness sees it.
struct Slot {
    node: NodeHandle,
    env: NodeEnv,
    role: Role,
    /// `None` while the node is down.
    live: Live,
}

/// Everything one god's-eye read returns.
pub struct Snapshot {
    pub shards: Vec<ShardSnapshot>,
    pub trades: Vec<TradeState>,
    pub activities: Vec<ActivityState>,
    pub messages: MessageSnapshot,
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
        let fsync_latency = Duration::from_millis(config.fsync_latency_ms);
        let topology = topology(config);
        let mut roles: Vec<(String, SocketAddr, Role)> = Vec::new();
        for s in 0..config.shards {
            let role = Role::Ledger(LedgerConfig {
                shard: ShardId(s),
                shards: config.shards,
                fsync_latency,
            });
            roles.push((format!("ledger-{s}"), ledger_addr(s), role));
        }
        for s in 0..config.trade_shards {
            let role = Role::Trade(TradeConfig {
                shard: paylab_system::TradeShardId(s),
                fsync_latency,
                close_after_ms: config.close_after_ms,
                sweep_interval: Duration::from_millis(100),
                messages: config.messages.map(|mode| TradeMessaging {
                    mode,
                    broker: broker_addr(),
                }),
            });
            roles.push((format!("trade-{s}"), trade_addr(s), role));
        }
        for p in 0..config.payment_nodes {
            let payment = PaymentConfig {
                index: p,
                fsync_latency,
                strategy: config.strategy,
            };
            let role = Role::Payment(payment, topology.clone());
            roles.push((format!("payment-{p}"), payment_addr(p), role));
        }
        if config.messages.is_some() {
            roles.extend(message_roles(config, &topology, fsync_latency));
        }
        let slots = roles
            .into_iter()
            .map(|(name, addr, role)| {
                let env = NodeEnv {
                    name,
                    addr,
                    disk: Disk::new(),
                    clock: NodeClock::new(),
                    faults: faults.clone(),
                    probes: probes.clone(),
                    bugs,
                    buggify: buggify.clone(),
                    seed: config.seed,
                };
                let live: Live = Arc::default();
                let node = spawn(&handle, env.clone(), role.clone(), live.clone());
                Slot {
                    node,
                    env,
                    role,
                    live,
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
    pub fn node_names(&self) -> Vec<String> {
        self.slots.iter().map(|s| s.env.name.clone()).collect()
    }

    /// Waits until every node has recovered and is serving.
    pub async fn wait_ready(&self) {
        while self.slots.iter().any(|s| lock(&s.live).is_none()) {
            madsim::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn slot(&self, name: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.env.name == name)
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
        let report = slot.env.disk.power_loss(torn_keep);
        if matches!(slot.role, Role::Broker(_)) && report.lost_bytes > 0 {
            self.probes.hit(names::BROKER_LOST_UNSYNCED);
        }
        report
    }

    /// Restarts a crashed node; its `init` recovers from the disk.
    pub fn restart(&self, name: &str) {
        let slot = self.slot(name).expect("restart of a known node");
        // Kill first even if already down: a restart of a live node would keep its ports bound.
        self.handle.kill(slot.node.id());
        self.handle.restart(slot.node.id());
    }

    /// Freezes every task of a node (it keeps its state and its ports).
    pub fn pause(&self, name: &str) {
        let slot = self.slot(name).expect("pause of a known node");
        self.handle.pause(slot.node.id());
    }

    pub fn resume(&self, name: &str) {
        let slot = self.slot(name).expect("resume of a known node");
        self.handle.resume(slot.node.id());
    }

    /// Cuts (or restores) the link from `from` to `to`, one way.
    pub fn set_link(&self, from: &str, to: &str, cut: bool) {
        let (a, b) = (
            self.slot(from).expect("a known node").node.id(),
            self.slot(to).expect("a known node").node.id(),
        );
        let net = NetSim::current();
        if cut {
            net.clog_link(a, b);
        } else {
            net.unclog_link(a, b);
        }
    }

    /// Moves a node's clock.
    pub fn jump_clock(&self, name: &str, by_ms: i64) {
        self.slot(name)
            .expect("a known node")
            .env
            .clock
            .jump_ms(by_ms);
    }

    /// Makes a node's disk slow (every fsync takes `latency`) or normal again.
    pub fn set_slow_disk(&self, name: &str, latency: Option<Duration>) {
        let slot = self.slot(name).expect("a known node");
        slot.env.disk.set_slow_fsync(latency);
    }

    /// Removes every fault the nemesis can leave behind: paused nodes resume, every link is
    /// restored, clocks and disks are normal again, every buggify point is off. Crashed nodes
    /// are restarted by their own crash's schedule.
    pub fn heal(&self) {
        let net = NetSim::current();
        for a in &self.slots {
            self.handle.resume(a.node.id());
            a.env.clock.set_offset_ms(0);
            a.env.disk.set_slow_fsync(None);
            for b in &self.slots {
                net.unclog_link(a.node.id(), b.node.id());
            }
        }
        self.buggify.clear();
    }

    /// Reads every node at this instant. A node that is down is read from its durable logs:
    /// exactly what it will recover when it restarts.
    ///
    /// The message layer is read only when `with_messages` (its checkers hold only at rest, and
    /// reading it decodes every published event).
    pub fn snapshot(&self, with_messages: bool) -> Snapshot {
        let mut snap = Snapshot {
            shards: Vec::new(),
            trades: Vec::new(),
            activities: Vec::new(),
            messages: MessageSnapshot::default(),
        };
        for slot in &self.slots {
            let live = lock(&slot.live).clone();
            let message_node = !matches!(
                slot.role,
                Role::Ledger(_) | Role::Trade(_) | Role::Payment(..)
            );
            if message_node && !with_messages {
                continue;
            }
            match (&slot.role, live) {
                (Role::Ledger(_), Some(Service::Ledger(node))) => {
                    snap.shards.push(node.read(observe::shard_snapshot))
                }
                (Role::Ledger(config), _) => {
                    snap.shards
                        .push(observe::shard_snapshot(&LedgerNode::durable_state(
                            &slot.env, *config,
                        )))
                }
                // A trade shard's trades and, with messages, the events it committed: one
                // read (a down node's log is replayed once).
                (Role::Trade(config), live) => {
                    let mut read = |core: &TradeCore| {
                        snap.trades.extend(observe::trades(core));
                        if with_messages {
                            observe::trade_events(core, &mut snap.messages);
                        }
                    };
                    match live {
                        Some(Service::Trade(node)) => node.read(read),
                        _ => read(&TradeNode::durable_state(&slot.env, *config)),
                    }
                }
                (Role::Payment(..), Some(Service::Payment(node))) => snap
                    .activities
                    .extend(observe::activities(&slot.env.name, &node.view())),
                (Role::Payment(config, _), _) => snap.activities.extend(observe::activities(
                    &slot.env.name,
                    &PaymentNode::durable_view(&slot.env, *config),
                )),
                (Role::Broker(_), Some(Service::Broker(node))) => {
                    node.read(|core| observe::broker(core, &mut snap.messages))
                }
                (Role::Broker(config), _) => observe::broker(
                    &BrokerNode::durable_state(&slot.env, config),
                    &mut snap.messages,
                ),
                (Role::ConsumerRecords(_), Some(Service::ConsumerRecords(node))) => {
                    node.read(|core| observe::consumer_records(core, &mut snap.messages))
                }
                (Role::ConsumerRecords(config), _) => observe::consumer_records(
                    &ReplicaNode::<ConsumerRecordsCore>::durable_state(&slot.env, *config),
                    &mut snap.messages,
                ),
                (Role::MerchantQuery(_), Some(Service::MerchantQuery(node))) => {
                    node.read(|core| observe::merchant_query(core, &mut snap.messages))
                }
                (Role::MerchantQuery(config), _) => observe::merchant_query(
                    &ReplicaNode::<MerchantQueryCore>::durable_state(&slot.env, *config),
                    &mut snap.messages,
                ),
                (Role::Notify(_), Some(Service::Notify(node))) => {
                    node.read(|core| observe::notifications(core, &mut snap.messages))
                }
                (Role::Notify(config), _) => observe::notifications(
                    &NotifyNode::durable_state(&slot.env, *config),
                    &mut snap.messages,
                ),
                (Role::Merchant(..), Some(Service::Merchant(node))) => {
                    observe::callbacks(&node.received(), &mut snap.messages)
                }
                (Role::Merchant(..), _) => {}
            }
        }
        snap.messages.enabled = self.messages && with_messages;
        snap
    }

    /// What is still unfinished on the running trade and payment nodes (empty at rest), and
    /// every node that is down.
    pub fn pending(&self) -> Vec<String> {
        let mut out = Vec::new();
        for slot in &self.slots {
            let name = &slot.env.name;
            match lock(&slot.live).clone() {
                None => out.push(format!("{name} is down")),
                Some(Service::Ledger(_)) => {}
                Some(Service::Trade(node)) => {
                    out.extend(node.pending().into_iter().map(|p| format!("{name}: {p}")))
                }
                Some(Service::Payment(node)) => {
                    out.extend(node.pending().into_iter().map(|p| format!("{name}: {p}")))
                }
                Some(Service::Broker(node)) => {
                    out.extend(node.pending().into_iter().map(|p| format!("{name}: {p}")))
                }
                Some(Service::Notify(node)) => out.extend(
                    node.read(|core| core.pending())
                        .into_iter()
                        .map(|p| format!("{name}: {p}")),
                ),
                Some(
                    Service::ConsumerRecords(_) | Service::MerchantQuery(_) | Service::Merchant(_),
                ) => {}
            }
        }
        out
    }

    /// Kills every node, so no task outlives the runtime.
    pub fn kill_all(&self) {
        for s in &self.slots {
            self.handle.kill(s.node.id());
            *lock(&s.live) = None;
        }
    }
}

/// The message layer's nodes: the broker, the two replicas, the notifier and the merchant
/// endpoint.
fn message_roles(
    config: &RunConfig,
    topology: &Topology,
    fsync_latency: Duration,
) -> Vec<(String, SocketAddr, Role)> {
    let broker = BrokerNodeConfig {
        broker: BrokerConfig {
            check: run_check_policy(),
            retry: RetryPolicy::simulation(),
        },
        flush: config.broker_flush,
        fsync_latency,
        topics: vec![(TRADE_EVENTS_TOPIC.to_string(), TRADE_EVENTS_QUEUES)],
        producers: (0..config.trade_shards)
            .map(|s| {
                (
                    producer_group(paylab_system::TradeShardId(s)),
                    trade_addr(s),
                )
            })
            .collect(),
        check_tick: Duration::from_millis(50),
    };
    let replica = ReplicaConfig {
        broker: broker_addr(),
        fsync_latency,
        failure_rate: 0.03,
        commit_interval: Duration::from_millis(500),
    };
    let notify = NotifyConfig {
        broker: broker_addr(),
        merchant: merchant_addr(),
        fsync_latency,
        schedule: SIMULATION_NOTIFY_SCHEDULE_MS,
        commit_interval: Duration::from_millis(500),
    };
    let merchant = MerchantConfig {
        fail_rate: 0.2,
        slow_rate: 0.1,
        slow_by: Duration::from_millis(500),
    };
    vec![
        ("broker".into(), broker_addr(), Role::Broker(broker)),
        (
            "consumer-records".into(),
            replica_addr(0),
            Role::ConsumerRecords(replica),
        ),
        (
            "merchant-query".into(),
            replica_addr(1),
            Role::MerchantQuery(replica),
        ),
        ("notify".into(), notify_addr(), Role::Notify(notify)),
        (
            "merchant".into(),
            merchant_addr(),
            Role::Merchant(merchant, topology.clone()),
        ),
    ]
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn spawn(handle: &Handle, env: NodeEnv, role: Role, live: Live) -> NodeHandle {
    let name = env.name.clone();
    let ip = env.addr.ip();
    handle
        .create_node()
        .name(name)
        .ip(ip)
        .init(move || {
            let (env, role, live) = (env.clone(), role.clone(), live.clone());
            async move {
                let service = match role {
                    Role::Ledger(config) => {
                        LedgerNode::start(&env, config).await.map(Service::Ledger)
                    }
                    Role::Trade(config) => TradeNode::start(&env, config).await.map(Service::Trade),
                    Role::Payment(config, topology) => PaymentNode::start(&env, config, topology)
                        .await
                        .map(Service::Payment),
                    Role::Broker(config) => {
                        BrokerNode::start(&env, config).await.map(Service::Broker)
                    }
                    Role::ConsumerRecords(config) => ReplicaNode::start(&env, config)
                        .await
                        .map(Service::ConsumerRecords),
                    Role::MerchantQuery(config) => ReplicaNode::start(&env, config)
                        .await
                        .map(Service::MerchantQuery),
                    Role::Notify(config) => {
                        NotifyNode::start(&env, config).await.map(Service::Notify)
                    }
                    Role::Merchant(config, topology) => {
                        MerchantEndpoint::start(&env, config, topology)
                            .await
                            .map(Service::Merchant)
                    }
                };
                *lock(&live) = Some(service.expect("a restarted node can bind its address"));
                // A node whose init task returns is considered exited by madsim, which would
                // stop its serving tasks: the init task lives as long as the node.
                std::future::pending::<()>().await
            }
        })
        .build()
}

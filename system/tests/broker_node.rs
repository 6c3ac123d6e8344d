//! The broker node shell and the consumer runtime inside the simulator: what a flush policy
//! promises across a power loss, check-backs that settle a half message, and consumers that
//! process every message once per group in key order, replay after a crash, retry failures
//! and dead-letter what always fails. Every test runs on fixed seeds (`common::SEEDS`).

use madsim::runtime::{Handle, NodeHandle};
use paylab_system::broker::consumer::{self, ConsumerConfig};
use paylab_system::broker::{
    queue_of, BrokerCall, BrokerCommand, BrokerConfig, BrokerError, BrokerNode, BrokerNodeConfig,
    BrokerReply, CheckAnswer, CheckBackCall, ConsumeMode, Delivery, FlushPolicy, HalfId, HalfState,
    RetryPolicy, RetryState, RETRY_LEVELS,
};
use paylab_system::buggify::{Buggify, Point};
use paylab_system::bugs::{Bug, Bugs};
use paylab_system::disk::Disk;
use paylab_system::node::NodeEnv;
use paylab_system::probes::{names, Probes};
use paylab_system::transport::{NetFaults, Transport};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BROKER: &str = "10.5.0.1:9000";
const PRODUCER: &str = "10.5.0.2:9001";
const TOPIC: &str = "events";
const QUEUES: u32 = 4;

mod common;
use common::on_fixed_seeds;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("valid address")
}

fn consumer_addr(i: u32) -> SocketAddr {
    SocketAddr::new(format!("10.5.1.{}", i + 1).parse().unwrap(), 9100)
}

thread_local! {
    static CLIENTS: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// A fresh client address: madsim refuses two nodes with one IP, even a killed one.
fn next_client_addr() -> SocketAddr {
    let n = CLIENTS.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    SocketAddr::new(format!("10.5.2.{n}").parse().unwrap(), 9200)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn env(name: &str, addr: SocketAddr, probes: &Probes) -> NodeEnv {
    NodeEnv {
        name: name.parse().expect("a node name"),
        addr,
        disk: Disk::new(),
        clock: Default::default(),
        faults: NetFaults::new(),
        probes: probes.clone(),
        bugs: Bugs::none(),
        buggify: Buggify::default(),
        seed: 0,
        serve_loops: 1,
    }
}

fn broker_config(flush: FlushPolicy) -> BrokerNodeConfig {
    BrokerNodeConfig {
        flush,
        topics: vec![(TOPIC.to_string(), QUEUES)],
        producers: [("pg".to_string(), addr(PRODUCER))].into(),
        ..BrokerNodeConfig::default()
    }
}

/// A broker node the test can crash and restart; `live` is set by each start.
struct Broker {
    node: NodeHandle,
    env: NodeEnv,
    config: BrokerNodeConfig,
    live: Arc<Mutex<Option<BrokerNode>>>,
}

impl Broker {
    fn start(config: BrokerNodeConfig, probes: &Probes) -> Broker {
        let env = env("broker/0", addr(BROKER), probes);
        let live = Arc::new(Mutex::new(None));
        let (e, c, l) = (env.clone(), config.clone(), live.clone());
        let node = Handle::current()
            .create_node()
            .name("broker")
            .ip(env.addr.ip())
            .init(move || {
                let (env, config, live) = (e.clone(), c.clone(), l.clone());
                async move {
                    let node = BrokerNode::start(&env, config)
                        .await
                        .expect("broker starts");
                    *lock(&live) = Some(node);
                    std::future::pending::<()>().await
                }
            })
            .build();
        Broker {
            node,
            env,
            config,
            live,
        }
    }

    fn node(&self) -> BrokerNode {
        lock(&self.live).clone().expect("the broker is up")
    }

    /// Kills the node and cuts its power: every unsynced byte is lost.
    fn crash(&self) {
        Handle::current().kill(self.node.id());
        *lock(&self.live) = None;
        self.env.disk.power_loss(None);
    }

    fn restart(&self) {
        Handle::current().kill(self.node.id());
        Handle::current().restart(self.node.id());
    }

    /// Waits until no half, retry or group is pending (at most `limit`).
    async fn settle(&self, limit: Duration) -> Vec<String> {
        let step = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        loop {
            let pending = self.node().pending();
            if pending.is_empty() || waited >= limit {
                return pending;
            }
            madsim::time::sleep(step).await;
            waited += step;
        }
    }
}

/// Runs `f` with a transport on a client node of its own.
async fn on_client<F, Fut, T>(f: F) -> T
where
    F: FnOnce(Transport) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let a = next_client_addr();
    let node = Handle::current().create_node().ip(a.ip()).build();
    let result = node
        .spawn(async move {
            let t = Transport::bind(a, "caller", 0, NetFaults::new(), Probes::new())
                .await
                .expect("bind client");
            f(t).await
        })
        .await
        .expect("client task");
    Handle::current().kill(node.id());
    result
}

async fn call(t: &Transport, command: BrokerCommand) -> Result<BrokerReply, BrokerError> {
    t.call(addr(BROKER), BrokerCall(command), Duration::from_secs(1))
        .await
        .expect("the broker replies")
}

fn send(key: &str, payload: &str, id: &str) -> BrokerCommand {
    BrokerCommand::Send {
        topic: TOPIC.into(),
        key: key.into(),
        payload: payload.into(),
        producer_msg_id: id.into(),
    }
}

/// Every producer message id in the broker's queues.
fn stored_ids(core: &paylab_system::broker::BrokerCore) -> BTreeSet<String> {
    (0..QUEUES)
        .flat_map(|q| core.queue(TOPIC, q).unwrap_or(&[]).to_vec())
        .map(|m| m.producer_msg_id)
        .collect()
}

/// One acknowledged send, then a second one caught by the crash while its fsync (slowed to
/// 200 ms) is still running.
async fn crash_during_second_send(flush: FlushPolicy) -> (Broker, BTreeSet<String>) {
    let broker = Broker::start(broker_config(flush), &Probes::new());
    madsim::time::sleep(Duration::from_millis(10)).await;
    broker
        .env
        .disk
        .set_slow_fsync(Some(Duration::from_millis(200)));
    let acked = on_client(|t| async move {
        let first = call(&t, send("k1", "first", "m1")).await;
        assert!(matches!(first, Ok(BrokerReply::Sent { .. })), "{first:?}");
        // The second send is left in flight: the broker crashes before its fsync ends.
        let late = t.clone();
        madsim::task::spawn(async move {
            let _ = late
                .call(
                    addr(BROKER),
                    BrokerCall(send("k2", "second", "m2")),
                    Duration::from_secs(1),
                )
                .await;
        });
        madsim::time::sleep(Duration::from_millis(30)).await;
        BTreeSet::from(["m1".to_string()])
    })
    .await;
    assert!(broker.env.disk.has_unsynced("broker.log"), "m2 is unsynced");
    broker.crash();
    (broker, acked)
}

async fn an_acknowledged_send_survives_a_power_loss(flush: FlushPolicy) {
    {
        let (broker, acked) = crash_during_second_send(flush).await;
        let durable = stored_ids(&BrokerNode::durable_state(&broker.env, &broker.config));
        assert_eq!(
            durable, acked,
            "{flush}: m1 durable, the unacknowledged m2 lost"
        );
        broker.env.disk.set_slow_fsync(None);
        broker.restart();
        madsim::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(broker.node().read(stored_ids), acked, "{flush}: recovered");
    }
}

#[test]
fn an_acknowledged_send_survives_a_power_loss_under_group_commit() {
    on_fixed_seeds(|| async {
        an_acknowledged_send_survives_a_power_loss(FlushPolicy::GroupCommit).await
    });
}

#[test]
fn an_acknowledged_send_survives_a_power_loss_under_sync_each_write() {
    on_fixed_seeds(|| async {
        an_acknowledged_send_survives_a_power_loss(FlushPolicy::SyncEachWrite).await
    });
}

async fn concurrent_sends_acknowledged_before_a_crash_are_durable(flush: FlushPolicy) {
    {
        let mut config = broker_config(flush);
        config.fsync_latency = Duration::from_millis(3);
        let broker = Broker::start(config, &Probes::new());
        madsim::time::sleep(Duration::from_millis(10)).await;
        let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let senders = 10;
        let acks = acked.clone();
        let a = next_client_addr();
        let client = Handle::current().create_node().ip(a.ip()).build();
        client.spawn(async move {
            let t = Transport::bind(a, "caller", 0, NetFaults::new(), Probes::new())
                .await
                .expect("bind");
            for s in 0..senders {
                let (t, acks) = (t.clone(), acks.clone());
                madsim::task::spawn(async move {
                    for i in 0.. {
                        let id = format!("s{s}-{i}");
                        let command = send(&format!("k{}", i % 8), "p", &id);
                        let reply = t
                            .call(
                                addr(BROKER),
                                BrokerCall(command),
                                Duration::from_millis(300),
                            )
                            .await;
                        if let Ok(Ok(BrokerReply::Sent { .. })) = reply {
                            lock(&acks).insert(id);
                        }
                    }
                });
            }
            std::future::pending::<()>().await
        });
        madsim::time::sleep(Duration::from_millis(200)).await;
        broker.crash();
        let stats = broker.env.disk.stats();
        madsim::time::sleep(Duration::from_millis(50)).await;
        Handle::current().kill(client.id());
        let acked = lock(&acked).clone();
        assert!(
            acked.len() > 50,
            "{flush}: {} sends acknowledged",
            acked.len()
        );
        let durable = stored_ids(&BrokerNode::durable_state(&broker.env, &broker.config));
        let lost: Vec<_> = acked.difference(&durable).collect();
        assert!(lost.is_empty(), "{flush}: acknowledged but lost: {lost:?}");
        let (acked, syncs) = (acked.len() as u64, stats.syncs);
        match flush {
            // Every acknowledged write had an fsync of its own (and the topic one more).
            FlushPolicy::SyncEachWrite => assert!(syncs > acked, "{syncs} fsyncs, {acked} acks"),
            // Concurrent writes share their fsyncs.
            _ => assert!(syncs < acked, "{syncs} fsyncs, {acked} acks"),
        }
    }
}

#[test]
fn concurrent_sends_acknowledged_before_a_crash_are_durable_under_group_commit() {
    on_fixed_seeds(|| async {
        concurrent_sends_acknowledged_before_a_crash_are_durable(FlushPolicy::GroupCommit).await
    });
}

#[test]
fn concurrent_sends_acknowledged_before_a_crash_are_durable_under_sync_each_write() {
    on_fixed_seeds(|| async {
        concurrent_sends_acknowledged_before_a_crash_are_durable(FlushPolicy::SyncEachWrite).await
    });
}

#[test]
fn under_async_flush_an_acknowledged_send_can_be_lost() {
    on_fixed_seeds(|| async {
        let flush = FlushPolicy::Async {
            interval_ms: 10_000,
        };
        let broker = Broker::start(broker_config(flush), &Probes::new());
        madsim::time::sleep(Duration::from_millis(10)).await;
        on_client(|t| async move {
            let sent = call(&t, send("k1", "p", "m1")).await;
            assert!(matches!(sent, Ok(BrokerReply::Sent { .. })), "{sent:?}");
        })
        .await;
        assert_eq!(broker.node().read(stored_ids).len(), 1, "acknowledged");
        broker.crash();
        let durable = BrokerNode::durable_state(&broker.env, &broker.config);
        assert!(
            stored_ids(&durable).is_empty(),
            "the acknowledged m1 is gone"
        );
        broker.restart();
        madsim::time::sleep(Duration::from_millis(20)).await;
        let node = broker.node();
        assert!(node.read(stored_ids).is_empty());
        assert_eq!(
            node.read(|c| c
                .topics()
                .map(|(t, q)| (t.to_string(), q))
                .collect::<Vec<_>>()),
            vec![(TOPIC.to_string(), QUEUES)],
            "configured topics exist again (created synchronously at start)"
        );
    });
}

/// A producer that answers check-backs by the half's payload and records every check.
fn fake_producer(checks: Arc<Mutex<Vec<(String, u32)>>>) -> NodeHandle {
    let node = Handle::current()
        .create_node()
        .name("producer")
        .ip(addr(PRODUCER).ip())
        .build();
    node.spawn(async move {
        let t = Transport::bind(addr(PRODUCER), "caller", 0, NetFaults::new(), Probes::new())
            .await
            .expect("bind producer");
        t.serve(move |check: CheckBackCall| {
            let checks = checks.clone();
            async move {
                lock(&checks).push((check.payload.clone(), check.check));
                match check.payload.as_str() {
                    "commit" => CheckAnswer::Commit,
                    "rollback" => CheckAnswer::Rollback,
                    _ => CheckAnswer::Unknown,
                }
            }
        });
        std::future::pending::<()>().await;
    });
    node
}

#[test]
fn undecided_halves_are_checked_back_then_committed_rolled_back_or_discarded() {
    on_fixed_seeds(|| async {
        let probes = Probes::new();
        let config = BrokerNodeConfig {
            broker: BrokerConfig::simulation(),
            ..broker_config(FlushPolicy::GroupCommit)
        };
        let broker = Broker::start(config, &probes);
        let checks = Arc::default();
        let _producer = fake_producer(Arc::clone(&checks));
        madsim::time::sleep(Duration::from_millis(10)).await;
        let halves = on_client(|t| async move {
            let mut halves = Vec::new();
            for payload in ["commit", "rollback", "unknown"] {
                let half = BrokerCommand::SendHalf {
                    topic: TOPIC.into(),
                    key: format!("key-{payload}"),
                    payload: payload.into(),
                    producer_msg_id: format!("tx-{payload}"),
                    producer_group: "pg".into(),
                };
                match call(&t, half).await {
                    Ok(BrokerReply::HalfSent { half }) => halves.push(half),
                    other => panic!("{other:?}"),
                }
            }
            halves
        })
        .await;
        assert_eq!(halves, vec![HalfId(0), HalfId(1), HalfId(2)]);
        let state = |h: HalfId| broker.node().read(|c| c.half(h).unwrap().state.clone());
        // First checks are due 600 ms after the store.
        madsim::time::sleep(Duration::from_millis(400)).await;
        assert!(lock(&checks).is_empty(), "no check before it is due");
        assert_eq!(state(HalfId(0)), HalfState::Pending);
        madsim::time::sleep(Duration::from_millis(500)).await;
        let committed = match state(HalfId(0)) {
            HalfState::Committed(id) => id,
            other => panic!("{other:?}"),
        };
        let message = broker
            .node()
            .read(|c| c.message(&committed).cloned().unwrap());
        assert_eq!(
            (message.payload.as_str(), message.from_half),
            ("commit", Some(HalfId(0)))
        );
        assert_eq!(state(HalfId(1)), HalfState::RolledBack);
        assert_eq!(state(HalfId(2)), HalfState::Pending);
        assert_eq!(probes.count(names::BROKER_HALF_COMMITTED_BY_CHECK), 1);
        assert_eq!(probes.count(names::BROKER_HALF_ROLLED_BACK_BY_CHECK), 1);
        // Five checks one second apart, then the discard a second after the last.
        madsim::time::sleep(Duration::from_millis(5_000)).await;
        assert_eq!(state(HalfId(2)), HalfState::Discarded);
        assert_eq!(
            broker.node().read(|c| c.discarded_halves().to_vec()),
            [HalfId(2)]
        );
        assert_eq!(probes.count(names::BROKER_HALF_DISCARDED), 1);
        assert_eq!(probes.count(names::BROKER_CHECK_SENT), 7);
        let mut by_payload: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (payload, check) in lock(&checks).iter() {
            by_payload.entry(payload.clone()).or_default().push(*check);
        }
        let expected: BTreeMap<String, Vec<u32>> = [
            ("commit".to_string(), vec![1]),
            ("rollback".to_string(), vec![1]),
            ("unknown".to_string(), vec![1, 2, 3, 4, 5]),
        ]
        .into();
        assert_eq!(by_payload, expected);
        assert_eq!(broker.node().pending(), Vec::<String>::new());
        // The decisions are durable: a restart recovers them, and sends no more checks.
        broker.crash();
        broker.restart();
        madsim::time::sleep(Duration::from_millis(500)).await;
        let states: Vec<HalfState> = broker
            .node()
            .read(|c| c.halves().iter().map(|h| h.state.clone()).collect());
        assert_eq!(
            states,
            vec![
                HalfState::Committed(committed),
                HalfState::RolledBack,
                HalfState::Discarded
            ]
        );
        assert_eq!(lock(&checks).len(), 7);
    });
}

/// What the consumers saw: (group, payload, attempt), in processing order.
type Seen = Arc<Mutex<Vec<(String, String, u32)>>>;

/// Starts a restartable consumer node running the runtime with a handler that records every
/// delivery and fails as its payload says: `once:*` on the first attempt, `always:*` always.
fn start_consumer(
    index: u32,
    group: &str,
    commit_interval: Duration,
    seen: &Seen,
    probes: &Probes,
    bugs: Bugs,
    buggify: &Buggify,
) -> NodeHandle {
    let mut env = env(&format!("consumer/{index}"), consumer_addr(index), probes);
    env.bugs = bugs;
    env.buggify = buggify.clone();
    let config = ConsumerConfig {
        commit_interval,
        ..ConsumerConfig::new(
            group,
            format!("c{index}"),
            TOPIC,
            QUEUES,
            ConsumeMode::Clustering,
            addr(BROKER),
        )
    };
    let (group, seen) = (group.to_string(), seen.clone());
    let handler = consumer::handler(move |d: Delivery| {
        let payload = d.message.payload.clone();
        lock(&seen).push((group.clone(), payload.clone(), d.attempt));
        async move {
            if payload.starts_with("always:") || (payload.starts_with("once:") && d.attempt == 1) {
                Err(format!("{payload} fails at attempt {}", d.attempt))
            } else {
                Ok(())
            }
        }
    });
    Handle::current()
        .create_node()
        .name(env.name.clone())
        .ip(env.addr.ip())
        .init(move || {
            let (env, config, handler) = (env.clone(), config.clone(), handler.clone());
            async move {
                let t = Transport::for_node(&env).await.expect("bind consumer");
                consumer::run(env, t, config, handler).await
            }
        })
        .build()
}

/// Sends `count` messages over 8 keys, in order: payload `{prefix}:{key}:{seq}`.
async fn produce(prefix: &'static str, from: u32, count: u32) -> Vec<String> {
    on_client(move |t| async move {
        let mut sent = Vec::new();
        for seq in from..from + count {
            let key = format!("k{}", seq % 8);
            let payload = format!("{prefix}:{key}:{seq}");
            let reply = call(&t, send(&key, &payload, &format!("id-{seq}"))).await;
            assert!(matches!(reply, Ok(BrokerReply::Sent { .. })), "{reply:?}");
            sent.push(payload);
        }
        sent
    })
    .await
}

/// The payloads `group` processed, in order.
fn processed(seen: &Seen, group: &str) -> Vec<String> {
    lock(seen)
        .iter()
        .filter(|(g, _, _)| g == group)
        .map(|(_, p, _)| p.clone())
        .collect()
}

/// Asserts that within each key the sequence numbers were processed in increasing order.
fn assert_key_order(payloads: &[String]) {
    let mut last: BTreeMap<String, u32> = BTreeMap::new();
    for p in payloads {
        let mut parts = p.split(':').skip(1);
        let (key, seq) = (parts.next().unwrap(), parts.next().unwrap());
        let seq: u32 = seq.parse().unwrap();
        if let Some(prev) = last.insert(key.to_string(), seq) {
            assert!(prev < seq, "{key}: {seq} after {prev}");
        }
    }
}

#[test]
fn each_group_processes_every_message_once_in_key_order() {
    on_fixed_seeds(|| async {
        let probes = Probes::new();
        let broker = Broker::start(broker_config(FlushPolicy::GroupCommit), &probes);
        let seen: Seen = Arc::default();
        let interval = Duration::from_millis(500);
        let buggify = Buggify::default();
        for (i, group) in ["g1", "g2"].into_iter().enumerate() {
            start_consumer(
                i as u32,
                group,
                interval,
                &seen,
                &probes,
                Bugs::none(),
                &buggify,
            );
        }
        madsim::time::sleep(Duration::from_millis(50)).await;
        let sent = produce("ok", 0, 60).await;
        let pending = broker.settle(Duration::from_secs(10)).await;
        assert!(pending.is_empty(), "{pending:?}");
        for group in ["g1", "g2"] {
            let got = processed(&seen, group);
            let mut sorted = got.clone();
            sorted.sort();
            let mut expected = sent.clone();
            expected.sort();
            assert_eq!(sorted, expected, "{group}: every message exactly once");
            assert_key_order(&got);
        }
    });
}

/// Group `g` subscribes to the test topic in clustering mode.
fn subscribe_g() -> BrokerCommand {
    BrokerCommand::Subscribe {
        group: "g".into(),
        topic: TOPIC.into(),
        mode: ConsumeMode::Clustering,
    }
}

#[test]
fn a_group_is_reported_behind_until_it_commits() {
    on_fixed_seeds(|| async {
        let broker = Broker::start(broker_config(FlushPolicy::GroupCommit), &Probes::new());
        madsim::time::sleep(Duration::from_millis(10)).await;
        on_client(|t| async move {
            call(&t, subscribe_g()).await.unwrap();
            call(&t, send("k1", "p", "m1")).await.unwrap();
        })
        .await;
        let q = queue_of("k1", QUEUES);
        assert_eq!(
            broker.node().pending(),
            vec![format!(
                "group g behind on {TOPIC}:{q} (committed 0 of end 1)"
            )]
        );
    });
}

fn await_news(hold_ms: u64) -> BrokerCommand {
    BrokerCommand::Await {
        group: "g".into(),
        consumer: "c".into(),
        topic: TOPIC.into(),
        positions: (0..QUEUES).map(|q| (q, 0)).collect(),
        hold_ms,
    }
}

#[test]
fn a_long_poll_is_held_until_a_message_lands_or_the_hold_ends() {
    on_fixed_seeds(|| async {
        let _broker = Broker::start(broker_config(FlushPolicy::GroupCommit), &Probes::new());
        madsim::time::sleep(Duration::from_millis(10)).await;
        on_client(|t| async move {
            call(&t, subscribe_g()).await.unwrap();
            let nothing = BrokerReply::News {
                queues: vec![],
                retries: false,
            };
            // Nothing comes: answered empty when the hold ends, not before.
            let start = madsim::time::Instant::now();
            assert_eq!(call(&t, await_news(300)).await, Ok(nothing));
            let held = start.elapsed();
            assert!(held >= Duration::from_millis(300), "held {held:?}");
            // A message sent while the poll is held answers it at once, naming its queue.
            let t2 = t.clone();
            let poll = madsim::task::spawn(async move {
                let start = madsim::time::Instant::now();
                (call(&t2, await_news(5_000)).await, start.elapsed())
            });
            madsim::time::sleep(Duration::from_millis(100)).await;
            call(&t, send("k1", "p", "m1")).await.unwrap();
            let (news, held) = poll.await.expect("the poll task");
            let q = queue_of("k1", QUEUES);
            let named = BrokerReply::News {
                queues: vec![q],
                retries: false,
            };
            assert_eq!(news, Ok(named.clone()));
            assert!(held < Duration::from_millis(200), "held {held:?}");
            // Behind the queue's end already: answered without a hold.
            assert_eq!(call(&t, await_news(5_000)).await, Ok(named));
            // Refusals are answered at once too.
            let too_long = call(&t, await_news(60_000)).await;
            assert_eq!(too_long, Err(BrokerError::HoldTooLong(60_000)));
        })
        .await;
    });
}

#[test]
fn a_restarted_consumer_replays_from_its_committed_offset() {
    on_fixed_seeds(|| async {
        let probes = Probes::new();
        let broker = Broker::start(broker_config(FlushPolicy::GroupCommit), &probes);
        let seen: Seen = Arc::default();
        // Commits every 2 s, from the consumer's start.
        let interval = Duration::from_millis(2_000);
        let consumer = start_consumer(
            0,
            "g",
            interval,
            &seen,
            &probes,
            Bugs::none(),
            &Buggify::default(),
        );
        madsim::time::sleep(Duration::from_millis(50)).await;
        let first = produce("ok", 0, 16).await;
        // Processed and committed at 2 s.
        madsim::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(processed(&seen, "g").len(), 16);
        let second = produce("ok", 16, 16).await;
        madsim::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            processed(&seen, "g").len(),
            32,
            "processed, not yet committed"
        );
        // The consumer "crashes" before its next commit (at 4 s) and starts over.
        Handle::current().kill(consumer.id());
        Handle::current().restart(consumer.id());
        let pending = broker.settle(Duration::from_secs(10)).await;
        assert!(pending.is_empty(), "{pending:?}");
        let got = processed(&seen, "g");
        let count = |p: &String| got.iter().filter(|g| *g == p).count();
        assert!(
            first.iter().all(|p| count(p) == 1),
            "committed: not replayed"
        );
        assert!(
            second.iter().all(|p| count(p) == 2),
            "uncommitted: replayed once"
        );
        // Each incarnation processed its part in key order.
        assert_key_order(&got[..32]);
        assert_key_order(&got[32..]);
    });
}

#[test]
fn failed_deliveries_are_retried_and_dead_lettered_when_they_always_fail() {
    on_fixed_seeds(|| async {
        let probes = Probes::new();
        let retry = RetryPolicy {
            delays_ms: [20; RETRY_LEVELS],
            retries_max: 3,
        };
        let config = BrokerNodeConfig {
            broker: BrokerConfig {
                retry,
                ..BrokerConfig::simulation()
            },
            ..broker_config(FlushPolicy::GroupCommit)
        };
        let broker = Broker::start(config, &probes);
        let seen: Seen = Arc::default();
        start_consumer(
            0,
            "g",
            Duration::from_millis(200),
            &seen,
            &probes,
            Bugs::none(),
            &Buggify::default(),
        );
        madsim::time::sleep(Duration::from_millis(50)).await;
        on_client(|t| async move {
            for (key, payload) in [
                ("k1", "ok:k1:0"),
                ("k2", "once:k2:1"),
                ("k3", "always:k3:2"),
            ] {
                call(&t, send(key, payload, payload)).await.unwrap();
            }
        })
        .await;
        let pending = broker.settle(Duration::from_secs(10)).await;
        assert!(pending.is_empty(), "{pending:?}");
        let attempts = |payload: &str| -> Vec<u32> {
            lock(&seen)
                .iter()
                .filter(|(_, p, _)| p == payload)
                .map(|(_, _, a)| *a)
                .collect()
        };
        assert_eq!(attempts("ok:k1:0"), vec![1]);
        assert_eq!(attempts("once:k2:1"), vec![1, 2]);
        assert_eq!(attempts("always:k3:2"), vec![1, 2, 3, 4]);
        let node = broker.node();
        let letters = node.read(|c| c.dead_letters("g").to_vec());
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].attempts, 4);
        let retries: BTreeMap<String, RetryState> = node.read(|c| {
            c.retry_queue("g")
                .map(|(id, s)| (c.message(id).unwrap().payload.clone(), s.clone()))
                .collect()
        });
        assert_eq!(retries["once:k2:1"], RetryState::Acked { attempt: 2 });
        assert_eq!(
            retries["always:k3:2"],
            RetryState::DeadLettered { attempts: 4 }
        );
        assert_eq!(probes.count(names::CONSUMER_PROCESSING_FAILED), 5);
        assert_eq!(probes.count(names::CONSUMER_RETRY_DELIVERED), 4);
        assert_eq!(probes.count(names::BROKER_RETRY_SCHEDULED), 4);
        assert_eq!(probes.count(names::BROKER_DEAD_LETTERED), 1);
    });
}

/// Starts a consumer node whose handler takes up to `consume_batch` deliveries at once,
/// records each delivery and the size of every batch it was handed, and fails `once:*`
/// payloads on their first attempt.
fn start_batched_consumer(consume_batch: u32, seen: &Seen, sizes: &Arc<Mutex<Vec<usize>>>) {
    start_members(consume_batch, 1, 0, seen, sizes)
}

/// As [`start_batched_consumer`], with `members` members of the group on node `index`.
fn start_members(
    consume_batch: u32,
    members: u32,
    index: u32,
    seen: &Seen,
    sizes: &Arc<Mutex<Vec<usize>>>,
) {
    let probes = Probes::new();
    let env = env(&format!("consumer/{index}"), consumer_addr(index), &probes);
    let config = ConsumerConfig {
        consume_batch,
        members,
        ..ConsumerConfig::new(
            "g",
            "c0",
            TOPIC,
            QUEUES,
            ConsumeMode::Clustering,
            addr(BROKER),
        )
    };
    let (seen, sizes) = (seen.clone(), sizes.clone());
    let handler: consumer::BatchHandler = Arc::new(move |batch: Vec<Delivery>| {
        lock(&sizes).push(batch.len());
        let verdicts = batch
            .iter()
            .map(|d| {
                let payload = d.message.payload.clone();
                lock(&seen).push(("g".into(), payload.clone(), d.attempt));
                match payload.starts_with("once:") && d.attempt == 1 {
                    true => Err(format!("{payload} fails at attempt 1")),
                    false => Ok(()),
                }
            })
            .collect();
        Box::pin(async move { verdicts })
    });
    Handle::current()
        .create_node()
        .name(env.name.clone())
        .ip(env.addr.ip())
        .init(move || {
            let (env, config, handler) = (env.clone(), config.clone(), handler.clone());
            async move {
                let t = Transport::for_node(&env).await.expect("bind consumer");
                consumer::run_batched(env, t, config, handler).await
            }
        })
        .build();
}

#[test]
fn a_batched_consumer_takes_a_pull_in_batches_and_settles_each_verdict() {
    on_fixed_seeds(|| async {
        let broker = Broker::start(broker_config(FlushPolicy::GroupCommit), &Probes::new());
        madsim::time::sleep(Duration::from_millis(10)).await;
        on_client(|t| async move { call(&t, subscribe_g()).await.unwrap() }).await;
        // Sent before the consumer starts, so that its first pulls find full queues.
        let mut sent = produce("ok", 0, 40).await;
        sent.extend(produce("once", 40, 8).await);
        let (seen, sizes): (Seen, Arc<Mutex<Vec<usize>>>) = Default::default();
        start_batched_consumer(5, &seen, &sizes);
        let pending = broker.settle(Duration::from_secs(30)).await;
        assert!(pending.is_empty(), "{pending:?}");
        let sizes = lock(&sizes).clone();
        assert!(sizes.iter().all(|n| (1..=5).contains(n)), "{sizes:?}");
        assert!(sizes.contains(&5), "full batches are handed out: {sizes:?}");
        // Every message processed, in key order; each `once:` one again at attempt 2.
        let firsts: Vec<String> = lock(&seen)
            .iter()
            .filter(|(_, _, attempt)| *attempt == 1)
            .map(|(_, p, _)| p.clone())
            .collect();
        assert_key_order(&firsts);
        let mut got = firsts.clone();
        got.sort();
        sent.sort();
        assert_eq!(got, sent);
        let retried = lock(&seen).iter().filter(|(_, _, a)| *a == 2).count();
        assert_eq!(retried, 8);
    });
}

/// Starts `members` members of group `g` on one node after 64 messages were sent, and returns
/// the simulated time until every message was processed, having checked that each was
/// processed once, in key order.
async fn drained_by_members(members: u32, index: u32) -> Duration {
    let broker = Broker::start(broker_config(FlushPolicy::GroupCommit), &Probes::new());
    madsim::time::sleep(Duration::from_millis(10)).await;
    on_client(|t| async move { call(&t, subscribe_g()).await.unwrap() }).await;
    let mut sent = produce("ok", 0, 64).await;
    let (seen, sizes): (Seen, Arc<Mutex<Vec<usize>>>) = Default::default();
    let start = madsim::time::Instant::now();
    start_members(16, members, index, &seen, &sizes);
    while processed(&seen, "g").len() < sent.len() {
        madsim::time::sleep(Duration::from_millis(1)).await;
    }
    let took = start.elapsed();
    let pending = broker.settle(Duration::from_secs(10)).await;
    assert!(pending.is_empty(), "{pending:?}");
    let mut got = processed(&seen, "g");
    assert_key_order(&got);
    got.sort();
    sent.sort();
    assert_eq!(got, sent, "every message once");
    took
}

/// The simulated time `members` members on one node take to drain 64 messages, in a fresh
/// simulation of `seed` on an OS thread of its own.
fn drain_time(seed: u64, members: u32) -> Duration {
    std::thread::spawn(move || {
        let runtime =
            madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
        runtime.block_on(drained_by_members(members, 0))
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[test]
fn group_members_on_one_node_split_the_queues_and_drain_them_sooner() {
    for seed in common::SEEDS {
        let (alone, four) = (drain_time(seed, 1), drain_time(seed, 4));
        // One member pulls the four queues in turn; four pull one queue each, at once.
        assert!(
            four * 3 < alone * 2,
            "seed {seed}: four members {four:?}, one {alone:?}"
        );
    }
}

/// A consumer crashes inside the widened window between processing a batch and making its
/// offset committable. Returns, for each of the 8 messages, whether it was in the batch the
/// crash interrupted and how often it was processed in the end.
async fn crash_in_the_consume_window(bugs: Bugs) -> Vec<(bool, usize)> {
    let probes = Probes::new();
    let broker = Broker::start(broker_config(FlushPolicy::GroupCommit), &probes);
    madsim::time::sleep(Duration::from_millis(10)).await;
    // Subscribed and sent before the consumer starts: its first pull takes all 8.
    on_client(|t| async move {
        let subscribe = BrokerCommand::Subscribe {
            group: "g".into(),
            topic: TOPIC.into(),
            mode: ConsumeMode::Clustering,
        };
        call(&t, subscribe).await.unwrap();
    })
    .await;
    let sent = produce("ok", 0, 8).await;
    let (seen, buggify): (Seen, _) = (Arc::default(), Buggify::default());
    buggify.open(Point::ConsumeToOffset, 1.0);
    let interval = Duration::from_millis(100);
    let consumer = start_consumer(0, "g", interval, &seen, &probes, bugs, &buggify);
    madsim::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        probes.count(Point::ConsumeToOffset.probe()),
        1,
        "in the window"
    );
    buggify.clear();
    Handle::current().kill(consumer.id());
    Handle::current().restart(consumer.id());
    let pending = broker.settle(Duration::from_secs(5)).await;
    assert!(pending.is_empty(), "{pending:?}");
    // Under the bug a batch is committed before it is processed: let the last one finish.
    madsim::time::sleep(Duration::from_millis(100)).await;
    let got = processed(&seen, "g");
    // The consumer pulls its queues in order: the crash came in the first batch's window.
    let queue = |p: &String| queue_of(p.split(':').nth(1).unwrap(), QUEUES);
    let first = sent.iter().map(queue).min().unwrap();
    let times = |p: &String| got.iter().filter(|g| *g == p).count();
    sent.iter().map(|p| (queue(p) == first, times(p))).collect()
}

#[test]
fn a_crash_between_processing_and_commit_replays_the_batch() {
    on_fixed_seeds(|| async {
        let counts = crash_in_the_consume_window(Bugs::none()).await;
        for (in_the_batch, times) in counts {
            assert_eq!(times, if in_the_batch { 2 } else { 1 });
        }
    });
}

#[test]
fn under_the_planted_offset_before_processing_a_crash_loses_the_batch() {
    on_fixed_seeds(|| async {
        let bug = Bugs::planted(Bug::OffsetBeforeProcessing);
        let counts = crash_in_the_consume_window(bug).await;
        for (in_the_batch, times) in counts {
            assert_eq!(times, if in_the_batch { 0 } else { 1 });
        }
    });
}

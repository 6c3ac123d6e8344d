//! The replica node shell: one consumer group of the trade-events topic feeding one projection
//! (the consumer-record DB or the merchant-query DB) kept in the node's own durable log.
//!
//! A delivery is processed idempotently: the projection decides (a duplicate event id is
//! skipped, a stale version recorded as stale), the record is written and made durable, and
//! only then does the consumer runtime count the message as processed, so an offset never
//! covers an event the replica could lose. Processing sometimes fails on purpose (a busy
//! database): the broker redelivers the event later from the group's retry queue, out of order
//! with the trade's newer events, which is what the versions are for.

use super::consumer_records::{ConsumerRecordsCore, ConsumerRecordsRecord};
use super::merchant_query::{MerchantQueryCore, MerchantQueryRecord};
use crate::broker::consumer::{self, ConsumerConfig, Handler};
use crate::broker::{ConsumeMode, Delivery};
use crate::bugs::Bugs;
use crate::log::DurableLog;
use crate::node::NodeEnv;
use crate::probes::names;
use crate::trade::{TradeEvent, TRADE_EVENTS_QUEUES, TRADE_EVENTS_TOPIC};
use crate::transport::Transport;
use madsim::rand::Rng;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A projection of trade events that a replica node keeps.
pub trait Projection: Send + 'static {
    type Record: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// The consumer group (also the node's name and its log's).
    const GROUP: &'static str;
    fn recover(bugs: Bugs, records: &[Self::Record]) -> Self;
    /// `None`: the event was already consumed.
    fn decide(&self, event: &TradeEvent) -> Option<Self::Record>;
    /// Whether a decided record leaves the projection as it was (a stale version).
    fn is_stale(record: &Self::Record) -> bool;
    fn apply(&mut self, record: Self::Record);
    /// Event ids consumed so far (the dedup table).
    fn consumed(&self) -> &BTreeMap<String, u32>;
}

impl Projection for ConsumerRecordsCore {
    type Record = ConsumerRecordsRecord;
    const GROUP: &'static str = "consumer-records";
    fn recover(bugs: Bugs, records: &[Self::Record]) -> Self {
        ConsumerRecordsCore::recover(bugs, records)
    }
    fn decide(&self, event: &TradeEvent) -> Option<Self::Record> {
        ConsumerRecordsCore::decide(self, event)
    }
    fn is_stale(_: &Self::Record) -> bool {
        false
    }
    fn apply(&mut self, record: Self::Record) {
        ConsumerRecordsCore::apply(self, record)
    }
    fn consumed(&self) -> &BTreeMap<String, u32> {
        ConsumerRecordsCore::consumed(self)
    }
}

impl Projection for MerchantQueryCore {
    type Record = MerchantQueryRecord;
    const GROUP: &'static str = "merchant-query";
    fn recover(bugs: Bugs, records: &[Self::Record]) -> Self {
        MerchantQueryCore::recover(bugs, records)
    }
    fn decide(&self, event: &TradeEvent) -> Option<Self::Record> {
        MerchantQueryCore::decide(self, event)
    }
    fn is_stale(record: &Self::Record) -> bool {
        matches!(record, MerchantQueryRecord::Stale { .. })
    }
    fn apply(&mut self, record: Self::Record) {
        MerchantQueryCore::apply(self, record)
    }
    fn consumed(&self) -> &BTreeMap<String, u32> {
        MerchantQueryCore::consumed(self)
    }
}

/// How every consumer of the trade-events topic runs: one clustering group member taking
/// every queue, batches of 16, offsets committed every `commit_interval`.
pub fn trade_events_consumer(
    group: &str,
    consumer: &str,
    broker: SocketAddr,
    commit_interval: Duration,
) -> ConsumerConfig {
    ConsumerConfig {
        batch: 16,
        commit_interval,
        ..ConsumerConfig::new(
            group,
            consumer,
            TRADE_EVENTS_TOPIC,
            TRADE_EVENTS_QUEUES,
            ConsumeMode::Clustering,
            broker,
        )
    }
}

/// How a replica node is set up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplicaConfig {
    pub broker: SocketAddr,
    pub fsync_latency: Duration,
    /// The chance that processing one delivery fails (the replica's database is busy).
    pub failure_rate: f64,
    /// How often consumed offsets are committed (MetaQ: every 5 s).
    pub commit_interval: Duration,
}

/// A running replica node, as the harness holds it.
pub struct ReplicaNode<P> {
    core: Arc<Mutex<P>>,
}

impl<P> Clone for ReplicaNode<P> {
    fn clone(&self) -> Self {
        ReplicaNode {
            core: self.core.clone(),
        }
    }
}

fn lock<P>(core: &Mutex<P>) -> MutexGuard<'_, P> {
    core.lock().unwrap_or_else(|p| p.into_inner())
}

fn log_file<P: Projection>() -> String {
    format!("{}.log", P::GROUP)
}

impl<P: Projection> ReplicaNode<P> {
    /// Recovers the projection from its log and starts consuming.
    pub async fn start(env: &NodeEnv, config: ReplicaConfig) -> std::io::Result<Self> {
        let log = DurableLog::<P::Record>::open(env, log_file::<P>(), config.fsync_latency);
        let (records, report) = log.replay();
        if report.torn_bytes > 0 {
            env.probes.hit(names::RECOVERY_TORN_TAIL_CUT);
        }
        let core = P::recover(env.bugs, &records);
        // Events consumed before this start: meeting one again is a replay of messages whose
        // offset the previous life had not committed.
        let before: Arc<BTreeSet<String>> = Arc::new(core.consumed().keys().cloned().collect());
        let core = Arc::new(Mutex::new(core));
        let transport = Transport::for_node(env).await?;
        let handler: Handler = {
            let (core, env) = (core.clone(), env.clone());
            Arc::new(move |delivery: Delivery| {
                let (core, log, env, before) =
                    (core.clone(), log.clone(), env.clone(), before.clone());
                Box::pin(async move { process(&core, &log, &env, &before, config, delivery).await })
            })
        };
        let consumer =
            trade_events_consumer(P::GROUP, &env.name, config.broker, config.commit_interval);
        madsim::task::spawn(consumer::run(env.clone(), transport, consumer, handler));
        Ok(ReplicaNode { core })
    }

    /// Reads the live projection (the harness's god's-eye view).
    pub fn read<T>(&self, f: impl FnOnce(&P) -> T) -> T {
        f(&lock(&self.core))
    }

    /// What a replica whose node is down would recover from its disk.
    pub fn durable_state(env: &NodeEnv, config: ReplicaConfig) -> P {
        let log = DurableLog::<P::Record>::open(env, log_file::<P>(), config.fsync_latency);
        P::recover(env.bugs, &log.read_durable())
    }
}

/// Processes one delivery; `Ok` only once its effect (or its being a duplicate) is durable.
async fn process<P: Projection>(
    core: &Mutex<P>,
    log: &DurableLog<P::Record>,
    env: &NodeEnv,
    before: &BTreeSet<String>,
    config: ReplicaConfig,
    delivery: Delivery,
) -> Result<(), String> {
    let event = TradeEvent::decode(&delivery.message.payload)?;
    if config.failure_rate > 0.0 && madsim::rand::thread_rng().gen_bool(config.failure_rate) {
        return Err(format!("{} busy", P::GROUP));
    }
    let duplicate = {
        let mut core = lock(core);
        match core.decide(&event) {
            None => true,
            Some(record) => {
                if P::is_stale(&record) {
                    env.probes.hit(names::CONSUMER_STALE_VERSION_SKIPPED);
                }
                log.append(&record);
                core.apply(record);
                false
            }
        }
    };
    if duplicate {
        env.probes.hit(names::CONSUMER_DUPLICATE_SKIPPED);
        if before.contains(&event.id()) {
            env.probes.hit(names::CONSUMER_REPLAYED_AFTER_RESTART);
        }
    }
    // A duplicate's first processing may still be on its way to the disk.
    log.sync().await;
    Ok(())
}

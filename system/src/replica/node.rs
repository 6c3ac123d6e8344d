//! The replica node shell: one consumer group of the trade-events topic feeding one projection
//! (the consumer-record DB or the merchant-query DB) kept in the node's own durable log.
//!
//! The decisions are the [`ReplicaEngine`]'s (see `engine.rs`): a duplicate is skipped, a stale
//! version recorded as stale, and a delivery reported done only once its record is durable, so
//! an offset never covers an event the replica could lose. This shell draws which deliveries
//! fail on purpose (a busy database) from the node's own random stream, appends and syncs the
//! engine's records, and reports the result to the consumer runtime.

pub use super::engine::Projection;
use super::engine::{ReplicaEngine, ReplicaOutput};
use crate::broker::consumer::{self, BatchHandler, ConsumerConfig};
use crate::broker::{ConsumeMode, Delivery};
use crate::bugs::Bug;
use crate::log::DurableLog;
use crate::node::{lock, NodeEnv};
use crate::probes::names;
use crate::trade::{TRADE_EVENTS_QUEUES, TRADE_EVENTS_TOPIC};
use crate::transport::Transport;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a node consumes the trade events: how many deliveries of a pull its handler takes at
/// once (and makes durable with one fsync), and how many members of its group it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consuming {
    pub batch: u32,
    pub members: u32,
}

/// How every consumer of the trade-events topic runs: pulls of 16, offsets committed every
/// `commit_interval`, deliveries and group members as `consuming` says.
pub fn trade_events_consumer(
    group: &str,
    consumer: &str,
    broker: SocketAddr,
    commit_interval: Duration,
    consuming: Consuming,
) -> ConsumerConfig {
    ConsumerConfig {
        batch: 16,
        commit_interval,
        consume_batch: consuming.batch,
        members: consuming.members,
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
    /// Batch consumption and group members.
    pub consuming: Consuming,
}

/// A running replica node, as the harness holds it.
pub struct ReplicaNode<P> {
    engine: Arc<Mutex<ReplicaEngine<P>>>,
}

impl<P> Clone for ReplicaNode<P> {
    fn clone(&self) -> Self {
        ReplicaNode {
            engine: self.engine.clone(),
        }
    }
}

fn log_file<P: Projection>() -> String {
    format!("{}.log", P::GROUP)
}

/// The purpose of the replica's random stream: which deliveries find its database busy.
const FAILURE_STREAM: &str = "replica-failures";

/// What the consumer runtime's handler shares: the engine and the I/O it performs for it.
struct Runtime<P: Projection> {
    engine: Arc<Mutex<ReplicaEngine<P>>>,
    log: DurableLog<P::Record>,
    env: NodeEnv,
    failure_rate: f64,
    /// This incarnation's failure draws (see [`ReplicaNode::start`]).
    failures: Mutex<ChaCha8Rng>,
}

impl<P: Projection> ReplicaNode<P> {
    /// Recovers the projection from its log and starts consuming.
    pub async fn start(env: &NodeEnv, config: ReplicaConfig) -> std::io::Result<Self> {
        let log = DurableLog::<P::Record>::open(env, log_file::<P>(), config.fsync_latency);
        let (records, report) = log.replay();
        if report.torn_bytes > 0 {
            env.probes.hit(names::RECOVERY_TORN_TAIL_CUT);
        }
        let engine = Arc::new(Mutex::new(ReplicaEngine::<P>::recover(env.bugs, &records)));
        let transport = Transport::for_node(env).await?;
        // One stream per incarnation: the recovered log's length tells a restart's draws from
        // the previous life's, so a replay does not meet the same failures again.
        let failures = env.rng_with(FAILURE_STREAM, records.len() as u64);
        let runtime = Arc::new(Runtime {
            engine: engine.clone(),
            log,
            env: env.clone(),
            failure_rate: config.failure_rate,
            failures: Mutex::new(failures),
        });
        let handler: BatchHandler = Arc::new(move |deliveries: Vec<Delivery>| {
            let runtime = runtime.clone();
            Box::pin(async move { runtime.process(deliveries).await })
        });
        let consumer = trade_events_consumer(
            P::GROUP,
            &env.name.to_string(),
            config.broker,
            config.commit_interval,
            config.consuming,
        );
        madsim::task::spawn(consumer::run_batched(
            env.clone(),
            transport,
            consumer,
            handler,
        ));
        Ok(ReplicaNode { engine })
    }

    /// Reads the live projection (the harness's god's-eye view).
    pub fn read<T>(&self, f: impl FnOnce(&P) -> T) -> T {
        f(lock(&self.engine).projection())
    }

    /// What a replica whose node is down would recover from its disk.
    pub fn durable_state(env: &NodeEnv, config: ReplicaConfig) -> P {
        let log = DurableLog::<P::Record>::open(env, log_file::<P>(), config.fsync_latency);
        P::recover(env.bugs, &log.read_durable())
    }
}

impl<P: Projection> Runtime<P> {
    /// Processes the deliveries of one pull, in order: each draws whether the database is
    /// busy and is decided by the engine, its records appended; then one sync makes them all
    /// durable. A delivery's `Ok` leaves only once its effect (or the duplicate) is durable.
    async fn process(&self, deliveries: Vec<Delivery>) -> Vec<Result<(), String>> {
        let mut sync = false;
        let mut verdicts = Vec::with_capacity(deliveries.len());
        for delivery in &deliveries {
            let (outputs, mark) = self.decide(delivery);
            for output in outputs {
                match output {
                    ReplicaOutput::Probe(name) => self.env.probes.hit(name),
                    ReplicaOutput::Append(_) => {}
                    ReplicaOutput::Sync => sync = true,
                    ReplicaOutput::Done(result) => {
                        verdicts.push((result, mark));
                        break;
                    }
                }
            }
        }
        assert_eq!(
            verdicts.len(),
            deliveries.len(),
            "a delivery ends with Done"
        );
        if sync {
            if self.env.bugs.is(Bug::ReplicaAckBeforeFsync) {
                // The planted bug lets the fsync run behind the acknowledgement.
                let log = self.log.clone();
                madsim::task::spawn(async move { log.sync().await });
            } else {
                self.log.sync().await;
            }
        }
        // Invariant 19, reply form: a delivery acknowledged as processed (its offset will
        // be committed) leaves with its projection record durable.
        self.log.witness_verdicts(verdicts)
    }

    /// Draws whether the database is busy and lets the engine decide; returns its outputs
    /// (the records already appended) and where the log then ends.
    fn decide(&self, delivery: &Delivery) -> (Vec<ReplicaOutput<P::Record>>, usize) {
        let busy = self.failure_rate > 0.0 && lock(&self.failures).gen_bool(self.failure_rate);
        let mut engine = lock(&self.engine);
        let outputs = engine.deliver(delivery, busy);
        // Appended under the lock, so that no reader sees the record applied but not written.
        for output in &outputs {
            if let ReplicaOutput::Append(record) = output {
                self.log.append(record);
            }
        }
        (outputs, self.log.mark())
    }
}

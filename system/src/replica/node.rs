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
use crate::broker::consumer::{self, ConsumerConfig, Handler};
use crate::broker::{ConsumeMode, Delivery};
use crate::bugs::Bug;
use crate::log::DurableLog;
use crate::node::NodeEnv;
use crate::probes::names;
use crate::trade::{TRADE_EVENTS_QUEUES, TRADE_EVENTS_TOPIC};
use crate::transport::Transport;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

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
    engine: Arc<Mutex<ReplicaEngine<P>>>,
}

impl<P> Clone for ReplicaNode<P> {
    fn clone(&self) -> Self {
        ReplicaNode {
            engine: self.engine.clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
        let handler: Handler = Arc::new(move |delivery: Delivery| {
            let runtime = runtime.clone();
            Box::pin(async move { runtime.process(delivery).await })
        });
        let consumer = trade_events_consumer(
            P::GROUP,
            &env.name.to_string(),
            config.broker,
            config.commit_interval,
        );
        madsim::task::spawn(consumer::run(env.clone(), transport, consumer, handler));
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
    /// Processes one delivery: draws whether the database is busy, lets the engine decide,
    /// and performs its outputs; `Ok` only once the effect (or the duplicate) is durable.
    async fn process(&self, delivery: Delivery) -> Result<(), String> {
        let busy = self.failure_rate > 0.0 && lock(&self.failures).gen_bool(self.failure_rate);
        let (outputs, mark) = {
            let mut engine = lock(&self.engine);
            let outputs = engine.deliver(&delivery, busy);
            // Appended under the lock, so that no reader sees the record applied but not
            // written.
            for output in &outputs {
                if let ReplicaOutput::Append(record) = output {
                    self.log.append(record);
                }
            }
            (outputs, self.log.mark())
        };
        for output in outputs {
            match output {
                ReplicaOutput::Probe(name) => self.env.probes.hit(name),
                ReplicaOutput::Append(_) => {}
                // The planted bug lets the fsync run behind the acknowledgement.
                ReplicaOutput::Sync if self.env.bugs.is(Bug::ReplicaAckBeforeFsync) => {
                    let log = self.log.clone();
                    madsim::task::spawn(async move { log.sync().await });
                }
                ReplicaOutput::Sync => self.log.sync().await,
                ReplicaOutput::Done(result) => {
                    // Invariant 19, reply form: a delivery acknowledged as processed (its
                    // offset will be committed) leaves with its projection record durable.
                    if result.is_ok() {
                        self.log.witness_reply(mark);
                    }
                    return result;
                }
            }
        }
        panic!("a delivery always ends with Done")
    }
}

//! The consumer runtime: a push-style consumer built on pulls, as RocketMQ's
//! `DefaultMQPushConsumer` is. It subscribes its group, pulls each of its queues from a local
//! position, hands every delivery to the handler one at a time in queue order (so one key's
//! messages are processed in the order they were sent), and commits the positions it reached
//! every `commit_interval`. A failed delivery is nacked to the broker, which retries it on the
//! group's delay schedule and finally dead-letters it; the runtime polls the due retries each
//! round.
//!
//! Delivery is at-least-once: a crash replays everything processed since the last commit (up
//! to one `commit_interval` of messages), and a lost acknowledgement replays a retry. Handlers
//! must therefore be idempotent. The planted `offset-before-processing` commits a batch's end
//! before processing it, so a crash in between loses the batch instead.
//!
//! Every decision above is the [`ConsumerEngine`]'s (`consumer_engine.rs`, with its table
//! tests); this file is the thin async runtime that performs the engine's outputs (broker
//! calls, the handler, the idle pause, the buggify window, the commit timer) and feeds their
//! results back.
//!
//! RocketMQ rebalances a group's queues over its live consumers through the broker's
//! heartbeats. paylab's broker keeps no membership, so the split is static: [`run`] consumes
//! every queue of the topic (one consumer per clustering group, or a broadcast consumer), and
//! several consumers of one clustering group each [`run_on`] their share from [`allocate`].

use super::consumer_engine::{Answer, ConsumerEngine, ConsumerIdentity, Input, Output};
use super::types::{BrokerCall, BrokerCommand, ConsumeMode, Delivery, PULL_BATCH_MAX};
use crate::buggify::Point;
use crate::bugs::Bug;
use crate::node::NodeEnv;
use crate::transport::Transport;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How a consumer runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    pub group: String,
    /// This consumer's name (its offsets' owner in a broadcast group).
    pub consumer: String,
    pub topic: String,
    /// The topic's queue count.
    pub queues: u32,
    pub mode: ConsumeMode,
    pub broker: SocketAddr,
    /// Messages per pull, 1 to [`PULL_BATCH_MAX`] (clamped).
    pub batch: u32,
    /// The pause after a failed call, or after a round that found nothing when `hold` is zero.
    pub idle_wait: Duration,
    /// Long polling: how long the broker may hold this consumer's wait for news after a round
    /// (at most two thirds of `rpc_timeout`, so that a held call is answered before it times
    /// out; a longer hold is cut to that). Zero polls every `idle_wait` instead.
    pub hold: Duration,
    /// How often processed positions are committed (MetaQ: 5 s; the simulation's default
    /// 500 ms). A crash replays up to this much.
    pub commit_interval: Duration,
    /// How long one call waits for the broker.
    pub rpc_timeout: Duration,
    /// Batch consumption: how many deliveries of one pull a [`BatchHandler`] takes at once
    /// (RocketMQ's `consumeMessageBatchMaxSize`, default 1), at most `batch`. A one-at-a-time
    /// [`Handler`] always takes one.
    pub consume_batch: u32,
    /// With [`run_batched`]: how many members of the group this node runs, each pulling its
    /// share of the queues ([`allocate`]) concurrently with the others, as RocketMQ keeps a
    /// pull in flight per queue; 1 works every queue in turn.
    pub members: u32,
}

impl ConsumerConfig {
    /// A consumer with the simulation's defaults: batches of 32, long polls held up to 200 ms,
    /// 20 ms pauses after a failed call, commits every 500 ms, 300 ms calls.
    pub fn new(
        group: impl Into<String>,
        consumer: impl Into<String>,
        topic: impl Into<String>,
        queues: u32,
        mode: ConsumeMode,
        broker: SocketAddr,
    ) -> Self {
        ConsumerConfig {
            group: group.into(),
            consumer: consumer.into(),
            topic: topic.into(),
            queues,
            mode,
            broker,
            batch: PULL_BATCH_MAX,
            idle_wait: Duration::from_millis(20),
            hold: Duration::from_millis(200),
            commit_interval: Duration::from_millis(500),
            rpc_timeout: Duration::from_millis(300),
            consume_batch: 1,
            members: 1,
        }
    }
}

/// Processes one delivery; Err(reason) = consumption failed (the message goes to the retry
/// queue).
pub type Handler =
    Arc<dyn Fn(Delivery) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Processes the deliveries of one pull at once, in queue order, and gives one verdict per
/// delivery, in the same order (batch consumption: one durable write can cover them all).
pub type BatchHandler = Arc<
    dyn Fn(Vec<Delivery>) -> Pin<Box<dyn Future<Output = Vec<Result<(), String>>> + Send>>
        + Send
        + Sync,
>;

/// What processes a consumer's deliveries.
#[derive(Clone)]
enum Handling {
    One(Handler),
    Many(BatchHandler),
}

/// Wraps an async closure as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move |delivery| Box::pin(f(delivery)))
}

/// The queues consumer `index` of `consumers` takes of a topic with `queues` queues: contiguous
/// and as even as possible (RocketMQ's `AllocateMessageQueueAveragely`). Every queue goes to
/// exactly one consumer; a consumer beyond the queue count gets none.
pub fn allocate(queues: u32, consumers: u32, index: u32) -> Vec<u32> {
    assert!(
        consumers > 0 && index < consumers,
        "consumer {index} of {consumers}"
    );
    let (base, extra) = (queues / consumers, queues % consumers);
    let start = index * base + index.min(extra);
    let len = base + u32::from(index < extra);
    (start..start + len).collect()
}

/// Runs a consumer on every queue of its topic. Never returns; the node is killed by the
/// harness.
pub async fn run(env: NodeEnv, transport: Transport, config: ConsumerConfig, handler: Handler) {
    let queues: Vec<u32> = (0..config.queues).collect();
    run_on(env, transport, config, queues, handler).await
}

/// Runs a consumer on `queues` of its topic only. Never returns.
///
/// The decisions are the [`ConsumerEngine`]'s; this runtime performs its outputs: broker
/// calls, the handler, the idle pause, the buggify window and the commit timer.
pub async fn run_on(
    env: NodeEnv,
    transport: Transport,
    config: ConsumerConfig,
    queues: Vec<u32>,
    handler: Handler,
) {
    run_handling(env, transport, config, queues, Handling::One(handler)).await
}

/// Runs consumers on every queue of the topic whose handler takes up to
/// `config.consume_batch` deliveries at once: one working every queue in turn, or
/// `config.members` members of the group named `{consumer}-{index}`, each on its share of the
/// queues. Never returns.
pub async fn run_batched(
    env: NodeEnv,
    transport: Transport,
    config: ConsumerConfig,
    handler: BatchHandler,
) {
    let members = config.members.clamp(1, config.queues.max(1));
    if members == 1 {
        let queues: Vec<u32> = (0..config.queues).collect();
        return run_handling(env, transport, config, queues, Handling::Many(handler)).await;
    }
    let runs: Vec<_> = (0..members)
        .map(|index| {
            let member = ConsumerConfig {
                consumer: format!("{}-{index}", config.consumer),
                ..config.clone()
            };
            let queues = allocate(config.queues, members, index);
            let handling = Handling::Many(handler.clone());
            madsim::task::spawn(run_handling(
                env.clone(),
                transport.clone(),
                member,
                queues,
                handling,
            ))
        })
        .collect();
    for run in runs {
        let _ = run.await;
    }
}

async fn run_handling(
    env: NodeEnv,
    transport: Transport,
    config: ConsumerConfig,
    queues: Vec<u32>,
    handler: Handling,
) {
    let consume_batch = match handler {
        Handling::One(_) => 1,
        Handling::Many(_) => config.consume_batch,
    };
    let identity = ConsumerIdentity {
        group: config.group.clone(),
        consumer: config.consumer.clone(),
        topic: config.topic.clone(),
        mode: config.mode,
        batch: config.batch,
        hold_ms: held_ms(&config),
        consume_batch,
    };
    let commit_first = env.bugs.is(Bug::OffsetBeforeProcessing);
    let runtime = Arc::new(Runtime {
        engine: Mutex::new(ConsumerEngine::new(identity, queues, commit_first)),
        env,
        transport,
        config,
        handler,
    });
    let mut input = Input::Start;
    loop {
        let outputs = runtime.engine().step(input);
        input = runtime.perform(outputs).await;
    }
}

/// How long the broker may hold this consumer's long poll: `hold`, but at most two thirds of
/// `rpc_timeout`, so that a held call is answered (with room for the network) before the
/// consumer gives up on it.
fn held_ms(config: &ConsumerConfig) -> u64 {
    let hold = config.hold.min(config.rpc_timeout * 2 / 3);
    u64::try_from(hold.as_millis()).unwrap_or(u64::MAX)
}

/// The consumer's I/O: what performs the engine's outputs.
struct Runtime {
    engine: Mutex<ConsumerEngine>,
    env: NodeEnv,
    transport: Transport,
    config: ConsumerConfig,
    handler: Handling,
}

impl Runtime {
    fn engine(&self) -> MutexGuard<'_, ConsumerEngine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn call(&self, command: BrokerCommand) -> Answer {
        self.transport
            .call(
                self.config.broker,
                BrokerCall(command),
                self.config.rpc_timeout,
            )
            .await
            .ok()
    }

    /// Hands one delivery to the handler.
    async fn process(&self, delivery: Delivery) -> Result<(), String> {
        match &self.handler {
            Handling::One(handler) => handler(delivery).await,
            Handling::Many(handler) => {
                let verdicts = handler(vec![delivery]).await;
                let [verdict] = <[_; 1]>::try_from(verdicts).expect("one verdict per delivery");
                verdict
            }
        }
    }

    /// Performs one main-loop step's outputs and returns the input its blocking output led to.
    async fn perform(self: &Arc<Self>, outputs: Vec<Output>) -> Input {
        let mut next = None;
        for output in outputs {
            assert!(
                next.is_none(),
                "a main-loop step blocks on one output, last"
            );
            next = match output {
                Output::Probe(name) => {
                    self.env.probes.hit(name);
                    None
                }
                Output::StartCommitTimer => {
                    madsim::task::spawn(commit_periodically(self.clone()));
                    None
                }
                Output::Call(command) => Some(Input::Answer(self.call(command).await)),
                Output::Process(delivery) => Some(Input::Processed(self.process(delivery).await)),
                Output::ProcessMany(deliveries) => {
                    let Handling::Many(handler) = &self.handler else {
                        panic!("a one-at-a-time handler is handed one delivery at a time");
                    };
                    Some(Input::ProcessedMany(handler(deliveries).await))
                }
                Output::Idle => {
                    madsim::time::sleep(self.config.idle_wait).await;
                    Some(Input::Woke)
                }
                Output::Window => {
                    let env = &self.env;
                    env.buggify
                        .window(Point::ConsumeToOffset, &env.probes)
                        .await;
                    Some(Input::Woke)
                }
                Output::Commit { .. } => panic!("the main loop does not commit on the timer"),
            };
        }
        next.expect("every main-loop step waits on one output")
    }
}

/// Every `commit_interval`, commits the positions processing moved (the engine picks them).
async fn commit_periodically(runtime: Arc<Runtime>) {
    loop {
        madsim::time::sleep(runtime.config.commit_interval).await;
        let commits = runtime.engine().step(Input::CommitTick);
        for output in commits {
            let Output::Commit { queue, command } = output else {
                panic!("a commit tick only commits: {output:?}");
            };
            let answer = runtime.call(command).await;
            let rest = runtime.engine().step(Input::Committed { queue, answer });
            assert!(rest.is_empty(), "a commit's answer only updates positions");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_stays_below_the_call_timeout() {
        let broker = "10.0.0.1:9000".parse().expect("an address");
        let mut c = ConsumerConfig::new("g", "c", "t", 4, ConsumeMode::Clustering, broker);
        assert_eq!(
            held_ms(&c),
            200,
            "the default hold is within the 300 ms timeout"
        );
        c.hold = Duration::from_secs(5);
        assert_eq!(held_ms(&c), 200);
        c.hold = Duration::ZERO;
        assert_eq!(held_ms(&c), 0, "zero keeps the idle pauses");
    }

    #[test]
    fn allocation_covers_every_queue_once() {
        assert_eq!(allocate(4, 1, 0), vec![0, 1, 2, 3]);
        assert_eq!(allocate(4, 2, 1), vec![2, 3]);
        assert_eq!(allocate(5, 3, 0), vec![0, 1]);
        assert_eq!(allocate(5, 3, 1), vec![2, 3]);
        assert_eq!(allocate(5, 3, 2), vec![4]);
        assert_eq!(allocate(2, 3, 2), Vec::<u32>::new());
        for queues in 0..10 {
            for consumers in 1..6 {
                let all: Vec<u32> = (0..consumers)
                    .flat_map(|i| allocate(queues, consumers, i))
                    .collect();
                assert_eq!(all, (0..queues).collect::<Vec<_>>());
            }
        }
    }
}

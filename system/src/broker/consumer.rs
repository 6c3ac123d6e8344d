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
//! RocketMQ rebalances a group's queues over its live consumers through the broker's
//! heartbeats. paylab's broker keeps no membership, so the split is static: [`run`] consumes
//! every queue of the topic (one consumer per clustering group, or a broadcast consumer), and
//! several consumers of one clustering group each [`run_on`] their share from [`allocate`].

use super::types::{
    BrokerCall, BrokerCommand, BrokerError, BrokerReply, ConsumeMode, Delivery, MAX_PULL_BATCH,
};
use crate::buggify::Point;
use crate::bugs::Bug;
use crate::node::NodeEnv;
use crate::probes::names;
use crate::transport::{RpcError, Transport};
use std::collections::BTreeMap;
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
    /// Messages per pull, 1 to [`MAX_PULL_BATCH`] (clamped).
    pub batch: u32,
    /// The pause after a round that found nothing, or after a failed call.
    pub idle_wait: Duration,
    /// How often processed positions are committed (MetaQ: 5 s; the simulation's default
    /// 500 ms). A crash replays up to this much.
    pub commit_interval: Duration,
    /// How long one call waits for the broker.
    pub rpc_timeout: Duration,
}

impl ConsumerConfig {
    /// A consumer with the simulation's defaults: batches of 32, 20 ms idle wait, commits every
    /// 500 ms, 300 ms calls.
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
            batch: MAX_PULL_BATCH,
            idle_wait: Duration::from_millis(20),
            commit_interval: Duration::from_millis(500),
            rpc_timeout: Duration::from_millis(300),
        }
    }
}

/// Processes one delivery; Err(reason) = consumption failed (the message goes to the retry
/// queue).
pub type Handler =
    Arc<dyn Fn(Delivery) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

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
pub async fn run_on(
    env: NodeEnv,
    transport: Transport,
    config: ConsumerConfig,
    queues: Vec<u32>,
    handler: Handler,
) {
    let consumer = Arc::new(Consumer {
        positions: Mutex::new(queues.iter().map(|q| (*q, Position::default())).collect()),
        env,
        transport,
        config,
        handler,
    });
    consumer.subscribe().await;
    madsim::task::spawn(commit_periodically(consumer.clone()));
    loop {
        let mut found = false;
        for &queue in &queues {
            found |= consumer.consume_queue(queue).await;
        }
        if consumer.config.mode == ConsumeMode::Clustering {
            found |= consumer.consume_retries().await;
        }
        if !found {
            madsim::time::sleep(consumer.config.idle_wait).await;
        }
    }
}

/// Where a consumer stands on one queue.
#[derive(Debug, Clone, Copy, Default)]
struct Position {
    /// The next offset to pull; `None` until the first pull, which starts at the committed
    /// offset.
    next: Option<u64>,
    /// Everything below is processed and may be committed.
    done: Option<u64>,
    /// The offset known committed at the broker.
    committed: u64,
}

struct Consumer {
    env: NodeEnv,
    transport: Transport,
    config: ConsumerConfig,
    handler: Handler,
    positions: Mutex<BTreeMap<u32, Position>>,
}

/// What one delivery's processing left to do.
enum Processed {
    /// Consumed, or failed and handed to the retry queue (or, broadcast, dropped).
    Settled,
    /// Failed, and the broker did not take the failure: the delivery must be made again.
    Unsettled,
}

impl Consumer {
    fn positions(&self) -> MutexGuard<'_, BTreeMap<u32, Position>> {
        self.positions.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn call(
        &self,
        command: BrokerCommand,
    ) -> Result<Result<BrokerReply, BrokerError>, RpcError> {
        self.transport
            .call(
                self.config.broker,
                BrokerCall(command),
                self.config.rpc_timeout,
            )
            .await
    }

    /// Subscribes the group, retrying until the broker accepts.
    async fn subscribe(&self) {
        let c = &self.config;
        loop {
            let subscribe = BrokerCommand::Subscribe {
                group: c.group.clone(),
                topic: c.topic.clone(),
                mode: c.mode,
            };
            match self.call(subscribe).await {
                Ok(Ok(_)) => return,
                Ok(Err(refusal)) => {
                    tracing::warn!(group = %c.group, topic = %c.topic, %refusal, "subscription refused")
                }
                Err(e) => tracing::debug!(group = %c.group, error = %e, "subscription unanswered"),
            }
            madsim::time::sleep(c.idle_wait).await;
        }
    }

    /// Pulls one batch of `queue` and processes it. True if it held any message.
    async fn consume_queue(&self, queue: u32) -> bool {
        let c = &self.config;
        let from = self.positions().get(&queue).and_then(|p| p.next);
        let pull = BrokerCommand::Pull {
            group: c.group.clone(),
            consumer: c.consumer.clone(),
            topic: c.topic.clone(),
            queue,
            from,
            max: c.batch.clamp(1, MAX_PULL_BATCH),
        };
        let (deliveries, next_offset) = match self.call(pull).await {
            Ok(Ok(BrokerReply::Pulled {
                deliveries,
                next_offset,
                ..
            })) => (deliveries, next_offset),
            Ok(Err(BrokerError::OffsetBeyondEnd { offset, end })) => {
                // The broker lost messages this consumer had seen (an unsafe flush policy and
                // a power loss): start again from the committed offset.
                tracing::warn!(group = %c.group, queue, offset, end, "position beyond the queue's end, rewinding");
                self.positions().insert(queue, Position::default());
                return false;
            }
            Ok(Ok(other)) => {
                tracing::warn!(?other, "unexpected reply to a pull");
                return false;
            }
            Ok(Err(BrokerError::UnknownGroup(_) | BrokerError::NotSubscribed { .. })) => {
                // The broker lost the subscription (an unsafe flush policy and a power loss):
                // subscribe again and start over from whatever offset it kept.
                tracing::warn!(group = %c.group, queue, "subscription lost, subscribing again");
                self.subscribe().await;
                self.positions().insert(queue, Position::default());
                return false;
            }
            Ok(Err(refusal)) => {
                tracing::warn!(group = %c.group, queue, %refusal, "pull refused");
                madsim::time::sleep(c.idle_wait).await;
                return false;
            }
            Err(_) => {
                madsim::time::sleep(c.idle_wait).await;
                return false;
            }
        };
        let first = deliveries
            .first()
            .map_or(next_offset, |d| d.message.id.offset);
        if from.is_none() {
            // The first pull started at the committed offset.
            let mut positions = self.positions();
            let p = positions.entry(queue).or_default();
            p.committed = p.committed.max(first);
            p.done = Some(first);
        }
        if deliveries.is_empty() {
            self.advance(queue, next_offset);
            return false;
        }
        if self.env.bugs.is(Bug::OffsetBeforeProcessing) {
            // The planted bug: the batch is committed before it is processed.
            self.commit(queue, next_offset).await;
            self.window().await;
            let reached = self.process_batch(deliveries, next_offset).await;
            self.advance(queue, reached);
        } else {
            let reached = self.process_batch(deliveries, next_offset).await;
            self.window().await;
            self.advance(queue, reached);
        }
        true
    }

    async fn window(&self) {
        let env = &self.env;
        env.buggify
            .window(Point::ConsumeToOffset, &env.probes)
            .await;
    }

    /// Processes a batch in order; returns the offset processing reached: the batch's end, or
    /// the first delivery whose failure the broker did not take (it is pulled again).
    async fn process_batch(&self, deliveries: Vec<Delivery>, next_offset: u64) -> u64 {
        for delivery in deliveries {
            let offset = delivery.message.id.offset;
            if let Processed::Unsettled = self.process(delivery).await {
                return offset;
            }
        }
        next_offset
    }

    /// Hands one delivery to the handler. A failure goes to the broker's retry queue; a retry
    /// that succeeded is acknowledged (a lost acknowledgement leaves it due: it is delivered
    /// again).
    async fn process(&self, delivery: Delivery) -> Processed {
        let c = &self.config;
        let (message, attempt) = (delivery.message.id.clone(), delivery.attempt);
        let reason = match (self.handler)(delivery).await {
            Ok(()) if attempt > 1 => {
                let ack = BrokerCommand::AckRetry {
                    group: c.group.clone(),
                    message,
                    attempt,
                };
                if let Ok(Err(refusal)) = self.call(ack).await {
                    tracing::warn!(group = %c.group, %refusal, "retry acknowledgement refused");
                }
                return Processed::Settled;
            }
            Ok(()) => return Processed::Settled,
            Err(reason) => reason,
        };
        self.env.probes.hit(names::CONSUMER_PROCESSING_FAILED);
        if c.mode == ConsumeMode::Broadcast {
            tracing::warn!(group = %c.group, consumer = %c.consumer, %message, %reason, "broadcast consumption failed (not retried)");
            return Processed::Settled;
        }
        tracing::debug!(group = %c.group, %message, attempt, %reason, "consumption failed");
        let nack = BrokerCommand::Nack {
            group: c.group.clone(),
            message: message.clone(),
            attempt,
        };
        match self.call(nack).await {
            Ok(Ok(_)) => Processed::Settled,
            Ok(Err(refusal)) => {
                tracing::warn!(group = %c.group, %message, attempt, %refusal, "nack refused");
                Processed::Settled
            }
            Err(_) => Processed::Unsettled,
        }
    }

    /// Moves the local position of `queue` to `offset` after a batch, and makes it committable.
    fn advance(&self, queue: u32, offset: u64) {
        let mut positions = self.positions();
        let p = positions.entry(queue).or_default();
        // Not if the queue was rewound meanwhile (its position is then unknown again).
        if p.done.is_some() {
            p.next = Some(offset);
            p.done = Some(offset);
        }
    }

    /// Commits `offset` on `queue`. False if the broker did not confirm it.
    async fn commit(&self, queue: u32, offset: u64) -> bool {
        let c = &self.config;
        let commit = BrokerCommand::CommitOffset {
            group: c.group.clone(),
            consumer: c.consumer.clone(),
            topic: c.topic.clone(),
            queue,
            offset,
        };
        match self.call(commit).await {
            Ok(Ok(BrokerReply::OffsetCommitted { offset })) => {
                let mut positions = self.positions();
                let p = positions.entry(queue).or_default();
                p.committed = p.committed.max(offset);
                true
            }
            Ok(Err(BrokerError::OffsetBeyondEnd { offset, end })) => {
                tracing::warn!(group = %c.group, queue, offset, end, "commit beyond the queue's end, rewinding");
                self.positions().insert(queue, Position::default());
                false
            }
            Ok(other) => {
                tracing::warn!(group = %c.group, queue, ?other, "offset commit refused");
                false
            }
            Err(_) => false,
        }
    }

    /// Processes the group's due retries: acknowledged on success, nacked again on failure. A
    /// lost acknowledgement leaves the retry due, so it is delivered again. True if any was
    /// due.
    async fn consume_retries(&self) -> bool {
        let c = &self.config;
        let pull = BrokerCommand::PullRetries {
            group: c.group.clone(),
            max: c.batch.clamp(1, MAX_PULL_BATCH),
        };
        let deliveries = match self.call(pull).await {
            Ok(Ok(BrokerReply::RetriesDue { deliveries })) => deliveries,
            Ok(other) => {
                tracing::warn!(group = %c.group, ?other, "retry pull refused");
                return false;
            }
            Err(_) => {
                madsim::time::sleep(c.idle_wait).await;
                return false;
            }
        };
        let mut found = false;
        for delivery in deliveries {
            // A retry of another topic, or of a queue another consumer of the group owns, is
            // that consumer's to process.
            let id = &delivery.message.id;
            if id.topic != c.topic || !self.positions().contains_key(&id.queue) {
                continue;
            }
            found = true;
            self.env.probes.hit(names::CONSUMER_RETRY_DELIVERED);
            // Unsettled, a retry simply stays due and comes again.
            let _ = self.process(delivery).await;
        }
        found
    }
}

/// Commits every queue whose processed position moved past its committed offset, every
/// `commit_interval`.
async fn commit_periodically(consumer: Arc<Consumer>) {
    loop {
        madsim::time::sleep(consumer.config.commit_interval).await;
        let moved: Vec<(u32, u64)> = consumer
            .positions()
            .iter()
            .filter_map(|(q, p)| p.done.filter(|d| *d > p.committed).map(|d| (*q, d)))
            .collect();
        for (queue, offset) in moved {
            consumer.commit(queue, offset).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

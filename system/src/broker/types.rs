//! The broker's vocabulary: message and half ids, stored messages, the check-back and retry
//! policies, consumer-group modes, commands, replies and refusals, and the limits on all of them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The longest topic, group, consumer, producer group or producer message id, in bytes
/// (RocketMQ's topic limit is 127 characters).
pub const NAME_BYTES_MAX: usize = 127;

/// The longest message key, in bytes.
pub const KEY_BYTES_MAX: usize = 256;

/// The longest message payload, in bytes. RocketMQ allows 4 MiB; the platform's events are
/// small, so a larger payload here means a bug in a producer.
pub const PAYLOAD_BYTES_MAX: usize = 4_096;

/// The most queues one topic may have.
pub const QUEUES_PER_TOPIC_MAX: u32 = 64;

/// The most topics one broker may hold.
pub const TOPICS_MAX: usize = 256;

/// The most consumer groups one broker may hold.
pub const GROUPS_MAX: usize = 256;

/// The most messages one queue may hold (the simulated commit log is never truncated).
pub const MESSAGES_PER_QUEUE_MAX: u64 = 1 << 20;

/// The most half messages that may wait for a decision at once.
pub const PENDING_HALVES_MAX: usize = 65_536;

/// The most messages one pull (or one retry pull) may return; RocketMQ's `pullBatchSize`
/// default.
pub const PULL_BATCH_MAX: u32 = 32;

/// The longest an `Await` may be held (RocketMQ's `brokerSuspendMaxTimeMillis`, 15 s).
pub const AWAIT_HOLD_MAX_MS: u64 = 15_000;

/// The number of retry delay levels (RocketMQ's levels 3 to 18).
pub const RETRY_LEVELS: usize = 16;

/// RocketMQ's retry delays for failed consumption: 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m
/// 30m 1h 2h. Level `n` (0-based) is the wait before delivery attempt `n + 2`.
pub const RETRY_DELAYS_MS: [u64; RETRY_LEVELS] = [
    10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000, 480_000, 540_000,
    600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];

/// [`RETRY_DELAYS_MS`] divided by 100, so that a message runs through all sixteen retries to
/// its dead-letter queue in under three simulated minutes.
pub const SIMULATION_RETRY_DELAYS_MS: [u64; RETRY_LEVELS] = [
    100, 300, 600, 1_200, 1_800, 2_400, 3_000, 3_600, 4_200, 4_800, 5_400, 6_000, 12_000, 18_000,
    36_000, 72_000,
];

/// Where RocketMQ parks half messages discarded after too many unanswered check-backs.
pub const TRANS_CHECK_MAX_TIME_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";

/// The name of a group's retry topic (`%RETRY%group`).
pub fn retry_topic(group: &str) -> String {
    format!("%RETRY%{group}")
}

/// The name of a group's dead-letter topic (`%DLQ%group`).
pub fn dlq_topic(group: &str) -> String {
    format!("%DLQ%{group}")
}

/// The queue of a topic with `queues` queues that a message with `key` goes to: FNV-1a, so that
/// every message of one key lands in one queue (and is consumed in order) whatever the process.
pub fn queue_of(key: &str, queues: u32) -> u32 {
    assert!(queues > 0, "a topic has at least one queue");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(queues)) as u32
}

/// A message's place: its topic, its queue there and its offset (position) in that queue.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId {
    pub topic: String,
    pub queue: u32,
    pub offset: u64,
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.topic, self.queue, self.offset)
    }
}

/// A half (transactional) message, numbered in the order the broker stored them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HalfId(pub u64);

impl fmt::Display for HalfId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "half-{}", self.0)
    }
}

/// A message in a queue, visible to consumers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub key: String,
    pub payload: String,
    pub producer_msg_id: String,
    /// The broker's clock when the message became visible (sent, or its half committed).
    pub stored_ms: u64,
    /// The half message it was committed from, for a transactional message.
    pub from_half: Option<HalfId>,
}

/// One hand-over of a message to a consumer. `attempt` is 1 for a delivery from the topic's
/// queue and `n + 1` for the n-th retry (RocketMQ's `reconsumeTimes + 1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub message: Message,
    pub attempt: u32,
}

/// Where a half message stands. Only `Pending` may change, and only once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HalfState {
    /// Invisible to consumers, waiting for the producer's decision or a check-back.
    Pending,
    /// Committed: appended to its queue as this message.
    Committed(MessageId),
    /// Rolled back: never delivered.
    RolledBack,
    /// Unresolved after the last check-back: parked in [`TRANS_CHECK_MAX_TIME_TOPIC`], never
    /// delivered.
    Discarded,
}

/// A half message and its check-back schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HalfMessage {
    pub id: HalfId,
    pub topic: String,
    pub key: String,
    pub payload: String,
    pub producer_msg_id: String,
    /// The producer group asked on a check-back.
    pub producer_group: String,
    pub stored_ms: u64,
    /// Check-backs sent so far.
    pub checks: u32,
    /// When the next check-back (or, after the last one, the discard) is due.
    pub next_check_ms: u64,
    pub state: HalfState,
}

/// When the broker asks a producer about an undecided half message, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckPolicy {
    /// From storing the half to the first check-back.
    pub first_ms: u64,
    /// From one check-back to the next (and from the last one to the discard).
    pub interval_ms: u64,
    /// Check-backs sent before an undecided half is discarded.
    pub max_checks: u32,
}

impl CheckPolicy {
    /// RocketMQ's defaults: first after 6 s, then every 60 s, at most 15 checks.
    pub fn rocketmq() -> Self {
        CheckPolicy {
            first_ms: 6_000,
            interval_ms: 60_000,
            max_checks: 15,
        }
    }

    /// Ten times faster than RocketMQ for the first check, sixty for the rest, and five checks:
    /// an undecided half is discarded 5.6 simulated seconds after it was stored.
    pub fn simulation() -> Self {
        CheckPolicy {
            first_ms: 600,
            interval_ms: 1_000,
            max_checks: 5,
        }
    }
}

impl Default for CheckPolicy {
    fn default() -> Self {
        CheckPolicy::rocketmq()
    }
}

/// How failed consumption is retried before the message goes to the group's dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// The wait before retry `n + 1` (0-based level `n`).
    pub delays_ms: [u64; RETRY_LEVELS],
    /// Retries before the dead-letter queue (RocketMQ's `maxReconsumeTimes`), at most
    /// [`RETRY_LEVELS`].
    pub retries_max: u32,
}

impl RetryPolicy {
    /// RocketMQ's 16 retries from 10 s to 2 h.
    pub fn rocketmq() -> Self {
        RetryPolicy {
            delays_ms: RETRY_DELAYS_MS,
            retries_max: RETRY_LEVELS as u32,
        }
    }

    /// The same 16 retries, a hundred times faster.
    pub fn simulation() -> Self {
        RetryPolicy {
            delays_ms: SIMULATION_RETRY_DELAYS_MS,
            retries_max: RETRY_LEVELS as u32,
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::rocketmq()
    }
}

/// A broker's timing policies. They shape decisions only: every time they yield is written into
/// the record, so replaying a log never depends on the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BrokerConfig {
    pub check: CheckPolicy,
    pub retry: RetryPolicy,
}

impl BrokerConfig {
    /// Both policies at simulation speed.
    pub fn simulation() -> Self {
        BrokerConfig {
            check: CheckPolicy::simulation(),
            retry: RetryPolicy::simulation(),
        }
    }
}

/// How a consumer group shares a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConsumeMode {
    /// Each message is consumed once per group; one offset per (group, queue).
    Clustering,
    /// Each message is consumed once per consumer instance; one offset per (group, consumer,
    /// queue). As in RocketMQ, failed broadcast consumption is not retried.
    Broadcast,
}

/// A consumer group: how it consumes and what it subscribes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerGroup {
    pub mode: ConsumeMode,
    pub topics: BTreeSet<String>,
}

/// Whose consumption an offset records. `consumer` is set only for broadcast groups.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OffsetKey {
    pub group: String,
    pub consumer: Option<String>,
    pub topic: String,
    pub queue: u32,
}

/// Where one message stands in one group's retry queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetryState {
    /// Delivery `attempt` is due at `due_ms` (and stays due until it is acknowledged or fails).
    Scheduled { attempt: u32, due_ms: u64 },
    /// Delivery `attempt` succeeded; no more retries.
    Acked { attempt: u32 },
    /// All `attempts` failed; the message is in the group's dead-letter queue.
    DeadLettered { attempts: u32 },
}

/// A message parked in a group's dead-letter queue (`%DLQ%group`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub message: MessageId,
    /// Deliveries that failed, the first included.
    pub attempts: u32,
    pub at_ms: u64,
}

/// What a failed consumption led to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NackOutcome {
    /// Delivery `attempt` is scheduled at `due_ms`.
    Retry { attempt: u32, due_ms: u64 },
    /// The message went to the group's dead-letter queue.
    DeadLettered,
    /// The failed delivery was already reported or superseded; nothing changed.
    Stale,
}

/// What producers, consumers and the broker's own timers ask of the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BrokerCommand {
    /// Creates a topic; repeating it with the same queue count changes nothing.
    CreateTopic { topic: String, queues: u32 },
    /// Appends a message to the queue its key hashes to. Idempotent by `producer_msg_id`.
    Send {
        topic: String,
        key: String,
        payload: String,
        producer_msg_id: String,
    },
    /// Stores a half message, invisible until committed. Idempotent by `producer_msg_id`.
    SendHalf {
        topic: String,
        key: String,
        payload: String,
        producer_msg_id: String,
        producer_group: String,
    },
    /// The producer's decision on a half message: commit makes it visible, rollback drops it.
    EndTransaction { half: HalfId, commit: bool },
    /// The broker's timer is about to ask the producer group about `half`: records the check,
    /// or discards the half once its checks are used up.
    CheckBack { half: HalfId },
    /// Subscribes a consumer group to a topic; the first subscription fixes the group's mode.
    Subscribe {
        group: String,
        topic: String,
        mode: ConsumeMode,
    },
    /// Reads up to `max` messages of one queue from `from`, or from the committed offset when
    /// `from` is `None`. Moves nothing: the consumer commits after processing (at-least-once).
    /// `consumer` matters only for broadcast groups.
    Pull {
        group: String,
        consumer: String,
        topic: String,
        queue: u32,
        from: Option<u64>,
        max: u32,
    },
    /// Records that everything below `offset` (exclusive) is consumed. Offsets only move
    /// forward: a lower or equal commit is a no-op.
    CommitOffset {
        group: String,
        consumer: String,
        topic: String,
        queue: u32,
        offset: u64,
    },
    /// Delivery `attempt` of `message` to `group` failed: schedules the next retry, or sends the
    /// message to the dead-letter queue after the last.
    Nack {
        group: String,
        message: MessageId,
        attempt: u32,
    },
    /// Up to `max` retry deliveries of `group` that are due.
    PullRetries { group: String, max: u32 },
    /// Retry delivery `attempt` of `message` to `group` succeeded.
    AckRetry {
        group: String,
        message: MessageId,
        attempt: u32,
    },
    /// Long polling (RocketMQ's suspended pull): answers `News` as soon as a pull from one of
    /// `positions` (queue, next offset) would find something, or a retry of one of those
    /// queues is due for `group`, or the answer would be a refusal; otherwise the broker holds
    /// the call until one of those happens or `hold_ms` passes, and answers an empty `News`.
    /// Reads only; moves nothing.
    Await {
        group: String,
        consumer: String,
        topic: String,
        positions: Vec<(u32, u64)>,
        hold_ms: u64,
    },
}

/// A successful reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BrokerReply {
    TopicCreated {
        topic: String,
        queues: u32,
    },
    Sent {
        message: MessageId,
    },
    HalfSent {
        half: HalfId,
    },
    /// The half's decision, whether made now or before (also the answer to a check of a half
    /// that is no longer pending).
    TransactionEnded {
        half: HalfId,
        state: HalfState,
    },
    /// The shell must now send check-back number `check` to `producer_group`.
    CheckSent {
        half: HalfId,
        producer_group: String,
        check: u32,
    },
    CheckNotDue {
        half: HalfId,
        next_check_ms: u64,
    },
    Subscribed {
        group: String,
        topic: String,
        mode: ConsumeMode,
    },
    /// Messages from the requested offset; `next_offset` follows the last one returned and
    /// `end_offset` is the queue's length.
    Pulled {
        deliveries: Vec<Delivery>,
        next_offset: u64,
        end_offset: u64,
    },
    /// The committed offset after the command (which may be above the one asked for).
    OffsetCommitted {
        offset: u64,
    },
    Nacked {
        message: MessageId,
        outcome: NackOutcome,
    },
    RetriesDue {
        deliveries: Vec<Delivery>,
    },
    RetryAcked,
    /// The answer to an `Await`: the queues a pull would find something in now, in order, and
    /// whether retries of them are due. Both empty: nothing came within the hold.
    News {
        queues: Vec<u32>,
        retries: bool,
    },
}

/// A refusal. Refusals are not recorded: a refused command changed nothing and may be retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum BrokerError {
    #[error("{kind} '{name}' must have 1 to {NAME_BYTES_MAX} bytes (topics and groups only [A-Za-z0-9_-])")]
    InvalidName { kind: String, name: String },
    #[error("a topic has 1 to {QUEUES_PER_TOPIC_MAX} queues, not {0}")]
    QueueCount(u32),
    #[error("topic {topic} exists with {existing} queues, not {requested}")]
    TopicQueuesMismatch {
        topic: String,
        existing: u32,
        requested: u32,
    },
    #[error("the broker holds at most {TOPICS_MAX} topics")]
    TooManyTopics,
    #[error("the broker holds at most {GROUPS_MAX} consumer groups")]
    TooManyGroups,
    #[error("topic {0} does not exist")]
    UnknownTopic(String),
    #[error("topic {topic} has no queue {queue}")]
    UnknownQueue { topic: String, queue: u32 },
    #[error("queue {queue} of topic {topic} is full ({MESSAGES_PER_QUEUE_MAX} messages)")]
    QueueFull { topic: String, queue: u32 },
    #[error("a key has at most {KEY_BYTES_MAX} bytes, not {0}")]
    KeyTooLong(usize),
    #[error("a payload has at most {PAYLOAD_BYTES_MAX} bytes, not {0}")]
    PayloadTooLarge(usize),
    #[error("producer message id {0} was already used for another message")]
    ProducerMsgIdReused(String),
    #[error("{PENDING_HALVES_MAX} half messages are already waiting for a decision")]
    TooManyPendingHalves,
    #[error("half message {0} does not exist")]
    UnknownHalf(HalfId),
    #[error("half message {half} was already decided: {state:?}")]
    TransactionDecided { half: HalfId, state: HalfState },
    #[error("group {group} consumes in {existing:?} mode, not {requested:?}")]
    ModeMismatch {
        group: String,
        existing: ConsumeMode,
        requested: ConsumeMode,
    },
    #[error("group {group} does not subscribe to topic {topic}")]
    NotSubscribed { group: String, topic: String },
    #[error("group {0} does not exist")]
    UnknownGroup(String),
    #[error("offset {offset} is beyond the end {end} of the queue")]
    OffsetBeyondEnd { offset: u64, end: u64 },
    #[error("a pull returns 1 to {PULL_BATCH_MAX} messages, not {0}")]
    BatchSize(u32),
    #[error("message {0} does not exist")]
    UnknownMessage(MessageId),
    #[error("group {0} consumes in broadcast mode, which has no retries")]
    BroadcastHasNoRetry(String),
    #[error("a long poll is held at most {AWAIT_HOLD_MAX_MS} ms, not {0}")]
    HoldTooLong(u64),
    #[error("a long poll watches 1 to {QUEUES_PER_TOPIC_MAX} queues, each once")]
    AwaitQueues,
    #[error("delivery {attempt} of {message} was never made (the latest is {latest})")]
    NoSuchDelivery {
        message: MessageId,
        attempt: u32,
        latest: u32,
    },
}

/// The broker RPC: producers, consumers and the harness send [`BrokerCommand`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerCall(pub BrokerCommand);

impl crate::transport::Rpc for BrokerCall {
    type Response = Result<BrokerReply, BrokerError>;
    const TAG: u64 = 0x4252_4b52_0001;
}

/// A producer's answer to a check-back (RocketMQ's `LocalTransactionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CheckAnswer {
    /// The local transaction committed: deliver the message.
    Commit,
    /// The local transaction aborted (or never ran): drop the message.
    Rollback,
    /// The local transaction is still running: ask again later.
    Unknown,
}

/// The broker asks a producer group whether the local transaction behind a half message
/// committed. The producer must answer from its durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckBackCall {
    pub half: HalfId,
    pub topic: String,
    pub key: String,
    pub payload: String,
    pub producer_msg_id: String,
    /// Which check this is (1 for the first).
    pub check: u32,
}

impl crate::transport::Rpc for CheckBackCall {
    type Response = CheckAnswer;
    const TAG: u64 = 0x4252_4b52_0002;
}

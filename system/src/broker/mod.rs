//! The message broker (MetaQ/RocketMQ-like) that carries the platform's events.
//!
//! - [`types`]: message and half ids, messages, the check-back and retry policies, consumer
//!   modes, commands, replies, refusals and the limits on all of them.
//! - [`core`]: one broker's deterministic state machine (decide → record → apply): topics of
//!   queues, half messages and their check-backs, consumer-group offsets, retry and
//!   dead-letter queues.
//! - [`node`]: the broker node shell: commit log with a flush policy (sync each write, group
//!   commit, or RocketMQ's unsafe async flush), the served [`BrokerCall`], the check-back
//!   timer, recovery at start.
//! - [`long_poll`]: the broker's held `Await`s (long polling), woken by new messages and retries.
//! - [`consumer_engine`]: the consumer's protocol engine (a push consumer over pulls): in-order
//!   processing per queue, offset commits only of processed positions, nacks to the retry
//!   queue, retry polling; pure state and `step`.
//! - [`consumer`]: the consumer runtime that performs the engine's outputs.
//!
//! Producers send plain messages (idempotent by producer message id; the key picks the queue,
//! so one key's messages are consumed in order) or half messages (RocketMQ's transactional
//! messages, mode 2), which stay invisible until the producer commits them, and are asked about
//! by check-backs until a decision comes or the checks run out and they are discarded.
//! Consumers pull from their committed offset and commit after processing, so delivery is
//! at-least-once; a failed delivery is retried on the group's delay schedule and, after the
//! last retry, parked in the group's dead-letter queue.

pub mod consumer;
pub mod consumer_engine;
pub mod core;
mod long_poll;
pub mod node;
pub mod types;

pub use self::core::{BrokerCore, BrokerDecision, BrokerRecord};
pub use consumer::{ConsumerConfig, Handler};
pub use consumer_engine::ConsumerEngine;
pub use node::{BrokerNode, BrokerNodeConfig, FlushPolicy};
pub use types::*;

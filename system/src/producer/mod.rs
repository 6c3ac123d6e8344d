//! Reliable producers: the two ways a service hands the events of its committed changes to the
//! broker, as pure protocol engines any service can host (the trade node today, the ledger
//! later for message-based strategies).
//!
//! - [`outbox`] (mode 1, 本地消息表): the event's row is written with the change; a relay
//!   sends it once the change is durable and a resender scans for rows left unsent.
//! - [`halfmsg`] (mode 2, RocketMQ transactional messages): a half message first, then the
//!   local transaction, then a one-way commit or rollback; check-backs are answered from the
//!   durable state.
//!
//! Each engine is plain state with one method per input returning its outputs as data; the
//! host's async runtime performs the outputs (broker calls, log writes, timers) and feeds the
//! results back. The engines know nothing of trades: what they publish is a [`Message`].

pub mod halfmsg;
pub mod outbox;

use crate::ids::EventId;

/// One event as a producer publishes it: its id (the broker deduplicates by it, and
/// consumers by the business id inside it), its routing key and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: EventId,
    pub key: String,
    pub payload: String,
}

impl Message {
    pub fn new(id: impl Into<EventId>, key: impl Into<String>, payload: impl Into<String>) -> Self {
        Message {
            id: id.into(),
            key: key.into(),
            payload: payload.into(),
        }
    }
}

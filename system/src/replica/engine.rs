//! The replica's protocol engine: what one delivery of a trade event does to a projection, as
//! plain state and a function, with no clock, no RNG, no disk and no async.
//!
//! A delivery is processed idempotently: the projection decides (a duplicate event id is
//! skipped, a stale version recorded as stale), the record is applied and handed out to be
//! appended, the log is synced, and only then is the delivery reported done, so the consumer
//! runtime never counts as processed (and never commits past) an event the replica could lose.
//! Whether the replica's database is busy for a delivery is the runtime's draw; the engine
//! turns it into a failed delivery, which the broker retries later, out of order with the
//! trade's newer events (which is what the versions are for).

use super::consumer_records::{self, ConsumerRecordsCore, ConsumerRecordsRecord};
use super::merchant_query::{self, MerchantQueryCore, MerchantQueryRecord};
use crate::broker::Delivery;
use crate::bugs::Bugs;
use crate::ids::EventId;
use crate::probes::names;
use crate::trade::TradeEvent;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A projection of trade events that a replica node keeps.
pub trait Projection: Send + 'static {
    type Record: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// The consumer group (also the node's name and its log's): the one place its name is
    /// spelled.
    const GROUP: &'static str;
    fn recover(bugs: Bugs, records: &[Self::Record]) -> Self;
    /// `None`: the event was already consumed.
    fn decide(&self, event: &TradeEvent) -> Option<Self::Record>;
    /// Whether a decided record leaves the projection as it was (a stale version).
    fn is_stale(record: &Self::Record) -> bool;
    fn apply(&mut self, record: Self::Record);
    /// Event ids consumed so far (the dedup table).
    fn consumed(&self) -> &BTreeMap<EventId, u32>;
}

impl Projection for ConsumerRecordsCore {
    type Record = ConsumerRecordsRecord;
    const GROUP: &'static str = consumer_records::GROUP;
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
    fn consumed(&self) -> &BTreeMap<EventId, u32> {
        ConsumerRecordsCore::consumed(self)
    }
}

impl Projection for MerchantQueryCore {
    type Record = MerchantQueryRecord;
    const GROUP: &'static str = merchant_query::GROUP;
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
    fn consumed(&self) -> &BTreeMap<EventId, u32> {
        MerchantQueryCore::consumed(self)
    }
}

/// What the runtime must do with one delivery, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaOutput<R> {
    /// Count a coverage probe.
    Probe(&'static str),
    /// Append this record to the node's log (the engine has already applied it).
    Append(R),
    /// Wait until the log is durable.
    Sync,
    /// Report the delivery to the consumer runtime: processed, or failed (to be retried).
    Done(Result<(), String>),
}

/// One incarnation of a replica: its projection and what it had consumed when it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaEngine<P> {
    projection: P,
    /// Events consumed before this start: meeting one again is a replay of messages whose
    /// offset the previous life had not committed.
    before: BTreeSet<EventId>,
}

impl<P: Projection> ReplicaEngine<P> {
    /// Recovers the projection from its log.
    pub fn recover(bugs: Bugs, records: &[P::Record]) -> Self {
        let projection = P::recover(bugs, records);
        let before = projection.consumed().keys().cloned().collect();
        ReplicaEngine { projection, before }
    }

    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// Processes one delivery. `busy` is the runtime's draw: the database refuses it.
    pub fn deliver(&mut self, delivery: &Delivery, busy: bool) -> Vec<ReplicaOutput<P::Record>> {
        let event = match TradeEvent::decode(&delivery.message.payload) {
            Ok(event) => event,
            Err(reason) => return vec![ReplicaOutput::Done(Err(reason))],
        };
        if busy {
            return vec![ReplicaOutput::Done(Err(format!("{} busy", P::GROUP)))];
        }
        let mut out = Vec::new();
        match self.projection.decide(&event) {
            Some(record) => {
                if P::is_stale(&record) {
                    out.push(ReplicaOutput::Probe(names::CONSUMER_STALE_VERSION_SKIPPED));
                }
                self.projection.apply(record.clone());
                out.push(ReplicaOutput::Append(record));
            }
            None => {
                out.push(ReplicaOutput::Probe(names::CONSUMER_DUPLICATE_SKIPPED));
                if self.before.contains(&event.id()) {
                    out.push(ReplicaOutput::Probe(names::CONSUMER_REPLAYED_AFTER_RESTART));
                }
            }
        }
        // A duplicate's first processing may still be on its way to the disk.
        out.push(ReplicaOutput::Sync);
        out.push(ReplicaOutput::Done(Ok(())));
        out
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;

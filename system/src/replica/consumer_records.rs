//! The consumer-record DB (消费记录): a projection of trade events into buyers' consumption
//! records. No clock, no I/O.
//!
//! Delivery is at-least-once, so the same event may arrive any number of times; the core keeps
//! a dedup table of consumed event ids and writes one [`ConsumptionEntry`] per event.
//! [`ConsumerRecordsCore::decide`] turns a delivered event into a [`ConsumerRecordsRecord`] to
//! make durable (or `None` for a duplicate), and [`ConsumerRecordsCore::apply`] folds records
//! into state, live and on recovery alike. The dedup row and the entry are one record, so a
//! crash can never keep one without the other.
//!
//! A paid event records what the buyer paid (the trade's amount), a refunded event what came
//! back (the refund's amount); a closed trade was never paid, so it is consumed without an
//! entry. Under [`Bug::ConsumerNoDedup`] the table is ignored and every delivery appends.

use crate::bugs::{Bug, Bugs};
use crate::ids::{AccountId, EventId};
use crate::money::Amount;
use crate::trade::{TradeEvent, TradeEventKind, TradeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The consumer group of the consumer-record DB (also its node's and its log's name).
pub const GROUP: &str = "consumer-records";

/// One line of a buyer's consumption records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumptionEntry {
    /// The id of the event it was made from.
    pub event: EventId,
    pub trade: TradeId,
    pub buyer: AccountId,
    pub merchant: AccountId,
    /// Paid: the trade's amount; refunded: the refund's amount.
    pub amount: Amount,
    pub kind: TradeEventKind,
}

/// One durable change to the consumer-record DB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsumerRecordsRecord {
    /// Event `event` consumed: its dedup row, and its entry if it makes one.
    Consumed {
        event: EventId,
        entry: Option<ConsumptionEntry>,
    },
}

/// The consumer-record DB's state. Equal states compare equal, which is how recovery is tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecordsCore {
    /// Event id -> how many times it was applied (1, unless a planted bug double-applies).
    consumed: BTreeMap<EventId, u32>,
    /// Every entry, in the order it was written.
    entries: Vec<ConsumptionEntry>,
    bugs: Bugs,
}

impl ConsumerRecordsCore {
    pub fn new(bugs: Bugs) -> Self {
        ConsumerRecordsCore {
            consumed: BTreeMap::new(),
            entries: Vec::new(),
            bugs,
        }
    }

    /// Rebuilds the DB by applying its log from the start.
    pub fn recover(bugs: Bugs, records: &[ConsumerRecordsRecord]) -> Self {
        let mut core = ConsumerRecordsCore::new(bugs);
        for record in records {
            core.apply(record.clone());
        }
        core
    }

    /// What consuming `event` writes; `None` if it was already consumed (a duplicate delivery,
    /// to skip and acknowledge). Under [`Bug::ConsumerNoDedup`] never `None`.
    pub fn decide(&self, event: &TradeEvent) -> Option<ConsumerRecordsRecord> {
        let id = event.id();
        if !self.bugs.is(Bug::ConsumerNoDedup) && self.consumed.contains_key(&id) {
            return None;
        }
        let entry = entry_of(event, &id);
        Some(ConsumerRecordsRecord::Consumed { event: id, entry })
    }

    /// Applies one durable record. An event applied twice is asserted, unless
    /// [`Bug::ConsumerNoDedup`] is planted, whose effect that is.
    pub fn apply(&mut self, record: ConsumerRecordsRecord) {
        match record {
            ConsumerRecordsRecord::Consumed { event, entry } => {
                if let Some(e) = &entry {
                    assert_eq!(e.event, event, "an entry belongs to its event");
                }
                let times = self.consumed.entry(event.clone()).or_insert(0);
                *times += 1;
                // Only the planted bug that skips the dedup may apply an event twice.
                if !self.bugs.is(Bug::ConsumerNoDedup) {
                    assert!(*times == 1, "event {event} consumed {times} times");
                }
                self.entries.extend(entry);
            }
        }
    }

    /// Every consumed event id with how many times it was applied.
    pub fn consumed(&self) -> &BTreeMap<EventId, u32> {
        &self.consumed
    }

    /// Every consumption entry, in the order it was written.
    pub fn entries(&self) -> &[ConsumptionEntry] {
        &self.entries
    }
}

/// The entry an event makes: paid and refunded events name their buyer; a closed trade (or an
/// event somehow without a payer or refund) makes none.
fn entry_of(event: &TradeEvent, id: &EventId) -> Option<ConsumptionEntry> {
    let buyer = event.payer?;
    let amount = match event.kind {
        TradeEventKind::Paid => event.amount,
        TradeEventKind::Refunded => event.refund.as_ref()?.1,
        TradeEventKind::Closed => return None,
    };
    Some(ConsumptionEntry {
        event: id.clone(),
        trade: event.trade,
        buyer,
        merchant: event.merchant,
        amount,
        kind: event.kind,
    })
}

#[cfg(test)]
#[path = "consumer_records_tests.rs"]
mod tests;

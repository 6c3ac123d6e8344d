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
use crate::ids::AccountId;
use crate::money::Amount;
use crate::trade::{TradeEvent, TradeEventKind, TradeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One line of a buyer's consumption records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumptionEntry {
    /// The id of the event it was made from.
    pub event: String,
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
        event: String,
        entry: Option<ConsumptionEntry>,
    },
}

/// The consumer-record DB's state. Equal states compare equal, which is how recovery is tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecordsCore {
    /// Event id -> how many times it was applied (1, unless a planted bug double-applies).
    consumed: BTreeMap<String, u32>,
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
        let id = event.id().to_string();
        if !self.bugs.is(Bug::ConsumerNoDedup) && self.consumed.contains_key(&id) {
            return None;
        }
        let entry = entry_of(event, &id);
        Some(ConsumerRecordsRecord::Consumed { event: id, entry })
    }

    /// Applies one durable record. Without a planted bug, an event applied twice is asserted.
    pub fn apply(&mut self, record: ConsumerRecordsRecord) {
        match record {
            ConsumerRecordsRecord::Consumed { event, entry } => {
                if let Some(e) = &entry {
                    assert_eq!(e.event, event, "an entry belongs to its event");
                }
                let times = self.consumed.entry(event.clone()).or_insert(0);
                *times += 1;
                if self.bugs.get().is_none() {
                    assert!(*times == 1, "event {event} consumed {times} times");
                }
                self.entries.extend(entry);
            }
        }
    }

    /// Every consumed event id with how many times it was applied.
    pub fn consumed(&self) -> &BTreeMap<String, u32> {
        &self.consumed
    }

    /// Every consumption entry, in the order it was written.
    pub fn entries(&self) -> &[ConsumptionEntry] {
        &self.entries
    }
}

/// The entry an event makes: paid and refunded events name their buyer; a closed trade (or an
/// event somehow without a payer or refund) makes none.
fn entry_of(event: &TradeEvent, id: &str) -> Option<ConsumptionEntry> {
    let buyer = event.payer?;
    let amount = match event.kind {
        TradeEventKind::Paid => event.amount,
        TradeEventKind::Refunded => event.refund.as_ref()?.1,
        TradeEventKind::Closed => return None,
    };
    Some(ConsumptionEntry {
        event: id.to_string(),
        trade: event.trade,
        buyer,
        merchant: event.merchant,
        amount,
        kind: event.kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trade::TradeStatus;
    use rust_decimal::Decimal;

    const MERCHANT: AccountId = AccountId(5);
    const BUYER: AccountId = AccountId(9);
    const TRADE: TradeId = TradeId { shard: 0, seq: 1 };

    fn amt(fen: i64) -> Amount {
        Amount::from_fen(fen).unwrap()
    }

    fn paid() -> TradeEvent {
        TradeEvent {
            trade: TRADE,
            version: 1,
            kind: TradeEventKind::Paid,
            status: TradeStatus::Paid,
            merchant: MERCHANT,
            payer: Some(BUYER),
            amount: amt(1_000),
            paid: Decimal::new(1_000, 2),
            refunded: Decimal::new(0, 2),
            refund: None,
        }
    }

    fn refunded(version: u32, no: &str, fen: i64, total_fen: i64) -> TradeEvent {
        TradeEvent {
            version,
            kind: TradeEventKind::Refunded,
            status: if total_fen == 1_000 {
                TradeStatus::Refunded
            } else {
                TradeStatus::PartiallyRefunded
            },
            refunded: Decimal::new(total_fen, 2),
            refund: Some((no.into(), amt(fen))),
            ..paid()
        }
    }

    fn closed() -> TradeEvent {
        TradeEvent {
            trade: TradeId { shard: 0, seq: 2 },
            version: 1,
            kind: TradeEventKind::Closed,
            status: TradeStatus::Closed,
            merchant: MERCHANT,
            payer: None,
            amount: amt(500),
            paid: Decimal::new(0, 2),
            refunded: Decimal::new(0, 2),
            refund: None,
        }
    }

    /// Decides and applies like the shell does; true if the delivery wrote a record.
    fn consume(c: &mut ConsumerRecordsCore, event: &TradeEvent) -> bool {
        match c.decide(event) {
            Some(record) => {
                c.apply(record);
                true
            }
            None => false,
        }
    }

    fn entry(event: &TradeEvent, fen: i64) -> ConsumptionEntry {
        ConsumptionEntry {
            event: event.id().to_string(),
            trade: event.trade,
            buyer: BUYER,
            merchant: MERCHANT,
            amount: amt(fen),
            kind: event.kind,
        }
    }

    #[test]
    fn paid_and_refunded_events_make_entries_and_closed_ones_do_not() {
        let mut c = ConsumerRecordsCore::new(Bugs::none());
        let r1 = refunded(2, "R1", 300, 300);
        let r2 = refunded(3, "R2", 700, 1_000);
        for e in [paid(), r1.clone(), r2.clone(), closed()] {
            assert!(consume(&mut c, &e));
        }
        assert_eq!(
            c.entries(),
            &[entry(&paid(), 1_000), entry(&r1, 300), entry(&r2, 700)]
        );
        let consumed: Vec<_> = c.consumed().iter().map(|(e, n)| (e.as_str(), *n)).collect();
        assert_eq!(
            consumed,
            vec![
                ("T0-1:v1:paid", 1),
                ("T0-1:v2:refunded:R1", 1),
                ("T0-1:v3:refunded:R2", 1),
                ("T0-2:v1:closed", 1),
            ]
        );
    }

    #[test]
    fn a_paid_event_without_a_payer_is_consumed_without_an_entry() {
        let mut c = ConsumerRecordsCore::new(Bugs::none());
        let odd = TradeEvent {
            payer: None,
            ..paid()
        };
        assert_eq!(
            c.decide(&odd),
            Some(ConsumerRecordsRecord::Consumed {
                event: "T0-1:v1:paid".into(),
                entry: None,
            })
        );
        assert!(consume(&mut c, &odd));
        assert!(c.entries().is_empty());
        assert_eq!(c.consumed().len(), 1);
    }

    #[test]
    fn a_duplicate_delivery_is_skipped() {
        let mut c = ConsumerRecordsCore::new(Bugs::none());
        assert!(consume(&mut c, &paid()));
        assert_eq!(c.decide(&paid()), None);
        assert!(!consume(&mut c, &paid()));
        assert!(consume(&mut c, &closed()));
        assert!(!consume(&mut c, &closed()));
        assert_eq!(c.entries(), &[entry(&paid(), 1_000)]);
        assert_eq!(c.consumed().get("T0-1:v1:paid"), Some(&1));
    }

    #[test]
    fn without_dedup_a_duplicate_delivery_adds_a_second_entry() {
        let mut c = ConsumerRecordsCore::new(Bugs::planted(Bug::ConsumerNoDedup));
        assert!(consume(&mut c, &paid()));
        assert!(consume(&mut c, &paid()));
        assert_eq!(c.entries(), &[entry(&paid(), 1_000), entry(&paid(), 1_000)]);
        assert_eq!(c.consumed().get("T0-1:v1:paid"), Some(&2));
    }

    #[test]
    #[should_panic(expected = "event T0-1:v1:paid consumed 2 times")]
    fn an_event_applied_twice_is_asserted() {
        let mut c = ConsumerRecordsCore::new(Bugs::none());
        let record = c.decide(&paid()).unwrap();
        c.apply(record.clone());
        c.apply(record);
    }

    #[test]
    fn recovery_from_the_log_rebuilds_the_same_db() {
        for bugs in [Bugs::none(), Bugs::planted(Bug::ConsumerNoDedup)] {
            let mut c = ConsumerRecordsCore::new(bugs);
            let mut log = Vec::new();
            let deliveries = [
                paid(),
                paid(),
                closed(),
                refunded(2, "R1", 300, 300),
                closed(),
                refunded(2, "R1", 300, 300),
            ];
            for e in &deliveries {
                if let Some(record) = c.decide(e) {
                    log.push(record.clone());
                    c.apply(record);
                }
            }
            let bytes: Vec<Vec<u8>> = log.iter().map(|r| bincode::serialize(r).unwrap()).collect();
            let decoded: Vec<ConsumerRecordsRecord> = bytes
                .iter()
                .map(|b| bincode::deserialize(b).unwrap())
                .collect();
            assert_eq!(decoded, log);
            let r = ConsumerRecordsCore::recover(bugs, &decoded);
            assert_eq!(r.entries(), c.entries());
            assert_eq!(r.consumed(), c.consumed());
            assert_eq!(r, c);
            // The dedup table is rebuilt: a redelivery after recovery is still skipped.
            assert_eq!(r.decide(&paid()).is_none(), bugs == Bugs::none());
        }
    }
}

//! Unit tests of the consumer-record DB: entries, dedup, recovery and the planted bug.

use super::*;
use crate::ids::EventId;
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
        event: event.id(),
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
    assert_eq!(c.consumed().get(&EventId::from("T0-1:v1:paid")), Some(&1));
}

#[test]
fn without_dedup_a_duplicate_delivery_adds_a_second_entry() {
    let mut c = ConsumerRecordsCore::new(Bugs::planted(Bug::ConsumerNoDedup));
    assert!(consume(&mut c, &paid()));
    assert!(consume(&mut c, &paid()));
    assert_eq!(c.entries(), &[entry(&paid(), 1_000), entry(&paid(), 1_000)]);
    assert_eq!(c.consumed().get(&EventId::from("T0-1:v1:paid")), Some(&2));
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

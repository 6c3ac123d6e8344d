//! Table tests of the replica engine: (projection state, delivery, busy) → outputs and state.

use super::*;
use crate::ids::EventId;

fn eid(event: &TradeEvent) -> EventId {
    event.id()
}
use crate::broker::{Message, MessageId};
use crate::bugs::Bug;
use crate::ids::AccountId;
use crate::money::Amount;
use crate::replica::ConsumptionEntry;
use crate::trade::{TradeEventKind, TradeId, TradeStatus};
use rust_decimal::Decimal;

const TRADE: TradeId = TradeId { shard: 0, seq: 1 };

fn paid() -> TradeEvent {
    TradeEvent {
        trade: TRADE,
        version: 1,
        kind: TradeEventKind::Paid,
        status: TradeStatus::Paid,
        merchant: AccountId(5),
        payer: Some(AccountId(9)),
        amount: Amount::from_fen(1_000).unwrap(),
        paid: Decimal::new(1_000, 2),
        refunded: Decimal::new(0, 2),
        refund: None,
    }
}

fn refunded() -> TradeEvent {
    TradeEvent {
        version: 2,
        kind: TradeEventKind::Refunded,
        status: TradeStatus::Refunded,
        refunded: Decimal::new(1_000, 2),
        refund: Some(("r1".into(), Amount::from_fen(1_000).unwrap())),
        ..paid()
    }
}

fn delivery(event: &TradeEvent, attempt: u32) -> Delivery {
    Delivery {
        message: Message {
            id: MessageId {
                topic: "trade-events".into(),
                queue: 0,
                offset: 0,
            },
            key: event.key(),
            payload: event.encode(),
            producer_msg_id: event.id().to_string(),
            stored_ms: 0,
            from_half: None,
        },
        attempt,
    }
}

type Records = ReplicaEngine<ConsumerRecordsCore>;
type Merchants = ReplicaEngine<MerchantQueryCore>;

fn consumed(event: &TradeEvent) -> ConsumerRecordsRecord {
    ConsumerRecordsRecord::Consumed {
        event: eid(event),
        entry: Some(ConsumptionEntry {
            event: eid(event),
            trade: TRADE,
            buyer: AccountId(9),
            merchant: AccountId(5),
            amount: Amount::from_fen(1_000).unwrap(),
            kind: event.kind,
        }),
    }
}

fn done<R>() -> Vec<ReplicaOutput<R>> {
    vec![ReplicaOutput::Sync, ReplicaOutput::Done(Ok(()))]
}

#[test]
fn a_new_event_is_applied_appended_and_synced_before_it_is_done() {
    let mut e = Records::recover(Bugs::none(), &[]);
    let out = e.deliver(&delivery(&paid(), 1), false);
    let mut expected = vec![ReplicaOutput::Append(consumed(&paid()))];
    expected.extend(done());
    assert_eq!(out, expected);
    assert_eq!(e.projection().consumed().get(&eid(&paid())), Some(&1));
    assert_eq!(e.projection().entries().len(), 1);
}

#[test]
fn a_duplicate_is_skipped_but_still_waits_for_the_disk() {
    let mut e = Records::recover(Bugs::none(), &[]);
    e.deliver(&delivery(&paid(), 1), false);
    let out = e.deliver(&delivery(&paid(), 2), false);
    let mut expected = vec![ReplicaOutput::Probe(names::CONSUMER_DUPLICATE_SKIPPED)];
    expected.extend(done());
    assert_eq!(out, expected);
    assert_eq!(e.projection().entries().len(), 1);
}

#[test]
fn a_busy_database_fails_the_delivery_and_changes_nothing() {
    let mut e = Records::recover(Bugs::none(), &[]);
    let out = e.deliver(&delivery(&paid(), 1), true);
    assert_eq!(
        out,
        vec![ReplicaOutput::Done(Err("consumer-records busy".into()))]
    );
    assert!(e.projection().consumed().is_empty());
    // The broker's retry finds the database free.
    let out = e.deliver(&delivery(&paid(), 2), false);
    assert_eq!(out[0], ReplicaOutput::Append(consumed(&paid())));
}

#[test]
fn an_undecodable_payload_fails_the_delivery() {
    let mut e = Records::recover(Bugs::none(), &[]);
    let mut d = delivery(&paid(), 1);
    d.message.payload = "not an event".into();
    let out = e.deliver(&d, false);
    assert!(matches!(&out[..], [ReplicaOutput::Done(Err(_))]), "{out:?}");
}

#[test]
fn a_restart_replays_from_the_committed_offset_into_the_dedup_table() {
    // The first life consumed the paid event; its offset was not committed before the crash.
    let log = vec![consumed(&paid())];
    let mut e = Records::recover(Bugs::none(), &log);
    let out = e.deliver(&delivery(&paid(), 1), false);
    let mut expected = vec![
        ReplicaOutput::Probe(names::CONSUMER_DUPLICATE_SKIPPED),
        ReplicaOutput::Probe(names::CONSUMER_REPLAYED_AFTER_RESTART),
    ];
    expected.extend(done());
    assert_eq!(out, expected);
    // An event first seen in this life is a plain duplicate, not a replay.
    e.deliver(&delivery(&refunded(), 1), false);
    let out = e.deliver(&delivery(&refunded(), 2), false);
    assert_eq!(out[1], ReplicaOutput::Sync);
}

#[test]
fn under_the_planted_consumer_no_dedup_a_redelivery_appends_again() {
    let mut e = Records::recover(Bugs::planted(Bug::ConsumerNoDedup), &[]);
    e.deliver(&delivery(&paid(), 1), false);
    let out = e.deliver(&delivery(&paid(), 2), false);
    assert_eq!(out[0], ReplicaOutput::Append(consumed(&paid())));
    assert_eq!(e.projection().consumed().get(&eid(&paid())), Some(&2));
    assert_eq!(e.projection().entries().len(), 2);
}

#[test]
fn an_old_event_arriving_late_is_recorded_stale_and_leaves_the_row() {
    let mut e = Merchants::recover(Bugs::none(), &[]);
    e.deliver(&delivery(&refunded(), 1), false);
    let out = e.deliver(&delivery(&paid(), 2), false);
    let stale = MerchantQueryRecord::Stale {
        event: eid(&paid()),
        version: 1,
        row_version: 2,
    };
    let mut expected = vec![
        ReplicaOutput::Probe(names::CONSUMER_STALE_VERSION_SKIPPED),
        ReplicaOutput::Append(stale),
    ];
    expected.extend(done());
    assert_eq!(out, expected);
    assert_eq!(e.projection().query(TRADE).unwrap().version, 2);
}

#[test]
fn under_the_planted_replica_no_version_an_old_event_rolls_the_row_back() {
    let mut e = Merchants::recover(Bugs::planted(Bug::ReplicaNoVersion), &[]);
    e.deliver(&delivery(&refunded(), 1), false);
    let out = e.deliver(&delivery(&paid(), 2), false);
    assert!(
        matches!(
            &out[0],
            ReplicaOutput::Append(MerchantQueryRecord::Applied { .. })
        ),
        "{out:?}"
    );
    let row = e.projection().query(TRADE).unwrap();
    assert_eq!((row.version, row.status), (1, TradeStatus::Paid));
}

#[test]
fn the_group_names_are_the_harness_names() {
    assert_eq!(ConsumerRecordsCore::GROUP, "consumer-records");
    assert_eq!(MerchantQueryCore::GROUP, "merchant-query");
    assert_eq!(
        crate::replica::CONSUMER_RECORDS_GROUP,
        ConsumerRecordsCore::GROUP
    );
    assert_eq!(
        crate::replica::MERCHANT_QUERY_GROUP,
        MerchantQueryCore::GROUP
    );
}

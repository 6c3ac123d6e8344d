use super::*;
use crate::testkit::{
    aborted_event, ev, event, merchant_row, record, single, valid_with_messages, ABORTED, CLOSED,
    PAID, REFUNDED,
};
use rust_decimal_macros::dec;

#[test]
fn valid_observation_passes() {
    assert!(check(&valid_with_messages()).is_empty());
}

#[test]
fn disabled_snapshot_with_garbage_says_nothing() {
    let mut obs = valid_with_messages();
    let m = &mut obs.messages;
    m.enabled = false;
    m.committed.clear();
    m.merchant_history.reverse();
    m.consumer_records.push(record(&aborted_event()));
    assert!(check(&obs).is_empty());
}

#[test]
fn missing_consumer_record_fails() {
    let mut obs = valid_with_messages();
    obs.messages.consumer_records.remove(1);
    let v = &single(check(&obs), Invariant::Replicas);
    assert_eq!(
        v.message,
        format!("committed event {REFUNDED} has no consumer record")
    );
    assert_eq!(ev(v, "replica"), "consumer-records");
    assert_eq!(ev(v, "event"), REFUNDED);
    assert_eq!(ev(v, "rows"), "0");
    assert_eq!(
        ev(v, "expected"),
        "trade=T0-1 buyer=2 merchant=12 kind=Refunded amount=5"
    );
}

#[test]
fn event_consumed_twice_fails() {
    let mut obs = valid_with_messages();
    // The broker redelivered the payment event and the consumer did not deduplicate it.
    let again = obs.messages.consumer_records[0].clone();
    obs.messages.consumer_records.push(again);
    let v = &single(check(&obs), Invariant::Replicas);
    assert!(v.message.contains("consumed twice"), "{}", v.message);
    assert_eq!(ev(v, "event"), PAID);
    assert_eq!(ev(v, "trade"), "T0-1");
    assert_eq!(ev(v, "rows"), "2");
}

#[test]
fn consumer_record_with_wrong_amount_fails() {
    let mut obs = valid_with_messages();
    // The refund row took the trade's paid amount instead of the refund's.
    obs.messages.consumer_records[1].amount = dec!(20);
    let v = &single(check(&obs), Invariant::Replicas);
    assert_eq!(ev(v, "event"), REFUNDED);
    assert_eq!(ev(v, "differs"), "amount");
    assert_eq!(
        ev(v, "actual"),
        "trade=T0-1 buyer=2 merchant=12 kind=Refunded amount=20"
    );
    assert!(ev(v, "expected").ends_with("amount=5"));
}

#[test]
fn consumer_record_with_wrong_buyer_and_merchant_fails() {
    let mut obs = valid_with_messages();
    obs.messages.consumer_records[0].buyer = 3;
    obs.messages.consumer_records[0].merchant = 13;
    let v = &single(check(&obs), Invariant::Replicas);
    assert_eq!(ev(v, "differs"), "buyer,merchant");
    assert_eq!(ev(v, "row"), "0");
}

#[test]
fn consumer_record_of_uncommitted_event_fails() {
    let mut obs = valid_with_messages();
    obs.messages.consumer_records.push(record(&aborted_event()));
    let v = &single(check(&obs), Invariant::Replicas);
    assert!(v.message.contains("no trade shard committed"));
    assert_eq!(ev(v, "event"), ABORTED);
    assert_eq!(ev(v, "trade"), "T0-3");
}

#[test]
fn consumer_record_of_closed_event_fails() {
    let mut obs = valid_with_messages();
    let closed = obs.messages.committed[CLOSED].clone();
    obs.messages.consumer_records.push(record(&closed));
    let v = &single(check(&obs), Invariant::Replicas);
    assert_eq!(
        v.message,
        format!("closed event {CLOSED} has a consumer record; it must have none")
    );
    assert_eq!(ev(v, "trade"), "T0-2");
}

#[test]
fn lagging_merchant_row_fails() {
    let mut obs = valid_with_messages();
    // The row still shows the payment: the refund event's update was lost.
    let paid = obs.messages.committed[PAID].clone();
    obs.messages
        .merchant_rows
        .insert("T0-1".to_string(), merchant_row(&paid));
    let v = &single(check(&obs), Invariant::Replicas);
    assert_eq!(
        v.message,
        "merchant row of trade T0-1 is at v1 Paid instead of v2 PartiallyRefunded"
    );
    assert_eq!(ev(v, "replica"), "merchant-query");
    assert_eq!(ev(v, "event"), REFUNDED);
    assert_eq!(
        ev(v, "expected"),
        "merchant=12 status=PartiallyRefunded paid=20 refunded=5 version=2"
    );
    assert_eq!(
        ev(v, "actual"),
        "merchant=12 status=Paid paid=20 refunded=0 version=1"
    );
}

#[test]
fn missing_merchant_row_fails() {
    let mut obs = valid_with_messages();
    obs.messages.merchant_rows.remove("T0-2");
    let v = &single(check(&obs), Invariant::Replicas);
    assert_eq!(ev(v, "trade"), "T0-2");
    assert_eq!(ev(v, "actual"), "none");
    assert!(ev(v, "expected").contains("status=Closed"));
}

#[test]
fn merchant_row_without_committed_event_fails() {
    let mut obs = valid_with_messages();
    let row = merchant_row(&aborted_event());
    obs.messages.merchant_rows.insert("T0-3".to_string(), row);
    let v = &single(check(&obs), Invariant::Replicas);
    assert_eq!(
        v.message,
        "trade T0-3 has a merchant row but no committed event"
    );
    assert_eq!(ev(v, "expected"), "none");
    assert!(ev(v, "actual").contains("status=Paid"));
}

#[test]
fn merchant_row_under_another_trade_fails() {
    let mut obs = valid_with_messages();
    obs.messages.merchant_rows.get_mut("T0-2").unwrap().trade = "T0-9".to_string();
    let v = &single(check(&obs), Invariant::Replicas);
    assert_eq!(v.message, "merchant row under trade T0-2 is for trade T0-9");
}

#[test]
fn out_of_order_write_fails() {
    let mut obs = valid_with_messages();
    // The payment event, redelivered late, overwrote the refund's row, which a later
    // redelivery of the refund event then restored: the final row is right.
    let paid = obs.messages.committed[PAID].clone();
    let refunded = obs.messages.committed[REFUNDED].clone();
    let h = &mut obs.messages.merchant_history;
    h.push(merchant_row(&paid));
    h.push(merchant_row(&refunded));
    let v = &single(check(&obs), Invariant::Replicas);
    assert_eq!(
        v.message,
        "merchant row of trade T0-1 went from v2 PartiallyRefunded back to v1 Paid \
         (version not increasing, status moved backwards, refunded decreased)"
    );
    assert_eq!(ev(v, "write"), "3");
    assert_eq!(ev(v, "previous_version"), "2");
    assert_eq!(ev(v, "next_status"), "Paid");
    assert_eq!(ev(v, "previous_refunded"), "5");
    assert_eq!(ev(v, "next_refunded"), "0");
}

#[test]
fn same_version_written_twice_fails() {
    let mut obs = valid_with_messages();
    let refunded = obs.messages.committed[REFUNDED].clone();
    obs.messages.merchant_history.push(merchant_row(&refunded));
    let v = &single(check(&obs), Invariant::Replicas);
    assert_eq!(ev(v, "why"), "version not increasing");
}

#[test]
fn refunded_decreasing_fails() {
    let mut obs = valid_with_messages();
    let mut row = obs.messages.merchant_history[2].clone();
    row.version = 3;
    row.refunded = dec!(4);
    obs.messages.merchant_history.push(row);
    let v = &single(check(&obs), Invariant::Replicas);
    assert_eq!(ev(v, "why"), "refunded decreased");
    assert_eq!(ev(v, "trade"), "T0-1");
}

#[test]
fn closed_after_another_status_fails() {
    let mut obs = valid_with_messages();
    let mut closed = event(
        "T0-1:v3:closed",
        "T0-1",
        3,
        EventKind::Closed,
        TradeStatus::Closed,
    );
    closed.refunded = dec!(5);
    obs.messages.merchant_history.push(merchant_row(&closed));
    let v = &single(check(&obs), Invariant::Replicas);
    assert_eq!(ev(v, "why"), "closed is a trade's only status");
    assert_eq!(ev(v, "previous_status"), "PartiallyRefunded");
    assert_eq!(ev(v, "next_status"), "Closed");
}

#[test]
fn increasing_refunds_pass() {
    let mut obs = valid_with_messages();
    // A second partial refund and then the rest: versions, statuses and refunded all rise.
    let mut row = obs.messages.merchant_history[2].clone();
    row.version = 3;
    row.refunded = dec!(7);
    obs.messages.merchant_history.push(row.clone());
    row.version = 4;
    row.refunded = dec!(20);
    row.status = TradeStatus::Refunded;
    obs.messages.merchant_history.push(row);
    assert!(monotonic(&obs.messages).is_empty());
}

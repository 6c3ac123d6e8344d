use super::*;
use crate::testkit::{branch_voucher, ev, pay_attempt, refund, single, valid};
use rust_decimal_macros::dec;
use AttemptStatus::*;

#[test]
fn valid_observation_passes() {
    // A partially refunded, a closed and a failed-then-waiting trade, all through transit.
    assert!(check(&valid()).is_empty());
}

#[test]
fn paid_trade_with_two_succeeded_payments_fails() {
    let mut obs = valid();
    obs.trades[0]
        .pays
        .push(pay_attempt("c1-p9", "x0.9", 2, Succeeded));
    let v = &single(check(&obs), Invariant::TradeLedgerAgreement);
    assert_eq!(
        v.message,
        "trade T0-1 is PartiallyRefunded but has 2 succeeded payments (must have 1)"
    );
    assert_eq!(
        ev(v, "payments"),
        "c1-p1:x0.1:Succeeded=D2:20,C12:20;c1-p9:x0.9:Succeeded=none"
    );
}

#[test]
fn waiting_trade_with_succeeded_payment_fails() {
    let mut obs = valid();
    // The manager read a timed-out rollback as success, but the trade never heard of it.
    obs.trades[2].pays[0].status = Succeeded;
    let v = &single(check(&obs), Invariant::TradeLedgerAgreement);
    assert_eq!(ev(v, "trade"), "T0-3");
    assert_eq!(ev(v, "status"), "WaitPay");
    assert_eq!(ev(v, "payments"), "c1-p2:x0.3:Succeeded=none");
}

#[test]
fn paid_other_than_amount_fails() {
    let mut obs = valid();
    obs.trades[0].paid = dec!(19);
    let v = &single(check(&obs), Invariant::TradeLedgerAgreement);
    assert!(v.message.contains("paid 19 but its amount is 20"));
    assert_eq!(ev(v, "trade"), "T0-1");
}

#[test]
fn closed_trade_holding_money_fails() {
    let mut obs = valid();
    obs.trades[1].paid = dec!(30);
    let v = &single(check(&obs), Invariant::TradeLedgerAgreement);
    assert_eq!(
        v.message,
        "trade T0-2 is Closed but holds paid 30 and refunded 0"
    );
}

#[test]
fn payment_credited_to_the_wrong_account_fails() {
    let mut obs = valid();
    obs.shards[1].vouchers[2].legs[1].account = 11;
    let v = &single(check(&obs), Invariant::TradeLedgerAgreement);
    assert_eq!(ev(v, "xid"), "x0.1");
    assert_eq!(ev(v, "expected"), "D2:20,C12:20");
    assert_eq!(ev(v, "actual"), "D2:20,C11:20");
    assert_eq!(ev(v, "vouchers"), "v0-5,v1-5");
}

#[test]
fn failed_payment_that_posted_fails() {
    let mut obs = valid();
    obs.shards[0]
        .vouchers
        .push(branch_voucher("v0-3", "x0.3", 0, 2, 5, dec!(8)));
    let v = &single(check(&obs), Invariant::TradeLedgerAgreement);
    assert!(v
        .message
        .contains("payment c1-p2 (x0.3) of trade T0-3 failed"));
    assert_eq!(ev(v, "actual"), "D2:8");
    assert_eq!(ev(v, "vouchers"), "v0-3");
}

#[test]
fn pending_payment_at_rest_fails() {
    let mut obs = valid();
    obs.trades[2].pays[0].status = Pending;
    let v = &single(check(&obs), Invariant::TradeLedgerAgreement);
    assert!(v.message.contains("still pending at rest"));
    assert_eq!(ev(v, "xid"), "x0.3");
}

#[test]
fn pending_refund_at_rest_fails() {
    let mut obs = valid();
    let t = &mut obs.trades[0];
    t.refunds.push(refund("c1-r2", "x0.4", dec!(1), Pending));
    t.refunding = dec!(1);
    let v = &single(check(&obs), Invariant::TradeLedgerAgreement);
    assert_eq!(
        v.message,
        "refund c1-r2 (x0.4) of trade T0-1 is still pending at rest"
    );
    assert_eq!(ev(v, "refund"), "c1-r2");
}

#[test]
fn refund_paid_to_the_wrong_account_fails() {
    let mut obs = valid();
    obs.shards[0].vouchers[3].legs[1].account = 3;
    let v = &single(check(&obs), Invariant::TradeLedgerAgreement);
    assert_eq!(ev(v, "xid"), "x0.2");
    assert_eq!(ev(v, "expected"), "D12:5,C2:5");
    assert_eq!(ev(v, "actual"), "D12:5,C3:5");
}

#[test]
fn failed_refund_that_posted_fails() {
    let mut obs = valid();
    obs.trades[0]
        .refunds
        .push(refund("c1-r2", "x0.4", dec!(1), Failed));
    obs.shards[1]
        .vouchers
        .push(branch_voucher("v1-3", "x0.4", 0, 12, 13, dec!(1)));
    let v = &single(check(&obs), Invariant::TradeLedgerAgreement);
    assert!(v
        .message
        .contains("refund c1-r2 (x0.4) of trade T0-1 failed"));
    assert_eq!(ev(v, "actual"), "D12:1");
}

#[test]
fn refund_of_unpaid_trade_fails() {
    let mut obs = valid();
    let t = &mut obs.trades[1];
    t.refunds.push(refund("c1-r2", "x0.4", dec!(1), Succeeded));
    t.refunded = dec!(1);
    let found = check(&obs);
    // The closed trade both holds a refund and refunds a payment it never had.
    assert_eq!(found.len(), 2, "{found:#?}");
    let v = found
        .iter()
        .find(|v| v.message.contains("no single payment"))
        .unwrap();
    assert_eq!(ev(v, "trade"), "T0-2");
    assert_eq!(ev(v, "refund"), "c1-r2");
}

#[test]
fn refunded_other_than_succeeded_refunds_fails() {
    let mut obs = valid();
    obs.trades[0].refunded = dec!(4);
    let v = &single(check(&obs), Invariant::TradeLedgerAgreement);
    assert!(v.message.contains("records refunded 4"));
    assert_eq!(ev(v, "expected"), "5");
}

#[test]
fn status_that_misstates_the_refunds_fails() {
    let mut obs = valid();
    obs.trades[0].status = TradeStatus::Refunded;
    let v = &single(check(&obs), Invariant::TradeLedgerAgreement);
    assert_eq!(
        v.message,
        "trade T0-1 is Refunded but refunded 5 of paid 20 (must be paid)"
    );
}

#[test]
fn activity_no_trade_names_fails() {
    let mut obs = valid();
    obs.shards[1]
        .vouchers
        .push(branch_voucher("v1-3", "x9.9", 1, 13, 12, dec!(7)));
    let v = &single(check(&obs), Invariant::TradeLedgerAgreement);
    assert!(v.message.contains("effect without a cause"));
    assert_eq!(ev(v, "xid"), "x9.9");
    assert_eq!(ev(v, "actual"), "C12:7");
    assert_eq!(ev(v, "activity"), "unknown");
}

#[test]
fn overflowing_effect_fails_without_panicking() {
    let mut obs = valid();
    let huge = branch_voucher("v0-3", "x0.1", 0, 2, 5, Decimal::MAX);
    obs.shards[0].vouchers.push(huge.clone());
    obs.shards[0].vouchers.push(huge);
    let v = &single(check(&obs), Invariant::TradeLedgerAgreement);
    assert_eq!(ev(v, "actual"), "D2:overflow,C12:20");
}

use super::*;

/// The batch check, once the incremental checker is shown to agree on `obs`.
fn check(obs: &Observation) -> Vec<Violation> {
    crate::testkit::agreeing(super::check, obs)
}
use crate::testkit::{ev, refund, single, valid};
use rust_decimal_macros::dec;

#[test]
fn valid_observation_passes() {
    // T0-1 is partially refunded; the other trades have no refund.
    assert!(check(&valid()).is_empty());
}

#[test]
fn whole_refund_reaches_the_bound_and_passes() {
    let mut obs = valid();
    let t = &mut obs.trades[0];
    t.refunds
        .push(refund("c1-r2", "x0.4", dec!(15), AttemptStatus::Pending));
    t.refunding = dec!(15);
    assert!(check(&obs).is_empty());
}

#[test]
fn concurrent_refunds_over_paid_fail() {
    let mut obs = valid();
    // A second refund of 16 passed the check while the first (5) was already counted.
    let t = &mut obs.trades[0];
    t.refunds
        .push(refund("c1-r2", "x0.4", dec!(16), AttemptStatus::Pending));
    t.refunding = dec!(16);
    let v = &single(check(&obs), Invariant::RefundBound);
    assert_eq!(
        v.message,
        "trade T0-1 has refunded 5 + refunding 16 = 21 > paid 20"
    );
    assert_eq!(ev(v, "trade"), "T0-1");
    assert_eq!(ev(v, "claimed"), "21");
    assert_eq!(ev(v, "refunds"), "c1-r1,c1-r2");
}

#[test]
fn refunded_not_the_sum_of_succeeded_refunds_fails() {
    let mut obs = valid();
    obs.trades[0].refunded = dec!(4);
    let v = &single(check(&obs), Invariant::RefundBound);
    assert!(v.message.contains("records refunded 4"));
    assert_eq!(ev(v, "trade"), "T0-1");
    assert_eq!(ev(v, "expected"), "5");
    assert_eq!(ev(v, "actual"), "4");
}

#[test]
fn refunding_not_the_sum_of_pending_refunds_fails() {
    let mut obs = valid();
    obs.trades[0].refunding = dec!(1);
    let v = &single(check(&obs), Invariant::RefundBound);
    assert!(v.message.contains("records refunding 1"));
    assert_eq!(ev(v, "expected"), "0");
    assert_eq!(ev(v, "refunds"), "c1-r1");
}

#[test]
fn non_positive_refund_fails() {
    let mut obs = valid();
    obs.trades[0]
        .refunds
        .push(refund("c1-r2", "x0.4", dec!(0), AttemptStatus::Failed));
    let v = &single(check(&obs), Invariant::RefundBound);
    assert_eq!(ev(v, "refund"), "c1-r2");
    assert_eq!(ev(v, "amount"), "0");
}

#[test]
fn overflow_fails_without_panicking() {
    let mut obs = valid();
    let t = &mut obs.trades[2];
    t.refunds = vec![
        refund("c1-r3", "x0.5", Decimal::MAX, AttemptStatus::Pending),
        refund("c1-r4", "x0.6", Decimal::MAX, AttemptStatus::Pending),
    ];
    t.refunding = Decimal::MAX;
    t.refunded = Decimal::MAX;
    let found = check(&obs);
    assert!(found.iter().all(|v| ev(v, "trade") == "T0-3"), "{found:#?}");
    assert!(found.iter().any(|v| ev(v, "expected") == "overflow"));
    assert!(found.iter().any(|v| ev(v, "claimed") == "overflow"));
}

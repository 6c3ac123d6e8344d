use super::*;

/// The batch check, once the incremental checker is shown to agree on `obs`.
fn check(obs: &Observation) -> Vec<Violation> {
    crate::testkit::agreeing(super::check, obs)
}
use crate::testkit::{ev, leg, single, valid};
use rust_decimal_macros::dec;

#[test]
fn valid_observation_passes() {
    assert!(check(&valid()).is_empty());
}

#[test]
fn single_leg_voucher_fails() {
    let mut obs = valid();
    obs.shards[1].vouchers[0].legs = vec![leg(12, Side::Credit, dec!(50))];
    let found = check(&obs);
    // One leg is also unbalanced; the leg-count violation must be among the findings.
    assert!(found
        .iter()
        .all(|v| v.invariant == Invariant::VoucherBalance));
    let v = found.iter().find(|v| v.message.contains("leg(s)")).unwrap();
    assert_eq!(ev(v, "voucher"), "v1-1");
    assert_eq!(ev(v, "request"), "c2-1");
    assert_eq!(ev(v, "shard"), "1");
    assert_eq!(ev(v, "legs"), "1");
}

#[test]
fn non_positive_leg_fails() {
    let mut obs = valid();
    let legs = &mut obs.shards[0].vouchers[1].legs;
    legs[0].amount = dec!(0);
    legs[1].amount = dec!(0);
    let found = check(&obs);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(ev(&found[0], "leg_amount"), "0");
    assert_eq!(ev(&found[0], "account"), "2");
    assert_eq!(ev(&found[1], "leg"), "1");
    assert_eq!(ev(&found[1], "voucher"), "v0-2");
}

#[test]
fn unbalanced_voucher_fails() {
    let mut obs = valid();
    obs.shards[0].vouchers[0].legs[1].amount = dec!(90);
    let v = &single(check(&obs), Invariant::VoucherBalance);
    assert_eq!(ev(v, "voucher"), "v0-1");
    assert_eq!(ev(v, "request"), "c1-1");
    assert_eq!(ev(v, "debits"), "100");
    assert_eq!(ev(v, "credits"), "90");
}

#[test]
fn overflowing_legs_fail_without_panicking() {
    let mut obs = valid();
    obs.shards[0].vouchers[0].legs = vec![
        leg(1, Side::Debit, Decimal::MAX),
        leg(1, Side::Debit, Decimal::MAX),
        leg(2, Side::Credit, Decimal::MAX),
        leg(2, Side::Credit, Decimal::MAX),
    ];
    let v = &single(check(&obs), Invariant::VoucherBalance);
    assert_eq!(ev(v, "debits"), "overflow");
}

#[test]
fn foreign_currency_fails() {
    let mut obs = valid();
    obs.shards[1].vouchers[1].currency = "USD".into();
    let v = &single(check(&obs), Invariant::VoucherBalance);
    assert_eq!(ev(v, "currency"), "USD");
    assert_eq!(ev(v, "request"), "sys:sweep-1");
}

use super::*;
use std::sync::Arc;

/// The batch check, once the incremental checker is shown to agree on `obs`.
fn check(obs: &Observation) -> Vec<Violation> {
    crate::testkit::agreeing(super::check, obs)
}

#[test]
fn a_branch_posted_twice_fails_and_names_the_activity() {
    let mut obs = valid();
    let twice = obs.shards[1]
        .vouchers
        .iter()
        .find(|v| v.xid.is_some())
        .cloned()
        .expect("valid() holds an activity's branch voucher");
    let mut again = twice.clone();
    again.voucher = format!("{}-again", twice.voucher).into();
    obs.shards[1].vouchers.push(again);
    let v = single(check(&obs), Invariant::ExactlyOnce);
    assert_eq!(ev(&v, "xid"), twice.xid.as_deref().unwrap());
    assert_eq!(ev(&v, "vouchers"), "2");
}
use crate::testkit::{ev, op, single, valid, voucher};
use crate::OpKind;
use rust_decimal_macros::dec;

#[test]
fn valid_observation_passes() {
    // The valid run has an ok, a failed, an unknown and a non-posting op, a sys: voucher,
    // and branch vouchers of activities whose tcc: requests no client sent.
    assert!(check(&valid()).is_empty());
}

#[test]
fn activity_vouchers_are_neither_counted_nor_phantoms() {
    let mut obs = valid();
    // A branch voucher that happens to reuse a client's request id is not a second post of
    // that request, and one under an unknown request is not a phantom: activities judge both.
    let mut branch = voucher("v0-3", "c1-1", 1, 2, dec!(100));
    branch.xid = Some("x0.9".into());
    obs.shards[0].vouchers.push(branch);
    let mut other = voucher("v0-4", "tcc:x0.9:1", 2, 3, dec!(1));
    other.xid = Some("x0.9".into());
    obs.shards[0].vouchers.push(other);
    assert!(check(&obs).is_empty());
    // Without its xid, the same voucher is an ordinary second post of c1-1.
    obs.shards[0].vouchers[5].xid = None;
    let v = &single(check(&obs), Invariant::ExactlyOnce);
    assert_eq!(ev(v, "request"), "c1-1");
    assert_eq!(ev(v, "voucher_ids"), "v0-1,v0-3");
}

#[test]
fn ok_with_two_vouchers_fails() {
    let mut obs = valid();
    // A retry that landed on the other shard posted the same request again.
    obs.shards[1]
        .vouchers
        .push(voucher("v1-3", "c1-1", 11, 12, dec!(100)));
    let v = &single(check(&obs), Invariant::ExactlyOnce);
    assert_eq!(
        v.message,
        "request c1-1 posted 2 vouchers but must post exactly 1 (outcome ok)"
    );
    assert_eq!(ev(v, "request"), "c1-1");
    assert_eq!(ev(v, "vouchers"), "2");
    assert_eq!(ev(v, "outcome"), "ok");
    assert_eq!(ev(v, "voucher_ids"), "v0-1,v1-3");
    assert_eq!(ev(v, "shards"), "0,1");
}

#[test]
fn ok_with_no_voucher_fails() {
    let mut obs = valid();
    obs.shards[1].vouchers.remove(0);
    let v = &single(check(&obs), Invariant::ExactlyOnce);
    assert_eq!(ev(v, "request"), "c2-1");
    assert_eq!(ev(v, "vouchers"), "0");
    assert_eq!(ev(v, "voucher_ids"), "none");
}

#[test]
fn failed_with_voucher_fails() {
    let mut obs = valid();
    obs.shards[0]
        .vouchers
        .push(voucher("v0-3", "c1-3", 2, 3, dec!(500)));
    let v = &single(check(&obs), Invariant::ExactlyOnce);
    assert!(v
        .message
        .contains("request c1-3 posted 1 voucher but must post none"));
    assert_eq!(
        ev(v, "outcome"),
        "fail: insufficient-funds: acct-3 has 50.00, 500.00 needed"
    );
    assert_eq!(ev(v, "voucher_ids"), "v0-3");
}

#[test]
fn unknown_with_one_voucher_passes() {
    let mut obs = valid();
    obs.shards[0]
        .vouchers
        .push(voucher("v0-3", "c2-2", 2, 3, dec!(10)));
    assert!(check(&obs).is_empty());
}

#[test]
fn unknown_with_two_vouchers_fails() {
    let mut obs = valid();
    obs.shards[0]
        .vouchers
        .push(voucher("v0-3", "c2-2", 2, 3, dec!(10)));
    obs.shards[0]
        .vouchers
        .push(voucher("v0-4", "c2-2", 2, 3, dec!(10)));
    let v = &single(check(&obs), Invariant::ExactlyOnce);
    assert!(v.message.contains("must post at most 1 (outcome unknown)"));
    assert_eq!(ev(v, "vouchers"), "2");
    assert_eq!(ev(v, "voucher_ids"), "v0-3,v0-4");
}

#[test]
fn wrong_amount_fails() {
    let mut obs = valid();
    Arc::make_mut(&mut obs.history[2]).amount = Some(dec!(31));
    let v = &single(check(&obs), Invariant::ExactlyOnce);
    assert_eq!(ev(v, "request"), "c1-2");
    assert_eq!(ev(v, "expected"), "31");
    assert_eq!(ev(v, "actual"), "30");
    assert_eq!(ev(v, "voucher_ids"), "v0-2");
}

#[test]
fn same_amount_at_other_scale_passes() {
    let mut obs = valid();
    Arc::make_mut(&mut obs.history[2]).amount = Some(dec!(30.00));
    assert!(check(&obs).is_empty());
}

#[test]
fn phantom_voucher_fails() {
    let mut obs = valid();
    obs.shards[1]
        .vouchers
        .push(voucher("v1-3", "c9-1", 11, 12, dec!(1)));
    let v = &single(check(&obs), Invariant::ExactlyOnce);
    assert!(v.message.contains("request c9-1"));
    assert!(v.message.contains("phantom"));
    assert_eq!(ev(v, "request"), "c9-1");
    assert_eq!(ev(v, "vouchers"), "1");
    assert_eq!(ev(v, "outcome"), "none");
    assert_eq!(ev(v, "voucher_ids"), "v1-3");
}

#[test]
fn system_voucher_is_not_phantom() {
    let mut obs = valid();
    obs.shards[0]
        .vouchers
        .push(voucher("v0-3", "sys:refund-1", 2, 3, dec!(1)));
    assert!(check(&obs).is_empty());
}

#[test]
fn non_posting_op_is_not_checked() {
    let mut obs = valid();
    obs.history
        .push(op("c3-1", OpKind::OpenAccount, None, Outcome::Ok).into());
    assert!(check(&obs).is_empty());
}

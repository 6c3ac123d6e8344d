use super::*;
use crate::testkit::{ev, freeze, reservation, single, valid};
use rust_decimal_macros::dec;

#[test]
fn valid_observation_passes() {
    // The valid run keeps a sys: hold and two transit accounts at 10 and -10.
    assert!(check(&valid()).is_empty());
}

#[test]
fn hanging_try_freeze_fails() {
    let mut obs = valid();
    // The Try of x0.3 arrived after its Cancel and froze 8 forever.
    obs.shards[0]
        .freezes
        .push(reservation("x0.3:0", 2, dec!(8), "x0.3"));
    let v = &single(check(&obs), Invariant::ReservationRelease);
    assert_eq!(
        v.message,
        "freeze x0.3:0 of 8 on account 2 (shard 0, activity x0.3) was left at rest"
    );
    assert_eq!(ev(v, "xid"), "x0.3");
    assert_eq!(ev(v, "activity_status"), "Aborted");
    assert_eq!(ev(v, "account"), "2");
}

#[test]
fn prepared_credit_left_fails() {
    let mut obs = valid();
    obs.shards[1]
        .prepared
        .push(reservation("x0.9:1", 12, dec!(3), "x0.9"));
    let v = &single(check(&obs), Invariant::ReservationRelease);
    assert!(v.message.starts_with("prepared credit x0.9:1 of 3"));
    assert_eq!(ev(v, "shard"), "1");
    assert_eq!(ev(v, "activity_status"), "unknown");
}

#[test]
fn orphan_freeze_without_activity_fails() {
    let mut obs = valid();
    obs.shards[0].freezes.push(freeze("c1-p7", 3, dec!(1)));
    let v = &single(check(&obs), Invariant::ReservationRelease);
    assert_eq!(ev(v, "key"), "c1-p7");
    assert_eq!(ev(v, "xid"), "none");
}

#[test]
fn sys_key_held_by_activity_fails() {
    let mut obs = valid();
    obs.shards[0].freezes[0].xid = Some("x0.1".into());
    let v = &single(check(&obs), Invariant::ReservationRelease);
    assert_eq!(ev(v, "key"), "sys:hold-1");
    assert_eq!(ev(v, "activity_status"), "Committed");
}

#[test]
fn transit_not_netting_to_zero_fails() {
    let mut obs = valid();
    // Shard 1 lost its side of the cross-shard movements: shard 0's transit is unmatched.
    obs.shards[1].accounts[2].available = dec!(0);
    let v = &single(check(&obs), Invariant::ReservationRelease);
    assert_eq!(ev(v, "transit_total"), "10");
    assert_eq!(ev(v, "shard_0"), "10");
    assert_eq!(ev(v, "shard_1"), "0");
}

#[test]
fn overflowing_transit_fails_without_panicking() {
    let mut obs = valid();
    obs.shards[0].accounts[3].available = Decimal::MAX;
    obs.shards[0].accounts[3].frozen = Decimal::MAX;
    let v = &single(check(&obs), Invariant::ReservationRelease);
    assert_eq!(ev(v, "transit_total"), "overflow");
    assert_eq!(ev(v, "shard_1"), "-10");
}

use super::*;

/// The batch check, once the incremental checker is shown to agree on `obs`.
fn check(obs: &Observation) -> Vec<Violation> {
    crate::testkit::agreeing(super::check, obs)
}
use crate::testkit::{ev, single, valid};
use crate::Observation;
use rust_decimal_macros::dec;

#[test]
fn valid_observation_passes() {
    assert!(check(&valid()).is_empty());
}

#[test]
fn empty_observation_passes() {
    assert!(check(&Observation::default()).is_empty());
}

#[test]
fn created_money_fails_with_subtotals() {
    let mut obs = valid();
    obs.shards[1].accounts[1].available += dec!(7);
    let v = &single(check(&obs), Invariant::Conservation);
    assert_eq!(ev(v, "total"), "7");
    assert_eq!(ev(v, "shards"), "2");
    assert_eq!(ev(v, "shard_0"), "0");
    assert_eq!(ev(v, "shard_1"), "7");
}

#[test]
fn destroyed_frozen_money_fails() {
    let mut obs = valid();
    obs.shards[0].accounts[2].frozen = dec!(0);
    let v = &single(check(&obs), Invariant::Conservation);
    assert_eq!(ev(v, "total"), "-10");
    assert_eq!(ev(v, "shard_0"), "-10");
}

#[test]
fn overflow_fails_without_panicking() {
    let mut obs = valid();
    obs.shards[0].accounts[0].available = Decimal::MAX;
    obs.shards[0].accounts[1].available = Decimal::MAX;
    let v = &single(check(&obs), Invariant::Conservation);
    assert_eq!(ev(v, "total"), "overflow");
    assert_eq!(ev(v, "shard_1"), "0");
}

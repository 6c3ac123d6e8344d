use super::*;

/// The batch check, once the incremental checker is shown to agree on `obs`.
fn check(obs: &Observation) -> Vec<Violation> {
    crate::testkit::agreeing(super::check, obs)
}
use crate::testkit::{ev, single, valid};
use rust_decimal_macros::dec;

#[test]
fn valid_observation_passes() {
    // The valid run has a negative world account, which must not count.
    assert!(check(&valid()).is_empty());
}

#[test]
fn negative_transit_available_passes() {
    let mut obs = valid();
    obs.shards[1].accounts[2].available = dec!(-5);
    assert!(check(&obs).is_empty());
}

#[test]
fn negative_user_available_fails() {
    let mut obs = valid();
    obs.shards[0].accounts[1].available = dec!(-1);
    let v = &single(check(&obs), Invariant::NonNegativity);
    assert_eq!(ev(v, "account"), "2");
    assert_eq!(ev(v, "shard"), "0");
    assert_eq!(ev(v, "subject"), "user");
    assert_eq!(ev(v, "available"), "-1");
    assert_eq!(ev(v, "frozen"), "0");
}

#[test]
fn negative_merchant_available_fails() {
    let mut obs = valid();
    obs.shards[1].accounts[1].available = dec!(-0.01);
    let v = &single(check(&obs), Invariant::NonNegativity);
    assert_eq!(ev(v, "subject"), "merchant");
    assert_eq!(ev(v, "available"), "-0.01");
}

#[test]
fn negative_frozen_fails_even_for_world() {
    let mut obs = valid();
    obs.shards[1].accounts[0].frozen = dec!(-3);
    let v = &single(check(&obs), Invariant::NonNegativity);
    assert_eq!(ev(v, "account"), "11");
    assert_eq!(ev(v, "subject"), "world");
    assert_eq!(ev(v, "frozen"), "-3");
}

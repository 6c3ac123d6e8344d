//! Invariant 2: money is neither created nor destroyed.
//!
//! Money only enters through the world account, which goes negative by exactly what it paid in,
//! so the sum of every account of every shard, world and transit included, is always zero.

use crate::money::{balance, checked_sum, same, show};
use crate::{Invariant, Observation, ShardSnapshot, Violation};
use rust_decimal::Decimal;

/// Reports at most one violation: the grand total, with each shard's subtotal as evidence so
/// that the shard where money appeared or vanished can be seen at a glance.
pub fn check(obs: &Observation) -> Vec<Violation> {
    let subtotals: Vec<(u32, Option<Decimal>)> = obs
        .shards
        .iter()
        .map(|s| (s.shard, shard_total(s)))
        .collect();
    let total = subtotals
        .iter()
        .try_fold(Decimal::ZERO, |acc, (_, t)| acc.checked_add((*t)?));
    if same(total, Some(Decimal::ZERO)) {
        return Vec::new();
    }
    let msg = format!(
        "all accounts of all shards sum to {} instead of 0",
        show(total)
    );
    let mut violation = Violation::new(Invariant::Conservation, msg)
        .with("total", show(total))
        .with("shards", obs.shards.len());
    for (n, subtotal) in subtotals {
        violation = violation.with(&format!("shard_{n}"), show(subtotal));
    }
    vec![violation]
}

/// Σ (available + frozen) over one shard's accounts, or `None` on overflow.
fn shard_total(shard: &ShardSnapshot) -> Option<Decimal> {
    let balances: Option<Vec<Decimal>> = shard.accounts.iter().map(balance).collect();
    checked_sum(balances?)
}

#[cfg(test)]
mod tests {
    use super::*;
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
}

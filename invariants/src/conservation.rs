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
    verdict(subtotals)
}

/// The verdict on a platform whose shards' balances sum to `subtotals` (`None`: overflowed).
pub(crate) fn verdict(subtotals: Vec<(u32, Option<Decimal>)>) -> Vec<Violation> {
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
        .with("shards", subtotals.len());
    for (n, subtotal) in subtotals {
        violation = violation.with(&format!("shard_{n}"), show(subtotal));
    }
    vec![violation]
}

/// Σ (available + frozen) over one shard's accounts, or `None` on overflow.
pub(crate) fn shard_total(shard: &ShardSnapshot) -> Option<Decimal> {
    let balances: Option<Vec<Decimal>> = shard.accounts.iter().map(balance).collect();
    checked_sum(balances?)
}

#[cfg(test)]
#[path = "conservation/tests.rs"]
mod tests;

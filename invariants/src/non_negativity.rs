//! Invariant 4: customers never owe the platform, and nothing is ever frozen below zero.
//!
//! Users and merchants hold liabilities of the platform, so a negative available balance means
//! an overdraft the platform never granted. Transit and world accounts are exempt: they are
//! negative by design while money is in flight or after it entered. A negative frozen amount is
//! meaningless for every subject, since a reservation cannot hold less than nothing.

use crate::{AccountState, Invariant, Observation, Violation};
use rust_decimal::Decimal;

/// Checks every account of every shard; one violation per broken rule per account.
pub fn check(obs: &Observation) -> Vec<Violation> {
    let mut out = Vec::new();
    for shard in &obs.shards {
        for account in &shard.accounts {
            check_account(shard.shard, account, &mut out);
        }
    }
    out
}

pub(crate) fn check_account(shard: u32, a: &AccountState, out: &mut Vec<Violation>) {
    if a.frozen < Decimal::ZERO {
        let msg = format!(
            "account {} on shard {shard} has frozen {} < 0",
            a.account, a.frozen
        );
        out.push(about(shard, a, msg));
    }
    if a.subject.must_stay_non_negative() && a.available < Decimal::ZERO {
        let msg = format!(
            "{} account {} on shard {shard} has available {} < 0",
            a.subject, a.account, a.available
        );
        out.push(about(shard, a, msg));
    }
}

/// A violation carrying the whole account row, so both balances can be read together.
fn about(shard: u32, a: &AccountState, message: String) -> Violation {
    Violation::new(Invariant::NonNegativity, message)
        .with("account", a.account)
        .with("shard", shard)
        .with("subject", a.subject)
        .with("available", a.available)
        .with("frozen", a.frozen)
}

#[cfg(test)]
#[path = "non_negativity/tests.rs"]
mod tests;

//! Invariant 1: every voucher is a balanced movement of positive CNY amounts.
//!
//! A voucher is the unit of double-entry bookkeeping: if its debits and credits differ, the
//! posting itself created or destroyed money, whatever the balances later say.

use crate::money::{same, show, side_total};
use crate::{Invariant, Observation, Side, Violation, VoucherRecord};
use rust_decimal::Decimal;

/// paylab books a single currency; amounts in any other cannot be added to the rest.
const CURRENCY: &str = "CNY";

/// Checks every voucher of every shard, in the order the shards hold them.
pub fn check(obs: &Observation) -> Vec<Violation> {
    let mut out = Vec::new();
    for shard in &obs.shards {
        for v in &shard.vouchers {
            check_voucher(shard.shard, v, &mut out);
        }
    }
    out
}

/// A violation about `v`, carrying the ids needed to find it again.
fn about(shard: u32, v: &VoucherRecord, message: String) -> Violation {
    Violation::new(Invariant::VoucherBalance, message)
        .with("voucher", &v.voucher)
        .with("request", &v.request)
        .with("shard", shard)
        .with("legs", v.legs.len())
}

pub(crate) fn check_voucher(shard: u32, v: &VoucherRecord, out: &mut Vec<Violation>) {
    if v.legs.len() < 2 {
        let msg = format!(
            "voucher {} has {} leg(s); a movement needs at least 2",
            v.voucher,
            v.legs.len()
        );
        out.push(about(shard, v, msg));
    }
    check_leg_amounts(shard, v, out);
    check_balanced(shard, v, out);
    if v.currency != CURRENCY {
        let msg = format!("voucher {} is in {}, not {CURRENCY}", v.voucher, v.currency);
        out.push(about(shard, v, msg).with("currency", &v.currency));
    }
}

/// A zero or negative leg would let a voucher move money in the direction opposite to its side.
fn check_leg_amounts(shard: u32, v: &VoucherRecord, out: &mut Vec<Violation>) {
    for (i, leg) in v.legs.iter().enumerate() {
        if leg.amount <= Decimal::ZERO {
            let msg = format!(
                "voucher {} leg {i} on account {} has amount {}; amounts must be > 0",
                v.voucher, leg.account, leg.amount
            );
            let violation = about(shard, v, msg)
                .with("leg", i)
                .with("account", leg.account)
                .with("leg_amount", leg.amount);
            out.push(violation);
        }
    }
}

fn check_balanced(shard: u32, v: &VoucherRecord, out: &mut Vec<Violation>) {
    let debits = side_total(&v.legs, Side::Debit);
    let credits = side_total(&v.legs, Side::Credit);
    if !same(debits, credits) {
        let msg = format!(
            "voucher {} debits {} but credits {}",
            v.voucher,
            show(debits),
            show(credits)
        );
        let violation = about(shard, v, msg)
            .with("debits", show(debits))
            .with("credits", show(credits));
        out.push(violation);
    }
}

#[cfg(test)]
#[path = "voucher_balance/tests.rs"]
mod tests;

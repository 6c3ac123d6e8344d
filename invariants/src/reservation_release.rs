//! Invariant 12: at rest, no reservation is left, and transit accounts net to zero.
//!
//! Checked at quiescence only: mid-flight, a Try legitimately holds a freeze on the payer's
//! shard and a prepared credit on the merchant's, and a cross-shard movement is half-posted.
//! At rest every activity has ended, so every freeze and prepared credit it held must have
//! been confirmed or cancelled: one still there is money locked forever (a hanging Try that
//! came after its Cancel, a Cancel that never ran). Likewise every cross-shard leg passes
//! through a transit account on each side, so once nothing is in flight the transit accounts
//! of all shards together hold nothing.
//!
//! A freeze held by no activity whose key starts with "sys:" is the platform's own hold (the
//! convention of system request ids): it is not a reservation of any flow and may stay.

use crate::index::activities_by_xid;
use crate::money::{balance, checked_sum, same, show};
use crate::{ActivityState, FreezeState, Invariant, Observation, Subject, Violation};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// Keys with this prefix name the platform's own holds, not reservations of a flow.
const SYSTEM_PREFIX: &str = "sys:";

pub fn check(obs: &Observation) -> Vec<Violation> {
    let activities = activities_by_xid(obs);
    let mut out = Vec::new();
    for shard in &obs.shards {
        let held = shard
            .freezes
            .iter()
            .filter(|f| f.xid.is_some() || !f.key.starts_with(SYSTEM_PREFIX));
        for f in held {
            out.push(leftover(shard.shard, f, "freeze", &activities));
        }
        for p in &shard.prepared {
            out.push(leftover(shard.shard, p, "prepared credit", &activities));
        }
    }
    out.extend(transit_nets_to_zero(obs));
    out
}

fn leftover(
    shard: u32,
    f: &FreezeState,
    what: &str,
    activities: &BTreeMap<&str, &ActivityState>,
) -> Violation {
    let xid = f.xid.as_deref().unwrap_or("none");
    let holder = f.xid.as_deref().and_then(|x| activities.get(x));
    let status = holder.map_or_else(|| "unknown".to_string(), |a| format!("{:?}", a.status));
    let msg = format!(
        "{what} {} of {} on account {} (shard {shard}, activity {xid}) was left at rest",
        f.key, f.amount, f.account
    );
    Violation::new(Invariant::ReservationRelease, msg)
        .with("key", &f.key)
        .with("account", f.account)
        .with("amount", f.amount)
        .with("shard", shard)
        .with("xid", xid)
        .with("activity_status", status)
}

/// Σ (available + frozen) over the transit accounts of all shards = 0, with each shard's
/// subtotal as evidence.
fn transit_nets_to_zero(obs: &Observation) -> Option<Violation> {
    let subtotals: Vec<(u32, Option<Decimal>)> = obs
        .shards
        .iter()
        .map(|s| {
            let transit = s.accounts.iter().filter(|a| a.subject == Subject::Transit);
            let balances: Option<Vec<Decimal>> = transit.map(balance).collect();
            (s.shard, balances.and_then(checked_sum))
        })
        .collect();
    let total = subtotals
        .iter()
        .try_fold(Decimal::ZERO, |acc, (_, t)| acc.checked_add((*t)?));
    if same(total, Some(Decimal::ZERO)) {
        return None;
    }
    let msg = format!(
        "transit accounts of all shards hold {} at rest instead of 0",
        show(total)
    );
    let mut violation =
        Violation::new(Invariant::ReservationRelease, msg).with("transit_total", show(total));
    for (n, subtotal) in subtotals {
        violation = violation.with(&format!("shard_{n}"), show(subtotal));
    }
    Some(violation)
}

#[cfg(test)]
#[path = "reservation_release/tests.rs"]
mod tests;

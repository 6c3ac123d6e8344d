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
mod tests {
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
        assert_eq!(ev(v, "activity_status"), "RolledBack");
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
        obs.shards[0].freezes[0].xid = Some("x0.1".to_string());
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
}

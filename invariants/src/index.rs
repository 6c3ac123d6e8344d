//! Lookups shared by the activity checkers (idempotency, trade–ledger agreement, atomicity,
//! reservation release): which vouchers each activity posted, each activity by xid, and what
//! subject each account has.

use crate::money::checked_sum;
use crate::{ActivityState, Observation, Side, Subject, VoucherRecord};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// A voucher together with the shard holding it.
pub(crate) type Posted<'a> = (u32, &'a VoucherRecord);

/// What a set of vouchers did to customers: the total per (account, side) over the legs on
/// accounts that are not transit accounts. `None` is a total that overflowed.
pub(crate) type Effect = BTreeMap<(u64, Side), Option<Decimal>>;

/// The vouchers of every activity, grouped by xid across all shards.
pub(crate) fn vouchers_by_xid(obs: &Observation) -> BTreeMap<&str, Vec<Posted<'_>>> {
    let mut by_xid: BTreeMap<&str, Vec<Posted<'_>>> = BTreeMap::new();
    for shard in &obs.shards {
        for v in &shard.vouchers {
            if let Some(xid) = &v.xid {
                by_xid
                    .entry(xid.as_str())
                    .or_default()
                    .push((shard.shard, v));
            }
        }
    }
    by_xid
}

/// Activities by xid; if a log held one xid twice, the first is kept (transitions and
/// idempotency judge the log itself).
pub(crate) fn activities_by_xid(obs: &Observation) -> BTreeMap<&str, &ActivityState> {
    let mut by_xid = BTreeMap::new();
    for a in &obs.activities {
        by_xid.entry(a.xid.as_str()).or_insert(a);
    }
    by_xid
}

/// Whether `posted` leaves every account (transit accounts included) as it found it: what
/// a movement that ended failed may have posted, a compensated saga's steps and their undoing.
pub(crate) fn nets_to_zero(posted: &[Posted<'_>]) -> bool {
    let mut net: BTreeMap<(u32, u64), Decimal> = BTreeMap::new();
    for (shard, v) in posted {
        for l in &v.legs {
            let signed = match l.side {
                Side::Credit => l.amount,
                Side::Debit => -l.amount,
            };
            *net.entry((*shard, l.account)).or_default() += signed;
        }
    }
    net.values().all(Decimal::is_zero)
}

/// The subject of each account, by (shard, account).
pub(crate) fn subjects(obs: &Observation) -> BTreeMap<(u32, u64), Subject> {
    let mut subjects = BTreeMap::new();
    for shard in &obs.shards {
        for a in &shard.accounts {
            subjects.insert((shard.shard, a.account), a.subject);
        }
    }
    subjects
}

/// The effect of `posted` on customers. A leg on an account its shard does not hold counts,
/// since nothing shows it is a transit account.
pub(crate) fn effect(posted: &[Posted<'_>], subjects: &BTreeMap<(u32, u64), Subject>) -> Effect {
    let mut amounts: BTreeMap<(u64, Side), Vec<Decimal>> = BTreeMap::new();
    for (shard, v) in posted {
        for l in &v.legs {
            if subjects.get(&(*shard, l.account)) != Some(&Subject::Transit) {
                amounts
                    .entry((l.account, l.side))
                    .or_default()
                    .push(l.amount);
            }
        }
    }
    amounts
        .into_iter()
        .map(|(key, list)| (key, checked_sum(list)))
        .collect()
}

/// Whether two effects are known to be the same; an overflowed total never matches.
pub(crate) fn same_effect(a: &Effect, b: &Effect) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && crate::money::same(*va, *vb))
}

/// An effect as "D2:20,C12:20" (debits first, then by account), or "none".
pub(crate) fn render_effect(effect: &Effect) -> String {
    if effect.is_empty() {
        return "none".to_string();
    }
    let mut parts: Vec<(Side, u64, String)> = effect
        .iter()
        .map(|((account, side), amount)| (*side, *account, crate::money::show(*amount)))
        .collect();
    parts.sort();
    let one = |(side, account, amount): &(Side, u64, String)| {
        let s = if *side == Side::Debit { 'D' } else { 'C' };
        format!("{s}{account}:{amount}")
    };
    parts.iter().map(one).collect::<Vec<_>>().join(",")
}

/// Voucher ids as "v0-5,v1-5", for evidence.
pub(crate) fn voucher_ids(posted: &[Posted<'_>]) -> String {
    let ids: Vec<&str> = posted.iter().map(|(_, v)| v.voucher.as_str()).collect();
    ids.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::valid;
    use rust_decimal_macros::dec;

    #[test]
    fn effect_leaves_transit_out() {
        let obs = valid();
        let by_xid = vouchers_by_xid(&obs);
        let pay = effect(&by_xid["x0.1"], &subjects(&obs));
        assert_eq!(render_effect(&pay), "D2:20,C12:20");
        let expected: Effect = [
            ((12, Side::Credit), Some(dec!(20.00))),
            ((2, Side::Debit), Some(dec!(20))),
        ]
        .into_iter()
        .collect();
        assert!(same_effect(&pay, &expected));
        assert_eq!(voucher_ids(&by_xid["x0.1"]), "v0-5,v1-5");
    }

    #[test]
    fn overflowed_effect_matches_nothing() {
        let overflow: Effect = [((2, Side::Debit), None)].into_iter().collect();
        assert!(!same_effect(&overflow, &overflow));
        assert_eq!(render_effect(&overflow), "D2:overflow");
        assert_eq!(render_effect(&Effect::new()), "none");
    }
}

//! The TCC fence rows' part of atomicity (11): what only strategies with fenced participants
//! (`tcc`, `2pc`) can be judged by, kept apart from the net-effect rules every strategy meets.
//!
//! A committed activity has each branch's fence row Committed on a shard that keeps fences for
//! it; a rolled-back one has no branch left Tried or Committed; and, whatever any activity
//! says, the fence rows of one xid never mix a commit with a cancel (a half-committed
//! transaction). Violations are atomicity's.

use crate::index::{voucher_ids, Posted};
use crate::{ActivityState, FenceRow, FenceState, Invariant, MovementLeg, Observation, Violation};
use std::collections::BTreeMap;

/// A fence row together with the shard holding it.
pub(crate) type Fenced<'a> = (u32, &'a FenceRow);

/// Every fence row, by xid across shards.
pub(crate) fn by_xid(obs: &Observation) -> BTreeMap<&str, Vec<Fenced<'_>>> {
    let mut fences: BTreeMap<&str, Vec<Fenced<'_>>> = BTreeMap::new();
    for shard in &obs.shards {
        for row in &shard.fences {
            let entry = fences.entry(row.xid.as_str()).or_default();
            entry.push((shard.shard, row));
        }
    }
    fences
}

/// Fence rows as "0/1:Committed" (shard/branch:state), for evidence.
pub(crate) fn render(fences: &[Fenced<'_>]) -> String {
    let each: Vec<String> = fences
        .iter()
        .map(|(shard, row)| format!("{shard}/{}:{:?}", row.branch, row.state))
        .collect();
    each.join(",")
}

/// Why committed activity `a`'s branch `leg` is not fenced Committed, if it is not (a shard
/// that keeps no fence for the activity runs a strategy without fences: nothing to judge).
pub(crate) fn not_committed<'l>(
    a: &ActivityState,
    leg: &'l MovementLeg,
    fences: &[Fenced<'_>],
) -> Option<(String, &'l MovementLeg)> {
    let on_shard: Vec<&FenceRow> = fences
        .iter()
        .filter(|(shard, _)| *shard == leg.shard)
        .map(|(_, row)| *row)
        .collect();
    if on_shard.is_empty() {
        return None;
    }
    let states: Vec<FenceState> = on_shard
        .iter()
        .filter(|row| row.branch == leg.branch)
        .map(|row| row.state)
        .collect();
    if states.contains(&FenceState::Committed) {
        return None;
    }
    let msg = format!(
        "activity {} is Committed but branch {} on shard {} is fenced {:?}",
        a.xid, leg.branch, leg.shard, states
    );
    Some((msg, leg))
}

/// Why rolled-back activity `a` is not fully cancelled, if some branch is still Tried or
/// Committed.
pub(crate) fn not_cancelled(a: &ActivityState, fences: &[Fenced<'_>]) -> Option<String> {
    let live: Vec<Fenced<'_>> = fences
        .iter()
        .filter(|(_, row)| matches!(row.state, FenceState::Tried | FenceState::Committed))
        .copied()
        .collect();
    (!live.is_empty()).then(|| {
        format!(
            "activity {} is Aborted but branches {} were not cancelled",
            a.xid,
            render(&live)
        )
    })
}

/// The fence rows of one xid never mix a commit with a cancel, whatever the activity says.
pub(crate) fn mixed(
    fences: &BTreeMap<&str, Vec<Fenced<'_>>>,
    vouchers: &BTreeMap<&str, Vec<Posted<'_>>>,
) -> Vec<Violation> {
    let cancelled = |s: FenceState| matches!(s, FenceState::RolledBack | FenceState::Suspended);
    let mixed = fences.iter().filter(|(_, rows)| {
        rows.iter().any(|(_, r)| r.state == FenceState::Committed)
            && rows.iter().any(|(_, r)| cancelled(r.state))
    });
    mixed
        .map(|(xid, rows)| {
            let msg = format!(
                "activity {xid} has branches both committed and cancelled: {}",
                render(rows)
            );
            let posted = vouchers.get(xid).map_or(&[][..], Vec::as_slice);
            Violation::new(Invariant::Atomicity, msg)
                .with("xid", xid)
                .with("fences", render(rows))
                .with("vouchers", voucher_ids(posted))
        })
        .collect()
}

//! Invariant 11: at rest, all branches of an activity end the same way, and none is left in Try.
//!
//! Checked at quiescence only: mid-flight an activity is legitimately half-confirmed. At rest,
//! every activity has reached a terminal status other than Heuristic, and its branches agree
//! with it: a Committed activity has each branch's fence row Committed (on shards that keep
//! fences for it) and each leg of its movement posted by exactly one voucher; a Aborted one
//! has no branch Tried or Committed and vouchers that net to zero (none at all for a strategy
//! that posts only once it decided; a step and its compensation for a saga). Independently of
//! any activity, the fence rows of one xid never mix Committed with RolledBack or Suspended: that is a
//! half-committed transaction whatever its manager's log says. A commit decision that was not
//! durable before phase two, or a timeout rollback racing the commit, ends exactly so.

use crate::index::{nets_to_zero, voucher_ids, vouchers_by_xid, Posted};
use crate::money::{checked_sum, same, show};
use crate::{
    ActivityState, FenceRow, FenceState, Invariant, MovementLeg, Observation, Phase, Violation,
};
use std::collections::BTreeMap;

/// A fence row together with the shard holding it.
type Fenced<'a> = (u32, &'a FenceRow);

/// What every rule needs: the fence rows and the vouchers of each xid, across shards.
struct Branches<'a> {
    fences: BTreeMap<&'a str, Vec<Fenced<'a>>>,
    vouchers: BTreeMap<&'a str, Vec<Posted<'a>>>,
}

impl<'a> Branches<'a> {
    fn fences(&self, xid: &str) -> &[Fenced<'a>] {
        self.fences.get(xid).map_or(&[][..], Vec::as_slice)
    }

    fn vouchers(&self, xid: &str) -> &[Posted<'a>] {
        self.vouchers.get(xid).map_or(&[][..], Vec::as_slice)
    }
}

pub fn check(obs: &Observation) -> Vec<Violation> {
    let mut fences: BTreeMap<&str, Vec<Fenced<'_>>> = BTreeMap::new();
    for shard in &obs.shards {
        for row in &shard.fences {
            fences
                .entry(row.xid.as_str())
                .or_default()
                .push((shard.shard, row));
        }
    }
    let branches = Branches {
        fences,
        vouchers: vouchers_by_xid(obs),
    };
    let mut out = Vec::new();
    for a in &obs.activities {
        out.extend(terminal(a, &branches));
        match a.status {
            Phase::Committed => out.extend(committed(a, &branches)),
            Phase::Aborted => out.extend(rolled_back(a, &branches)),
            _ => {}
        }
    }
    out.extend(mixed_fences(&branches));
    out
}

/// Fence rows as "0/1:Committed" (shard/branch:state), for evidence.
fn render_fences(fences: &[Fenced<'_>]) -> String {
    let each: Vec<String> = fences
        .iter()
        .map(|(shard, row)| format!("{shard}/{}:{:?}", row.branch, row.state))
        .collect();
    each.join(",")
}

/// A violation about activity `a`, with its branches' fences and vouchers.
fn about(a: &ActivityState, b: &Branches<'_>, message: String) -> Violation {
    Violation::new(Invariant::Atomicity, message)
        .with("xid", &a.xid)
        .with("trade", &a.trade)
        .with("kind", format!("{:?}", a.kind))
        .with("status", format!("{:?}", a.status))
        .with("node", &a.node)
        .with("fences", render_fences(b.fences(&a.xid)))
        .with("vouchers", voucher_ids(b.vouchers(&a.xid)))
}

/// At rest every activity has ended, and ended one way.
fn terminal(a: &ActivityState, b: &Branches<'_>) -> Option<Violation> {
    let what = match a.status {
        Phase::Running => "was left in Try",
        Phase::Committing | Phase::Aborting => "has its phase two unfinished",
        Phase::Heuristic => "ended Heuristic: its branches ended differently",
        Phase::Committed | Phase::Aborted => return None,
    };
    let msg = format!("activity {} {what} ({:?} at rest)", a.xid, a.status);
    Some(about(a, b, msg))
}

/// A leg as "D2:20 on shard 0", for messages.
fn render_leg(leg: &MovementLeg) -> String {
    let s = if leg.side == crate::Side::Debit {
        'D'
    } else {
        'C'
    };
    format!("{s}{}:{} on shard {}", leg.account, leg.amount, leg.shard)
}

/// Whether voucher `v` on `shard` posts (part of) movement leg `leg`.
fn posts(shard: u32, v: &Posted<'_>, leg: &MovementLeg) -> bool {
    v.0 == shard
        && v.1
            .legs
            .iter()
            .any(|l| l.account == leg.account && l.side == leg.side)
}

/// A committed activity has every branch fenced Committed and posted exactly once, and no
/// voucher besides.
fn committed(a: &ActivityState, b: &Branches<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    for leg in &a.legs {
        out.extend(branch_fence_committed(a, leg, b));
        out.extend(branch_posted_once(a, leg, b));
    }
    if a.legs.is_empty() {
        return out;
    }
    let extra: Vec<Posted<'_>> = b
        .vouchers(&a.xid)
        .iter()
        .filter(|v| !a.legs.iter().any(|leg| posts(leg.shard, v, leg)))
        .copied()
        .collect();
    if !extra.is_empty() {
        let msg = format!(
            "activity {} is Committed but voucher(s) {} post none of its legs",
            a.xid,
            voucher_ids(&extra)
        );
        out.push(about(a, b, msg).with("extra", voucher_ids(&extra)));
    }
    out
}

fn branch_fence_committed(
    a: &ActivityState,
    leg: &MovementLeg,
    b: &Branches<'_>,
) -> Option<Violation> {
    let on_shard: Vec<Fenced<'_>> = b
        .fences(&a.xid)
        .iter()
        .filter(|(shard, _)| *shard == leg.shard)
        .copied()
        .collect();
    // A shard that keeps no fence for this activity runs a strategy without fences.
    if on_shard.is_empty() {
        return None;
    }
    let states: Vec<FenceState> = on_shard
        .iter()
        .filter(|(_, row)| row.branch == leg.branch)
        .map(|(_, row)| row.state)
        .collect();
    if states.contains(&FenceState::Committed) {
        return None;
    }
    let msg = format!(
        "activity {} is Committed but branch {} on shard {} is fenced {:?}",
        a.xid, leg.branch, leg.shard, states
    );
    let v = about(a, b, msg)
        .with("branch", leg.branch)
        .with("shard", leg.shard);
    Some(v)
}

fn branch_posted_once(a: &ActivityState, leg: &MovementLeg, b: &Branches<'_>) -> Option<Violation> {
    let found: Vec<Posted<'_>> = b
        .vouchers(&a.xid)
        .iter()
        .filter(|v| posts(leg.shard, v, leg))
        .copied()
        .collect();
    let msg = match found.as_slice() {
        [] => format!(
            "activity {} is Committed but branch {} ({}) was never posted",
            a.xid,
            leg.branch,
            render_leg(leg)
        ),
        [(_, v)] => {
            let on_leg = v
                .legs
                .iter()
                .filter(|l| l.account == leg.account && l.side == leg.side);
            let posted = checked_sum(on_leg.map(|l| l.amount));
            if same(posted, Some(leg.amount)) {
                return None;
            }
            format!(
                "activity {} branch {} ({}) was posted as {} by {}",
                a.xid,
                leg.branch,
                render_leg(leg),
                show(posted),
                v.voucher
            )
        }
        _ => format!(
            "activity {} branch {} ({}) was posted {} times",
            a.xid,
            leg.branch,
            render_leg(leg),
            found.len()
        ),
    };
    let v = about(a, b, msg)
        .with("branch", leg.branch)
        .with("shard", leg.shard)
        .with("branch_vouchers", voucher_ids(&found));
    Some(v)
}

/// A rolled-back activity has no branch Tried or Committed, and posted nothing.
fn rolled_back(a: &ActivityState, b: &Branches<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let live: Vec<Fenced<'_>> = b
        .fences(&a.xid)
        .iter()
        .filter(|(_, row)| matches!(row.state, FenceState::Tried | FenceState::Committed))
        .copied()
        .collect();
    if !live.is_empty() {
        let msg = format!(
            "activity {} is Aborted but branches {} were not cancelled",
            a.xid,
            render_fences(&live)
        );
        out.push(about(a, b, msg));
    }
    let posted = b.vouchers(&a.xid);
    // A strategy that compensates (a saga) posts and undoes: judged by the net effect.
    if !nets_to_zero(posted) {
        let msg = format!(
            "activity {} is Aborted but posted {} voucher(s): {}",
            a.xid,
            posted.len(),
            voucher_ids(posted)
        );
        out.push(about(a, b, msg));
    }
    out
}

/// The fence rows of one xid never mix a commit with a cancel, whatever the activity says.
fn mixed_fences(b: &Branches<'_>) -> Vec<Violation> {
    let cancelled = |s: FenceState| matches!(s, FenceState::RolledBack | FenceState::Suspended);
    let mixed = b.fences.iter().filter(|(_, rows)| {
        rows.iter().any(|(_, r)| r.state == FenceState::Committed)
            && rows.iter().any(|(_, r)| cancelled(r.state))
    });
    mixed
        .map(|(xid, rows)| {
            let msg = format!(
                "activity {xid} has branches both committed and cancelled: {}",
                render_fences(rows)
            );
            Violation::new(Invariant::Atomicity, msg)
                .with("xid", xid)
                .with("fences", render_fences(rows))
                .with("vouchers", voucher_ids(b.vouchers(xid)))
        })
        .collect()
}

#[cfg(test)]
#[path = "atomicity/tests.rs"]
mod tests;

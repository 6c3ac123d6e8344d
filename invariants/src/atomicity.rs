//! Invariant 11: at rest, all branches of a movement end the same way, and none is left
//! unfinished.
//!
//! Checked at quiescence only: mid-flight a movement is legitimately half-done. At rest, every
//! movement has reached a terminal phase other than Heuristic, and its effects agree with it,
//! judged by net effect so that any strategy can be: a Committed movement posted each of its
//! legs by exactly one voucher and nothing else; an Aborted one posted vouchers that net to
//! zero (none at all for a strategy that posts only once it decided; a step and its
//! compensation for a saga). Strategies with fenced participants are also judged by their
//! fence rows ([`crate::fences`]): committed branches fenced Committed, none left Tried after
//! a rollback, and no xid mixing a commit with a cancel. A commit decision that was not
//! durable before phase two, or a timeout rollback racing the commit, ends exactly so.

use crate::fences::{self, Fenced};
use crate::index::{nets_to_zero, voucher_ids, vouchers_by_xid, Posted};
use crate::money::{checked_sum, same, show};
use crate::{ActivityState, Invariant, MovementLeg, Observation, Phase, Violation};
use std::collections::BTreeMap;

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
    let branches = Branches {
        fences: fences::by_xid(obs),
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
    out.extend(fences::mixed(&branches.fences, &branches.vouchers));
    out
}

/// A violation about activity `a`, with its branches' fences and vouchers.
fn about(a: &ActivityState, b: &Branches<'_>, message: String) -> Violation {
    Violation::new(Invariant::Atomicity, message)
        .with("xid", &a.xid)
        .with("trade", &a.trade)
        .with("kind", format!("{:?}", a.kind))
        .with("status", format!("{:?}", a.status))
        .with("node", &a.node)
        .with("fences", fences::render(b.fences(&a.xid)))
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

/// A committed activity has every branch fenced Committed (where its shard keeps fences)
/// and posted exactly once, and no voucher besides.
fn committed(a: &ActivityState, b: &Branches<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    for leg in &a.legs {
        if let Some((msg, leg)) = fences::not_committed(a, leg, b.fences(&a.xid)) {
            let v = about(a, b, msg)
                .with("branch", leg.branch)
                .with("shard", leg.shard);
            out.push(v);
        }
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

/// A rolled-back activity has no branch Tried or Committed (where fences are kept), and
/// posted nothing, or nothing it did not undo.
fn rolled_back(a: &ActivityState, b: &Branches<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Some(msg) = fences::not_cancelled(a, b.fences(&a.xid)) {
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

#[cfg(test)]
#[path = "atomicity/tests.rs"]
mod tests;

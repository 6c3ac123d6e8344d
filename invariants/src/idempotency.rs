//! Invariant 7: the same key gets the same outcome and has one effect.
//!
//! Checked always: every rule holds at each instant, since an operation still in flight is
//! unknown and an activity only counts once its commit decision is logged.
//!
//! (a) An outcome once returned never flips: every definite reply to one request is the same
//! answer (ok, or a refusal with the same code; the detail text is for people and may be
//! worded differently), and the outcome the client recorded is that answer. A platform that
//! does not pin the outcome of a retry can answer "fail" and then "ok" to the same pay key, or
//! refuse it first for one reason and then for another.
//! (b) One effect per key: at most one activity per (kind, key) has decided to commit, and at
//! most one payment of a trade has: a fresh idempotency key on each retry pays twice.
//! (c) The reply matches the effect: a payment or refund answered ok has exactly one activity
//! under its key that decided to commit, one answered fail has none, an unknown one at most one.
//! (d) A merchant's out_trade_no names one trade: creating a trade is idempotent too.

use crate::{
    ActivityKind, ActivityState, Invariant, Observation, OpKind, Operation, Outcome, Phase,
    Violation,
};
use std::collections::BTreeMap;

pub fn check(obs: &Observation) -> Vec<Violation> {
    let mut out = Vec::new();
    for op in &obs.history {
        check_replies(op, &mut out);
    }
    out.extend(one_effect_per_key(obs));
    out.extend(one_payment_per_trade(obs));
    let by_key = activities_by_key(obs);
    for op in &obs.history {
        let under_key = activity_kind(op.kind)
            .and_then(|kind| by_key.get(&(kind, op.request.as_str())))
            .map_or(&[][..], Vec::as_slice);
        out.extend(reply_matches_effect(op, under_key));
    }
    out.extend(one_trade_per_out_trade_no(obs));
    out
}

/// What the rules across activities read of one: who it is, what it is for, and its status.
/// The batch checkers read it from whole activities, the incremental one from what its world
/// keeps of them ([`crate::kept::KeptActivity`]).
pub trait Decided {
    fn xid(&self) -> &str;
    fn key(&self) -> &str;
    fn trade(&self) -> &str;
    fn status(&self) -> Phase;
}

/// Both hold the four as fields of the same names.
macro_rules! decided_by_fields {
    ($($record:ty),*) => {$(
        impl Decided for $record {
            fn xid(&self) -> &str {
                &self.xid
            }
            fn key(&self) -> &str {
                &self.key
            }
            fn trade(&self) -> &str {
                &self.trade
            }
            fn status(&self) -> Phase {
                self.status
            }
        }
    )*};
}

decided_by_fields!(ActivityState, crate::kept::KeptActivity);

impl<A: Decided + ?Sized> Decided for &A {
    fn xid(&self) -> &str {
        (**self).xid()
    }
    fn key(&self) -> &str {
        (**self).key()
    }
    fn trade(&self) -> &str {
        (**self).trade()
    }
    fn status(&self) -> Phase {
        (**self).status()
    }
}

/// Whether an activity has decided to commit: from then on its effect is the key's effect.
pub(crate) fn decided_commit(a: &impl Decided) -> bool {
    matches!(a.status(), Phase::Committing | Phase::Committed)
}

/// The activity kind that carries out an operation kind, if any does.
pub(crate) fn activity_kind(kind: OpKind) -> Option<ActivityKind> {
    match kind {
        OpKind::Pay => Some(ActivityKind::Pay),
        OpKind::Refund => Some(ActivityKind::Refund),
        _ => None,
    }
}

/// The definite replies of an operation; an unknown one (not expected there) answers nothing.
fn definite(op: &Operation) -> impl Iterator<Item = &Outcome> {
    op.replies.iter().filter(|r| **r != Outcome::Unknown)
}

fn about_op(op: &Operation, message: String) -> Violation {
    let replies: Vec<String> = op.replies.iter().map(ToString::to_string).collect();
    Violation::new(Invariant::Idempotency, message)
        .with("request", &op.request)
        .with("kind", op.kind)
        .with("client", op.client)
        .with("attempts", op.attempts)
        .with("outcome", &op.outcome)
        .with("replies", replies.join(","))
        .with("trade", op.trade.as_deref().unwrap_or("none"))
}

/// (a) The first later reply that differs from the first one.
/// The rules on one operation's replies: they never flip, and the outcome is the first.
pub(crate) fn check_replies(op: &Operation, out: &mut Vec<Violation>) {
    out.extend(flipped_reply(op));
    out.extend(outcome_not_reply(op));
}

fn flipped_reply(op: &Operation) -> Option<Violation> {
    let mut replies = definite(op);
    let first = replies.next()?;
    let flipped = replies.find(|r| !r.same_answer(first))?;
    let msg = format!(
        "request {} was answered {first} and later {flipped}: its outcome flipped",
        op.request
    );
    Some(
        about_op(op, msg)
            .with("first", first)
            .with("flipped", flipped),
    )
}

/// (a) A definite outcome must be the reply the platform gave first.
fn outcome_not_reply(op: &Operation) -> Option<Violation> {
    let first = definite(op).next()?;
    if op.outcome == Outcome::Unknown || op.outcome.same_answer(first) {
        return None;
    }
    let msg = format!(
        "request {} is recorded as {} but was first answered {first}",
        op.request, op.outcome
    );
    Some(about_op(op, msg).with("first", first))
}

/// The xids and statuses of some activities, for evidence.
fn xids<A: Decided>(activities: &[&A]) -> String {
    let each: Vec<String> = activities
        .iter()
        .map(|a| format!("{}:{:?}", a.xid(), a.status()))
        .collect();
    each.join(",")
}

fn about_activities<A: Decided>(message: String, activities: &[&A]) -> Violation {
    let mut trades: Vec<&str> = activities.iter().map(|a| a.trade()).collect();
    trades.sort_unstable();
    trades.dedup();
    let mut keys: Vec<&str> = activities.iter().map(|a| a.key()).collect();
    keys.sort_unstable();
    keys.dedup();
    Violation::new(Invariant::Idempotency, message)
        .with("xids", xids(activities))
        .with("keys", keys.join(","))
        .with("trade", trades.join(","))
}

/// (b) At most one activity per (kind, key) decides to commit.
fn one_effect_per_key(obs: &Observation) -> Vec<Violation> {
    let mut by_key: BTreeMap<(ActivityKind, &str), Vec<&ActivityState>> = BTreeMap::new();
    for a in obs.activities.iter().filter(decided_commit) {
        by_key.entry((a.kind, a.key.as_str())).or_default().push(a);
    }
    by_key
        .into_iter()
        .filter_map(|((kind, key), list)| effect_twice(kind, key, &list))
        .collect()
}

/// The activities of `kind` under `key` that decided to commit.
pub(crate) fn effect_twice<A: Decided>(
    kind: ActivityKind,
    key: &str,
    committed: &[&A],
) -> Option<Violation> {
    if committed.len() <= 1 {
        return None;
    }
    let msg = format!(
        "{} {kind:?} activities committed under key {key}; a key has one effect",
        committed.len()
    );
    Some(about_activities(msg, committed).with("key", key))
}

/// (b) A trade is paid once: at most one payment activity of it decides to commit.
fn one_payment_per_trade(obs: &Observation) -> Vec<Violation> {
    let mut by_trade: BTreeMap<&str, Vec<&ActivityState>> = BTreeMap::new();
    let payments = obs
        .activities
        .iter()
        .filter(|a| a.kind == ActivityKind::Pay);
    for a in payments.filter(decided_commit) {
        by_trade.entry(a.trade.as_str()).or_default().push(a);
    }
    by_trade
        .into_iter()
        .filter_map(|(trade, list)| paid_twice(trade, &list))
        .collect()
}

/// The payment activities of `trade` that decided to commit.
pub(crate) fn paid_twice<A: Decided>(trade: &str, committed: &[&A]) -> Option<Violation> {
    if committed.len() <= 1 {
        return None;
    }
    let msg = format!(
        "trade {trade} has {} payment activities committed; a trade is paid once",
        committed.len()
    );
    Some(about_activities(msg, committed))
}

/// The activities under each (kind, key), in observation order: one pass, so that checking every
/// operation against its key's activities costs a lookup each, not a scan of all activities.
type ByKey<'a> = BTreeMap<(ActivityKind, &'a str), Vec<&'a ActivityState>>;

fn activities_by_key(obs: &Observation) -> ByKey<'_> {
    let mut by_key: ByKey<'_> = BTreeMap::new();
    for a in &obs.activities {
        by_key.entry((a.kind, a.key.as_str())).or_default().push(a);
    }
    by_key
}

/// (c) A payment's or refund's outcome promises how many of its activities commit.
/// Operation `op` against the activities under its key (of its kind).
pub(crate) fn reply_matches_effect<A: Decided>(
    op: &Operation,
    under_key: &[&A],
) -> Option<Violation> {
    activity_kind(op.kind)?;
    let committed = under_key.iter().filter(decided_commit).count();
    let (min, max, rule) = match op.outcome {
        Outcome::Ok => (1, 1, "exactly 1"),
        Outcome::Fail(_) => (0, 0, "none"),
        Outcome::Unknown => (0, 1, "at most 1"),
    };
    if (min..=max).contains(&committed) {
        return None;
    }
    let msg = format!(
        "{} {} has {} committed but must have {rule} (outcome {})",
        op.kind,
        op.request,
        plural(committed),
        op.outcome
    );
    let violation = about_op(op, msg)
        .with("committed", committed)
        .with("xids", xids(under_key));
    Some(violation)
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 activity".to_string()
    } else {
        format!("{n} activities")
    }
}

/// (d) Trades are deduplicated by merchant + out_trade_no.
fn one_trade_per_out_trade_no(obs: &Observation) -> Vec<Violation> {
    let mut by_no: BTreeMap<(u64, &str), Vec<&str>> = BTreeMap::new();
    for t in &obs.trades {
        by_no
            .entry((t.merchant, t.out_trade_no.as_str()))
            .or_default()
            .push(&t.trade);
    }
    by_no
        .into_iter()
        .filter_map(|((merchant, no), list)| trades_twice(merchant, no, &list))
        .collect()
}

/// The trades of `merchant` under `out_trade_no`.
pub(crate) fn trades_twice(merchant: u64, no: &str, ids: &[&str]) -> Option<Violation> {
    if ids.len() <= 1 {
        return None;
    }
    let msg = format!(
        "merchant {merchant} has {} trades under out_trade_no {no}: {}",
        ids.len(),
        ids.join(",")
    );
    let v = Violation::new(Invariant::Idempotency, msg)
        .with("merchant", merchant)
        .with("out_trade_no", no)
        .with("trade", ids.join(","));
    Some(v)
}

#[cfg(test)]
#[path = "idempotency/tests.rs"]
mod tests;

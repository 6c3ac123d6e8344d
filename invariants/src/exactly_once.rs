//! Invariant 6: each client request has the effect its outcome promises, exactly once.
//!
//! A request id is the idempotency key of a post, so however often a client retried, the
//! platform must hold one voucher for a success, none for a failure, and at most one for a
//! timeout. A voucher that no client asked for is an effect without a cause.
//!
//! Checked always: an operation still in flight is recorded as unknown, which allows either.
//! Vouchers that carry an `xid` are branches of an activity (a payment or a refund): their
//! request ids are the platform's, not a client's, so they are judged per activity by the
//! atomicity and trade–ledger checkers and are not matched to client operations here. But
//! their request id is still the idempotency key of the branch's post (a Confirm), so it too
//! may post at most once: a repeated Confirm that posts again breaks exactly-once.

use crate::money::{show, side_total};
use crate::{Invariant, Observation, Operation, Outcome, Side, Violation, VoucherRecord};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};

/// Request ids with this prefix belong to the platform's own postings, not to any client.
const SYSTEM_PREFIX: &str = "sys:";

/// A voucher together with the shard holding it.
/// A voucher found under a request: where it is, its id, and what it debits (all that the
/// rules read of it, so that a sealed voucher of the incremental world answers as well).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found<'a> {
    pub shard: u32,
    pub voucher: &'a str,
    pub debit: Option<Decimal>,
}

impl<'a> Found<'a> {
    pub(crate) fn of(shard: u32, v: &'a VoucherRecord) -> Self {
        Found {
            shard,
            voucher: &v.voucher,
            debit: side_total(&v.legs, Side::Debit),
        }
    }
}

pub fn check(obs: &Observation) -> Vec<Violation> {
    let by_request = vouchers_by_request(obs);
    let mut out = Vec::new();
    for op in obs.history.iter().filter(|op| op.kind.posts_voucher()) {
        let found = by_request
            .get(op.request.as_str())
            .map_or(&[][..], Vec::as_slice);
        check_op(op, found, &mut out);
    }
    out.extend(phantoms(obs, &by_request));
    out.extend(branches_posted_twice(obs));
    out
}

/// A branch of an activity whose post (keyed by its request id) was applied more than once.
fn branches_posted_twice(obs: &Observation) -> Vec<Violation> {
    let mut by_request: BTreeMap<(&str, &str), Vec<Found<'_>>> = BTreeMap::new();
    for shard in &obs.shards {
        for v in &shard.vouchers {
            if let Some(xid) = &v.xid {
                by_request
                    .entry((xid.as_str(), v.request.as_str()))
                    .or_default()
                    .push(Found::of(shard.shard, v));
            }
        }
    }
    by_request
        .into_iter()
        .filter_map(|((xid, request), found)| branch_twice(xid, request, &found))
        .collect()
}

/// Branch post `request` of activity `xid`, which posted the vouchers `found`.
pub(crate) fn branch_twice(xid: &str, request: &str, found: &[Found<'_>]) -> Option<Violation> {
    if found.len() <= 1 {
        return None;
    }
    let msg = format!(
        "branch post {request} of activity {xid} posted {} but may post at most 1",
        plural(found.len())
    );
    let v = evidence(Violation::new(Invariant::ExactlyOnce, msg), request, found);
    Some(v.with("xid", xid))
}

/// The rules for one voucher-posting operation, whose request posted the vouchers `found`.
pub(crate) fn check_op(op: &Operation, found: &[Found<'_>], out: &mut Vec<Violation>) {
    out.extend(count_violation(op, found));
    out.extend(amount_violation(op, found));
}

/// Vouchers grouped by request id across all shards, since a retry may land anywhere; the
/// branches of activities are left out.
fn vouchers_by_request(obs: &Observation) -> BTreeMap<&str, Vec<Found<'_>>> {
    let mut by_request: BTreeMap<&str, Vec<Found<'_>>> = BTreeMap::new();
    for shard in &obs.shards {
        for v in shard.vouchers.iter().filter(|v| v.xid.is_none()) {
            by_request
                .entry(v.request.as_str())
                .or_default()
                .push(Found::of(shard.shard, v));
        }
    }
    by_request
}

/// How many vouchers an outcome allows, and how to say so.
fn allowed(outcome: &Outcome) -> (usize, usize, &'static str) {
    match outcome {
        Outcome::Ok => (1, 1, "exactly 1"),
        Outcome::Fail(_) => (0, 0, "none"),
        Outcome::Unknown => (0, 1, "at most 1"),
    }
}

fn count_violation(op: &Operation, found: &[Found<'_>]) -> Option<Violation> {
    let (min, max, rule) = allowed(&op.outcome);
    if (min..=max).contains(&found.len()) {
        return None;
    }
    let msg = format!(
        "request {} posted {} but must post {rule} (outcome {})",
        op.request,
        plural(found.len()),
        op.outcome
    );
    Some(about(op, found, msg))
}

/// A single voucher must move what the client asked for, or the effect is not the request's.
fn amount_violation(op: &Operation, found: &[Found<'_>]) -> Option<Violation> {
    let (Some(expected), [v]) = (op.amount, found) else {
        return None;
    };
    let actual = v.debit;
    if actual == Some(expected) {
        return None;
    }
    let msg = format!(
        "request {} moved {} but the client asked for {expected} (outcome {})",
        op.request,
        show(actual),
        op.outcome
    );
    let violation = about(op, found, msg)
        .with("expected", expected)
        .with("actual", show(actual));
    Some(violation)
}

/// Vouchers whose request no client ever sent, grouped per request id.
fn phantoms(obs: &Observation, by_request: &BTreeMap<&str, Vec<Found<'_>>>) -> Vec<Violation> {
    let asked: BTreeSet<&str> = obs.history.iter().map(|op| op.request.as_str()).collect();
    by_request
        .iter()
        .filter_map(|(request, found)| phantom(request, asked.contains(request), found))
        .collect()
}

/// Request `request`, which posted the (outside any activity) vouchers `found`, and which
/// some client operation asked for or not.
pub(crate) fn phantom(request: &str, asked: bool, found: &[Found<'_>]) -> Option<Violation> {
    // Clearing's own postings are judged per channel order by `crate::clearing`.
    let platforms =
        request.starts_with(SYSTEM_PREFIX) || request.starts_with(crate::clearing::CLEARING_PREFIX);
    if asked || found.is_empty() || platforms {
        return None;
    }
    let msg = format!(
        "request {request} posted {} but appears in no client operation (phantom effect)",
        plural(found.len())
    );
    let v = evidence(Violation::new(Invariant::ExactlyOnce, msg), request, found);
    Some(v.with("outcome", "none"))
}

/// A violation about one operation, with what was found for its request.
fn about(op: &Operation, found: &[Found<'_>], message: String) -> Violation {
    evidence(
        Violation::new(Invariant::ExactlyOnce, message),
        &op.request,
        found,
    )
    .with("outcome", &op.outcome)
    .with("kind", op.kind)
    .with("client", op.client)
    .with("attempts", op.attempts)
}

/// The evidence every exactly-once violation carries: the request and where its vouchers are.
fn evidence(v: Violation, request: &str, found: &[Found<'_>]) -> Violation {
    let ids: Vec<&str> = found.iter().map(|f| f.voucher).collect();
    let shards: Vec<String> = found.iter().map(|f| f.shard.to_string()).collect();
    v.with("request", request)
        .with("vouchers", found.len())
        .with("voucher_ids", ids.join(","))
        .with("shards", shards.join(","))
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 voucher".to_string()
    } else {
        format!("{n} vouchers")
    }
}

#[cfg(test)]
#[path = "exactly_once/tests.rs"]
mod tests;

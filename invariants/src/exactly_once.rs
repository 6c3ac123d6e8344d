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
use std::collections::{BTreeMap, BTreeSet};

/// Request ids with this prefix belong to the platform's own postings, not to any client.
const SYSTEM_PREFIX: &str = "sys:";

/// A voucher together with the shard holding it.
type Found<'a> = (u32, &'a VoucherRecord);

pub fn check(obs: &Observation) -> Vec<Violation> {
    let by_request = vouchers_by_request(obs);
    let mut out = Vec::new();
    for op in obs.history.iter().filter(|op| op.kind.posts_voucher()) {
        let found = by_request
            .get(op.request.as_str())
            .map_or(&[][..], Vec::as_slice);
        out.extend(count_violation(op, found));
        out.extend(amount_violation(op, found));
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
                    .push((shard.shard, v));
            }
        }
    }
    by_request
        .into_iter()
        .filter(|(_, found)| found.len() > 1)
        .map(|((xid, request), found)| {
            let msg = format!(
                "branch post {request} of activity {xid} posted {} but may post at most 1",
                plural(found.len())
            );
            evidence(Violation::new(Invariant::ExactlyOnce, msg), request, &found).with("xid", xid)
        })
        .collect()
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
                .push((shard.shard, v));
        }
    }
    by_request
}

/// How many vouchers an outcome allows, and how to say so.
fn allowed(outcome: &Outcome) -> (usize, usize, &'static str) {
    match outcome {
        Outcome::Ok => (1, 1, "exactly 1"),
        Outcome::Fail { .. } => (0, 0, "none"),
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
    let (Some(expected), [(_, v)]) = (op.amount, found) else {
        return None;
    };
    let actual = side_total(&v.legs, Side::Debit);
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
    let unasked = by_request
        .iter()
        .filter(|(r, _)| !r.starts_with(SYSTEM_PREFIX) && !asked.contains(*r));
    unasked
        .map(|(request, found)| {
            let msg = format!(
                "request {request} posted {} but appears in no client operation (phantom effect)",
                plural(found.len())
            );
            evidence(Violation::new(Invariant::ExactlyOnce, msg), request, found)
                .with("outcome", "none")
        })
        .collect()
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
    let ids: Vec<&str> = found.iter().map(|(_, v)| v.voucher.as_str()).collect();
    let shards: Vec<String> = found.iter().map(|(s, _)| s.to_string()).collect();
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
mod tests {
    use super::*;

    #[test]
    fn a_branch_posted_twice_fails_and_names_the_activity() {
        let mut obs = valid();
        let twice = obs.shards[1]
            .vouchers
            .iter()
            .find(|v| v.xid.is_some())
            .cloned()
            .expect("valid() holds an activity's branch voucher");
        let mut again = twice.clone();
        again.voucher = format!("{}-again", twice.voucher);
        obs.shards[1].vouchers.push(again);
        let v = single(check(&obs), Invariant::ExactlyOnce);
        assert_eq!(ev(&v, "xid"), twice.xid.as_deref().unwrap());
        assert_eq!(ev(&v, "vouchers"), "2");
    }
    use crate::testkit::{ev, op, single, valid, voucher};
    use crate::OpKind;
    use rust_decimal_macros::dec;

    #[test]
    fn valid_observation_passes() {
        // The valid run has an ok, a failed, an unknown and a non-posting op, a sys: voucher,
        // and branch vouchers of activities whose tcc: requests no client sent.
        assert!(check(&valid()).is_empty());
    }

    #[test]
    fn activity_vouchers_are_neither_counted_nor_phantoms() {
        let mut obs = valid();
        // A branch voucher that happens to reuse a client's request id is not a second post of
        // that request, and one under an unknown request is not a phantom: activities judge both.
        let mut branch = voucher("v0-3", "c1-1", 1, 2, dec!(100));
        branch.xid = Some("x0.9".to_string());
        obs.shards[0].vouchers.push(branch);
        let mut other = voucher("v0-4", "tcc:x0.9:1", 2, 3, dec!(1));
        other.xid = Some("x0.9".to_string());
        obs.shards[0].vouchers.push(other);
        assert!(check(&obs).is_empty());
        // Without its xid, the same voucher is an ordinary second post of c1-1.
        obs.shards[0].vouchers[5].xid = None;
        let v = &single(check(&obs), Invariant::ExactlyOnce);
        assert_eq!(ev(v, "request"), "c1-1");
        assert_eq!(ev(v, "voucher_ids"), "v0-1,v0-3");
    }

    #[test]
    fn ok_with_two_vouchers_fails() {
        let mut obs = valid();
        // A retry that landed on the other shard posted the same request again.
        obs.shards[1]
            .vouchers
            .push(voucher("v1-3", "c1-1", 11, 12, dec!(100)));
        let v = &single(check(&obs), Invariant::ExactlyOnce);
        assert_eq!(
            v.message,
            "request c1-1 posted 2 vouchers but must post exactly 1 (outcome ok)"
        );
        assert_eq!(ev(v, "request"), "c1-1");
        assert_eq!(ev(v, "vouchers"), "2");
        assert_eq!(ev(v, "outcome"), "ok");
        assert_eq!(ev(v, "voucher_ids"), "v0-1,v1-3");
        assert_eq!(ev(v, "shards"), "0,1");
    }

    #[test]
    fn ok_with_no_voucher_fails() {
        let mut obs = valid();
        obs.shards[1].vouchers.remove(0);
        let v = &single(check(&obs), Invariant::ExactlyOnce);
        assert_eq!(ev(v, "request"), "c2-1");
        assert_eq!(ev(v, "vouchers"), "0");
        assert_eq!(ev(v, "voucher_ids"), "");
    }

    #[test]
    fn failed_with_voucher_fails() {
        let mut obs = valid();
        obs.shards[0]
            .vouchers
            .push(voucher("v0-3", "c1-3", 2, 3, dec!(500)));
        let v = &single(check(&obs), Invariant::ExactlyOnce);
        assert!(v
            .message
            .contains("request c1-3 posted 1 voucher but must post none"));
        assert_eq!(
            ev(v, "outcome"),
            "fail: insufficient-funds: acct-3 has 50.00, 500.00 needed"
        );
        assert_eq!(ev(v, "voucher_ids"), "v0-3");
    }

    #[test]
    fn unknown_with_one_voucher_passes() {
        let mut obs = valid();
        obs.shards[0]
            .vouchers
            .push(voucher("v0-3", "c2-2", 2, 3, dec!(10)));
        assert!(check(&obs).is_empty());
    }

    #[test]
    fn unknown_with_two_vouchers_fails() {
        let mut obs = valid();
        obs.shards[0]
            .vouchers
            .push(voucher("v0-3", "c2-2", 2, 3, dec!(10)));
        obs.shards[0]
            .vouchers
            .push(voucher("v0-4", "c2-2", 2, 3, dec!(10)));
        let v = &single(check(&obs), Invariant::ExactlyOnce);
        assert!(v.message.contains("must post at most 1 (outcome unknown)"));
        assert_eq!(ev(v, "vouchers"), "2");
        assert_eq!(ev(v, "voucher_ids"), "v0-3,v0-4");
    }

    #[test]
    fn wrong_amount_fails() {
        let mut obs = valid();
        obs.history[2].amount = Some(dec!(31));
        let v = &single(check(&obs), Invariant::ExactlyOnce);
        assert_eq!(ev(v, "request"), "c1-2");
        assert_eq!(ev(v, "expected"), "31");
        assert_eq!(ev(v, "actual"), "30");
        assert_eq!(ev(v, "voucher_ids"), "v0-2");
    }

    #[test]
    fn same_amount_at_other_scale_passes() {
        let mut obs = valid();
        obs.history[2].amount = Some(dec!(30.00));
        assert!(check(&obs).is_empty());
    }

    #[test]
    fn phantom_voucher_fails() {
        let mut obs = valid();
        obs.shards[1]
            .vouchers
            .push(voucher("v1-3", "c9-1", 11, 12, dec!(1)));
        let v = &single(check(&obs), Invariant::ExactlyOnce);
        assert!(v.message.contains("request c9-1"));
        assert!(v.message.contains("phantom"));
        assert_eq!(ev(v, "request"), "c9-1");
        assert_eq!(ev(v, "vouchers"), "1");
        assert_eq!(ev(v, "outcome"), "none");
        assert_eq!(ev(v, "voucher_ids"), "v1-3");
    }

    #[test]
    fn system_voucher_is_not_phantom() {
        let mut obs = valid();
        obs.shards[0]
            .vouchers
            .push(voucher("v0-3", "sys:refund-1", 2, 3, dec!(1)));
        assert!(check(&obs).is_empty());
    }

    #[test]
    fn non_posting_op_is_not_checked() {
        let mut obs = valid();
        obs.history
            .push(op("c3-1", OpKind::OpenAccount, None, Outcome::Ok));
        assert!(check(&obs).is_empty());
    }
}

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
    ActivityKind, ActivityState, ActivityStatus, Invariant, Observation, OpKind, Operation,
    Outcome, TradeState, Violation,
};
use std::collections::BTreeMap;

pub fn check(obs: &Observation) -> Vec<Violation> {
    let mut out = Vec::new();
    for op in &obs.history {
        out.extend(flipped_reply(op));
        out.extend(outcome_not_reply(op));
    }
    out.extend(one_effect_per_key(obs));
    out.extend(one_payment_per_trade(obs));
    for op in &obs.history {
        out.extend(reply_matches_effect(op, obs));
    }
    out.extend(one_trade_per_out_trade_no(obs));
    out
}

/// Whether an activity has decided to commit: from then on its effect is the key's effect.
fn decided_commit(a: &ActivityState) -> bool {
    matches!(
        a.status,
        ActivityStatus::Committing | ActivityStatus::Committed
    )
}

/// The activity kind that carries out an operation kind, if any does.
fn activity_kind(kind: OpKind) -> Option<ActivityKind> {
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
fn xids(activities: &[&ActivityState]) -> String {
    let each: Vec<String> = activities
        .iter()
        .map(|a| format!("{}:{:?}", a.xid, a.status))
        .collect();
    each.join(",")
}

fn about_activities(message: String, activities: &[&ActivityState]) -> Violation {
    let mut trades: Vec<&str> = activities.iter().map(|a| a.trade.as_str()).collect();
    trades.sort_unstable();
    trades.dedup();
    let mut keys: Vec<&str> = activities.iter().map(|a| a.key.as_str()).collect();
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
    for a in obs.activities.iter().filter(|a| decided_commit(a)) {
        by_key.entry((a.kind, a.key.as_str())).or_default().push(a);
    }
    let twice = by_key.into_iter().filter(|(_, list)| list.len() > 1);
    twice
        .map(|((kind, key), list)| {
            let msg = format!(
                "{} {kind:?} activities committed under key {key}; a key has one effect",
                list.len()
            );
            about_activities(msg, &list).with("key", key)
        })
        .collect()
}

/// (b) A trade is paid once: at most one payment activity of it decides to commit.
fn one_payment_per_trade(obs: &Observation) -> Vec<Violation> {
    let mut by_trade: BTreeMap<&str, Vec<&ActivityState>> = BTreeMap::new();
    let payments = obs
        .activities
        .iter()
        .filter(|a| a.kind == ActivityKind::Pay);
    for a in payments.filter(|a| decided_commit(a)) {
        by_trade.entry(a.trade.as_str()).or_default().push(a);
    }
    let twice = by_trade.into_iter().filter(|(_, list)| list.len() > 1);
    twice
        .map(|(trade, list)| {
            let msg = format!(
                "trade {trade} has {} payment activities committed; a trade is paid once",
                list.len()
            );
            about_activities(msg, &list)
        })
        .collect()
}

/// (c) A payment's or refund's outcome promises how many of its activities commit.
fn reply_matches_effect(op: &Operation, obs: &Observation) -> Option<Violation> {
    let kind = activity_kind(op.kind)?;
    let under_key: Vec<&ActivityState> = obs
        .activities
        .iter()
        .filter(|a| a.kind == kind && a.key == op.request)
        .collect();
    let committed = under_key.iter().filter(|a| decided_commit(a)).count();
    let (min, max, rule) = match op.outcome {
        Outcome::Ok => (1, 1, "exactly 1"),
        Outcome::Fail { .. } => (0, 0, "none"),
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
        .with("xids", xids(&under_key));
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
    let mut by_no: BTreeMap<(u64, &str), Vec<&TradeState>> = BTreeMap::new();
    for t in &obs.trades {
        by_no
            .entry((t.merchant, t.out_trade_no.as_str()))
            .or_default()
            .push(t);
    }
    let twice = by_no.into_iter().filter(|(_, list)| list.len() > 1);
    twice
        .map(|((merchant, no), list)| {
            let ids: Vec<&str> = list.iter().map(|t| t.trade.as_str()).collect();
            let msg = format!(
                "merchant {merchant} has {} trades under out_trade_no {no}: {}",
                list.len(),
                ids.join(",")
            );
            Violation::new(Invariant::Idempotency, msg)
                .with("merchant", merchant)
                .with("out_trade_no", no)
                .with("trade", ids.join(","))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{activity, ev, movement_legs, single, trade_op, valid};
    use rust_decimal_macros::dec;
    use ActivityStatus::*;

    fn committed(xid: &str, kind: ActivityKind, key: &str, trade: &str) -> ActivityState {
        let legs = movement_legs((0, 2), (1, 12), dec!(1));
        activity(
            xid,
            kind,
            key,
            trade,
            &[Trying, Committing, Committed],
            legs,
        )
    }

    #[test]
    fn valid_observation_passes() {
        // The valid run re-asked c1-p1 and got ok twice; its failed payment rolled back.
        assert!(check(&valid()).is_empty());
    }

    #[test]
    fn flipped_reply_fails() {
        let mut obs = valid();
        let pay = &mut obs.history[9];
        pay.replies = vec![Outcome::Ok, Outcome::fail("unknown-trade", "no trade T0-1")];
        let v = &single(check(&obs), Invariant::Idempotency);
        assert!(v
            .message
            .contains("answered ok and later fail: unknown-trade: no trade T0-1"));
        assert_eq!(ev(v, "request"), "c1-p1");
        assert_eq!(ev(v, "trade"), "T0-1");
        assert_eq!(ev(v, "replies"), "ok,fail: unknown-trade: no trade T0-1");
    }

    #[test]
    fn a_refusal_reworded_under_the_same_code_is_the_same_answer() {
        let mut obs = valid();
        // c1-p2 failed; a re-ask is refused for the same reason, worded differently.
        let pay = &mut obs.history[11];
        let first = pay.replies[0].clone();
        let code = first.code().expect("c1-p2 failed").to_string();
        pay.replies.push(Outcome::fail(code, "said another way"));
        assert!(check(&obs).is_empty());
    }

    #[test]
    fn a_refusal_repeated_with_another_code_flips() {
        let mut obs = valid();
        let pay = &mut obs.history[11];
        pay.replies.push(Outcome::fail("unavailable", "try later"));
        let v = &single(check(&obs), Invariant::Idempotency);
        assert!(v.message.contains("its outcome flipped"), "{v}");
        assert_eq!(ev(v, "request"), "c1-p2");
        assert_eq!(ev(v, "flipped"), "fail: unavailable: try later");
    }

    #[test]
    fn outcome_other_than_first_reply_fails() {
        let mut obs = valid();
        obs.history[1].replies = vec![Outcome::fail("unavailable", "shard busy")];
        let v = &single(check(&obs), Invariant::Idempotency);
        assert_eq!(
            v.message,
            "request c1-1 is recorded as ok but was first answered fail: unavailable: shard busy"
        );
        assert_eq!(ev(v, "first"), "fail: unavailable: shard busy");
    }

    #[test]
    fn outcome_refused_for_another_reason_than_its_first_reply_fails() {
        let mut obs = valid();
        let pay = &mut obs.history[11];
        pay.outcome = Outcome::fail("not-payable", "the trade is closed");
        let v = &single(check(&obs), Invariant::Idempotency);
        assert!(
            v.message.contains("is recorded as fail: not-payable"),
            "{v}"
        );
    }

    #[test]
    fn same_key_committed_twice_fails() {
        let mut obs = valid();
        // Two refund activities under one out_request_no that no client sent.
        let key = "c3-r1";
        obs.activities
            .push(committed("x0.7", ActivityKind::Refund, key, "T0-1"));
        obs.activities
            .push(committed("x0.8", ActivityKind::Refund, key, "T0-1"));
        let v = &single(check(&obs), Invariant::Idempotency);
        assert!(v
            .message
            .contains("2 Refund activities committed under key c3-r1"));
        assert_eq!(ev(v, "key"), "c3-r1");
        assert_eq!(ev(v, "xids"), "x0.7:Committed,x0.8:Committed");
        assert_eq!(ev(v, "trade"), "T0-1");
    }

    #[test]
    fn trade_paid_under_two_keys_fails() {
        let mut obs = valid();
        // A retry under a fresh key paid T0-1 again.
        obs.activities
            .push(committed("x0.7", ActivityKind::Pay, "c1-p9", "T0-1"));
        let v = &single(check(&obs), Invariant::Idempotency);
        assert!(v
            .message
            .contains("trade T0-1 has 2 payment activities committed"));
        assert_eq!(ev(v, "xids"), "x0.1:Committed,x0.7:Committed");
        assert_eq!(ev(v, "keys"), "c1-p1,c1-p9");
    }

    #[test]
    fn ok_without_committed_activity_fails() {
        let mut obs = valid();
        let refund = &mut obs.activities[1];
        refund.status = RolledBack;
        refund.status_history = vec![Trying, RollingBack, RolledBack];
        let v = &single(check(&obs), Invariant::Idempotency);
        assert_eq!(
            v.message,
            "refund c1-r1 has 0 activities committed but must have exactly 1 (outcome ok)"
        );
        assert_eq!(ev(v, "xids"), "x0.2:RolledBack");
        assert_eq!(ev(v, "committed"), "0");
    }

    #[test]
    fn fail_with_committed_activity_fails() {
        let mut obs = valid();
        obs.activities[2].status = Committed;
        let v = &single(check(&obs), Invariant::Idempotency);
        assert!(v
            .message
            .contains("pay c1-p2 has 1 activity committed but must have none"));
        assert_eq!(ev(v, "request"), "c1-p2");
        assert_eq!(ev(v, "xids"), "x0.3:Committed");
    }

    #[test]
    fn unknown_with_one_committed_passes_and_with_two_fails() {
        let mut obs = valid();
        let pay = trade_op("c1-p3", OpKind::Pay, "T0-2", dec!(30), Outcome::Unknown);
        obs.history.push(pay);
        obs.activities
            .push(committed("x0.7", ActivityKind::Pay, "c1-p3", "T0-2"));
        assert!(check(&obs).is_empty());
        obs.activities
            .push(committed("x0.8", ActivityKind::Pay, "c1-p3", "T0-2"));
        let found = check(&obs);
        // The same double effect breaks the per-key, per-trade and per-operation rules.
        assert_eq!(found.len(), 3, "{found:#?}");
        let v = found
            .iter()
            .find(|v| v.message.contains("at most 1"))
            .unwrap();
        assert_eq!(ev(v, "request"), "c1-p3");
        assert_eq!(ev(v, "xids"), "x0.7:Committed,x0.8:Committed");
    }

    #[test]
    fn trade_created_twice_fails() {
        let mut obs = valid();
        let mut again = obs.trades[1].clone();
        again.trade = "T0-9".to_string();
        obs.trades.push(again);
        let v = &single(check(&obs), Invariant::Idempotency);
        assert_eq!(ev(v, "out_trade_no"), "o-2");
        assert_eq!(ev(v, "trade"), "T0-2,T0-9");
        assert_eq!(ev(v, "merchant"), "12");
    }
}

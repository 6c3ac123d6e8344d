use super::*;
use std::sync::Arc;

/// The batch check, once the incremental checker is shown to agree on `obs`.
fn check(obs: &Observation) -> Vec<Violation> {
    crate::testkit::agreeing(super::check, obs)
}
use crate::testkit::{activity, ev, movement_legs, single, trade_op, valid};
use rust_decimal_macros::dec;
use Phase::*;

fn committed(xid: &str, kind: ActivityKind, key: &str, trade: &str) -> ActivityState {
    let legs = movement_legs((0, 2), (1, 12), dec!(1));
    activity(
        xid,
        kind,
        key,
        trade,
        &[Running, Committing, Committed],
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
    let pay = Arc::make_mut(&mut obs.history[9]);
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
    let pay = Arc::make_mut(&mut obs.history[11]);
    let first = pay.replies[0].clone();
    let code = first.code().expect("c1-p2 failed").to_string();
    pay.replies.push(Outcome::fail(code, "said another way"));
    assert!(check(&obs).is_empty());
}

#[test]
fn a_refusal_repeated_with_another_code_flips() {
    let mut obs = valid();
    let pay = Arc::make_mut(&mut obs.history[11]);
    pay.replies.push(Outcome::fail("unavailable", "try later"));
    let v = &single(check(&obs), Invariant::Idempotency);
    assert!(v.message.contains("its outcome flipped"), "{v}");
    assert_eq!(ev(v, "request"), "c1-p2");
    assert_eq!(ev(v, "flipped"), "fail: unavailable: try later");
}

#[test]
fn outcome_other_than_first_reply_fails() {
    let mut obs = valid();
    Arc::make_mut(&mut obs.history[1]).replies = vec![Outcome::fail("unavailable", "shard busy")];
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
    let pay = Arc::make_mut(&mut obs.history[11]);
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
    refund.status = Aborted;
    refund.status_history = vec![Running, Aborting, Aborted];
    let v = &single(check(&obs), Invariant::Idempotency);
    assert_eq!(
        v.message,
        "refund c1-r1 has 0 activities committed but must have exactly 1 (outcome ok)"
    );
    assert_eq!(ev(v, "xids"), "x0.2:Aborted");
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
    obs.history.push(pay.into());
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
    again.trade = "T0-9".into();
    obs.trades.push(again);
    let v = &single(check(&obs), Invariant::Idempotency);
    assert_eq!(ev(v, "out_trade_no"), "o-2");
    assert_eq!(ev(v, "trade"), "T0-2,T0-9");
    assert_eq!(ev(v, "merchant"), "12");
}

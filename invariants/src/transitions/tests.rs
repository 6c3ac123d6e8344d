use super::*;

/// The batch check, once the incremental checker is shown to agree on `obs`.
fn check(obs: &Observation) -> Vec<Violation> {
    crate::testkit::agreeing(super::check, obs)
}
use crate::testkit::{ev, single, valid};
use Phase::*;
use TradeStatus::*;

#[test]
fn valid_observation_passes() {
    // The valid run has a refunded, a closed and a failed-then-waiting trade, and
    // committed and rolled-back activities.
    assert!(check(&valid()).is_empty());
}

#[test]
fn repeated_status_is_not_a_move() {
    let mut obs = valid();
    obs.trades[1].status_history = vec![WaitPay, WaitPay, Closed, Closed];
    assert!(check(&obs).is_empty());
}

#[test]
fn paid_without_paying_fails() {
    let mut obs = valid();
    obs.trades[0].status_history = vec![WaitPay, Paid, PartiallyRefunded];
    let v = &single(check(&obs), Invariant::LegalTransitions);
    assert_eq!(
        v.message,
        "trade T0-1 moved WaitPay -> Paid, which is not an edge"
    );
    assert_eq!(ev(v, "trade"), "T0-1");
    assert_eq!(ev(v, "edge"), "WaitPay -> Paid");
    assert_eq!(ev(v, "history"), "WaitPay,Paid,PartiallyRefunded");
}

#[test]
fn closed_trade_reopened_fails() {
    let mut obs = valid();
    let t = &mut obs.trades[1];
    t.status_history = vec![WaitPay, Closed, WaitPay, Paying, Paid];
    t.status = Paid;
    let v = &single(check(&obs), Invariant::LegalTransitions);
    assert_eq!(ev(v, "edge"), "Closed -> WaitPay");
    assert_eq!(ev(v, "trade"), "T0-2");
    assert_eq!(ev(v, "status"), "Paid");
}

#[test]
fn empty_history_fails() {
    let mut obs = valid();
    obs.trades[2].status_history.clear();
    let v = &single(check(&obs), Invariant::LegalTransitions);
    assert_eq!(v.message, "trade T0-3 has no status history");
    assert_eq!(ev(v, "history"), "none");
    assert_eq!(ev(v, "status"), "WaitPay");
}

#[test]
fn trade_not_starting_at_wait_pay_fails() {
    let mut obs = valid();
    obs.trades[1].status_history = vec![Closed];
    let v = &single(check(&obs), Invariant::LegalTransitions);
    assert_eq!(v.message, "trade T0-2 starts at Closed, not WaitPay");
}

#[test]
fn trade_status_off_its_history_fails() {
    let mut obs = valid();
    obs.trades[0].status = Refunded;
    let v = &single(check(&obs), Invariant::LegalTransitions);
    assert_eq!(
        v.message,
        "trade T0-1 is Refunded but its history ends at PartiallyRefunded"
    );
    assert_eq!(ev(v, "status"), "Refunded");
}

#[test]
fn activity_committed_without_decision_fails() {
    let mut obs = valid();
    obs.activities[0].status_history = vec![Running, Committed];
    let v = &single(check(&obs), Invariant::LegalTransitions);
    assert_eq!(ev(v, "xid"), "x0.1");
    assert_eq!(ev(v, "trade"), "T0-1");
    assert_eq!(ev(v, "edge"), "Running -> Committed");
}

#[test]
fn rolled_back_activity_committed_fails() {
    let mut obs = valid();
    // A timeout rollback raced the commit: the log went on after Aborted.
    let a = &mut obs.activities[2];
    a.status_history = vec![Running, Aborting, Aborted, Committed];
    a.status = Committed;
    let v = &single(check(&obs), Invariant::LegalTransitions);
    assert_eq!(ev(v, "xid"), "x0.3");
    assert_eq!(ev(v, "edge"), "Aborted -> Committed");
}

#[test]
fn activity_not_starting_at_trying_or_off_its_history_fails() {
    let mut obs = valid();
    obs.activities[1].status_history = vec![Committing, Committed];
    let v = &single(check(&obs), Invariant::LegalTransitions);
    assert_eq!(v.message, "activity x0.2 starts at Committing, not Running");
    let mut obs = valid();
    obs.activities[1].status = Heuristic;
    let v = &single(check(&obs), Invariant::LegalTransitions);
    assert_eq!(
        v.message,
        "activity x0.2 is Heuristic but its history ends at Committed"
    );
}

#[test]
fn refunded_trade_moved_back_to_partially_refunded_fails() {
    // The shape of the planted bug trade-refunded-reopens: a late failed refund end moves a
    // REFUNDED trade back to PARTIALLY_REFUNDED.
    let mut obs = valid();
    let t = &mut obs.trades[0];
    t.status_history = vec![WaitPay, Paying, Paid, Refunded, PartiallyRefunded];
    t.status = PartiallyRefunded;
    let v = &single(check(&obs), Invariant::LegalTransitions);
    assert_eq!(
        v.message,
        "trade T0-1 moved Refunded -> PartiallyRefunded, which is not an edge"
    );
    assert_eq!(ev(v, "edge"), "Refunded -> PartiallyRefunded");
}

#[test]
fn paid_trade_moved_back_to_paying_or_waiting_fails() {
    for back in [Paying, WaitPay] {
        let mut obs = valid();
        let t = &mut obs.trades[0];
        t.status_history = vec![WaitPay, Paying, Paid, back];
        t.status = back;
        let v = &single(check(&obs), Invariant::LegalTransitions);
        assert_eq!(ev(v, "edge"), format!("Paid -> {back:?}"));
    }
}

#[test]
fn terminal_states_have_no_outgoing_edge() {
    for end in [Refunded, Closed] {
        assert!(!TRADE_EDGES.iter().any(|(from, _)| *from == end), "{end:?}");
    }
    for end in [Committed, Aborted, Heuristic] {
        assert!(end.is_terminal());
        assert!(
            !ACTIVITY_EDGES.iter().any(|(from, _)| *from == end),
            "{end:?}"
        );
    }
}

#[test]
fn every_trade_status_is_reachable_from_wait_pay_along_the_edges() {
    // A table that lost an edge would make a legal run fail; one that lost a status would
    // leave it unchecked.
    let mut seen = vec![WaitPay];
    let mut todo = vec![WaitPay];
    while let Some(s) = todo.pop() {
        for (_, to) in TRADE_EDGES.iter().filter(|(from, _)| *from == s) {
            if !seen.contains(to) {
                seen.push(*to);
                todo.push(*to);
            }
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![WaitPay, Paying, Paid, PartiallyRefunded, Refunded, Closed]
    );
}

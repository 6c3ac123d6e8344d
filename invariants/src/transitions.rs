//! Invariant 10: every state machine moves only along its edges; terminal states stay.
//!
//! Checked always: a status history is append-only, so at every instant it must be a walk of
//! the machine's graph from its initial state to the current status. Trades walk
//! [`TradeStatus::can_become`] from WaitPay, activities [`ActivityStatus::can_become`] from
//! Trying. A terminal state has no outgoing edge, so leaving one (a closed trade paid, a
//! rolled-back activity committed) is an illegal edge. The same status recorded twice in a row
//! is not a move and is allowed.

use crate::{ActivityStatus, Invariant, Observation, TradeStatus, Violation};
use std::fmt::Debug;

pub fn check(obs: &Observation) -> Vec<Violation> {
    let mut out = Vec::new();
    for t in &obs.trades {
        let machine = Machine {
            what: "trade",
            id: &t.trade,
            start: TradeStatus::WaitPay,
            can_become: TradeStatus::can_become,
        };
        out.extend(machine.check(&t.status_history, t.status));
    }
    for a in &obs.activities {
        let machine = Machine {
            what: "activity",
            id: &a.xid,
            start: ActivityStatus::Trying,
            can_become: ActivityStatus::can_become,
        };
        let found = machine.check(&a.status_history, a.status);
        out.extend(found.into_iter().map(|v| v.with("trade", &a.trade)));
    }
    out
}

/// One instance of a state machine: what it is, its id, and its graph.
struct Machine<'a, S> {
    /// "trade" or "activity"; also the evidence key of the id ("trade" or "xid").
    what: &'static str,
    id: &'a str,
    start: S,
    can_become: fn(S, S) -> bool,
}

impl<S: Copy + PartialEq + Debug> Machine<'_, S> {
    fn check(&self, history: &[S], status: S) -> Vec<Violation> {
        let Some((first, last)) = history.first().zip(history.last()) else {
            let msg = format!("{} {} has no status history", self.what, self.id);
            return vec![self.about(msg, history, status)];
        };
        let mut out = Vec::new();
        if *first != self.start {
            let msg = format!(
                "{} {} starts at {first:?}, not {:?}",
                self.what, self.id, self.start
            );
            out.push(self.about(msg, history, status));
        }
        for pair in history.windows(2) {
            let (from, to) = (pair[0], pair[1]);
            if from != to && !(self.can_become)(from, to) {
                let msg = format!(
                    "{} {} moved {from:?} -> {to:?}, which is not an edge",
                    self.what, self.id
                );
                let edge = format!("{from:?} -> {to:?}");
                out.push(self.about(msg, history, status).with("edge", edge));
            }
        }
        if *last != status {
            let msg = format!(
                "{} {} is {status:?} but its history ends at {last:?}",
                self.what, self.id
            );
            out.push(self.about(msg, history, status));
        }
        out
    }

    fn about(&self, message: String, history: &[S], status: S) -> Violation {
        let key = if self.what == "trade" { "trade" } else { "xid" };
        let steps: Vec<String> = history.iter().map(|s| format!("{s:?}")).collect();
        Violation::new(Invariant::LegalTransitions, message)
            .with(key, self.id)
            .with("status", format!("{status:?}"))
            .with("history", steps.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{ev, single, valid};
    use ActivityStatus::*;
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
        assert_eq!(ev(v, "history"), "");
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
        obs.activities[0].status_history = vec![Trying, Committed];
        let v = &single(check(&obs), Invariant::LegalTransitions);
        assert_eq!(ev(v, "xid"), "x0.1");
        assert_eq!(ev(v, "trade"), "T0-1");
        assert_eq!(ev(v, "edge"), "Trying -> Committed");
    }

    #[test]
    fn rolled_back_activity_committed_fails() {
        let mut obs = valid();
        // A timeout rollback raced the commit: the log went on after RolledBack.
        let a = &mut obs.activities[2];
        a.status_history = vec![Trying, RollingBack, RolledBack, Committed];
        a.status = Committed;
        let v = &single(check(&obs), Invariant::LegalTransitions);
        assert_eq!(ev(v, "xid"), "x0.3");
        assert_eq!(ev(v, "edge"), "RolledBack -> Committed");
    }

    #[test]
    fn activity_not_starting_at_trying_or_off_its_history_fails() {
        let mut obs = valid();
        obs.activities[1].status_history = vec![Committing, Committed];
        let v = &single(check(&obs), Invariant::LegalTransitions);
        assert_eq!(v.message, "activity x0.2 starts at Committing, not Trying");
        let mut obs = valid();
        obs.activities[1].status = Heuristic;
        let v = &single(check(&obs), Invariant::LegalTransitions);
        assert_eq!(
            v.message,
            "activity x0.2 is Heuristic but its history ends at Committed"
        );
    }
}

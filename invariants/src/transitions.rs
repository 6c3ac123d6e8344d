//! Invariant 10: every state machine moves only along its edges; terminal states stay.
//!
//! Checked always: a status history is append-only, so at every instant it must be a walk of
//! the machine's graph from its initial state to the current status. The same status recorded
//! twice in a row is not a move and is allowed (a second partial refund leaves a trade
//! PARTIALLY_REFUNDED).
//!
//! The graphs are this checker's own, written from the life cycles in `docs/DOMAIN.md` (the
//! trade 交易 and the TCC business activity), not taken from the platform's or the
//! observation's `can_become`: a checker that copied the implementation's edges would agree
//! with any bug in them. A terminal state has no outgoing edge, so leaving one (a closed trade
//! paid, a refunded trade refunded less, a rolled-back activity committed) is an illegal edge.
//!
//! The trade: WAIT_PAY → PAYING when a payment begins; PAYING → PAID when it commits, PAYING →
//! WAIT_PAY when it fails (the buyer may pay again); WAIT_PAY → CLOSED when unpaid too long;
//! PAID → PARTIALLY_REFUNDED or REFUNDED by a refund, PARTIALLY_REFUNDED → REFUNDED by the
//! refund that returns the rest. CLOSED and REFUNDED are terminal.
//!
//! The activity: Running until its decision; the decision logged moves it to Committing or
//! Aborting; phase two answered by every branch ends it Committed or Aborted, and a phase
//! two some branch refused ends it Heuristic. The three ends are terminal.

use crate::{ActivityState, Invariant, Observation, Phase, TradeState, TradeStatus, Violation};
use std::fmt::Debug;

/// The legal moves of a trade (see the module comment).
pub const TRADE_EDGES: &[(TradeStatus, TradeStatus)] = {
    use TradeStatus::*;
    &[
        (WaitPay, Paying),
        (Paying, Paid),
        (Paying, WaitPay),
        (WaitPay, Closed),
        (Paid, PartiallyRefunded),
        (Paid, Refunded),
        (PartiallyRefunded, Refunded),
    ]
};

/// The legal moves of a TCC business activity (see the module comment).
pub const ACTIVITY_EDGES: &[(Phase, Phase)] = {
    use Phase::*;
    &[
        (Running, Committing),
        (Running, Aborting),
        (Committing, Committed),
        (Aborting, Aborted),
        (Committing, Heuristic),
        (Aborting, Heuristic),
    ]
};

/// Whether a trade may move from `from` to `to` in one step.
pub fn trade_can_become(from: TradeStatus, to: TradeStatus) -> bool {
    TRADE_EDGES.contains(&(from, to))
}

/// Whether an activity may move from `from` to `to` in one step.
pub fn activity_can_become(from: Phase, to: Phase) -> bool {
    ACTIVITY_EDGES.contains(&(from, to))
}

pub fn check(obs: &Observation) -> Vec<Violation> {
    let mut out = Vec::new();
    for t in &obs.trades {
        check_trade(t, &mut out);
    }
    for a in &obs.activities {
        check_activity(a, &mut out);
    }
    out
}

/// The walk of one trade's status history.
pub(crate) fn check_trade(t: &TradeState, out: &mut Vec<Violation>) {
    let machine = Machine {
        what: "trade",
        id: &t.trade,
        start: TradeStatus::WaitPay,
        can_become: trade_can_become,
    };
    out.extend(machine.check(&t.status_history, t.status));
}

/// The walk of one activity's status history.
pub(crate) fn check_activity(a: &ActivityState, out: &mut Vec<Violation>) {
    let machine = Machine {
        what: "activity",
        id: &a.xid,
        start: Phase::Running,
        can_become: activity_can_become,
    };
    let found = machine.check(&a.status_history, a.status);
    out.extend(found.into_iter().map(|v| v.with("trade", &a.trade)));
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
#[path = "transitions/tests.rs"]
mod tests;

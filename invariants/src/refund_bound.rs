//! Invariant 8: a trade never refunds more than was paid for it.
//!
//! Checked always. A refund is bounded by refunded + refunding + r ≤ paid (the refund flow in
//! `docs/DOMAIN.md`), so at every instant refunded + refunding ≤ paid, where refunded is the sum of the refunds
//! that succeeded and refunding the sum of those still pending. A check-then-act refund
//! without a lock lets two concurrent refunds both pass the check: the sum shows it. The
//! trade's two totals must also be the sums of its refunds, or the bound is checked on numbers
//! that do not describe the refunds, and each refund must be of a positive amount, or a
//! negative one would lower the sums and hide another.

use crate::money::{checked_sum, same, show};
use crate::{AttemptStatus, Invariant, Observation, TradeState, Violation};
use rust_decimal::Decimal;

/// Checks every trade on its own; refunds never span trades.
pub fn check(obs: &Observation) -> Vec<Violation> {
    let mut out = Vec::new();
    for t in &obs.trades {
        check_trade(t, &mut out);
    }
    out
}

/// The rules for one trade.
pub(crate) fn check_trade(t: &TradeState, out: &mut Vec<Violation>) {
    out.extend(non_positive_refunds(t));
    out.extend(total_matches(t, AttemptStatus::Succeeded));
    out.extend(total_matches(t, AttemptStatus::Pending));
    out.extend(bound(t));
}

/// A violation about trade `t`, carrying its amounts and its refunds.
fn about(t: &TradeState, message: String) -> Violation {
    let ids: Vec<&str> = t
        .refunds
        .iter()
        .map(|r| r.out_request_no.as_str())
        .collect();
    Violation::new(Invariant::RefundBound, message)
        .with("trade", &t.trade)
        .with("paid", t.paid)
        .with("refunded", t.refunded)
        .with("refunding", t.refunding)
        .with("refunds", ids.join(","))
}

fn non_positive_refunds(t: &TradeState) -> Vec<Violation> {
    let bad = t.refunds.iter().filter(|r| r.amount <= Decimal::ZERO);
    bad.map(|r| {
        let msg = format!(
            "refund {} of trade {} is of {}; a refund must be > 0",
            r.out_request_no, t.trade, r.amount
        );
        about(t, msg)
            .with("refund", &r.out_request_no)
            .with("amount", r.amount)
    })
    .collect()
}

/// refunded must be Σ succeeded refunds, refunding Σ pending ones.
fn total_matches(t: &TradeState, status: AttemptStatus) -> Option<Violation> {
    let (name, word, recorded) = match status {
        AttemptStatus::Succeeded => ("refunded", "succeeded", t.refunded),
        AttemptStatus::Pending => ("refunding", "pending", t.refunding),
        AttemptStatus::Failed => return None,
    };
    let of_status = t.refunds.iter().filter(|r| r.status == status);
    let expected = checked_sum(of_status.map(|r| r.amount));
    if same(expected, Some(recorded)) {
        return None;
    }
    let msg = format!(
        "trade {} records {name} {recorded} but its {word} refunds sum to {}",
        t.trade,
        show(expected)
    );
    let violation = about(t, msg)
        .with("expected", show(expected))
        .with("actual", recorded);
    Some(violation)
}

fn bound(t: &TradeState) -> Option<Violation> {
    let claimed = t.refunded.checked_add(t.refunding);
    if matches!(claimed, Some(c) if c <= t.paid) {
        return None;
    }
    let msg = format!(
        "trade {} has refunded {} + refunding {} = {} > paid {}",
        t.trade,
        t.refunded,
        t.refunding,
        show(claimed),
        t.paid
    );
    Some(about(t, msg).with("claimed", show(claimed)))
}

#[cfg(test)]
#[path = "refund_bound/tests.rs"]
mod tests;

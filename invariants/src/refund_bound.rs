//! Invariant 8: a trade never refunds more than was paid for it.
//!
//! Checked always. A refund is bounded by refunded + refunding + r ≤ paid (PLATFORM.md, F4),
//! so at every instant refunded + refunding ≤ paid, where refunded is the sum of the refunds
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
        out.extend(non_positive_refunds(t));
        out.extend(total_matches(t, AttemptStatus::Succeeded));
        out.extend(total_matches(t, AttemptStatus::Pending));
        out.extend(bound(t));
    }
    out
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
mod tests {
    use super::*;
    use crate::testkit::{ev, refund, single, valid};
    use rust_decimal_macros::dec;

    #[test]
    fn valid_observation_passes() {
        // T0-1 is partially refunded; the other trades have no refund.
        assert!(check(&valid()).is_empty());
    }

    #[test]
    fn whole_refund_reaches_the_bound_and_passes() {
        let mut obs = valid();
        let t = &mut obs.trades[0];
        t.refunds
            .push(refund("c1-r2", "x0.4", dec!(15), AttemptStatus::Pending));
        t.refunding = dec!(15);
        assert!(check(&obs).is_empty());
    }

    #[test]
    fn concurrent_refunds_over_paid_fail() {
        let mut obs = valid();
        // A second refund of 16 passed the check while the first (5) was already counted.
        let t = &mut obs.trades[0];
        t.refunds
            .push(refund("c1-r2", "x0.4", dec!(16), AttemptStatus::Pending));
        t.refunding = dec!(16);
        let v = &single(check(&obs), Invariant::RefundBound);
        assert_eq!(
            v.message,
            "trade T0-1 has refunded 5 + refunding 16 = 21 > paid 20"
        );
        assert_eq!(ev(v, "trade"), "T0-1");
        assert_eq!(ev(v, "claimed"), "21");
        assert_eq!(ev(v, "refunds"), "c1-r1,c1-r2");
    }

    #[test]
    fn refunded_not_the_sum_of_succeeded_refunds_fails() {
        let mut obs = valid();
        obs.trades[0].refunded = dec!(4);
        let v = &single(check(&obs), Invariant::RefundBound);
        assert!(v.message.contains("records refunded 4"));
        assert_eq!(ev(v, "trade"), "T0-1");
        assert_eq!(ev(v, "expected"), "5");
        assert_eq!(ev(v, "actual"), "4");
    }

    #[test]
    fn refunding_not_the_sum_of_pending_refunds_fails() {
        let mut obs = valid();
        obs.trades[0].refunding = dec!(1);
        let v = &single(check(&obs), Invariant::RefundBound);
        assert!(v.message.contains("records refunding 1"));
        assert_eq!(ev(v, "expected"), "0");
        assert_eq!(ev(v, "refunds"), "c1-r1");
    }

    #[test]
    fn non_positive_refund_fails() {
        let mut obs = valid();
        obs.trades[0]
            .refunds
            .push(refund("c1-r2", "x0.4", dec!(0), AttemptStatus::Failed));
        let v = &single(check(&obs), Invariant::RefundBound);
        assert_eq!(ev(v, "refund"), "c1-r2");
        assert_eq!(ev(v, "amount"), "0");
    }

    #[test]
    fn overflow_fails_without_panicking() {
        let mut obs = valid();
        let t = &mut obs.trades[2];
        t.refunds = vec![
            refund("c1-r3", "x0.5", Decimal::MAX, AttemptStatus::Pending),
            refund("c1-r4", "x0.6", Decimal::MAX, AttemptStatus::Pending),
        ];
        t.refunding = Decimal::MAX;
        t.refunded = Decimal::MAX;
        let found = check(&obs);
        assert!(found.iter().all(|v| ev(v, "trade") == "T0-3"), "{found:#?}");
        assert!(found.iter().any(|v| ev(v, "expected") == "overflow"));
        assert!(found.iter().any(|v| ev(v, "claimed") == "overflow"));
    }
}

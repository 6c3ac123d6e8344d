//! Invariant 9: at rest, every trade agrees with what the ledger posted for it.
//!
//! Checked at quiescence only: mid-flight, a trade may be paid while its postings are still
//! being confirmed. At rest, the trade service and the ledger are two records of one history,
//! so each must explain the other:
//!
//! - a trade is Paid, PartiallyRefunded or Refunded exactly when one of its payments
//!   succeeded; then it has paid its amount, and that payment's vouchers moved exactly the
//!   amount from the payer to the merchant (legs on transit accounts left out);
//! - an unpaid trade (WaitPay, Paying, Closed) holds no paid or refunded money;
//! - a failed payment or refund posted nothing that does not net out (a saga's step and its
//!   compensation); nothing is pending;
//! - each succeeded refund moved exactly its amount from the merchant back to the payer, and
//!   refunded is their sum; the status says how much was refunded (none, part, all);
//! - a voucher of an activity that no trade names is an effect without a cause.
//!
//! A manager that reads a timed-out rollback as success, or a check-back that defaults to
//! commit, leaves a trade and the ledger telling different stories: this checker compares them.

use crate::index::{
    effect, nets_to_zero, render_effect, same_effect, subjects, voucher_ids, Effect, Posted,
};
use crate::money::{checked_sum, same, show};
use crate::{
    AttemptStatus, Invariant, Observation, PayAttempt, RefundState, Side, Subject, TradeState,
    TradeStatus, Violation,
};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};

/// What every rule needs: each activity's vouchers and each account's subject.
struct Ledger<'a> {
    by_xid: BTreeMap<&'a str, Vec<Posted<'a>>>,
    subjects: BTreeMap<(u32, u64), Subject>,
}

impl<'a> Ledger<'a> {
    fn posted(&self, xid: &str) -> &[Posted<'a>] {
        self.by_xid.get(xid).map_or(&[][..], Vec::as_slice)
    }

    fn effect(&self, xid: &str) -> Effect {
        effect(self.posted(xid), &self.subjects)
    }
}

pub fn check(obs: &Observation) -> Vec<Violation> {
    let ledger = Ledger {
        by_xid: crate::index::vouchers_by_xid(obs),
        subjects: subjects(obs),
    };
    let mut out = Vec::new();
    for t in &obs.trades {
        out.extend(status_matches_payments(t, &ledger));
        out.extend(paid_amounts(t));
        for p in &t.pays {
            out.extend(pay_attempt(t, p, &ledger));
        }
        let payers = succeeded(t).count();
        let payer = single_payer(t);
        for r in &t.refunds {
            // Two payments that succeeded are flagged above; which one a refund reverses
            // cannot be told.
            if payers <= 1 {
                out.extend(refund(t, r, payer, &ledger));
            }
        }
        out.extend(refunded_total(t));
    }
    out.extend(without_cause(obs, &ledger));
    out
}

/// Paid, PartiallyRefunded and Refunded are the statuses of a trade that was paid.
fn is_paid(status: TradeStatus) -> bool {
    matches!(
        status,
        TradeStatus::Paid | TradeStatus::PartiallyRefunded | TradeStatus::Refunded
    )
}

fn succeeded(t: &TradeState) -> impl Iterator<Item = &PayAttempt> {
    t.pays
        .iter()
        .filter(|p| p.status == AttemptStatus::Succeeded)
}

/// The payer of the trade's one succeeded payment, if exactly one succeeded.
fn single_payer(t: &TradeState) -> Option<u64> {
    let mut ok = succeeded(t);
    match (ok.next(), ok.next()) {
        (Some(p), None) => Some(p.payer),
        _ => None,
    }
}

/// A violation about trade `t`, with its status and amounts.
fn about(t: &TradeState, message: String) -> Violation {
    Violation::new(Invariant::TradeLedgerAgreement, message)
        .with("trade", &t.trade)
        .with("status", format!("{:?}", t.status))
        .with("amount", t.amount)
        .with("paid", t.paid)
        .with("refunded", t.refunded)
}

/// An effect of `amount` from `from` (debited) to `to` (credited).
fn movement(from: u64, to: u64, amount: Decimal) -> Effect {
    let mut e = Effect::new();
    e.insert((from, Side::Debit), Some(amount));
    e.insert((to, Side::Credit), Some(amount));
    e
}

/// Each payment as "key:xid:Status=effect", for evidence.
fn payments(t: &TradeState, ledger: &Ledger<'_>) -> String {
    let each: Vec<String> = t
        .pays
        .iter()
        .map(|p| {
            let actual = render_effect(&ledger.effect(&p.xid));
            format!("{}:{}:{:?}={actual}", p.key, p.xid, p.status)
        })
        .collect();
    each.join(";")
}

/// A paid status ⇔ exactly one succeeded payment.
fn status_matches_payments(t: &TradeState, ledger: &Ledger<'_>) -> Option<Violation> {
    let count = succeeded(t).count();
    let expected = usize::from(is_paid(t.status));
    if count == expected {
        return None;
    }
    let msg = format!(
        "trade {} is {:?} but has {count} succeeded payments (must have {expected})",
        t.trade, t.status
    );
    Some(about(t, msg).with("payments", payments(t, ledger)))
}

/// A paid trade has paid its amount; an unpaid one holds no money.
fn paid_amounts(t: &TradeState) -> Option<Violation> {
    let msg = if is_paid(t.status) {
        if t.paid == t.amount {
            return None;
        }
        format!(
            "trade {} is {:?} with paid {} but its amount is {}",
            t.trade, t.status, t.paid, t.amount
        )
    } else {
        if t.paid.is_zero() && t.refunded.is_zero() {
            return None;
        }
        format!(
            "trade {} is {:?} but holds paid {} and refunded {}",
            t.trade, t.status, t.paid, t.refunded
        )
    };
    Some(about(t, msg))
}

/// What one payment must have posted: its amount if it is the trade's payment, else nothing.
fn pay_attempt(t: &TradeState, p: &PayAttempt, ledger: &Ledger<'_>) -> Option<Violation> {
    let posted = ledger.posted(&p.xid);
    let actual = ledger.effect(&p.xid);
    let evidence = |msg: String| {
        about(t, msg)
            .with("xid", &p.xid)
            .with("key", &p.key)
            .with("payer", p.payer)
            .with("actual", render_effect(&actual))
            .with("vouchers", voucher_ids(posted))
    };
    match p.status {
        AttemptStatus::Pending => {
            let msg = format!(
                "payment {} ({}) of trade {} is still pending at rest",
                p.key, p.xid, t.trade
            );
            Some(evidence(msg))
        }
        AttemptStatus::Failed if !nets_to_zero(posted) => {
            let msg = format!(
                "payment {} ({}) of trade {} failed but posted {} voucher(s)",
                p.key,
                p.xid,
                t.trade,
                posted.len()
            );
            Some(evidence(msg).with("expected", "none"))
        }
        AttemptStatus::Failed => None,
        AttemptStatus::Succeeded => {
            // Only the one payment of a paid trade is judged by its effect; a payment that
            // succeeded for an unpaid trade, or a second one, is flagged with its effect above.
            if !is_paid(t.status) {
                return None;
            }
            single_payer(t)?;
            let expected = movement(p.payer, t.merchant, t.amount);
            if same_effect(&expected, &actual) {
                return None;
            }
            let msg = format!(
                "payment {} ({}) of trade {} posted {} instead of {}",
                p.key,
                p.xid,
                t.trade,
                render_effect(&actual),
                render_effect(&expected)
            );
            Some(evidence(msg).with("expected", render_effect(&expected)))
        }
    }
}

/// What one refund must have posted: its amount back to the payer if it succeeded, else nothing.
fn refund(
    t: &TradeState,
    r: &RefundState,
    payer: Option<u64>,
    ledger: &Ledger<'_>,
) -> Option<Violation> {
    let posted = ledger.posted(&r.xid);
    let actual = ledger.effect(&r.xid);
    let evidence = |msg: String| {
        about(t, msg)
            .with("xid", &r.xid)
            .with("refund", &r.out_request_no)
            .with("refund_amount", r.amount)
            .with("actual", render_effect(&actual))
            .with("vouchers", voucher_ids(posted))
    };
    let name = format!(
        "refund {} ({}) of trade {}",
        r.out_request_no, r.xid, t.trade
    );
    match (r.status, payer) {
        (AttemptStatus::Pending, _) => Some(evidence(format!("{name} is still pending at rest"))),
        (AttemptStatus::Failed, _) if !nets_to_zero(posted) => {
            let msg = format!("{name} failed but posted {} voucher(s)", posted.len());
            Some(evidence(msg).with("expected", "none"))
        }
        (AttemptStatus::Failed, _) => None,
        (AttemptStatus::Succeeded, None) => {
            let msg = format!("{name} succeeded but the trade has no single payment to refund");
            Some(evidence(msg))
        }
        (AttemptStatus::Succeeded, Some(payer)) => {
            let expected = movement(t.merchant, payer, r.amount);
            if same_effect(&expected, &actual) {
                return None;
            }
            let msg = format!(
                "{name} posted {} instead of {}",
                render_effect(&actual),
                render_effect(&expected)
            );
            Some(evidence(msg).with("expected", render_effect(&expected)))
        }
    }
}

/// refunded = Σ succeeded refunds, and the status says whether none, part or all was refunded.
fn refunded_total(t: &TradeState) -> Option<Violation> {
    let ok = t
        .refunds
        .iter()
        .filter(|r| r.status == AttemptStatus::Succeeded);
    let sum = checked_sum(ok.map(|r| r.amount));
    if !same(sum, Some(t.refunded)) {
        let msg = format!(
            "trade {} records refunded {} but its succeeded refunds sum to {}",
            t.trade,
            t.refunded,
            show(sum)
        );
        return Some(about(t, msg).with("expected", show(sum)));
    }
    let (fits, rule) = match t.status {
        TradeStatus::Paid => (t.refunded.is_zero(), "0"),
        TradeStatus::PartiallyRefunded => (
            t.refunded > Decimal::ZERO && t.refunded < t.paid,
            "between 0 and paid",
        ),
        TradeStatus::Refunded => (t.refunded == t.paid, "paid"),
        _ => return None,
    };
    if fits {
        return None;
    }
    let msg = format!(
        "trade {} is {:?} but refunded {} of paid {} (must be {rule})",
        t.trade, t.status, t.refunded, t.paid
    );
    Some(about(t, msg))
}

/// Vouchers of activities that no trade's payment or refund names.
fn without_cause(obs: &Observation, ledger: &Ledger<'_>) -> Vec<Violation> {
    let named: BTreeSet<&str> = obs
        .trades
        .iter()
        .flat_map(|t| {
            let pays = t.pays.iter().map(|p| p.xid.as_str());
            pays.chain(t.refunds.iter().map(|r| r.xid.as_str()))
        })
        .collect();
    let activities = crate::index::activities_by_xid(obs);
    let orphans = ledger.by_xid.iter().filter(|(x, _)| !named.contains(*x));
    orphans
        .map(|(xid, posted)| {
            let msg = format!(
                "activity {xid} posted {} voucher(s) but no trade names it (effect without a cause)",
                posted.len()
            );
            let activity = activities.get(xid).map_or_else(
                || "unknown".to_string(),
                |a| format!("{:?} {} of {} ({:?})", a.kind, a.key, a.trade, a.status),
            );
            Violation::new(Invariant::TradeLedgerAgreement, msg)
                .with("xid", xid)
                .with("vouchers", voucher_ids(posted))
                .with("actual", render_effect(&ledger.effect(xid)))
                .with("activity", activity)
        })
        .collect()
}

#[cfg(test)]
#[path = "trade_ledger/tests.rs"]
mod tests;

//! The verdict and the broken invariants in plain words.

use crate::run::{RunReport, Verdict};
use paylab_invariants::Invariant;

/// One line: what kind of failure, and which rule.
pub fn headline(r: &RunReport) -> String {
    let mut names: Vec<&str> = r.violations.iter().map(|v| v.invariant.name()).collect();
    names.dedup();
    match &r.verdict {
        Verdict::Pass => "every invariant held".to_string(),
        Verdict::Violation => format!("safety violation: {}", names.join(", ")),
        Verdict::Liveness(stuck) => {
            format!(
                "liveness: {} things never finished after healing",
                stuck.len()
            )
        }
        Verdict::Crash(msg) => format!("crash: platform code panicked ({})", first_line(msg)),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// One paragraph per violation (the rule, what happened, the evidence), or per stuck item.
pub fn explanations(r: &RunReport) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = r
        .violations
        .iter()
        .map(|v| {
            serde_json::json!({
                "invariant": v.invariant.name(),
                "rule": rule(v.invariant),
                "message": v.message,
                "evidence": v.evidence,
            })
        })
        .collect();
    if let Verdict::Liveness(stuck) = &r.verdict {
        out.extend(stuck.iter().map(|s| {
            serde_json::json!({
                "invariant": "liveness",
                "rule": "After healing, everything in flight must finish within the drain horizon.",
                "message": s,
                "evidence": {},
            })
        }));
    }
    if let Verdict::Crash(msg) = &r.verdict {
        out.push(serde_json::json!({
            "invariant": "crash",
            "rule": "Platform code must never panic.",
            "message": msg,
            "evidence": {},
        }));
    }
    out
}

/// The rule an invariant states, for people.
pub fn rule(i: Invariant) -> &'static str {
    match i {
        Invariant::VoucherBalance => "Every voucher's debits equal its credits, amounts are positive, one currency, at least two legs.",
        Invariant::Conservation => "Money is neither created nor destroyed: all accounts of all shards, the world's included, sum to zero.",
        Invariant::Derivation => "Each balance is the fold of its journal, and every journal entry belongs to one voucher.",
        Invariant::NonNegativity => "No user or merchant balance (available or frozen) ever goes below zero.",
        Invariant::ExactlyOnce => "A request takes effect once if it succeeded, never if it failed, at most once if unknown.",
        Invariant::Idempotency => "The same key always gives the same outcome and one effect; an outcome once returned never flips.",
        Invariant::RefundBound => "A trade never refunds more than was paid: refunded + refunding <= paid.",
        Invariant::TradeLedgerAgreement => "At rest, a trade's status and amounts agree with what the ledger posted for it.",
        Invariant::LegalTransitions => "Trades and activities move only along the edges of their state machines.",
        Invariant::Atomicity => "At rest, all branches of a distributed activity end the same way; none is left in Try.",
        Invariant::ReservationRelease => "At rest, no money is left reserved (frozen) and transit accounts net to zero.",
        Invariant::MessageCompleteness => "At rest, every committed event is consumed by every group, and no aborted event is delivered.",
        Invariant::Replicas => "At rest, the read replicas match the committed events and never moved backwards.",
        Invariant::NotificationOutcome => "Every merchant notification is acknowledged or given up after its schedule; no merchant is told a status its trade never reached.",
        Invariant::NoUnauthorizedEffect => "Every posting traces to an authorized request of the debited account's owner; money enters and leaves only through the funding path; every hostile attempt is refused and has no effect.",
        Invariant::Durability => "Every log sync that returns has made durable every byte the log held when it began: nothing is acknowledged that a power loss could take back.",
        Invariant::Reconciliation => "At rest, the platform's channel orders and reserve accounts agree with every bank's books and daily statement, instruction by instruction: nothing the bank has that the platform lacks (长款), nothing the platform has that the bank lacks (短款), no amount differs.",
        Invariant::Isolation => "A locking (2PC) participant never lets a second movement lock an account a prepared branch holds until its decision arrives.",
        Invariant::Compensation => "At rest, the ledger did what each saga's log says: every step of a completed saga posted once, every step before a refused one posted and compensated once, nothing after it posted.",
    }
}

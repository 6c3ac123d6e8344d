//! A broken invariant, named, with the evidence that shows how it broke.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The invariants paylab checks (numbering follows `docs/DOMAIN.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    /// 1. Σ debit legs = Σ credit legs, amounts > 0, one currency, at least two legs.
    VoucherBalance,
    /// 2. Σ of every account of every shard, world included, = 0.
    Conservation,
    /// 3. Each balance = fold of its journal; every entry belongs to one voucher.
    Derivation,
    /// 4. User and merchant available ≥ 0; frozen ≥ 0.
    NonNegativity,
    /// 6. Per request id: one effect on success, none on failure, at most one if unknown.
    ExactlyOnce,
    /// 7. Same key ⇒ same outcome and one effect; an outcome once returned never flips.
    Idempotency,
    /// 8. refunded + refunding ≤ paid, each the sum of its refunds.
    RefundBound,
    /// 9. At rest, a trade's status and amounts agree with what the ledger posted for it.
    TradeLedgerAgreement,
    /// 10. Every trade and activity moves only along its state machine's edges.
    LegalTransitions,
    /// 11. At rest, all branches of an activity end the same way; none left in Try.
    Atomicity,
    /// 12. At rest, no reservation is left and transit accounts net to zero.
    ReservationRelease,
    /// 13. At rest, each committed event consumed by every group; no aborted one delivered.
    MessageCompleteness,
    /// 14. At rest, the read replicas match the committed events and never moved backwards.
    Replicas,
    /// At rest, every committed event's merchant notification acknowledged or given up after
    /// its whole schedule; no merchant told a status its trade never reached.
    NotificationOutcome,
    /// Invariant 21: every posting traces to an authorized request of the debited account's
    /// owner (or the platform's own step for it); money enters and leaves only through the
    /// funding path; every hostile attempt is refused as it must be and has no effect.
    NoUnauthorizedEffect,
    /// 19. A log sync that returns has made durable every byte the log held when it began.
    Durability,
    /// Invariant 15: at rest, the platform's channel orders and reserve agree with every
    /// bank's books and statement, instruction by instruction (no 长款, no 短款, no amount
    /// mismatch).
    Reconciliation,
    /// Invariant 22: a locking (2PC) participant never lets two movements hold one account.
    Isolation,
    /// Invariant 23: at rest, the ledger did what each saga's log says (steps and
    /// compensations posted, each once).
    Compensation,
}

impl Invariant {
    /// Every invariant, in the order of `docs/DOMAIN.md`'s list as the enum declares them.
    pub const ALL: &'static [Invariant] = &[
        Invariant::VoucherBalance,
        Invariant::Conservation,
        Invariant::Derivation,
        Invariant::NonNegativity,
        Invariant::ExactlyOnce,
        Invariant::Idempotency,
        Invariant::RefundBound,
        Invariant::TradeLedgerAgreement,
        Invariant::LegalTransitions,
        Invariant::Atomicity,
        Invariant::ReservationRelease,
        Invariant::MessageCompleteness,
        Invariant::Replicas,
        Invariant::NotificationOutcome,
        Invariant::NoUnauthorizedEffect,
        Invariant::Durability,
        Invariant::Reconciliation,
        Invariant::Isolation,
        Invariant::Compensation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Invariant::VoucherBalance => "voucher-balance",
            Invariant::Conservation => "conservation",
            Invariant::Derivation => "derivation",
            Invariant::NonNegativity => "non-negativity",
            Invariant::ExactlyOnce => "exactly-once",
            Invariant::Idempotency => "idempotency",
            Invariant::RefundBound => "refund-bound",
            Invariant::TradeLedgerAgreement => "trade-ledger-agreement",
            Invariant::LegalTransitions => "legal-transitions",
            Invariant::Atomicity => "atomicity",
            Invariant::ReservationRelease => "reservation-release",
            Invariant::MessageCompleteness => "message-completeness",
            Invariant::Replicas => "replicas",
            Invariant::NotificationOutcome => "notification-outcome",
            Invariant::NoUnauthorizedEffect => "no-unauthorized-effect",
            Invariant::Durability => "durability",
            Invariant::Reconciliation => "reconciliation",
            Invariant::Isolation => "isolation",
            Invariant::Compensation => "compensation",
        }
    }
}

#[cfg(test)]
#[test]
fn json_spells_every_invariant_by_its_name() {
    let names: std::collections::BTreeSet<&str> = Invariant::ALL.iter().map(|i| i.name()).collect();
    assert_eq!(names.len(), Invariant::ALL.len(), "every name distinct");
    // A new variant fails to compile here until it is listed, and then must be in `ALL`.
    use Invariant::*;
    let listed = |i: Invariant| match i {
        VoucherBalance | Conservation | Derivation | NonNegativity | ExactlyOnce | Idempotency
        | RefundBound | TradeLedgerAgreement | LegalTransitions | Atomicity
        | ReservationRelease | MessageCompleteness | Replicas | NotificationOutcome
        | NoUnauthorizedEffect | Durability | Reconciliation | Isolation | Compensation => {
            Invariant::ALL.contains(&i)
        }
    };
    assert!(Invariant::ALL.iter().all(|&i| listed(i)));
    for i in [
        VoucherBalance,
        NotificationOutcome,
        NoUnauthorizedEffect,
        Durability,
        Reconciliation,
    ] {
        assert!(listed(i), "{i} is in ALL");
    }
    for &i in Invariant::ALL {
        let json = serde_json::to_string(&i).expect("serializes");
        assert_eq!(json, format!("\"{}\"", i.name()));
        assert_eq!(serde_json::from_str::<Invariant>(&json).ok(), Some(i));
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One violation: which invariant, a one-line description, and the evidence as named values
/// (account, expected, actual, voucher and request ids, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub invariant: Invariant,
    pub message: String,
    pub evidence: BTreeMap<String, String>,
}

impl Violation {
    pub fn new(invariant: Invariant, message: impl Into<String>) -> Self {
        Violation {
            invariant,
            message: message.into(),
            evidence: BTreeMap::new(),
        }
    }

    /// Adds one named piece of evidence.
    /// Adds one piece of evidence. An empty value (an empty list, a missing row) is written
    /// `none`, so that no field of the evidence is ever blank.
    pub fn with(mut self, key: &str, value: impl fmt::Display) -> Self {
        let mut value = value.to_string();
        if value.trim().is_empty() {
            value = EMPTY_EVIDENCE.to_string();
        }
        self.evidence.insert(key.to_string(), value);
        self
    }
}

/// What an empty piece of evidence is written as.
pub const EMPTY_EVIDENCE: &str = "none";

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.invariant, self.message)?;
        for (k, v) in &self.evidence {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[test]
fn no_piece_of_evidence_is_ever_blank() {
    let v = Violation::new(Invariant::Replicas, "a row is missing")
        .with("trade", "T0-1")
        .with("actual", "")
        .with("vouchers", "  ");
    assert_eq!(v.evidence["trade"], "T0-1");
    assert_eq!(v.evidence["actual"], EMPTY_EVIDENCE);
    assert_eq!(v.evidence["vouchers"], EMPTY_EVIDENCE);
    assert!(!v.to_string().contains("= "), "{v}");
}

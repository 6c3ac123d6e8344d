//! Refusals as typed values: a [`RefusalCode`] that callers and checkers compare, and detail
//! text for people that nothing compares.
//!
//! Every service's error type maps onto a code (`fn code(&self) -> RefusalCode`). The history
//! records the code of a definite failure, and the idempotency checker requires that a key's
//! answer keeps its code; the detail (amounts, ids) may be worded differently on a repeat.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a request was refused, as a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalCode {
    /// The account does not exist.
    UnknownAccount,
    /// The account or trade lives on another shard than the one asked.
    WrongShard,
    /// An account with that id already exists with another subject.
    AccountExists,
    /// The payer's available balance is below the amount.
    InsufficientFunds,
    /// A voucher with fewer than two legs.
    TooFewLegs,
    /// A voucher whose debits differ from its credits.
    Unbalanced,
    /// An idempotency key (request, freeze key, branch, pay key, out_trade_no, out_request_no)
    /// reused with another body.
    KeyReused,
    /// A TCC fence refused the branch step (late Try after Cancel, Confirm without Try, ...).
    Fence,
    /// The trade does not exist.
    UnknownTrade,
    /// The trade cannot be paid in its status.
    NotPayable,
    /// The trade cannot be refunded in its status.
    NotRefundable,
    /// The refund would exceed what is left of the trade.
    RefundExceeds,
    /// The service could not do it now; nothing was written; retry.
    Unavailable,
    /// The movement of money was aborted (a branch refused or timed out before the decision).
    Aborted,
    /// Malformed input (a bad amount, an empty field).
    Invalid,
    /// The caller may not take this step: an internal step of the platform's protocol asked
    /// by anyone but the service that owns it.
    Unauthorized,
    /// The request's credential was forged, or presented from another address than its own.
    Unauthenticated,
    /// The bank refused the instruction for good (the card has no funds or is closed, the
    /// platform's reserve there is short): nothing moved.
    BankDeclined,
    /// Another movement holds the account locked (a prepared 2PC branch): nothing was done.
    Locked,
}

impl RefusalCode {
    pub const ALL: &'static [RefusalCode] = &[
        RefusalCode::UnknownAccount,
        RefusalCode::WrongShard,
        RefusalCode::AccountExists,
        RefusalCode::InsufficientFunds,
        RefusalCode::TooFewLegs,
        RefusalCode::Unbalanced,
        RefusalCode::KeyReused,
        RefusalCode::Fence,
        RefusalCode::UnknownTrade,
        RefusalCode::NotPayable,
        RefusalCode::NotRefundable,
        RefusalCode::RefundExceeds,
        RefusalCode::Unavailable,
        RefusalCode::Aborted,
        RefusalCode::Invalid,
        RefusalCode::Unauthorized,
        RefusalCode::Unauthenticated,
        RefusalCode::BankDeclined,
        RefusalCode::Locked,
    ];

    /// The kebab-case name used in histories, evidence and summaries.
    pub fn name(self) -> &'static str {
        match self {
            RefusalCode::UnknownAccount => "unknown-account",
            RefusalCode::WrongShard => "wrong-shard",
            RefusalCode::AccountExists => "account-exists",
            RefusalCode::InsufficientFunds => "insufficient-funds",
            RefusalCode::TooFewLegs => "too-few-legs",
            RefusalCode::Unbalanced => "unbalanced",
            RefusalCode::KeyReused => "key-reused",
            RefusalCode::Fence => "fence",
            RefusalCode::UnknownTrade => "unknown-trade",
            RefusalCode::NotPayable => "not-payable",
            RefusalCode::NotRefundable => "not-refundable",
            RefusalCode::RefundExceeds => "refund-exceeds",
            RefusalCode::Unavailable => "unavailable",
            RefusalCode::Aborted => "aborted",
            RefusalCode::Invalid => "invalid",
            RefusalCode::Unauthorized => "unauthorized",
            RefusalCode::Unauthenticated => "unauthenticated",
            RefusalCode::BankDeclined => "bank-declined",
            RefusalCode::Locked => "locked",
        }
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A refusal: its code, and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: RefusalCode,
    pub detail: String,
}

impl Refusal {
    pub fn new(code: RefusalCode, detail: impl Into<String>) -> Self {
        Refusal {
            code,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_distinct_name() {
        let names: std::collections::BTreeSet<&str> =
            RefusalCode::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), RefusalCode::ALL.len());
    }

    #[test]
    fn a_refusal_shows_its_code_then_its_detail() {
        let r = Refusal::new(
            RefusalCode::InsufficientFunds,
            "acct-9 has 1.00, 5.00 needed",
        );
        assert_eq!(
            r.to_string(),
            "insufficient-funds: acct-9 has 1.00, 5.00 needed"
        );
    }
}

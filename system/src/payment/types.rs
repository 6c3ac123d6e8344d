//! The payment service's vocabulary: the pay and refund API and its routing.

use crate::ids::AccountId;
use crate::money::Amount;
use crate::trade::TradeId;
use crate::transport::Rpc;
use serde::{Deserialize, Serialize};

/// The payment node that owns an idempotency key: every retry of a key goes to the same node,
/// whose order log pins the key's outcome. FNV-1a, so routing never depends on the process.
pub fn payment_node_for(key: &str, nodes: u32) -> u32 {
    assert!(nodes > 0, "at least one payment node");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(nodes)) as u32
}

/// What a buyer or merchant asks the cashier/payment service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentCommand {
    /// Pays `trade` from `payer`'s balance, or, `by_card`, from the payer's card: the
    /// trade's amount is deposited from the card first (F3); idempotent by `key`.
    Pay {
        trade: TradeId,
        key: String,
        payer: AccountId,
        by_card: bool,
    },
    /// Refunds `amount` of `trade` back to its payer; idempotent by `out_request_no`.
    Refund {
        trade: TradeId,
        out_request_no: String,
        amount: Amount,
    },
    /// Money enters `account` from outside the platform (the funding path: a card top-up, in a
    /// platform without clearing); idempotent by `key`, which is the ledger request's id.
    Deposit {
        account: AccountId,
        key: String,
        amount: Amount,
    },
    /// Money leaves `account` to outside the platform (a settlement to the owner's bank);
    /// idempotent by `key`.
    Withdraw {
        account: AccountId,
        key: String,
        amount: Amount,
    },
}

impl PaymentCommand {
    /// The caller's idempotency key of the request.
    pub fn key(&self) -> &str {
        match self {
            PaymentCommand::Pay { key, .. }
            | PaymentCommand::Deposit { key, .. }
            | PaymentCommand::Withdraw { key, .. } => key,
            PaymentCommand::Refund { out_request_no, .. } => out_request_no,
        }
    }
}

/// A successful payment or refund, with the activity that moved the money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentReceipt {
    pub xid: crate::ids::Xid,
}

/// Why a payment or refund has no success to report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PaymentError {
    /// A definite failure: no money moved, and a retry gets the same answer.
    #[error("refused: {0}")]
    Refused(crate::refusal::Refusal),
    /// Still being carried out: not an outcome; ask again later.
    #[error("in progress")]
    InProgress,
}

/// The payment service's internal RPC: a request a payment node forwards to the key's owner,
/// on behalf of the client it authenticated. Taken only from payment nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentCall {
    pub client: u32,
    pub command: PaymentCommand,
}

impl Rpc for PaymentCall {
    type Response = Result<PaymentReceipt, PaymentError>;
    const TAG: u64 = 0x5041_594d_0001;
}

/// The payment service's client API: a request with the client's credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPaymentCall {
    pub credential: crate::auth::Credential,
    pub command: PaymentCommand,
}

impl Rpc for ClientPaymentCall {
    type Response = Result<PaymentReceipt, PaymentError>;
    const TAG: u64 = 0x5041_594d_0002;
}

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
    /// Pays `trade` from `payer`'s balance; idempotent by `key`.
    Pay {
        trade: TradeId,
        key: String,
        payer: AccountId,
    },
    /// Refunds `amount` of `trade` back to its payer; idempotent by `out_request_no`.
    Refund {
        trade: TradeId,
        out_request_no: String,
        amount: Amount,
    },
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

/// The payment RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentCall(pub PaymentCommand);

impl Rpc for PaymentCall {
    type Response = Result<PaymentReceipt, PaymentError>;
    const TAG: u64 = 0x5041_594d_0001;
}

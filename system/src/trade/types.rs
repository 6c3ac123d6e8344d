//! The trade service's vocabulary: trade ids, statuses, pay attempts, refunds, the RPC.

use crate::ids::{AccountId, IdemKey, TradeShardId, Xid};
use crate::money::Amount;
use crate::refusal::Refusal;
use crate::transport::Rpc;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A trade, unique across trade shards: the shard that created it and its sequence there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TradeId {
    pub shard: u32,
    pub seq: u64,
}

impl TradeId {
    /// The trade shard that owns this trade.
    pub fn shard_id(&self) -> TradeShardId {
        TradeShardId(self.shard)
    }
}

impl fmt::Display for TradeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T{}-{}", self.shard, self.seq)
    }
}

impl std::str::FromStr for TradeId {
    type Err = String;
    /// Reads `T{shard}-{seq}`, as [`TradeId`] displays.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not a trade id (T<shard>-<seq>)");
        let (shard, seq) = s
            .strip_prefix('T')
            .and_then(|r| r.split_once('-'))
            .ok_or_else(bad)?;
        Ok(TradeId {
            shard: shard.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// The trade shard that owns (merchant, out_trade_no): a retried create always lands on the
/// same shard, which is what makes the pair unique. FNV-1a, so the choice never depends on the
/// process (std's hasher is randomly keyed).
pub fn trade_shard_of(merchant: AccountId, out_trade_no: &str, trade_shards: u32) -> TradeShardId {
    assert!(trade_shards > 0, "at least one trade shard");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in merchant
        .0
        .to_le_bytes()
        .iter()
        .chain(out_trade_no.as_bytes())
    {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    TradeShardId((hash % u64::from(trade_shards)) as u32)
}

/// A trade's status (交易状态).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TradeStatus {
    WaitPay,
    Paying,
    Paid,
    PartiallyRefunded,
    Refunded,
    Closed,
}

impl TradeStatus {
    /// The only edges a trade may move along; the core asserts every move against them.
    pub fn can_become(self, next: TradeStatus) -> bool {
        use TradeStatus::*;
        matches!(
            (self, next),
            (WaitPay, Paying)
                | (WaitPay, Closed)
                | (Paying, WaitPay)
                | (Paying, Paid)
                | (Paid, PartiallyRefunded)
                | (Paid, Refunded)
                | (PartiallyRefunded, Refunded)
        )
    }
}

/// Where a pay attempt or a refund stands. A failure keeps its reason, so a retry under the
/// same key gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptStatus {
    Pending,
    Succeeded,
    Failed(Refusal),
}

impl AttemptStatus {
    pub fn is_pending(&self) -> bool {
        matches!(self, AttemptStatus::Pending)
    }
}

/// One attempt to pay a trade, under the buyer's idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayAttempt {
    pub key: IdemKey,
    /// The activity (global transaction) that moves the money.
    pub xid: Xid,
    pub payer: AccountId,
    pub status: AttemptStatus,
    /// Paid by card through clearing (F3): a refund goes back to the card.
    #[serde(default)]
    pub by_card: bool,
}

/// One refund of a trade, unique by `out_request_no`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub out_request_no: IdemKey,
    pub xid: Xid,
    pub amount: Amount,
    pub status: AttemptStatus,
}

/// One trade with everything that happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    pub id: TradeId,
    pub merchant: AccountId,
    pub out_trade_no: String,
    pub amount: Amount,
    /// The trade node's clock when the trade was created; it closes unpaid after a timeout.
    pub created_ms: u64,
    pub paid: Decimal,
    pub refunded: Decimal,
    pub refunding: Decimal,
    pub status: TradeStatus,
    /// Every status the trade has had, oldest first.
    pub history: Vec<TradeStatus>,
    /// How many events the trade has published (its latest event's version).
    pub version: u32,
    pub pays: Vec<PayAttempt>,
    pub refunds: Vec<Refund>,
}

impl Trade {
    /// Whether a pay or a refund of this trade has begun and not ended.
    pub fn in_flight(&self) -> bool {
        self.pays.iter().any(|p| p.status.is_pending())
            || self.refunds.iter().any(|r| r.status.is_pending())
    }

    /// The trade as its merchant may see it: statuses and sums, without the pay attempts and
    /// refunds (their keys and activity ids are the platform's and the buyers').
    pub fn redacted(&self) -> Trade {
        Trade {
            pays: Vec::new(),
            refunds: Vec::new(),
            ..self.clone()
        }
    }

    /// The buyer who paid, once the trade is paid.
    pub fn payer(&self) -> Option<AccountId> {
        self.pays
            .iter()
            .find(|p| p.status == AttemptStatus::Succeeded)
            .map(|p| p.payer)
    }

    /// Whether the trade's successful payment came from a card (its refunds go back there).
    pub fn paid_by_card(&self) -> bool {
        let paid = self
            .pays
            .iter()
            .find(|p| p.status == AttemptStatus::Succeeded);
        paid.is_some_and(|p| p.by_card)
    }
}

/// What the payment service (or a merchant) asks of a trade shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TradeCommand {
    /// Creates a trade; repeating it with the same (merchant, out_trade_no) returns the same
    /// trade.
    Create {
        merchant: AccountId,
        out_trade_no: String,
        amount: Amount,
    },
    /// Starts paying under `key` with activity `xid`: WAIT_PAY -> PAYING. Idempotent by key;
    /// a refusal is recorded against the key too, so it never flips.
    BeginPay {
        trade: TradeId,
        key: IdemKey,
        xid: Xid,
        payer: AccountId,
        /// The money came from the payer's card (deposited just before).
        by_card: bool,
    },
    /// Ends the pay attempt `key`: PAYING -> PAID on success, back to WAIT_PAY on failure. An
    /// unknown key is recorded as failed, so a late BeginPay of it is refused (anti-hanging).
    EndPay {
        trade: TradeId,
        key: IdemKey,
        xid: Xid,
        payer: AccountId,
        outcome: Result<(), Refusal>,
    },
    /// Starts a refund: checks refunded + refunding + amount <= paid and reserves it.
    BeginRefund {
        trade: TradeId,
        out_request_no: IdemKey,
        xid: Xid,
        amount: Amount,
    },
    /// Ends a refund; an unknown out_request_no is recorded as failed (anti-hanging).
    EndRefund {
        trade: TradeId,
        out_request_no: IdemKey,
        xid: Xid,
        amount: Amount,
        outcome: Result<(), Refusal>,
    },
    /// Reads a trade.
    Query { trade: TradeId },
}

impl TradeCommand {
    /// The command's name, as refusals quote it.
    pub fn name(&self) -> &'static str {
        match self {
            TradeCommand::Create { .. } => "Create",
            TradeCommand::BeginPay { .. } => "BeginPay",
            TradeCommand::EndPay { .. } => "EndPay",
            TradeCommand::BeginRefund { .. } => "BeginRefund",
            TradeCommand::EndRefund { .. } => "EndRefund",
            TradeCommand::Query { .. } => "Query",
        }
    }
}

/// A successful reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TradeReply {
    Created {
        trade: TradeId,
        amount: Amount,
    },
    /// The pay attempt is (still) this caller's to carry out.
    PayBegun {
        amount: Amount,
        merchant: AccountId,
    },
    /// The refund is (still) this caller's to carry out.
    RefundBegun {
        merchant: AccountId,
        payer: AccountId,
        /// The trade was paid by card: the refund goes back to the card.
        to_card: bool,
    },
    /// The key was already used and has this status: the caller must not move money for it.
    Settled(AttemptStatus),
    Ended,
    Trade(Box<Trade>),
}

/// A refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TradeError {
    #[error("trade {0} does not exist")]
    UnknownTrade(TradeId),
    #[error("trade {trade} belongs to another trade shard than {shard}")]
    WrongShard { trade: TradeId, shard: TradeShardId },
    #[error("out_trade_no {0} was already used for another amount")]
    OutTradeNoReused(String),
    #[error("trade {trade} cannot be paid in status {status:?}")]
    NotPayable { trade: TradeId, status: TradeStatus },
    #[error("trade {trade} cannot be refunded in status {status:?}")]
    NotRefundable { trade: TradeId, status: TradeStatus },
    #[error("refund of {amount} exceeds what is left of trade {trade}: paid {paid}, refunded {refunded}, refunding {refunding}")]
    RefundExceeds {
        trade: TradeId,
        amount: String,
        paid: String,
        refunded: String,
        refunding: String,
    },
    #[error("key {0} was already used with another activity")]
    KeyReused(IdemKey),
    /// The change could not be made now (mode 2: the broker did not store its half message);
    /// nothing was written, and the caller should retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A request the caller may not make (an internal step from a client, another merchant's
    /// trade): nothing was read or written.
    #[error("{caller} may not {step}")]
    Unauthorized { step: String, caller: String },
    /// The request's credential was forged or came from another address: nothing was read.
    #[error("{0}")]
    Unauthenticated(crate::auth::BadCredential),
}

impl TradeError {
    /// The stable code of this refusal (what callers and checkers compare).
    pub fn code(&self) -> crate::refusal::RefusalCode {
        use crate::refusal::RefusalCode as C;
        match self {
            TradeError::UnknownTrade(_) => C::UnknownTrade,
            TradeError::WrongShard { .. } => C::WrongShard,
            TradeError::OutTradeNoReused(_) | TradeError::KeyReused(_) => C::KeyReused,
            TradeError::NotPayable { .. } => C::NotPayable,
            TradeError::NotRefundable { .. } => C::NotRefundable,
            TradeError::RefundExceeds { .. } => C::RefundExceeds,
            TradeError::Unavailable(_) => C::Unavailable,
            TradeError::Unauthorized { .. } => C::Unauthorized,
            TradeError::Unauthenticated(_) => C::Unauthenticated,
        }
    }
}

/// The trade's internal RPC, for the platform's services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeCall(pub TradeCommand);

impl Rpc for TradeCall {
    type Response = Result<TradeReply, TradeError>;
    const TAG: u64 = 0x5452_4144_0001;
}

/// The trade's client API: a merchant creates and reads its own trades.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTradeCall {
    pub credential: crate::auth::Credential,
    pub command: TradeCommand,
}

impl Rpc for ClientTradeCall {
    type Response = Result<TradeReply, TradeError>;
    const TAG: u64 = 0x5452_4144_0002;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusal::RefusalCode as C;

    #[test]
    fn every_refusal_has_its_own_code() {
        let t = TradeId { shard: 1, seq: 2 };
        let cases = [
            (TradeError::UnknownTrade(t), C::UnknownTrade),
            (
                TradeError::WrongShard {
                    trade: t,
                    shard: TradeShardId(0),
                },
                C::WrongShard,
            ),
            (TradeError::OutTradeNoReused("o1".into()), C::KeyReused),
            (TradeError::KeyReused("k1".into()), C::KeyReused),
            (
                TradeError::NotPayable {
                    trade: t,
                    status: TradeStatus::Closed,
                },
                C::NotPayable,
            ),
            (
                TradeError::NotRefundable {
                    trade: t,
                    status: TradeStatus::WaitPay,
                },
                C::NotRefundable,
            ),
            (
                TradeError::RefundExceeds {
                    trade: t,
                    amount: "1".into(),
                    paid: "0".into(),
                    refunded: "0".into(),
                    refunding: "0".into(),
                },
                C::RefundExceeds,
            ),
            (TradeError::Unavailable("broker".into()), C::Unavailable),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error}");
        }
    }

    #[test]
    fn a_trade_shard_is_chosen_by_merchant_and_out_trade_no_alone() {
        let s = trade_shard_of(AccountId(7), "o1", 4);
        assert_eq!(s, trade_shard_of(AccountId(7), "o1", 4));
        assert!(s.0 < 4);
        assert_eq!(trade_shard_of(AccountId(7), "o1", 1), TradeShardId(0));
        assert_eq!(TradeId { shard: 3, seq: 1 }.shard_id(), TradeShardId(3));
    }
}

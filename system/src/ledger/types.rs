//! The ledger's vocabulary: subjects, legs, vouchers, journal entries, commands, replies, errors.

use crate::ids::{AccountId, RequestId, ShardId, VoucherId, Xid};
use crate::money::Amount;
pub use crate::movement::{LegAction, Step};
use crate::tcc::fence::{BranchKey, FenceRefusal};
use crate::transport::Rpc;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The accounting subject of an account (a simplified chart of accounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Subject {
    User,
    Merchant,
    Transit,
    World,
    /// The platform's reserve at one bank (备付金, an asset: normally negative here).
    Reserve,
    /// Withdrawals on their way to one bank (提现在途).
    InTransit,
    /// Money at a bank the platform cannot attribute yet (挂账), held until it can.
    Suspense,
}

impl Subject {
    /// Customer balances may never go below zero; transit and world accounts may.
    pub fn must_stay_non_negative(self) -> bool {
        matches!(self, Subject::User | Subject::Merchant)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Side {
    Debit,
    Credit,
}

/// One leg of a voucher: debit or credit one account by a positive amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    pub account: AccountId,
    pub side: Side,
    pub amount: Amount,
}

impl Leg {
    pub fn debit(account: AccountId, amount: Amount) -> Self {
        Leg {
            account,
            side: Side::Debit,
            amount,
        }
    }
    pub fn credit(account: AccountId, amount: Amount) -> Self {
        Leg {
            account,
            side: Side::Credit,
            amount,
        }
    }
    /// The leg's effect on a credit-positive balance.
    pub fn signed(&self) -> Decimal {
        match self.side {
            Side::Credit => self.amount.value(),
            Side::Debit => -self.amount.value(),
        }
    }
}

/// A posted voucher (记账凭证): at least two legs whose debits equal their credits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voucher {
    pub id: VoucherId,
    pub request: RequestId,
    pub legs: Vec<Leg>,
    /// The posting node's clock when it was posted.
    pub posted_ms: u64,
    /// The movement this voucher is a step of, if any (none for the funding path's posts).
    pub xid: Option<Xid>,
    /// Which step of that movement (or which compensation) it posts.
    pub step: Option<Step>,
}

/// Checks the shape every voucher must have; used before writing and again on replay.
pub fn check_balanced(legs: &[Leg]) -> Result<(), LedgerError> {
    if legs.len() < 2 {
        return Err(LedgerError::TooFewLegs(legs.len()));
    }
    let (mut debits, mut credits) = (Decimal::ZERO, Decimal::ZERO);
    for leg in legs {
        match leg.side {
            Side::Debit => debits += leg.amount.value(),
            Side::Credit => credits += leg.amount.value(),
        }
    }
    if debits != credits {
        return Err(LedgerError::Unbalanced {
            debits: debits.to_string(),
            credits: credits.to_string(),
        });
    }
    Ok(())
}

/// One journal entry (账务流水): one leg of one voucher, in posting order on its shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub seq: u64,
    pub voucher: VoucherId,
    pub account: AccountId,
    pub side: Side,
    pub amount: Amount,
}

/// An account's balances (credit-positive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub subject: Subject,
    pub available: Decimal,
    pub frozen: Decimal,
}

/// An active reservation of available funds, keyed by its owner's idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freeze {
    pub key: String,
    pub account: AccountId,
    pub amount: Amount,
}

/// An outbox row of the `outbox` strategy: the credit voucher of movement `xid`, to be posted
/// on `shard` by whoever consumes it (idempotently, by the xid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditRow {
    pub xid: Xid,
    /// The credit's step in its movement.
    pub step: Step,
    pub shard: ShardId,
    pub legs: Vec<Leg>,
}

impl CreditRow {
    /// The broker message that carries the row (its id is the broker's dedup key).
    pub fn message(&self) -> crate::producer::Message {
        let payload = serde_json::to_string(self).expect("a row serializes");
        crate::producer::Message::new(
            format!("credit:{}", self.xid),
            self.xid.to_string(),
            payload,
        )
    }
}

/// The topic the `outbox` strategy's credit rows go to, and its queue count.
pub const CREDITS_TOPIC: &str = "money-credits";
pub const CREDITS_QUEUES: u32 = 4;

/// What a client asks a ledger shard to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerCommand {
    /// Opens an account on its home shard; repeating it with the same subject is a no-op.
    OpenAccount {
        account: AccountId,
        subject: Subject,
    },
    /// Posts one balanced voucher, idempotent by `request`.
    Post { request: RequestId, legs: Vec<Leg> },
    /// Posts one step of movement `xid` as a balanced voucher carrying the xid, idempotent by
    /// `request` (a strategy that posts directly, like `naive`, chooses its request ids).
    /// Internal: only the payment nodes.
    PostStep {
        xid: Xid,
        step: Step,
        request: RequestId,
        legs: Vec<Leg>,
    },
    /// The `outbox` strategy's local transaction: posts movement `xid`'s debit voucher and
    /// writes the row of its credit in the same record, idempotent by `request`; the shard
    /// relays the row to the broker once durable. Internal: only the payment nodes.
    PostWithRow {
        xid: Xid,
        step: Step,
        request: RequestId,
        legs: Vec<Leg>,
        row: CreditRow,
    },
    /// Settles request `request` (with these legs) for good: its outcome if it was posted or
    /// refused, else a durable refusal (`aborted`), so that it can never be posted later. The
    /// `txmsg` strategy's check-back asks it. Internal: only the payment nodes.
    SettleRequest { request: RequestId, legs: Vec<Leg> },
    /// Moves `amount` from available to frozen, idempotent by `key`.
    Freeze {
        key: String,
        account: AccountId,
        amount: Amount,
    },
    /// Releases the freeze `key`; releasing an unknown key succeeds and changes nothing.
    Unfreeze { key: String },
    /// TCC phase one for one branch: reserve, fenced per (xid, branch).
    TccTry {
        branch: BranchKey,
        action: LegAction,
    },
    /// TCC phase two, commit: post the reserved movement. Idempotent.
    TccConfirm { branch: BranchKey },
    /// TCC phase two, rollback: release the reservation (or record an empty rollback).
    /// Idempotent.
    TccCancel { branch: BranchKey },
}

/// A successful reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerReply {
    Opened,
    Posted { voucher: VoucherId },
    Frozen,
    Unfrozen,
    Tried,
    Confirmed,
    Cancelled,
}

/// A refusal. Refusals of posts and freezes are durable: a retry gets the same refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LedgerError {
    #[error("{0} does not exist")]
    UnknownAccount(AccountId),
    #[error("{account} belongs to another shard than {shard}")]
    WrongShard { account: AccountId, shard: ShardId },
    #[error("{account} already exists as {subject:?}")]
    AccountExists {
        account: AccountId,
        subject: Subject,
    },
    #[error("{account} has {available} available, {needed} needed")]
    InsufficientFunds {
        account: AccountId,
        available: String,
        needed: String,
    },
    #[error("a voucher needs at least two legs, got {0}")]
    TooFewLegs(usize),
    #[error("voucher debits {debits} differ from credits {credits}")]
    Unbalanced { debits: String, credits: String },
    #[error("freeze key {0} was already used for another reservation")]
    FreezeKeyReused(String),
    #[error("{0}")]
    Fence(FenceRefusal),
    #[error("request {0} was already used with other legs")]
    RequestReused(String),
    #[error("branch {0} was tried with another action")]
    BranchReused(String),
    /// A step the caller may not take (an internal step asked by a client, an account or key
    /// that is not the caller's): nothing was read or written.
    #[error("{caller} may not {step}")]
    Unauthorized { step: String, caller: String },
    /// The request's credential was forged or came from another address: nothing was read.
    #[error("{0}")]
    Unauthenticated(crate::auth::BadCredential),
    /// The request was settled as never to be posted (a `txmsg` check-back found it unposted).
    #[error("request {0} was settled as not posted")]
    Settled(String),
    /// A prepared 2PC branch holds the account locked until its coordinator decides.
    #[error("{account} is locked by prepared branch {by}")]
    Locked { account: AccountId, by: String },
}

impl LedgerError {
    /// The stable code of this refusal (what callers and checkers compare).
    pub fn code(&self) -> crate::refusal::RefusalCode {
        use crate::refusal::RefusalCode as C;
        match self {
            LedgerError::UnknownAccount(_) => C::UnknownAccount,
            LedgerError::WrongShard { .. } => C::WrongShard,
            LedgerError::AccountExists { .. } => C::AccountExists,
            LedgerError::InsufficientFunds { .. } => C::InsufficientFunds,
            LedgerError::TooFewLegs(_) => C::TooFewLegs,
            LedgerError::Unbalanced { .. } => C::Unbalanced,
            LedgerError::FreezeKeyReused(_)
            | LedgerError::BranchReused(_)
            | LedgerError::RequestReused(_) => C::KeyReused,
            LedgerError::Fence(_) => C::Fence,
            LedgerError::Unauthorized { .. } => C::Unauthorized,
            LedgerError::Unauthenticated(_) => C::Unauthenticated,
            LedgerError::Locked { .. } => C::Locked,
            LedgerError::Settled(_) => C::Aborted,
        }
    }
}

impl LedgerCommand {
    /// The command's name, as refusals quote it.
    pub fn name(&self) -> &'static str {
        match self {
            LedgerCommand::OpenAccount { .. } => "OpenAccount",
            LedgerCommand::Post { .. } => "Post",
            LedgerCommand::PostStep { .. } => "PostStep",
            LedgerCommand::PostWithRow { .. } => "PostWithRow",
            LedgerCommand::SettleRequest { .. } => "SettleRequest",
            LedgerCommand::Freeze { .. } => "Freeze",
            LedgerCommand::Unfreeze { .. } => "Unfreeze",
            LedgerCommand::TccTry { .. } => "TccTry",
            LedgerCommand::TccConfirm { .. } => "TccConfirm",
            LedgerCommand::TccCancel { .. } => "TccCancel",
        }
    }
}

/// The ledger's internal RPC: one command in, a reply or a refusal out. Taken only from the
/// platform's services (the payment nodes), known by their address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerCall(pub LedgerCommand);

impl Rpc for LedgerCall {
    type Response = Result<LedgerReply, LedgerError>;
    const TAG: u64 = 0x4c45_4447_0001;
}

/// The ledger's client API: a command with the client's credential, limited to what
/// [`super::access::authorize_client`] allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLedgerCall {
    pub credential: crate::auth::Credential,
    pub command: LedgerCommand,
}

impl Rpc for ClientLedgerCall {
    type Response = Result<LedgerReply, LedgerError>;
    const TAG: u64 = 0x4c45_4447_0002;
}

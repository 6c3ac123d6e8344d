//! What the checkers see: god's-eye snapshots of every ledger shard plus the clients' history.
//!
//! These are plain data, built by the harness from the platform's state. The checkers never
//! look at the platform itself, so they can be tested on hand-built observations.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which side of a voucher a leg or journal entry is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Side {
    Debit,
    Credit,
}

/// The accounting subject of an account: what kind of money it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Subject {
    /// A user's balance (liability): available and frozen must stay non-negative.
    User,
    /// A merchant's balance (liability): available and frozen must stay non-negative.
    Merchant,
    /// A transit account for money crossing shards; may be negative mid-flight.
    Transit,
    /// The outside world: the only place money enters or leaves; normally negative.
    World,
}

impl Subject {
    /// Customer-owned balances may never go below zero.
    pub fn must_stay_non_negative(self) -> bool {
        matches!(self, Subject::User | Subject::Merchant)
    }
}

/// Lower-case names, so that violation evidence reads the same as the documentation.
impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Subject::User => "user",
            Subject::Merchant => "merchant",
            Subject::Transit => "transit",
            Subject::World => "world",
        })
    }
}

/// One account as a shard holds it. Balances are credit-positive: a user who holds money
/// has a positive balance; the world account, which paid that money in, a negative one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    pub account: u64,
    pub subject: Subject,
    pub available: Decimal,
    pub frozen: Decimal,
}

/// One active freeze (reservation) of available funds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeState {
    pub key: String,
    pub account: u64,
    pub amount: Decimal,
}

/// One leg of a voucher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    pub account: u64,
    pub side: Side,
    pub amount: Decimal,
}

/// A posted voucher (记账凭证): the unit of a balanced money movement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherRecord {
    /// Unique across the whole platform (it names its shard).
    pub voucher: String,
    /// The business request that caused it; the idempotency key of the post.
    pub request: String,
    pub currency: String,
    pub legs: Vec<Leg>,
}

/// One journal entry (账务流水): one leg of one voucher applied to one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub seq: u64,
    pub voucher: String,
    pub account: u64,
    pub side: Side,
    pub amount: Decimal,
}

/// Everything one ledger shard holds, read at one simulated instant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSnapshot {
    pub shard: u32,
    pub accounts: Vec<AccountState>,
    pub freezes: Vec<FreezeState>,
    pub vouchers: Vec<VoucherRecord>,
    pub journal: Vec<JournalEntry>,
}

/// What a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OpKind {
    OpenAccount,
    /// Money enters from the world account: posts one voucher when it succeeds.
    Fund,
    /// Money moves between two accounts: posts one voucher when it succeeds.
    Transfer,
}

impl OpKind {
    /// Whether a successful operation of this kind posts exactly one voucher.
    pub fn posts_voucher(self) -> bool {
        matches!(self, OpKind::Fund | OpKind::Transfer)
    }
}

/// Lower-case names, so that violation evidence reads the same as the documentation.
impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpKind::OpenAccount => "open-account",
            OpKind::Fund => "fund",
            OpKind::Transfer => "transfer",
        })
    }
}

/// How an operation ended, as the client saw it. `Unknown` (a timeout) never means
/// "not applied": it means "applied at most once, and we do not know which".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Ok,
    Fail(String),
    Unknown,
}

/// Short forms ("ok", "fail: reason", "unknown") used in violation messages and evidence.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Fail(reason) => write!(f, "fail: {reason}"),
            Outcome::Unknown => f.write_str("unknown"),
        }
    }
}

/// One client operation, possibly sent several times under the same request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub client: u32,
    pub request: String,
    pub kind: OpKind,
    /// The amount the operation moves, when it moves money.
    pub amount: Option<Decimal>,
    /// Simulated milliseconds since the run started.
    pub invoke_ms: u64,
    pub complete_ms: u64,
    /// How many times the request was sent (1 = no retry).
    pub attempts: u32,
    pub outcome: Outcome,
}

/// The input of every checker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Simulated milliseconds at which the snapshots were read.
    pub at_ms: u64,
    pub shards: Vec<ShardSnapshot>,
    pub history: Vec<Operation>,
}

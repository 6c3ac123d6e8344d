//! What the checkers see: god's-eye snapshots of every ledger shard, every trade and every
//! activity (global transaction), plus the clients' history.
//!
//! These are plain data, built by the harness from the platform's state. The checkers never
//! look at the platform itself, so they can be tested on hand-built observations.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// An identifier (request, voucher, xid, trade, key): a string kept inline when it is short
/// (at most 24 bytes, which every id the platform makes is), so the checker's maps compare
/// and copy ids without a heap allocation each. Ordered, hashed and serialized as the string.
pub type Id = compact_str::CompactString;

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
    /// The platform's reserve at one bank (an asset, normally negative): money enters and
    /// leaves through it when the platform clears through banks.
    Reserve,
    /// Withdrawals or refunds to cards on their way to one bank: nets to zero once every one
    /// is settled.
    InTransit,
    /// Money at a bank that no channel order explains yet: zero at rest.
    Suspense,
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
            Subject::Reserve => "reserve",
            Subject::InTransit => "in-transit",
            Subject::Suspense => "suspense",
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

/// One active reservation on an account: a freeze of available funds (debit side), or a
/// prepared credit that is not yet visible in any balance (credit side).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeState {
    pub key: Id,
    pub account: u64,
    pub amount: Decimal,
    /// The global transaction (activity) that holds the reservation, if one does.
    pub xid: Option<Id>,
}

/// The state of a TCC fence row (Seata's rules, see `docs/DOMAIN.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FenceState {
    Tried,
    Committed,
    RolledBack,
    /// Written by a Cancel that found no Try (empty rollback); a later Try must be refused.
    Suspended,
}

/// One TCC fence row on a ledger shard: the state of branch `branch` of activity `xid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceRow {
    pub xid: Id,
    pub branch: u32,
    pub state: FenceState,
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
    pub voucher: Id,
    /// The business request that caused it; the idempotency key of the post.
    pub request: Id,
    pub currency: Id,
    pub legs: Vec<Leg>,
    /// The global transaction (activity) this voucher is one branch of, if any. Such vouchers
    /// are judged per activity (atomicity, trade-ledger agreement), not per client request.
    pub xid: Option<Id>,
    /// Which step of that movement it posts (or compensates), if any.
    #[serde(default)]
    pub step: Option<MovementStep>,
}

/// Which part of its movement a posting is: the step of leg `index`, or that step's
/// compensation (`undo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MovementStep {
    pub index: u32,
    pub undo: bool,
}

/// One journal entry (账务流水): one leg of one voucher applied to one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub seq: u64,
    pub voucher: Id,
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
    /// Prepared credits (a TCC Try on the receiving side): reserved, in no balance yet.
    pub prepared: Vec<FreezeState>,
    pub fences: Vec<FenceRow>,
}

/// A trade's status (交易状态). Its legal moves are the checker's own table,
/// [`crate::transitions::TRADE_EDGES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TradeStatus {
    WaitPay,
    Paying,
    Paid,
    PartiallyRefunded,
    Refunded,
    Closed,
}

/// Where a pay attempt or a refund of a trade stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AttemptStatus {
    Pending,
    Succeeded,
    Failed,
}

/// One attempt to pay a trade, under the buyer's idempotency key, carried out by activity `xid`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PayAttempt {
    pub key: Id,
    pub xid: Id,
    /// The buyer's account that pays.
    pub payer: u64,
    pub status: AttemptStatus,
}

/// One refund of a trade, unique by `out_request_no`, carried out by activity `xid`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RefundState {
    pub out_request_no: Id,
    pub xid: Id,
    pub amount: Decimal,
    pub status: AttemptStatus,
}

/// One trade as the trade service holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TradeState {
    pub trade: Id,
    /// The merchant's account, which a payment credits.
    pub merchant: u64,
    pub out_trade_no: Id,
    pub amount: Decimal,
    pub paid: Decimal,
    pub refunded: Decimal,
    /// Σ of the refunds still pending.
    pub refunding: Decimal,
    pub status: TradeStatus,
    /// Every status the trade has had, oldest first; the last is `status`.
    pub status_history: Vec<TradeStatus>,
    pub pays: Vec<PayAttempt>,
    pub refunds: Vec<RefundState>,
}

/// What an activity (a global transaction) does for the business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ActivityKind {
    Pay,
    Refund,
}

/// An activity's status in its manager's log. Its legal moves:
/// [`crate::transitions::ACTIVITY_EDGES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Begun; branches being tried; no decision yet.
    Running,
    /// The commit decision is logged; phase two (Confirm) under way.
    Committing,
    /// The rollback decision is logged; phase two (Cancel) under way.
    Aborting,
    Committed,
    Aborted,
    /// Phase two was refused by some branch: the branches ended differently.
    Heuristic,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Committed | Phase::Aborted | Phase::Heuristic)
    }
}

/// One leg of an activity's money movement: branch `branch`, on `shard`, debits or credits
/// `account` by `amount` (through that shard's transit account).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MovementLeg {
    pub branch: u32,
    pub shard: u32,
    pub account: u64,
    pub side: Side,
    pub amount: Decimal,
}

/// One activity as its manager's log holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ActivityState {
    pub xid: Id,
    /// The manager node that owns it.
    pub node: Id,
    pub kind: ActivityKind,
    /// The business idempotency key: the pay key, or the refund's out_request_no.
    pub key: Id,
    pub trade: Id,
    pub status: Phase,
    /// Every status it has had, oldest first; the last is `status`.
    pub status_history: Vec<Phase>,
    /// Empty until the movement is known (the trade answered); then one leg per branch.
    pub legs: Vec<MovementLeg>,
}

/// What a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OpKind {
    OpenAccount,
    /// Money enters from the world account: posts one voucher when it succeeds.
    Fund,
    /// Money moves between two accounts: posts one voucher when it succeeds.
    Transfer,
    /// A merchant creates a trade (idempotent by merchant + out_trade_no).
    CreateTrade,
    /// A buyer pays a trade (idempotent by the pay key, the operation's request).
    Pay,
    /// A merchant refunds part or all of a trade (idempotent by out_request_no, the request).
    Refund,
    /// Money leaves to the world account (a merchant's settlement): posts one voucher when it
    /// succeeds.
    Withdraw,
    /// A hostile client's attempt at something it may not do ([`Operation::attack`] says what
    /// and which refusal it must get).
    Attack,
}

impl OpKind {
    /// Whether a successful operation of this kind posts exactly one voucher.
    pub fn posts_voucher(self) -> bool {
        matches!(self, OpKind::Fund | OpKind::Transfer | OpKind::Withdraw)
    }
}

/// Lower-case names, so that violation evidence reads the same as the documentation.
impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpKind::OpenAccount => "open-account",
            OpKind::Fund => "fund",
            OpKind::Transfer => "transfer",
            OpKind::CreateTrade => "create-trade",
            OpKind::Pay => "pay",
            OpKind::Refund => "refund",
            OpKind::Withdraw => "withdraw",
            OpKind::Attack => "attack",
        })
    }
}

/// How an operation ended, as the client saw it. `Unknown` (a timeout) never means
/// "not applied": it means "applied at most once, and we do not know which".
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Ok,
    /// A definite refusal. Boxed: most outcomes are not refusals, and every operation holds
    /// one outcome and a list of replies (16 bytes each instead of 48).
    Fail(Box<Refusal>),
    Unknown,
}

/// What a refusal said. Serialized as `Outcome::Fail`'s fields were before it was boxed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The platform's stable refusal code (kebab-case, e.g. `insufficient-funds`): the answer
    /// a checker compares.
    pub code: String,
    /// The sentence for people (amounts, ids); a repeat may word it differently, so no checker
    /// compares it.
    pub detail: String,
}

impl Outcome {
    /// A refusal with its code and its detail.
    pub fn fail(code: impl Into<String>, detail: impl Into<String>) -> Self {
        Outcome::Fail(Box::new(Refusal {
            code: code.into(),
            detail: detail.into(),
        }))
    }

    /// The refusal code of a failure, `None` for ok and unknown.
    pub fn code(&self) -> Option<&str> {
        match self {
            Outcome::Fail(r) => Some(&r.code),
            Outcome::Ok | Outcome::Unknown => None,
        }
    }

    /// Whether two outcomes give the same answer: both ok, both unknown, or both refused with
    /// the same code. Details are never compared: they are for people.
    pub fn same_answer(&self, other: &Outcome) -> bool {
        match (self, other) {
            (Outcome::Ok, Outcome::Ok) | (Outcome::Unknown, Outcome::Unknown) => true,
            (Outcome::Fail(a), Outcome::Fail(b)) => a.code == b.code,
            _ => false,
        }
    }
}

/// Written as a struct variant (`Fail { code: .., detail: .. }`), as it was before the refusal
/// was boxed: traces record it, and a trace's hash must not move with the representation.
impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("Ok"),
            Outcome::Fail(r) => f
                .debug_struct("Fail")
                .field("code", &r.code)
                .field("detail", &r.detail)
                .finish(),
            Outcome::Unknown => f.write_str("Unknown"),
        }
    }
}

/// Short forms ("ok", "fail: code: detail", "unknown") used in violation messages and
/// evidence; the detail is shown so that a person can read why.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Fail(r) => write!(f, "fail: {}: {}", r.code, r.detail),
            Outcome::Unknown => f.write_str("unknown"),
        }
    }
}

/// One client operation, possibly sent several times under the same request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub client: u32,
    pub request: Id,
    pub kind: OpKind,
    /// The amount the operation moves, when it moves money.
    pub amount: Option<Decimal>,
    /// Simulated milliseconds since the run started.
    pub invoke_ms: u64,
    pub complete_ms: u64,
    /// How many times the request was sent (1 = no retry).
    pub attempts: u32,
    pub outcome: Outcome,
    /// The trade the operation is about, if any.
    pub trade: Option<Id>,
    /// Every definite reply (ok or fail) the client received for this request, in order,
    /// including re-asks after the first: an idempotent platform gives the same one each time.
    pub replies: Vec<Outcome>,
    /// For a hostile attempt ([`OpKind::Attack`]): what it tried and the refusal it must get.
    /// Boxed: few operations are attacks, and every operation would carry its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack: Option<Box<Attack>>,
}

/// What a hostile client tried, and the refusal code the platform must answer it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attack {
    /// The attack's name (e.g. `pay-from-another`).
    pub name: String,
    /// The refusal code it must get (e.g. `unauthorized`), or [`Attack::ANY_REFUSAL`] for an
    /// attempt that must fail but may fail for more than one reason (an overdraft may also be
    /// aborted by a fault before its balance is read).
    pub expect: String,
    /// The account it tried to take money from, if it aimed at one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victim: Option<u64>,
}

impl Attack {
    /// [`Attack::expect`] for "any refusal".
    pub const ANY_REFUSAL: &'static str = "refused";

    /// Whether `code` is an answer the attempt may get.
    pub fn accepts(&self, code: &str) -> bool {
        self.expect == Self::ANY_REFUSAL || self.expect == code
    }
}

/// The input of every checker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Simulated milliseconds at which the snapshots were read.
    pub at_ms: u64,
    pub shards: Vec<ShardSnapshot>,
    pub trades: Vec<TradeState>,
    pub activities: Vec<ActivityState>,
    /// Shared with the harness's history (an observation does not copy the operations).
    pub history: Vec<Arc<Operation>>,
    /// The message layer: trade events, their consumers, replicas and notifications.
    pub messages: MessageSnapshot,
    /// Work still in flight, for the liveness checker ([`crate::liveness`]).
    #[serde(default)]
    pub progress: Progress,
    /// Who owns which customer account, as the platform registered it (the clients'
    /// registration, not any shard's word): what [`crate::authorization`] judges debits by.
    /// Accounts not listed belong to the platform. `None`: no registration is known (a
    /// hand-built observation of another family), and postings are not judged by owner.
    #[serde(default)]
    pub owners: Option<BTreeMap<u64, Owner>>,
    /// The clearing layer, read at rest: the gateway's channel orders and every bank's books
    /// (empty without banks).
    #[serde(default)]
    pub clearing: ClearingSnapshot,
    /// What only some strategies keep, read at rest: the 2PC participants' lock history and
    /// the saga logs (empty under the other strategies).
    #[serde(default)]
    pub strategy: StrategySnapshot,
}

/// The strategy-specific part of an observation, read at rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategySnapshot {
    /// Every lock a locking (2PC) participant took or released, in each shard's log order.
    pub locks: Vec<LockEvent>,
    /// Every saga in every saga log, as the log says it stands.
    pub sagas: Vec<SagaLogEntry>,
}

/// A prepared branch taking (`acquire`) or releasing the lock on its account, at position
/// `seq` of its shard's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEvent {
    pub shard: u32,
    pub seq: u64,
    pub account: u64,
    pub xid: String,
    pub branch: u32,
    pub acquire: bool,
}

/// One saga as its coordinator's log holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaLogEntry {
    /// The payment node whose log it is.
    pub node: String,
    pub xid: String,
    /// How many steps (legs) it has.
    pub steps: u32,
    /// The step that was refused, if one was (steps before it must be compensated).
    pub failed: Option<u32>,
    /// How it ended, if it has.
    pub end: Option<SagaEnd>,
}

/// How a saga's log says it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SagaEnd {
    /// Every step done.
    Completed,
    /// Every done step compensated.
    Compensated,
    /// A compensation was refused.
    Heuristic,
}

/// The clearing layer as the checkers read it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearingSnapshot {
    pub orders: Vec<ChannelOrderState>,
    pub banks: Vec<BankState>,
    /// The chart of accounts' clearing part: each reserve and in-transit sub-account of the
    /// ledger and the bank it belongs to (the platform's registration, like `owners`).
    pub reserve_accounts: BTreeMap<u64, u32>,
    /// Withdrawals' and refunds' in-transit sub-accounts.
    pub transit_accounts: BTreeMap<u64, u32>,
    /// Suspense sub-accounts (money at a bank no channel order explains yet).
    #[serde(default)]
    pub suspense_accounts: BTreeMap<u64, u32>,
    /// Reconciliation's cursor: the next bank date it will reconcile, per bank.
    #[serde(default)]
    pub reconciled: BTreeMap<u32, u32>,
}

/// What a channel order does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FundKind {
    Deposit,
    Withdrawal,
    /// A refund of a card-paid trade, paid out to the card (as a withdrawal).
    RefundToCard,
    /// The treasury's transfer from the reserve at the order's bank to the one at `to`.
    Transfer {
        to: u32,
    },
}

impl FundKind {
    /// Whether the order holds its money in transit first and pays out (a bank credit).
    pub fn pays_out(self) -> bool {
        matches!(self, FundKind::Withdrawal | FundKind::RefundToCard)
    }
}

/// A channel order's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ChannelStatus {
    Init,
    Sent,
    Success,
    Fail,
    Unknown,
}

/// One channel order at the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelOrderState {
    pub instr: String,
    /// The client's key: the ledger request of the order's first posting.
    pub key: String,
    pub client: u32,
    pub kind: FundKind,
    pub account: u64,
    pub bank: u32,
    pub amount: Decimal,
    pub status: ChannelStatus,
    pub history: Vec<ChannelStatus>,
    /// A withdrawal's hold is posted.
    pub held: bool,
    /// Its final posting is made.
    pub settled: bool,
    /// Reconciliation posted a correction (`clr:<key>:recon`): its status disagreed with the
    /// bank's.
    #[serde(default)]
    pub corrected: bool,
    /// Why it failed: `bank:<reason>` or `hold:<refusal code>`.
    pub fail: Option<String>,
}

/// An instruction's status at its bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BankStatus {
    Processing,
    Success,
    Fail,
}

/// One instruction at a bank: `debit` pulls from a card into the reserve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankInstruction {
    pub instr: String,
    pub debit: bool,
    pub card: u64,
    pub amount: Decimal,
    pub status: BankStatus,
    /// The bank date it was carried out on (a bounce keeps it).
    #[serde(default)]
    pub date: Option<u32>,
}

/// One line of a bank's statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLineState {
    pub date: u32,
    pub instr: String,
    pub debit: bool,
    pub amount: Decimal,
}

/// One bank's books.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankState {
    pub bank: u32,
    /// What the bank owes the platform.
    pub reserve: Decimal,
    /// Σ of its cards' balances, and of their opening balances (the only money it creates).
    pub cards: Decimal,
    pub openings: Decimal,
    pub instructions: Vec<BankInstruction>,
    pub lines: Vec<StatementLineState>,
    /// The last bank date on which an instruction was carried out (a bounce keeps its date).
    #[serde(default)]
    pub last_date: Option<u32>,
    /// Σ of the transfers (内转) this bank sent to other banks, and received from them.
    #[serde(default)]
    pub sent: Decimal,
    #[serde(default)]
    pub received: Decimal,
    /// Transfers sent and not yet acknowledged by their receiving bank.
    #[serde(default)]
    pub undelivered: Vec<String>,
}

/// The registered owner of a customer account and the subject it was registered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub client: u32,
    pub subject: Subject,
}

/// What a trade event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventKind {
    Paid,
    Refunded,
    Closed,
}

/// One trade event as its trade shard durably committed it (or, for an event found in the
/// broker or a consumer, as its payload says).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventState {
    /// The business id consumers deduplicate by, e.g. `T0-3:v2:refunded:R1`.
    pub id: String,
    pub trade: String,
    /// The trade's event count after this event (1 for its first event).
    pub version: u32,
    pub kind: EventKind,
    /// The trade's state right after the change.
    pub status: TradeStatus,
    pub merchant: u64,
    pub payer: Option<u64>,
    pub paid: Decimal,
    pub refunded: Decimal,
    /// For a refund event: its out_request_no and amount.
    pub refund: Option<(String, Decimal)>,
}

/// What one consumer group of the trade-events topic did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// Event ids the group durably consumed (its dedup table), each with the number of times it
    /// was processed with an effect (more than 1 only when deduplication is broken).
    pub consumed: BTreeMap<String, u32>,
    /// Event ids in the group's dead-letter queue.
    pub dead_lettered: Vec<String>,
}

/// One row of the consumer-record replica (消费记录): a buyer's record of a payment or refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumptionRecord {
    /// The event the row was made from.
    pub event: String,
    pub trade: String,
    pub buyer: u64,
    pub merchant: u64,
    /// Paid: the trade amount; refunded: the refund's amount.
    pub amount: Decimal,
    pub kind: EventKind,
}

/// One row of the merchant-query replica (商户查询), or one write of it in its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantRow {
    pub trade: String,
    pub merchant: u64,
    pub status: TradeStatus,
    pub paid: Decimal,
    pub refunded: Decimal,
    /// The version of the event the row was last written from.
    pub version: u32,
}

/// Where a merchant notification (最大努力通知) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NotificationStatus {
    /// More attempts are scheduled.
    Pending,
    /// The merchant answered "success" to the last attempt.
    Acknowledged,
    /// Every attempt of the schedule was made and none was acknowledged; recorded as given up.
    Exhausted,
}

/// One event's merchant notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationState {
    pub event: String,
    pub status: NotificationStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts the schedule allows (8 on Alipay's schedule).
    pub max_attempts: u32,
}

/// One callback the simulated merchant endpoint received and acknowledged, with the trade's
/// true status as the merchant query API answered it right after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackState {
    pub event: String,
    pub trade: String,
    /// The status the callback announced.
    pub notified: TradeStatus,
    /// The status the query API answered (none if the query failed).
    pub queried: Option<TradeStatus>,
}

/// The message layer at one instant. Every list is empty (and `enabled` false) in a run
/// without one; the message checkers then have nothing to say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSnapshot {
    pub enabled: bool,
    /// Every event the trade shards durably committed, by id.
    pub committed: BTreeMap<String, EventState>,
    /// Every event published on the trade-events topic (visible to consumers), by id, with the
    /// number of messages that carry it.
    pub published: BTreeMap<String, u32>,
    /// Events whose half messages the broker discarded undecided after its last check-back
    /// (mode 2), by id, with the number of such halves: evidence of why an event never arrived.
    #[serde(default)]
    pub discarded: BTreeMap<String, u32>,
    /// Payloads of events found in the broker that no trade shard committed, by id, as
    /// evidence about them (a committed event's payload is in `committed`, and only there).
    pub seen: BTreeMap<String, EventState>,
    /// The consumer groups subscribed to the trade-events topic.
    pub groups: BTreeMap<String, GroupState>,
    /// The consumer-record replica's rows, in the order they were written.
    pub consumer_records: Vec<ConsumptionRecord>,
    /// The merchant-query replica's rows, by trade.
    pub merchant_rows: BTreeMap<String, MerchantRow>,
    /// Every write of the merchant-query replica, in order (its durable log).
    pub merchant_history: Vec<MerchantRow>,
    /// Merchant notifications, by event id.
    pub notifications: BTreeMap<String, NotificationState>,
    /// Callbacks the merchant endpoint acknowledged, in arrival order.
    pub callbacks: Vec<CallbackState>,
}

// ---- Progress: what is still unfinished or settling (for liveness) -----------------------

/// One payment order (a pay or a refund request the payment node took on) and whether it has
/// ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    /// The payment node that owns it, e.g. `payment/1`.
    pub node: String,
    pub key: String,
    pub xid: String,
    pub trade: String,
    /// Whether the order reached its outcome.
    pub ended: bool,
}

/// A half message (mode 2) the broker holds undecided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HalfPending {
    pub half: String,
    pub topic: String,
}

/// A redelivery the broker has scheduled for a consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryScheduled {
    pub message: String,
    pub group: String,
    pub attempt: u32,
}

/// A queue a clustering consumer group has not committed to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLag {
    pub group: String,
    pub topic: String,
    pub queue: u32,
    pub committed: u64,
    pub end: u64,
}

/// An outbox row (mode 1) its trade node has not yet had acknowledged by the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsentRow {
    /// The trade node that holds it, e.g. `trade/0`.
    pub node: String,
    pub event: String,
}

/// The work in flight that no other part of the observation shows: the liveness checker reads
/// it together with the activities, the trades' attempts and the notifications.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Serving nodes that are down at the instant of the observation.
    pub down: Vec<String>,
    pub orders: Vec<OrderState>,
    pub halves: Vec<HalfPending>,
    pub retries: Vec<RetryScheduled>,
    pub lag: Vec<QueueLag>,
    pub unsent: Vec<UnsentRow>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Boxing the refusal moved neither form a run leaves behind: traces hash the debug form,
    /// and saved failure reports hold the JSON one.
    #[test]
    fn a_refusal_keeps_its_debug_and_json_forms() {
        let fail = Outcome::fail("insufficient-funds", "needs 5.00");
        assert_eq!(
            format!("{fail:?}"),
            r#"Fail { code: "insufficient-funds", detail: "needs 5.00" }"#
        );
        let json = r#"{"Fail":{"code":"insufficient-funds","detail":"needs 5.00"}}"#;
        assert_eq!(serde_json::to_string(&fail).unwrap(), json);
        assert_eq!(serde_json::from_str::<Outcome>(json).unwrap(), fail);
        assert_eq!(
            format!("{:?}", [Outcome::Ok, Outcome::Unknown]),
            "[Ok, Unknown]"
        );
        assert_eq!(std::mem::size_of::<Outcome>(), 16);
    }
}

//! A simulated bank's vocabulary: instructions, their statuses, statement lines, the calls
//! the gateway makes and the notifications the bank sends back.

use crate::ids::InstrId;
use crate::money::Amount;
use crate::transport::Rpc;
use serde::{Deserialize, Serialize};

/// Which way an instruction moves money at the bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Pull from a card into the platform's reserve (a deposit, 充值).
    Debit,
    /// Pay out of the platform's reserve onto a card (a withdrawal, 提现).
    Credit,
    /// Move part of the platform's reserve here to its reserve at another bank (内转): the
    /// bank sends it through the interbank system and the other bank credits it.
    TransferOut,
    /// The other side of a [`Direction::TransferOut`]: a transfer arrived from another bank
    /// (not an instruction the platform sends; it is listed on this bank's statement).
    TransferIn,
}

impl Direction {
    /// Whether the movement adds to the platform's reserve at this bank.
    pub fn into_reserve(self) -> bool {
        matches!(self, Direction::Debit | Direction::TransferIn)
    }
}

/// One instruction from the platform's gateway, idempotent by `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instruction {
    pub id: InstrId,
    pub direction: Direction,
    /// The card (a user's card number at this bank; 0 for a transfer).
    pub card: u64,
    pub amount: Amount,
    /// A transfer's receiving bank.
    #[serde(default)]
    pub to_bank: Option<u32>,
}

/// Why a bank refused an instruction for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FailReason {
    /// The card's balance is below the amount (a debit).
    NoFunds,
    /// The card is closed.
    CardClosed,
    /// The platform's reserve at the bank is below the amount (a credit).
    ReserveShort,
    /// The bank's own checks refused it (risk control, a payee that does not match).
    Rejected,
    /// A payout the bank carried out came back the same bank day (退票): the money is back in
    /// the platform's reserve and the day's statement does not list it.
    Bounced,
}

/// Where an instruction stands at its bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum InstrStatus {
    /// Accepted, not decided yet: the bank decides it later and notifies.
    Processing,
    /// Done: the money moved, and the bank date's statement lists it.
    Success,
    /// Refused for good: nothing moved.
    Fail(FailReason),
}

impl InstrStatus {
    pub fn is_final(self) -> bool {
        self != InstrStatus::Processing
    }
}

/// One line of a bank's daily statement (对账单): a movement of the platform's reserve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    /// The bank date the movement belongs to (the bank's own day count).
    pub date: u32,
    pub instr: InstrId,
    pub direction: Direction,
    pub card: u64,
    pub amount: Amount,
}

/// What the gateway asks a bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BankCommand {
    /// Carry out an instruction (a repeat answers with where it stands).
    Submit(Instruction),
    /// Where instruction `id` stands.
    Query(InstrId),
    /// Every line of bank date `date`, once that day is closed and its statement published.
    Statement { date: u32 },
}

/// A statement: the lines of one bank date, and the platform's reserve balance at the end of
/// that date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub lines: Vec<StatementLine>,
    pub closing: rust_decimal::Decimal,
}

/// A bank's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BankReply {
    Status(InstrStatus),
    /// No instruction with that id ever reached the bank.
    NotFound,
    Statement(Statement),
    /// The date's statement is not published yet.
    NotYet,
}

/// A bank's refusal of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum BankError {
    #[error("instruction {0} was already submitted with another body")]
    Mismatch(InstrId),
    #[error("{0} is not the platform's gateway")]
    Unauthorized(String),
}

/// The gateway's call to a bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankCall(pub BankCommand);

impl Rpc for BankCall {
    type Response = Result<BankReply, BankError>;
    const TAG: u64 = 0x4241_4e4b_0001;
}

/// A bank's asynchronous notification of an instruction's final status to the gateway (late,
/// sometimes twice, never retried: the gateway's queries are what make it certain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankNotifyCall {
    pub bank: u32,
    pub instr: InstrId,
    pub status: InstrStatus,
}

impl Rpc for BankNotifyCall {
    type Response = ();
    const TAG: u64 = 0x4241_4e4b_0002;
}

/// A transfer (内转) arriving from another bank through the interbank system; delivered until
/// acknowledged, taken once by `instr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterbankCall {
    pub from_bank: u32,
    pub instr: InstrId,
    pub amount: Amount,
}

impl Rpc for InterbankCall {
    type Response = Result<(), BankError>;
    const TAG: u64 = 0x4241_4e4b_0003;
}

/// How a bank behaves: what the run configures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BankBehaviour {
    /// The share of instructions answered PROCESSING first and decided later.
    pub processing_rate: f64,
    /// How long a PROCESSING instruction takes (simulated ms, drawn uniformly).
    pub processing_ms: (u64, u64),
    /// How late a notification is sent (simulated ms, drawn uniformly).
    pub notify_delay_ms: (u64, u64),
    /// The share of notifications sent twice.
    pub notify_twice_rate: f64,
    /// The share of instructions the bank's own checks refuse for good.
    pub reject_rate: f64,
    /// The share of successful payouts that bounce later the same bank day.
    pub bounce_rate: f64,
    /// The length of a bank day in simulated ms; date `d` runs from `d * day_ms`.
    pub day_ms: u64,
    /// How long after its day ends a statement is published.
    pub statement_lag_ms: u64,
}

/// What a bank node is told at start: which bank it is and who its gateway is.
#[derive(Debug, Clone, PartialEq)]
pub struct BankConfig {
    pub bank: u32,
    pub fsync_latency: std::time::Duration,
    /// The platform's gateway: the only caller of [`BankCall`] and where notifications go.
    pub gateway: std::net::SocketAddr,
    /// Who else may query instructions and fetch statements (reconciliation).
    pub readers: Vec<std::net::SocketAddr>,
    /// Every bank, bank `b` at index `b`: where transfers go, and the only senders of
    /// [`InterbankCall`]s.
    pub peers: Vec<std::net::SocketAddr>,
    pub behaviour: BankBehaviour,
}

/// The simulation's bank behaviour: a fifth of instructions processed late, 3 % refused by
/// the bank's own checks, 5 % of payouts bounced later the same day, notifications 20 ms–1.5 s
/// late and one in ten sent twice, a bank day of 10 simulated seconds.
pub const SIMULATION_BANK: BankBehaviour = BankBehaviour {
    processing_rate: 0.2,
    processing_ms: (200, 3_000),
    notify_delay_ms: (20, 1_500),
    notify_twice_rate: 0.1,
    reject_rate: 0.03,
    bounce_rate: 0.05,
    day_ms: 10_000,
    statement_lag_ms: 2_000,
};

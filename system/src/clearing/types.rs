//! Clearing's vocabulary: channel orders, their statuses and legal edges, the postings each
//! kind makes, and the payment nodes' call to the gateway.

use crate::bank::FailReason;
use crate::ids::{AccountId, InstrId, RequestId, ShardId};
use crate::ledger::Leg;
use crate::money::Amount;
use crate::refusal::{Refusal, RefusalCode};
use crate::transport::Rpc;
use serde::{Deserialize, Serialize};

/// What a channel order does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OrderKind {
    /// 充值: pull from the user's card; on success Dr reserve / Cr user.
    Deposit,
    /// 提现: Dr user / Cr in-transit first; pay out to the card; on success Dr in-transit /
    /// Cr reserve, on a definitive failure Dr in-transit / Cr user (the money comes back).
    Withdrawal,
    /// 充退: a refund of a trade paid by card, back to that card. As a withdrawal, through the
    /// refund in-transit account: Dr payer / Cr refund-in-transit first, then paid out.
    RefundToCard,
    /// 内转: the platform's treasury moves part of its reserve at the order's bank to its
    /// reserve at bank `to` (the bank sends it through the interbank system). Nothing is held;
    /// on success Dr reserve at `to` / Cr reserve at the order's bank.
    Transfer { to: u32 },
}

impl OrderKind {
    /// Whether the order holds its money in transit before anything is sent (and pays out).
    pub fn holds(self) -> bool {
        matches!(self, OrderKind::Withdrawal | OrderKind::RefundToCard)
    }
}

/// Where a channel order stands (INIT → SENT → SUCCESS / FAIL / UNKNOWN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Durable, not sent yet (a withdrawal holds its money first).
    Init,
    /// Durable before the instruction leaves: the bank may have it.
    Sent,
    Success,
    /// Final: the bank refused for good, or the withdrawal's hold was refused.
    Fail,
    /// The bank's answer was lost or late: resolved by query, notification or statement,
    /// never read as a failure.
    Unknown,
}

impl OrderStatus {
    pub fn is_final(self) -> bool {
        matches!(self, OrderStatus::Success | OrderStatus::Fail)
    }

    /// The legal edges of a channel order (asserted by the core, checked by the checker).
    pub fn may_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Init, Sent)
                | (Init, Fail)
                | (Sent, Success)
                | (Sent, Fail)
                | (Sent, Unknown)
                | (Unknown, Success)
                | (Unknown, Fail)
                | (Unknown, Sent)
        )
    }
}

/// Why an order failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailCause {
    /// The bank refused the instruction for good.
    Bank(FailReason),
    /// The ledger refused the withdrawal's hold (insufficient funds, say): nothing was sent.
    Hold(RefusalCode),
    /// No answer in time, read as a failure: only the planted `unknown-treated-as-fail` and
    /// `withdrawal-reversed-on-timeout` do that.
    TimedOut,
}

/// A channel order (渠道订单): one instruction to one bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelOrder {
    pub instr: InstrId,
    /// The client's idempotency key (also the ledger request of its first posting).
    pub key: String,
    pub client: u32,
    pub kind: OrderKind,
    pub account: AccountId,
    pub bank: u32,
    pub card: u64,
    pub amount: Amount,
    pub status: OrderStatus,
    pub history: Vec<OrderStatus>,
    pub fail: Option<FailCause>,
    /// A withdrawal's hold (Dr user / Cr in-transit) is posted.
    pub held: bool,
    /// The order's final posting is made (nothing to post counts as made).
    pub settled: bool,
    /// Reconciliation found its final status at odds with the bank's and posted the
    /// correction (`clr:<key>:recon`).
    #[serde(default)]
    pub corrected: bool,
}

impl ChannelOrder {
    /// A new order, INIT, of `amount` on `account` at `bank` (its card there, 0 for none).
    pub fn new(
        key: String,
        client: u32,
        kind: OrderKind,
        (account, bank, card): (AccountId, u32, u64),
        amount: Amount,
    ) -> Self {
        ChannelOrder {
            instr: instr_of(&key),
            key,
            client,
            kind,
            account,
            bank,
            card,
            amount,
            status: OrderStatus::Init,
            history: vec![OrderStatus::Init],
            fail: None,
            held: false,
            settled: false,
            corrected: false,
        }
    }

    /// The ledger request of the order's last posting, if its outcome needs one: a deposit's
    /// credit is the client's own request; a withdrawal's settlement or reversal is the
    /// platform's (`clr:` requests, judged by the clearing checker).
    pub fn final_request(&self) -> Option<RequestId> {
        match (self.kind, self.status) {
            (OrderKind::Deposit, OrderStatus::Success) => Some(RequestId::new(self.key.as_str())),
            (kind, OrderStatus::Success) if kind.holds() => Some(settle_request(&self.key)),
            (OrderKind::Transfer { .. }, OrderStatus::Success) => Some(settle_request(&self.key)),
            (kind, OrderStatus::Fail) if kind.holds() && self.held => {
                Some(reverse_request(&self.key))
            }
            _ => None,
        }
    }
}

/// The prefix of the platform's clearing postings' requests.
pub const CLEARING_PREFIX: &str = "clr:";

/// The request of holding statement line `instr` in suspense (`release`: of taking it out).
pub fn suspense_request(instr: &InstrId, release: bool) -> RequestId {
    let tag = instr.to_string().replace(':', "~");
    let what = if release { ":release" } else { "" };
    RequestId::new(compact_str::format_compact!(
        "{CLEARING_PREFIX}suspense-{tag}{what}"
    ))
}

/// The `client` of the orders the platform's treasury opens (transfers between reserves).
pub const PLATFORM_CLIENT: u32 = u32::MAX;

/// The key of the treasury's transfer after bank date `date` (one per date at most).
pub fn transfer_key(date: u32) -> String {
    format!("{CLEARING_PREFIX}xfer-{date}")
}

/// The key of an order the platform opens itself, on behalf of a client's request
/// `of` (`clr:<of>.<what>`): a card payment's deposit (`card`), a refund's payout to the card
/// (`tocard`). Its first posting's request is the key itself, so the checkers find it under
/// the clearing prefix and trace it to the client's request.
pub fn platform_key(of: &str, what: &str) -> String {
    format!("{CLEARING_PREFIX}{of}.{what}")
}

/// The request of the order's posting `what` (`clr:<key>:<what>`; a platform key keeps its
/// one prefix).
pub fn clearing_request(key: &str, what: &str) -> RequestId {
    let key = key.strip_prefix(CLEARING_PREFIX).unwrap_or(key);
    RequestId::new(compact_str::format_compact!(
        "{CLEARING_PREFIX}{key}:{what}"
    ))
}

pub fn settle_request(key: &str) -> RequestId {
    clearing_request(key, "settle")
}

pub fn recon_request(key: &str) -> RequestId {
    clearing_request(key, "recon")
}

pub fn reverse_request(key: &str) -> RequestId {
    clearing_request(key, "reverse")
}

/// The instruction id of the client's key.
pub fn instr_of(key: &str) -> InstrId {
    InstrId::new(compact_str::format_compact!("i:{key}"))
}

/// The legs of a posting on the account's shard: `from` debited, `to` credited.
pub fn legs(from: AccountId, to: AccountId, amount: Amount) -> Vec<Leg> {
    vec![Leg::debit(from, amount), Leg::credit(to, amount)]
}

/// The bank of a customer account and its card there: accounts are spread over the banks by
/// id, and the account's id is its card number at its bank.
pub fn bank_of(account: AccountId, banks: u32) -> (u32, u64) {
    assert!(banks > 0, "clearing needs a bank");
    ((account.0 % u64::from(banks)) as u32, account.0)
}

/// The clearing accounts of an order of `kind` at `bank` on `shard`: (reserve, its
/// in-transit account: the withdrawals' or the refunds'; for a transfer, the receiving
/// bank's reserve).
pub fn clearing_accounts(
    kind: OrderKind,
    bank: u32,
    shard: ShardId,
    shards: u32,
) -> (AccountId, AccountId) {
    let transit = match kind {
        OrderKind::RefundToCard => AccountId::refund_transit(bank, shard, shards),
        OrderKind::Transfer { to } => AccountId::reserve(to, shard, shards),
        _ => AccountId::in_transit(bank, shard, shards),
    };
    (AccountId::reserve(bank, shard, shards), transit)
}

/// What a payment node asks the gateway on behalf of an authorized client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundRequest {
    pub client: u32,
    pub key: String,
    pub kind: OrderKind,
    pub account: AccountId,
    pub amount: Amount,
}

/// The gateway's answer: done (a deposit credited, a withdrawal accepted with its money held),
/// or not yet (ask again under the same key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FundReply {
    Done,
    Pending,
}

/// The payment nodes' call to the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearingCall(pub FundRequest);

impl Rpc for ClearingCall {
    type Response = Result<FundReply, Refusal>;
    const TAG: u64 = 0x434c_5247_0001;
}

/// One order as reconciliation sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub instr: InstrId,
    pub kind: OrderKind,
    pub amount: Amount,
    pub status: OrderStatus,
    pub corrected: bool,
}

/// What reconciliation asks the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReconCommand {
    /// The orders of these instructions (those the gateway has).
    Lookup(Vec<InstrId>),
    /// A bank's successful orders: the current views of `recheck` (successful orders the
    /// caller read before and still follows), then the orders that succeeded from position
    /// `from` of the list of gateway incarnation `boot`. If `boot` is not the gateway's
    /// current incarnation (a crash may have taken back, and so reordered, the list's tail),
    /// the whole list instead.
    Succeeded {
        bank: u32,
        boot: Option<u64>,
        from: u64,
        recheck: Vec<InstrId>,
    },
    /// The bank's statement of `date` lists the instruction as carried out while the order is
    /// not final: take the statement's word (resolved by statement).
    Resolve { instr: InstrId, date: u32 },
    /// The order's final status is at odds with the bank's (`bank_success`: whether the bank
    /// carried it out): post the correction, once.
    Correct { instr: InstrId, bank_success: bool },
    /// A statement line no order explains (长款 with no order): hold its money in suspense
    /// (挂账) so that the reserve agrees with the bank, until an order explains it; or, with
    /// `release`, its order turned up: take it out of suspense again.
    Suspense {
        instr: InstrId,
        bank: u32,
        amount: Amount,
        into_reserve: bool,
        release: bool,
    },
    /// The treasury's transfer (内转) of `amount` from the reserve at bank `from` to the one at
    /// bank `to`, idempotent by `key`.
    Transfer {
        key: String,
        from: u32,
        to: u32,
        amount: Amount,
    },
}

/// The gateway's answer to reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReconReply {
    Orders(Vec<OrderView>),
    /// The answer to `Succeeded`: the gateway's incarnation, where the listed orders start in
    /// its list of the bank's successes (0: the whole list, the rechecked ones not apart),
    /// where the list ends, and the orders (the rechecked ones first).
    Successes {
        boot: u64,
        from: u64,
        next: u64,
        orders: Vec<OrderView>,
    },
    Done,
    /// Nothing to do: the order is not at odds with the bank (any more).
    Nothing,
}

/// Reconciliation's call to the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconCall(pub ReconCommand);

impl Rpc for ReconCall {
    type Response = Result<ReconReply, Refusal>;
    const TAG: u64 = 0x434c_5247_0002;
}

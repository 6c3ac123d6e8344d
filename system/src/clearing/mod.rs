//! Clearing (支付清算) through the bank gateway (银行网关): channel orders, one per bank
//! instruction, for deposits (充值) and withdrawals (提现); statuses INIT → SENT → SUCCESS /
//! FAIL / UNKNOWN along legal edges, each durable before the instruction leaves; a timeout is
//! UNKNOWN, resolved by query with backoff or by the bank's notification, never read as a
//! failure; the postings on the platform's reserve and in-transit accounts per bank.

pub mod core;
pub mod node;
pub mod types;

pub use self::core::{Admission, ClearingCore, ClearingRecord};
pub use node::{ClearingConfig, ClearingNode};
pub use types::{
    bank_of, clearing_accounts, clearing_request, instr_of, platform_key, recon_request,
    reverse_request, settle_request, transfer_key, ChannelOrder, ClearingCall, FailCause,
    FundReply, FundRequest, OrderKind, OrderStatus, OrderView, ReconCall, ReconCommand, ReconReply,
    CLEARING_PREFIX, PLATFORM_CLIENT,
};

//! The trade service (交易), sharded by trade id.
//!
//! - [`types`]: trade ids, statuses and their legal edges, pay attempts, refunds, the RPC.
//! - [`core`]: one trade shard's deterministic state machine (decide → record → apply).
//! - [`events`]: the events a committed trade change publishes (paid, refunded, closed), their
//!   ids and versions, and the two message modes (outbox, half messages).
//! - [`node`]: the node shell: RPC, durable log, recovery, the timer that closes unpaid trades.
//! - `outbox` (mode 1): the runtime of the [`crate::producer::outbox`] engine (relay,
//!   resender) on the trade node.
//! - `txmsg` (mode 2): the runtime of the [`crate::producer::halfmsg`] engine: changes made
//!   under half messages, and the check-back answers.
//!
//! A trade is unique per (merchant, out_trade_no) because the pair decides its shard. It is
//! paid by at most one pay attempt at a time (WAIT_PAY → PAYING), and every pay key and refund
//! number is pinned to its activity and outcome, so retries and late duplicates get the same
//! answer and can never start a second movement of money.

pub mod core;
pub mod events;
pub mod node;
mod outbox;
mod txmsg;
pub mod types;

pub use self::core::{TradeCore, TradeDecision, TradeRecord};
pub use events::{
    MessageMode, TradeEvent, TradeEventKind, TRADE_EVENTS_QUEUES, TRADE_EVENTS_TOPIC,
};
pub use node::{TradeConfig, TradeMessaging, TradeNode};
pub use types::*;

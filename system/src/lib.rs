//! paylab's simulated payment platform.
//!
//! Each service is a deterministic core (pure state + decisions) inside a thin node shell that
//! does RPC, persistence and timers. The infrastructure every service shares:
//!
//! - [`money`]: `Amount` (CNY, scale 2, validated) and money errors.
//! - [`ids`]: typed ids for accounts, shards, requests and vouchers.
//! - [`transport`]: typed RPC over madsim datagrams with timeouts, retries and fault hooks.
//! - [`disk`] and [`log`]: the simulated disk (synced / unsynced, power loss, torn tail) and a
//!   checksummed record log on it; [`durability`]: the evidence of a sync that returned
//!   before what it promised was durable (invariant 19).
//! - [`clock`]: per-node clocks that the harness can skew.
//! - [`node`]: what the harness hands every node (`NodeEnv`).
//! - [`refusal`]: typed refusal codes every service's errors map onto.
//! - [`producer`]: the outbox and half-message producers, as protocol engines any service
//!   hosts.
//! - [`probes`]: coverage counters; [`bugs`]: the planted-bug catalogue and its switch;
//!   [`buggify`]: points where the harness widens critical windows.
//!
//! Services: [`ledger`] (账务, sharded double-entry, TCC participant), [`trade`] (交易),
//! [`broker`] (MetaQ/RocketMQ-like messages: half messages, check-backs, retries, DLQ),
//! [`replica`] (消费记录 and 商户查询 read replicas fed by trade events), [`notify`] (最大努力通知),
//! [`bank`] (the simulated banks at the edge of the world) and [`clearing`] (支付清算 and the
//! bank gateway 银行网关: channel orders).

pub mod auth;
pub mod bank;
pub mod broker;
pub mod buggify;
pub mod bugs;
pub mod clearing;
pub mod clock;
pub mod disk;
pub mod durability;
pub mod ids;
pub mod ledger;
pub mod log;
pub mod money;
pub mod movement;
pub mod naive;
pub mod node;
pub mod notify;
pub mod outbox;
pub mod payment;
pub mod probes;
pub mod producer;
pub mod recon;
pub mod refusal;
pub mod replica;
pub mod saga;
pub mod strategy;
pub mod tcc;
pub mod topology;
pub mod trade;
pub mod transport;
pub mod wire;

pub use ids::{
    AccountId, EventId, IdemKey, InstrId, RequestId, ShardId, TradeShardId, VoucherId, Xid,
};
pub use money::{Amount, MoneyError};
pub use refusal::{Refusal, RefusalCode};

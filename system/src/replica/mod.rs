//! Read replicas fed by trade events: projections that consume the `trade-events` topic at
//! least once and must come out as if each event had been applied exactly once, in order.
//!
//! - [`consumer_records`]: the consumer-record DB (消费记录): one consumption entry per paid or
//!   refunded event for its buyer, deduplicated by event id.
//! - [`merchant_query`]: the merchant-query DB (商户查询): one row per trade, versioned so an
//!   old or repeated event never rolls a row back; serves the merchant query API.
//!
//! - [`engine`]: the replica's protocol engine: one delivery → decide, apply, append, sync,
//!   done (or failed when the database is busy); pure, with table tests.
//! - [`node`]: the replica node shell: a consumer group of the topic feeding one projection in
//!   the node's durable log, with processing that fails on purpose on the node's own random
//!   stream.
//!
//! Both projections are deterministic cores (decide → record → apply, recovery from records).

pub mod consumer_records;
pub mod engine;
pub mod merchant_query;
pub mod node;

pub use consumer_records::{
    ConsumerRecordsCore, ConsumerRecordsRecord, ConsumptionEntry, GROUP as CONSUMER_RECORDS_GROUP,
};
pub use engine::{ReplicaEngine, ReplicaOutput};
pub use merchant_query::{
    MerchantQueryCore, MerchantQueryRecord, MerchantRow, GROUP as MERCHANT_QUERY_GROUP,
};
pub use node::{Projection, ReplicaConfig, ReplicaNode};

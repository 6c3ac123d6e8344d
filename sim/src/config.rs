//! What one run is: the user's choices (topology, workload size, planted bug), validated.

use crate::plan::FaultKind;
use paylab_system::broker::FlushPolicy;
use paylab_system::bugs::Bug;
use paylab_system::strategy::StrategyKind;
use paylab_system::trade::MessageMode;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Limits on every knob, so a typo cannot ask for a run that never ends.
pub const SHARDS_MAX: u32 = 64;
pub const CLIENTS_MAX: u32 = 256;
pub const OPS_MAX: u32 = 100_000;
pub const TRADE_SHARDS_MAX: u32 = 16;
pub const PAYMENT_NODES_MAX: u32 = 16;

/// The serving nodes of the message layer (the merchant's endpoint is outside the platform
/// and not among them).
pub const MESSAGE_NODES: &[&str] = &["broker", "consumer-records", "merchant-query", "notify"];

/// The configuration of one run. Everything else (faults, workload choices) comes from the seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    pub seed: u64,
    /// Ledger shards, one node each.
    pub shards: u32,
    /// Client nodes running the workload concurrently.
    pub clients: u32,
    /// Business operations each client performs after opening and funding its accounts
    /// (trade flows, transfers).
    pub ops: u32,
    /// Trade service shards, one node each.
    pub trade_shards: u32,
    /// Payment nodes (business-activity managers).
    pub payment_nodes: u32,
    /// How cross-shard money movements are made atomic.
    pub strategy: StrategyKind,
    /// A trade unpaid this long after creation is closed by its trade node.
    pub close_after_ms: u64,
    /// How trade events reach the broker; `None` runs without the message layer (no broker,
    /// replicas or notifications).
    #[serde(default = "default_messages")]
    pub messages: Option<MessageMode>,
    /// When the broker makes a write durable relative to acknowledging it.
    #[serde(default)]
    pub broker_flush: FlushPolicy,
    /// The planted bug, if any.
    pub bug: Option<Bug>,
    /// The fault kinds the plan may use: `None` lets swarm testing choose; `Some(list)` is
    /// exactly those (`--faults`), and an empty list is a run without faults (`--no-faults`).
    pub faults: Option<Vec<FaultKind>>,
    /// Simulated cost of one fsync on a ledger node.
    pub fsync_latency_ms: u64,
    /// God's-eye snapshots are taken and checked this often during the faulted phase.
    pub snapshot_interval_ms: u64,
}

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("--shards must be between 1 and {SHARDS_MAX}, got {0}")]
    Shards(u32),
    #[error("--clients must be between 1 and {CLIENTS_MAX}, got {0}")]
    Clients(u32),
    #[error("--ops must be between 1 and {OPS_MAX}, got {0}")]
    Ops(u32),
    #[error("--trade-shards must be between 1 and {TRADE_SHARDS_MAX}, got {0}")]
    TradeShards(u32),
    #[error("--payment-nodes must be between 1 and {PAYMENT_NODES_MAX}, got {0}")]
    PaymentNodes(u32),
    #[error("bug {bug} lives in message mode {needs}; run it with --messages {needs}")]
    BugNeedsMode { bug: Bug, needs: MessageMode },
    #[error("bug {0} lives in the message layer; run it with messages on")]
    BugNeedsMessages(Bug),
}

fn default_messages() -> Option<MessageMode> {
    Some(MessageMode::Outbox)
}

/// The message mode a planted bug lives in, if it needs one.
pub fn mode_of_bug(bug: Bug) -> Option<MessageMode> {
    match bug {
        Bug::OutboxNoResender => Some(MessageMode::Outbox),
        Bug::CheckbackFromMemory | Bug::CheckbackDefaultsCommit => Some(MessageMode::Txmsg),
        _ => None,
    }
}

/// Whether a planted bug lives in the message layer (and so needs it on).
pub fn bug_needs_messages(bug: Bug) -> bool {
    mode_of_bug(bug).is_some()
        || matches!(
            bug,
            Bug::ConsumerNoDedup | Bug::OffsetBeforeProcessing | Bug::ReplicaNoVersion
        )
}

impl RunConfig {
    /// The default run for a seed.
    pub fn new(seed: u64) -> Self {
        RunConfig {
            seed,
            shards: 4,
            clients: 4,
            ops: 100,
            trade_shards: 2,
            payment_nodes: 2,
            strategy: StrategyKind::Tcc,
            close_after_ms: 3_000,
            messages: Some(MessageMode::Outbox),
            broker_flush: FlushPolicy::GroupCommit,
            bug: None,
            faults: None,
            fsync_latency_ms: 1,
            snapshot_interval_ms: 200,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=SHARDS_MAX).contains(&self.shards) {
            return Err(ConfigError::Shards(self.shards));
        }
        if !(1..=CLIENTS_MAX).contains(&self.clients) {
            return Err(ConfigError::Clients(self.clients));
        }
        if !(1..=OPS_MAX).contains(&self.ops) {
            return Err(ConfigError::Ops(self.ops));
        }
        if !(1..=TRADE_SHARDS_MAX).contains(&self.trade_shards) {
            return Err(ConfigError::TradeShards(self.trade_shards));
        }
        if !(1..=PAYMENT_NODES_MAX).contains(&self.payment_nodes) {
            return Err(ConfigError::PaymentNodes(self.payment_nodes));
        }
        if let Some(bug) = self.bug {
            if bug_needs_messages(bug) && self.messages.is_none() {
                return Err(ConfigError::BugNeedsMessages(bug));
            }
            if let (Some(needs), Some(mode)) = (mode_of_bug(bug), self.messages) {
                if needs != mode {
                    return Err(ConfigError::BugNeedsMode { bug, needs });
                }
            }
        }
        Ok(())
    }

    /// Operations the whole workload performs at least: per client, open each account (its
    /// merchant account included), fund each user account, then one operation per business
    /// step (a trade flow counts its creation only; its payment and refunds come on top).
    pub fn total_ops(&self) -> u64 {
        let setup = 2 * u64::from(self.accounts_per_client()) + 1;
        u64::from(self.clients) * (setup + u64::from(self.ops))
    }

    /// The names of every serving node (what a fault plan may name), in start order.
    pub fn server_nodes(&self) -> Vec<String> {
        let ledgers = (0..self.shards).map(|s| format!("ledger-{s}"));
        let trades = (0..self.trade_shards).map(|s| format!("trade-{s}"));
        let payments = (0..self.payment_nodes).map(|p| format!("payment-{p}"));
        let messages = self
            .messages
            .map(|_| MESSAGE_NODES.iter().map(|n| n.to_string()))
            .into_iter()
            .flatten();
        ledgers
            .chain(trades)
            .chain(payments)
            .chain(messages)
            .collect()
    }

    /// Accounts each client opens: two per shard, so every shard has a transfer pair.
    pub fn accounts_per_client(&self) -> u32 {
        2 * self.shards
    }
}

impl fmt::Display for RunConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "strategy={} messages={} broker-flush={} shards={} trade-shards={} payment-nodes={} clients={} ops={} bug={} fsync={}ms",
            self.strategy,
            self.messages.map_or("off", |m| m.name()),
            self.broker_flush,
            self.shards,
            self.trade_shards,
            self.payment_nodes,
            self.clients,
            self.ops,
            self.bug.map_or("none", |b| b.name()),
            self.fsync_latency_ms
        )
    }
}

//! What one run is: the user's choices (topology, workload size, planted bug), validated.

use paylab_system::bugs::Bug;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Limits on every knob, so a typo cannot ask for a run that never ends.
pub const SHARDS_MAX: u32 = 64;
pub const CLIENTS_MAX: u32 = 256;
pub const OPS_MAX: u32 = 100_000;

/// The configuration of one run. Everything else (faults, workload choices) comes from the seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    pub seed: u64,
    /// Ledger shards, one node each.
    pub shards: u32,
    /// Client nodes running the workload concurrently.
    pub clients: u32,
    /// Transfers each client performs after opening and funding its accounts.
    pub ops: u32,
    /// The planted bug, if any.
    pub bug: Option<Bug>,
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
}

impl RunConfig {
    /// The default run for a seed.
    pub fn new(seed: u64) -> Self {
        RunConfig {
            seed,
            shards: 4,
            clients: 4,
            ops: 100,
            bug: None,
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
        Ok(())
    }

    /// Operations the whole workload performs: per client, open and fund each account, then
    /// the transfers.
    pub fn total_ops(&self) -> u64 {
        u64::from(self.clients) * (2 * u64::from(self.accounts_per_client()) + u64::from(self.ops))
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
            "shards={} clients={} ops={} bug={} fsync={}ms",
            self.shards,
            self.clients,
            self.ops,
            self.bug.map_or("none", |b| b.name()),
            self.fsync_latency_ms
        )
    }
}

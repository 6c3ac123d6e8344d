//! Where every service lives: the address book the harness hands to the nodes that call others.

use crate::ids::ShardId;
use std::net::SocketAddr;

/// The addresses of every serving node of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Ledger shard `k` at index `k`.
    pub ledgers: Vec<SocketAddr>,
    /// Trade shard `k` at index `k`.
    pub trades: Vec<SocketAddr>,
    /// Payment node `k` at index `k`.
    pub payments: Vec<SocketAddr>,
    /// The clearing gateway, if the platform clears through banks: then deposits and
    /// withdrawals go through it instead of the world account.
    pub clearing: Option<SocketAddr>,
}

impl Topology {
    pub fn ledger_shards(&self) -> u32 {
        self.ledgers.len() as u32
    }
    pub fn ledger(&self, shard: ShardId) -> SocketAddr {
        self.ledgers[shard.0 as usize]
    }
    pub fn trade(&self, shard: u32) -> SocketAddr {
        self.trades[shard as usize]
    }
}

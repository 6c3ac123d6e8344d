//! Ledger shards: one node per shard, each the owner of its accounts.

use super::{addr, LiveService, LocalFuture, NodeService, RunContext, Scope, ServiceKind};
use crate::config::RunConfig;
use crate::observe;
use paylab_invariants::Observation;
use paylab_system::ledger::{LedgerConfig, LedgerNode};
use paylab_system::node::{NodeEnv, Role};
use paylab_system::ShardId;
use std::net::SocketAddr;
use std::sync::Arc;

pub const ROLE: Role = Role::new("ledger");

/// The address of ledger shard `shard`.
pub fn addr_of(shard: u32) -> SocketAddr {
    addr(1, shard, 7000)
}

pub struct Ledger;

impl ServiceKind for Ledger {
    fn role(&self) -> Role {
        ROLE
    }
    fn count(&self, config: &RunConfig) -> u32 {
        config.shards
    }
    fn addr(&self, index: u32) -> SocketAddr {
        addr_of(index)
    }
    fn node(&self, run: &RunContext<'_>, index: u32) -> Arc<dyn NodeService> {
        Arc::new(LedgerConfig {
            shard: ShardId(index),
            shards: run.config.shards,
            fsync_latency: run.fsync_latency(),
        })
    }
}

impl NodeService for LedgerConfig {
    fn start<'a>(&'a self, env: &'a NodeEnv) -> LocalFuture<'a, Arc<dyn LiveService>> {
        Box::pin(async move {
            let node = LedgerNode::start(env, *self)
                .await
                .expect("a restarted node can bind its address");
            Arc::new(node) as Arc<dyn LiveService>
        })
    }
    fn observe_durable(&self, env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        if scope != Scope::Progress {
            let core = LedgerNode::durable_state(env, *self);
            obs.shards.push(observe::shard_snapshot(&core));
        }
    }
}

impl LiveService for LedgerNode {
    fn observe(&self, _env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        if scope != Scope::Progress {
            obs.shards.push(self.read(observe::shard_snapshot));
        }
    }
}

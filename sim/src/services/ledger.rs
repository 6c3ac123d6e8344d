//! Ledger shards: one node per shard, each the owner of its accounts.

use super::{addr, LiveService, LocalFuture, NodeService, RunContext, Scope, ServiceKind};
use crate::capture;
use crate::config::RunConfig;
use crate::observe;
use paylab_invariants::world::World;
use paylab_invariants::{Delta, Observation};
use paylab_system::buggify::Point;
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
    fn buggify_points(&self) -> &'static [Point] {
        &[Point::TryToReply]
    }
    fn node(&self, run: &RunContext<'_>, index: u32) -> Arc<dyn NodeService> {
        Arc::new(LedgerConfig {
            shard: ShardId(index),
            shards: run.config.shards,
            fsync_latency: run.fsync_latency(),
            platform_callers: super::clearing::ledger_callers(run.config),
            directory: run.config.directory(),
            banks: run.config.banks,
            fenced: run.config.strategy.fenced(),
            locking: run.config.strategy.locking(),
            // Only the outbox strategy's rows are relayed by the shard.
            credits_broker: super::broker::credits_broker(run.config)
                .filter(|_| run.config.strategy == paylab_system::strategy::StrategyKind::Outbox),
        })
    }
}

impl NodeService for LedgerConfig {
    fn start<'a>(&'a self, env: &'a NodeEnv) -> LocalFuture<'a, Arc<dyn LiveService>> {
        Box::pin(async move {
            let node = LedgerNode::start(env, self.clone())
                .await
                .expect("a restarted node can bind its address");
            Arc::new(node) as Arc<dyn LiveService>
        })
    }
    fn observe_durable(&self, env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        let core = LedgerNode::durable_state(env, self);
        unsent_credits(env, &core, obs);
        if scope != Scope::Progress {
            obs.shards.push(observe::shard_snapshot(&core));
        }
    }
    fn observe_strategy(&self, env: &NodeEnv, obs: &mut Observation) {
        if self.locking {
            let records = LedgerNode::durable_records(env, self);
            obs.strategy
                .locks
                .extend(observe::lock_history(self.shard.0, &records));
        }
    }
    fn diff(&self, _env: &NodeEnv, whole: &Observation, world: &World, out: &mut Delta) {
        for s in &whole.shards {
            capture::shard_diff(s, world.shards.get(&s.shard), out);
        }
    }
}

impl LiveService for LedgerNode {
    fn observe(&self, env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        self.read(|core| unsent_credits(env, core, obs));
        if scope != Scope::Progress {
            obs.shards.push(self.read(observe::shard_snapshot));
        }
    }
    fn changes(&self, env: &NodeEnv, out: &mut Delta) {
        let delta = self.read_changes(observe::shard_delta);
        let shard = delta.shard;
        if !delta.is_empty() {
            out.shards.push(delta);
        }
        // Read after the changes: the durable part is no longer than what was just read.
        out.seals.push((shard, self.durable_journal(&env.disk)));
    }
    fn resync(&self, _env: &NodeEnv, obs: &mut Observation) {
        obs.shards
            .push(self.read_changes(|core, _| observe::shard_snapshot(core)));
    }
}

/// The `outbox` strategy's credit rows this shard holds unsent: work in flight the drain
/// waits for (none under the other strategies).
fn unsent_credits(env: &NodeEnv, core: &paylab_system::ledger::LedgerCore, obs: &mut Observation) {
    let node = env.name.to_string();
    obs.progress
        .unsent
        .extend(
            core.outbox()
                .unsent_rows()
                .map(|row| paylab_invariants::UnsentRow {
                    node: node.clone(),
                    event: format!("credit:{}", row.xid),
                }),
        );
}

//! Trade shards: one node per shard, each the owner of its trades and their events.

use super::{addr, broker, LiveService, LocalFuture, NodeService, RunContext, Scope, ServiceKind};
use crate::capture;
use crate::config::RunConfig;
use crate::observe;
use paylab_invariants::world::World;
use paylab_invariants::{Delta, Observation};
use paylab_system::buggify::Point;
use paylab_system::node::{NodeEnv, Role};
use paylab_system::trade::{TradeConfig, TradeCore, TradeMessaging, TradeNode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub const ROLE: Role = Role::new("trade");

/// The address of trade shard `shard`.
pub fn addr_of(shard: u32) -> SocketAddr {
    addr(3, shard, 7200)
}

pub struct Trade;

impl ServiceKind for Trade {
    fn role(&self) -> Role {
        ROLE
    }
    fn count(&self, config: &RunConfig) -> u32 {
        config.trade_shards
    }
    fn addr(&self, index: u32) -> SocketAddr {
        addr_of(index)
    }
    fn buggify_points(&self) -> &'static [Point] {
        &[
            Point::CommitToMessage,
            Point::HalfToLocal,
            Point::AbortToMessage,
            Point::BeginToReply,
        ]
    }
    fn node(&self, run: &RunContext<'_>, index: u32) -> Arc<dyn NodeService> {
        Arc::new(TradeConfig {
            shard: paylab_system::TradeShardId(index),
            fsync_latency: run.fsync_latency(),
            close_after_ms: run.config.close_after_ms,
            sweep_interval: Duration::from_millis(100),
            messages: run.config.messages.map(|mode| TradeMessaging {
                mode,
                broker: broker::addr_of(),
            }),
            step_callers: (0..run.config.payment_nodes)
                .map(super::payment::addr_of)
                .collect(),
            query_callers: vec![super::merchant::addr_of()],
            directory: run.config.directory(),
        })
    }
}

/// A trade shard's trades and, as the scope asks, the events it committed and the outbox rows
/// it has not sent: one read (a down node's log is replayed once).
fn read(env: &NodeEnv, core: &TradeCore, scope: Scope, obs: &mut Observation) {
    if scope == Scope::Progress {
        obs.trades.extend(observe::trades_in_flight(core));
    } else {
        obs.trades.extend(observe::trades(core));
    }
    if scope.messages() {
        observe::trade_events(core, &mut obs.messages);
    }
    if scope.progress() {
        obs.progress
            .unsent
            .extend(observe::unsent(&env.name.to_string(), core));
    }
}

impl NodeService for TradeConfig {
    fn start<'a>(&'a self, env: &'a NodeEnv) -> LocalFuture<'a, Arc<dyn LiveService>> {
        Box::pin(async move {
            let node = TradeNode::start(env, self.clone())
                .await
                .expect("a restarted node can bind its address");
            Arc::new(node) as Arc<dyn LiveService>
        })
    }
    fn observe_durable(&self, env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        read(env, &TradeNode::durable_state(env, self), scope, obs);
    }
    fn diff(&self, _env: &NodeEnv, whole: &Observation, world: &World, out: &mut Delta) {
        capture::trades_diff(self.shard.0, &whole.trades, world, out);
    }
}

impl LiveService for TradeNode {
    fn observe(&self, env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        self.read(|core| read(env, core, scope, obs));
    }
    fn changes(&self, _env: &NodeEnv, out: &mut Delta) {
        self.read_changed(|changed| {
            out.trades
                .upserts
                .extend(changed.into_iter().map(observe::trade))
        });
    }
    fn resync(&self, env: &NodeEnv, obs: &mut Observation) {
        self.read_resync(|core| read(env, core, Scope::Instant, obs));
    }
}

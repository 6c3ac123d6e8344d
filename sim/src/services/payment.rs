//! Payment nodes: the business-activity managers that carry out pays and refunds.

use super::{addr, LiveService, LocalFuture, NodeService, RunContext, Scope, ServiceKind};
use crate::capture;
use crate::config::RunConfig;
use crate::observe;
use paylab_invariants::world::World;
use paylab_invariants::{Delta, Observation};
use paylab_system::buggify::Point;
use paylab_system::node::{NodeEnv, Role};
use paylab_system::payment::{PaymentConfig, PaymentNode, PaymentView};
use paylab_system::saga::SagaCoordinator;
use paylab_system::strategy::StrategyKind;
use paylab_system::topology::Topology;
use std::net::SocketAddr;
use std::sync::Arc;

pub const ROLE: Role = Role::new("payment");

/// The address of payment node `index`.
pub fn addr_of(index: u32) -> SocketAddr {
    addr(4, index, 7300)
}

pub struct Payment;

impl ServiceKind for Payment {
    fn role(&self) -> Role {
        ROLE
    }
    fn count(&self, config: &RunConfig) -> u32 {
        config.payment_nodes
    }
    fn addr(&self, index: u32) -> SocketAddr {
        addr_of(index)
    }
    fn buggify_points(&self) -> &'static [Point] {
        &[
            Point::CommitToPhaseTwo,
            Point::ConfirmToEnd,
            Point::CancelToEnd,
            Point::OutcomeToTrade,
            Point::OrderToTrade,
            Point::TradeToFinish,
        ]
    }
    fn node(&self, run: &RunContext<'_>, index: u32) -> Arc<dyn NodeService> {
        Arc::new(PaymentService {
            config: PaymentConfig {
                index,
                fsync_latency: run.fsync_latency(),
                strategy: run.config.strategy,
                directory: run.config.directory(),
                credits: super::broker::credits_broker(run.config)
                    .map(|broker| (broker, run.config.payment_nodes)),
            },
            topology: run.topology.clone(),
        })
    }
}

struct PaymentService {
    config: PaymentConfig,
    topology: Topology,
}

/// A payment node's activities and, for liveness, its orders. A drain poll
/// ([`Scope::Progress`]) converts only the unfinished ones: all that liveness reads.
fn read(env: &NodeEnv, view: &PaymentView, scope: Scope, obs: &mut Observation) {
    let name = env.name.to_string();
    if scope == Scope::Progress {
        let unfinished = PaymentView {
            orders: view
                .orders
                .iter()
                .filter(|o| o.outcome.is_none())
                .cloned()
                .collect(),
            activities: view
                .activities
                .iter()
                .filter(|a| !a.status.is_terminal())
                .cloned()
                .collect(),
        };
        obs.activities
            .extend(observe::activities(&name, &unfinished));
        obs.progress
            .orders
            .extend(observe::orders(&name, &unfinished));
        return;
    }
    obs.activities.extend(observe::activities(&name, view));
    if scope.progress() {
        obs.progress.orders.extend(observe::orders(&name, view));
    }
}

impl NodeService for PaymentService {
    fn start<'a>(&'a self, env: &'a NodeEnv) -> LocalFuture<'a, Arc<dyn LiveService>> {
        Box::pin(async move {
            let node = PaymentNode::start(env, self.config, self.topology.clone())
                .await
                .expect("a restarted node can bind its address");
            Arc::new(node) as Arc<dyn LiveService>
        })
    }
    fn observe_durable(&self, env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        read(
            env,
            &PaymentNode::durable_view(env, self.config),
            scope,
            obs,
        );
    }
    fn observe_strategy(&self, env: &NodeEnv, obs: &mut Observation) {
        if self.config.strategy == StrategyKind::Saga {
            let node = env.name.to_string();
            let sagas = SagaCoordinator::durable_sagas(env, self.topology.ledger_shards());
            obs.strategy
                .sagas
                .extend(sagas.iter().map(|s| observe::saga(&node, s)));
        }
    }
    fn diff(&self, env: &NodeEnv, whole: &Observation, world: &World, out: &mut Delta) {
        capture::activities_diff(&env.name.to_string(), &whole.activities, world, out);
    }
}

impl LiveService for PaymentNode {
    fn observe(&self, env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        let view = match scope {
            Scope::Progress => self.unfinished_view(),
            Scope::Instant | Scope::Rest => self.view(),
        };
        read(env, &view, scope, obs);
    }
    fn changes(&self, env: &NodeEnv, out: &mut Delta) {
        let changed = self.changes();
        out.activities
            .upserts
            .extend(observe::activities(&env.name.to_string(), &changed));
    }
    fn resync(&self, env: &NodeEnv, obs: &mut Observation) {
        read(env, &PaymentNode::resync(self), Scope::Instant, obs);
    }
}

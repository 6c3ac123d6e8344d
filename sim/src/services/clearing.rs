//! The clearing gateway (one node with `--banks N`, N > 0): channel orders between the
//! payment nodes, the banks and the ledger.

use super::{addr, bank, payment};
use super::{LiveService, LocalFuture, NodeService, RunContext, Scope, ServiceKind};
use crate::config::RunConfig;
use crate::observe;
use paylab_invariants::Observation;
use paylab_system::buggify::Point;
use paylab_system::clearing::OrderKind;
use paylab_system::clearing::{clearing_accounts, ClearingConfig, ClearingCore, ClearingNode};
use paylab_system::node::{NodeEnv, Role};
use paylab_system::ShardId;
use std::net::SocketAddr;
use std::sync::Arc;

pub const ROLE: Role = Role::new("clearing");

/// The address of the gateway.
pub fn addr_of() -> SocketAddr {
    addr(10, 0, 7900)
}

pub struct Clearing;

impl ServiceKind for Clearing {
    fn role(&self) -> Role {
        ROLE
    }
    fn count(&self, config: &RunConfig) -> u32 {
        u32::from(config.banks > 0)
    }
    fn addr(&self, _index: u32) -> SocketAddr {
        addr_of()
    }
    fn buggify_points(&self) -> &'static [Point] {
        &[Point::AnswerToRecord]
    }
    fn node(&self, run: &RunContext<'_>, _index: u32) -> Arc<dyn NodeService> {
        let config = run.config;
        Arc::new(ClearingConfig {
            fsync_latency: run.fsync_latency(),
            banks: (0..config.banks).map(bank::addr_of).collect(),
            topology: run.topology.clone(),
            platform_callers: (0..config.payment_nodes).map(payment::addr_of).collect(),
            recon: Some(super::recon::addr_of()),
        })
    }
}

/// The platform's callers of the ledger: the payment nodes, and the gateway if there is one.
pub fn ledger_callers(config: &RunConfig) -> Vec<SocketAddr> {
    let payments = (0..config.payment_nodes).map(payment::addr_of);
    let gateway = (config.banks > 0).then(addr_of);
    payments.chain(gateway).collect()
}

/// The orders at rest and, for liveness, while draining; with them the chart of accounts'
/// clearing part (which ledger sub-account is which bank's reserve or transit).
fn read(config: &ClearingConfig, core: &ClearingCore, scope: Scope, obs: &mut Observation) {
    if !scope.progress() {
        return;
    }
    observe::channel_orders(core, scope == Scope::Progress, &mut obs.clearing);
    let shards = config.topology.ledger_shards();
    for b in 0..config.banks.len() as u32 {
        for s in 0..shards {
            let shard = ShardId(s);
            let (reserve, transit) = clearing_accounts(OrderKind::Withdrawal, b, shard, shards);
            let (_, refunds) = clearing_accounts(OrderKind::RefundToCard, b, shard, shards);
            let c = &mut obs.clearing;
            c.reserve_accounts.insert(reserve.0, b);
            c.transit_accounts.insert(transit.0, b);
            c.transit_accounts.insert(refunds.0, b);
            c.suspense_accounts.insert(
                paylab_system::ids::AccountId::suspense(b, shard, shards).0,
                b,
            );
        }
    }
}

impl NodeService for ClearingConfig {
    fn start<'a>(&'a self, env: &'a NodeEnv) -> LocalFuture<'a, Arc<dyn LiveService>> {
        Box::pin(async move {
            let node = ClearingNode::start(env, self.clone())
                .await
                .expect("a restarted node can bind its address");
            Arc::new(LiveClearing {
                node,
                config: self.clone(),
            }) as Arc<dyn LiveService>
        })
    }
    fn observe_durable(&self, env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        read(self, &ClearingNode::durable_state(env, self), scope, obs);
    }
}

struct LiveClearing {
    node: ClearingNode,
    config: ClearingConfig,
}

impl LiveService for LiveClearing {
    fn observe(&self, _env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        self.node.read(|core| read(&self.config, core, scope, obs));
    }
}

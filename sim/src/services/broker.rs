//! The message broker (one node): topics, half messages, consumer groups.

use super::{addr, trade, LiveService, LocalFuture, NodeService, RunContext, Scope, ServiceKind};
use crate::config::RunConfig;
use crate::observe;
use paylab_invariants::Observation;
use paylab_system::broker::{
    BrokerConfig, BrokerCore, BrokerNode, BrokerNodeConfig, CheckPolicy, RetryPolicy,
};
use paylab_system::disk::PowerLossReport;
use paylab_system::node::{NodeEnv, Role};
use paylab_system::probes::{names, Probes};
use paylab_system::trade::events::producer_group;
use paylab_system::trade::{TRADE_EVENTS_QUEUES, TRADE_EVENTS_TOPIC};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub const ROLE: Role = Role::new("broker");

/// The address of the broker.
/// The broker the `outbox` and `txmsg` strategies' credits go through, when the run has it.
pub fn credits_broker(config: &RunConfig) -> Option<SocketAddr> {
    use paylab_system::strategy::StrategyKind::{Outbox, Txmsg};
    let by_message = matches!(config.strategy, Outbox | Txmsg);
    (by_message && config.messages.is_some()).then(addr_of)
}

/// The producer groups the broker checks back with: the trade shards, and under `txmsg` the
/// payment nodes (each its own group, named as the node).
fn producers(config: &RunConfig) -> Vec<(String, SocketAddr)> {
    let trades = (0..config.trade_shards).map(|s| {
        (
            producer_group(paylab_system::TradeShardId(s)),
            trade::addr_of(s),
        )
    });
    let mut out: Vec<(String, SocketAddr)> = trades.collect();
    if config.strategy == paylab_system::strategy::StrategyKind::Txmsg {
        let payments = super::payment::Payment;
        for i in 0..config.payment_nodes {
            out.push((payments.role().at(i).to_string(), payments.addr(i)));
        }
    }
    out
}

/// The broker's topics: trade events, and the credits under the `outbox` strategy.
fn topics(config: &RunConfig) -> Vec<(String, u32)> {
    let mut topics = vec![(TRADE_EVENTS_TOPIC.to_string(), TRADE_EVENTS_QUEUES)];
    if credits_broker(config).is_some() {
        use paylab_system::ledger::{CREDITS_QUEUES, CREDITS_TOPIC};
        topics.push((CREDITS_TOPIC.to_string(), CREDITS_QUEUES));
    }
    topics
}

pub fn addr_of() -> SocketAddr {
    addr(5, 0, 7400)
}

/// The broker's check-back policy in a run: first check after 600 ms, then every 2 s, 15
/// checks (RocketMQ's count, at simulation speed), so an undecided half outlives two
/// overlapping outages of a plan (each at most 15 s) before it is discarded: a producer cut
/// off by a partition and then crashed for 12 s (seed 49, txmsg, with 1 s between checks)
/// had its committed half discarded, RocketMQ's documented limit, which its real 15-minute
/// window keeps out of reach of such outages.
pub fn run_check_policy() -> CheckPolicy {
    CheckPolicy {
        first_ms: 600,
        interval_ms: 2_000,
        max_checks: 15,
    }
}

pub struct Broker;

impl ServiceKind for Broker {
    fn role(&self) -> Role {
        ROLE
    }
    fn count(&self, config: &RunConfig) -> u32 {
        u32::from(config.messages.is_some())
    }
    fn addr(&self, _index: u32) -> SocketAddr {
        addr_of()
    }
    fn node(&self, run: &RunContext<'_>, _index: u32) -> Arc<dyn NodeService> {
        Arc::new(BrokerNodeConfig {
            broker: BrokerConfig {
                check: run_check_policy(),
                retry: RetryPolicy::simulation(),
            },
            flush: run.config.broker_flush,
            fsync_latency: run.fsync_latency(),
            topics: topics(run.config),
            producers: producers(run.config).into_iter().collect(),
            check_tick: Duration::from_millis(50),
        })
    }
}

fn read(core: &BrokerCore, scope: Scope, obs: &mut Observation) {
    if scope.messages() {
        observe::broker(core, &mut obs.messages);
    }
    if scope.progress() {
        observe::broker_progress(core, &mut obs.progress);
    }
}

impl NodeService for BrokerNodeConfig {
    fn start<'a>(&'a self, env: &'a NodeEnv) -> LocalFuture<'a, Arc<dyn LiveService>> {
        Box::pin(async move {
            let node = BrokerNode::start(env, self.clone())
                .await
                .expect("a restarted node can bind its address");
            Arc::new(node) as Arc<dyn LiveService>
        })
    }
    fn observe_durable(&self, env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        if scope != Scope::Instant {
            read(&BrokerNode::durable_state(env, self), scope, obs);
        }
    }
    /// A broker that loses acknowledged-but-unsynced writes is the corner `--broker-flush
    /// async` exists to show: the probe says the run reached it.
    fn on_crash(&self, lost: &PowerLossReport, probes: &Probes) {
        if lost.lost_bytes > 0 {
            probes.hit(names::BROKER_LOST_UNSYNCED);
        }
    }
}

impl LiveService for BrokerNode {
    fn observe(&self, _env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        if scope != Scope::Instant {
            self.read(|core| read(core, scope, obs));
        }
    }
}

//! The read replicas (consumer records, merchant query): one node each, consumers of the
//! trade-events topic. One generic service, registered once per projection.

use super::{addr, broker, LiveService, LocalFuture, NodeService, RunContext, Scope, ServiceKind};
use crate::config::RunConfig;
use crate::observe;
use paylab_invariants::{MessageSnapshot, Observation};
use paylab_system::buggify::Point;
use paylab_system::node::{NodeEnv, Role};
use paylab_system::replica::{
    ConsumerRecordsCore, MerchantQueryCore, Projection, ReplicaConfig, ReplicaNode,
};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A projection the harness can read into the observation.
pub trait Observed: Projection {
    /// The replica's place in the replica subnet.
    const SLOT: u32;
    fn observe(core: &Self, out: &mut MessageSnapshot);
}

impl Observed for ConsumerRecordsCore {
    const SLOT: u32 = 0;
    fn observe(core: &Self, out: &mut MessageSnapshot) {
        observe::consumer_records(core, out);
    }
}

impl Observed for MerchantQueryCore {
    const SLOT: u32 = 1;
    fn observe(core: &Self, out: &mut MessageSnapshot) {
        observe::merchant_query(core, out);
    }
}

/// The replica kind of projection `P`; its role is the projection's consumer group.
pub struct Replica<P>(PhantomData<fn() -> P>);

pub type ConsumerRecordsKind = Replica<ConsumerRecordsCore>;
pub type MerchantQueryKind = Replica<MerchantQueryCore>;
#[allow(non_upper_case_globals)]
pub const ConsumerRecords: ConsumerRecordsKind = Replica(PhantomData);
#[allow(non_upper_case_globals)]
pub const MerchantQuery: MerchantQueryKind = Replica(PhantomData);

/// The address of replica `slot` (0: consumer records, 1: merchant query).
pub fn addr_of(slot: u32) -> SocketAddr {
    addr(6, slot, 7500)
}

impl<P: Observed> ServiceKind for Replica<P> {
    fn role(&self) -> Role {
        Role::new(P::GROUP)
    }
    fn count(&self, config: &RunConfig) -> u32 {
        u32::from(config.messages.is_some())
    }
    fn addr(&self, _index: u32) -> SocketAddr {
        addr_of(P::SLOT)
    }
    fn buggify_points(&self) -> &'static [Point] {
        &[Point::ConsumeToOffset]
    }
    fn node(&self, run: &RunContext<'_>, _index: u32) -> Arc<dyn NodeService> {
        Arc::new(ReplicaService::<P> {
            config: ReplicaConfig {
                broker: broker::addr_of(),
                fsync_latency: run.fsync_latency(),
                failure_rate: 0.03,
                commit_interval: Duration::from_millis(500),
                consuming: run.consuming(),
            },
            projection: PhantomData,
        })
    }
}

struct ReplicaService<P> {
    config: ReplicaConfig,
    projection: PhantomData<fn() -> P>,
}

impl<P: Observed> NodeService for ReplicaService<P> {
    fn start<'a>(&'a self, env: &'a NodeEnv) -> LocalFuture<'a, Arc<dyn LiveService>> {
        Box::pin(async move {
            let node = ReplicaNode::<P>::start(env, self.config)
                .await
                .expect("a restarted node can bind its address");
            Arc::new(node) as Arc<dyn LiveService>
        })
    }
    fn observe_durable(&self, env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        if scope.messages() {
            let core = ReplicaNode::<P>::durable_state(env, self.config);
            P::observe(&core, &mut obs.messages);
        }
    }
}

impl<P: Observed> LiveService for ReplicaNode<P> {
    fn observe(&self, _env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        if scope.messages() {
            self.read(|core| P::observe(core, &mut obs.messages));
        }
    }
}

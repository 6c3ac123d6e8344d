//! The simulated banks (`--banks N`): the edge of the world, each with its own books.

use super::{
    addr, clearing, LiveService, LocalFuture, NodeService, RunContext, Scope, ServiceKind,
};
use crate::config::RunConfig;
use crate::observe;
use paylab_invariants::Observation;
use paylab_system::bank::{BankBehaviour, BankConfig, BankNode, SIMULATION_BANK};
use paylab_system::buggify::Point;
use paylab_system::node::stream_seed;
use paylab_system::node::{NodeEnv, Role};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::sync::Arc;

pub const ROLE: Role = Role::new("bank");

/// The address of bank `index`.
pub fn addr_of(index: u32) -> SocketAddr {
    addr(9, index, 7800)
}

pub struct Bank;

impl ServiceKind for Bank {
    fn role(&self) -> Role {
        ROLE
    }
    fn count(&self, config: &RunConfig) -> u32 {
        config.banks
    }
    fn addr(&self, index: u32) -> SocketAddr {
        addr_of(index)
    }
    fn buggify_points(&self) -> &'static [Point] {
        &[Point::InstructionToReply]
    }
    fn node(&self, run: &RunContext<'_>, index: u32) -> Arc<dyn NodeService> {
        Arc::new(BankConfig {
            bank: index,
            fsync_latency: run.fsync_latency(),
            gateway: clearing::addr_of(),
            readers: vec![super::recon::addr_of()],
            peers: (0..run.config.banks).map(addr_of).collect(),
            behaviour: behaviour(run.config.seed, index),
        })
    }
}

/// Bank `index`'s behaviour in the run of `seed`, swarm style on a stream of its own: three
/// runs in ten its PROCESSING instructions take up to 12 s instead of 3 s, and three in ten
/// its statements come out 9 s after the day instead of 2 s (a late statement).
pub fn behaviour(seed: u64, index: u32) -> BankBehaviour {
    let stream = stream_seed(seed, &ROLE.at(index).to_string(), "behaviour", 0);
    let mut rng = ChaCha8Rng::seed_from_u64(stream);
    let mut b = SIMULATION_BANK;
    if rng.gen_bool(0.3) {
        b.processing_ms.1 = 12_000;
    }
    if rng.gen_bool(0.3) {
        b.statement_lag_ms = 9_000;
    }
    b
}

/// The books are read at rest and, for liveness, while draining (an instruction PROCESSING
/// is unfinished work).
fn read(core: &paylab_system::bank::BankCore, scope: Scope, obs: &mut Observation) {
    if scope.progress() {
        let progress_only = scope == Scope::Progress;
        obs.clearing
            .banks
            .push(observe::bank_books(core, progress_only));
    }
}

impl NodeService for BankConfig {
    fn start<'a>(&'a self, env: &'a NodeEnv) -> LocalFuture<'a, Arc<dyn LiveService>> {
        Box::pin(async move {
            let node = BankNode::start(env, self.clone())
                .await
                .expect("a restarted node can bind its address");
            Arc::new(node) as Arc<dyn LiveService>
        })
    }
    fn observe_durable(&self, env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        read(&BankNode::durable_state(env, self), scope, obs);
    }
}

impl LiveService for BankNode {
    fn observe(&self, _env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        self.read(|core| read(core, scope, obs));
    }
}

//! Reconciliation (one node with `--banks N`, N > 0): matches every bank date's statement
//! with the gateway's channel orders and asks for the repairs. What it finds is judged by
//! the checkers from the banks' and the gateway's own books, not from its word.

use super::ServiceKind;
use super::{addr, bank, clearing, LiveService, LocalFuture, NodeService, RunContext, Scope};
use crate::config::RunConfig;
use paylab_invariants::Observation;
use paylab_system::node::{NodeEnv, Role};
use paylab_system::recon::{ReconConfig, ReconCore, ReconNode};
use std::net::SocketAddr;
use std::sync::Arc;

pub const ROLE: Role = Role::new("recon");

/// The address of the reconciliation node.
pub fn addr_of() -> SocketAddr {
    addr(11, 0, 8000)
}

pub struct Recon;

impl ServiceKind for Recon {
    fn role(&self) -> Role {
        ROLE
    }
    fn count(&self, config: &RunConfig) -> u32 {
        u32::from(config.banks > 0)
    }
    fn addr(&self, _index: u32) -> SocketAddr {
        addr_of()
    }
    fn node(&self, run: &RunContext<'_>, _index: u32) -> Arc<dyn NodeService> {
        Arc::new(ReconConfig {
            fsync_latency: run.fsync_latency(),
            banks: (0..run.config.banks).map(bank::addr_of).collect(),
            gateway: clearing::addr_of(),
        })
    }
}

impl NodeService for ReconConfig {
    fn start<'a>(&'a self, env: &'a NodeEnv) -> LocalFuture<'a, Arc<dyn LiveService>> {
        Box::pin(async move {
            let node = ReconNode::start(env, self.clone())
                .await
                .expect("a restarted node can bind its address");
            Arc::new(node) as Arc<dyn LiveService>
        })
    }
    fn observe_durable(&self, env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        read(&ReconNode::durable_state(env, self), scope, obs);
    }
}

/// Only its cursor is read (for liveness: it runs once more at rest); what it found is judged
/// from the banks' and the gateway's own books.
fn read(core: &ReconCore, scope: Scope, obs: &mut Observation) {
    if scope.progress() {
        obs.clearing
            .reconciled
            .extend(core.next.iter().map(|(b, d)| (*b, *d)));
    }
}

impl LiveService for ReconNode {
    fn observe(&self, _env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        self.read(|core| read(core, scope, obs));
    }
}

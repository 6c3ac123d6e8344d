//! The simulated merchant's callback endpoint (one node): outside the platform, so no fault
//! plan names it; it records the callbacks it acknowledged.

use super::{addr, LiveService, LocalFuture, NodeService, RunContext, Scope, ServiceKind};
use crate::config::RunConfig;
use crate::observe;
use paylab_invariants::Observation;
use paylab_system::node::{NodeEnv, Role};
use paylab_system::notify::{MerchantConfig, MerchantEndpoint};
use paylab_system::topology::Topology;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub const ROLE: Role = Role::new("merchant");

/// The address of the simulated merchant endpoint.
pub fn addr_of() -> SocketAddr {
    addr(8, 0, 7700)
}

pub struct Merchant;

impl ServiceKind for Merchant {
    fn role(&self) -> Role {
        ROLE
    }
    fn count(&self, config: &RunConfig) -> u32 {
        u32::from(config.messages.is_some())
    }
    fn addr(&self, _index: u32) -> SocketAddr {
        addr_of()
    }
    fn faultable(&self) -> bool {
        false
    }
    fn node(&self, run: &RunContext<'_>, _index: u32) -> Arc<dyn NodeService> {
        Arc::new(MerchantService {
            config: MerchantConfig {
                fail_rate: 0.2,
                slow_rate: 0.1,
                slow_by: Duration::from_millis(500),
            },
            topology: run.topology.clone(),
        })
    }
}

struct MerchantService {
    config: MerchantConfig,
    topology: Topology,
}

impl NodeService for MerchantService {
    fn start<'a>(&'a self, env: &'a NodeEnv) -> LocalFuture<'a, Arc<dyn LiveService>> {
        Box::pin(async move {
            let node = MerchantEndpoint::start(env, self.config, self.topology.clone())
                .await
                .expect("a restarted node can bind its address");
            Arc::new(node) as Arc<dyn LiveService>
        })
    }
    /// What the merchant received is not durable platform state: a down endpoint shows none.
    fn observe_durable(&self, _env: &NodeEnv, _scope: Scope, _obs: &mut Observation) {}
}

impl LiveService for MerchantEndpoint {
    fn observe(&self, _env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        if scope.messages() {
            observe::callbacks(&self.received(), &mut obs.messages);
        }
    }
}

//! The merchant notifier (one node): consumes trade events and calls the merchant back on
//! Alipay's schedule.

use super::ServiceKind;
use super::{addr, broker, merchant, LiveService, LocalFuture, NodeService, RunContext, Scope};
use crate::config::RunConfig;
use crate::observe;
use paylab_invariants::Observation;
use paylab_system::buggify::Point;
use paylab_system::node::{NodeEnv, Role};
use paylab_system::notify::{NotifyConfig, NotifyNode, SIMULATION_NOTIFY_SCHEDULE_MS};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The notifier's nodes are named after its consumer group.
pub const ROLE: Role = Role::new(paylab_system::notify::node::GROUP);

/// The address of the notification node.
pub fn addr_of() -> SocketAddr {
    addr(7, 0, 7600)
}

pub struct Notify;

impl ServiceKind for Notify {
    fn role(&self) -> Role {
        ROLE
    }
    fn count(&self, config: &RunConfig) -> u32 {
        u32::from(config.messages.is_some())
    }
    fn addr(&self, _index: u32) -> SocketAddr {
        addr_of()
    }
    fn buggify_points(&self) -> &'static [Point] {
        &[Point::ConsumeToOffset, Point::CallbackToRecord]
    }
    fn node(&self, run: &RunContext<'_>, _index: u32) -> Arc<dyn NodeService> {
        Arc::new(NotifyConfig {
            broker: broker::addr_of(),
            merchant: merchant::addr_of(),
            fsync_latency: run.fsync_latency(),
            schedule: SIMULATION_NOTIFY_SCHEDULE_MS,
            commit_interval: Duration::from_millis(500),
            consuming: run.consuming(),
        })
    }
}

impl NodeService for NotifyConfig {
    fn start<'a>(&'a self, env: &'a NodeEnv) -> LocalFuture<'a, Arc<dyn LiveService>> {
        Box::pin(async move {
            let node = NotifyNode::start(env, *self)
                .await
                .expect("a restarted node can bind its address");
            Arc::new(node) as Arc<dyn LiveService>
        })
    }
    fn observe_durable(&self, env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        if scope.messages() {
            let core = NotifyNode::durable_state(env, *self);
            observe::notifications(&core, &mut obs.messages);
        }
    }
}

impl LiveService for NotifyNode {
    /// The notifications are read for liveness too (a pending one is unfinished work).
    fn observe(&self, _env: &NodeEnv, scope: Scope, obs: &mut Observation) {
        match scope {
            Scope::Instant => {}
            Scope::Progress => {
                self.read(|core| observe::pending_notifications(core, &mut obs.messages))
            }
            Scope::Rest => self.read(|core| observe::notifications(core, &mut obs.messages)),
        }
    }
}

//! The service registry: one harness-side description per kind of node, all in [`KINDS`].
//!
//! A kind says what its nodes are called ([`ServiceKind::role`]), how many a run has, where
//! they live, how each is configured and started, how it is read into the checkers'
//! observation (live, or through its durable log while it is down), which buggify points run
//! on it and what a crash means for it. [`Cluster`](crate::cluster::Cluster), the fault plans
//! and the reports iterate the registry and know no role by name.
//!
//! Adding a service to the platform is: its folder in `system/`, one file here with its
//! [`ServiceKind`], one line in [`KINDS`], and its checkers in `invariants/`.

pub mod bank;
pub mod broker;
pub mod clearing;
pub mod ledger;
pub mod merchant;
pub mod notify;
pub mod payment;
pub mod recon;
pub mod replica;
pub mod trade;

use crate::config::RunConfig;
use paylab_invariants::world::World;
use paylab_invariants::{Delta, Observation};
use paylab_system::buggify::Point;
use paylab_system::disk::PowerLossReport;
use paylab_system::node::{NodeEnv, NodeName, Role};
use paylab_system::probes::Probes;
use paylab_system::topology::Topology;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Every kind of serving node, in start order (which is also the order of the observation's
/// lists and of the nodes a fault plan draws from: keep it stable).
pub static KINDS: &[&dyn ServiceKind] = &[
    &ledger::Ledger,
    &trade::Trade,
    &payment::Payment,
    &broker::Broker,
    &replica::ConsumerRecords,
    &replica::MerchantQuery,
    &notify::Notify,
    &merchant::Merchant,
    &bank::Bank,
    &clearing::Clearing,
    &recon::Recon,
];

/// The role of the workload's client nodes (not a service: they are the harness's own).
pub const CLIENT: Role = Role::new("client");

/// What part of the platform's state a read is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// What the invariants that hold at every instant read: shards, trades, activities.
    Instant,
    /// Everything, for the final check at rest: the instant part, the message layer and the
    /// work in flight.
    Rest,
    /// Only what liveness reads (trades, activities, notifications and the progress part),
    /// cheaply enough to poll while draining. A node that is down is not read: being down is
    /// itself the unfinished item.
    Progress,
}

impl Scope {
    /// Whether the message layer's state (events, consumers, replicas) is read.
    pub fn messages(self) -> bool {
        self == Scope::Rest
    }

    /// Whether the work in flight (orders, halves, lag, retries, unsent rows) is read.
    pub fn progress(self) -> bool {
        self != Scope::Instant
    }
}

/// What building a node's service needs to know about the run.
pub struct RunContext<'a> {
    pub config: &'a RunConfig,
    /// The address book of the nodes that call others.
    pub topology: &'a Topology,
}

impl RunContext<'_> {
    /// The simulated cost of one fsync on every node.
    pub fn fsync_latency(&self) -> Duration {
        Duration::from_millis(self.config.fsync_latency_ms)
    }

    /// How the trade-event consumers consume (`--consume-batch`, `--event-consumers`).
    pub fn consuming(&self) -> paylab_system::replica::node::Consuming {
        paylab_system::replica::node::Consuming {
            batch: self.config.consume_batch.unwrap_or(1),
            members: self.config.event_consumers.unwrap_or(1),
        }
    }
}

/// A future that does not leave its node (madsim runs a node's init on the node itself).
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// One kind of node, as the harness sees it.
pub trait ServiceKind: Sync {
    /// What its nodes are called: node `i` is `role/i`.
    fn role(&self) -> Role;
    /// How many nodes of this kind a run with `config` has.
    fn count(&self, config: &RunConfig) -> u32;
    /// The address of node `index`.
    fn addr(&self, index: u32) -> SocketAddr;
    /// Whether a fault plan may name its nodes (false for what stands outside the platform,
    /// like the merchant's endpoint).
    fn faultable(&self) -> bool {
        true
    }
    /// The buggify points whose widened windows run on this kind's nodes: a plan lands its
    /// correlated crashes here.
    fn buggify_points(&self) -> &'static [Point] {
        &[]
    }
    /// Node `index`'s service, configured for the run; kept across its restarts.
    fn node(&self, run: &RunContext<'_>, index: u32) -> Arc<dyn NodeService>;
}

/// One node's service: configured once, started at every boot.
pub trait NodeService: Send + Sync {
    /// Starts (or, after a crash, recovers) the service inside the node's init.
    fn start<'a>(&'a self, env: &'a NodeEnv) -> LocalFuture<'a, Arc<dyn LiveService>>;
    /// Reads a node that is down: exactly what it will recover from its disk.
    fn observe_durable(&self, env: &NodeEnv, scope: Scope, obs: &mut Observation);
    /// What losing power means for this kind beyond the disk itself (a coverage probe, say).
    fn on_crash(&self, _lost: &PowerLossReport, _probes: &Probes) {}
    /// Adds to `out` what turns the part of the checker's `world` this node holds into
    /// `whole`, a whole [`Scope::Instant`] read of it (the capture's resync after a crash or a
    /// restart). Kinds the always-invariants do not read have nothing to add.
    fn diff(&self, _env: &NodeEnv, _whole: &Observation, _world: &World, _out: &mut Delta) {}
    /// Reads, for the final check at rest, what only some strategies keep on this node's
    /// disk (the 2PC participants' lock history, the saga logs), whether the node is up or
    /// down: the durable logs are the whole story.
    fn observe_strategy(&self, _env: &NodeEnv, _obs: &mut Observation) {}
}

/// A running service, published by its node's init.
pub trait LiveService: Send + Sync {
    /// Reads the running node's state (the harness's god's-eye view).
    fn observe(&self, env: &NodeEnv, scope: Scope, obs: &mut Observation);
    /// Adds to `out` what the always-invariants read that changed since the last `changes` or
    /// `resync`, in time proportional to the changes (the periodic capture).
    fn changes(&self, _env: &NodeEnv, _out: &mut Delta) {}
    /// A whole [`Scope::Instant`] read that the next `changes` continues from.
    fn resync(&self, env: &NodeEnv, obs: &mut Observation) {
        self.observe(env, Scope::Instant, obs)
    }
}

/// The kind whose nodes have `role`.
pub fn kind_of(role: &Role) -> Option<&'static dyn ServiceKind> {
    KINDS.iter().copied().find(|k| &k.role() == role)
}

/// Every serving node of a run, in start order, with its kind.
pub fn nodes(config: &RunConfig) -> Vec<(NodeName, &'static dyn ServiceKind)> {
    KINDS
        .iter()
        .flat_map(|&kind| (0..kind.count(config)).map(move |i| (kind.role().at(i), kind)))
        .collect()
}

/// The nodes a fault plan may name, in start order.
pub fn fault_targets(config: &RunConfig) -> Vec<NodeName> {
    nodes(config)
        .into_iter()
        .filter(|(_, kind)| kind.faultable())
        .map(|(name, _)| name)
        .collect()
}

/// Whether the code behind buggify point `point` runs on node `node`.
pub fn runs_point(node: &NodeName, point: Point) -> bool {
    kind_of(&node.role).is_some_and(|k| k.buggify_points().contains(&point))
}

/// The address book of a run's serving nodes, for the nodes that call others.
pub fn topology(config: &RunConfig) -> Topology {
    let addrs = |kind: &dyn ServiceKind| (0..kind.count(config)).map(|i| kind.addr(i)).collect();
    Topology {
        ledgers: addrs(&ledger::Ledger),
        trades: addrs(&trade::Trade),
        payments: addrs(&payment::Payment),
        clearing: (config.banks > 0).then(clearing::addr_of),
    }
}

/// An address in subnet `net`: one subnet per kind, one port per kind.
pub fn addr(net: u8, index: u32, port: u16) -> SocketAddr {
    let ip = Ipv4Addr::new(10, net, (index / 200) as u8, 1 + (index % 200) as u8);
    SocketAddr::new(IpAddr::V4(ip), port)
}

/// The address of client `client`.
pub fn client_addr(client: u32) -> SocketAddr {
    addr(2, client, 7100)
}

#[cfg(test)]
mod tests;

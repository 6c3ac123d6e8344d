//! The consistency strategy: how a movement of money across ledger shards is made atomic.
//!
//! The payment service hands a [`Movement`] to a [`Coordinator`] and gets a
//! [`MovementOutcome`] back; it never knows how the strategy works. Trade and ledger code never
//! see the strategy at all. Adding a strategy (saga, 2PC, outbox, transactional messages, a
//! naive baseline) means adding a [`StrategyKind`] and a [`Coordinator`] variant with the same
//! four operations, and nothing else.

use crate::ids::Xid;
use crate::ledger::Leg;
use crate::node::NodeEnv;
use crate::refusal::Refusal;
use crate::tcc::{Activity, TccConfig, TccManager};
use crate::topology::Topology;
use crate::transport::Transport;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One movement of money: legs on any shards that must all happen or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// The global transaction id, unique across the platform.
    pub xid: Xid,
    pub legs: Vec<Leg>,
}

/// How a movement ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MovementOutcome {
    /// Every leg was posted.
    Committed,
    /// No leg was posted; why, with the code the client is told (a branch's insufficient
    /// funds stays `insufficient-funds`).
    Aborted(Refusal),
    /// The legs ended differently: a broken platform (only planted bugs get here).
    Heuristic(String),
}

/// The strategies a run can choose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// Try / Confirm / Cancel with a fence per (xid, branch).
    #[default]
    Tcc,
}

impl StrategyKind {
    pub const ALL: &'static [StrategyKind] = &[StrategyKind::Tcc];

    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Tcc => "tcc",
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for an unknown strategy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy '{0}' (known: tcc)")]
pub struct UnknownStrategy(pub String);

impl FromStr for StrategyKind {
    type Err = UnknownStrategy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StrategyKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownStrategy(s.to_string()))
    }
}

/// A running strategy on a payment node.
#[derive(Clone)]
pub enum Coordinator {
    Tcc(TccManager),
}

impl Coordinator {
    /// Opens the strategy's own durable state on the node's disk.
    pub fn open(
        kind: StrategyKind,
        env: &NodeEnv,
        transport: Transport,
        topology: Topology,
        fsync_latency: std::time::Duration,
    ) -> Self {
        match kind {
            StrategyKind::Tcc => Coordinator::Tcc(TccManager::open(
                env,
                transport,
                topology,
                TccConfig::new(fsync_latency),
            )),
        }
    }

    /// Moves the money, or not, atomically.
    pub async fn execute(&self, movement: Movement) -> MovementOutcome {
        match self {
            Coordinator::Tcc(m) => m.execute(movement).await,
        }
    }

    /// Finishes a movement found unfinished after a restart (or reports how it ended);
    /// `None` if this node never began it.
    pub async fn resume(&self, xid: &Xid) -> Option<MovementOutcome> {
        match self {
            Coordinator::Tcc(m) => m.resume(xid).await,
        }
    }

    /// Movements begun and not yet ended.
    pub fn unfinished(&self) -> Vec<Xid> {
        match self {
            Coordinator::Tcc(m) => m.unfinished(),
        }
    }

    /// Every activity, for the god's-eye view.
    pub fn activities(&self) -> Vec<Activity> {
        match self {
            Coordinator::Tcc(m) => m.activities(),
        }
    }

    /// The activities not yet ended, for the god's-eye view of work in flight.
    pub fn unfinished_activities(&self) -> Vec<Activity> {
        match self {
            Coordinator::Tcc(m) => m.unfinished_activities(),
        }
    }

    /// The activities changed since the last call (the harness's incremental capture).
    pub fn take_changed(&self) -> Vec<Activity> {
        match self {
            Coordinator::Tcc(m) => m.take_changed(),
        }
    }

    /// Every activity, forgetting the changes so far.
    pub fn resync(&self) -> Vec<Activity> {
        match self {
            Coordinator::Tcc(m) => m.resync(),
        }
    }

    /// What a down node's disk holds durably for this strategy.
    pub fn durable_activities(kind: StrategyKind, env: &NodeEnv) -> Vec<Activity> {
        match kind {
            StrategyKind::Tcc => TccManager::durable_activities(env),
        }
    }
}

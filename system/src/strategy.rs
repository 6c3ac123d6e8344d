//! The consistency strategy: how a movement of money across ledger shards is made atomic.
//!
//! The payment service hands a [`Movement`] to a [`Coordinator`] and gets a
//! [`MovementOutcome`] back; it never knows how the strategy works. Trade and ledger code never
//! see the strategy at all. Adding a strategy (saga, 2PC, outbox, transactional messages, a
//! naive baseline) means adding a [`StrategyKind`] and a [`Coordinator`] variant with the same
//! four operations, and nothing else.

use crate::ids::Xid;
pub use crate::movement::{Movement, MovementOutcome, MovementView};
use crate::naive::NaiveCoordinator;
use crate::node::NodeEnv;
use crate::outbox::{Mode, OutboxCoordinator};
use crate::saga::SagaCoordinator;
use crate::tcc::{TccConfig, TccManager};
use crate::topology::Topology;
use crate::transport::Transport;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The strategies a run can choose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// Try / Confirm / Cancel with a fence per (xid, branch).
    #[default]
    Tcc,
    /// Try / Confirm / Cancel whose participants keep no fence rows (Seata without
    /// `useTCCFence`): an empty rollback leaves no trace, so a late Try reserves for ever.
    #[serde(rename = "tcc-nofence")]
    TccNoFence,
    /// Direct posts leg by leg, no keys, no log, no recovery ([`crate::naive`]).
    Naive,
    /// Forward steps with compensations, debits first, a saga log and recovery
    /// ([`crate::saga`]).
    Saga,
    /// Two-phase commit, XA style: the manager's protocol (prepare, the decision durable,
    /// commit or rollback) over participants whose prepared branch locks its account until
    /// the decision reaches it.
    #[serde(rename = "2pc")]
    TwoPc,
    /// The debit and its credit's row in one local write, the credit applied by an
    /// idempotent consumer of the broker ([`crate::outbox`]).
    Outbox,
    /// A half message of the credit's row before the debit, committed or rolled back after
    /// it, check-backs answered from the ledger; the credit applied by the same consumer.
    Txmsg,
}

impl StrategyKind {
    pub const ALL: &'static [StrategyKind] = &[
        StrategyKind::Tcc,
        StrategyKind::TccNoFence,
        StrategyKind::Naive,
        StrategyKind::Saga,
        StrategyKind::TwoPc,
        StrategyKind::Outbox,
        StrategyKind::Txmsg,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Tcc => "tcc",
            StrategyKind::TccNoFence => "tcc-nofence",
            StrategyKind::Naive => "naive",
            StrategyKind::Saga => "saga",
            StrategyKind::TwoPc => "2pc",
            StrategyKind::Outbox => "outbox",
            StrategyKind::Txmsg => "txmsg",
        }
    }

    /// Whether the ledger's TCC participants keep a fence row per (xid, branch).
    pub fn fenced(self) -> bool {
        self != StrategyKind::TccNoFence
    }

    /// Whether the ledger's prepared branches lock their accounts until decided.
    pub fn locking(self) -> bool {
        self == StrategyKind::TwoPc
    }

    /// What the strategy claims, from which the checkers' expectations follow.
    pub fn claims(self) -> Claims {
        match self {
            StrategyKind::Tcc => Claims {
                atomic: true,
                isolated: true,
                eventual: false,
                blocking: false,
                not_claimed: &[],
                weakness: "none under these faults: fenced participants absorb repeats, empty rollbacks and late Tries",
            },
            StrategyKind::TccNoFence => Claims {
                atomic: true,
                isolated: true,
                eventual: false,
                blocking: false,
                // The hanging Try is a branch left Tried under a rolled-back activity.
                not_claimed: &["reservation-release", "atomicity"],
                weakness: "a Try that arrives after its Cancel (an empty rollback) reserves money nobody will release: a hanging reservation",
            },
            StrategyKind::Naive => Claims {
                atomic: false,
                isolated: false,
                eventual: false,
                blocking: false,
                // Double posts and lost credits break the trade's agreement with the ledger and
                // the per-xid atomicity; money stranded in transit is a reservation never
                // released; a restarted node that posts a movement again breaks idempotency.
                not_claimed: &[
                    "trade-ledger-agreement",
                    "atomicity",
                    "reservation-release",
                    "idempotency",
                ],
                weakness: "a retried post applies twice (double charges); a credit lost after its debit is never compensated (money lost in transit); a restart forgets the movement and posts it again",
            },
            StrategyKind::Saga => Claims {
                atomic: true,
                isolated: false,
                eventual: false,
                blocking: false,
                // A compensation refused (money already spent) ends the saga heuristic.
                not_claimed: &["atomicity"],
                weakness: "no isolation: between steps the money is gone from the payer and not yet at the payee, and a compensation that must take money back can be refused once it was spent (debits first makes every compensation here a credit, which cannot be refused)",
            },
            StrategyKind::TwoPc => Claims {
                atomic: true,
                isolated: true,
                eventual: false,
                blocking: true,
                not_claimed: &[],
                weakness: "blocking: a prepared branch locks its account until the coordinator's decision reaches it, so a coordinator that crashes after prepare leaves its participants in doubt holding locks until it recovers, and other movements on those accounts are refused as locked meanwhile (latency and lock time, not lost money)",
            },
            StrategyKind::Outbox => Claims {
                atomic: true,
                isolated: false,
                eventual: true,
                blocking: false,
                not_claimed: &[],
                weakness: "eventual, with no rollback path: the payment is answered once its debit is durable and the credit follows through the broker (the payee sees it late); a credit that cannot be applied is retried and dead-lettered, never undone",
            },
            StrategyKind::Txmsg => Claims {
                atomic: true,
                isolated: false,
                eventual: true,
                blocking: false,
                not_claimed: &[],
                weakness: "eventual, and its half message waits on the producer: a payment node that dies before ending a half leaves it pending until a check-back settles the debit, and a check-back that finds the debit not yet posted settles it as never to be posted (the payment then fails); no rollback path once the debit is posted",
            },
        }
    }
}

/// The guarantees a strategy claims. A strategy that breaks an invariant it claims is a
/// finding; one that breaks an invariant it does not claim (`not_claimed`) shows its expected
/// anomaly, reported and counted, not a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// Every leg of a movement happens or none does.
    pub atomic: bool,
    /// No one sees or spends money a movement has not finished moving.
    pub isolated: bool,
    /// Legs may finish after the client's answer (judged at rest).
    pub eventual: bool,
    /// A coordinator failure can hold participants' resources until it recovers.
    pub blocking: bool,
    /// The invariants (by name) whose breaking is this strategy's documented weakness.
    pub not_claimed: &'static [&'static str],
    /// The weakness, in one sentence.
    pub weakness: &'static str,
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for an unknown strategy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy '{0}' (known: tcc, tcc-nofence, naive, saga, 2pc, outbox, txmsg)")]
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
    Tcc(Box<TccManager>),
    Naive(Box<NaiveCoordinator>),
    Saga(Box<SagaCoordinator>),
    Outbox(Box<OutboxCoordinator>),
}

impl Coordinator {
    /// Opens the strategy's own durable state on the node's disk.
    pub fn open(
        kind: StrategyKind,
        env: &NodeEnv,
        transport: Transport,
        topology: Topology,
        fsync_latency: std::time::Duration,
        broker: Option<std::net::SocketAddr>,
    ) -> Self {
        match kind {
            StrategyKind::Tcc | StrategyKind::TccNoFence | StrategyKind::TwoPc => {
                Coordinator::Tcc(Box::new(TccManager::open(
                    env,
                    transport,
                    topology,
                    TccConfig::new(fsync_latency),
                )))
            }
            StrategyKind::Naive => {
                Coordinator::Naive(Box::new(NaiveCoordinator::open(env, transport, topology)))
            }
            StrategyKind::Saga => Coordinator::Saga(Box::new(SagaCoordinator::open(
                env,
                transport,
                topology,
                fsync_latency,
            ))),
            StrategyKind::Outbox | StrategyKind::Txmsg => {
                let mode = match (kind, broker) {
                    (StrategyKind::Txmsg, Some(broker)) => Mode::Txmsg {
                        broker,
                        group: env.name.to_string(),
                    },
                    (StrategyKind::Txmsg, None) => panic!("txmsg runs with a broker"),
                    _ => Mode::Outbox,
                };
                let parts = (transport, topology);
                Coordinator::Outbox(Box::new(OutboxCoordinator::open(
                    env,
                    mode,
                    parts,
                    fsync_latency,
                )))
            }
        }
    }

    /// Moves the money, or not, atomically.
    pub async fn execute(&self, movement: Movement) -> MovementOutcome {
        match self {
            Coordinator::Tcc(m) => m.execute(movement).await,
            Coordinator::Naive(n) => n.execute(movement).await,
            Coordinator::Saga(s) => s.execute(movement).await,
            Coordinator::Outbox(o) => o.execute(movement).await,
        }
    }

    /// Finishes a movement found unfinished after a restart (or reports how it ended);
    /// `None` if this node never began it.
    pub async fn resume(&self, xid: &Xid) -> Option<MovementOutcome> {
        match self {
            Coordinator::Tcc(m) => m.resume(xid).await,
            // It keeps nothing: a movement cut short by a restart is unknown to it.
            Coordinator::Naive(_) => None,
            Coordinator::Saga(s) => s.resume(xid).await,
            Coordinator::Outbox(o) => o.resume(xid).await,
        }
    }

    /// Movements begun and not yet ended.
    pub fn unfinished(&self) -> Vec<Xid> {
        match self {
            Coordinator::Tcc(m) => m.unfinished(),
            Coordinator::Naive(_) => Vec::new(),
            Coordinator::Saga(s) => s.unfinished(),
            Coordinator::Outbox(o) => o.unfinished(),
        }
    }

    /// Every activity, for the god's-eye view.
    pub fn activities(&self) -> Vec<MovementView> {
        match self {
            Coordinator::Tcc(m) => m.activities(),
            Coordinator::Naive(n) => n.activities(),
            Coordinator::Saga(s) => s.activities(),
            Coordinator::Outbox(o) => o.activities(),
        }
    }

    /// The activities not yet ended, for the god's-eye view of work in flight.
    pub fn unfinished_activities(&self) -> Vec<MovementView> {
        match self {
            Coordinator::Tcc(m) => m.unfinished_activities(),
            Coordinator::Naive(n) => n.unfinished_activities(),
            Coordinator::Saga(s) => s.unfinished_activities(),
            Coordinator::Outbox(o) => o.unfinished_activities(),
        }
    }

    /// The activities changed since the last call (the harness's incremental capture).
    pub fn take_changed(&self) -> Vec<MovementView> {
        match self {
            Coordinator::Tcc(m) => m.take_changed(),
            Coordinator::Naive(n) => n.take_changed(),
            Coordinator::Saga(s) => s.take_changed(),
            Coordinator::Outbox(o) => o.take_changed(),
        }
    }

    /// Every activity, forgetting the changes so far.
    pub fn resync(&self) -> Vec<MovementView> {
        match self {
            Coordinator::Tcc(m) => m.resync(),
            Coordinator::Naive(n) => n.resync(),
            Coordinator::Saga(s) => s.resync(),
            Coordinator::Outbox(o) => o.resync(),
        }
    }

    /// What a down node's disk holds durably for this strategy.
    pub fn durable_activities(kind: StrategyKind, env: &NodeEnv, shards: u32) -> Vec<MovementView> {
        match kind {
            StrategyKind::Tcc | StrategyKind::TccNoFence | StrategyKind::TwoPc => {
                TccManager::durable_activities(env)
            }
            StrategyKind::Naive => Vec::new(),
            StrategyKind::Saga => SagaCoordinator::durable_activities(env, shards),
            StrategyKind::Outbox | StrategyKind::Txmsg => {
                OutboxCoordinator::durable_activities(env, shards)
            }
        }
    }
}

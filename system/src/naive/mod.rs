//! The `naive` strategy: the baseline every other strategy is measured against. A movement is
//! posted leg by leg, debits first, each leg as its own voucher through its shard's transit
//! account (`Dr payer / Cr transit`, then `Dr transit / Cr payee`), with nothing durable of its
//! own and no idempotency key: every attempt of a post carries a fresh request id, as a client
//! library that generates one per call would.
//!
//! Its weaknesses are not staged; they follow from what it lacks:
//! - a post whose reply is lost is sent again under a new id and applied twice (a double
//!   charge, or a double credit);
//! - a credit that never gets through after its debit did is not compensated: the money stays
//!   in the shard's transit account and the payment is reported failed (money lost to the
//!   payer, a trade and a ledger that disagree);
//! - it keeps no log, so a payment node that restarts mid-movement knows nothing of it: the
//!   order is carried out again from the start and posts again.
//!
//! Every voucher it posts carries its movement's xid (and its step and attempt in the request
//! id `naive:<xid>:<step>:<at_ms>.<n>`), so the checkers judge its net effect per xid. What it
//! did is kept in memory only, as a neutral movement view for the harness (begun, then
//! committed or rolled back, with its legs): a restart forgets it, as the strategy does.

use crate::ids::{AccountId, RequestId, Xid};
use crate::ledger::{LedgerCall, LedgerCommand, Leg, Side, Step};
use crate::movement::{Branch, MovementLog, MovementRecord, MovementView, Phase};
use crate::node::NodeEnv;
use crate::refusal::{Refusal, RefusalCode};
use crate::strategy::{Movement, MovementOutcome};
use crate::topology::Topology;
use crate::transport::Transport;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long one post waits for its answer.
const POST_TIMEOUT_MS: u64 = 500;
/// How many times a post is sent (each under a fresh request id).
const POST_ATTEMPTS: u32 = 3;

/// The naive coordinator of one payment node. Cheap to clone.
#[derive(Clone)]
pub struct NaiveCoordinator {
    transport: Transport,
    topology: Topology,
    env: NodeEnv,
    /// Attempts sent by this incarnation (with the clock, unique across restarts).
    sent: Arc<AtomicU64>,
    /// The movements of this incarnation, in memory only (the harness's view).
    seen: Arc<Mutex<MovementLog>>,
}

impl NaiveCoordinator {
    pub fn open(env: &NodeEnv, transport: Transport, topology: Topology) -> Self {
        NaiveCoordinator {
            transport,
            topology,
            env: env.clone(),
            sent: Arc::default(),
            seen: Arc::default(),
        }
    }

    fn seen(&self) -> MutexGuard<'_, MovementLog> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every movement this incarnation ran.
    pub fn activities(&self) -> Vec<MovementView> {
        self.seen().activities().cloned().collect()
    }

    /// The movements of this incarnation not yet ended.
    pub fn unfinished_activities(&self) -> Vec<MovementView> {
        self.seen().open_activities().cloned().collect()
    }

    /// The movements changed since the last call.
    pub fn take_changed(&self) -> Vec<MovementView> {
        self.seen().take_changed().into_iter().cloned().collect()
    }

    /// Every movement, forgetting the changes so far.
    pub fn resync(&self) -> Vec<MovementView> {
        let mut seen = self.seen();
        seen.take_changed();
        seen.activities().cloned().collect()
    }

    /// Notes what the movement did, in memory.
    fn note(&self, record: MovementRecord) {
        self.seen().apply(record);
    }

    /// Posts every leg, debits first; stops at the first leg that does not get through.
    pub async fn execute(&self, movement: Movement) -> MovementOutcome {
        let mut legs = movement.legs.clone();
        legs.sort_by_key(|l| l.side != Side::Debit);
        let xid = movement.xid.clone();
        let branches = legs
            .iter()
            .map(|l| Branch::of_leg(l, self.topology.ledger_shards()))
            .collect();
        self.note(MovementRecord::Begun {
            xid: xid.clone(),
            branches,
        });
        let mut failed = None;
        for (step, leg) in legs.iter().enumerate() {
            if let Err(refusal) = self.post(&xid, step as u32, leg).await {
                // Nothing is undone: a debit already posted stays posted.
                let detail = format!("step {step} ({}) failed: {}", leg.account, refusal.detail);
                failed = Some(Refusal::new(refusal.code, detail));
                break;
            }
        }
        let status = match failed {
            None => Phase::Committed,
            Some(_) => Phase::Aborted,
        };
        self.note(MovementRecord::Decided {
            xid: xid.clone(),
            commit: failed.is_none(),
            reason: failed.clone(),
        });
        self.note(MovementRecord::Ended {
            xid,
            status,
            heuristic: None,
        });
        failed.map_or(MovementOutcome::Committed, MovementOutcome::Aborted)
    }

    /// One leg as its own voucher through the transit account of its shard; a refusal, or
    /// `aborted` when no attempt was answered (it may have been applied).
    async fn post(&self, xid: &Xid, step: u32, leg: &Leg) -> Result<(), Refusal> {
        let shards = self.topology.ledger_shards();
        let shard = leg.account.shard(shards);
        let transit = AccountId::transit(shard, shards);
        let legs = match leg.side {
            Side::Debit => vec![*leg, Leg::credit(transit, leg.amount)],
            Side::Credit => vec![Leg::debit(transit, leg.amount), *leg],
        };
        for _ in 0..POST_ATTEMPTS {
            let n = self.sent.fetch_add(1, Ordering::SeqCst);
            let at_ms = self.env.clock.now_ms();
            let command = LedgerCommand::PostStep {
                xid: xid.clone(),
                step: Step::of(step),
                request: RequestId::new(compact_str::format_compact!(
                    "naive:{xid}:{step}:{at_ms}.{n}"
                )),
                legs: legs.clone(),
            };
            let timeout = Duration::from_millis(POST_TIMEOUT_MS);
            let dst = self.topology.ledger(shard);
            match self.transport.call(dst, LedgerCall(command), timeout).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => return Err(Refusal::new(e.code(), e.to_string())),
                Err(_) => {}
            }
        }
        Err(Refusal::new(
            RefusalCode::Aborted,
            format!("no answer after {POST_ATTEMPTS} attempts"),
        ))
    }
}

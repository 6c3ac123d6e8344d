//! The `saga` strategy (Garcia-Molina & Salem): a movement is a sequence of local steps, each
//! a voucher posted at once (no reservation), debits first; if a step is refused, the steps
//! already done are compensated in reverse order by vouchers that undo them. A saga log on the
//! payment node's disk makes it recoverable: `Begun` is durable before the first step and
//! `Failed` before the first compensation, so a restarted node carries every unfinished saga
//! forward, or on with its compensation; `Ended` is durable before the outcome is handed
//! back. Every step and compensation is posted under its own
//! key (`saga:<xid>:<step>` and `…:undo`), so repeating one after a lost reply or a restart
//! applies it once; a step whose answer never comes is asked again until it comes (forward
//! recovery), never compensated blind.
//!
//! What it gives up is isolation: between its steps the money is visibly gone from the payer
//! and not yet at the payee, and a compensation must take back what a step gave, which can be
//! refused once the money was spent (the saga then ends heuristic: its books do not net out).
//! Debits first makes every compensation here a credit back, which a ledger never refuses, so
//! under this workload that anomaly cannot happen; the comparison says so rather than stage it.

use crate::ids::{AccountId, RequestId, Xid};
use crate::ledger::{LedgerCall, LedgerCommand, Leg, Side, Step};
use crate::log::DurableLog;
use crate::movement::{Branch, MovementLog, MovementRecord, MovementView, Phase};
use crate::node::NodeEnv;
use crate::probes::names;
use crate::refusal::Refusal;
use crate::strategy::{Movement, MovementOutcome};
use crate::topology::Topology;
use crate::transport::{RetryPolicy, Transport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The saga log's file on the payment node's disk.
pub const LOG_FILE: &str = "saga.log";

/// One durable change to the saga log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SagaRecord {
    Begun {
        xid: Xid,
        legs: Vec<Leg>,
    },
    /// Step `step` was refused: steps `0..step` are compensated.
    Failed {
        xid: Xid,
        step: u32,
        reason: Refusal,
    },
    /// Every step done, or every done step compensated (`compensated`), or a compensation
    /// refused (`heuristic`).
    Ended {
        xid: Xid,
        compensated: bool,
        heuristic: Option<String>,
    },
}

/// One saga as its log stands: how many steps, the refused one, and its phase if it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaSummary {
    pub xid: Xid,
    pub steps: u32,
    pub failed: Option<u32>,
    /// `Committed` (every step done), `Aborted` (compensated) or `Heuristic`; `None` while
    /// it runs.
    pub ended: Option<Phase>,
}

/// The saga log's fold: each saga's legs and where it stands, and the neutral view.
#[derive(Debug, Default)]
struct Sagas {
    legs: BTreeMap<Xid, Vec<Leg>>,
    failed: BTreeMap<Xid, (u32, Refusal)>,
    view: MovementLog,
}

impl Sagas {
    /// Each saga as the log says it stands: its legs, the refused step, its end.
    fn summaries(&self) -> Vec<SagaSummary> {
        let summary = |(xid, legs): (&Xid, &Vec<Leg>)| SagaSummary {
            xid: xid.clone(),
            steps: legs.len() as u32,
            failed: self.failed.get(xid).map(|(step, _)| *step),
            ended: (self.view.get(xid).map(|a| a.status)).filter(|s| s.is_terminal()),
        };
        self.legs.iter().map(summary).collect()
    }

    fn apply(&mut self, record: SagaRecord, shards: u32) {
        match record {
            SagaRecord::Begun { xid, legs } => {
                let branches = legs.iter().map(|l| Branch::of_leg(l, shards)).collect();
                self.legs.insert(xid.clone(), legs);
                self.view.apply(MovementRecord::Begun { xid, branches });
            }
            SagaRecord::Failed { xid, step, reason } => {
                self.failed.insert(xid.clone(), (step, reason.clone()));
                let reason = Some(reason);
                let commit = false;
                self.view.apply(MovementRecord::Decided {
                    xid,
                    commit,
                    reason,
                });
            }
            SagaRecord::Ended {
                xid,
                compensated,
                heuristic,
            } => {
                if !compensated {
                    let (commit, reason) = (true, None);
                    let decided = MovementRecord::Decided {
                        xid: xid.clone(),
                        commit,
                        reason,
                    };
                    self.view.apply(decided);
                }
                let status = match (&heuristic, compensated) {
                    (Some(_), _) => Phase::Heuristic,
                    (None, true) => Phase::Aborted,
                    (None, false) => Phase::Committed,
                };
                let ended = MovementRecord::Ended {
                    xid,
                    status,
                    heuristic,
                };
                self.view.apply(ended);
            }
        }
    }
}

/// One saga step's or compensation's voucher: the leg through its shard's transit account,
/// the other way round for a compensation.
fn voucher_legs(leg: &Leg, shards: u32, undo: bool) -> Vec<Leg> {
    let transit = AccountId::transit(leg.account.shard(shards), shards);
    let (amount, debit) = (leg.amount, (leg.side == Side::Debit) != undo);
    if debit {
        vec![
            Leg::debit(leg.account, amount),
            Leg::credit(transit, amount),
        ]
    } else {
        vec![
            Leg::debit(transit, amount),
            Leg::credit(leg.account, amount),
        ]
    }
}

/// How each step and compensation is asked: until it is answered.
const STEP_POLICY: RetryPolicy = RetryPolicy {
    attempts_max: u32::MAX,
    timeout: Duration::from_millis(500),
    backoff: Duration::from_millis(20),
    backoff_max: Duration::from_millis(1_000),
};

/// The saga coordinator of one payment node. Cheap to clone.
#[derive(Clone)]
pub struct SagaCoordinator {
    log: DurableLog<SagaRecord>,
    sagas: Arc<Mutex<Sagas>>,
    transport: Transport,
    topology: Topology,
    probes: crate::probes::Probes,
}

impl SagaCoordinator {
    /// Opens the saga log on the node's disk and folds it; the owner resumes what is open.
    pub fn open(env: &NodeEnv, transport: Transport, topology: Topology, fsync: Duration) -> Self {
        let log = DurableLog::open(env, LOG_FILE, fsync);
        let (records, report) = log.replay();
        if report.torn_bytes > 0 {
            env.probes.hit(names::RECOVERY_TORN_TAIL_CUT);
        }
        let sagas = fold(&records, topology.ledger_shards());
        SagaCoordinator {
            log,
            sagas: Arc::new(Mutex::new(sagas)),
            transport,
            topology,
            probes: env.probes.clone(),
        }
    }

    /// What the saga log on a down node's disk holds durably, as the neutral view.
    pub fn durable_activities(env: &NodeEnv, shards: u32) -> Vec<MovementView> {
        let log = DurableLog::<SagaRecord>::open(env, LOG_FILE, Duration::ZERO);
        let sagas = fold(&log.read_durable(), shards);
        sagas.view.activities().cloned().collect()
    }

    /// Every saga in the log on a node's disk, durable part only: what the harness's
    /// saga-log checker compares with the ledger at rest.
    pub fn durable_sagas(env: &NodeEnv, shards: u32) -> Vec<SagaSummary> {
        let log = DurableLog::<SagaRecord>::open(env, LOG_FILE, Duration::ZERO);
        fold(&log.read_durable(), shards).summaries()
    }

    fn lock(&self) -> MutexGuard<'_, Sagas> {
        self.sagas.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn write(&self, record: SagaRecord, sync: bool) {
        {
            let mut sagas = self.lock();
            self.log.append(&record);
            sagas.apply(record, self.topology.ledger_shards());
        }
        if sync {
            self.log.sync().await;
        }
    }

    /// Runs a new saga to its end.
    pub async fn execute(&self, movement: Movement) -> MovementOutcome {
        let mut legs = movement.legs;
        legs.sort_by_key(|l| l.side != Side::Debit);
        let xid = movement.xid;
        self.write(
            SagaRecord::Begun {
                xid: xid.clone(),
                legs,
            },
            true,
        )
        .await;
        self.run(xid).await
    }

    /// Finishes a saga found in the log after a restart (or reports how it ended); `None`
    /// if it was never begun here.
    pub async fn resume(&self, xid: &Xid) -> Option<MovementOutcome> {
        let open = !self.lock().view.get(xid)?.status.is_terminal();
        if open {
            self.probes.hit(names::SAGA_RESUMED);
        }
        Some(self.run(xid.clone()).await)
    }

    /// Forward through every step, or back through the compensations; the outcome.
    async fn run(&self, xid: Xid) -> MovementOutcome {
        if let Some(ended) = self
            .lock()
            .view
            .get(&xid)
            .filter(|a| a.status.is_terminal())
        {
            return crate::tcc::engine::outcome_of(ended);
        }
        let (legs, failed) = {
            let sagas = self.lock();
            (sagas.legs[&xid].clone(), sagas.failed.get(&xid).cloned())
        };
        let failed = match failed {
            Some(failed) => Some(failed),
            None => self.forward(&xid, &legs).await,
        };
        let Some((step, reason)) = failed else {
            self.end(&xid, false, None).await;
            return MovementOutcome::Committed;
        };
        let heuristic = self.compensate(&xid, &legs[..step as usize]).await;
        if step > 0 {
            self.probes.hit(match heuristic {
                None => names::SAGA_COMPENSATED,
                Some(_) => names::SAGA_COMPENSATION_REFUSED,
            });
        }
        self.end(&xid, true, heuristic.clone()).await;
        match heuristic {
            None => MovementOutcome::Aborted(reason),
            Some(why) => MovementOutcome::Heuristic(why),
        }
    }

    /// Every step in order (a repeat answers as the first time); the refused step, if any,
    /// recorded durably before any compensation.
    async fn forward(&self, xid: &Xid, legs: &[Leg]) -> Option<(u32, Refusal)> {
        for (step, leg) in legs.iter().enumerate() {
            let step = step as u32;
            if let Err(reason) = self.post(xid, Step::of(step), leg).await {
                let failed = SagaRecord::Failed {
                    xid: xid.clone(),
                    step,
                    reason: reason.clone(),
                };
                self.write(failed, true).await;
                return Some((step, reason));
            }
        }
        None
    }

    /// Undoes `done` in reverse order; why it could not, if a compensation was refused.
    async fn compensate(&self, xid: &Xid, done: &[Leg]) -> Option<String> {
        for (step, leg) in done.iter().enumerate().rev() {
            if let Err(refusal) = self.post(xid, Step::undo(step as u32), leg).await {
                return Some(format!(
                    "compensation of step {step} refused: {}",
                    refusal.detail
                ));
            }
        }
        None
    }

    /// The saga's end, durable before the outcome is handed back: the client is told it, and a
    /// restart must not find the saga still running (it would carry it on, and the payment
    /// it answered would look undecided).
    async fn end(&self, xid: &Xid, compensated: bool, heuristic: Option<String>) {
        let ended = SagaRecord::Ended {
            xid: xid.clone(),
            compensated,
            heuristic,
        };
        self.write(ended, true).await;
    }

    /// Posts one step (or its compensation) under its key, until answered.
    async fn post(&self, xid: &Xid, step: Step, leg: &Leg) -> Result<(), Refusal> {
        let shards = self.topology.ledger_shards();
        let (index, undo) = (step.index, step.undo);
        let request = match undo {
            false => format!("saga:{xid}:{index}"),
            true => format!("saga:{xid}:{index}:undo"),
        };
        let command = LedgerCommand::PostStep {
            xid: xid.clone(),
            step,
            request: RequestId::new(request),
            legs: voucher_legs(leg, shards, undo),
        };
        let dst = self.topology.ledger(leg.account.shard(shards));
        loop {
            let call = LedgerCall(command.clone());
            match self
                .transport
                .call_with_retry(dst, call, STEP_POLICY)
                .await
                .result
            {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => return Err(Refusal::new(e.code(), e.to_string())),
                Err(_) => {}
            }
        }
    }

    pub fn unfinished(&self) -> Vec<Xid> {
        self.lock().view.unfinished()
    }
    pub fn activities(&self) -> Vec<MovementView> {
        self.lock().view.activities().cloned().collect()
    }
    pub fn unfinished_activities(&self) -> Vec<MovementView> {
        self.lock().view.open_activities().cloned().collect()
    }
    pub fn take_changed(&self) -> Vec<MovementView> {
        let mut sagas = self.lock();
        sagas.view.take_changed().into_iter().cloned().collect()
    }
    pub fn resync(&self) -> Vec<MovementView> {
        let mut sagas = self.lock();
        sagas.view.take_changed();
        sagas.view.activities().cloned().collect()
    }
}

fn fold(records: &[SagaRecord], shards: u32) -> Sagas {
    let mut sagas = Sagas::default();
    for r in records {
        sagas.apply(r.clone(), shards);
    }
    sagas
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Amount;

    fn leg(side: Side, account: u64) -> Leg {
        let amount = Amount::from_fen(500).expect("valid");
        Leg {
            account: AccountId(account),
            side,
            amount,
        }
    }

    #[test]
    fn a_compensation_is_the_step_the_other_way_round() {
        let debit = leg(Side::Debit, 9);
        let forward = voucher_legs(&debit, 4, false);
        let undo = voucher_legs(&debit, 4, true);
        assert_eq!(forward[0].side, Side::Debit);
        assert_eq!(forward[0].account, AccountId(9));
        assert_eq!(undo[1].side, Side::Credit);
        assert_eq!(undo[1].account, AccountId(9));
        assert_eq!(
            forward[1].account, undo[0].account,
            "both through the transit account"
        );
    }

    #[test]
    fn the_log_folds_into_the_neutral_view() {
        let xid = Xid::from("x1");
        let legs = vec![leg(Side::Debit, 9), leg(Side::Credit, 10)];
        let begun = SagaRecord::Begun {
            xid: xid.clone(),
            legs,
        };
        let failed = SagaRecord::Failed {
            xid: xid.clone(),
            step: 1,
            reason: Refusal::new(crate::refusal::RefusalCode::Aborted, "no"),
        };
        let ended = SagaRecord::Ended {
            xid: xid.clone(),
            compensated: true,
            heuristic: None,
        };
        let failed_again = |xid: &Xid| SagaRecord::Failed {
            xid: xid.clone(),
            step: 1,
            reason: Refusal::new(crate::refusal::RefusalCode::Aborted, "no"),
        };
        let sagas = fold(&[begun.clone(), failed], 4);
        assert_eq!(
            sagas.view.get(&xid).map(|a| a.status),
            Some(Phase::Aborting)
        );
        assert_eq!(sagas.view.unfinished(), vec![xid.clone()]);
        let sagas = fold(&[begun.clone(), failed_again(&xid), ended], 4);
        assert_eq!(sagas.view.get(&xid).map(|a| a.status), Some(Phase::Aborted));
        let done = SagaRecord::Ended {
            xid: xid.clone(),
            compensated: false,
            heuristic: None,
        };
        let sagas = fold(&[begun, done], 4);
        let a = sagas.view.get(&xid).expect("the saga");
        assert_eq!(a.status, Phase::Committed);
        assert_eq!(
            a.history,
            [Phase::Running, Phase::Committing, Phase::Committed]
        );
    }
}

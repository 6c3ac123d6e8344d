//! The TCC business-activity manager (业务活动管理器): drives Try, logs the decision, drives
//! Confirm or Cancel until every branch has answered, and resumes unfinished activities from
//! its log after a restart.
//!
//! The rules it keeps, each for a reason:
//! - `Begun` is durable before any Try, so after a crash the manager knows every branch it may
//!   have reserved, and can cancel it.
//! - COMMIT is durable before any Confirm: once one branch is confirmed, recovery must never
//!   roll the others back (the planted bug `tcc-decision-not-durable` breaks exactly this).
//! - Try is sent once, with a timeout; no answer means rollback. The activity is never left
//!   waiting on a Try, and a Try that arrives after its Cancel is refused by the fence.
//! - Phase two is retried until every branch answers, because the participants are idempotent.

use super::activity::{Activity, ActivityLog, ActivityRecord, ActivityStatus, Branch};
use crate::buggify::Point;
use crate::bugs::Bug;
use crate::ledger::{BranchKey, LedgerCall, LedgerCommand, LedgerReply, TccAction};
use crate::log::DurableLog;
use crate::node::NodeEnv;
use crate::probes::names;
use crate::strategy::{Movement, MovementOutcome};
use crate::topology::Topology;
use crate::transport::{RetryPolicy, RpcError, Transport};
use futures_util::future::join_all;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The activity log's file on the manager node's disk.
pub const LOG_FILE: &str = "tcc.log";

/// How a TCC manager behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TccConfig {
    pub fsync_latency: Duration,
    /// How long a Try may take before the activity is rolled back.
    pub try_timeout: Duration,
    /// How phase two is retried; its attempts are unbounded in practice.
    pub phase_two: RetryPolicy,
}

impl TccConfig {
    pub fn new(fsync_latency: Duration) -> Self {
        TccConfig {
            fsync_latency,
            try_timeout: Duration::from_millis(500),
            phase_two: RetryPolicy {
                attempts_max: u32::MAX,
                timeout: Duration::from_millis(500),
                backoff: Duration::from_millis(20),
                backoff_max: Duration::from_millis(1_000),
            },
        }
    }
}

/// A running manager. Cheap to clone; clones share the log and state.
#[derive(Clone)]
pub struct TccManager {
    log: DurableLog<ActivityRecord>,
    state: Arc<Mutex<ActivityLog>>,
    transport: Transport,
    topology: Topology,
    env: NodeEnv,
    config: TccConfig,
}

impl TccManager {
    /// Opens the manager's log on the node's disk and folds it. Nothing is resumed yet: the
    /// owner calls [`TccManager::resume`] for every unfinished activity.
    pub fn open(
        env: &NodeEnv,
        transport: Transport,
        topology: Topology,
        config: TccConfig,
    ) -> Self {
        let log = DurableLog::open(env, LOG_FILE, config.fsync_latency);
        let (records, report) = log.replay();
        if report.torn_bytes > 0 {
            env.probes.hit(names::RECOVERY_TORN_TAIL_CUT);
        }
        TccManager {
            log,
            state: Arc::new(Mutex::new(ActivityLog::recover(&records))),
            transport,
            topology,
            env: env.clone(),
            config,
        }
    }

    /// What the activity log on a down node's disk holds durably.
    pub fn durable_activities(env: &NodeEnv) -> Vec<Activity> {
        let log = DurableLog::<ActivityRecord>::open(env, LOG_FILE, Duration::ZERO);
        ActivityLog::recover(&log.read_durable())
            .activities()
            .cloned()
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, ActivityLog> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self, record: ActivityRecord) {
        let mut state = self.lock();
        self.log.append(&record);
        state.apply(record);
    }

    pub fn activities(&self) -> Vec<Activity> {
        self.lock().activities().cloned().collect()
    }

    pub fn unfinished(&self) -> Vec<String> {
        self.lock().unfinished()
    }

    /// Runs one activity from Begun to Ended.
    pub async fn execute(&self, movement: Movement) -> MovementOutcome {
        let shards = self.topology.ledger_shards();
        let branches: Vec<Branch> = movement
            .legs
            .iter()
            .map(|leg| Branch {
                shard: leg.account.shard(shards),
                action: match leg.side {
                    crate::ledger::Side::Debit => TccAction::Debit {
                        account: leg.account,
                        amount: leg.amount,
                    },
                    crate::ledger::Side::Credit => TccAction::Credit {
                        account: leg.account,
                        amount: leg.amount,
                    },
                },
            })
            .collect();
        let xid = movement.xid;
        self.write(ActivityRecord::Begun {
            xid: xid.clone(),
            branches: branches.clone(),
        });
        self.log.sync().await;

        let refusal = self.try_all(&xid, &branches).await;
        let commit = refusal.is_none();
        let decided = ActivityRecord::Decided {
            xid: xid.clone(),
            commit,
            reason: refusal,
        };
        let late_decision = commit && self.env.bugs.is(Bug::TccDecisionNotDurable);
        if late_decision {
            // The planted bug: phase two starts before COMMIT is even written.
            let outcome = self.phase_two(&xid, true).await;
            self.write(decided);
            return self.end(&xid, outcome);
        }
        self.write(decided);
        // COMMIT must be durable before the first Confirm leaves. A rollback would be chosen
        // again by recovery anyway, but its reason is what the client will be told, and an
        // answer once given must never change: so it is made durable too.
        self.log.sync().await;
        if commit {
            let (buggify, probes) = (&self.env.buggify, &self.env.probes);
            buggify.window(Point::CommitToPhaseTwo, probes).await;
        }
        let outcome = self.phase_two(&xid, commit).await;
        self.end(&xid, outcome)
    }

    /// Finishes an activity found in the log after a restart; `None` if it was never begun.
    pub async fn resume(&self, xid: &str) -> Option<MovementOutcome> {
        let status = self.lock().get(xid)?.status;
        let commit = match status {
            ActivityStatus::Trying => {
                self.env.probes.hit(names::TCC_RESUMED_ROLLBACK);
                self.write(ActivityRecord::Decided {
                    xid: xid.to_string(),
                    commit: false,
                    reason: Some("the manager restarted before deciding".into()),
                });
                false
            }
            ActivityStatus::Committing => {
                self.env.probes.hit(names::TCC_RESUMED_COMMIT);
                true
            }
            ActivityStatus::RollingBack => {
                self.env.probes.hit(names::TCC_RESUMED_ROLLBACK);
                false
            }
            _ => return Some(self.outcome(xid)),
        };
        let outcome = self.phase_two(xid, commit).await;
        Some(self.end(xid, outcome))
    }

    /// Tries every branch at once. `None` if all reserved; otherwise why not.
    async fn try_all(&self, xid: &str, branches: &[Branch]) -> Option<String> {
        let tries: Vec<_> = branches
            .iter()
            .enumerate()
            .map(|(i, branch)| {
                let call = LedgerCall(LedgerCommand::TccTry {
                    branch: BranchKey {
                        xid: xid.to_string(),
                        branch: i as u32,
                    },
                    action: branch.action,
                });
                let dst = self.topology.ledger(branch.shard);
                self.transport.call(dst, call, self.config.try_timeout)
            })
            .collect();
        let mut refusal = None;
        for (i, answer) in join_all(tries).await.into_iter().enumerate() {
            let reason = match answer {
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => {
                    self.env.probes.hit(names::TCC_TRY_REFUSED);
                    format!("branch {i} refused Try: {e}")
                }
                Err(RpcError::Timeout(_)) | Err(RpcError::Io(_)) => {
                    self.env.probes.hit(names::TCC_TRY_TIMEOUT);
                    format!("branch {i} did not answer Try")
                }
            };
            refusal.get_or_insert(reason);
        }
        refusal
    }

    /// Confirms or cancels every branch until each answers. Returns the refusals, if any.
    async fn phase_two(&self, xid: &str, commit: bool) -> Vec<String> {
        let branches = self
            .lock()
            .get(xid)
            .expect("activity exists")
            .branches
            .clone();
        let calls: Vec<_> = branches
            .iter()
            .enumerate()
            .map(|(i, branch)| {
                let key = BranchKey {
                    xid: xid.to_string(),
                    branch: i as u32,
                };
                let command = if commit {
                    LedgerCommand::TccConfirm { branch: key }
                } else {
                    LedgerCommand::TccCancel { branch: key }
                };
                let dst = self.topology.ledger(branch.shard);
                async move {
                    let retried = self
                        .transport
                        .call_with_retry(dst, LedgerCall(command), self.config.phase_two)
                        .await;
                    if retried.attempts > 1 {
                        self.env.probes.hit(names::TCC_PHASE_TWO_RETRY);
                    }
                    retried.result
                }
            })
            .collect();
        let mut refusals = Vec::new();
        for (i, answer) in join_all(calls).await.into_iter().enumerate() {
            match answer {
                Ok(Ok(LedgerReply::Confirmed | LedgerReply::Cancelled)) => {}
                Ok(Ok(other)) => refusals.push(format!("branch {i} answered {other:?}")),
                Ok(Err(e)) => refusals.push(format!("branch {i} refused: {e}")),
                Err(e) => refusals.push(format!("branch {i} never answered: {e}")),
            }
        }
        refusals
    }

    /// Writes the end of an activity (not synced: a lost end is redone idempotently).
    fn end(&self, xid: &str, refusals: Vec<String>) -> MovementOutcome {
        let status = self.lock().get(xid).expect("activity exists").status;
        let ended = match (status, refusals.is_empty()) {
            (ActivityStatus::Committing, true) => ActivityStatus::Committed,
            (ActivityStatus::RollingBack, true) => ActivityStatus::RolledBack,
            _ => {
                self.env.probes.hit(names::TCC_HEURISTIC);
                ActivityStatus::Heuristic
            }
        };
        let reason = (!refusals.is_empty()).then(|| refusals.join("; "));
        self.write(ActivityRecord::Ended {
            xid: xid.to_string(),
            status: ended,
            reason,
        });
        self.outcome(xid)
    }

    fn outcome(&self, xid: &str) -> MovementOutcome {
        let state = self.lock();
        let a = state.get(xid).expect("activity exists");
        let reason = a.reason.clone().unwrap_or_default();
        match a.status {
            ActivityStatus::Committed => MovementOutcome::Committed,
            ActivityStatus::RolledBack => MovementOutcome::Aborted(reason),
            ActivityStatus::Heuristic => MovementOutcome::Heuristic(reason),
            other => unreachable!("outcome of an unfinished activity ({other:?})"),
        }
    }
}

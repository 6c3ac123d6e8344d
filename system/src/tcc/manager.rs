//! The TCC business-activity manager's runtime (业务活动管理器): a thin async shell around
//! the pure [`TccEngine`], which holds every decision (see [`super::engine`] for the rules).
//! The shell appends the records the engine emits to the durable log under the same lock as
//! the step that emitted them, performs the engine's effects (fsync, Try with its timeout,
//! Confirm/Cancel retried, the buggify window) concurrently, and feeds each result back.

use super::engine::{Input, Output, PhaseTwoAnswer, TccEngine, TryAnswer};
use crate::ids::{ShardId, Xid};
use crate::ledger::{BranchKey, LedgerCall, LedgerCommand, LedgerReply, LegAction, Side};
use crate::log::DurableLog;
use crate::movement::{Branch, MovementLog, MovementRecord, MovementView};
use crate::node::NodeEnv;
use crate::probes::names;
use crate::refusal::Refusal;
use crate::strategy::{Movement, MovementOutcome};
use crate::topology::Topology;
use crate::transport::{RetryPolicy, Transport};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The activity log's file on the manager node's disk.
pub const LOG_FILE: &str = "tcc.log";

/// How long a Try may take before the activity is rolled back.
const TRY_TIMEOUT_MS: u64 = 500;

/// How long one Confirm or Cancel attempt waits for its answer.
const PHASE_TWO_TIMEOUT_MS: u64 = 500;

/// The pause after the first unanswered phase-two attempt; it doubles up to the maximum.
const PHASE_TWO_BACKOFF_MS: u64 = 20;
const PHASE_TWO_BACKOFF_MS_MAX: u64 = 1_000;

/// How a TCC manager behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TccConfig {
    pub fsync_latency: Duration,
    /// How long a Try may take before the activity is rolled back.
    pub try_timeout: Duration,
    /// How phase two is retried; its attempts are unbounded in practice, and the engine sends
    /// it again should they run out.
    pub phase_two: RetryPolicy,
}

impl TccConfig {
    pub fn new(fsync_latency: Duration) -> Self {
        TccConfig {
            fsync_latency,
            try_timeout: Duration::from_millis(TRY_TIMEOUT_MS),
            phase_two: RetryPolicy {
                attempts_max: u32::MAX,
                timeout: Duration::from_millis(PHASE_TWO_TIMEOUT_MS),
                backoff: Duration::from_millis(PHASE_TWO_BACKOFF_MS),
                backoff_max: Duration::from_millis(PHASE_TWO_BACKOFF_MS_MAX),
            },
        }
    }
}

/// A running manager. Cheap to clone; clones share the log and state.
#[derive(Clone)]
pub struct TccManager {
    log: DurableLog<MovementRecord>,
    state: Arc<Mutex<TccEngine>>,
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
            state: Arc::new(Mutex::new(TccEngine::new(
                MovementLog::recover(&records),
                env.bugs,
            ))),
            transport,
            topology,
            env: env.clone(),
            config,
        }
    }

    /// What the activity log on a down node's disk holds durably.
    pub fn durable_activities(env: &NodeEnv) -> Vec<MovementView> {
        let log = DurableLog::<MovementRecord>::open(env, LOG_FILE, Duration::ZERO);
        MovementLog::recover(&log.read_durable())
            .activities()
            .cloned()
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, TccEngine> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn activities(&self) -> Vec<MovementView> {
        self.lock().log().activities().cloned().collect()
    }

    pub fn unfinished(&self) -> Vec<Xid> {
        self.lock().log().unfinished()
    }

    /// The activities not yet ended (what the harness's drain polls), without copying the rest.
    pub fn unfinished_activities(&self) -> Vec<MovementView> {
        self.lock().log().open_activities().cloned().collect()
    }

    /// The activities changed since the last call (the harness's incremental capture).
    pub fn take_changed(&self) -> Vec<MovementView> {
        self.lock()
            .log_mut()
            .take_changed()
            .into_iter()
            .cloned()
            .collect()
    }

    /// Every activity, forgetting the changes so far (a whole read the next
    /// [`TccManager::take_changed`] continues from).
    pub fn resync(&self) -> Vec<MovementView> {
        let mut engine = self.lock();
        engine.log_mut().take_changed();
        engine.log().activities().cloned().collect()
    }

    /// Runs one activity from Begun to Ended.
    pub async fn execute(&self, movement: Movement) -> MovementOutcome {
        let shards = self.topology.ledger_shards();
        let branches = movement
            .legs
            .iter()
            .map(|leg| Branch {
                shard: leg.account.shard(shards),
                action: match leg.side {
                    Side::Debit => LegAction::Debit {
                        account: leg.account,
                        amount: leg.amount,
                    },
                    Side::Credit => LegAction::Credit {
                        account: leg.account,
                        amount: leg.amount,
                    },
                },
            })
            .collect();
        let xid = movement.xid;
        self.drive(Input::Begin { xid, branches }).await
    }

    /// Finishes an activity found in the log after a restart; `None` if it was never begun.
    pub async fn resume(&self, xid: &Xid) -> Option<MovementOutcome> {
        self.lock().log().get(xid)?;
        Some(self.drive(Input::Resume { xid: xid.clone() }).await)
    }

    /// Steps the engine from `first` until it finishes the activity: appends under the lock,
    /// every other effect concurrently, each result fed back as it arrives.
    async fn drive(&self, first: Input) -> MovementOutcome {
        let mut inputs = VecDeque::from([first]);
        let mut effects = FuturesUnordered::new();
        // Where the log ended when the engine last asked for a sync (after its Begun or its
        // decision): what the outcome handed back depends on.
        let mut promised = None;
        loop {
            while let Some(input) = inputs.pop_front() {
                let outputs = {
                    let mut engine = self.lock();
                    let outputs = engine.step(input);
                    for output in &outputs {
                        match output {
                            Output::Append(record) => self.log.append(record),
                            Output::Sync { .. } => promised = Some(self.log.mark()),
                            _ => {}
                        }
                    }
                    outputs
                };
                for output in outputs {
                    match output {
                        Output::Append(_) => {}
                        Output::Probe(name) => self.env.probes.hit(name),
                        Output::Finish { outcome, .. } => {
                            // Invariant 19, reply form: the decision the outcome comes from
                            // is durable as the outcome is handed back.
                            if let Some(mark) = promised {
                                self.log.witness_reply(mark);
                            }
                            return outcome;
                        }
                        effect => effects.push(self.perform(effect)),
                    }
                }
            }
            let next = effects.next().await;
            inputs.push_back(next.expect("an unfinished activity waits on an effect"));
        }
    }

    /// Performs one effect and says what came of it.
    fn perform(&self, effect: Output) -> BoxFuture<'_, Input> {
        Box::pin(async move {
            match effect {
                Output::Sync { xid } => {
                    self.log.sync().await;
                    Input::Synced { xid }
                }
                Output::Window { xid, point } => {
                    let (buggify, probes) = (&self.env.buggify, &self.env.probes);
                    buggify.window(point, probes).await;
                    Input::WindowPassed { xid }
                }
                Output::Try {
                    xid,
                    branch,
                    shard,
                    action,
                } => {
                    let key = BranchKey {
                        xid: xid.clone(),
                        branch,
                    };
                    let call = LedgerCall(LedgerCommand::TccTry {
                        branch: key,
                        action,
                    });
                    let dst = self.topology.ledger(shard);
                    let answer = match self
                        .transport
                        .call(dst, call, self.config.try_timeout)
                        .await
                    {
                        Ok(Ok(_)) => TryAnswer::Reserved,
                        Ok(Err(e)) => TryAnswer::Refused(Refusal::new(e.code(), e.to_string())),
                        Err(_) => TryAnswer::NoAnswer,
                    };
                    Input::TryAnswered {
                        xid,
                        branch,
                        answer,
                    }
                }
                Output::PhaseTwo {
                    xid,
                    branch,
                    shard,
                    commit,
                } => self.phase_two(xid, branch, shard, commit).await,
                Output::Append(_) | Output::Probe(_) | Output::Finish { .. } => {
                    unreachable!("performed by the drive loop")
                }
            }
        })
    }

    /// Confirm or Cancel one branch, retried until it answers (or the policy runs out, in which
    /// case the engine sends it again).
    async fn phase_two(&self, xid: Xid, branch: u32, shard: ShardId, commit: bool) -> Input {
        let key = BranchKey {
            xid: xid.clone(),
            branch,
        };
        let command = if commit {
            LedgerCommand::TccConfirm { branch: key }
        } else {
            LedgerCommand::TccCancel { branch: key }
        };
        let dst = self.topology.ledger(shard);
        let retried = self
            .transport
            .call_with_retry(dst, LedgerCall(command), self.config.phase_two)
            .await;
        let answer = match retried.result {
            Ok(Ok(LedgerReply::Confirmed | LedgerReply::Cancelled)) => PhaseTwoAnswer::Done,
            Ok(Ok(other)) => PhaseTwoAnswer::Refused(format!("answered {other:?}")),
            Ok(Err(e)) => PhaseTwoAnswer::Refused(format!("refused: {e}")),
            Err(_) => PhaseTwoAnswer::NoAnswer,
        };
        Input::PhaseTwoAnswered {
            xid,
            branch,
            answer,
            attempts: retried.attempts,
        }
    }
}

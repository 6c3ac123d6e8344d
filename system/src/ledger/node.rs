//! The ledger node shell: serves [`LedgerCall`]s, makes every change durable before replying,
//! and rebuilds its core from the log when (re)started.

use super::changes::LedgerChanges;
use super::core::{Decision, LedgerCore, LedgerRecord};
use super::fence::FenceRefusal;
use super::types::{LedgerCall, LedgerCommand, LedgerError};
use crate::ids::ShardId;
use crate::log::DurableLog;
use crate::node::NodeEnv;
use crate::probes::names;
use crate::transport::Transport;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The TCC protocol corner a decision reaches, if any: what the scenario tests look for.
fn tcc_corner(command: &LedgerCommand, decision: &Decision) -> Option<&'static str> {
    use LedgerCommand::{TccCancel, TccConfirm, TccTry};
    match (command, decision) {
        (TccCancel { .. }, Decision::Write(LedgerRecord::TccSuspended { .. })) => {
            Some(names::TCC_EMPTY_ROLLBACK)
        }
        (TccTry { .. }, Decision::Reply(Err(LedgerError::Fence(FenceRefusal::TryAfterCancel)))) => {
            Some(names::TCC_LATE_TRY_REFUSED)
        }
        (TccConfirm { .. }, Decision::Reply(Ok(_))) => Some(names::TCC_CONFIRM_REPEAT_ABSORBED),
        (TccCancel { .. }, Decision::Reply(Ok(_))) => Some(names::TCC_CANCEL_REPEAT_ABSORBED),
        _ => None,
    }
}

/// The log file of a ledger shard on its node's disk.
pub const LOG_FILE: &str = "ledger.log";

/// A TCC branch step is the business-activity manager's: refused, before anything is read or
/// written, from any caller but a payment node. Every other command is anyone's to ask.
fn authorize(
    command: &LedgerCommand,
    from: SocketAddr,
    callers: &[SocketAddr],
) -> Result<(), LedgerError> {
    match command.branch_step() {
        Some(step) if !crate::transport::sent_by(from, callers) => Err(LedgerError::Unauthorized {
            step: step.to_string(),
            caller: from.to_string(),
        }),
        _ => Ok(()),
    }
}

/// How a ledger node is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    pub shard: ShardId,
    pub shards: u32,
    /// The simulated cost of one fsync (shared by concurrent posts: group commit).
    pub fsync_latency: Duration,
    /// The payment nodes: the only callers that may take TCC branch steps (known by the
    /// address the network delivers their requests from).
    pub step_callers: Vec<SocketAddr>,
}

/// A running ledger node: the handle the harness keeps to read its state (god's-eye view).
#[derive(Clone)]
pub struct LedgerNode {
    core: Arc<Mutex<LedgerCore>>,
}

impl LedgerNode {
    /// Recovers the shard from its log and starts serving. Called from the node's `init`, so
    /// it runs again after every restart, each time from the disk alone.
    pub async fn start(env: &NodeEnv, config: LedgerConfig) -> std::io::Result<LedgerNode> {
        let log = DurableLog::<LedgerRecord>::open(env, LOG_FILE, config.fsync_latency);
        let (records, report) = log.replay();
        if report.torn_bytes > 0 {
            env.probes.hit(names::LEDGER_TORN_TAIL_CUT);
            env.probes.hit(names::RECOVERY_TORN_TAIL_CUT);
        }
        if report.records > 0 {
            env.probes.hit(names::LEDGER_RECOVERED);
        }
        tracing::info!(shard = %config.shard, records = report.records, torn_bytes = report.torn_bytes, "ledger recovered");
        let core = Arc::new(Mutex::new(LedgerCore::recover(
            config.shard,
            config.shards,
            env.bugs,
            &records,
        )));
        let transport = Transport::for_node(env).await?;
        let node = LedgerNode { core: core.clone() };
        let (clock, bugs, probes) = (env.clock.clone(), env.bugs, env.probes.clone());
        let callers: Arc<[SocketAddr]> = config.step_callers.into();
        transport.serve_from(move |LedgerCall(command), from| {
            let (core, log, clock, probes) =
                (core.clone(), log.clone(), clock.clone(), probes.clone());
            let allowed = authorize(&command, from, &callers);
            async move {
                if let Err(refusal) = allowed {
                    probes.hit(names::LEDGER_UNAUTHORIZED_REFUSED);
                    return Err(refusal);
                }
                // Decide, write and apply under one lock: no other command sees a half step.
                let reply = {
                    let mut core = core.lock().unwrap_or_else(|p| p.into_inner());
                    let decision = core.decide(&command, clock.now_ms(), bugs);
                    if let Some(corner) = tcc_corner(&command, &decision) {
                        probes.hit(corner);
                    }
                    match decision {
                        Decision::Reply(reply) => {
                            probes.hit(names::LEDGER_IDEMPOTENT_REPLAY);
                            reply
                        }
                        Decision::Write(record) => {
                            log.append(&record);
                            core.apply(record)
                        }
                    }
                };
                if matches!(reply, Err(LedgerError::InsufficientFunds { .. })) {
                    probes.hit(names::LEDGER_INSUFFICIENT_FUNDS);
                }
                // Nothing is acknowledged before it is durable, repeats included: a repeat may
                // answer from a record whose own fsync has not finished yet.
                log.sync().await;
                reply
            }
        });
        Ok(node)
    }

    /// Reads the live state under the lock (the harness's god's-eye view).
    pub fn read<T>(&self, f: impl FnOnce(&LedgerCore) -> T) -> T {
        f(&self.core.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Reads the live state together with what changed since the last such read, under one
    /// lock, and starts the next round of changes (the harness's incremental capture).
    pub fn read_changes<T>(&self, f: impl FnOnce(&LedgerCore, &LedgerChanges) -> T) -> T {
        let mut core = self.core.lock().unwrap_or_else(|p| p.into_inner());
        let changes = core.take_changes();
        f(&core, &changes)
    }

    /// What a shard whose node is down would recover: its durable records, folded.
    pub fn durable_state(env: &NodeEnv, config: &LedgerConfig) -> LedgerCore {
        let log = DurableLog::<LedgerRecord>::open(env, LOG_FILE, config.fsync_latency);
        LedgerCore::recover(config.shard, config.shards, env.bugs, &log.read_durable())
    }
}

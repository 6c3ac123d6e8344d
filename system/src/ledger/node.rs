//! The ledger node shell: serves [`LedgerCall`]s, makes every change durable before replying,
//! and rebuilds its core from the log when (re)started.

use super::books::Decision;
use super::changes::LedgerChanges;
use super::core::{LedgerCore, LedgerRecord};
use super::participant::ParticipantRecord;
use super::types::{ClientLedgerCall, LedgerCall, LedgerCommand, LedgerError};
use crate::auth::{Authority, Directory};
use crate::buggify::Point;
use crate::bugs::Bug;
use crate::ids::ShardId;
use crate::log::DurableLog;
use crate::node::{lock, NodeEnv};
use crate::outbox::participant::OutboxRecord;
use crate::probes::names;
use crate::tcc::fence::{BranchKey, FenceRefusal};
use crate::tcc::participant::TccRecord;
use crate::transport::Transport;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The TCC protocol corner a decision reaches, if any: what the scenario tests look for.
fn tcc_corner(command: &LedgerCommand, decision: &Decision) -> Option<&'static str> {
    use LedgerCommand::{TccCancel, TccConfirm, TccTry};
    match (command, decision) {
        (
            TccCancel { .. },
            Decision::Write(LedgerRecord::Participant(ParticipantRecord::Tcc(
                TccRecord::Suspended { .. },
            ))),
        ) => Some(names::TCC_EMPTY_ROLLBACK),
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

/// Who asks an internal [`LedgerCall`]: only the platform's services, known by the address
/// the network delivers their requests from; anyone else is refused before anything is read.
fn authorize_platform(
    command: &LedgerCommand,
    from: SocketAddr,
    callers: &[SocketAddr],
) -> Result<(), LedgerError> {
    if crate::transport::sent_by(from, callers) {
        Ok(())
    } else {
        Err(LedgerError::Unauthorized {
            step: format!("ask the platform's step {}", command.name()),
            caller: from.to_string(),
        })
    }
}

/// Who asks a [`ClientLedgerCall`]: the client its credential proves (from the address it was
/// issued to), limited to what that client may touch.
fn authorize_client(
    call: &ClientLedgerCall,
    from: SocketAddr,
    authority: &Authority,
    dir: &Directory,
) -> Result<(), LedgerError> {
    let client = authority
        .verify(&call.credential, from)
        .map_err(LedgerError::Unauthenticated)?;
    super::access::authorize_client(dir, client, &call.command)
}

/// How far the shard's journal is durable, for the harness (never read by the platform): the
/// log's length after each write that grew the journal, until an fsync covers it. Entries
/// below the durable length are in the synced part of the log, which no crash takes back.
#[derive(Debug, Default)]
struct DurableJournal {
    /// (log length after the write, journal length after it), oldest first.
    pending: VecDeque<(usize, u64)>,
    /// The journal length known durable.
    durable: u64,
}

impl DurableJournal {
    /// Notes that the log is `log_end` bytes long once the journal is `journal` entries long,
    /// and forgets what the first `synced` bytes cover (so that the notes stay as few as the
    /// writes not yet durable, read by the harness or not).
    fn wrote(&mut self, synced: usize, log_end: usize, journal: u64) {
        self.durable(synced);
        let last = self.pending.back().map_or(self.durable, |p| p.1);
        if journal > last {
            self.pending.push_back((log_end, journal));
        }
    }

    /// The journal length durable once the log's first `synced` bytes are.
    fn durable(&mut self, synced: usize) -> u64 {
        while let Some(&(end, journal)) = self.pending.front() {
            if end > synced {
                break;
            }
            self.durable = journal;
            self.pending.pop_front();
        }
        self.durable
    }
}

/// What serving a command needs.
struct Shell {
    core: Arc<Mutex<LedgerCore>>,
    durable: Arc<Mutex<DurableJournal>>,
    log: DurableLog<LedgerRecord>,
    env: NodeEnv,
    /// When each lock of a prepared branch was taken (2PC; this incarnation's clock).
    locked_at: Mutex<std::collections::BTreeMap<BranchKey, u64>>,
    /// The `outbox` strategy's relay of credit rows, when the run has it.
    credits: Option<Arc<super::credits::Credits>>,
}

impl Shell {
    /// Serves one command whose caller was judged `allowed`: decide, write and apply under one
    /// lock, reply once durable.
    async fn serve(
        self: Arc<Self>,
        command: LedgerCommand,
        allowed: Result<(), LedgerError>,
    ) -> Result<super::types::LedgerReply, LedgerError> {
        let probes = &self.env.probes;
        if let Err(refusal) = allowed {
            probes.hit(names::LEDGER_UNAUTHORIZED_REFUSED);
            return Err(refusal);
        }
        // Decide, write and apply under one lock: no other command sees a half step.
        let (reply, wrote, mark, row) = {
            let mut core = self.core.lock().unwrap_or_else(|p| p.into_inner());
            let decision = core.decide(&command, self.env.clock.now_ms());
            if let Some(corner) = tcc_corner(&command, &decision) {
                probes.hit(corner);
            }
            let mut row = None;
            let (reply, wrote) = match decision {
                Decision::Reply(reply) => {
                    probes.hit(names::LEDGER_IDEMPOTENT_REPLAY);
                    (reply, false)
                }
                Decision::Write(record) => {
                    self.log.append(&record);
                    if let (
                        Some(credits),
                        LedgerRecord::Participant(ParticipantRecord::Outbox(
                            OutboxRecord::PostedWithRow { row: r, .. },
                        )),
                    ) = (&self.credits, &record)
                    {
                        credits.appended(r);
                        row = Some(r.clone());
                    }
                    if core.tcc().locking() {
                        self.time_lock(&record);
                    }
                    (core.apply(record), true)
                }
            };
            let (synced, mark) = self.log.synced_and_mark();
            if wrote {
                let journal = core.journal().len() as u64;
                lock(&self.durable).wrote(synced, mark, journal);
            }
            (reply, wrote, mark, row)
        };
        match &reply {
            Err(LedgerError::InsufficientFunds { .. }) => {
                probes.hit(names::LEDGER_INSUFFICIENT_FUNDS)
            }
            Err(LedgerError::RequestReused(_)) => probes.hit(names::LEDGER_REQUEST_REUSED_REFUSED),
            _ => {}
        }
        // Nothing is acknowledged before it is durable, repeats included: a repeat may
        // answer from a record whose own fsync has not finished yet. The planted bug answers a
        // fresh write at once and lets its fsync run behind the reply.
        if wrote && self.env.bugs.is(Bug::LedgerAckBeforeFsync) {
            let log = self.log.clone();
            madsim::task::spawn(async move { log.sync().await });
        } else {
            self.log.sync().await;
        }
        self.log.witness_reply(mark);
        if let (Some(credits), Some(row)) = (&self.credits, &row) {
            credits.durable(row);
        }
        reply
    }
}

impl Shell {
    /// Notes when a prepared branch locks its account, and reports how long it held it once
    /// it is confirmed or cancelled.
    fn time_lock(&self, record: &LedgerRecord) {
        let now = self.env.clock.now_ms();
        let mut locked_at = self.locked_at.lock().unwrap_or_else(|p| p.into_inner());
        match record {
            LedgerRecord::Participant(ParticipantRecord::Tcc(TccRecord::Tried {
                branch, ..
            })) => {
                locked_at.insert(branch.clone(), now);
            }
            LedgerRecord::Participant(ParticipantRecord::Tcc(
                TccRecord::Confirmed { branch, .. } | TccRecord::Cancelled { branch },
            )) => {
                if let Some(at) = locked_at.remove(branch) {
                    self.env.probes.lock_held(now.saturating_sub(at));
                }
            }
            _ => {}
        }
    }
}

/// How a ledger node is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    pub shard: ShardId,
    pub shards: u32,
    /// The simulated cost of one fsync (shared by concurrent posts: group commit).
    pub fsync_latency: Duration,
    /// The platform's services that call the ledger (the payment nodes): the only callers of
    /// the internal [`LedgerCall`] (known by the address the network delivers their requests
    /// from). Clients use [`ClientLedgerCall`].
    pub platform_callers: Vec<SocketAddr>,
    /// Who owns which account: what a client may touch.
    pub directory: Directory,
    /// How many banks clear through the platform (0: no clearing accounts).
    pub banks: u32,
    /// Whether the TCC participant keeps fence rows (false under `tcc-nofence`).
    pub fenced: bool,
    /// Whether a prepared branch locks its account until it is decided (`2pc`).
    pub locking: bool,
    /// The broker the `outbox` strategy's credit rows are relayed to, when the run has it.
    pub credits_broker: Option<SocketAddr>,
}

/// A running ledger node: the handle the harness keeps to read its state (god's-eye view).
#[derive(Clone)]
pub struct LedgerNode {
    core: Arc<Mutex<LedgerCore>>,
    durable: Arc<Mutex<DurableJournal>>,
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
        let core = LedgerCore::new(config.shard, config.shards, env.bugs)
            .with_clearing(config.banks)
            .with_fence(config.fenced)
            .with_locks(config.locking)
            .replay(&records);
        // Locks recovered from the log are timed from the restart (their start is unknown).
        let now = env.clock.now_ms();
        let locked_at = match core.tcc().locking() {
            true => core.tcc().holds().map(|(k, _)| (k.clone(), now)).collect(),
            false => Default::default(),
        };
        // What was replayed is durable once the log's bytes so far are (at once, unless a
        // crash left unsynced bytes behind).
        let mut durable = DurableJournal::default();
        let (synced, written) = log.synced_and_mark();
        durable.wrote(synced, written, core.journal().len() as u64);
        let durable = Arc::new(Mutex::new(durable));
        let core = Arc::new(Mutex::new(core));
        let transport = Transport::for_node(env).await?;
        let node = LedgerNode {
            core: core.clone(),
            durable: durable.clone(),
        };
        let credits = config.credits_broker.map(|broker| {
            super::credits::Credits::start(
                env,
                broker,
                core.clone(),
                log.clone(),
                transport.clone(),
            )
        });
        let shell = Arc::new(Shell {
            core,
            durable,
            log,
            env: env.clone(),
            locked_at: Mutex::new(locked_at),
            credits,
        });
        let callers: Arc<[SocketAddr]> = config.platform_callers.into();
        let internal = shell.clone();
        transport.serve_from(move |LedgerCall(command), from| {
            let allowed = authorize_platform(&command, from, &callers);
            let shell = internal.clone();
            async move {
                let is_try = matches!(command, LedgerCommand::TccTry { .. });
                let reply = shell.clone().serve(command, allowed).await;
                if is_try {
                    // A stalled shard: the Try is taken (and durable), its answer late.
                    let env = &shell.env;
                    env.buggify.window(Point::TryToReply, &env.probes).await;
                }
                reply
            }
        });
        let (authority, dir) = (Authority::for_run(env.seed), config.directory);
        transport.serve_from(move |call: ClientLedgerCall, from| {
            let allowed = authorize_client(&call, from, &authority, &dir);
            shell.clone().serve(call.command, allowed)
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

    /// How many of the shard's journal entries (numbered from 0) are durable: in the synced
    /// part of its log on `disk`, so that no crash can take them or their vouchers back.
    pub fn durable_journal(&self, disk: &crate::disk::Disk) -> u64 {
        let synced = disk.lengths(LOG_FILE).0;
        lock(&self.durable).durable(synced)
    }

    /// The durable records of a shard's log, in order (the harness reads the 2PC
    /// participants' lock history from them at rest).
    pub fn durable_records(env: &NodeEnv, config: &LedgerConfig) -> Vec<LedgerRecord> {
        DurableLog::<LedgerRecord>::open(env, LOG_FILE, config.fsync_latency).read_durable()
    }

    /// What a shard whose node is down would recover: its durable records, folded.
    pub fn durable_state(env: &NodeEnv, config: &LedgerConfig) -> LedgerCore {
        let log = DurableLog::<LedgerRecord>::open(env, LOG_FILE, config.fsync_latency);
        LedgerCore::new(config.shard, config.shards, env.bugs)
            .with_clearing(config.banks)
            .with_fence(config.fenced)
            .with_locks(config.locking)
            .replay(&log.read_durable())
    }
}

//! The broker node shell: serves [`BrokerCall`]s, writes every change to its commit log and
//! flushes it per its [`FlushPolicy`] before replying, sends check-backs for undecided half
//! messages on a timer, and rebuilds its core from the log on every start.
//!
//! As in the ledger and the trade, a command is decided, written and applied under one lock
//! (offsets are assigned at decision time, so no other command may decide in between), and
//! the reply waits for the flush outside the lock.

use super::core::{BrokerCore, BrokerDecision, BrokerRecord};
use super::long_poll::Waiters;
use super::types::{
    BrokerCall, BrokerCommand, BrokerConfig, BrokerError, BrokerReply, CheckAnswer, CheckBackCall,
    HalfMessage,
};
use crate::log::DurableLog;
use crate::node::NodeEnv;
use crate::probes::names;
use crate::transport::Transport;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The broker's commit log on its node's disk.
pub const LOG_FILE: &str = "broker.log";

/// How long a check-back waits for the producer's answer. No answer is no decision: the next
/// check is already scheduled.
const CHECK_TIMEOUT: Duration = Duration::from_millis(300);

/// The flush interval of `"async"` when none is given.
pub const ASYNC_FLUSH_INTERVAL_MS: u64 = 500;
/// The longest async flush interval `async:<ms>` accepts: a minute of simulated time.
pub const ASYNC_FLUSH_INTERVAL_MS_MAX: u64 = 60_000;

/// When the broker makes a write durable relative to acknowledging it (RocketMQ's
/// `flushDiskType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum FlushPolicy {
    /// Every write pays for an fsync of its own, one fsync at a time, before it is
    /// acknowledged. Safe, and the slowest: the baseline group commit is measured against.
    SyncEachWrite,
    /// Writes are acknowledged once an fsync that began after them completes; concurrent writes
    /// share one fsync (RocketMQ's SYNC_FLUSH with its group-commit service). Safe.
    #[default]
    GroupCommit,
    /// RocketMQ's ASYNC_FLUSH: writes are acknowledged at once and a background task fsyncs
    /// every `interval_ms`. **Unsafe by design**: a power loss drops every acknowledged write
    /// of the last interval (a sent message, a committed offset, a half's decision), and a
    /// consumer that read past the new end may skip the messages later sent into the offsets
    /// it had passed. That loss is what this policy exists to demonstrate.
    Async { interval_ms: u64 },
}

impl fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushPolicy::SyncEachWrite => f.write_str("sync"),
            FlushPolicy::GroupCommit => f.write_str("group"),
            FlushPolicy::Async {
                interval_ms: ASYNC_FLUSH_INTERVAL_MS,
            } => f.write_str("async"),
            FlushPolicy::Async { interval_ms } => write!(f, "async:{interval_ms}"),
        }
    }
}

impl From<FlushPolicy> for String {
    fn from(policy: FlushPolicy) -> String {
        policy.to_string()
    }
}

impl TryFrom<String> for FlushPolicy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl FromStr for FlushPolicy {
    type Err = String;

    /// `sync`, `group`, `async` (every 500 ms) or `async:<ms>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sync" => Ok(FlushPolicy::SyncEachWrite),
            "group" => Ok(FlushPolicy::GroupCommit),
            "async" => Ok(FlushPolicy::Async {
                interval_ms: ASYNC_FLUSH_INTERVAL_MS,
            }),
            other => match other.strip_prefix("async:") {
                Some(ms) => ms
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| (1..=ASYNC_FLUSH_INTERVAL_MS_MAX).contains(ms))
                    .map(|interval_ms| FlushPolicy::Async { interval_ms })
                    .ok_or_else(|| {
                        format!("async:<ms> flushes every <ms> simulated milliseconds, between 1 and {ASYNC_FLUSH_INTERVAL_MS_MAX}; got '{ms}'")
                    }),
                None => Err(format!(
                    "unknown flush policy '{s}' (sync, group, async or async:<ms>)"
                )),
            },
        }
    }
}

/// How a broker node is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerNodeConfig {
    /// The core's check-back and retry policies.
    pub broker: BrokerConfig,
    pub flush: FlushPolicy,
    /// The simulated cost of one fsync.
    pub fsync_latency: Duration,
    /// Topics (name, queue count) that exist from the start.
    pub topics: Vec<(String, u32)>,
    /// Producer group → the address asked on a check-back.
    pub producers: BTreeMap<String, SocketAddr>,
    /// How often the node looks for due check-backs.
    pub check_tick: Duration,
}

impl Default for BrokerNodeConfig {
    /// Simulation-speed policies, group commit, a 1 ms fsync, no topics, no producers, a check
    /// tick of 50 ms.
    fn default() -> Self {
        BrokerNodeConfig {
            broker: BrokerConfig::simulation(),
            flush: FlushPolicy::GroupCommit,
            fsync_latency: Duration::from_millis(1),
            topics: Vec::new(),
            producers: BTreeMap::new(),
            check_tick: Duration::from_millis(50),
        }
    }
}

/// A running broker node, as the harness holds it.
#[derive(Clone)]
pub struct BrokerNode {
    shell: Arc<Shell>,
}

/// Everything the node's tasks share.
struct Shell {
    core: Mutex<BrokerCore>,
    log: DurableLog<BrokerRecord>,
    env: NodeEnv,
    config: BrokerNodeConfig,
    transport: Transport,
    /// Sync-each-write: one fsync at a time.
    fsyncs: tokio::sync::Mutex<()>,
    /// The consumers' held long polls.
    waiters: Waiters,
}

impl Shell {
    fn core(&self) -> MutexGuard<'_, BrokerCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends and applies `record` (under the caller's lock) and fires its probe.
    fn write(&self, core: &mut BrokerCore, record: BrokerRecord) -> BrokerReply {
        let probe = match &record {
            BrokerRecord::RetryScheduled { .. } => Some(names::BROKER_RETRY_SCHEDULED),
            BrokerRecord::DeadLettered {
                group,
                message,
                attempts,
                ..
            } => {
                tracing::info!(%group, %message, attempts, "message dead-lettered");
                Some(names::BROKER_DEAD_LETTERED)
            }
            BrokerRecord::HalfDiscarded { half, .. } => {
                tracing::warn!(%half, "half message discarded: no decision after its last check-back");
                Some(names::BROKER_HALF_DISCARDED)
            }
            _ => None,
        };
        self.log.append(&record);
        self.waiters.wake_for(&record);
        let reply = core.apply(record);
        if let Some(probe) = probe {
            self.env.probes.hit(probe);
        }
        reply
    }

    /// Decides `command` now; writes and applies its record, if any. Returns the reply and
    /// whether a record was written.
    fn decide_and_write(
        &self,
        command: &BrokerCommand,
    ) -> (Result<BrokerReply, BrokerError>, bool) {
        let now_ms = self.env.clock.now_ms();
        let mut core = self.core();
        match core.decide(command, now_ms) {
            BrokerDecision::Reply(reply) => (reply, false),
            BrokerDecision::Write(record) => (Ok(self.write(&mut core, record)), true),
        }
    }

    /// Makes what the caller is about to acknowledge durable, per the flush policy. `wrote`:
    /// the caller appended a record. A caller that wrote nothing still waits for whatever is
    /// unsynced: its reply may come from a record whose own flush has not finished.
    async fn flush(&self, wrote: bool) {
        match self.config.flush {
            FlushPolicy::GroupCommit => self.log.sync().await,
            FlushPolicy::SyncEachWrite => {
                if wrote || self.env.disk.has_unsynced(LOG_FILE) {
                    let _one_at_a_time = self.fsyncs.lock().await;
                    if wrote || self.env.disk.has_unsynced(LOG_FILE) {
                        self.log.sync_unshared().await;
                    }
                }
            }
            FlushPolicy::Async { .. } => {}
        }
    }

    /// Serves one command: decide, write and apply under one lock, reply after the flush.
    /// Under the safe policies the log witnesses, as the reply leaves, that everything it
    /// depends on is durable (invariant 19, reply form); async flush is unsafe by design and
    /// is not witnessed. The planted `broker-ack-before-fsync` answers a fresh write under
    /// group commit at once and leaves its fsync behind it.
    async fn handle(self: Arc<Self>, command: BrokerCommand) -> Result<BrokerReply, BrokerError> {
        if let BrokerCommand::Await { .. } = command {
            return self.hold(&command).await;
        }
        let (reply, wrote) = self.decide_and_write(&command);
        let mark = self.log.mark();
        let early = wrote
            && self.config.flush == FlushPolicy::GroupCommit
            && self.env.bugs.is(crate::bugs::Bug::BrokerAckBeforeFsync);
        if early {
            let shell = self.clone();
            madsim::task::spawn(async move { shell.flush(true).await });
        } else {
            self.flush(wrote).await;
        }
        if matches!(self.config.flush, FlushPolicy::Async { .. }) {
            self.log.note_unsafe_reply(mark);
        } else {
            self.log.witness_reply(mark);
        }
        reply
    }
}

impl Shell {
    /// Serves a long poll: decides it now and again after each wake, until the answer is
    /// ready or a refusal, or the hold has passed. It writes nothing and reveals no message,
    /// so it neither waits for a flush nor is witnessed.
    async fn hold(&self, command: &BrokerCommand) -> Result<BrokerReply, BrokerError> {
        let BrokerCommand::Await {
            group,
            topic,
            positions,
            hold_ms,
            ..
        } = command
        else {
            panic!("only an Await is held: {command:?}");
        };
        let end = madsim::time::Instant::now() + Duration::from_millis(*hold_ms);
        let queues: Vec<u32> = positions.iter().map(|(q, _)| *q).collect();
        loop {
            let (reply, wrote) = self.decide_and_write(command);
            debug_assert!(!wrote, "an Await writes nothing");
            let left = end.saturating_duration_since(madsim::time::Instant::now());
            let empty = matches!(&reply, Ok(BrokerReply::News { queues, retries: false }) if queues.is_empty());
            if !empty || left.is_zero() {
                return reply;
            }
            let now_ms = self.env.clock.now_ms();
            let retry = self.core().next_retry_due(group, topic, &queues);
            let until_retry = retry.map_or(left, |due| {
                Duration::from_millis(due.saturating_sub(now_ms).max(1))
            });
            let woken = self.waiters.register(topic);
            let _ = madsim::time::timeout(left.min(until_retry), woken).await;
        }
    }
}

impl BrokerNode {
    /// Recovers the broker from its log, creates the configured topics, and starts serving,
    /// the check-back timer and (under [`FlushPolicy::Async`]) the background flusher. Called
    /// from the node's `init`, so it runs again after every restart, from the disk alone.
    pub async fn start(env: &NodeEnv, config: BrokerNodeConfig) -> std::io::Result<BrokerNode> {
        let log = DurableLog::<BrokerRecord>::open(env, LOG_FILE, config.fsync_latency);
        let (records, report) = log.replay();
        if report.records > 0 {
            env.probes.hit(names::BROKER_RECOVERED);
        }
        if report.torn_bytes > 0 {
            env.probes.hit(names::RECOVERY_TORN_TAIL_CUT);
        }
        tracing::info!(
            records = report.records,
            torn_bytes = report.torn_bytes,
            flush = %config.flush,
            "broker recovered"
        );
        let core = BrokerCore::recover(config.broker, &records);
        let transport = Transport::for_node(env).await?;
        let shell = Arc::new(Shell {
            core: Mutex::new(core),
            log,
            env: env.clone(),
            config,
            transport: transport.clone(),
            fsyncs: tokio::sync::Mutex::new(()),
            waiters: Waiters::default(),
        });
        let mut created = false;
        for (topic, queues) in &shell.config.topics {
            let create = BrokerCommand::CreateTopic {
                topic: topic.clone(),
                queues: *queues,
            };
            match shell.decide_and_write(&create) {
                (Ok(_), wrote) => created |= wrote,
                (Err(refusal), _) => {
                    tracing::warn!(%topic, queues, %refusal, "configured topic not created")
                }
            }
        }
        if created {
            // Before serving: nobody may see a topic that a power loss could take back.
            shell.log.sync().await;
        }
        {
            let shell = shell.clone();
            transport.serve(move |BrokerCall(command)| shell.clone().handle(command));
        }
        madsim::task::spawn(check_backs(shell.clone()));
        if let FlushPolicy::Async { interval_ms } = shell.config.flush {
            madsim::task::spawn(flush_in_background(
                shell.clone(),
                Duration::from_millis(interval_ms.max(1)),
            ));
        }
        Ok(BrokerNode { shell })
    }

    /// Reads the live state under the lock (the harness's god's-eye view).
    pub fn read<T>(&self, f: impl FnOnce(&BrokerCore) -> T) -> T {
        f(&self.shell.core())
    }

    /// What a broker whose node is down would recover: its durable records, folded. (The
    /// configured topics are created again at start, so a topic whose creation was lost is
    /// not missing for long.)
    pub fn durable_state(env: &NodeEnv, config: &BrokerNodeConfig) -> BrokerCore {
        let log = DurableLog::<BrokerRecord>::open(env, LOG_FILE, config.fsync_latency);
        BrokerCore::recover(config.broker, &log.read_durable())
    }

    /// What is still in flight (empty at rest): undecided halves, scheduled retries, and every
    /// queue a clustering group has not consumed to its end.
    pub fn pending(&self) -> Vec<String> {
        self.read(|core| {
            let mut out = core.pending();
            out.extend(groups_behind(core));
            out
        })
    }
}

/// "group G behind on topic:q (committed c of end e)" for every queue a clustering group
/// subscribes to and has not committed to its end.
fn groups_behind(core: &BrokerCore) -> Vec<String> {
    core.lag()
        .into_iter()
        .map(|l| {
            format!(
                "group {} behind on {}:{} (committed {} of end {})",
                l.group, l.topic, l.queue, l.committed, l.end
            )
        })
        .collect()
}

/// The check-back timer: every tick, records a check (or the discard) for each due half under
/// one lock, flushes once, then asks each half's producer group in a task of its own.
async fn check_backs(shell: Arc<Shell>) {
    loop {
        madsim::time::sleep(shell.config.check_tick).await;
        let now_ms = shell.env.clock.now_ms();
        let (checks, wrote) = {
            let mut core = shell.core();
            let mut checks: Vec<(HalfMessage, String, u32)> = Vec::new();
            let mut wrote = false;
            for half in core.checks_due(now_ms) {
                let command = BrokerCommand::CheckBack { half };
                // A half that is no longer due (decided meanwhile) is answered, not written.
                let BrokerDecision::Write(record) = core.decide(&command, now_ms) else {
                    continue;
                };
                wrote = true;
                if let BrokerReply::CheckSent {
                    half,
                    producer_group,
                    check,
                } = shell.write(&mut core, record)
                {
                    let h = core.half(half).expect("a checked half exists").clone();
                    checks.push((h, producer_group, check));
                }
            }
            (checks, wrote)
        };
        if !wrote {
            continue;
        }
        // The check is on record before the producer hears of it.
        shell.flush(true).await;
        for (half, producer_group, check) in checks {
            shell.env.probes.hit(names::BROKER_CHECK_SENT);
            madsim::task::spawn(ask_producer(shell.clone(), half, producer_group, check));
        }
    }
}

/// Sends one check-back and records the producer's decision. `Unknown`, no answer or a
/// decision that lost to an earlier one change nothing.
async fn ask_producer(shell: Arc<Shell>, half: HalfMessage, producer_group: String, check: u32) {
    let Some(addr) = shell.config.producers.get(&producer_group).copied() else {
        tracing::warn!(half = %half.id, %producer_group, "check-back to an unknown producer group");
        return;
    };
    let call = CheckBackCall {
        half: half.id,
        topic: half.topic,
        key: half.key,
        payload: half.payload,
        producer_msg_id: half.producer_msg_id,
        check,
    };
    let commit = match shell.transport.call(addr, call, CHECK_TIMEOUT).await {
        Ok(CheckAnswer::Commit) => true,
        Ok(CheckAnswer::Rollback) => false,
        Ok(CheckAnswer::Unknown) => {
            tracing::debug!(half = %half.id, check, "check-back answered unknown");
            return;
        }
        Err(e) => {
            tracing::debug!(half = %half.id, check, error = %e, "check-back unanswered");
            return;
        }
    };
    let end = BrokerCommand::EndTransaction {
        half: half.id,
        commit,
    };
    match shell.decide_and_write(&end) {
        (Ok(_), true) => {
            shell.flush(true).await;
            shell.env.probes.hit(if commit {
                names::BROKER_HALF_COMMITTED_BY_CHECK
            } else {
                names::BROKER_HALF_ROLLED_BACK_BY_CHECK
            });
        }
        // Already decided the same way, or the other way first: the first decision wins.
        (Ok(_), false) | (Err(BrokerError::TransactionDecided { .. }), _) => {}
        (Err(refusal), _) => {
            tracing::warn!(half = %half.id, %refusal, "check-back decision refused")
        }
    }
}

/// [`FlushPolicy::Async`]'s flusher: one group-commit fsync every `interval`.
async fn flush_in_background(shell: Arc<Shell>, interval: Duration) {
    loop {
        madsim::time::sleep(interval).await;
        shell.log.sync().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::ConsumeMode;

    #[test]
    fn flush_policies_parse_and_print() {
        for (text, policy) in [
            ("sync", FlushPolicy::SyncEachWrite),
            ("group", FlushPolicy::GroupCommit),
            ("async", FlushPolicy::Async { interval_ms: 500 }),
            ("async:20", FlushPolicy::Async { interval_ms: 20 }),
        ] {
            assert_eq!(text.parse::<FlushPolicy>(), Ok(policy));
            assert_eq!(policy.to_string(), text);
        }
        assert_eq!(FlushPolicy::default(), FlushPolicy::GroupCommit);
        for bad in ["", "Sync", "async:", "async:0", "async:x", "fsync"] {
            assert!(bad.parse::<FlushPolicy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_clustering_group_is_behind_until_it_commits_the_end() {
        let mut core = BrokerCore::new(BrokerConfig::simulation());
        let run = |core: &mut BrokerCore, command: BrokerCommand| match core.decide(&command, 0) {
            BrokerDecision::Write(record) => {
                core.apply(record);
            }
            BrokerDecision::Reply(reply) => {
                reply.unwrap();
            }
        };
        run(
            &mut core,
            BrokerCommand::CreateTopic {
                topic: "t".into(),
                queues: 2,
            },
        );
        for (group, mode) in [
            ("g", ConsumeMode::Clustering),
            ("b", ConsumeMode::Broadcast),
        ] {
            run(
                &mut core,
                BrokerCommand::Subscribe {
                    group: group.into(),
                    topic: "t".into(),
                    mode,
                },
            );
        }
        for i in 0..2 {
            run(
                &mut core,
                BrokerCommand::Send {
                    topic: "t".into(),
                    key: "k".into(),
                    payload: "p".into(),
                    producer_msg_id: format!("m{i}"),
                },
            );
        }
        let q = super::super::types::queue_of("k", 2);
        assert_eq!(
            groups_behind(&core),
            vec![format!("group g behind on t:{q} (committed 0 of end 2)")]
        );
        run(
            &mut core,
            BrokerCommand::CommitOffset {
                group: "g".into(),
                consumer: "c".into(),
                topic: "t".into(),
                queue: q,
                offset: 2,
            },
        );
        assert_eq!(groups_behind(&core), Vec::<String>::new());
    }
}

//! The trade node shell: serves [`TradeCall`]s durably, closes unpaid trades on a timer,
//! publishes the events of committed changes (mode 1 through [`super::outbox`], mode 2 through
//! [`super::txmsg`]), and rebuilds its core from the log on every start.

use super::core::{TradeCore, TradeDecision, TradeRecord};
use super::events::{MessageMode, TradeEvent};
use super::outbox;
use super::txmsg;
use super::types::{
    ClientTradeCall, Trade, TradeCall, TradeCommand, TradeError, TradeId, TradeReply,
};
use crate::auth::{Authority, Directory, Principal};
use crate::broker::CheckBackCall;
use crate::buggify::Point;
use crate::bugs::Bug;
use crate::ids::AccountId;
use crate::ids::{EventId, TradeShardId};
use crate::ledger::Subject;
use crate::log::DurableLog;
use crate::node::NodeEnv;
use crate::probes::names;
use crate::producer::halfmsg::{HalfMsg, TxId};
use crate::producer::outbox::Outbox;
use crate::transport::Transport;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The log file of a trade shard on its node's disk.
pub const LOG_FILE: &str = "trade.log";

/// How long the planted check-then-act bug waits between its check and its write.
const CHECK_THEN_ACT_DELAY: Duration = Duration::from_millis(5);

/// Where and how a trade node publishes its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeMessaging {
    pub mode: MessageMode,
    pub broker: SocketAddr,
}

/// How a trade node is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeConfig {
    pub shard: TradeShardId,
    pub fsync_latency: Duration,
    /// A trade still unpaid this long after creation (by the node's clock) is closed.
    pub close_after_ms: u64,
    /// How often the node looks for trades to close.
    pub sweep_interval: Duration,
    /// `None`: events are recorded but never published.
    pub messages: Option<TradeMessaging>,
    /// The payment nodes: the only callers that may begin or end a pay or a refund (known by
    /// the address the network delivers their requests from).
    pub step_callers: Vec<SocketAddr>,
    /// Other platform nodes that may read any trade over the internal [`TradeCall`] (the
    /// merchant endpoint). Clients use [`ClientTradeCall`].
    pub query_callers: Vec<SocketAddr>,
    /// Who owns which merchant account.
    pub directory: Directory,
}

/// A running trade node, as the harness holds it.
#[derive(Clone)]
pub struct TradeNode {
    shell: Arc<Shell>,
}

/// Everything the node's tasks share.
pub(super) struct Shell {
    pub(super) core: Mutex<TradeCore>,
    pub(super) log: DurableLog<TradeRecord>,
    pub(super) env: NodeEnv,
    pub(super) config: TradeConfig,
    pub(super) transport: Transport,
    /// Mode 1's engine (idle in other modes).
    outbox: Mutex<Outbox>,
    /// Mode 2's engine (idle in other modes).
    halfmsg: Mutex<HalfMsg>,
    /// Numbers the changes published under half messages.
    next_tx: Mutex<u64>,
}

impl Shell {
    pub(super) fn core(&self) -> MutexGuard<'_, TradeCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn halfmsg(&self) -> MutexGuard<'_, HalfMsg> {
        self.halfmsg.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn next_tx(&self) -> TxId {
        let mut next = self.next_tx.lock().unwrap_or_else(|p| p.into_inner());
        *next += 1;
        TxId(*next)
    }

    fn mode(&self) -> Option<MessageMode> {
        self.config.messages.map(|m| m.mode)
    }

    /// Writes and applies `record` (under the caller's lock); returns its reply and the event
    /// it published. In mode 1 the event's row is now in the table, not yet durable.
    pub(super) fn write(
        &self,
        core: &mut TradeCore,
        record: TradeRecord,
    ) -> (Result<TradeReply, TradeError>, Option<TradeEvent>) {
        self.log.append(&record);
        let (reply, event) = core.apply_publishing(record);
        if let (Some(event), Some(MessageMode::Outbox)) = (&event, self.mode()) {
            outbox::appended(self, event);
        }
        (reply, event)
    }

    /// After a change is durable: in mode 1, its row may now be relayed.
    fn published(self: &Arc<Self>, event: Option<TradeEvent>) {
        if let (Some(event), Some(MessageMode::Outbox)) = (event, self.mode()) {
            outbox::durable(self, &event);
        }
    }

    /// Serves one internal command from `from`: begin or end a pay or a refund only from a
    /// payment node, a read also from the platform's readers; refused before anything is read
    /// or written otherwise.
    async fn handle_from(
        self: Arc<Self>,
        command: TradeCommand,
        from: SocketAddr,
    ) -> Result<TradeReply, TradeError> {
        let config = &self.config;
        let allowed = crate::transport::sent_by(from, &config.step_callers)
            || (matches!(command, TradeCommand::Query { .. })
                && crate::transport::sent_by(from, &config.query_callers))
            || (matches!(command, TradeCommand::EndPay { .. })
                && self.env.bugs.is(Bug::EndPayUnauthenticated));
        if !allowed {
            self.env.probes.hit(names::TRADE_UNAUTHORIZED_REFUSED);
            return Err(TradeError::Unauthorized {
                step: format!("ask the platform's step {}", command.name()),
                caller: from.to_string(),
            });
        }
        let begin = matches!(command, TradeCommand::BeginPay { .. });
        let reply = self.clone().handle(command).await;
        if begin {
            // A stalled trade node: the begin is taken (and durable), its answer late.
            let env = &self.env;
            env.buggify.window(Point::BeginToReply, &env.probes).await;
        }
        reply
    }

    /// Serves one client command: the client its credential proves may create trades for its
    /// own merchant account and read them (without the pay attempts' keys and activity ids);
    /// nothing else.
    async fn handle_client(
        self: Arc<Self>,
        call: ClientTradeCall,
        from: SocketAddr,
    ) -> Result<TradeReply, TradeError> {
        let refused = |step: String, caller: String| {
            self.env.probes.hit(names::TRADE_UNAUTHORIZED_REFUSED);
            Err(TradeError::Unauthorized { step, caller })
        };
        let client = match Authority::for_run(self.env.seed).verify(&call.credential, from) {
            Ok(client) => client,
            Err(bad) => {
                self.env.probes.hit(names::TRADE_UNAUTHORIZED_REFUSED);
                return Err(TradeError::Unauthenticated(bad));
            }
        };
        let caller = Principal::Client(client).to_string();
        let dir = self.config.directory;
        let mine = |merchant: AccountId| dir.owner(merchant) == Some((client, Subject::Merchant));
        match call.command {
            TradeCommand::Create { merchant, .. } if !mine(merchant) => {
                refused(format!("create a trade for {merchant}"), caller)
            }
            TradeCommand::Create { .. } => self.clone().handle(call.command).await,
            TradeCommand::Query { trade } => match self.clone().handle(call.command).await? {
                TradeReply::Trade(t) if mine(t.merchant) => {
                    Ok(TradeReply::Trade(Box::new(t.redacted())))
                }
                _ => refused(format!("read trade {trade}"), caller),
            },
            other => refused(format!("ask the platform's step {}", other.name()), caller),
        }
    }

    /// Counts a pay ended here before it began here (its begins lost, the payment node's
    /// budget spent): the end pins the key, so a late begin is refused.
    fn probe_end_before_begin(&self, core: &TradeCore, command: &TradeCommand) {
        if let TradeCommand::EndPay { trade, key, .. } = command {
            let began = core
                .trade(*trade)
                .is_some_and(|t| t.pays.iter().any(|p| &p.key == key));
            if !began {
                self.env.probes.hit(names::TRADE_END_BEFORE_BEGIN);
            }
        }
    }

    /// Serves one command: decide, write and apply under one lock, reply after the fsync.
    async fn handle(self: Arc<Self>, command: TradeCommand) -> Result<TradeReply, TradeError> {
        let is_create = matches!(command, TradeCommand::Create { .. });
        let now_ms = self.env.clock.now_ms();
        enum Next {
            /// Answered from state an earlier record made, which may not be durable yet.
            Repeat(Result<TradeReply, TradeError>),
            Done(Result<TradeReply, TradeError>, Option<TradeEvent>),
            Half(TradeRecord),
            Deferred(TradeRecord),
        }
        let next = {
            let mut core = self.core();
            self.probe_end_before_begin(&core, &command);
            match core.decide(&command, now_ms) {
                TradeDecision::Reply(reply) => {
                    if is_create && reply.is_ok() {
                        self.env.probes.hit(names::TRADE_DUPLICATE_CREATE);
                    }
                    let settled_failed = matches!(
                        reply,
                        Ok(TradeReply::Settled(super::types::AttemptStatus::Failed(_)))
                    );
                    if settled_failed && matches!(command, TradeCommand::BeginPay { .. }) {
                        self.env.probes.hit(names::TRADE_BEGIN_AFTER_END);
                    }
                    Next::Repeat(reply)
                }
                // Mode 2: a change that publishes an event stores its half message first.
                TradeDecision::Write(record)
                    if self.mode() == Some(MessageMode::Txmsg)
                        && core.event_of(&record).is_some() =>
                {
                    Next::Half(record)
                }
                // The planted check-then-act bug defers the write of a refund it has judged.
                TradeDecision::Write(record @ TradeRecord::RefundBegun { .. })
                    if self.env.bugs.is(Bug::RefundCheckThenAct) =>
                {
                    Next::Deferred(record)
                }
                TradeDecision::Write(record) => {
                    if matches!(record, TradeRecord::RefundRefused { .. }) {
                        self.env.probes.hit(names::TRADE_REFUND_BOUND_REFUSED);
                    }
                    let (reply, event) = self.write(&mut core, record);
                    Next::Done(reply, event)
                }
            }
        };
        let fresh = matches!(next, Next::Done(..));
        let (reply, event) = match next {
            // Nothing is acknowledged before it is durable, repeats included: the record this
            // answer comes from may still be in an fsync (`system/tests/trade_node.rs`).
            Next::Repeat(reply) => (reply, None),
            Next::Done(reply, event) => (reply, event),
            Next::Deferred(record) => {
                madsim::time::sleep(CHECK_THEN_ACT_DELAY).await;
                let mut core = self.core();
                self.write(&mut core, record)
            }
            Next::Half(record) => {
                let clock = self.env.clock.clone();
                return txmsg::write_with_half(&self, record, move |core: &TradeCore| {
                    core.decide(&command, clock.now_ms())
                })
                .await;
            }
        };
        self.reply_durably(reply, event, fresh).await
    }

    /// Answers once everything the reply depends on is durable (its own record, or the one a
    /// repeat answers from), which the log witnesses as the reply leaves; then lets the change's
    /// event go out. The planted `trade-ack-before-fsync` answers a fresh change at once and
    /// leaves its fsync behind it.
    async fn reply_durably(
        self: Arc<Self>,
        reply: Result<TradeReply, TradeError>,
        event: Option<TradeEvent>,
        fresh: bool,
    ) -> Result<TradeReply, TradeError> {
        let mark = self.log.mark();
        if fresh && self.env.bugs.is(Bug::TradeAckBeforeFsync) {
            let shell = self.clone();
            madsim::task::spawn(async move {
                shell.log.sync().await;
                shell.published(event);
            });
        } else {
            self.log.sync().await;
            self.published(event);
        }
        self.log.witness_reply(mark);
        reply
    }

    /// Closes one trade left unpaid past its timeout (judged again under the lock: a BeginPay
    /// may have won the race).
    async fn close(self: &Arc<Self>, id: TradeId) {
        let decide = move |core: &TradeCore| match core.decide_close(id) {
            Some(record) => TradeDecision::Write(record),
            None => TradeDecision::Reply(Ok(TradeReply::Ended)),
        };
        let closed = if self.mode() == Some(MessageMode::Txmsg) {
            let Some(record) = self.core().decide_close(id) else {
                return;
            };
            txmsg::write_with_half(self, record, decide).await.is_ok()
        } else {
            let written = {
                let mut core = self.core();
                match decide(&core) {
                    TradeDecision::Write(record) => Some(self.write(&mut core, record).1),
                    TradeDecision::Reply(_) => None,
                }
            };
            let Some(event) = written else {
                return;
            };
            self.log.sync().await;
            self.published(event);
            true
        };
        if closed {
            self.env.probes.hit(names::TRADE_CLOSED_BY_TIMEOUT);
        }
    }
}

impl TradeNode {
    /// Recovers the shard from its log, starts serving, the closing timer and, with messages
    /// on, the outbox resender or the check-back handler.
    pub async fn start(env: &NodeEnv, config: TradeConfig) -> std::io::Result<TradeNode> {
        let log = DurableLog::<TradeRecord>::open(env, LOG_FILE, config.fsync_latency);
        let (records, report) = log.replay();
        if report.records > 0 {
            env.probes.hit(names::TRADE_RECOVERED);
        }
        if report.torn_bytes > 0 {
            env.probes.hit(names::RECOVERY_TORN_TAIL_CUT);
        }
        tracing::info!(
            shard = config.shard.0,
            records = report.records,
            "trade recovered"
        );
        let mode = config.messages.map(|m| m.mode);
        let core = TradeCore::recover_with_messages(config.shard, env.bugs, mode, &records);
        let transport = Transport::for_node(env).await?;
        let unsent: Vec<TradeEvent> = core.unsent().cloned().collect();
        let shell = Arc::new(Shell {
            outbox: Mutex::new(outbox::recovered(env.bugs, &unsent)),
            halfmsg: Mutex::new(txmsg::recovered(env, &core, report.records)),
            next_tx: Mutex::new(0),
            core: Mutex::new(core),
            log,
            env: env.clone(),
            config,
            transport: transport.clone(),
        });
        {
            let internal = shell.clone();
            transport.serve_from(move |TradeCall(command), from| {
                internal.clone().handle_from(command, from)
            });
            let shell = shell.clone();
            transport.serve_from(move |call: ClientTradeCall, from| {
                shell.clone().handle_client(call, from)
            });
        }
        match mode {
            Some(MessageMode::Outbox) => {
                madsim::task::spawn(outbox::resend_unsent(shell.clone()));
            }
            Some(MessageMode::Txmsg) => {
                let shell = shell.clone();
                transport.serve(move |check: CheckBackCall| {
                    let shell = shell.clone();
                    async move { txmsg::answer_check(&shell, &check) }
                });
            }
            None => {}
        }
        madsim::task::spawn(close_unpaid(shell.clone()));
        Ok(TradeNode { shell })
    }

    /// Reads the live state (the harness's god's-eye view).
    pub fn read<T>(&self, f: impl FnOnce(&TradeCore) -> T) -> T {
        f(&self.shell.core())
    }

    /// Reads the trades changed since the last such read, under one lock, and starts the next
    /// round of changes (the harness's incremental capture).
    pub fn read_changed<T>(&self, f: impl FnOnce(Vec<&Trade>) -> T) -> T {
        let mut core = self.shell.core();
        f(core.take_changed())
    }

    /// Reads the live state and forgets the changes so far, under one lock: a whole read that
    /// the next [`TradeNode::read_changed`] continues from.
    pub fn read_resync<T>(&self, f: impl FnOnce(&TradeCore) -> T) -> T {
        let mut core = self.shell.core();
        core.take_changed();
        f(&core)
    }

    /// Ids of the events the node knows to be durable (mode 2's check-back answers from
    /// these).
    pub fn durable_events(&self) -> Vec<EventId> {
        self.shell.halfmsg().durable_ids().cloned().collect()
    }

    /// What a trade shard whose node is down would recover from its disk.
    pub fn durable_state(env: &NodeEnv, config: &TradeConfig) -> TradeCore {
        let log = DurableLog::<TradeRecord>::open(env, LOG_FILE, config.fsync_latency);
        TradeCore::recover_with_messages(
            config.shard,
            env.bugs,
            config.messages.map(|m| m.mode),
            &log.read_durable(),
        )
    }
}

/// Closes trades left unpaid past their timeout, by this node's (possibly skewed) clock.
async fn close_unpaid(shell: Arc<Shell>) {
    loop {
        madsim::time::sleep(shell.config.sweep_interval).await;
        let now_ms = shell.env.clock.now_ms();
        let expired = shell.core().expired(now_ms, shell.config.close_after_ms);
        for id in expired {
            shell.close(id).await;
        }
    }
}

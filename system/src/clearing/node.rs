//! The gateway's node shell (银行网关): takes deposits and withdrawals from the payment
//! nodes, writes each channel order durably before anything leaves, drives it to the bank and
//! to its postings, resolves UNKNOWN by query with backoff or by the bank's notification, and
//! resumes every unfinished order after a restart.

use super::core::{Admission, ClearingCore, ClearingRecord};
use super::types::{clearing_accounts, legs, ChannelOrder, ClearingCall, FailCause, FundReply};
use super::types::{FundRequest, OrderKind, OrderStatus};
use crate::bank::Instruction;
use crate::bank::{BankCall, BankCommand, BankNotifyCall, BankReply, Direction, InstrStatus};
use crate::buggify::Point;
use crate::bugs::Bug;
use crate::ids::{InstrId, RequestId};
use crate::ledger::{LedgerCall, LedgerCommand};
use crate::log::DurableLog;
use crate::node::NodeEnv;
use crate::probes::names;
use crate::refusal::{Refusal, RefusalCode};
use crate::topology::Topology;
use crate::transport::{RetryPolicy, Transport};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The log file of the gateway.
pub const LOG_FILE: &str = "clearing.log";

/// How long a bank call waits: no answer by then makes the order UNKNOWN.
const BANK_TIMEOUT: Duration = Duration::from_millis(300);

/// How long a client's request waits for its order to become answerable.
const ANSWER_WAIT: Duration = Duration::from_millis(600);

/// The driver's wait between attempts: doubling from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_millis(2_000));

/// How the gateway asks the ledger: a few times per attempt; the driver tries again later.
const POST_POLICY: RetryPolicy = RetryPolicy {
    attempts_max: 3,
    timeout: Duration::from_millis(300),
    backoff: Duration::from_millis(20),
    backoff_max: Duration::from_millis(200),
};

/// How the gateway is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearingConfig {
    pub fsync_latency: Duration,
    /// Bank `b` at index `b`: the only senders of notifications.
    pub banks: Vec<SocketAddr>,
    /// The ledger shards it posts to.
    pub topology: Topology,
    /// The payment nodes: the only callers of [`ClearingCall`].
    pub platform_callers: Vec<SocketAddr>,
    /// Reconciliation: the only caller of [`super::types::ReconCall`].
    pub recon: Option<SocketAddr>,
}

/// A running gateway, as the harness holds it.
#[derive(Clone)]
pub struct ClearingNode {
    shell: Arc<Shell>,
}

struct Shell {
    core: Mutex<ClearingCore>,
    log: DurableLog<ClearingRecord>,
    env: NodeEnv,
    config: ClearingConfig,
    transport: Transport,
    /// Orders a driver is running for (one driver per order).
    driving: Mutex<BTreeSet<InstrId>>,
    /// This incarnation (the simulated instant it started): reconciliation's position in the
    /// list of successes holds only within one.
    boot: u64,
}

/// What one step of a driver leaves.
enum Step {
    /// The order is final and posted.
    Done,
    /// Try again after the backoff.
    Later,
    /// Go on at once (a record was just written).
    Now,
}

impl Shell {
    fn core(&self) -> MutexGuard<'_, ClearingCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes and applies a record under the lock, then makes it durable.
    async fn write(&self, record: ClearingRecord) {
        self.append(record);
        self.log.sync().await;
    }

    /// Writes and applies a record under the lock (not durable yet).
    fn append(&self, record: ClearingRecord) {
        let mut core = self.core();
        self.log.append(&record);
        core.apply(record);
    }

    /// A client's deposit or withdrawal, from a payment node.
    async fn fund(
        self: Arc<Self>,
        request: FundRequest,
        from: SocketAddr,
    ) -> Result<FundReply, Refusal> {
        if !crate::transport::sent_by(from, &self.config.platform_callers) {
            let detail = format!("{from} may not ask the gateway");
            return Err(Refusal::new(RefusalCode::Unauthorized, detail));
        }
        let banks = self.config.banks.len() as u32;
        let (instr, mark) = {
            let mut core = self.core();
            let instr = match core.admit(&request, banks) {
                Admission::Mismatch(refusal) => return Err(refusal),
                Admission::Existing(instr) => instr,
                Admission::Create(record) => {
                    self.log.append(&record);
                    core.apply(record);
                    super::types::instr_of(&request.key)
                }
            };
            (instr, self.log.mark())
        };
        // The planted bug answers and drives the order before its record is durable.
        if !self.env.bugs.is(Bug::ChannelOrderNotDurableBeforeSend) {
            self.log.sync().await;
        }
        self.log.witness_reply(mark);
        self.clone().drive(instr.clone());
        let deadline = self.env.clock.now_ms() + ANSWER_WAIT.as_millis() as u64;
        loop {
            let answer = self.core().answer(&instr);
            if answer != Ok(FundReply::Pending) || self.env.clock.now_ms() >= deadline {
                return answer;
            }
            madsim::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A bank's notification: a final status takes effect once; a repeat changes nothing.
    async fn notified(self: Arc<Self>, call: BankNotifyCall, from: SocketAddr) {
        if !crate::transport::sent_by(from, &self.config.banks) {
            return;
        }
        let Some((status, fail)) = final_of(call.status) else {
            return;
        };
        let record = {
            let core = self.core();
            let Some(order) = core.get(&call.instr) else {
                return;
            };
            if order.status.is_final() {
                self.env.probes.hit(names::CLEARING_DUPLICATE_NOTIFY);
                return;
            }
            if order.status == OrderStatus::Unknown {
                self.env.probes.hit(names::CLEARING_RESOLVED_BY_NOTIFY);
            }
            core.move_to(&call.instr, status, fail)
        };
        if let Some(record) = record {
            self.write(record).await;
        }
        if self.env.bugs.is(Bug::DepositCreditedOnReplyAndNotify) && status == OrderStatus::Success
        {
            self.credit_on_notify(&call.instr).await;
        }
    }

    /// The planted bug: a notified deposit is credited by the notification itself.
    async fn credit_on_notify(&self, instr: &InstrId) {
        let Some(order) = self.core().get(instr).cloned() else {
            return;
        };
        if order.kind == OrderKind::Deposit {
            let (reserve, _) = self.accounts(&order);
            let request = super::types::clearing_request(&order.key, "notify");
            let _ = self
                .post(&order, request, legs(reserve, order.account, order.amount))
                .await;
        }
    }

    /// The order's bank's reserve and in-transit sub-accounts on its account's shard (for a
    /// transfer, the receiving bank's reserve as the second).
    fn accounts(&self, order: &ChannelOrder) -> (crate::ids::AccountId, crate::ids::AccountId) {
        let shards = self.config.topology.ledger_shards();
        clearing_accounts(order.kind, order.bank, order.account.shard(shards), shards)
    }

    /// Starts the order's driver unless one runs.
    fn drive(self: Arc<Self>, instr: InstrId) {
        let fresh = self
            .driving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(instr.clone());
        if fresh {
            madsim::task::spawn(self.driver(instr));
        }
    }

    /// Steps the order until it is final and posted.
    async fn driver(self: Arc<Self>, instr: InstrId) {
        let mut backoff = BACKOFF.0;
        let mut asked = false;
        loop {
            match self.step(&instr, &mut asked).await {
                Step::Done => break,
                Step::Now => continue,
                Step::Later => {
                    madsim::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
            }
        }
        let mut driving = self.driving.lock().unwrap_or_else(|p| p.into_inner());
        driving.remove(&instr);
    }

    /// One step of an order, by where it stands.
    async fn step(&self, instr: &InstrId, asked: &mut bool) -> Step {
        let order = self.core().get(instr).expect("driven orders exist").clone();
        match order.status {
            _ if order.status.is_final() && order.settled => Step::Done,
            OrderStatus::Success | OrderStatus::Fail => self.settle(&order).await,
            OrderStatus::Init if order.kind.holds() && !order.held => self.hold(&order).await,
            OrderStatus::Init => {
                let sent = self.moved(instr, OrderStatus::Sent, None);
                if self.env.bugs.is(Bug::ChannelOrderNotDurableBeforeSend) {
                    self.append(sent);
                } else {
                    self.write(sent).await;
                }
                Step::Now
            }
            OrderStatus::Sent if !*asked => {
                *asked = true;
                self.submit(&order).await
            }
            OrderStatus::Sent | OrderStatus::Unknown => self.query(&order).await,
        }
    }

    fn moved(
        &self,
        instr: &InstrId,
        status: OrderStatus,
        fail: Option<FailCause>,
    ) -> ClearingRecord {
        self.core()
            .move_to(instr, status, fail)
            .unwrap_or_else(|| panic!("{instr} may become {status:?}"))
    }

    /// Moves to a final status unless something else (a notification) got there first.
    async fn finish(
        &self,
        instr: &InstrId,
        status: InstrStatus,
        probe: Option<&'static str>,
    ) -> Step {
        let Some((next, fail)) = final_of(status) else {
            return Step::Later;
        };
        let record = self.core().move_to(instr, next, fail);
        if let Some(record) = record {
            if let Some(name) = probe {
                self.env.probes.hit(name);
            }
            self.write(record).await;
        }
        Step::Now
    }

    /// Sends the instruction: a final answer ends the order, PROCESSING waits, no answer makes
    /// it UNKNOWN (never FAIL).
    async fn submit(&self, order: &ChannelOrder) -> Step {
        let call = BankCall(BankCommand::Submit(instruction(order)));
        let bank = self.config.banks[order.bank as usize];
        let answer = self.transport.call(bank, call, BANK_TIMEOUT).await;
        let env = &self.env;
        env.buggify.window(Point::AnswerToRecord, &env.probes).await;
        match answer {
            Ok(Ok(BankReply::Status(status))) => self.finish(&order.instr, status, None).await,
            Ok(_) => Step::Later,
            Err(_) if self.reads_timeout_as_fail(order.kind) => {
                let failed = Some(FailCause::TimedOut);
                let record = self.core().move_to(&order.instr, OrderStatus::Fail, failed);
                if let Some(record) = record {
                    self.write(record).await;
                }
                Step::Now
            }
            Err(_) => {
                let record = self
                    .core()
                    .move_to(&order.instr, OrderStatus::Unknown, None);
                if let Some(record) = record {
                    self.env.probes.hit(names::CLEARING_UNKNOWN);
                    self.write(record).await;
                }
                Step::Later
            }
        }
    }

    /// Whether a planted bug reads a bank's silence about an order of `kind` as a refusal.
    fn reads_timeout_as_fail(&self, kind: OrderKind) -> bool {
        let bugs = self.env.bugs;
        bugs.is(Bug::UnknownTreatedAsFail)
            || (kind == OrderKind::Withdrawal && bugs.is(Bug::WithdrawalReversedOnTimeout))
    }

    /// Asks the bank where the instruction stands; one it never got is sent again.
    async fn query(&self, order: &ChannelOrder) -> Step {
        let call = BankCall(BankCommand::Query(order.instr.clone()));
        let bank = self.config.banks[order.bank as usize];
        let probe =
            (order.status == OrderStatus::Unknown).then_some(names::CLEARING_RESOLVED_BY_QUERY);
        match self.transport.call(bank, call, BANK_TIMEOUT).await {
            Ok(Ok(BankReply::Status(status))) => self.finish(&order.instr, status, probe).await,
            Ok(Ok(BankReply::NotFound)) => {
                self.env.probes.hit(names::CLEARING_RESENT);
                if order.status == OrderStatus::Unknown {
                    self.write(self.moved(&order.instr, OrderStatus::Sent, None))
                        .await;
                }
                self.submit(order).await
            }
            _ => Step::Later,
        }
    }

    /// Posts a withdrawal's hold (Dr user / Cr in-transit); a refusal fails the order.
    async fn hold(&self, order: &ChannelOrder) -> Step {
        let (_, transit) = self.accounts(order);
        let request = crate::ids::RequestId::new(order.key.as_str());
        match self
            .post(order, request, legs(order.account, transit, order.amount))
            .await
        {
            Some(Ok(())) => {
                self.write(ClearingRecord::Held {
                    instr: order.instr.clone(),
                })
                .await;
                Step::Now
            }
            Some(Err(code)) => {
                let failed =
                    self.moved(&order.instr, OrderStatus::Fail, Some(FailCause::Hold(code)));
                self.write(failed).await;
                Step::Now
            }
            None => Step::Later,
        }
    }

    /// Makes the final order's last posting (if its outcome needs one), then records it.
    async fn settle(&self, order: &ChannelOrder) -> Step {
        if let Some(request) = order.final_request() {
            let (reserve, transit) = self.accounts(order);
            let legs = match (order.kind, order.status) {
                (OrderKind::Deposit, _) => legs(reserve, order.account, order.amount),
                // A transfer's second account is the receiving bank's reserve.
                (OrderKind::Transfer { .. }, _) => legs(transit, reserve, order.amount),
                (_, OrderStatus::Success) => legs(transit, reserve, order.amount),
                (_, _) => legs(transit, order.account, order.amount),
            };
            match self.post(order, request.clone(), legs).await {
                Some(Ok(())) => {}
                Some(Err(code)) => {
                    if !self.hold_in_suspense(order, request, code).await {
                        return Step::Later;
                    }
                }
                None => return Step::Later,
            }
            if order.kind.holds() && order.status == OrderStatus::Fail {
                self.env.probes.hit(names::CLEARING_REVERSED);
                if order.kind == OrderKind::RefundToCard {
                    self.env.probes.hit(names::CLEARING_REFUND_TO_CARD_REVERSED);
                }
            }
        } else if order.kind == OrderKind::Deposit && order.status == OrderStatus::Fail {
            self.env.probes.hit(names::CLEARING_DECLINED);
        }
        self.write(ClearingRecord::Settled {
            instr: order.instr.clone(),
        })
        .await;
        Step::Now
    }

    /// A final posting the ledger refused (the account it names does not exist: only a
    /// platform order a broken payment node asked for another's account gets here): the money
    /// the bank moved is held in suspense (挂账) on the account's shard, where reconciliation
    /// requires it be gone at rest, instead of being lost. Whether it was posted.
    async fn hold_in_suspense(
        &self,
        order: &ChannelOrder,
        request: crate::ids::RequestId,
        code: RefusalCode,
    ) -> bool {
        tracing::warn!(instr = %order.instr, %code, "final posting refused: held in suspense");
        let shards = self.config.topology.ledger_shards();
        let shard = order.account.shard(shards);
        let suspense = crate::ids::AccountId::suspense(order.bank, shard, shards);
        let (reserve, transit) = self.accounts(order);
        let from = if order.kind == OrderKind::Deposit {
            reserve
        } else {
            transit
        };
        let held = RequestId::new(compact_str::format_compact!("{request}:suspense"));
        let posted = self.post(order, held, legs(from, suspense, order.amount));
        match posted.await {
            Some(Ok(())) => {
                self.env.probes.hit(names::CLEARING_FINAL_HELD);
                true
            }
            Some(Err(code)) => panic!("{}: suspense posting refused: {code}", order.instr),
            None => false,
        }
    }

    /// Posts on the account's shard: `None` if the ledger did not answer.
    async fn post(
        &self,
        order: &ChannelOrder,
        request: crate::ids::RequestId,
        legs: Vec<crate::ledger::Leg>,
    ) -> Option<Result<(), RefusalCode>> {
        let shard = order.account.shard(self.config.topology.ledger_shards());
        self.post_on(shard, request, legs).await
    }

    /// Posts on `shard`: `None` if the ledger did not answer.
    async fn post_on(
        &self,
        shard: crate::ids::ShardId,
        request: crate::ids::RequestId,
        legs: Vec<crate::ledger::Leg>,
    ) -> Option<Result<(), RefusalCode>> {
        let call = LedgerCall(LedgerCommand::Post { request, legs });
        let dst = self.config.topology.ledger(shard);
        let retried = self.transport.call_with_retry(dst, call, POST_POLICY).await;
        match retried.result {
            Ok(Ok(_)) => Some(Ok(())),
            Ok(Err(e)) => Some(Err(e.code())),
            Err(_) => None,
        }
    }
}

/// The instruction of an order.
fn instruction(order: &ChannelOrder) -> Instruction {
    let (direction, to_bank) = match order.kind {
        OrderKind::Deposit => (Direction::Debit, None),
        OrderKind::Withdrawal | OrderKind::RefundToCard => (Direction::Credit, None),
        OrderKind::Transfer { to } => (Direction::TransferOut, Some(to)),
    };
    Instruction {
        id: order.instr.clone(),
        direction,
        card: order.card,
        amount: order.amount,
        to_bank,
    }
}

/// The order status a bank's final status means.
fn final_of(status: InstrStatus) -> Option<(OrderStatus, Option<FailCause>)> {
    match status {
        InstrStatus::Processing => None,
        InstrStatus::Success => Some((OrderStatus::Success, None)),
        InstrStatus::Fail(reason) => Some((OrderStatus::Fail, Some(FailCause::Bank(reason)))),
    }
}

#[path = "repair.rs"]
mod repair;

impl ClearingNode {
    /// Recovers the orders from the log, resumes the unfinished ones and starts serving.
    pub async fn start(env: &NodeEnv, config: ClearingConfig) -> std::io::Result<ClearingNode> {
        let log = DurableLog::<ClearingRecord>::open(env, LOG_FILE, config.fsync_latency);
        let (records, report) = log.replay();
        if report.torn_bytes > 0 {
            env.probes.hit(names::RECOVERY_TORN_TAIL_CUT);
        }
        if !records.is_empty() {
            env.probes.hit(names::CLEARING_RECOVERED);
        }
        let transport = Transport::for_node(env).await?;
        let shell = Arc::new(Shell {
            core: Mutex::new(ClearingCore::recover(&records)),
            log,
            env: env.clone(),
            config,
            transport: transport.clone(),
            driving: Mutex::new(BTreeSet::new()),
            boot: crate::transport::bind_instant(),
        });
        let serving = shell.clone();
        transport
            .serve_from(move |ClearingCall(request), from| serving.clone().fund(request, from));
        let notified = shell.clone();
        transport
            .serve_from(move |call: BankNotifyCall, from| notified.clone().notified(call, from));
        let reconciling = shell.clone();
        transport.serve_from(move |super::types::ReconCall(command), from| {
            reconciling.clone().reconcile(command, from)
        });
        let unfinished = shell.core().unfinished();
        for instr in unfinished {
            env.probes.hit(names::CLEARING_RESUMED);
            shell.clone().drive(instr);
        }
        Ok(ClearingNode { shell })
    }

    /// Reads the live orders (the harness's god's-eye view).
    pub fn read<T>(&self, f: impl FnOnce(&ClearingCore) -> T) -> T {
        f(&self.shell.core())
    }

    /// What a gateway that is down would recover from its disk.
    pub fn durable_state(env: &NodeEnv, config: &ClearingConfig) -> ClearingCore {
        let log = DurableLog::<ClearingRecord>::open(env, LOG_FILE, config.fsync_latency);
        ClearingCore::recover(&log.read_durable())
    }
}

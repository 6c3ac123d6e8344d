//! The `outbox` strategy (local message table, 本地消息表): the debit and the row of its credit
//! are one local transaction on the payer's shard (`LedgerCommand::PostWithRow`); the shard
//! relays the row to the broker's credits topic once it is durable (`ledger/credits.rs`), and
//! the payment nodes consume that topic and post each credit on the payee's shard, idempotently
//! by its key `outbox:<xid>:credit`. The payment is answered once its debit is durable: the
//! credit follows (eventual), and there is no rollback path: a debit that went through is
//! always credited, however late.
//!
//! The coordinator keeps a small durable log (`Begun` before the debit is asked, `Ended` before
//! the outcome is handed back), so a restarted payment node asks an unfinished debit again under
//! the same key and gets the ledger's first answer.
//!
//! The same coordinator runs the `txmsg` strategy (RocketMQ transactional messages): the
//! payment node stores the credit's row as a half message first, then posts the debit under
//! its key (the local transaction), then commits the half, or rolls it back, one way. The
//! broker's check-back about a half the node never decided is answered from durable state:
//! the payer's shard settles the debit's request for good (`SettleRequest`: its outcome, or a
//! durable refusal so that it can never be posted later), and the half is committed exactly
//! when the debit was posted. A check-back about a movement this incarnation is still running
//! answers UNKNOWN.

pub mod participant;

use crate::broker::consumer::{self, ConsumerConfig};
use crate::broker::{BrokerCall, BrokerCommand, BrokerReply, CheckAnswer, CheckBackCall};
use crate::broker::{ConsumeMode, Delivery};
use crate::ids::{AccountId, RequestId, Xid};
use crate::ledger::{CreditRow, LedgerCall, LedgerCommand, Leg, Side, Step};
use crate::ledger::{CREDITS_QUEUES, CREDITS_TOPIC};
use crate::log::DurableLog;
use crate::movement::{Branch, MovementLog, MovementRecord, MovementView, Phase};
use crate::node::NodeEnv;
use crate::probes::names;
use crate::refusal::{Refusal, RefusalCode};
use crate::strategy::{Movement, MovementOutcome};
use crate::topology::Topology;
use crate::transport::{RetryPolicy, Transport};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The coordinator's log on the payment node's disk.
pub const LOG_FILE: &str = "outbox-moves.log";

/// The consumer group of the payment nodes that apply the credits.
pub const CREDITS_GROUP: &str = "money-credits";

/// One durable change to the coordinator's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MoveRecord {
    Begun {
        xid: Xid,
        legs: Vec<Leg>,
    },
    Ended {
        xid: Xid,
        outcome: Result<(), Refusal>,
    },
}

/// How the debit and each credit are asked: until answered.
const POLICY: RetryPolicy = RetryPolicy {
    attempts_max: u32::MAX,
    timeout: Duration::from_millis(500),
    backoff: Duration::from_millis(20),
    backoff_max: Duration::from_millis(1_000),
};

/// How the credit's row reaches the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// In the debit's ledger record, relayed by the shard (`outbox`).
    Outbox,
    /// As a half message this payment node stores first and decides after (`txmsg`), under
    /// its producer group.
    Txmsg { broker: SocketAddr, group: String },
}

/// The coordinator of one payment node. Cheap to clone.
#[derive(Clone)]
pub struct OutboxCoordinator {
    mode: Mode,
    probes: crate::probes::Probes,
    /// The movements this incarnation is running (a check-back about one answers UNKNOWN).
    running: Arc<Mutex<std::collections::BTreeSet<Xid>>>,
    log: DurableLog<MoveRecord>,
    view: Arc<Mutex<MovementLog>>,
    legs: Arc<Mutex<std::collections::BTreeMap<Xid, Vec<Leg>>>>,
    transport: Transport,
    topology: Topology,
}

impl OutboxCoordinator {
    pub fn open(
        env: &NodeEnv,
        mode: Mode,
        (transport, topology): (Transport, Topology),
        fsync: Duration,
    ) -> Self {
        let log = DurableLog::open(env, LOG_FILE, fsync);
        let (records, report) = log.replay();
        if report.torn_bytes > 0 {
            env.probes.hit(names::RECOVERY_TORN_TAIL_CUT);
        }
        let shards = topology.ledger_shards();
        let coordinator = OutboxCoordinator {
            mode,
            probes: env.probes.clone(),
            running: Arc::default(),
            log,
            view: Arc::default(),
            legs: Arc::default(),
            transport,
            topology,
        };
        for r in records {
            coordinator.fold(r, shards);
        }
        coordinator
    }

    /// What the log on a down node's disk holds durably, as the neutral view.
    pub fn durable_activities(env: &NodeEnv, shards: u32) -> Vec<MovementView> {
        let log = DurableLog::<MoveRecord>::open(env, LOG_FILE, Duration::ZERO);
        let mut view = MovementLog::default();
        for r in log.read_durable() {
            view_apply(&mut view, r, shards);
        }
        view.activities().cloned().collect()
    }

    fn view(&self) -> MutexGuard<'_, MovementLog> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fold(&self, record: MoveRecord, shards: u32) {
        if let MoveRecord::Begun { xid, legs } = &record {
            let mut all = self.legs.lock().unwrap_or_else(|p| p.into_inner());
            all.insert(xid.clone(), legs.clone());
        }
        view_apply(&mut self.view(), record, shards);
    }

    async fn write(&self, record: MoveRecord) {
        {
            let _view = self.view();
            self.log.append(&record);
        }
        self.fold(record, self.topology.ledger_shards());
        self.log.sync().await;
    }

    /// The debit with its credit's row, once; the outcome once the debit is durable.
    pub async fn execute(&self, movement: Movement) -> MovementOutcome {
        let xid = movement.xid;
        let legs = movement.legs;
        if split(&legs).is_none() {
            let why = "the outbox strategy moves one debit to one credit";
            return MovementOutcome::Aborted(Refusal::new(RefusalCode::Invalid, why));
        }
        self.write(MoveRecord::Begun {
            xid: xid.clone(),
            legs,
        })
        .await;
        self.run(xid).await
    }

    /// Finishes a movement found in the log after a restart; `None` if never begun here.
    pub async fn resume(&self, xid: &Xid) -> Option<MovementOutcome> {
        let legs = self
            .legs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(xid)
            .cloned();
        legs?;
        Some(self.run(xid.clone()).await)
    }

    async fn run(&self, xid: Xid) -> MovementOutcome {
        if let Some(ended) = self.view().get(&xid).filter(|a| a.status.is_terminal()) {
            return crate::tcc::engine::outcome_of(ended);
        }
        let legs = self.legs.lock().unwrap_or_else(|p| p.into_inner())[&xid].clone();
        let outcome = self.debit(&xid, &legs).await;
        let ended = MoveRecord::Ended {
            xid,
            outcome: outcome.clone(),
        };
        self.write(ended).await;
        match outcome {
            Ok(()) => MovementOutcome::Committed,
            Err(refusal) => MovementOutcome::Aborted(refusal),
        }
    }

    /// The debit's shard, its voucher's legs and the credit's row.
    fn parts(&self, xid: &Xid, legs: &[Leg]) -> Parts {
        let shards = self.topology.ledger_shards();
        let ((debit_step, debit), (credit_step, credit)) = split(legs).expect("checked when begun");
        let (from, to) = (debit.account.shard(shards), credit.account.shard(shards));
        let row = CreditRow {
            xid: xid.clone(),
            step: credit_step,
            shard: to,
            legs: vec![
                Leg::debit(AccountId::transit(to, shards), credit.amount),
                credit,
            ],
        };
        let transit = AccountId::transit(from, shards);
        let voucher = vec![debit, Leg::credit(transit, debit.amount)];
        Parts {
            from,
            step: debit_step,
            voucher,
            row,
        }
    }

    /// The local transaction on the payer's shard: the debit and its credit's row (`outbox`),
    /// or the debit between its half message and the half's end (`txmsg`).
    async fn debit(&self, xid: &Xid, legs: &[Leg]) -> Result<(), Refusal> {
        let parts = self.parts(xid, legs);
        let Mode::Txmsg { broker, group } = &self.mode else {
            let Parts {
                from,
                step,
                voucher,
                row,
            } = parts;
            let command = LedgerCommand::PostWithRow {
                xid: xid.clone(),
                step,
                request: RequestId::new(compact_str::format_compact!("outbox:{xid}:debit")),
                legs: voucher,
                row,
            };
            let dst = self.topology.ledger(from);
            return post_until_answered(&self.transport, dst, command).await;
        };
        self.running().insert(xid.clone());
        let result = self.under_half(xid, parts, (*broker, group)).await;
        self.running().remove(xid);
        result
    }

    fn running(&self) -> MutexGuard<'_, std::collections::BTreeSet<Xid>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Half message, debit, end of the half (one way).
    async fn under_half(
        &self,
        xid: &Xid,
        parts: Parts,
        (broker, group): (SocketAddr, &str),
    ) -> Result<(), Refusal> {
        let message = parts.row.message();
        let command = BrokerCommand::SendHalf {
            topic: CREDITS_TOPIC.to_string(),
            key: message.key,
            payload: message.payload,
            producer_msg_id: message.id.to_string(),
            producer_group: group.to_string(),
        };
        let stored = self
            .transport
            .call_with_retry(broker, BrokerCall(command), HALF_POLICY);
        let Ok(Ok(BrokerReply::HalfSent { half })) = stored.await.result else {
            let why = "the broker did not store the half message: nothing moved";
            return Err(Refusal::new(RefusalCode::Unavailable, why));
        };
        self.probes.hit(names::TXMSG_CREDIT_HALF_STORED);
        let command = LedgerCommand::PostStep {
            xid: xid.clone(),
            step: parts.step,
            request: debit_request(xid),
            legs: parts.voucher,
        };
        let dst = self.topology.ledger(parts.from);
        let result = post_until_answered(&self.transport, dst, command).await;
        let end = BrokerCommand::EndTransaction {
            half,
            commit: result.is_ok(),
        };
        let transport = self.transport.clone();
        madsim::task::spawn(async move {
            let _ = transport
                .call(broker, BrokerCall(end), HALF_POLICY.timeout)
                .await;
        });
        result
    }

    /// The broker asks about a half this node stored and never decided: commit exactly when
    /// the debit was posted, as its shard settles it for good; UNKNOWN while it runs here or
    /// while the shard does not answer.
    pub async fn answer_check(&self, check: CheckBackCall) -> CheckAnswer {
        let Ok(row) = serde_json::from_str::<CreditRow>(&check.payload) else {
            return CheckAnswer::Rollback;
        };
        if self.running().contains(&row.xid) {
            return CheckAnswer::Unknown;
        }
        let legs = self
            .legs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&row.xid)
            .cloned();
        let Some(legs) = legs else {
            // Begun is durable before the half is sent: a half with no movement here was
            // never this node's, and its debit was never asked by it.
            return CheckAnswer::Rollback;
        };
        let parts = self.parts(&row.xid, &legs);
        let settle = LedgerCommand::SettleRequest {
            request: debit_request(&row.xid),
            legs: parts.voucher,
        };
        let dst = self.topology.ledger(parts.from);
        let answer = self
            .transport
            .call(dst, LedgerCall(settle), HALF_POLICY.timeout);
        let answer = match answer.await {
            Ok(Ok(_)) => CheckAnswer::Commit,
            Ok(Err(_)) => CheckAnswer::Rollback,
            Err(_) => CheckAnswer::Unknown,
        };
        self.probes.hit(match answer {
            CheckAnswer::Commit => names::TXMSG_CREDIT_CHECK_COMMIT,
            CheckAnswer::Rollback => names::TXMSG_CREDIT_CHECK_ROLLBACK,
            CheckAnswer::Unknown => names::TXMSG_CREDIT_CHECK_UNKNOWN,
        });
        answer
    }

    pub fn unfinished(&self) -> Vec<Xid> {
        self.view().unfinished()
    }
    pub fn activities(&self) -> Vec<MovementView> {
        self.view().activities().cloned().collect()
    }
    pub fn unfinished_activities(&self) -> Vec<MovementView> {
        self.view().open_activities().cloned().collect()
    }
    pub fn take_changed(&self) -> Vec<MovementView> {
        self.view().take_changed().into_iter().cloned().collect()
    }
    pub fn resync(&self) -> Vec<MovementView> {
        let mut view = self.view();
        view.take_changed();
        view.activities().cloned().collect()
    }
}

/// The key of a `txmsg` movement's debit.
fn debit_request(xid: &Xid) -> RequestId {
    RequestId::new(compact_str::format_compact!("txmsg:{xid}:debit"))
}

/// How a half message is stored: a few quick attempts (nothing has moved yet).
const HALF_POLICY: RetryPolicy = RetryPolicy {
    attempts_max: 3,
    timeout: Duration::from_millis(300),
    backoff: Duration::from_millis(50),
    backoff_max: Duration::from_millis(200),
};

/// The one debit and the one credit of a movement, if that is what it is.
/// The local transaction's parts: the debit's shard, its step and voucher, the credit's row.
struct Parts {
    from: crate::ids::ShardId,
    step: Step,
    voucher: Vec<Leg>,
    row: CreditRow,
}

/// A two-leg movement's debit and credit, each with its step (its place among the legs).
fn split(legs: &[Leg]) -> Option<((Step, Leg), (Step, Leg))> {
    match legs {
        [a, b] if a.side == Side::Debit && b.side == Side::Credit => {
            Some(((Step::of(0), *a), (Step::of(1), *b)))
        }
        [a, b] if a.side == Side::Credit && b.side == Side::Debit => {
            Some(((Step::of(1), *b), (Step::of(0), *a)))
        }
        _ => None,
    }
}

fn view_apply(view: &mut MovementLog, record: MoveRecord, shards: u32) {
    match record {
        MoveRecord::Begun { xid, legs } => {
            let branches = legs.iter().map(|l| Branch::of_leg(l, shards)).collect();
            view.apply(MovementRecord::Begun { xid, branches });
        }
        MoveRecord::Ended { xid, outcome } => {
            let (commit, reason, status) = match outcome {
                Ok(()) => (true, None, Phase::Committed),
                Err(r) => (false, Some(r), Phase::Aborted),
            };
            let decided = MovementRecord::Decided {
                xid: xid.clone(),
                commit,
                reason,
            };
            view.apply(decided);
            let heuristic = None;
            view.apply(MovementRecord::Ended {
                xid,
                status,
                heuristic,
            });
        }
    }
}

/// Sends `command` to a ledger shard until it answers; its refusal, if it refused.
async fn post_until_answered(
    transport: &Transport,
    shard: SocketAddr,
    command: LedgerCommand,
) -> Result<(), Refusal> {
    loop {
        let call = LedgerCall(command.clone());
        match transport.call_with_retry(shard, call, POLICY).await.result {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => return Err(Refusal::new(e.code(), e.to_string())),
            Err(_) => {}
        }
    }
}

/// Runs payment node `index` of `nodes`'s share of the credits consumer: each row is posted on
/// its payee's shard under its key (a repeat answers as the first time). A credit refused is
/// nacked, retried on the group's schedule and finally dead-lettered: there is no rollback.
pub async fn apply_credits(
    env: NodeEnv,
    transport: Transport,
    topology: Topology,
    broker: SocketAddr,
    (index, nodes): (u32, u32),
) {
    let t = transport.clone();
    let probes = env.probes.clone();
    let handler = consumer::handler(move |delivery: Delivery| {
        let (t, topology, probes) = (t.clone(), topology.clone(), probes.clone());
        async move {
            let row: CreditRow = serde_json::from_str(&delivery.message.payload)
                .map_err(|e| format!("not a credit row: {e}"))?;
            let command = LedgerCommand::PostStep {
                xid: row.xid.clone(),
                step: row.step,
                request: RequestId::new(compact_str::format_compact!("outbox:{}:credit", row.xid)),
                legs: row.legs.clone(),
            };
            let dst = topology.ledger(row.shard);
            post_until_answered(&t, dst, command)
                .await
                .map_err(|r| r.to_string())?;
            probes.hit(names::OUTBOX_CREDIT_APPLIED);
            Ok(())
        }
    });
    let name = format!("payment-{index}");
    let config = ConsumerConfig::new(
        CREDITS_GROUP,
        name,
        CREDITS_TOPIC,
        CREDITS_QUEUES,
        ConsumeMode::Clustering,
        broker,
    );
    let queues = consumer::allocate(CREDITS_QUEUES, nodes, index);
    consumer::run_on(env, transport, config, queues, handler).await;
}

//! The payment node's runtime: serves pay and refund requests as the business-activity
//! manager of their money movements, and finishes every unfinished order after a restart.
//!
//! The decisions live in the pure order flow ([`super::flow`]: admission, then one
//! [`OrderFlow`] per order); this shell performs what they ask (the order log, the trade RPC,
//! the strategy, buggify windows, pauses) and feeds the results back. Any node accepts any
//! request; a request whose key another node owns is forwarded to it.

use super::flow::{
    admit, receipt, resumptions, Admission, BeginAnswer, EndAnswer, FlowInput, FlowOutput,
    OrderFlow, Resumption,
};
use super::orders::{Order, OrderBook, OrderKind, OrderRecord};
use super::types::{ClientPaymentCall, PaymentCall, PaymentCommand, PaymentError, PaymentReceipt};
use crate::auth::{Authority, Directory, Principal};
use crate::log::DurableLog;
use crate::movement::MovementView;
use crate::node::NodeEnv;
use crate::probes::names;
use crate::refusal::Refusal;
use crate::refusal::RefusalCode;
use crate::strategy::{Coordinator, StrategyKind};
use crate::topology::Topology;
use crate::trade::TradeCall;
use crate::trade::{TradeCommand, TradeReply};
use crate::transport::{RetryPolicy, Transport};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The order log's file on the node's disk.
pub const LOG_FILE: &str = "payment.log";

/// How a payment node is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentConfig {
    /// This node's index among the payment nodes (part of every activity id it issues).
    pub index: u32,
    pub fsync_latency: Duration,
    pub strategy: StrategyKind,
    /// Who owns which account: whose money a client may move.
    pub directory: Directory,
    /// Under the `outbox` strategy: the broker, and how many payment nodes share the credits
    /// consumer (this node takes its share of the queues).
    pub credits: Option<(SocketAddr, u32)>,
}

/// How the trade is asked to begin: bounded, since a trade that never answers means the
/// order fails (and is then ended at the trade, which pins the failure).
const BEGIN_POLICY: RetryPolicy = RetryPolicy {
    attempts_max: 8,
    timeout: Duration::from_millis(500),
    backoff: Duration::from_millis(50),
    backoff_max: Duration::from_millis(1_000),
};

/// How the trade is told the outcome: until it answers.
const END_POLICY: RetryPolicy = RetryPolicy {
    attempts_max: u32::MAX,
    timeout: Duration::from_millis(500),
    backoff: Duration::from_millis(20),
    backoff_max: Duration::from_millis(1_000),
};

/// How long a forwarded request waits for the owner's answer.
const FORWARD_TIMEOUT_MS: u64 = 800;

/// What the god's-eye view reads from a payment node.
#[derive(Debug, Clone)]
pub struct PaymentView {
    pub orders: Vec<Order>,
    pub activities: Vec<MovementView>,
}

struct Inner {
    index: u32,
    directory: Directory,
    orders: Mutex<OrderBook>,
    log: DurableLog<OrderRecord>,
    coordinator: Coordinator,
    transport: Transport,
    topology: Topology,
    env: NodeEnv,
}

/// A running payment node. Cheap to clone.
#[derive(Clone)]
pub struct PaymentNode {
    inner: Arc<Inner>,
}

impl PaymentNode {
    /// Recovers the order book and the strategy's state, starts serving, and resumes every
    /// unfinished order and movement in the background.
    pub async fn start(
        env: &NodeEnv,
        config: PaymentConfig,
        topology: Topology,
    ) -> std::io::Result<PaymentNode> {
        let log = DurableLog::<OrderRecord>::open(env, LOG_FILE, config.fsync_latency);
        let (records, report) = log.replay();
        if report.records > 0 {
            env.probes.hit(names::PAYMENT_RECOVERED);
        }
        if report.torn_bytes > 0 {
            env.probes.hit(names::RECOVERY_TORN_TAIL_CUT);
        }
        let transport = Transport::for_node(env).await?;
        let coordinator = Coordinator::open(
            config.strategy,
            env,
            transport.clone(),
            topology.clone(),
            config.fsync_latency,
            config.credits.map(|(broker, _)| broker),
        );
        let node = PaymentNode {
            inner: Arc::new(Inner {
                index: config.index,
                directory: config.directory,
                orders: Mutex::new(OrderBook::recover(config.index, &records)),
                log,
                coordinator,
                transport: transport.clone(),
                topology,
                env: env.clone(),
            }),
        };
        tracing::info!(
            node = config.index,
            records = report.records,
            "payment recovered"
        );
        node.serve(&transport, env);
        node.resume_all();
        if let Coordinator::Outbox(o) = &node.inner.coordinator {
            // The txmsg strategy's check-backs (an outbox coordinator stores no half).
            let o = o.clone();
            transport.serve(move |check: crate::broker::CheckBackCall| {
                let o = o.clone();
                async move { o.answer_check(check).await }
            });
        }
        if let Some((broker, nodes)) = config.credits {
            let (env, t, topology) = (env.clone(), transport.clone(), node.inner.topology.clone());
            let share = (config.index, nodes);
            madsim::task::spawn(crate::outbox::apply_credits(
                env, t, topology, broker, share,
            ));
        }
        Ok(node)
    }

    /// Serves the client API (credential verified first) and the internal forwarding call
    /// (only from payment nodes).
    fn serve(&self, transport: &Transport, env: &NodeEnv) {
        let server = self.clone();
        transport.serve_from(move |call: PaymentCall, from| {
            let node = server.clone();
            async move {
                let peers = &node.inner.topology.payments;
                if !crate::transport::sent_by(from, peers) {
                    let step = format!("forward a request for client-{}", call.client);
                    return node.refuse(step, from.to_string());
                }
                node.handle(call.client, call.command).await
            }
        });
        let server = self.clone();
        let authority = Authority::for_run(env.seed);
        transport.serve_from(move |call: ClientPaymentCall, from| {
            let node = server.clone();
            let client = authority.verify(&call.credential, from);
            async move {
                match client {
                    Ok(client) => node.handle(client, call.command).await,
                    Err(bad) => {
                        node.inner
                            .env
                            .probes
                            .hit(names::PAYMENT_UNAUTHORIZED_REFUSED);
                        let refusal = Refusal::new(RefusalCode::Unauthenticated, bad.to_string());
                        Err(PaymentError::Refused(refusal))
                    }
                }
            }
        });
    }

    fn orders(&self) -> MutexGuard<'_, OrderBook> {
        self.inner.orders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the live state (the harness's god's-eye view).
    pub fn view(&self) -> PaymentView {
        PaymentView {
            orders: self.orders().orders().cloned().collect(),
            activities: self.inner.coordinator.activities(),
        }
    }

    /// The orders and activities not yet ended (what the harness's drain polls), without
    /// copying the ended ones.
    pub fn unfinished_view(&self) -> PaymentView {
        PaymentView {
            orders: self.orders().unfinished(),
            activities: self.inner.coordinator.unfinished_activities(),
        }
    }

    /// The activities changed since the last such read, with their orders (the harness's
    /// incremental capture).
    pub fn changes(&self) -> PaymentView {
        let activities = self.inner.coordinator.take_changed();
        let book = self.orders();
        let orders = activities
            .iter()
            .filter_map(|a| book.by_xid(&a.xid).cloned())
            .collect();
        PaymentView { orders, activities }
    }

    /// [`PaymentNode::view`], forgetting the changes so far: a whole read that the next
    /// [`PaymentNode::changes`] continues from.
    pub fn resync(&self) -> PaymentView {
        PaymentView {
            orders: self.orders().orders().cloned().collect(),
            activities: self.inner.coordinator.resync(),
        }
    }

    /// What a payment node that is down would recover from its disk.
    pub fn durable_view(env: &NodeEnv, config: PaymentConfig) -> PaymentView {
        let log = DurableLog::<OrderRecord>::open(env, LOG_FILE, config.fsync_latency);
        let book = OrderBook::recover(config.index, &log.read_durable());
        PaymentView {
            orders: book.orders().cloned().collect(),
            activities: Coordinator::durable_activities(
                config.strategy,
                env,
                config.directory.shards,
            ),
        }
    }

    /// Refuses a request its caller may not make; nothing was read or written.
    fn refuse(&self, step: String, caller: String) -> Result<PaymentReceipt, PaymentError> {
        self.inner
            .env
            .probes
            .hit(names::PAYMENT_UNAUTHORIZED_REFUSED);
        let detail = format!("{caller} may not {step}");
        Err(PaymentError::Refused(Refusal::new(
            RefusalCode::Unauthorized,
            detail,
        )))
    }

    /// Whether `client` may ask `command`: [`super::access::authorize`], then, for a refund,
    /// whether the trade is one of its merchant account's (read from the trade first; no answer
    /// is no outcome yet).
    async fn authorize(&self, client: u32, command: &PaymentCommand) -> Result<(), PaymentError> {
        let inner = &self.inner;
        let dir = inner.directory;
        if let Err(refusal) = super::access::authorize(&dir, client, command, inner.env.bugs) {
            inner.env.probes.hit(names::PAYMENT_UNAUTHORIZED_REFUSED);
            return Err(PaymentError::Refused(refusal));
        }
        let PaymentCommand::Refund { trade, .. } = command else {
            return Ok(());
        };
        let query = TradeCall(TradeCommand::Query { trade: *trade });
        let dst = inner.topology.trade(trade.shard);
        let retried = inner
            .transport
            .call_with_retry(dst, query, BEGIN_POLICY)
            .await;
        match retried.result {
            Ok(Ok(TradeReply::Trade(t))) if !dir.owns(client, t.merchant) => {
                let step = format!("refund trade {trade} of {}", t.merchant);
                self.refuse(step, Principal::Client(client).to_string())
                    .map(|_| ())
            }
            // Its own trade, or one that does not exist (the order refuses it durably).
            Ok(_) => Ok(()),
            Err(_) => Err(PaymentError::InProgress),
        }
    }

    async fn handle(
        &self,
        client: u32,
        command: PaymentCommand,
    ) -> Result<PaymentReceipt, PaymentError> {
        self.authorize(client, &command).await?;
        self.deposit_from_card(client, &command).await?;
        if matches!(
            command,
            PaymentCommand::Deposit { .. } | PaymentCommand::Withdraw { .. }
        ) {
            let inner = &self.inner;
            let probes = &inner.env.probes;
            let (transport, topology) = (&inner.transport, &inner.topology);
            return super::funding::carry_out(&command, client, transport, topology, probes).await;
        }
        let nodes = self.inner.topology.payments.len() as u32;
        // Where the order log ends once the answer is decided: the record it comes from (the
        // new order's, or the pinned outcome a repeat is answered from) lies before it.
        let (admitted, mark) = {
            let mut book = self.orders();
            let admitted = match admit(&book, self.inner.index, nodes, command.clone()) {
                Admission::Create(record) => {
                    let key = match &record {
                        OrderRecord::Created { key, .. } => key.clone(),
                        OrderRecord::Finished { .. }
                        | OrderRecord::GaveUp { .. }
                        | OrderRecord::ToCard { .. } => {
                            unreachable!("admission creates")
                        }
                    };
                    self.inner.log.append(&record);
                    book.apply(record);
                    Ok(book.get(&key))
                }
                other => Err(other),
            };
            (admitted, self.inner.log.mark())
        };
        let order = match admitted {
            Ok(order) => order,
            Err(Admission::Forward { owner }) => return self.forward(owner, client, command).await,
            Err(Admission::Answer { reply, replayed }) => {
                if replayed {
                    self.inner.env.probes.hit(names::PAYMENT_REPLAYED_OUTCOME);
                }
                // Nothing is acknowledged before it is durable, repeats included: the order
                // record this answer comes from may still be in an fsync.
                self.inner.log.sync().await;
                self.inner.log.witness_reply(mark);
                return reply;
            }
            Err(Admission::Create(_)) => unreachable!("handled under the lock"),
        };
        // The order must be durable before its activity id is used anywhere else.
        self.inner.log.sync().await;
        let xid = order.xid.clone();
        let outcome = self.carry_out(order, FlowInput::Start).await;
        // Invariant 19, reply form: the order's own record is durable as the answer leaves
        // (its end record is not synced on purpose: a lost end is redone with the outcome the
        // movement's durable decision gives, which the coordinator witnesses).
        self.inner.log.witness_reply(mark);
        receipt(&xid, outcome)
    }

    /// F3: a card payment's deposit, before the order exists (only on the key's owner, and
    /// only for a key it has not seen: a known key is answered from its order). The trade's
    /// amount is read first; a trade that does not exist is left to the order to refuse.
    async fn deposit_from_card(
        &self,
        client: u32,
        command: &PaymentCommand,
    ) -> Result<(), PaymentError> {
        let PaymentCommand::Pay {
            by_card: true,
            trade,
            key,
            payer,
        } = command
        else {
            return Ok(());
        };
        let (trade, payer) = (*trade, *payer);
        let inner = &self.inner;
        let nodes = inner.topology.payments.len() as u32;
        let owned = super::types::payment_node_for(key, nodes) == inner.index;
        if !owned || self.orders().knows(&crate::ids::IdemKey::new(key)) {
            return Ok(());
        }
        let query = TradeCall(TradeCommand::Query { trade });
        let dst = inner.topology.trade(trade.shard);
        let retried = inner
            .transport
            .call_with_retry(dst, query, BEGIN_POLICY)
            .await;
        let amount = match retried.result {
            Ok(Ok(TradeReply::Trade(t))) => t.amount,
            Ok(_) => return Ok(()),
            Err(_) => return Err(PaymentError::InProgress),
        };
        let (transport, topology) = (&inner.transport, &inner.topology);
        super::funding::deposit_for_card_payment(key, client, payer, amount, transport, topology)
            .await?;
        inner.env.probes.hit(names::PAYMENT_CARD_DEPOSITED);
        Ok(())
    }

    /// F4 by card: a refund's way back to the card, asked until the gateway holds the money
    /// or refuses (then the refund stays in the payer's balance, where it already is).
    async fn pay_out_to_card(
        &self,
        order: &Order,
        payer: crate::ids::AccountId,
        amount: crate::money::Amount,
    ) {
        let inner = &self.inner;
        let Some(gateway) = inner.topology.clearing else {
            return;
        };
        let client = inner.directory.owner(payer).map_or(0, |(c, _)| c);
        loop {
            let key = order.key.as_str();
            let asked = super::funding::refund_to_card(
                key,
                client,
                payer,
                amount,
                &inner.transport,
                gateway,
            );
            match asked.await {
                Ok(()) => {
                    inner.env.probes.hit(names::PAYMENT_REFUNDED_TO_CARD);
                    return;
                }
                Err(PaymentError::Refused(refusal)) => {
                    inner.env.probes.hit(names::PAYMENT_REFUND_KEPT_IN_BALANCE);
                    tracing::warn!(%key, %refusal, "the refund stays in the payer's balance");
                    return;
                }
                Err(PaymentError::InProgress) => {
                    madsim::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Any node serves any request: one whose key another node owns is passed to that node,
    /// whose order log pins the key's outcome. No answer from the owner is not an outcome.
    async fn forward(
        &self,
        owner: u32,
        client: u32,
        command: PaymentCommand,
    ) -> Result<PaymentReceipt, PaymentError> {
        self.inner.env.probes.hit(names::PAYMENT_FORWARDED);
        let dst = self.inner.topology.payments[owner as usize];
        let timeout = Duration::from_millis(FORWARD_TIMEOUT_MS);
        let answer = self
            .inner
            .transport
            .call(dst, PaymentCall { client, command }, timeout)
            .await;
        answer.unwrap_or(Err(PaymentError::InProgress))
    }

    /// Restarts every unfinished order, and every unfinished movement no order covers.
    fn resume_all(&self) {
        let orders = self.orders().unfinished();
        let movements = self.inner.coordinator.unfinished();
        for resumption in resumptions(orders, movements, self.inner.env.bugs) {
            match resumption {
                Resumption::Order(order) => {
                    self.inner.env.probes.hit(names::PAYMENT_ORDER_RESUMED);
                    if order.gave_up.is_some() {
                        self.inner.env.probes.hit(names::PAYMENT_GAVE_UP_RETOLD);
                    }
                    let node = self.clone();
                    madsim::task::spawn(async move {
                        let _ = node.carry_out(order, FlowInput::Resume).await;
                    });
                }
                Resumption::Movement(xid) => {
                    let coordinator = self.inner.coordinator.clone();
                    madsim::task::spawn(async move {
                        coordinator.resume(&xid).await;
                    });
                }
            }
        }
    }

    /// Runs one order's flow from `first` until it finishes; safe to run again after a crash.
    async fn carry_out(&self, order: Order, first: FlowInput) -> Result<(), Refusal> {
        let mut flow = OrderFlow::new(order, self.inner.env.bugs);
        let mut input = first;
        loop {
            let mut next = None;
            for output in flow.step(input) {
                match output {
                    FlowOutput::Append(record) => {
                        let syncs = record.syncs();
                        {
                            let mut book = self.orders();
                            self.inner.log.append(&record);
                            book.apply(record);
                        }
                        // A decision of the flow's own (a failure, a refund's way back to the
                        // card) is durable before its next effect (the other records are made
                        // durable by what follows them).
                        if syncs {
                            self.inner.log.sync().await;
                        }
                    }
                    FlowOutput::Finish(outcome) => {
                        if outcome.is_ok() && matches!(flow.order().kind, OrderKind::Pay { .. }) {
                            self.inner.env.probes.hit(names::PAYMENT_PAID);
                        }
                        return outcome;
                    }
                    FlowOutput::TradeRefusedEnd(refusal) => {
                        let xid = &flow.order().xid;
                        tracing::warn!(%xid, %refusal, "the trade refused the end of an order");
                    }
                    effect => {
                        assert!(next.is_none(), "a flow waits on one effect at a time");
                        next = Some(self.perform(flow.order(), effect).await);
                    }
                }
            }
            input = next.expect("an unfinished order waits on an effect");
        }
    }

    /// Performs one effect of a flow and says what came of it.
    async fn perform(&self, order: &Order, effect: FlowOutput) -> FlowInput {
        let inner = &self.inner;
        match effect {
            FlowOutput::ResumeMovement(xid) => {
                FlowInput::MovementResumed(inner.coordinator.resume(&xid).await)
            }
            FlowOutput::Window(point) => {
                inner.env.buggify.window(point, &inner.env.probes).await;
                FlowInput::WindowPassed
            }
            FlowOutput::Move(movement) => {
                FlowInput::Moved(inner.coordinator.execute(movement).await)
            }
            FlowOutput::PayOutToCard { payer, amount } => {
                self.pay_out_to_card(order, payer, amount).await;
                FlowInput::PaidOut
            }
            FlowOutput::Pause(pause) => {
                madsim::time::sleep(pause).await;
                FlowInput::Paused
            }
            FlowOutput::BeginAtTrade(command) => {
                let dst = inner.topology.trade(trade_shard(&command));
                let retried = inner
                    .transport
                    .call_with_retry(dst, TradeCall(command), BEGIN_POLICY)
                    .await;
                FlowInput::BeginAnswered(match retried.result {
                    Ok(Ok(reply)) => BeginAnswer::Reply(reply),
                    Ok(Err(refusal)) => BeginAnswer::Refused(refusal),
                    Err(e) => BeginAnswer::NoAnswer(e.to_string()),
                })
            }
            FlowOutput::EndAtTrade(command) => {
                let dst = inner.topology.trade(trade_shard(&command));
                let retried = inner
                    .transport
                    .call_with_retry(dst, TradeCall(command), END_POLICY)
                    .await;
                FlowInput::EndAnswered(match retried.result {
                    Ok(Ok(_)) => EndAnswer::Ended,
                    Ok(Err(refusal)) => EndAnswer::Refused(refusal),
                    Err(_) => EndAnswer::NoAnswer,
                })
            }
            FlowOutput::Append(_) | FlowOutput::Finish(_) | FlowOutput::TradeRefusedEnd(_) => {
                unreachable!("performed by the flow loop")
            }
        }
    }
}

/// The trade shard a begin or end goes to.
fn trade_shard(command: &crate::trade::TradeCommand) -> u32 {
    use crate::trade::TradeCommand as C;
    match command {
        C::BeginPay { trade, .. }
        | C::EndPay { trade, .. }
        | C::BeginRefund { trade, .. }
        | C::EndRefund { trade, .. } => trade.shard,
        other => unreachable!("a flow never sends {other:?}"),
    }
}

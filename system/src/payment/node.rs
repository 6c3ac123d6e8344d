//! The payment node: serves pay and refund requests as the business-activity manager of
//! their money movements, and finishes every unfinished order after a restart.
//!
//! One order, start to end:
//! 1. the order (key, trade, activity id) is made durable;
//! 2. the trade is asked to begin (WAIT_PAY -> PAYING, or the refund bound is reserved), which
//!    also says what to move;
//! 3. the strategy moves the money atomically across ledger shards ([`Coordinator`]);
//! 4. the trade is told the outcome, retried until it answers;
//! 5. the order is finished and the client answered.
//!
//! A crash anywhere is repaired by running the same steps again from the logs: each step is
//! idempotent, keyed by the order's key and activity id.
//!
//! Any node accepts any request; a request whose key another node owns is forwarded to it.

use super::orders::{Order, OrderBook, OrderDecision, OrderKind, OrderRecord};
use super::types::{payment_node_for, PaymentCall, PaymentCommand, PaymentError, PaymentReceipt};
use crate::buggify::Point;
use crate::bugs::Bug;
use crate::ledger::Leg;
use crate::log::DurableLog;
use crate::node::NodeEnv;
use crate::probes::names;
use crate::refusal::{Refusal, RefusalCode};
use crate::strategy::{Coordinator, Movement, MovementOutcome, StrategyKind};
use crate::tcc::Activity;
use crate::topology::Topology;
use crate::trade::{AttemptStatus, TradeCall, TradeCommand, TradeError, TradeReply};
use crate::transport::{RetryPolicy, Transport};
use std::collections::BTreeSet;
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
const FORWARD_TIMEOUT: Duration = Duration::from_millis(800);

/// The pause before telling a trade again that could not take the outcome yet.
const UNAVAILABLE_BACKOFF: Duration = Duration::from_millis(100);

/// What the god's-eye view reads from a payment node.
#[derive(Debug, Clone)]
pub struct PaymentView {
    pub orders: Vec<Order>,
    pub activities: Vec<Activity>,
}

struct Inner {
    index: u32,
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
        );
        let node = PaymentNode {
            inner: Arc::new(Inner {
                index: config.index,
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
        let server = node.clone();
        transport.serve(move |PaymentCall(command)| {
            let node = server.clone();
            async move { node.handle(command).await }
        });
        // The planted bug forgets everything that was in flight when the node went down.
        if !env.bugs.is(Bug::ManagerNoRecovery) {
            node.resume_all();
        }
        Ok(node)
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

    /// What a payment node that is down would recover from its disk.
    pub fn durable_view(env: &NodeEnv, config: PaymentConfig) -> PaymentView {
        let log = DurableLog::<OrderRecord>::open(env, LOG_FILE, config.fsync_latency);
        let book = OrderBook::recover(config.index, &log.read_durable());
        PaymentView {
            orders: book.orders().cloned().collect(),
            activities: Coordinator::durable_activities(config.strategy, env),
        }
    }

    /// Orders and movements still unfinished on this node.
    pub fn pending(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .orders()
            .unfinished()
            .into_iter()
            .map(|o| format!("order {} ({})", o.key, o.xid))
            .collect();
        out.extend(
            self.inner
                .coordinator
                .unfinished()
                .into_iter()
                .map(|xid| format!("activity {xid}")),
        );
        out
    }

    async fn handle(&self, command: PaymentCommand) -> Result<PaymentReceipt, PaymentError> {
        let key = match &command {
            PaymentCommand::Pay { key, .. } => key,
            PaymentCommand::Refund { out_request_no, .. } => out_request_no,
        };
        let owner = payment_node_for(key, self.inner.topology.payments.len() as u32);
        if owner != self.inner.index {
            return self.forward(owner, command).await;
        }
        let (key, trade, kind) = match command {
            PaymentCommand::Pay { trade, key, payer } => (key, trade, OrderKind::Pay { payer }),
            PaymentCommand::Refund {
                trade,
                out_request_no,
                amount,
            } => (out_request_no, trade, OrderKind::Refund { amount }),
        };
        let decided = {
            let mut book = self.orders();
            match book.decide(&key, trade, kind) {
                OrderDecision::Known(order) => Err(order),
                OrderDecision::Create(record) => {
                    self.inner.log.append(&record);
                    book.apply(record);
                    Ok(book.get(&key))
                }
            }
        };
        let order = match decided {
            Err(known) => {
                if known.trade != trade || known.kind != kind {
                    return Err(PaymentError::Refused(Refusal::new(
                        RefusalCode::KeyReused,
                        format!("key {key} was already used for another request"),
                    )));
                }
                return match known.outcome {
                    Some(outcome) => {
                        self.inner.env.probes.hit(names::PAYMENT_REPLAYED_OUTCOME);
                        receipt(&known.xid, outcome)
                    }
                    None => Err(PaymentError::InProgress),
                };
            }
            Ok(order) => order,
        };
        // The order must be durable before its activity id is used anywhere else.
        self.inner.log.sync().await;
        let outcome = self.carry_out(order.clone()).await;
        receipt(&order.xid, outcome)
    }

    /// Any node serves any request: one whose key another node owns is passed to that node,
    /// whose order log pins the key's outcome. No answer from the owner is not an outcome.
    async fn forward(
        &self,
        owner: u32,
        command: PaymentCommand,
    ) -> Result<PaymentReceipt, PaymentError> {
        self.inner.env.probes.hit(names::PAYMENT_FORWARDED);
        let dst = self.inner.topology.payments[owner as usize];
        let answer = self
            .inner
            .transport
            .call(dst, PaymentCall(command), FORWARD_TIMEOUT)
            .await;
        answer.unwrap_or(Err(PaymentError::InProgress))
    }

    /// Restarts every unfinished order, and every unfinished movement no order covers.
    fn resume_all(&self) {
        let unfinished = self.orders().unfinished();
        let covered: BTreeSet<String> = unfinished.iter().map(|o| o.xid.clone()).collect();
        for order in unfinished {
            self.inner.env.probes.hit(names::PAYMENT_ORDER_RESUMED);
            let node = self.clone();
            madsim::task::spawn(async move {
                let _ = node.carry_out(order).await;
            });
        }
        for xid in self.inner.coordinator.unfinished() {
            if covered.contains(&xid) {
                continue;
            }
            let coordinator = self.inner.coordinator.clone();
            madsim::task::spawn(async move {
                coordinator.resume(&xid).await;
            });
        }
    }

    /// Steps 2–5 for one order; safe to run again after a crash.
    async fn carry_out(&self, order: Order) -> Result<(), String> {
        let (outcome, tell_trade) = match self.inner.coordinator.resume(&order.xid).await {
            Some(moved) => (into_result(moved), true),
            None => self.begin_and_move(&order).await,
        };
        let env = &self.inner.env;
        env.buggify.window(Point::OutcomeToTrade, &env.probes).await;
        if tell_trade {
            self.end_at_trade(&order, &outcome).await;
        }
        let mut book = self.orders();
        let finished = OrderRecord::Finished {
            key: order.key.clone(),
            outcome: outcome.clone(),
        };
        // Not synced: a lost Finished is redone from the logs with the same outcome.
        self.inner.log.append(&finished);
        book.apply(finished);
        outcome
    }

    /// Asks the trade to begin, then moves the money. Also says whether the trade must be
    /// told the outcome (not when it refused or had already settled the key itself).
    async fn begin_and_move(&self, order: &Order) -> (Result<(), String>, bool) {
        let begin = match order.kind {
            OrderKind::Pay { payer } => TradeCommand::BeginPay {
                trade: order.trade,
                key: order.key.clone(),
                xid: order.xid.clone(),
                payer,
            },
            OrderKind::Refund { amount } => TradeCommand::BeginRefund {
                trade: order.trade,
                out_request_no: order.key.clone(),
                xid: order.xid.clone(),
                amount,
            },
        };
        let env = &self.inner.env;
        env.buggify.window(Point::OrderToTrade, &env.probes).await;
        let dst = self.inner.topology.trade(order.trade.shard);
        let answer = self
            .inner
            .transport
            .call_with_retry(dst, TradeCall(begin), BEGIN_POLICY)
            .await
            .result;
        let legs = match (answer, order.kind) {
            (Ok(Ok(TradeReply::PayBegun { amount, merchant })), OrderKind::Pay { payer }) => {
                vec![Leg::debit(payer, amount), Leg::credit(merchant, amount)]
            }
            (Ok(Ok(TradeReply::RefundBegun { merchant, payer })), OrderKind::Refund { amount }) => {
                vec![Leg::debit(merchant, amount), Leg::credit(payer, amount)]
            }
            (Ok(Ok(TradeReply::Settled(status))), _) => {
                let outcome = match status {
                    AttemptStatus::Succeeded => Ok(()),
                    AttemptStatus::Failed(reason) => Err(reason),
                    AttemptStatus::Pending => Err("the trade answered pending".into()),
                };
                return (outcome, false);
            }
            (Ok(Ok(other)), _) => {
                return (Err(format!("unexpected trade answer {other:?}")), false)
            }
            (Ok(Err(refusal)), _) => return (Err(refusal.to_string()), false),
            // The trade may have begun without our hearing it: the end pins the failure.
            (Err(e), _) => return (Err(format!("the trade did not answer: {e}")), true),
        };
        let movement = Movement {
            xid: order.xid.clone(),
            legs,
        };
        (
            into_result(self.inner.coordinator.execute(movement).await),
            true,
        )
    }

    async fn end_at_trade(&self, order: &Order, outcome: &Result<(), String>) {
        let end = match order.kind {
            OrderKind::Pay { payer } => TradeCommand::EndPay {
                trade: order.trade,
                key: order.key.clone(),
                xid: order.xid.clone(),
                payer,
                outcome: outcome.clone(),
            },
            OrderKind::Refund { amount } => TradeCommand::EndRefund {
                trade: order.trade,
                out_request_no: order.key.clone(),
                xid: order.xid.clone(),
                amount,
                outcome: outcome.clone(),
            },
        };
        let dst = self.inner.topology.trade(order.trade.shard);
        let answer = loop {
            let answer = self
                .inner
                .transport
                .call_with_retry(dst, TradeCall(end.clone()), END_POLICY)
                .await
                .result;
            // Nothing was written (the trade could not publish the change yet): ask again.
            if !matches!(answer, Ok(Err(TradeError::Unavailable(_)))) {
                break answer;
            }
            madsim::time::sleep(UNAVAILABLE_BACKOFF).await;
        };
        if let Ok(Err(refusal)) = answer {
            tracing::warn!(xid = %order.xid, %refusal, "the trade refused the end of an order");
        }
    }
}

fn into_result(outcome: MovementOutcome) -> Result<(), String> {
    match outcome {
        MovementOutcome::Committed => Ok(()),
        MovementOutcome::Aborted(reason) => Err(reason),
        MovementOutcome::Heuristic(reason) => Err(format!("heuristic outcome: {reason}")),
    }
}

fn receipt(xid: &str, outcome: Result<(), String>) -> Result<PaymentReceipt, PaymentError> {
    outcome
        .map(|()| PaymentReceipt {
            xid: xid.to_string(),
        })
        // The order log keeps the reason as text; the code is the movement's (aborted).
        .map_err(|reason| PaymentError::Refused(Refusal::new(RefusalCode::Aborted, reason)))
}

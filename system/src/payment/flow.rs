//! The payment order flow as a pure protocol engine: plain state, no clock, no RNG, no
//! sockets, no async. The node runtime ([`super::node`]) feeds an [`OrderFlow`] its
//! [`FlowInput`]s and performs the [`FlowOutput`]s it returns, one effect at a time.
//!
//! One order, start to end (each step idempotent, keyed by the order's key and activity id, so
//! a crash anywhere is repaired by running the same steps again from the logs):
//! 1. the order (key, trade, activity id) is durable before anything else ([`admit`], then the
//!    runtime appends and fsyncs the `Created` record);
//! 2. the trade is asked to begin (WAIT_PAY -> PAYING, or the refund bound is reserved), which
//!    also says what to move; no answer fails the order;
//! 3. the strategy moves the money atomically across ledger shards;
//! 4. the trade is told the outcome, sent again until it answers (and after a pause while it
//!    cannot take it yet); not when it refused or had already settled the key itself;
//! 5. the order is finished (not synced: a lost `Finished` is redone with the same outcome)
//!    and the client answered.
//!
//! After a restart every unfinished order and every uncovered unfinished movement is resumed
//! ([`resumptions`]). An unfinished order first asks the strategy to resume its movement: one
//! that was begun is finished and its outcome told to the trade; one never begun starts at 2.
//!
//! Refusals keep their code end to end: a branch's insufficient funds is the order's
//! `insufficient-funds`, and the trade pins a key to the same `Refusal` it is told (or to its
//! own refusal, with the trade's code).

use super::orders::{Order, OrderBook, OrderDecision, OrderKind, OrderRecord};
use super::types::{payment_node_for, PaymentCommand, PaymentError, PaymentReceipt};
use crate::buggify::Point;
use crate::bugs::{Bug, Bugs};
use crate::ids::{IdemKey, Xid};
use crate::ledger::Leg;
use crate::refusal::{Refusal, RefusalCode};
use crate::strategy::{Movement, MovementOutcome};
use crate::trade::{AttemptStatus, TradeCommand, TradeError, TradeReply};
use std::collections::BTreeSet;
use std::time::Duration;

/// The pause before telling a trade again that could not take the outcome yet.
pub const UNAVAILABLE_BACKOFF_MS: u64 = 100;

/// What a request means to the node that received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Another node owns the key: pass the request to it.
    Forward { owner: u32 },
    /// The key is known: this answer, now (a pinned outcome, in progress, or a reused key).
    Answer {
        reply: Result<PaymentReceipt, PaymentError>,
        /// The answer replays a pinned outcome (a coverage probe).
        replayed: bool,
    },
    /// A new order: append and fsync this record, then run its flow from [`FlowInput::Start`].
    Create(OrderRecord),
}

/// Decides what `command` means on node `index` of `nodes`, against its order book.
pub fn admit(book: &OrderBook, index: u32, nodes: u32, command: PaymentCommand) -> Admission {
    let (key, trade, kind) = match command {
        PaymentCommand::Pay {
            trade,
            key,
            payer,
            by_card,
        } => (key, trade, OrderKind::Pay { payer, by_card }),
        PaymentCommand::Refund {
            trade,
            out_request_no,
            amount,
        } => (out_request_no, trade, OrderKind::Refund { amount }),
        PaymentCommand::Deposit { .. } | PaymentCommand::Withdraw { .. } => {
            let detail = "a deposit or withdrawal is not an order".to_string();
            let reply = Err(PaymentError::Refused(Refusal::new(
                RefusalCode::Invalid,
                detail,
            )));
            return Admission::Answer {
                reply,
                replayed: false,
            };
        }
    };
    let owner = payment_node_for(&key, nodes);
    if owner != index {
        return Admission::Forward { owner };
    }
    let key = IdemKey::new(key);
    let known = match book.decide(&key, trade, kind) {
        OrderDecision::Create(record) => return Admission::Create(record),
        OrderDecision::Known(known) => known,
    };
    let (reply, replayed) = if known.trade != trade || known.kind != kind {
        let detail = format!("key {key} was already used for another request");
        let refusal = Refusal::new(RefusalCode::KeyReused, detail);
        (Err(PaymentError::Refused(refusal)), false)
    } else {
        match known.outcome {
            Some(outcome) => (receipt(&known.xid, outcome), true),
            None => (Err(PaymentError::InProgress), false),
        }
    };
    Admission::Answer { reply, replayed }
}

/// What a restarted node must pick up again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resumption {
    /// Run this unfinished order's flow from [`FlowInput::Resume`].
    Order(Order),
    /// Finish this unfinished movement, which no unfinished order covers (its order finished
    /// durably, its end did not).
    Movement(Xid),
}

/// Every unfinished order, and every unfinished movement no order covers, in that order. The
/// planted bug `manager-no-recovery` forgets them all.
pub fn resumptions(orders: Vec<Order>, movements: Vec<Xid>, bugs: Bugs) -> Vec<Resumption> {
    if bugs.is(Bug::ManagerNoRecovery) {
        return Vec::new();
    }
    let covered: BTreeSet<Xid> = orders.iter().map(|o| o.xid.clone()).collect();
    let uncovered = movements.into_iter().filter(|x| !covered.contains(x));
    let mut out: Vec<Resumption> = orders.into_iter().map(Resumption::Order).collect();
    out.extend(uncovered.map(Resumption::Movement));
    out
}

/// The client's answer for an order's outcome.
pub fn receipt(xid: &Xid, outcome: Result<(), Refusal>) -> Result<PaymentReceipt, PaymentError> {
    outcome
        .map(|()| PaymentReceipt { xid: xid.clone() })
        .map_err(PaymentError::Refused)
}

/// How the trade answered a begin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeginAnswer {
    Reply(TradeReply),
    Refused(TradeError),
    /// No answer after every attempt; why (for the refusal's detail).
    NoAnswer(String),
}

/// How the trade answered an end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndAnswer {
    Ended,
    Refused(TradeError),
    NoAnswer,
}

/// What the runtime tells a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowInput {
    /// A new order, durable: carry it out.
    Start,
    /// An order found unfinished after a restart.
    Resume,
    /// The strategy's answer to [`FlowOutput::ResumeMovement`]: `None` if never begun.
    MovementResumed(Option<MovementOutcome>),
    WindowPassed,
    BeginAnswered(BeginAnswer),
    Moved(MovementOutcome),
    EndAnswered(EndAnswer),
    /// The pause of [`FlowOutput::Pause`] is over.
    Paused,
    /// [`FlowOutput::PayOutToCard`] is done (or refused for good: the refund stays in the
    /// payer's balance).
    PaidOut,
}

/// What a flow asks the runtime to do (at most one effect at a time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowOutput {
    /// Ask the strategy to finish (or report) the movement of this activity.
    ResumeMovement(Xid),
    /// Open a buggify window, then feed [`FlowInput::WindowPassed`].
    Window(Point),
    /// Ask the trade to begin, with the bounded begin policy.
    BeginAtTrade(TradeCommand),
    /// Move the money through the strategy.
    Move(Movement),
    /// Tell the trade the outcome, with the retry-until-answered end policy.
    EndAtTrade(TradeCommand),
    Pause(Duration),
    /// The trade refused the end of the order (logged; the order still finishes).
    TradeRefusedEnd(TradeError),
    /// Pay the refunded amount out of the payer's balance to the payer's card, through the
    /// clearing gateway under the refund's own platform key, until it is accepted or refused.
    PayOutToCard {
        payer: crate::ids::AccountId,
        amount: crate::money::Amount,
    },
    /// Append this record to the order log and fold it into the order book.
    Append(OrderRecord),
    /// The order is finished: answer the client with this outcome.
    Finish(Result<(), Refusal>),
}

/// Where the flow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    New,
    Resuming,
    BeforeBegin,
    Beginning,
    Moving,
    BeforeEnd,
    Ending,
    Pausing,
    /// The trade took the end; waiting for the window before the order's end.
    AfterEnd,
    /// A refund of a card-paid trade goes on to the card.
    PayingOut,
    Finished,
}

/// One order's flow.
#[derive(Debug, Clone)]
pub struct OrderFlow {
    order: Order,
    bugs: Bugs,
    stage: Stage,
    /// The outcome once known, and whether the trade must be told it.
    outcome: Option<(Result<(), Refusal>, bool)>,
}

impl OrderFlow {
    pub fn new(order: Order, bugs: Bugs) -> Self {
        OrderFlow {
            order,
            bugs,
            stage: Stage::New,
            outcome: None,
        }
    }

    pub fn order(&self) -> &Order {
        &self.order
    }

    /// One input in, the effects out. An input the current stage does not wait for is a bug
    /// of the runtime (each stage has exactly one effect outstanding), and is asserted.
    pub fn step(&mut self, input: FlowInput) -> Vec<FlowOutput> {
        match (self.stage, input) {
            (Stage::New, FlowInput::Start)
            | (Stage::Resuming, FlowInput::MovementResumed(None)) => {
                self.stage = Stage::BeforeBegin;
                vec![FlowOutput::Window(Point::OrderToTrade)]
            }
            // It gave up on the begin before a crash: the trade is told that again.
            (Stage::New, FlowInput::Resume) if self.order.gave_up.is_some() => {
                let refusal = self.order.gave_up.clone().expect("checked");
                self.settle(Err(refusal), true)
            }
            (Stage::New, FlowInput::Resume) => {
                self.stage = Stage::Resuming;
                vec![FlowOutput::ResumeMovement(self.order.xid.clone())]
            }
            (Stage::Resuming, FlowInput::MovementResumed(Some(moved)))
            | (Stage::Moving, FlowInput::Moved(moved)) => self.settle(into_result(moved), true),
            (Stage::BeforeBegin, FlowInput::WindowPassed) => {
                self.stage = Stage::Beginning;
                vec![FlowOutput::BeginAtTrade(self.begin_command())]
            }
            (Stage::Beginning, FlowInput::BeginAnswered(answer)) => self.begun(answer),
            (Stage::BeforeEnd, FlowInput::WindowPassed) => match self.outcome {
                Some((_, true)) => self.tell_trade(),
                _ => self.finish(),
            },
            (Stage::Ending, FlowInput::EndAnswered(answer)) => self.ended(answer),
            (Stage::AfterEnd, FlowInput::WindowPassed) => self.finish(),
            (Stage::Pausing, FlowInput::Paused) => self.tell_trade(),
            (Stage::PayingOut, FlowInput::PaidOut) => self.close(),
            (stage, input) => panic!(
                "order {} in stage {stage:?} got unexpected {input:?}",
                self.order.key
            ),
        }
    }

    fn begin_command(&self) -> TradeCommand {
        let o = &self.order;
        match o.kind {
            OrderKind::Pay { payer, by_card } => TradeCommand::BeginPay {
                trade: o.trade,
                key: o.key.clone(),
                xid: o.xid.clone(),
                payer,
                by_card,
            },
            OrderKind::Refund { amount } => TradeCommand::BeginRefund {
                trade: o.trade,
                out_request_no: o.key.clone(),
                xid: o.xid.clone(),
                amount,
            },
        }
    }

    fn end_command(&self, outcome: &Result<(), Refusal>) -> TradeCommand {
        let o = &self.order;
        let outcome = outcome.clone();
        match o.kind {
            OrderKind::Pay { payer, .. } => TradeCommand::EndPay {
                trade: o.trade,
                key: o.key.clone(),
                xid: o.xid.clone(),
                payer,
                outcome,
            },
            OrderKind::Refund { amount } => TradeCommand::EndRefund {
                trade: o.trade,
                out_request_no: o.key.clone(),
                xid: o.xid.clone(),
                amount,
                outcome,
            },
        }
    }

    /// The trade answered the begin: move the money, or settle without moving it.
    fn begun(&mut self, answer: BeginAnswer) -> Vec<FlowOutput> {
        let kind = self.order.kind;
        let mut out = Vec::new();
        let legs = match (answer, kind) {
            (
                BeginAnswer::Reply(TradeReply::PayBegun { amount, merchant }),
                OrderKind::Pay { payer, .. },
            ) => vec![Leg::debit(payer, amount), Leg::credit(merchant, amount)],
            (
                BeginAnswer::Reply(TradeReply::RefundBegun {
                    merchant,
                    payer,
                    to_card,
                }),
                OrderKind::Refund { amount },
            ) => {
                if to_card && self.order.to_card.is_none() {
                    self.order.to_card = Some(payer);
                    out.push(FlowOutput::Append(OrderRecord::ToCard {
                        key: self.order.key.clone(),
                        payer,
                    }));
                }
                vec![Leg::debit(merchant, amount), Leg::credit(payer, amount)]
            }
            (BeginAnswer::Reply(TradeReply::Settled(status)), _) => {
                let outcome = match status {
                    AttemptStatus::Succeeded => Ok(()),
                    AttemptStatus::Failed(refusal) => Err(refusal),
                    AttemptStatus::Pending => Err(aborted("the trade answered pending")),
                };
                return self.settle(outcome, false);
            }
            (BeginAnswer::Reply(other), _) => {
                let detail = format!("unexpected trade answer {other:?}");
                return self.settle(Err(aborted(&detail)), false);
            }
            (BeginAnswer::Refused(e), _) => {
                return self.settle(Err(Refusal::new(e.code(), e.to_string())), false)
            }
            // The trade may have begun without our hearing it: the end pins the failure (the
            // planted `begin-timeout-not-ended` takes the silence for "never began").
            // The failure is the flow's own decision, so it is recorded (and made durable by
            // the runtime before the trade is told): a crash must not let a resumed flow begin
            // again and move the money of an order whose failure the trade already has.
            (BeginAnswer::NoAnswer(why), _) => {
                let refusal = aborted(&format!("the trade did not answer: {why}"));
                if self.bugs.is(Bug::BeginTimeoutNotEnded) {
                    return self.settle(Err(refusal), false);
                }
                let gave_up = OrderRecord::GaveUp {
                    key: self.order.key.clone(),
                    refusal: refusal.clone(),
                };
                self.order.gave_up = Some(refusal.clone());
                let mut out = vec![FlowOutput::Append(gave_up)];
                out.extend(self.settle(Err(refusal), true));
                return out;
            }
        };
        self.stage = Stage::Moving;
        out.push(FlowOutput::Move(Movement {
            xid: self.order.xid.clone(),
            legs,
        }));
        out
    }

    /// The outcome is known: open the window before the trade is told (or the order finished).
    fn settle(&mut self, outcome: Result<(), Refusal>, tell_trade: bool) -> Vec<FlowOutput> {
        self.outcome = Some((outcome, tell_trade));
        self.stage = Stage::BeforeEnd;
        vec![FlowOutput::Window(Point::OutcomeToTrade)]
    }

    fn tell_trade(&mut self) -> Vec<FlowOutput> {
        let (outcome, _) = self.outcome.as_ref().expect("the outcome is known");
        self.stage = Stage::Ending;
        vec![FlowOutput::EndAtTrade(self.end_command(outcome))]
    }

    fn ended(&mut self, answer: EndAnswer) -> Vec<FlowOutput> {
        match answer {
            EndAnswer::Ended => {
                self.stage = Stage::AfterEnd;
                vec![FlowOutput::Window(Point::TradeToFinish)]
            }
            // Nothing was written (the trade could not publish the change yet): ask again.
            EndAnswer::Refused(TradeError::Unavailable(_)) => {
                self.stage = Stage::Pausing;
                let pause = Duration::from_millis(UNAVAILABLE_BACKOFF_MS);
                vec![FlowOutput::Pause(pause)]
            }
            // The retried end gave up without an answer: it is sent again.
            EndAnswer::NoAnswer => self.tell_trade(),
            EndAnswer::Refused(refusal) => {
                let mut out = vec![FlowOutput::TradeRefusedEnd(refusal)];
                out.extend(self.finish());
                out
            }
        }
    }

    /// The order ends: a successful refund of a card-paid trade pays out to the card first.
    fn finish(&mut self) -> Vec<FlowOutput> {
        let succeeded = matches!(self.outcome, Some((Ok(()), _)));
        match (self.order.kind, self.order.to_card) {
            (OrderKind::Refund { amount }, Some(payer)) if succeeded => {
                self.stage = Stage::PayingOut;
                vec![FlowOutput::PayOutToCard { payer, amount }]
            }
            _ => self.close(),
        }
    }

    fn close(&mut self) -> Vec<FlowOutput> {
        let (outcome, _) = self.outcome.clone().expect("the outcome is known");
        self.stage = Stage::Finished;
        let finished = OrderRecord::Finished {
            key: self.order.key.clone(),
            outcome: outcome.clone(),
        };
        vec![FlowOutput::Append(finished), FlowOutput::Finish(outcome)]
    }
}

fn aborted(detail: &str) -> Refusal {
    Refusal::new(RefusalCode::Aborted, detail)
}

/// A movement's outcome as the order's.
pub fn into_result(outcome: MovementOutcome) -> Result<(), Refusal> {
    match outcome {
        MovementOutcome::Committed => Ok(()),
        MovementOutcome::Aborted(refusal) => Err(refusal),
        MovementOutcome::Heuristic(why) => Err(aborted(&format!("heuristic outcome: {why}"))),
    }
}

#[cfg(test)]
#[path = "flow_tests.rs"]
mod tests;

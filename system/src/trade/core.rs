//! One trade shard's deterministic core: trades, their pay attempts and refunds.
//!
//! Like the ledger: [`TradeCore::decide`] turns a command into an immediate reply or a
//! [`TradeRecord`] to make durable, and [`TradeCore::apply`] folds records into state, live and
//! on recovery alike. Every status change is asserted against [`TradeStatus::can_become`], and
//! the refund bound (refunded + refunding <= paid) is asserted on every apply.

use super::events::{MessageMode, TradeEvent, TradeEventKind};
use super::types::*;
use crate::bugs::Bugs;
use crate::ids::AccountId;
use crate::money::Amount;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One durable change to a trade shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TradeRecord {
    Created {
        id: TradeId,
        merchant: AccountId,
        out_trade_no: String,
        amount: Amount,
        created_ms: u64,
    },
    PayBegun {
        trade: TradeId,
        key: String,
        xid: String,
        payer: AccountId,
    },
    /// A BeginPay refused (e.g. the trade was closed), pinned to its key.
    PayRefused {
        trade: TradeId,
        key: String,
        xid: String,
        payer: AccountId,
        reason: String,
    },
    PayEnded {
        trade: TradeId,
        key: String,
        xid: String,
        payer: AccountId,
        outcome: Result<(), String>,
    },
    RefundBegun {
        trade: TradeId,
        out_request_no: String,
        xid: String,
        amount: Amount,
    },
    RefundRefused {
        trade: TradeId,
        out_request_no: String,
        xid: String,
        amount: Amount,
        reason: String,
    },
    RefundEnded {
        trade: TradeId,
        out_request_no: String,
        xid: String,
        amount: Amount,
        outcome: Result<(), String>,
    },
    /// Unpaid past its timeout.
    Closed { trade: TradeId },
    /// Outbox rows (mode 1) the broker acknowledged: the relay or the resender sent them.
    OutboxSent { events: Vec<String> },
}

/// What the shell must do with a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeDecision {
    Reply(Result<TradeReply, TradeError>),
    Write(TradeRecord),
}

type Outcome = Result<TradeReply, TradeError>;

/// One trade shard's state.
#[derive(Debug, Clone)]
pub struct TradeCore {
    shard: u32,
    trades: BTreeMap<u64, Trade>,
    by_out_trade_no: BTreeMap<(AccountId, String), TradeId>,
    /// Every event a committed change produced, by id: the trade DB's event log.
    events: BTreeMap<String, TradeEvent>,
    /// Mode 1: the outbox rows not yet acknowledged by the broker. Each row is written by the
    /// same record as the change it announces.
    unsent: BTreeSet<String>,
    messages: Option<MessageMode>,
    bugs: Bugs,
}

impl TradeCore {
    pub fn new(shard: u32, bugs: Bugs) -> Self {
        TradeCore {
            shard,
            trades: BTreeMap::new(),
            by_out_trade_no: BTreeMap::new(),
            events: BTreeMap::new(),
            unsent: BTreeSet::new(),
            messages: None,
            bugs,
        }
    }

    /// A shard that publishes its events in `mode` (`None`: events are kept, never published).
    pub fn with_messages(shard: u32, bugs: Bugs, mode: Option<MessageMode>) -> Self {
        TradeCore {
            messages: mode,
            ..TradeCore::new(shard, bugs)
        }
    }

    /// Rebuilds a shard from its log.
    pub fn recover(shard: u32, bugs: Bugs, records: &[TradeRecord]) -> Self {
        TradeCore::recover_with_messages(shard, bugs, None, records)
    }

    /// Rebuilds a shard that publishes in `mode` from its log.
    pub fn recover_with_messages(
        shard: u32,
        bugs: Bugs,
        mode: Option<MessageMode>,
        records: &[TradeRecord],
    ) -> Self {
        let mut core = TradeCore::with_messages(shard, bugs, mode);
        for record in records {
            let _ = core.apply(record.clone());
        }
        core
    }

    /// Every committed event, by id.
    pub fn events(&self) -> &BTreeMap<String, TradeEvent> {
        &self.events
    }

    pub fn event(&self, id: &str) -> Option<&TradeEvent> {
        self.events.get(id)
    }

    /// Mode 1: outbox rows not yet acknowledged by the broker, oldest trade first.
    pub fn unsent(&self) -> impl Iterator<Item = &TradeEvent> {
        self.unsent.iter().filter_map(|id| self.events.get(id))
    }

    /// The event applying `record` would publish, if any: the same computation `apply` uses,
    /// so a producer can announce an event (a half message) before committing it.
    pub fn event_of(&self, record: &TradeRecord) -> Option<TradeEvent> {
        let (trade, kind, status, payer, paid, refunded, refund) = match record {
            TradeRecord::PayEnded {
                trade,
                key,
                outcome: Ok(()),
                ..
            } => {
                let t = self.trade(*trade)?;
                let attempt = t.pays.iter().find(|p| &p.key == key)?;
                if !attempt.status.is_pending() || t.status != TradeStatus::Paying {
                    return None;
                }
                let paid = t.amount.value();
                (
                    t,
                    TradeEventKind::Paid,
                    TradeStatus::Paid,
                    Some(attempt.payer),
                    paid,
                    t.refunded,
                    None,
                )
            }
            TradeRecord::RefundEnded {
                trade,
                out_request_no,
                outcome: Ok(()),
                ..
            } => {
                let t = self.trade(*trade)?;
                let r = t
                    .refunds
                    .iter()
                    .find(|r| &r.out_request_no == out_request_no)?;
                if !r.status.is_pending() {
                    return None;
                }
                let refunded = t.refunded + r.amount.value();
                let status = if refunded >= t.paid {
                    TradeStatus::Refunded
                } else {
                    TradeStatus::PartiallyRefunded
                };
                (
                    t,
                    TradeEventKind::Refunded,
                    status,
                    t.payer(),
                    t.paid,
                    refunded,
                    Some((r.out_request_no.clone(), r.amount)),
                )
            }
            TradeRecord::Closed { trade } => {
                let t = self.trade(*trade)?;
                if t.status != TradeStatus::WaitPay {
                    return None;
                }
                (
                    t,
                    TradeEventKind::Closed,
                    TradeStatus::Closed,
                    None,
                    t.paid,
                    t.refunded,
                    None,
                )
            }
            _ => return None,
        };
        Some(TradeEvent {
            trade: trade.id,
            version: trade.version + 1,
            kind,
            status,
            merchant: trade.merchant,
            payer,
            amount: trade.amount,
            paid,
            refunded,
            refund,
        })
    }

    pub fn shard(&self) -> u32 {
        self.shard
    }

    pub fn trades(&self) -> impl Iterator<Item = &Trade> {
        self.trades.values()
    }

    pub fn trade(&self, id: TradeId) -> Option<&Trade> {
        (id.shard == self.shard)
            .then(|| self.trades.get(&id.seq))
            .flatten()
    }

    /// Trades still waiting for payment whose timeout has passed at `now_ms`.
    pub fn expired(&self, now_ms: u64, close_after_ms: u64) -> Vec<TradeId> {
        self.trades
            .values()
            .filter(|t| t.status == TradeStatus::WaitPay)
            .filter(|t| t.created_ms.saturating_add(close_after_ms) <= now_ms)
            .map(|t| t.id)
            .collect()
    }

    /// The record that closes trade `id` for want of payment, if it is still waiting for one.
    pub fn decide_close(&self, id: TradeId) -> Option<TradeRecord> {
        let trade = self.trade(id)?;
        (trade.status == TradeStatus::WaitPay).then_some(TradeRecord::Closed { trade: id })
    }

    /// Whether anything on this shard is still in flight (a pay or a refund not ended).
    pub fn pending(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in self.trades.values() {
            for p in t.pays.iter().filter(|p| p.status.is_pending()) {
                out.push(format!("{} pay {} ({})", t.id, p.key, p.xid));
            }
            for r in t.refunds.iter().filter(|r| r.status.is_pending()) {
                out.push(format!("{} refund {} ({})", t.id, r.out_request_no, r.xid));
            }
        }
        out
    }

    fn find(&self, id: TradeId) -> Result<&Trade, TradeError> {
        if id.shard != self.shard {
            return Err(TradeError::WrongShard {
                trade: id,
                shard: self.shard,
            });
        }
        self.trades.get(&id.seq).ok_or(TradeError::UnknownTrade(id))
    }

    /// Decides what `command` means now. `now_ms` is the node's clock (for creation times).
    pub fn decide(&self, command: &TradeCommand, now_ms: u64) -> TradeDecision {
        let decided = match command {
            TradeCommand::Create {
                merchant,
                out_trade_no,
                amount,
            } => self.decide_create(*merchant, out_trade_no, *amount, now_ms),
            TradeCommand::BeginPay {
                trade,
                key,
                xid,
                payer,
            } => self.decide_begin_pay(*trade, key, xid, *payer),
            TradeCommand::EndPay {
                trade,
                key,
                xid,
                payer,
                outcome,
            } => self.decide_end_pay(*trade, key, xid, *payer, outcome),
            TradeCommand::BeginRefund {
                trade,
                out_request_no,
                xid,
                amount,
            } => self.decide_begin_refund(*trade, out_request_no, xid, *amount),
            TradeCommand::EndRefund {
                trade,
                out_request_no,
                xid,
                amount,
                outcome,
            } => self.decide_end_refund(*trade, out_request_no, xid, *amount, outcome),
            TradeCommand::Query { trade } => self
                .find(*trade)
                .map(|t| TradeDecision::Reply(Ok(TradeReply::Trade(Box::new(t.clone()))))),
        };
        decided.unwrap_or_else(|e| TradeDecision::Reply(Err(e)))
    }

    fn decide_create(
        &self,
        merchant: AccountId,
        out_trade_no: &str,
        amount: Amount,
        now_ms: u64,
    ) -> Result<TradeDecision, TradeError> {
        let key = (merchant, out_trade_no.to_string());
        if let Some(&id) = self.by_out_trade_no.get(&key) {
            let trade = &self.trades[&id.seq];
            if trade.amount != amount {
                return Err(TradeError::OutTradeNoReused(out_trade_no.to_string()));
            }
            return Ok(TradeDecision::Reply(Ok(TradeReply::Created {
                trade: id,
                amount,
            })));
        }
        let id = TradeId {
            shard: self.shard,
            seq: self.trades.len() as u64 + 1,
        };
        Ok(TradeDecision::Write(TradeRecord::Created {
            id,
            merchant,
            out_trade_no: out_trade_no.to_string(),
            amount,
            created_ms: now_ms,
        }))
    }

    fn decide_begin_pay(
        &self,
        id: TradeId,
        key: &str,
        xid: &str,
        payer: AccountId,
    ) -> Result<TradeDecision, TradeError> {
        let trade = self.find(id)?;
        if let Some(attempt) = trade.pays.iter().find(|p| p.key == key) {
            if attempt.xid != xid {
                return Err(TradeError::KeyReused(key.to_string()));
            }
            return Ok(TradeDecision::Reply(Ok(match attempt.status {
                AttemptStatus::Pending => TradeReply::PayBegun {
                    amount: trade.amount,
                    merchant: trade.merchant,
                },
                ref settled => TradeReply::Settled(settled.clone()),
            })));
        }
        let (trade, key, xid) = (id, key.to_string(), xid.to_string());
        Ok(TradeDecision::Write(match self.trades[&id.seq].status {
            TradeStatus::WaitPay => TradeRecord::PayBegun {
                trade,
                key,
                xid,
                payer,
            },
            status => TradeRecord::PayRefused {
                trade,
                key,
                xid,
                payer,
                reason: TradeError::NotPayable { trade, status }.to_string(),
            },
        }))
    }

    fn decide_end_pay(
        &self,
        id: TradeId,
        key: &str,
        xid: &str,
        payer: AccountId,
        outcome: &Result<(), String>,
    ) -> Result<TradeDecision, TradeError> {
        let trade = self.find(id)?;
        match trade.pays.iter().find(|p| p.key == key) {
            Some(a) if a.xid != xid => Err(TradeError::KeyReused(key.to_string())),
            Some(a) if !a.status.is_pending() => Ok(TradeDecision::Reply(Ok(TradeReply::Ended))),
            _ => Ok(TradeDecision::Write(TradeRecord::PayEnded {
                trade: id,
                key: key.to_string(),
                xid: xid.to_string(),
                payer,
                outcome: outcome.clone(),
            })),
        }
    }

    /// The refund bound, checked here and asserted again in `apply`.
    pub fn decide_begin_refund(
        &self,
        id: TradeId,
        out_request_no: &str,
        xid: &str,
        amount: Amount,
    ) -> Result<TradeDecision, TradeError> {
        let trade = self.find(id)?;
        if let Some(refund) = trade
            .refunds
            .iter()
            .find(|r| r.out_request_no == out_request_no)
        {
            if refund.xid != xid {
                return Err(TradeError::KeyReused(out_request_no.to_string()));
            }
            return Ok(TradeDecision::Reply(Ok(match refund.status {
                AttemptStatus::Pending => TradeReply::RefundBegun {
                    merchant: trade.merchant,
                    payer: trade.payer().expect("a refunded trade has a payer"),
                },
                ref settled => TradeReply::Settled(settled.clone()),
            })));
        }
        let refusal = if !matches!(
            trade.status,
            TradeStatus::Paid | TradeStatus::PartiallyRefunded
        ) {
            Some(TradeError::NotRefundable {
                trade: id,
                status: trade.status,
            })
        } else if trade.refunded + trade.refunding + amount.value() > trade.paid {
            Some(TradeError::RefundExceeds {
                trade: id,
                amount: amount.to_string(),
                paid: trade.paid.to_string(),
                refunded: trade.refunded.to_string(),
                refunding: trade.refunding.to_string(),
            })
        } else {
            None
        };
        let (trade, out_request_no, xid) = (id, out_request_no.to_string(), xid.to_string());
        Ok(TradeDecision::Write(match refusal {
            None => TradeRecord::RefundBegun {
                trade,
                out_request_no,
                xid,
                amount,
            },
            Some(e) => TradeRecord::RefundRefused {
                trade,
                out_request_no,
                xid,
                amount,
                reason: e.to_string(),
            },
        }))
    }

    fn decide_end_refund(
        &self,
        id: TradeId,
        out_request_no: &str,
        xid: &str,
        amount: Amount,
        outcome: &Result<(), String>,
    ) -> Result<TradeDecision, TradeError> {
        let trade = self.find(id)?;
        match trade
            .refunds
            .iter()
            .find(|r| r.out_request_no == out_request_no)
        {
            Some(r) if r.xid != xid => Err(TradeError::KeyReused(out_request_no.to_string())),
            Some(r) if !r.status.is_pending() => Ok(TradeDecision::Reply(Ok(TradeReply::Ended))),
            _ => Ok(TradeDecision::Write(TradeRecord::RefundEnded {
                trade: id,
                out_request_no: out_request_no.to_string(),
                xid: xid.to_string(),
                amount,
                outcome: outcome.clone(),
            })),
        }
    }

    fn strict(&self) -> bool {
        self.bugs.get().is_none()
    }

    fn trade_mut(&mut self, id: TradeId) -> &mut Trade {
        self.trades
            .get_mut(&id.seq)
            .unwrap_or_else(|| panic!("trade {id} exists"))
    }

    /// Applies one durable record and returns the reply it stands for. A record that changes a
    /// trade in a way the platform announces also records its event (and, in mode 1, the
    /// event's outbox row): one record, one write.
    pub fn apply(&mut self, record: TradeRecord) -> Outcome {
        self.apply_publishing(record).0
    }

    /// [`TradeCore::apply`], also returning the event the record published, if any.
    pub fn apply_publishing(&mut self, record: TradeRecord) -> (Outcome, Option<TradeEvent>) {
        if let TradeRecord::OutboxSent { events } = &record {
            for id in events {
                self.unsent.remove(id);
            }
            return (Ok(TradeReply::Ended), None);
        }
        let event = self.event_of(&record);
        let reply = self.apply_change(record);
        if let Some(event) = &event {
            let t = self.trade_mut(event.trade);
            assert_eq!(
                t.status,
                event.status,
                "event {} matches its trade",
                event.id()
            );
            t.version = event.version;
            let id = event.id();
            if self.messages == Some(MessageMode::Outbox) {
                self.unsent.insert(id.clone());
            }
            let previous = self.events.insert(id.clone(), event.clone());
            assert!(previous.is_none(), "event {id} committed twice");
        }
        (reply, event)
    }

    fn apply_change(&mut self, record: TradeRecord) -> Outcome {
        let strict = self.strict();
        match record {
            TradeRecord::Created {
                id,
                merchant,
                out_trade_no,
                amount,
                created_ms,
            } => {
                assert_eq!(id.seq, self.trades.len() as u64 + 1, "trades in sequence");
                self.by_out_trade_no
                    .insert((merchant, out_trade_no.clone()), id);
                self.trades.insert(
                    id.seq,
                    Trade {
                        id,
                        merchant,
                        out_trade_no,
                        amount,
                        created_ms,
                        paid: Decimal::ZERO,
                        refunded: Decimal::ZERO,
                        refunding: Decimal::ZERO,
                        status: TradeStatus::WaitPay,
                        history: vec![TradeStatus::WaitPay],
                        version: 0,
                        pays: Vec::new(),
                        refunds: Vec::new(),
                    },
                );
                Ok(TradeReply::Created { trade: id, amount })
            }
            TradeRecord::PayBegun {
                trade,
                key,
                xid,
                payer,
            } => {
                let t = self.trade_mut(trade);
                // One pay at a time: a second BeginPay must have been refused.
                assert_eq!(
                    t.status,
                    TradeStatus::WaitPay,
                    "pay {key} begun on {trade} while not waiting for payment"
                );
                t.pays.push(PayAttempt {
                    key,
                    xid,
                    payer,
                    status: AttemptStatus::Pending,
                });
                move_to(t, TradeStatus::Paying);
                Ok(TradeReply::PayBegun {
                    amount: t.amount,
                    merchant: t.merchant,
                })
            }
            TradeRecord::PayRefused {
                trade,
                key,
                xid,
                payer,
                reason,
            } => {
                let status = AttemptStatus::Failed(reason);
                self.trade_mut(trade).pays.push(PayAttempt {
                    key,
                    xid,
                    payer,
                    status: status.clone(),
                });
                Ok(TradeReply::Settled(status))
            }
            TradeRecord::PayEnded {
                trade,
                key,
                xid,
                payer,
                outcome,
            } => {
                let t = self.trade_mut(trade);
                let Some(attempt) = t.pays.iter_mut().find(|p| p.key == key) else {
                    // Ended before it began here: pinned as failed, so a late BeginPay of this
                    // key is refused instead of leaving the trade PAYING for ever.
                    let reason = match outcome {
                        Ok(()) => "a success was reported for a pay that never began".into(),
                        Err(reason) => reason,
                    };
                    t.pays.push(PayAttempt {
                        key,
                        xid,
                        payer,
                        status: AttemptStatus::Failed(reason),
                    });
                    return Ok(TradeReply::Ended);
                };
                assert!(attempt.status.is_pending(), "pay {key} ended twice");
                match outcome {
                    Ok(()) => {
                        attempt.status = AttemptStatus::Succeeded;
                        assert_eq!(t.status, TradeStatus::Paying, "{trade} paid twice");
                        t.paid = t.amount.value();
                        move_to(t, TradeStatus::Paid);
                    }
                    Err(reason) => {
                        attempt.status = AttemptStatus::Failed(reason);
                        move_to(t, TradeStatus::WaitPay);
                    }
                }
                Ok(TradeReply::Ended)
            }
            TradeRecord::RefundBegun {
                trade,
                out_request_no,
                xid,
                amount,
            } => {
                let t = self.trade_mut(trade);
                t.refunding += amount.value();
                assert!(
                    !strict || t.refunded + t.refunding <= t.paid,
                    "refund bound broken on {trade}"
                );
                t.refunds.push(Refund {
                    out_request_no,
                    xid,
                    amount,
                    status: AttemptStatus::Pending,
                });
                Ok(TradeReply::RefundBegun {
                    merchant: t.merchant,
                    payer: t.payer().expect("a refunded trade has a payer"),
                })
            }
            TradeRecord::RefundRefused {
                trade,
                out_request_no,
                xid,
                amount,
                reason,
            } => {
                let status = AttemptStatus::Failed(reason);
                self.trade_mut(trade).refunds.push(Refund {
                    out_request_no,
                    xid,
                    amount,
                    status: status.clone(),
                });
                Ok(TradeReply::Settled(status))
            }
            TradeRecord::RefundEnded {
                trade,
                out_request_no,
                xid,
                amount,
                outcome,
            } => {
                let t = self.trade_mut(trade);
                let Some(refund) = t
                    .refunds
                    .iter_mut()
                    .find(|r| r.out_request_no == out_request_no)
                else {
                    let reason = outcome.err().unwrap_or_else(|| {
                        "a success was reported for a refund that never began".into()
                    });
                    t.refunds.push(Refund {
                        out_request_no,
                        xid,
                        amount,
                        status: AttemptStatus::Failed(reason),
                    });
                    return Ok(TradeReply::Ended);
                };
                assert!(
                    refund.status.is_pending(),
                    "refund {out_request_no} ended twice"
                );
                let amount = refund.amount.value();
                t.refunding -= amount;
                match outcome {
                    Ok(()) => {
                        refund.status = AttemptStatus::Succeeded;
                        t.refunded += amount;
                        let next = if t.refunded >= t.paid {
                            TradeStatus::Refunded
                        } else {
                            TradeStatus::PartiallyRefunded
                        };
                        move_to(t, next);
                    }
                    Err(reason) => refund.status = AttemptStatus::Failed(reason),
                }
                assert!(
                    !strict || t.refunded + t.refunding <= t.paid,
                    "refund bound broken on {trade}"
                );
                Ok(TradeReply::Ended)
            }
            TradeRecord::Closed { trade } => {
                move_to(self.trade_mut(trade), TradeStatus::Closed);
                Ok(TradeReply::Ended)
            }
            TradeRecord::OutboxSent { .. } => Ok(TradeReply::Ended),
        }
    }
}

/// Moves a trade to `next` (a no-op if it is already there), asserting the edge is legal.
fn move_to(trade: &mut Trade, next: TradeStatus) {
    if trade.status == next {
        return;
    }
    assert!(
        trade.status.can_become(next),
        "illegal trade transition {:?} -> {next:?} on {}",
        trade.status,
        trade.id
    );
    trade.status = next;
    trade.history.push(next);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bugs::Bug;

    const SHARD: u32 = 3;
    const MERCHANT: AccountId = AccountId(5);
    const PAYER: AccountId = AccountId(4);
    const OTHER_PAYER: AccountId = AccountId(6);

    fn amt(fen: i64) -> Amount {
        Amount::from_fen(fen).unwrap()
    }

    /// A balance at the money scale, from fen.
    fn d(fen: i64) -> Decimal {
        Decimal::new(fen, 2)
    }

    /// Decides at `now_ms` and applies like the shell does.
    fn run(core: &mut TradeCore, cmd: TradeCommand, now_ms: u64) -> Outcome {
        match core.decide(&cmd, now_ms) {
            TradeDecision::Reply(r) => r,
            TradeDecision::Write(rec) => core.apply(rec),
        }
    }

    /// As `run`, and keeps every record written, for recovery.
    fn run_logged(core: &mut TradeCore, cmd: TradeCommand, log: &mut Vec<TradeRecord>) -> Outcome {
        match core.decide(&cmd, 0) {
            TradeDecision::Reply(r) => r,
            TradeDecision::Write(rec) => {
                log.push(rec.clone());
                core.apply(rec)
            }
        }
    }

    fn id(seq: u64) -> TradeId {
        TradeId { shard: SHARD, seq }
    }

    fn create(out_trade_no: &str, fen: i64) -> TradeCommand {
        TradeCommand::Create {
            merchant: MERCHANT,
            out_trade_no: out_trade_no.into(),
            amount: amt(fen),
        }
    }

    fn begin_pay(trade: TradeId, key: &str, xid: &str, payer: AccountId) -> TradeCommand {
        TradeCommand::BeginPay {
            trade,
            key: key.into(),
            xid: xid.into(),
            payer,
        }
    }

    fn end_pay(
        trade: TradeId,
        key: &str,
        xid: &str,
        payer: AccountId,
        outcome: Result<(), String>,
    ) -> TradeCommand {
        TradeCommand::EndPay {
            trade,
            key: key.into(),
            xid: xid.into(),
            payer,
            outcome,
        }
    }

    fn begin_refund(trade: TradeId, no: &str, xid: &str, fen: i64) -> TradeCommand {
        TradeCommand::BeginRefund {
            trade,
            out_request_no: no.into(),
            xid: xid.into(),
            amount: amt(fen),
        }
    }

    fn end_refund(
        trade: TradeId,
        no: &str,
        xid: &str,
        fen: i64,
        outcome: Result<(), String>,
    ) -> TradeCommand {
        TradeCommand::EndRefund {
            trade,
            out_request_no: no.into(),
            xid: xid.into(),
            amount: amt(fen),
            outcome,
        }
    }

    fn failed(reason: &str) -> Outcome {
        Ok(TradeReply::Settled(AttemptStatus::Failed(reason.into())))
    }

    /// Creates trade `out_trade_no` at `now_ms` and returns its id.
    fn created(c: &mut TradeCore, out_trade_no: &str, fen: i64, now_ms: u64) -> TradeId {
        match run(c, create(out_trade_no, fen), now_ms) {
            Ok(TradeReply::Created { trade, .. }) => trade,
            other => panic!("create failed: {other:?}"),
        }
    }

    /// A shard holding trade T3-1 of `fen`, paid by PAYER under key k1 / activity x1.
    fn paid_trade(fen: i64) -> (TradeCore, TradeId) {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let t = created(&mut c, "o1", fen, 0);
        run(&mut c, begin_pay(t, "k1", "x1", PAYER), 0).unwrap();
        run(&mut c, end_pay(t, "k1", "x1", PAYER, Ok(())), 0).unwrap();
        assert_eq!(c.trade(t).unwrap().status, TradeStatus::Paid);
        (c, t)
    }

    fn refund_begun() -> Outcome {
        Ok(TradeReply::RefundBegun {
            merchant: MERCHANT,
            payer: PAYER,
        })
    }

    #[test]
    fn create_is_idempotent_by_merchant_and_out_trade_no() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let first = run(&mut c, create("o1", 10_000), 100);
        let reply = Ok(TradeReply::Created {
            trade: id(1),
            amount: amt(10_000),
        });
        assert_eq!(first, reply);
        assert_eq!(
            c.decide(&create("o1", 10_000), 200),
            TradeDecision::Reply(reply)
        );
        assert_eq!(created(&mut c, "o2", 10_000, 0), id(2));
        assert_eq!(c.trades().count(), 2);
        let t = c.trade(id(1)).unwrap();
        assert_eq!(
            (t.merchant, t.out_trade_no.as_str(), t.amount, t.created_ms),
            (MERCHANT, "o1", amt(10_000), 100)
        );
        assert_eq!(
            (t.status, t.history.clone()),
            (TradeStatus::WaitPay, vec![TradeStatus::WaitPay])
        );
        assert_eq!((t.paid, t.refunded, t.refunding), (d(0), d(0), d(0)));
    }

    #[test]
    fn the_same_out_trade_no_of_another_merchant_is_another_trade() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        created(&mut c, "o1", 10_000, 0);
        let other = TradeCommand::Create {
            merchant: AccountId(7),
            out_trade_no: "o1".into(),
            amount: amt(10_000),
        };
        assert_eq!(
            run(&mut c, other, 0),
            Ok(TradeReply::Created {
                trade: id(2),
                amount: amt(10_000),
            })
        );
    }

    #[test]
    fn a_repeated_create_with_another_amount_is_refused() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        created(&mut c, "o1", 10_000, 0);
        assert_eq!(
            run(&mut c, create("o1", 9_999), 0),
            Err(TradeError::OutTradeNoReused("o1".into()))
        );
        assert_eq!(c.trades().count(), 1);
        assert_eq!(c.trade(id(1)).unwrap().amount, amt(10_000));
    }

    #[test]
    fn begin_pay_moves_wait_pay_to_paying_and_repeats_while_pending() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let t = created(&mut c, "o1", 10_000, 0);
        let begun = Ok(TradeReply::PayBegun {
            amount: amt(10_000),
            merchant: MERCHANT,
        });
        assert_eq!(run(&mut c, begin_pay(t, "k1", "x1", PAYER), 0), begun);
        let trade = c.trade(t).unwrap();
        assert_eq!(trade.status, TradeStatus::Paying);
        assert_eq!(
            trade.history,
            vec![TradeStatus::WaitPay, TradeStatus::Paying]
        );
        assert_eq!(trade.pays.len(), 1);
        assert_eq!(
            c.decide(&begin_pay(t, "k1", "x1", PAYER), 0),
            TradeDecision::Reply(begun)
        );
    }

    #[test]
    fn a_pay_key_reused_with_another_xid_is_refused() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let t = created(&mut c, "o1", 10_000, 0);
        run(&mut c, begin_pay(t, "k1", "x1", PAYER), 0).unwrap();
        assert_eq!(
            run(&mut c, begin_pay(t, "k1", "x2", PAYER), 0),
            Err(TradeError::KeyReused("k1".into()))
        );
        assert_eq!(
            run(&mut c, end_pay(t, "k1", "x2", PAYER, Ok(())), 0),
            Err(TradeError::KeyReused("k1".into()))
        );
        assert_eq!(c.trade(t).unwrap().status, TradeStatus::Paying);
    }

    #[test]
    fn a_second_key_while_paying_is_refused_and_the_refusal_never_flips() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let t = created(&mut c, "o1", 10_000, 0);
        run(&mut c, begin_pay(t, "k1", "x1", PAYER), 0).unwrap();
        let refused = failed("trade T3-1 cannot be paid in status Paying");
        assert_eq!(
            run(&mut c, begin_pay(t, "k2", "x2", OTHER_PAYER), 0),
            refused
        );
        assert_eq!(
            c.decide(&begin_pay(t, "k2", "x2", OTHER_PAYER), 0),
            TradeDecision::Reply(refused.clone())
        );
        // k1 fails and the trade is payable again, but k2's answer is pinned.
        run(
            &mut c,
            end_pay(t, "k1", "x1", PAYER, Err("declined".into())),
            0,
        )
        .unwrap();
        assert_eq!(c.trade(t).unwrap().status, TradeStatus::WaitPay);
        assert_eq!(
            run(&mut c, begin_pay(t, "k2", "x2", OTHER_PAYER), 0),
            refused
        );
        assert_eq!(c.trade(t).unwrap().status, TradeStatus::WaitPay);
    }

    #[test]
    fn end_pay_ok_marks_the_trade_paid_by_its_payer() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let t = created(&mut c, "o1", 10_000, 0);
        run(&mut c, begin_pay(t, "k1", "x1", PAYER), 0).unwrap();
        assert_eq!(
            run(&mut c, end_pay(t, "k1", "x1", PAYER, Ok(())), 0),
            Ok(TradeReply::Ended)
        );
        let trade = c.trade(t).unwrap();
        assert_eq!(trade.status, TradeStatus::Paid);
        assert_eq!(
            trade.history,
            vec![TradeStatus::WaitPay, TradeStatus::Paying, TradeStatus::Paid]
        );
        assert_eq!(trade.paid, d(10_000));
        assert_eq!(trade.payer(), Some(PAYER));
        assert_eq!(trade.pays[0].status, AttemptStatus::Succeeded);
        assert_eq!(
            run(&mut c, begin_pay(t, "k1", "x1", PAYER), 0),
            Ok(TradeReply::Settled(AttemptStatus::Succeeded))
        );
    }

    #[test]
    fn end_pay_err_returns_the_trade_to_wait_pay_and_pins_the_failure() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let t = created(&mut c, "o1", 10_000, 0);
        run(&mut c, begin_pay(t, "k1", "x1", PAYER), 0).unwrap();
        let declined = Err("declined".to_string());
        assert_eq!(
            run(&mut c, end_pay(t, "k1", "x1", PAYER, declined), 0),
            Ok(TradeReply::Ended)
        );
        let trade = c.trade(t).unwrap();
        assert_eq!(
            trade.history,
            vec![
                TradeStatus::WaitPay,
                TradeStatus::Paying,
                TradeStatus::WaitPay
            ]
        );
        assert_eq!(
            trade.pays[0].status,
            AttemptStatus::Failed("declined".into())
        );
        assert_eq!((trade.paid, trade.payer()), (d(0), None));
        assert_eq!(
            run(&mut c, begin_pay(t, "k1", "x1", PAYER), 0),
            failed("declined")
        );
    }

    #[test]
    fn the_payer_is_the_attempt_that_succeeded() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let t = created(&mut c, "o1", 10_000, 0);
        run(&mut c, begin_pay(t, "k1", "x1", OTHER_PAYER), 0).unwrap();
        run(
            &mut c,
            end_pay(t, "k1", "x1", OTHER_PAYER, Err("no".into())),
            0,
        )
        .unwrap();
        run(&mut c, begin_pay(t, "k2", "x2", PAYER), 0).unwrap();
        run(&mut c, end_pay(t, "k2", "x2", PAYER, Ok(())), 0).unwrap();
        assert_eq!(c.trade(t).unwrap().payer(), Some(PAYER));
    }

    #[test]
    fn a_repeated_end_pay_changes_nothing() {
        let (c, t) = paid_trade(10_000);
        let before = c.trade(t).unwrap().clone();
        for outcome in [Ok(()), Err("late failure".to_string())] {
            assert_eq!(
                c.decide(&end_pay(t, "k1", "x1", PAYER, outcome), 0),
                TradeDecision::Reply(Ok(TradeReply::Ended))
            );
        }
        assert_eq!(c.trade(t).unwrap(), &before);
    }

    #[test]
    fn end_pay_for_an_unknown_key_leaves_a_tombstone_that_refuses_a_late_begin_pay() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let t = created(&mut c, "o1", 10_000, 0);
        assert_eq!(
            run(&mut c, end_pay(t, "k9", "x9", PAYER, Ok(())), 0),
            Ok(TradeReply::Ended)
        );
        let reason = "a success was reported for a pay that never began";
        let trade = c.trade(t).unwrap();
        assert_eq!(trade.status, TradeStatus::WaitPay);
        assert_eq!(trade.pays[0].key, "k9");
        assert_eq!(trade.pays[0].status, AttemptStatus::Failed(reason.into()));
        assert_eq!(
            run(&mut c, begin_pay(t, "k9", "x9", PAYER), 0),
            failed(reason)
        );
        assert_eq!(c.trade(t).unwrap().status, TradeStatus::WaitPay);
        assert_eq!(c.pending(), Vec::<String>::new());
    }

    #[test]
    fn refunding_an_unpaid_trade_is_refused_and_pinned() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let t = created(&mut c, "o1", 10_000, 0);
        let refused = failed("trade T3-1 cannot be refunded in status WaitPay");
        assert_eq!(run(&mut c, begin_refund(t, "r1", "y1", 100), 0), refused);
        assert_eq!(c.trade(t).unwrap().refunding, d(0));
        // Paid now, but the answer under r1 stays the same.
        run(&mut c, begin_pay(t, "k1", "x1", PAYER), 0).unwrap();
        run(&mut c, end_pay(t, "k1", "x1", PAYER, Ok(())), 0).unwrap();
        assert_eq!(run(&mut c, begin_refund(t, "r1", "y1", 100), 0), refused);
        assert_eq!(c.trade(t).unwrap().refunding, d(0));
    }

    #[test]
    fn partial_refunds_move_paid_to_partially_refunded_then_refunded() {
        let (mut c, t) = paid_trade(10_000);
        assert_eq!(
            run(&mut c, begin_refund(t, "r1", "y1", 4_000), 0),
            refund_begun()
        );
        let trade = c.trade(t).unwrap();
        assert_eq!((trade.refunded, trade.refunding), (d(0), d(4_000)));
        assert_eq!(trade.status, TradeStatus::Paid);
        run(&mut c, end_refund(t, "r1", "y1", 4_000, Ok(())), 0).unwrap();
        let trade = c.trade(t).unwrap();
        assert_eq!((trade.refunded, trade.refunding), (d(4_000), d(0)));
        assert_eq!(trade.status, TradeStatus::PartiallyRefunded);
        // The rest, exactly up to the bound, is allowed.
        assert_eq!(
            run(&mut c, begin_refund(t, "r2", "y2", 6_000), 0),
            refund_begun()
        );
        run(&mut c, end_refund(t, "r2", "y2", 6_000, Ok(())), 0).unwrap();
        let trade = c.trade(t).unwrap();
        assert_eq!((trade.refunded, trade.refunding), (d(10_000), d(0)));
        use TradeStatus::*;
        assert_eq!(
            trade.history,
            vec![WaitPay, Paying, Paid, PartiallyRefunded, Refunded]
        );
    }

    #[test]
    fn a_refund_beyond_what_is_left_is_refused_and_the_refusal_never_flips() {
        let (mut c, t) = paid_trade(10_000);
        run(&mut c, begin_refund(t, "r1", "y1", 3_000), 0).unwrap();
        let refused = failed(
            "refund of 80.00 exceeds what is left of trade T3-1: \
             paid 100.00, refunded 0, refunding 30.00",
        );
        assert_eq!(run(&mut c, begin_refund(t, "r2", "y2", 8_000), 0), refused);
        assert_eq!(c.trade(t).unwrap().refunding, d(3_000));
        // r1 fails, so 80.00 would now fit; r2's answer is pinned all the same.
        run(
            &mut c,
            end_refund(t, "r1", "y1", 3_000, Err("no".into())),
            0,
        )
        .unwrap();
        assert_eq!(run(&mut c, begin_refund(t, "r2", "y2", 8_000), 0), refused);
        assert_eq!(c.trade(t).unwrap().refunding, d(0));
    }

    #[test]
    fn two_refunds_decided_in_sequence_cannot_both_pass() {
        let (mut c, t) = paid_trade(10_000);
        assert_eq!(
            run(&mut c, begin_refund(t, "r1", "y1", 6_000), 0),
            refund_begun()
        );
        assert!(matches!(
            run(&mut c, begin_refund(t, "r2", "y2", 6_000), 0),
            Ok(TradeReply::Settled(AttemptStatus::Failed(_)))
        ));
        let trade = c.trade(t).unwrap();
        assert_eq!((trade.refunded, trade.refunding), (d(0), d(6_000)));
    }

    /// Both refunds are judged against the same state; the bound assertion stops the second.
    #[test]
    #[should_panic(expected = "refund bound broken on T3-1")]
    fn refunds_decided_before_either_is_applied_trip_the_bound_assertion() {
        let (mut c, t) = paid_trade(10_000);
        let first = c.decide(&begin_refund(t, "r1", "y1", 6_000), 0);
        let second = c.decide(&begin_refund(t, "r2", "y2", 6_000), 0);
        for decision in [first, second] {
            let TradeDecision::Write(rec) = decision else {
                panic!("both refunds pass a check made before either is written");
            };
            let _ = c.apply(rec);
        }
    }

    #[test]
    fn planted_refund_check_then_act_lets_both_refunds_overshoot() {
        let bugs = Bugs::planted(Bug::RefundCheckThenAct);
        let mut c = TradeCore::new(SHARD, bugs);
        let t = created(&mut c, "o1", 10_000, 0);
        run(&mut c, begin_pay(t, "k1", "x1", PAYER), 0).unwrap();
        run(&mut c, end_pay(t, "k1", "x1", PAYER, Ok(())), 0).unwrap();
        let first = c.decide(&begin_refund(t, "r1", "y1", 6_000), 0);
        let second = c.decide(&begin_refund(t, "r2", "y2", 6_000), 0);
        for decision in [first, second] {
            let TradeDecision::Write(rec) = decision else {
                panic!("both refunds pass a check made before either is written");
            };
            assert_eq!(c.apply(rec), refund_begun());
        }
        let trade = c.trade(t).unwrap();
        assert_eq!((trade.paid, trade.refunding), (d(10_000), d(12_000)));
    }

    #[test]
    fn a_repeated_begin_refund_returns_refund_begun_while_pending() {
        let (mut c, t) = paid_trade(10_000);
        run(&mut c, begin_refund(t, "r1", "y1", 4_000), 0).unwrap();
        assert_eq!(
            c.decide(&begin_refund(t, "r1", "y1", 4_000), 0),
            TradeDecision::Reply(refund_begun())
        );
        assert_eq!(
            run(&mut c, begin_refund(t, "r1", "y9", 4_000), 0),
            Err(TradeError::KeyReused("r1".into()))
        );
        assert_eq!(c.trade(t).unwrap().refunding, d(4_000));
        assert_eq!(c.trade(t).unwrap().refunds.len(), 1);
        run(&mut c, end_refund(t, "r1", "y1", 4_000, Ok(())), 0).unwrap();
        assert_eq!(
            run(&mut c, begin_refund(t, "r1", "y1", 4_000), 0),
            Ok(TradeReply::Settled(AttemptStatus::Succeeded))
        );
        assert_eq!(c.trade(t).unwrap().refunded, d(4_000));
    }

    #[test]
    fn a_failed_refund_releases_its_reservation_once() {
        let (mut c, t) = paid_trade(10_000);
        run(&mut c, begin_refund(t, "r1", "y1", 4_000), 0).unwrap();
        let bank_said_no = Err("bank said no".to_string());
        assert_eq!(
            run(&mut c, end_refund(t, "r1", "y1", 4_000, bank_said_no), 0),
            Ok(TradeReply::Ended)
        );
        let trade = c.trade(t).unwrap().clone();
        assert_eq!((trade.refunded, trade.refunding), (d(0), d(0)));
        assert_eq!(trade.status, TradeStatus::Paid);
        assert_eq!(
            trade.refunds[0].status,
            AttemptStatus::Failed("bank said no".into())
        );
        assert_eq!(
            c.decide(&end_refund(t, "r1", "y1", 4_000, Ok(())), 0),
            TradeDecision::Reply(Ok(TradeReply::Ended))
        );
        assert_eq!(c.trade(t).unwrap(), &trade);
    }

    #[test]
    fn end_refund_for_an_unknown_request_leaves_a_failed_tombstone() {
        let (mut c, t) = paid_trade(10_000);
        assert_eq!(
            run(&mut c, end_refund(t, "r9", "y9", 4_000, Ok(())), 0),
            Ok(TradeReply::Ended)
        );
        let reason = "a success was reported for a refund that never began";
        let trade = c.trade(t).unwrap();
        assert_eq!((trade.refunded, trade.refunding), (d(0), d(0)));
        assert_eq!(trade.status, TradeStatus::Paid);
        assert_eq!(
            run(&mut c, begin_refund(t, "r9", "y9", 4_000), 0),
            failed(reason)
        );
        assert_eq!(c.trade(t).unwrap().refunding, d(0));
    }

    #[test]
    fn only_wait_pay_trades_past_their_timeout_expire_and_close() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let early = created(&mut c, "o1", 100, 0);
        let late = created(&mut c, "o2", 100, 500);
        let paying = created(&mut c, "o3", 100, 0);
        run(&mut c, begin_pay(paying, "k1", "x1", PAYER), 0).unwrap();
        assert_eq!(c.expired(999, 1_000), vec![]);
        assert_eq!(c.expired(1_000, 1_000), vec![early]);
        assert_eq!(c.expired(1_500, 1_000), vec![early, late]);
        assert_eq!(c.decide_close(paying), None);
        let close = c.decide_close(early).unwrap();
        assert_eq!(close, TradeRecord::Closed { trade: early });
        assert_eq!(c.apply(close), Ok(TradeReply::Ended));
        let trade = c.trade(early).unwrap();
        assert_eq!(
            trade.history,
            vec![TradeStatus::WaitPay, TradeStatus::Closed]
        );
        assert_eq!(c.expired(9_999, 1_000), vec![late]);
        assert_eq!(c.decide_close(early), None, "closing is not repeated");
    }

    #[test]
    fn a_paid_trade_is_never_expired_or_closed() {
        let (c, t) = paid_trade(100);
        assert_eq!(c.expired(u64::MAX, 0), vec![]);
        assert_eq!(c.decide_close(t), None);
    }

    #[test]
    fn a_closed_trade_refuses_begin_pay_and_pins_the_refusal() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let t = created(&mut c, "o1", 100, 0);
        let close = c.decide_close(t).unwrap();
        c.apply(close).unwrap();
        let refused = failed("trade T3-1 cannot be paid in status Closed");
        assert_eq!(run(&mut c, begin_pay(t, "k1", "x1", PAYER), 0), refused);
        assert_eq!(run(&mut c, begin_pay(t, "k1", "x1", PAYER), 0), refused);
        let trade = c.trade(t).unwrap();
        assert_eq!(trade.status, TradeStatus::Closed);
        assert_eq!(trade.pays.len(), 1);
    }

    #[test]
    #[should_panic(expected = "illegal trade transition Paid -> Closed on T3-1")]
    fn closing_a_paid_trade_is_an_illegal_transition() {
        let (mut c, t) = paid_trade(100);
        let _ = c.apply(TradeRecord::Closed { trade: t });
    }

    /// A log that begins a pay on a closed trade is corrupt, and replaying it says so.
    #[test]
    #[should_panic(expected = "pay k1 begun on T3-1 while not waiting for payment")]
    fn beginning_a_pay_on_a_closed_trade_is_asserted() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let t = created(&mut c, "o1", 100, 0);
        c.apply(TradeRecord::Closed { trade: t }).unwrap();
        let _ = c.apply(TradeRecord::PayBegun {
            trade: t,
            key: "k1".into(),
            xid: "x1".into(),
            payer: PAYER,
        });
    }

    /// A trade is paid by at most one attempt at a time (see `trade/mod.rs`), and `apply`
    /// asserts the refund bound against stale decisions; the same should hold for pays. Two
    /// BeginPays decided against the same WAIT_PAY state both write PayBegun, and a log holding
    /// both, each ending Ok, replays without any assertion: two successful pays of one trade.
    #[test]
    fn a_log_with_two_pays_in_flight_on_one_trade_is_asserted_on_replay() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let mut log = Vec::new();
        let t = match run_logged(&mut c, create("o1", 100), &mut log) {
            Ok(TradeReply::Created { trade, .. }) => trade,
            other => panic!("create failed: {other:?}"),
        };
        for (key, xid) in [("k1", "x1"), ("k2", "x2")] {
            match c.decide(&begin_pay(t, key, xid, PAYER), 0) {
                TradeDecision::Write(rec) => log.push(rec),
                other => panic!("a BeginPay on a waiting trade writes: {other:?}"),
            }
        }
        for (key, xid) in [("k1", "x1"), ("k2", "x2")] {
            log.push(TradeRecord::PayEnded {
                trade: t,
                key: key.into(),
                xid: xid.into(),
                payer: PAYER,
                outcome: Ok(()),
            });
        }
        let replay = std::panic::catch_unwind(|| TradeCore::recover(SHARD, Bugs::none(), &log));
        if let Ok(core) = replay {
            let pays = &core.trade(t).unwrap().pays;
            let succeeded = pays
                .iter()
                .filter(|p| p.status == AttemptStatus::Succeeded)
                .count();
            panic!("replayed silently: {succeeded} successful pays of one trade");
        }
    }

    #[test]
    #[should_panic(expected = "pay k1 ended twice")]
    fn a_pay_ended_twice_in_the_log_is_asserted() {
        let (mut c, t) = paid_trade(100);
        let _ = c.apply(TradeRecord::PayEnded {
            trade: t,
            key: "k1".into(),
            xid: "x1".into(),
            payer: PAYER,
            outcome: Ok(()),
        });
    }

    #[test]
    fn recovery_rebuilds_the_same_trades() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let mut log = Vec::new();
        let (t1, t2) = (id(1), id(2));
        let commands = [
            create("o1", 10_000),
            create("o2", 500),
            create("o1", 10_000), // a repeat: no record
            begin_pay(t1, "k1", "x1", OTHER_PAYER),
            end_pay(t1, "k1", "x1", OTHER_PAYER, Err("declined".into())),
            begin_pay(t1, "k2", "x2", PAYER),
            begin_pay(t1, "k3", "x3", PAYER), // refused while paying
            end_pay(t1, "k2", "x2", PAYER, Ok(())),
            begin_refund(t1, "r1", "y1", 2_000),
            end_refund(t1, "r1", "y1", 2_000, Ok(())),
            begin_refund(t1, "r2", "y2", 9_000), // refused: exceeds
            begin_refund(t1, "r3", "y3", 1_000), // left pending
            end_pay(t2, "k9", "x9", PAYER, Ok(())), // tombstone
        ];
        for cmd in commands {
            let _ = run_logged(&mut c, cmd, &mut log);
        }
        assert_eq!(log.len(), 12);
        let r = TradeCore::recover(SHARD, Bugs::none(), &log);
        assert_eq!(
            r.trades().collect::<Vec<_>>(),
            c.trades().collect::<Vec<_>>()
        );
        assert_eq!(r.pending(), c.pending());
        let trade = r.trade(t1).unwrap();
        assert_eq!(trade.status, TradeStatus::PartiallyRefunded);
        assert_eq!((trade.refunded, trade.refunding), (d(2_000), d(1_000)));
        // The uniqueness index is rebuilt too: a repeated create finds the old trade.
        assert_eq!(
            r.decide(&create("o2", 500), 0),
            TradeDecision::Reply(Ok(TradeReply::Created {
                trade: t2,
                amount: amt(500),
            }))
        );
    }

    #[test]
    fn pending_lists_unfinished_pays_and_refunds_until_they_end() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let t = created(&mut c, "o1", 10_000, 0);
        assert_eq!(c.pending(), Vec::<String>::new());
        run(&mut c, begin_pay(t, "k1", "x1", PAYER), 0).unwrap();
        assert_eq!(c.pending(), vec!["T3-1 pay k1 (x1)".to_string()]);
        run(&mut c, end_pay(t, "k1", "x1", PAYER, Ok(())), 0).unwrap();
        assert_eq!(c.pending(), Vec::<String>::new());
        run(&mut c, begin_refund(t, "r1", "y1", 100), 0).unwrap();
        assert_eq!(c.pending(), vec!["T3-1 refund r1 (y1)".to_string()]);
        run(&mut c, end_refund(t, "r1", "y1", 100, Err("no".into())), 0).unwrap();
        assert_eq!(c.pending(), Vec::<String>::new());
    }

    #[test]
    fn commands_for_unknown_or_foreign_trades_are_refused() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        created(&mut c, "o1", 100, 0);
        assert_eq!(
            run(&mut c, begin_pay(id(2), "k1", "x1", PAYER), 0),
            Err(TradeError::UnknownTrade(id(2)))
        );
        let foreign = TradeId { shard: 0, seq: 1 };
        assert_eq!(
            run(&mut c, TradeCommand::Query { trade: foreign }, 0),
            Err(TradeError::WrongShard {
                trade: foreign,
                shard: SHARD,
            })
        );
        assert_eq!(c.trade(foreign), None);
        assert_eq!(c.trade(id(1)).unwrap().pays.len(), 0);
    }

    #[test]
    fn paid_refunded_and_closed_changes_publish_versioned_events() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let t = created(&mut c, "o1", 100, 0);
        run(&mut c, begin_pay(t, "k1", "x1", PAYER), 0).unwrap();
        assert!(c.events().is_empty(), "beginning a pay publishes nothing");
        run(&mut c, end_pay(t, "k1", "x1", PAYER, Ok(())), 0).unwrap();
        run(&mut c, begin_refund(t, "r1", "y1", 40), 0).unwrap();
        run(&mut c, end_refund(t, "r1", "y1", 40, Ok(())), 0).unwrap();
        run(&mut c, begin_refund(t, "r2", "y2", 60), 0).unwrap();
        run(&mut c, end_refund(t, "r2", "y2", 60, Ok(())), 0).unwrap();
        let ids: Vec<&String> = c.events().keys().collect();
        assert_eq!(
            ids,
            ["T3-1:v1:paid", "T3-1:v2:refunded:r1", "T3-1:v3:refunded:r2"]
        );
        let last = c.event("T3-1:v3:refunded:r2").unwrap();
        assert_eq!(last.status, TradeStatus::Refunded);
        assert_eq!((last.paid, last.refunded), (d(100), d(100)));
        assert_eq!(last.payer, Some(PAYER));
        assert_eq!(c.trade(t).unwrap().version, 3);
        let u = created(&mut c, "o2", 5, 0);
        let close = c.decide_close(u).unwrap();
        let preview = c.event_of(&close).unwrap();
        c.apply(close).unwrap();
        assert_eq!(c.event("T3-2:v1:closed"), Some(&preview));
        assert_eq!(preview.payer, None);
    }

    #[test]
    fn failed_or_repeated_ends_publish_nothing() {
        let mut c = TradeCore::new(SHARD, Bugs::none());
        let t = created(&mut c, "o1", 100, 0);
        run(&mut c, begin_pay(t, "k1", "x1", PAYER), 0).unwrap();
        run(&mut c, end_pay(t, "k1", "x1", PAYER, Err("no".into())), 0).unwrap();
        run(&mut c, end_pay(t, "k9", "x9", PAYER, Ok(())), 0).unwrap();
        assert!(c.events().is_empty());
        run(&mut c, begin_pay(t, "k2", "x2", PAYER), 0).unwrap();
        run(&mut c, end_pay(t, "k2", "x2", PAYER, Ok(())), 0).unwrap();
        assert_eq!(c.events().len(), 1);
        let repeat = TradeRecord::PayEnded {
            trade: t,
            key: "k2".into(),
            xid: "x2".into(),
            payer: PAYER,
            outcome: Ok(()),
        };
        assert_eq!(c.event_of(&repeat), None);
    }

    #[test]
    fn outbox_rows_are_written_with_their_change_and_survive_recovery_until_sent() {
        let mut c = TradeCore::with_messages(SHARD, Bugs::none(), Some(MessageMode::Outbox));
        let mut log = Vec::new();
        let t = created(&mut c, "o1", 100, 0);
        log.extend(c_log_of_created(&c, t));
        run_logged(&mut c, begin_pay(t, "k1", "x1", PAYER), &mut log).unwrap();
        run_logged(&mut c, end_pay(t, "k1", "x1", PAYER, Ok(())), &mut log).unwrap();
        let unsent: Vec<String> = c.unsent().map(|e| e.id()).collect();
        assert_eq!(unsent, ["T3-1:v1:paid"]);
        // Unsent rows are the node's pending work (where a resender exists), not the core's.
        assert!(c.pending().is_empty());
        let r =
            TradeCore::recover_with_messages(SHARD, Bugs::none(), Some(MessageMode::Outbox), &log);
        assert_eq!(
            r.unsent().count(),
            1,
            "an unsent row is found again after a crash"
        );
        let sent = TradeRecord::OutboxSent {
            events: unsent.clone(),
        };
        log.push(sent.clone());
        c.apply(sent).unwrap();
        assert_eq!(c.unsent().count(), 0);
        let r =
            TradeCore::recover_with_messages(SHARD, Bugs::none(), Some(MessageMode::Outbox), &log);
        assert_eq!(r.unsent().count(), 0);
        assert_eq!(r.events(), c.events());
        let plain = TradeCore::with_messages(SHARD, Bugs::none(), Some(MessageMode::Txmsg));
        assert_eq!(plain.unsent().count(), 0);
    }

    fn c_log_of_created(c: &TradeCore, t: TradeId) -> Vec<TradeRecord> {
        let trade = c.trade(t).unwrap();
        vec![TradeRecord::Created {
            id: t,
            merchant: trade.merchant,
            out_trade_no: trade.out_trade_no.clone(),
            amount: trade.amount,
            created_ms: trade.created_ms,
        }]
    }
}

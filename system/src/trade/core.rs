//! One trade shard's deterministic core: trades, their pay attempts and refunds.
//!
//! Like the ledger: [`TradeCore::decide`] turns a command into an immediate reply or a
//! [`TradeRecord`] to make durable, and [`TradeCore::apply`] folds records into state, live and
//! on recovery alike. Every status change is asserted against [`TradeStatus::can_become`], and
//! the refund bound (refunded + refunding <= paid) is asserted on every apply.

use super::events::{MessageMode, TradeEvent, TradeEventKind};
use super::types::*;
use crate::bugs::{Bug, Bugs, Check};
use crate::ids::{AccountId, EventId, IdemKey, TradeShardId, Xid};
use crate::money::Amount;
use crate::refusal::{Refusal, RefusalCode};
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
        key: IdemKey,
        xid: Xid,
        payer: AccountId,
        #[serde(default)]
        by_card: bool,
    },
    /// A BeginPay refused (e.g. the trade was closed), pinned to its key.
    PayRefused {
        trade: TradeId,
        key: IdemKey,
        xid: Xid,
        payer: AccountId,
        reason: Refusal,
    },
    PayEnded {
        trade: TradeId,
        key: IdemKey,
        xid: Xid,
        payer: AccountId,
        outcome: Result<(), Refusal>,
    },
    RefundBegun {
        trade: TradeId,
        out_request_no: IdemKey,
        xid: Xid,
        amount: Amount,
    },
    RefundRefused {
        trade: TradeId,
        out_request_no: IdemKey,
        xid: Xid,
        amount: Amount,
        reason: Refusal,
    },
    RefundEnded {
        trade: TradeId,
        out_request_no: IdemKey,
        xid: Xid,
        amount: Amount,
        outcome: Result<(), Refusal>,
    },
    /// Unpaid past its timeout.
    Closed { trade: TradeId },
    /// Outbox rows (mode 1) the broker acknowledged: the relay or the resender sent them.
    OutboxSent { events: Vec<EventId> },
}

impl TradeRecord {
    /// The trade this record changes (`None` for outbox bookkeeping).
    pub fn trade(&self) -> Option<TradeId> {
        match self {
            TradeRecord::Created { id, .. } => Some(*id),
            TradeRecord::PayBegun { trade, .. }
            | TradeRecord::PayRefused { trade, .. }
            | TradeRecord::PayEnded { trade, .. }
            | TradeRecord::RefundBegun { trade, .. }
            | TradeRecord::RefundRefused { trade, .. }
            | TradeRecord::RefundEnded { trade, .. }
            | TradeRecord::Closed { trade } => Some(*trade),
            TradeRecord::OutboxSent { .. } => None,
        }
    }
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
    shard: TradeShardId,
    trades: BTreeMap<u64, Trade>,
    by_out_trade_no: BTreeMap<(AccountId, String), TradeId>,
    /// Every event a committed change produced, by id: the trade DB's event log.
    events: BTreeMap<EventId, TradeEvent>,
    /// Mode 1: the outbox rows not yet acknowledged by the broker. Each row is written by the
    /// same record as the change it announces.
    unsent: BTreeSet<EventId>,
    messages: Option<MessageMode>,
    bugs: Bugs,
    /// Trades (by sequence) changed since the harness's observer last took them (never read
    /// by the platform).
    changed: BTreeSet<u64>,
    /// Trades (by sequence) waiting for payment, so the close-by-timeout tick reads only those
    /// (derived from `trades`; kept by `apply`).
    waiting: BTreeSet<u64>,
    /// Trades (by sequence) with a pay or a refund not ended, so progress reads touch only
    /// those (derived from `trades`; kept by `apply`).
    in_flight: BTreeSet<u64>,
}

impl TradeCore {
    pub fn new(shard: TradeShardId, bugs: Bugs) -> Self {
        TradeCore {
            shard,
            trades: BTreeMap::new(),
            by_out_trade_no: BTreeMap::new(),
            events: BTreeMap::new(),
            unsent: BTreeSet::new(),
            messages: None,
            bugs,
            changed: BTreeSet::new(),
            waiting: BTreeSet::new(),
            in_flight: BTreeSet::new(),
        }
    }

    /// A shard that publishes its events in `mode` (`None`: events are kept, never published).
    pub fn with_messages(shard: TradeShardId, bugs: Bugs, mode: Option<MessageMode>) -> Self {
        TradeCore {
            messages: mode,
            ..TradeCore::new(shard, bugs)
        }
    }

    /// Rebuilds a shard from its log.
    pub fn recover(shard: TradeShardId, bugs: Bugs, records: &[TradeRecord]) -> Self {
        TradeCore::recover_with_messages(shard, bugs, None, records)
    }

    /// Rebuilds a shard that publishes in `mode` from its log.
    pub fn recover_with_messages(
        shard: TradeShardId,
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
    pub fn events(&self) -> &BTreeMap<EventId, TradeEvent> {
        &self.events
    }

    pub fn event(&self, id: &EventId) -> Option<&TradeEvent> {
        self.events.get(id)
    }

    /// Mode 1: outbox rows not yet acknowledged by the broker, oldest trade first.
    pub fn unsent(&self) -> impl Iterator<Item = &TradeEvent> {
        self.unsent.iter().filter_map(|id| self.events.get(id))
    }

    /// The event applying `record` would publish, if any: the same computation `apply` uses,
    /// so a producer can announce an event (a half message) before committing it.
    pub fn event_of(&self, record: &TradeRecord) -> Option<TradeEvent> {
        match record {
            TradeRecord::PayEnded {
                trade,
                key,
                outcome: Ok(()),
                ..
            } => self.paid_event(*trade, key),
            TradeRecord::RefundEnded {
                trade,
                out_request_no,
                outcome: Ok(()),
                ..
            } => self.refunded_event(*trade, out_request_no),
            TradeRecord::Closed { trade } => {
                let t = self.trade(*trade)?;
                (t.status == TradeStatus::WaitPay)
                    .then(|| next_event(t, TradeEventKind::Closed, TradeStatus::Closed))
            }
            _ => None,
        }
    }

    /// The event of pay `key` succeeding, if it is the pending pay of a paying trade.
    fn paid_event(&self, trade: TradeId, key: &IdemKey) -> Option<TradeEvent> {
        let t = self.trade(trade)?;
        let attempt = t.pays.iter().find(|p| &p.key == key)?;
        if !attempt.status.is_pending() || t.status != TradeStatus::Paying {
            return None;
        }
        Some(TradeEvent {
            payer: Some(attempt.payer),
            paid: t.amount.value(),
            ..next_event(t, TradeEventKind::Paid, TradeStatus::Paid)
        })
    }

    /// The event of refund `out_request_no` succeeding, if it is pending.
    fn refunded_event(&self, trade: TradeId, out_request_no: &IdemKey) -> Option<TradeEvent> {
        let t = self.trade(trade)?;
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
        Some(TradeEvent {
            payer: t.payer(),
            refunded,
            refund: Some((r.out_request_no.to_string(), r.amount)),
            ..next_event(t, TradeEventKind::Refunded, status)
        })
    }

    pub fn shard(&self) -> TradeShardId {
        self.shard
    }

    pub fn trades(&self) -> impl Iterator<Item = &Trade> {
        self.trades.values()
    }

    /// The trades changed since the last call (or since the shard was built), and starts
    /// afresh: the harness's incremental capture. Changes nothing the platform reads.
    pub fn take_changed(&mut self) -> Vec<&Trade> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .iter()
            .filter_map(|seq| self.trades.get(seq))
            .collect()
    }

    pub fn trade(&self, id: TradeId) -> Option<&Trade> {
        (id.shard == self.shard.0)
            .then(|| self.trades.get(&id.seq))
            .flatten()
    }

    /// Trades still waiting for payment whose timeout has passed at `now_ms`.
    pub fn expired(&self, now_ms: u64, close_after_ms: u64) -> Vec<TradeId> {
        self.waiting
            .iter()
            .map(|seq| &self.trades[seq])
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
        for t in self.trades_in_flight() {
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
        if id.shard != self.shard.0 {
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
                by_card,
            } => self.decide_begin_pay(*trade, key, xid, (*payer, *by_card)),
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
            shard: self.shard.0,
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
        key: &IdemKey,
        xid: &Xid,
        (payer, by_card): (AccountId, bool),
    ) -> Result<TradeDecision, TradeError> {
        let trade = self.find(id)?;
        if let Some(attempt) = trade.pays.iter().find(|p| &p.key == key) {
            if &attempt.xid != xid {
                return Err(TradeError::KeyReused(key.clone()));
            }
            return Ok(TradeDecision::Reply(Ok(match attempt.status {
                AttemptStatus::Pending => TradeReply::PayBegun {
                    amount: trade.amount,
                    merchant: trade.merchant,
                },
                ref settled => TradeReply::Settled(settled.clone()),
            })));
        }
        let (trade, key, xid) = (id, key.clone(), xid.clone());
        Ok(TradeDecision::Write(match self.trades[&id.seq].status {
            TradeStatus::WaitPay => TradeRecord::PayBegun {
                trade,
                key,
                xid,
                payer,
                by_card,
            },
            status => TradeRecord::PayRefused {
                trade,
                key,
                xid,
                payer,
                reason: pinned(&TradeError::NotPayable { trade, status }),
            },
        }))
    }

    fn decide_end_pay(
        &self,
        id: TradeId,
        key: &IdemKey,
        xid: &Xid,
        payer: AccountId,
        outcome: &Result<(), Refusal>,
    ) -> Result<TradeDecision, TradeError> {
        let trade = self.find(id)?;
        match trade.pays.iter().find(|p| &p.key == key) {
            Some(a) if &a.xid != xid => Err(TradeError::KeyReused(key.clone())),
            Some(a) if !a.status.is_pending() => Ok(TradeDecision::Reply(Ok(TradeReply::Ended))),
            _ => Ok(TradeDecision::Write(TradeRecord::PayEnded {
                trade: id,
                key: key.clone(),
                xid: xid.clone(),
                payer,
                outcome: outcome.clone(),
            })),
        }
    }

    /// The refund bound, checked here and asserted again in `apply`.
    pub fn decide_begin_refund(
        &self,
        id: TradeId,
        out_request_no: &IdemKey,
        xid: &Xid,
        amount: Amount,
    ) -> Result<TradeDecision, TradeError> {
        let trade = self.find(id)?;
        if let Some(refund) = trade
            .refunds
            .iter()
            .find(|r| &r.out_request_no == out_request_no)
        {
            if &refund.xid != xid {
                return Err(TradeError::KeyReused(out_request_no.clone()));
            }
            return Ok(TradeDecision::Reply(Ok(match refund.status {
                AttemptStatus::Pending => TradeReply::RefundBegun {
                    merchant: trade.merchant,
                    payer: trade.payer().expect("a refunded trade has a payer"),
                    to_card: trade.paid_by_card(),
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
        let (trade, out_request_no, xid) = (id, out_request_no.clone(), xid.clone());
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
                reason: pinned(&e),
            },
        }))
    }

    /// The planted `trade-refunded-reopens`: a repeated end on a fully refunded trade is
    /// written again instead of being answered from its pinned outcome.
    fn reopens(&self, trade: &Trade) -> bool {
        self.bugs.is(Bug::TradeRefundedReopens) && trade.status == TradeStatus::Refunded
    }

    fn decide_end_refund(
        &self,
        id: TradeId,
        out_request_no: &IdemKey,
        xid: &Xid,
        amount: Amount,
        outcome: &Result<(), Refusal>,
    ) -> Result<TradeDecision, TradeError> {
        let trade = self.find(id)?;
        match trade
            .refunds
            .iter()
            .find(|r| &r.out_request_no == out_request_no)
        {
            Some(r) if &r.xid != xid => Err(TradeError::KeyReused(out_request_no.clone())),
            Some(r) if !r.status.is_pending() && !self.reopens(trade) => {
                Ok(TradeDecision::Reply(Ok(TradeReply::Ended)))
            }
            _ => Ok(TradeDecision::Write(TradeRecord::RefundEnded {
                trade: id,
                out_request_no: out_request_no.clone(),
                xid: xid.clone(),
                amount,
                outcome: outcome.clone(),
            })),
        }
    }

    /// A trade about to change (so also one the observer will read again).
    fn trade_mut(&mut self, id: TradeId) -> &mut Trade {
        self.changed.insert(id.seq);
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
        let touched = record.trade();
        let reply = self.apply_change(record);
        if let Some(id) = touched {
            self.note_indexes(id);
        }
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

    /// Keeps `waiting` and `in_flight` in step with trade `id`.
    fn note_indexes(&mut self, id: TradeId) {
        let Some(t) = self.trades.get(&id.seq) else {
            return;
        };
        let set = |on: bool, index: &mut BTreeSet<u64>| {
            if on {
                index.insert(id.seq);
            } else {
                index.remove(&id.seq);
            }
        };
        set(t.status == TradeStatus::WaitPay, &mut self.waiting);
        set(t.in_flight(), &mut self.in_flight);
    }

    /// The trades with a pay or a refund not ended, in sequence order.
    pub fn trades_in_flight(&self) -> impl Iterator<Item = &Trade> {
        self.in_flight.iter().map(|seq| &self.trades[seq])
    }

    fn apply_change(&mut self, record: TradeRecord) -> Outcome {
        match record {
            TradeRecord::Created {
                id,
                merchant,
                out_trade_no,
                amount,
                created_ms,
            } => self.apply_created(id, merchant, out_trade_no, amount, created_ms),
            TradeRecord::PayBegun { .. }
            | TradeRecord::PayRefused { .. }
            | TradeRecord::PayEnded { .. } => self.apply_pay(record),
            TradeRecord::RefundBegun { .. }
            | TradeRecord::RefundRefused { .. }
            | TradeRecord::RefundEnded { .. } => self.apply_refund(record),
            TradeRecord::Closed { trade } => {
                let asserted = self.transitions_asserted();
                move_to(self.trade_mut(trade), TradeStatus::Closed, asserted);
                Ok(TradeReply::Ended)
            }
            TradeRecord::OutboxSent { .. } => Ok(TradeReply::Ended),
        }
    }

    /// Applies a record about a pay attempt.
    fn apply_pay(&mut self, record: TradeRecord) -> Outcome {
        match record {
            TradeRecord::PayBegun {
                trade,
                key,
                xid,
                payer,
                by_card,
            } => self.apply_pay_begun(trade, key, xid, (payer, by_card)),
            TradeRecord::PayRefused {
                trade,
                key,
                xid,
                payer,
                reason,
            } => {
                let status = AttemptStatus::Failed(reason);
                let attempt = PayAttempt {
                    key,
                    xid,
                    payer,
                    status: status.clone(),
                    by_card: false,
                };
                self.trade_mut(trade).pays.push(attempt);
                Ok(TradeReply::Settled(status))
            }
            TradeRecord::PayEnded {
                trade,
                key,
                xid,
                payer,
                outcome,
            } => self.apply_pay_ended(trade, key, xid, payer, outcome),
            other => unreachable!("not a pay record: {other:?}"),
        }
    }

    /// Applies a record about a refund.
    fn apply_refund(&mut self, record: TradeRecord) -> Outcome {
        match record {
            TradeRecord::RefundBegun {
                trade,
                out_request_no,
                xid,
                amount,
            } => self.apply_refund_begun(trade, out_request_no, xid, amount),
            TradeRecord::RefundRefused {
                trade,
                out_request_no,
                xid,
                amount,
                reason,
            } => {
                let status = AttemptStatus::Failed(reason);
                let refund = Refund {
                    out_request_no,
                    xid,
                    amount,
                    status: status.clone(),
                };
                self.trade_mut(trade).refunds.push(refund);
                Ok(TradeReply::Settled(status))
            }
            TradeRecord::RefundEnded {
                trade,
                out_request_no,
                xid,
                amount,
                outcome,
            } => self.apply_refund_ended(trade, out_request_no, xid, amount, outcome),
            other => unreachable!("not a refund record: {other:?}"),
        }
    }

    /// Whether status moves are asserted against their legal edges: always, unless the planted
    /// bug needs an illegal one to reach the checker.
    fn transitions_asserted(&self) -> bool {
        !self.bugs.relaxes(Check::TradeTransitions)
    }

    /// Asserts the refund bound on `trade`, unless the planted bug needs it broken.
    fn assert_refund_bound(&self, trade: TradeId) {
        let t = &self.trades[&trade.seq];
        assert!(
            self.bugs.relaxes(Check::RefundBound) || t.refunded + t.refunding <= t.paid,
            "refund bound broken on {trade}"
        );
    }

    fn apply_created(
        &mut self,
        id: TradeId,
        merchant: AccountId,
        out_trade_no: String,
        amount: Amount,
        created_ms: u64,
    ) -> Outcome {
        assert_eq!(id.seq, self.trades.len() as u64 + 1, "trades in sequence");
        self.by_out_trade_no
            .insert((merchant, out_trade_no.clone()), id);
        self.changed.insert(id.seq);
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

    fn apply_pay_begun(
        &mut self,
        trade: TradeId,
        key: IdemKey,
        xid: Xid,
        (payer, by_card): (AccountId, bool),
    ) -> Outcome {
        let asserted = self.transitions_asserted();
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
            by_card,
        });
        move_to(t, TradeStatus::Paying, asserted);
        Ok(TradeReply::PayBegun {
            amount: t.amount,
            merchant: t.merchant,
        })
    }

    fn apply_pay_ended(
        &mut self,
        trade: TradeId,
        key: IdemKey,
        xid: Xid,
        payer: AccountId,
        outcome: Result<(), Refusal>,
    ) -> Outcome {
        let asserted = self.transitions_asserted();
        let t = self.trade_mut(trade);
        let Some(attempt) = t.pays.iter_mut().find(|p| p.key == key) else {
            // Ended before it began here: pinned as failed, so a late BeginPay of this key is
            // refused instead of leaving the trade PAYING for ever.
            let reason = match outcome {
                Ok(()) => Refusal::new(
                    RefusalCode::Invalid,
                    "a success was reported for a pay that never began",
                ),
                Err(reason) => reason,
            };
            t.pays.push(PayAttempt {
                key,
                xid,
                payer,
                status: AttemptStatus::Failed(reason),
                by_card: false,
            });
            return Ok(TradeReply::Ended);
        };
        assert!(attempt.status.is_pending(), "pay {key} ended twice");
        match outcome {
            Ok(()) => {
                attempt.status = AttemptStatus::Succeeded;
                assert_eq!(t.status, TradeStatus::Paying, "{trade} paid twice");
                t.paid = t.amount.value();
                move_to(t, TradeStatus::Paid, asserted);
            }
            Err(reason) => {
                attempt.status = AttemptStatus::Failed(reason);
                move_to(t, TradeStatus::WaitPay, asserted);
            }
        }
        Ok(TradeReply::Ended)
    }

    fn apply_refund_begun(
        &mut self,
        trade: TradeId,
        out_request_no: IdemKey,
        xid: Xid,
        amount: Amount,
    ) -> Outcome {
        let t = self.trade_mut(trade);
        t.refunding += amount.value();
        t.refunds.push(Refund {
            out_request_no,
            xid,
            amount,
            status: AttemptStatus::Pending,
        });
        let reply = TradeReply::RefundBegun {
            merchant: t.merchant,
            payer: t.payer().expect("a refunded trade has a payer"),
            to_card: t.paid_by_card(),
        };
        self.assert_refund_bound(trade);
        Ok(reply)
    }

    fn apply_refund_ended(
        &mut self,
        trade: TradeId,
        out_request_no: IdemKey,
        xid: Xid,
        amount: Amount,
        outcome: Result<(), Refusal>,
    ) -> Outcome {
        let asserted = self.transitions_asserted();
        let reopens = self.bugs.is(Bug::TradeRefundedReopens);
        let t = self.trade_mut(trade);
        let known = t
            .refunds
            .iter()
            .position(|r| r.out_request_no == out_request_no);
        let settled = known.is_some_and(|i| !t.refunds[i].status.is_pending());
        if reopens && t.status == TradeStatus::Refunded && (known.is_none() || settled) {
            // The planted bug: a late or repeated end on a fully refunded trade reopens it.
            if known.is_none() {
                t.refunds
                    .push(refund_tombstone(out_request_no, xid, amount, outcome));
            }
            move_to(t, TradeStatus::PartiallyRefunded, asserted);
            return Ok(TradeReply::Ended);
        }
        let Some(i) = known else {
            t.refunds
                .push(refund_tombstone(out_request_no, xid, amount, outcome));
            return Ok(TradeReply::Ended);
        };
        let refund = &mut t.refunds[i];
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
                move_to(t, next, asserted);
            }
            Err(reason) => refund.status = AttemptStatus::Failed(reason),
        }
        self.assert_refund_bound(trade);
        Ok(TradeReply::Ended)
    }
}

/// Trade `t`'s next event, of `kind`, moving it to `status`, with its amounts as they are now
/// and no payer (the callers fill in what the change moves).
fn next_event(t: &Trade, kind: TradeEventKind, status: TradeStatus) -> TradeEvent {
    TradeEvent {
        trade: t.id,
        version: t.version + 1,
        kind,
        status,
        merchant: t.merchant,
        payer: None,
        amount: t.amount,
        paid: t.paid,
        refunded: t.refunded,
        refund: None,
    }
}

/// A refund ended before it began here: pinned as failed, so a late BeginRefund of it is
/// refused (anti-hanging).
fn refund_tombstone(
    out_request_no: IdemKey,
    xid: Xid,
    amount: Amount,
    outcome: Result<(), Refusal>,
) -> Refund {
    let reason = outcome.err().unwrap_or_else(|| {
        Refusal::new(
            RefusalCode::Invalid,
            "a success was reported for a refund that never began",
        )
    });
    Refund {
        out_request_no,
        xid,
        amount,
        status: AttemptStatus::Failed(reason),
    }
}

/// Moves a trade to `next` (a no-op if it is already there), asserting the edge is legal
/// unless `asserted` is off (a planted bug that needs an illegal edge).
fn move_to(trade: &mut Trade, next: TradeStatus, asserted: bool) {
    if trade.status == next {
        return;
    }
    assert!(
        !asserted || trade.status.can_become(next),
        "illegal trade transition {:?} -> {next:?} on {}",
        trade.status,
        trade.id
    );
    trade.status = next;
    trade.history.push(next);
}

/// A trade refusal as the durable reason a key is pinned to: its code and its words.
fn pinned(e: &TradeError) -> Refusal {
    Refusal::new(e.code(), e.to_string())
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;

//! Turns the platform's state into the checkers' [`Observation`](paylab_invariants::Observation)
//! vocabulary.

use compact_str::ToCompactString;
use paylab_invariants as inv;
use paylab_invariants::delta::{Changes, ShardDelta};
use paylab_system::broker::{BrokerCore, HalfState, RetryState};
use paylab_system::ledger::{self, BranchKey, LedgerChanges, LedgerCore, LegAction};
use paylab_system::notify::{self, Callback, Notification, NotifyCore, NotifyState, MAX_ATTEMPTS};
use paylab_system::payment::{Order, OrderKind, PaymentView};
use paylab_system::replica::{self, ConsumerRecordsCore, MerchantQueryCore, Projection};
use paylab_system::tcc::Phase;
use paylab_system::trade::{self, TradeCore};
use std::collections::BTreeMap;

fn side(s: ledger::Side) -> inv::Side {
    match s {
        ledger::Side::Debit => inv::Side::Debit,
        ledger::Side::Credit => inv::Side::Credit,
    }
}

pub fn subject(s: ledger::Subject) -> inv::Subject {
    match s {
        ledger::Subject::User => inv::Subject::User,
        ledger::Subject::Merchant => inv::Subject::Merchant,
        ledger::Subject::Transit => inv::Subject::Transit,
        ledger::Subject::World => inv::Subject::World,
        ledger::Subject::Reserve => inv::Subject::Reserve,
        ledger::Subject::InTransit => inv::Subject::InTransit,
        ledger::Subject::Suspense => inv::Subject::Suspense,
    }
}

fn fence(s: ledger::FenceState) -> inv::FenceState {
    match s {
        ledger::FenceState::Tried => inv::FenceState::Tried,
        ledger::FenceState::Committed => inv::FenceState::Committed,
        ledger::FenceState::RolledBack => inv::FenceState::RolledBack,
        ledger::FenceState::Suspended => inv::FenceState::Suspended,
    }
}

fn account(a: &ledger::Account) -> inv::AccountState {
    inv::AccountState {
        account: a.id.0,
        subject: subject(a.subject),
        available: a.available,
        frozen: a.frozen,
    }
}

fn journal_entry(e: &ledger::JournalEntry) -> inv::JournalEntry {
    inv::JournalEntry {
        seq: e.seq,
        voucher: e.voucher.to_compact_string(),
        account: e.account.0,
        side: side(e.side),
        amount: e.amount.value(),
    }
}

fn freeze(f: &ledger::Freeze) -> inv::FreezeState {
    inv::FreezeState {
        key: f.key.as_str().into(),
        account: f.account.0,
        amount: f.amount.value(),
        xid: None,
    }
}

/// A TCC reservation as a freeze-shaped entry, keyed `tcc:{xid}:{branch}`.
fn hold(branch: &BranchKey, action: &LegAction) -> inv::FreezeState {
    inv::FreezeState {
        key: hold_key(branch).into(),
        account: action.account().0,
        amount: action.amount().value(),
        xid: Some(branch.xid.0.clone()),
    }
}

fn hold_key(branch: &BranchKey) -> String {
    format!("tcc:{}:{}", branch.xid, branch.branch)
}

/// The locks a locking (2PC) shard's participant took and released, in its log's order: a
/// Try locks its branch's account, its Confirm or Cancel releases it.
pub fn lock_history(shard: u32, records: &[ledger::LedgerRecord]) -> Vec<inv::LockEvent> {
    use paylab_system::ledger::ParticipantRecord::Tcc;
    use paylab_system::tcc::participant::TccRecord;
    let mut accounts = std::collections::BTreeMap::new();
    let mut out = Vec::new();
    for (seq, record) in records.iter().enumerate() {
        let ledger::LedgerRecord::Participant(Tcc(r)) = record else {
            continue;
        };
        let (branch, acquire) = match r {
            TccRecord::Tried { branch, action } => {
                accounts.insert(branch.clone(), action.account());
                (branch, true)
            }
            TccRecord::Confirmed { branch, .. } | TccRecord::Cancelled { branch } => {
                (branch, false)
            }
            TccRecord::Suspended { .. } => continue,
        };
        let Some(account) = accounts.get(branch) else {
            continue;
        };
        out.push(inv::LockEvent {
            shard,
            seq: seq as u64,
            account: account.0,
            xid: branch.xid.to_string(),
            branch: branch.branch,
            acquire,
        });
    }
    out
}

/// One saga as its log stands.
pub fn saga(node: &str, s: &paylab_system::saga::SagaSummary) -> inv::SagaLogEntry {
    use paylab_system::movement::Phase;
    inv::SagaLogEntry {
        node: node.to_string(),
        xid: s.xid.to_string(),
        steps: s.steps,
        failed: s.failed,
        end: s.ended.map(|p| match p {
            Phase::Committed => inv::SagaEnd::Completed,
            Phase::Heuristic => inv::SagaEnd::Heuristic,
            _ => inv::SagaEnd::Compensated,
        }),
    }
}

/// A god's-eye snapshot of one ledger shard.
pub fn shard_snapshot(core: &LedgerCore) -> inv::ShardSnapshot {
    let (freezes, prepared) = reservations(core);
    inv::ShardSnapshot {
        shard: core.shard().0,
        accounts: core.accounts().map(account).collect(),
        freezes,
        vouchers: core.vouchers().iter().map(voucher).collect(),
        journal: core.journal().iter().map(journal_entry).collect(),
        prepared,
        fences: core
            .tcc()
            .fences()
            .rows()
            .map(|(k, s)| inv::FenceRow {
                xid: k.xid.0.clone(),
                branch: k.branch,
                state: fence(s),
            })
            .collect(),
    }
}

/// A shard's reservations: its freezes, and its TCC holds. A TCC debit reservation shows as a
/// freeze, a prepared credit as a prepared entry, both keyed `tcc:{xid}:{branch}`.
fn reservations(core: &LedgerCore) -> (Vec<inv::FreezeState>, Vec<inv::FreezeState>) {
    let mut freezes: Vec<inv::FreezeState> = core.freezes().map(freeze).collect();
    let mut prepared = Vec::new();
    for (branch, action) in core.tcc().holds() {
        let hold = hold(branch, action);
        match action {
            LegAction::Debit { .. } => freezes.push(hold),
            LegAction::Credit { .. } => prepared.push(hold),
        }
    }
    (freezes, prepared)
}

/// What changed on one ledger shard, from the keys its core says it touched: O(changes).
/// Prepared credits and fence rows are not part of a delta (the always-invariants do not read
/// them).
pub fn shard_delta(core: &LedgerCore, changes: &LedgerChanges) -> ShardDelta {
    let mut freezes = Changes::default();
    for key in &changes.freezes {
        match core.freeze(key) {
            Some(f) => freezes.upserts.push(freeze(f)),
            None => freezes.removed.push(key.as_str().into()),
        }
    }
    for branch in &changes.holds {
        match (core.tcc().hold(branch), core.tcc().branch(branch)) {
            (Some(action @ LegAction::Debit { .. }), _) => {
                freezes.upserts.push(hold(branch, action))
            }
            (None, Some(LegAction::Debit { .. })) => freezes.removed.push(hold_key(branch).into()),
            _ => {}
        }
    }
    ShardDelta {
        shard: core.shard().0,
        accounts: Changes {
            upserts: changes
                .accounts
                .iter()
                .filter_map(|id| core.account(*id).map(account))
                .collect(),
            removed: Vec::new(),
        },
        vouchers: Changes {
            upserts: core.vouchers()[changes.vouchers_from..]
                .iter()
                .map(voucher)
                .collect(),
            removed: Vec::new(),
        },
        journal: Changes {
            upserts: core.journal()[changes.journal_from..]
                .iter()
                .map(journal_entry)
                .collect(),
            removed: Vec::new(),
        },
        freezes,
    }
}

fn voucher(v: &ledger::Voucher) -> inv::VoucherRecord {
    inv::VoucherRecord {
        voucher: v.id.to_compact_string(),
        request: v.request.0.clone(),
        currency: paylab_system::money::CURRENCY.to_compact_string(),
        legs: v
            .legs
            .iter()
            .map(|l| inv::Leg {
                account: l.account.0,
                side: side(l.side),
                amount: l.amount.value(),
            })
            .collect(),
        xid: v.xid.as_ref().map(|x| x.0.clone()),
        step: v.step.map(|s| inv::MovementStep {
            index: s.index,
            undo: s.undo,
        }),
    }
}

fn trade_status(s: trade::TradeStatus) -> inv::TradeStatus {
    match s {
        trade::TradeStatus::WaitPay => inv::TradeStatus::WaitPay,
        trade::TradeStatus::Paying => inv::TradeStatus::Paying,
        trade::TradeStatus::Paid => inv::TradeStatus::Paid,
        trade::TradeStatus::PartiallyRefunded => inv::TradeStatus::PartiallyRefunded,
        trade::TradeStatus::Refunded => inv::TradeStatus::Refunded,
        trade::TradeStatus::Closed => inv::TradeStatus::Closed,
    }
}

fn attempt(s: &trade::AttemptStatus) -> inv::AttemptStatus {
    match s {
        trade::AttemptStatus::Pending => inv::AttemptStatus::Pending,
        trade::AttemptStatus::Succeeded => inv::AttemptStatus::Succeeded,
        trade::AttemptStatus::Failed(_) => inv::AttemptStatus::Failed,
    }
}

/// Every trade of one trade shard.
pub fn trades(core: &TradeCore) -> Vec<inv::TradeState> {
    core.trades().map(trade).collect()
}

/// The trades of one trade shard with a pay or a refund still pending: all that liveness
/// reads of them, without converting the (many) trades at rest on every drain poll.
pub fn trades_in_flight(core: &TradeCore) -> Vec<inv::TradeState> {
    core.trades_in_flight().map(trade).collect()
}

/// One trade in the checkers' vocabulary.
pub fn trade(t: &trade::Trade) -> inv::TradeState {
    inv::TradeState {
        trade: t.id.to_compact_string(),
        merchant: t.merchant.0,
        out_trade_no: t.out_trade_no.as_str().into(),
        amount: t.amount.value(),
        paid: t.paid,
        refunded: t.refunded,
        refunding: t.refunding,
        status: trade_status(t.status),
        status_history: t.history.iter().copied().map(trade_status).collect(),
        pays: t
            .pays
            .iter()
            .map(|p| inv::PayAttempt {
                key: p.key.0.clone(),
                xid: p.xid.0.clone(),
                payer: p.payer.0,
                status: attempt(&p.status),
            })
            .collect(),
        refunds: t
            .refunds
            .iter()
            .map(|r| inv::RefundState {
                out_request_no: r.out_request_no.to_compact_string(),
                xid: r.xid.0.clone(),
                amount: r.amount.value(),
                status: attempt(&r.status),
            })
            .collect(),
    }
}

fn activity_status(s: Phase) -> inv::Phase {
    match s {
        Phase::Running => inv::Phase::Running,
        Phase::Committing => inv::Phase::Committing,
        Phase::Aborting => inv::Phase::Aborting,
        Phase::Committed => inv::Phase::Committed,
        Phase::Aborted => inv::Phase::Aborted,
        Phase::Heuristic => inv::Phase::Heuristic,
    }
}

/// Every activity of one payment node, with the business context of its order.
pub fn activities(node: &str, view: &PaymentView) -> Vec<inv::ActivityState> {
    let orders: BTreeMap<&str, &Order> = view.orders.iter().map(|o| (o.xid.as_str(), o)).collect();
    view.activities
        .iter()
        .map(|a| {
            let order = orders.get(a.xid.as_str());
            let kind = match order.map(|o| o.kind) {
                Some(OrderKind::Refund { .. }) => inv::ActivityKind::Refund,
                _ => inv::ActivityKind::Pay,
            };
            inv::ActivityState {
                xid: a.xid.0.clone(),
                node: node.to_compact_string(),
                kind,
                key: order.map(|o| o.key.0.clone()).unwrap_or_default(),
                trade: order
                    .map(|o| o.trade.to_compact_string())
                    .unwrap_or_default(),
                status: activity_status(a.status),
                status_history: a.history.iter().copied().map(activity_status).collect(),
                legs: a
                    .branches
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        let (account, side) = match b.action {
                            LegAction::Debit { account, .. } => (account, inv::Side::Debit),
                            LegAction::Credit { account, .. } => (account, inv::Side::Credit),
                        };
                        inv::MovementLeg {
                            branch: i as u32,
                            shard: b.shard.0,
                            account: account.0,
                            side,
                            amount: b.action.amount().value(),
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

// ---- The message layer -------------------------------------------------------------------

fn event_kind(k: trade::TradeEventKind) -> inv::EventKind {
    match k {
        trade::TradeEventKind::Paid => inv::EventKind::Paid,
        trade::TradeEventKind::Refunded => inv::EventKind::Refunded,
        trade::TradeEventKind::Closed => inv::EventKind::Closed,
    }
}

fn event_state(e: &trade::TradeEvent) -> inv::EventState {
    inv::EventState {
        id: e.id().to_string(),
        trade: e.trade.to_string(),
        version: e.version,
        kind: event_kind(e.kind),
        status: trade_status(e.status),
        merchant: e.merchant.0,
        payer: e.payer.map(|p| p.0),
        paid: e.paid,
        refunded: e.refunded,
        refund: e.refund.as_ref().map(|(no, a)| (no.clone(), a.value())),
    }
}

fn group<'a>(out: &'a mut inv::MessageSnapshot, name: &str) -> &'a mut inv::GroupState {
    out.groups.entry(name.to_string()).or_default()
}

/// The events a trade shard committed.
pub fn trade_events(core: &TradeCore, out: &mut inv::MessageSnapshot) {
    for (id, e) in core.events() {
        out.committed.insert(id.to_string(), event_state(e));
    }
}

/// What the broker published on the trade-events topic, and every group's dead letters.
/// (Each consumer's own reading names its group; the broker adds the dead letters of every
/// group that subscribed.)
pub fn broker(core: &BrokerCore, out: &mut inv::MessageSnapshot) {
    for q in 0..trade::TRADE_EVENTS_QUEUES {
        for m in core.queue(trade::TRADE_EVENTS_TOPIC, q).unwrap_or(&[]) {
            let id = match trade::TradeEvent::decode(&m.payload) {
                Ok(e) => {
                    let id = e.id().to_string();
                    // Evidence only for events no trade shard committed (the trade shards
                    // are read before the broker): a committed one is in `committed`.
                    if !out.committed.contains_key(&id) {
                        out.seen
                            .entry(id.clone())
                            .or_insert_with(|| event_state(&e));
                    }
                    id
                }
                Err(_) => format!("undecodable message {}", m.id),
            };
            *out.published.entry(id).or_default() += 1;
        }
    }
    for &half in core.discarded_halves() {
        let id = core
            .half(half)
            .and_then(|h| trade::TradeEvent::decode(&h.payload).ok())
            .map_or_else(|| half.to_string(), |e| e.id().to_string());
        *out.discarded.entry(id).or_default() += 1;
    }
    // Only the groups of trade events: another topic's group (the `outbox` strategy's credits)
    // is judged by what its messages do, not by message completeness.
    let names: Vec<String> = core
        .groups()
        .filter(|(_, g)| g.topics.contains(trade::TRADE_EVENTS_TOPIC))
        .map(|(name, _)| name.to_string())
        .collect();
    for name in &names {
        let ids: Vec<String> = core
            .dead_letters(name)
            .iter()
            .map(|d| {
                core.message(&d.message)
                    .and_then(|m| trade::TradeEvent::decode(&m.payload).ok())
                    .map_or_else(|| d.message.to_string(), |e| e.id().to_string())
            })
            .collect();
        group(out, name).dead_lettered.extend(ids);
    }
}

/// A replica's dedup table with its typed event ids as the observation's strings.
fn ids(consumed: &BTreeMap<paylab_system::EventId, u32>) -> BTreeMap<String, u32> {
    consumed.iter().map(|(e, n)| (e.to_string(), *n)).collect()
}

/// The consumer-record replica: its dedup table and its rows.
pub fn consumer_records(core: &ConsumerRecordsCore, out: &mut inv::MessageSnapshot) {
    group(out, ConsumerRecordsCore::GROUP).consumed = ids(core.consumed());
    out.consumer_records = core
        .entries()
        .iter()
        .map(|e| inv::ConsumptionRecord {
            event: e.event.to_string(),
            trade: e.trade.to_string(),
            buyer: e.buyer.0,
            merchant: e.merchant.0,
            amount: e.amount.value(),
            kind: event_kind(e.kind),
        })
        .collect();
}

fn merchant_row(r: &replica::MerchantRow) -> inv::MerchantRow {
    inv::MerchantRow {
        trade: r.trade.to_string(),
        merchant: r.merchant.0,
        status: trade_status(r.status),
        paid: r.paid,
        refunded: r.refunded,
        version: r.version,
    }
}

/// The merchant-query replica: its dedup table, its rows and every write in order.
pub fn merchant_query(core: &MerchantQueryCore, out: &mut inv::MessageSnapshot) {
    group(out, MerchantQueryCore::GROUP).consumed = ids(core.consumed());
    out.merchant_rows = core
        .rows()
        .values()
        .map(|r| (r.trade.to_string(), merchant_row(r)))
        .collect();
    out.merchant_history = core.history().iter().map(merchant_row).collect();
}

/// The notifier: one notification per event it consumed.
pub fn notifications(core: &NotifyCore, out: &mut inv::MessageSnapshot) {
    let mut consumed = BTreeMap::new();
    for n in core.notifications() {
        consumed.insert(n.event.to_string(), 1);
        out.notifications
            .insert(n.event.to_string(), notification(n));
    }
    group(out, notify::node::GROUP).consumed = consumed;
}

/// The notifications with attempts still to make: all that liveness reads of the notifier.
pub fn pending_notifications(core: &NotifyCore, out: &mut inv::MessageSnapshot) {
    for n in core.pending_notifications() {
        out.notifications
            .insert(n.event.to_string(), notification(n));
    }
}

fn notification(n: &Notification) -> inv::NotificationState {
    let status = match n.state {
        NotifyState::Pending { .. } => inv::NotificationStatus::Pending,
        NotifyState::Acknowledged { .. } => inv::NotificationStatus::Acknowledged,
        NotifyState::Exhausted => inv::NotificationStatus::Exhausted,
    };
    inv::NotificationState {
        event: n.event.to_string(),
        status,
        attempts: n.attempts,
        max_attempts: MAX_ATTEMPTS,
    }
}

/// The callbacks the merchant endpoint acknowledged.
pub fn callbacks(received: &[Callback], out: &mut inv::MessageSnapshot) {
    out.callbacks = received
        .iter()
        .map(|c| inv::CallbackState {
            event: c.event.to_string(),
            trade: c.trade.to_string(),
            notified: trade_status(c.notified),
            queried: c.queried.map(trade_status),
        })
        .collect();
}

// ---- Work in flight, for liveness --------------------------------------------------------

/// The orders of one payment node, ended or not.
pub fn orders(node: &str, view: &PaymentView) -> Vec<inv::OrderState> {
    view.orders
        .iter()
        .map(|o| inv::OrderState {
            node: node.to_string(),
            key: o.key.to_string(),
            xid: o.xid.to_string(),
            trade: o.trade.to_string(),
            ended: o.outcome.is_some(),
        })
        .collect()
}

/// The outbox rows (mode 1) a trade shard has not had acknowledged.
pub fn unsent(node: &str, core: &TradeCore) -> Vec<inv::UnsentRow> {
    core.unsent()
        .map(|e| inv::UnsentRow {
            node: node.to_string(),
            event: e.id().to_string(),
        })
        .collect()
}

/// The broker's work in flight: undecided halves, scheduled redeliveries, and every queue a
/// clustering group has not committed to its end.
pub fn broker_progress(core: &BrokerCore, out: &mut inv::Progress) {
    out.halves.extend(
        core.halves()
            .iter()
            .filter(|h| h.state == HalfState::Pending)
            .map(|h| inv::HalfPending {
                half: h.id.to_string(),
                topic: h.topic.clone(),
            }),
    );
    for (group, _) in core.groups() {
        out.retries.extend(
            core.retry_queue(group)
                .filter_map(|(id, state)| match state {
                    RetryState::Scheduled { attempt, .. } => Some(inv::RetryScheduled {
                        message: id.to_string(),
                        group: group.to_string(),
                        attempt: *attempt,
                    }),
                    _ => None,
                }),
        );
    }
    out.lag
        .extend(core.lag().into_iter().map(|l| inv::QueueLag {
            group: l.group,
            topic: l.topic,
            queue: l.queue,
            committed: l.committed,
            end: l.end,
        }));
}

/// The gateway's channel orders.
/// The gateway's channel orders: every one at rest; only the unfinished ones while draining
/// (liveness reads no others, and the drain polls often).
pub fn channel_orders(
    core: &paylab_system::clearing::ClearingCore,
    unfinished_only: bool,
    out: &mut inv::ClearingSnapshot,
) {
    use paylab_system::clearing::{FailCause, OrderKind, OrderStatus};
    let status = |s: OrderStatus| match s {
        OrderStatus::Init => inv::ChannelStatus::Init,
        OrderStatus::Sent => inv::ChannelStatus::Sent,
        OrderStatus::Success => inv::ChannelStatus::Success,
        OrderStatus::Fail => inv::ChannelStatus::Fail,
        OrderStatus::Unknown => inv::ChannelStatus::Unknown,
    };
    let orders = core
        .orders
        .values()
        .filter(|o| !(unfinished_only && o.status.is_final() && o.settled));
    out.orders.extend(orders.map(|o| inv::ChannelOrderState {
        instr: o.instr.to_string(),
        key: o.key.clone(),
        client: o.client,
        kind: match o.kind {
            OrderKind::Deposit => inv::FundKind::Deposit,
            OrderKind::Withdrawal => inv::FundKind::Withdrawal,
            OrderKind::RefundToCard => inv::FundKind::RefundToCard,
            OrderKind::Transfer { to } => inv::FundKind::Transfer { to },
        },
        account: o.account.0,
        bank: o.bank,
        amount: o.amount.value(),
        status: status(o.status),
        history: o.history.iter().map(|s| status(*s)).collect(),
        held: o.held,
        settled: o.settled,
        corrected: o.corrected,
        fail: o.fail.map(|f| match f {
            FailCause::Bank(reason) => format!("bank:{reason:?}"),
            FailCause::Hold(code) => format!("hold:{code}"),
            FailCause::TimedOut => "timed-out".to_string(),
        }),
    }));
}

/// One bank's books.
/// One bank's books: whole at rest; while draining only what liveness reads (the instructions
/// PROCESSING, the last date money moved, the transfers undelivered).
pub fn bank_books(core: &paylab_system::bank::BankCore, progress_only: bool) -> inv::BankState {
    use paylab_system::bank::{Direction, InstrStatus};
    let read = |s: &&paylab_system::bank::InstrState| {
        !progress_only || s.status == InstrStatus::Processing
    };
    let instructions = core
        .instructions
        .values()
        .filter(read)
        .map(|s| inv::BankInstruction {
            instr: s.instruction.id.to_string(),
            debit: s.instruction.direction.into_reserve(),
            card: s.instruction.card,
            amount: s.instruction.amount.value(),
            status: match s.status {
                InstrStatus::Processing => inv::BankStatus::Processing,
                InstrStatus::Success => inv::BankStatus::Success,
                InstrStatus::Fail(_) => inv::BankStatus::Fail,
            },
            date: s.date,
        });
    let transfers = |direction: Direction| -> rust_decimal::Decimal {
        let done = core
            .instructions
            .values()
            .filter(|s| s.instruction.direction == direction && s.status == InstrStatus::Success);
        done.map(|s| s.instruction.amount.value()).sum()
    };
    let lines = core.lines.iter().filter(|_| !progress_only);
    let lines = lines.map(|l| inv::StatementLineState {
        date: l.date,
        instr: l.instr.to_string(),
        debit: l.direction.into_reserve(),
        amount: l.amount.value(),
    });
    inv::BankState {
        bank: core.bank,
        reserve: core.reserve,
        cards: core.cards.values().map(|c| c.balance).sum(),
        openings: core.cards.values().map(|c| c.opening).sum(),
        instructions: instructions.collect(),
        lines: lines.collect(),
        last_date: core.instructions.values().filter_map(|s| s.date).max(),
        sent: transfers(Direction::TransferOut),
        received: transfers(Direction::TransferIn),
        undelivered: core.undelivered.iter().map(|i| i.to_string()).collect(),
    }
}

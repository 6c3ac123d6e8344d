//! Builders for hand-made observations, shared by the checkers' unit tests.
//!
//! [`valid`] is one small but complete run that satisfies every invariant, so each failing test
//! can break exactly one thing in it and know that any violation comes from that change.

use crate::{
    AccountState, ActivityKind, ActivityState, AttemptStatus, CallbackState, ConsumptionRecord,
    EventKind, EventState, FenceRow, FenceState, FreezeState, GroupState, Invariant, JournalEntry,
    Leg, MerchantRow, MessageSnapshot, MovementLeg, NotificationState, NotificationStatus,
    Observation, OpKind, Operation, Outcome, PayAttempt, Phase, RefundState, ShardSnapshot, Side,
    Subject, TradeState, TradeStatus, Violation, VoucherRecord,
};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn account(
    account: u64,
    subject: Subject,
    available: Decimal,
    frozen: Decimal,
) -> AccountState {
    AccountState {
        account,
        subject,
        available,
        frozen,
    }
}

pub fn leg(account: u64, side: Side, amount: Decimal) -> Leg {
    Leg {
        account,
        side,
        amount,
    }
}

/// A two-leg CNY voucher moving `amount` from `from` (debited) to `to` (credited).
pub fn voucher(id: &str, request: &str, from: u64, to: u64, amount: Decimal) -> VoucherRecord {
    VoucherRecord {
        voucher: id.into(),
        request: request.into(),
        currency: "CNY".into(),
        legs: vec![
            leg(from, Side::Debit, amount),
            leg(to, Side::Credit, amount),
        ],
        xid: None,
        step: None,
    }
}

/// The voucher that branch `branch` of activity `xid` posts when it is confirmed.
pub fn branch_voucher(
    id: &str,
    xid: &str,
    branch: u32,
    from: u64,
    to: u64,
    amount: Decimal,
) -> VoucherRecord {
    VoucherRecord {
        xid: Some(xid.into()),
        ..voucher(id, &format!("tcc:{xid}:{branch}"), from, to, amount)
    }
}

/// The journal entries that applying `v` writes, numbered from `first_seq`.
pub fn entries(v: &VoucherRecord, first_seq: u64) -> Vec<JournalEntry> {
    (first_seq..)
        .zip(&v.legs)
        .map(|(seq, l)| JournalEntry {
            seq,
            voucher: v.voucher.clone(),
            account: l.account,
            side: l.side,
            amount: l.amount,
        })
        .collect()
}

/// A reservation held by no activity.
pub fn freeze(key: &str, account: u64, amount: Decimal) -> FreezeState {
    FreezeState {
        key: key.into(),
        account,
        amount,
        xid: None,
    }
}

/// A reservation held by activity `xid`.
pub fn reservation(key: &str, account: u64, amount: Decimal, xid: &str) -> FreezeState {
    FreezeState {
        xid: Some(xid.into()),
        ..freeze(key, account, amount)
    }
}

pub fn fence(xid: &str, branch: u32, state: FenceState) -> FenceRow {
    FenceRow {
        xid: xid.into(),
        branch,
        state,
    }
}

/// An operation of client 1, sent once; a definite outcome is also its only reply.
pub fn op(request: &str, kind: OpKind, amount: Option<Decimal>, outcome: Outcome) -> Operation {
    let replies = match outcome {
        Outcome::Unknown => Vec::new(),
        _ => vec![outcome.clone()],
    };
    Operation {
        client: 1,
        request: request.into(),
        kind,
        amount,
        invoke_ms: 10,
        complete_ms: 20,
        attempts: 1,
        outcome,
        trade: None,
        replies,
        attack: None,
    }
}

/// An operation about trade `trade`.
pub fn trade_op(
    request: &str,
    kind: OpKind,
    trade: &str,
    amount: Decimal,
    outcome: Outcome,
) -> Operation {
    Operation {
        trade: Some(trade.into()),
        ..op(request, kind, Some(amount), outcome)
    }
}

/// One leg of an activity's movement.
pub fn movement(branch: u32, shard: u32, account: u64, side: Side, amount: Decimal) -> MovementLeg {
    MovementLeg {
        branch,
        shard,
        account,
        side,
        amount,
    }
}

/// An activity of node "pay-0" whose status history is `history` (the last is its status).
pub fn activity(
    xid: &str,
    kind: ActivityKind,
    key: &str,
    trade: &str,
    history: &[Phase],
    legs: Vec<MovementLeg>,
) -> ActivityState {
    ActivityState {
        xid: xid.into(),
        node: "pay-0".into(),
        kind,
        key: key.into(),
        trade: trade.into(),
        status: *history.last().unwrap_or(&Phase::Running),
        status_history: history.to_vec(),
        legs,
    }
}

/// The two legs of a payment or refund of `amount`: branch 0 debits `from` on `from_shard`,
/// branch 1 credits `to` on `to_shard`.
pub fn movement_legs(
    (from_shard, from): (u32, u64),
    (to_shard, to): (u32, u64),
    amount: Decimal,
) -> Vec<MovementLeg> {
    vec![
        movement(0, from_shard, from, Side::Debit, amount),
        movement(1, to_shard, to, Side::Credit, amount),
    ]
}

/// An unpaid trade of merchant 12 whose status history is `history`.
pub fn trade(id: &str, out_trade_no: &str, amount: Decimal, history: &[TradeStatus]) -> TradeState {
    TradeState {
        trade: id.into(),
        merchant: 12,
        out_trade_no: out_trade_no.into(),
        amount,
        paid: dec!(0),
        refunded: dec!(0),
        refunding: dec!(0),
        status: *history.last().unwrap_or(&TradeStatus::WaitPay),
        status_history: history.to_vec(),
        pays: Vec::new(),
        refunds: Vec::new(),
    }
}

pub fn pay_attempt(key: &str, xid: &str, payer: u64, status: AttemptStatus) -> PayAttempt {
    PayAttempt {
        key: key.into(),
        xid: xid.into(),
        payer,
        status,
    }
}

pub fn refund(
    out_request_no: &str,
    xid: &str,
    amount: Decimal,
    status: AttemptStatus,
) -> RefundState {
    RefundState {
        out_request_no: out_request_no.into(),
        xid: xid.into(),
        amount,
        status,
    }
}

/// A shard whose journal is exactly the application of `vouchers`, in order.
fn shard(
    shard: u32,
    accounts: Vec<AccountState>,
    freezes: Vec<FreezeState>,
    vouchers: Vec<VoucherRecord>,
    fences: Vec<FenceRow>,
) -> ShardSnapshot {
    let mut journal = Vec::new();
    for v in &vouchers {
        let next = journal.len() as u64 + 1;
        journal.extend(entries(v, next));
    }
    ShardSnapshot {
        shard,
        accounts,
        freezes,
        vouchers,
        journal,
        prepared: Vec::new(),
        fences,
    }
}

/// Shard 0: world 1 funds user 2 with 100; user 2 pays user 3 30, of which the platform holds
/// 10 (a hold of its own, outside any activity). Branches of the cross-shard activities pass
/// through transit 5: user 2 pays trade T0-1 20 (x0.1) and is refunded 5 (x0.2); the sweep of
/// shard 1 pays 5 out to the world. The failed payment x0.3 froze and released 8 (rolled back).
/// New voucher ids start at 5, leaving v0-3 and v0-4 to the tests that add vouchers.
fn shard_0() -> ShardSnapshot {
    shard(
        0,
        vec![
            account(1, Subject::World, dec!(-95), dec!(0)),
            account(2, Subject::User, dec!(55), dec!(0)),
            account(3, Subject::User, dec!(20), dec!(10)),
            account(5, Subject::Transit, dec!(10), dec!(0)),
        ],
        vec![freeze("sys:hold-1", 3, dec!(10))],
        vec![
            voucher("v0-1", "c1-1", 1, 2, dec!(100)),
            voucher("v0-2", "c1-2", 2, 3, dec!(30)),
            branch_voucher("v0-5", "x0.1", 0, 2, 5, dec!(20)),
            branch_voucher("v0-6", "x0.2", 1, 5, 2, dec!(5)),
            voucher("v0-7", "sys:sweep-1", 5, 1, dec!(5)),
        ],
        vec![
            fence("x0.1", 0, FenceState::Committed),
            fence("x0.2", 1, FenceState::Committed),
            fence("x0.3", 0, FenceState::RolledBack),
        ],
    )
}

/// Shard 1: world 11 funds merchant 12 with 50; the platform sweeps 5 of it into transit 13,
/// bound for the world on shard 0. Merchant 12 receives T0-1's 20 (x0.1) and refunds 5 of it
/// (x0.2), both through transit 13. The Try of x0.3 never arrived here: its Cancel found no
/// row and left a Suspended fence (empty rollback).
fn shard_1() -> ShardSnapshot {
    shard(
        1,
        vec![
            account(11, Subject::World, dec!(-50), dec!(0)),
            account(12, Subject::Merchant, dec!(60), dec!(0)),
            account(13, Subject::Transit, dec!(-10), dec!(0)),
        ],
        vec![],
        vec![
            voucher("v1-1", "c2-1", 11, 12, dec!(50)),
            voucher("v1-2", "sys:sweep-1", 12, 13, dec!(5)),
            branch_voucher("v1-5", "x0.1", 1, 13, 12, dec!(20)),
            branch_voucher("v1-6", "x0.2", 0, 12, 13, dec!(5)),
        ],
        vec![
            fence("x0.1", 1, FenceState::Committed),
            fence("x0.2", 0, FenceState::Committed),
            fence("x0.3", 1, FenceState::Suspended),
        ],
    )
}

/// T0-1: paid 20 by user 2 (pay key c1-p1), then refunded 5 (c1-r1). T0-2: closed unpaid.
/// T0-3: its payment (c1-p2) failed and was rolled back, so it waits for payment again.
fn trades() -> Vec<TradeState> {
    use AttemptStatus::{Failed, Succeeded};
    use TradeStatus::*;
    let mut paid = trade(
        "T0-1",
        "o-1",
        dec!(20),
        &[WaitPay, Paying, Paid, PartiallyRefunded],
    );
    paid.paid = dec!(20);
    paid.refunded = dec!(5);
    paid.pays = vec![pay_attempt("c1-p1", "x0.1", 2, Succeeded)];
    paid.refunds = vec![refund("c1-r1", "x0.2", dec!(5), Succeeded)];
    let closed = trade("T0-2", "o-2", dec!(30), &[WaitPay, Closed]);
    let mut failed = trade("T0-3", "o-3", dec!(8), &[WaitPay, Paying, WaitPay]);
    failed.pays = vec![pay_attempt("c1-p2", "x0.3", 2, Failed)];
    vec![paid, closed, failed]
}

/// The activities behind the trades: two committed, one rolled back.
fn activities() -> Vec<ActivityState> {
    use ActivityKind::{Pay, Refund};
    use Phase::*;
    vec![
        activity(
            "x0.1",
            Pay,
            "c1-p1",
            "T0-1",
            &[Running, Committing, Committed],
            movement_legs((0, 2), (1, 12), dec!(20)),
        ),
        activity(
            "x0.2",
            Refund,
            "c1-r1",
            "T0-1",
            &[Running, Committing, Committed],
            movement_legs((1, 12), (0, 2), dec!(5)),
        ),
        activity(
            "x0.3",
            Pay,
            "c1-p2",
            "T0-3",
            &[Running, Aborting, Aborted],
            movement_legs((0, 2), (1, 12), dec!(8)),
        ),
    ]
}

/// A run that satisfies every invariant, at rest, with every outcome represented in its history.
pub fn valid() -> Observation {
    let mut pay = trade_op("c1-p1", OpKind::Pay, "T0-1", dec!(20), Outcome::Ok);
    // The client asked twice under the same pay key and got the same answer both times.
    pay.attempts = 2;
    pay.replies = vec![Outcome::Ok, Outcome::Ok];
    Observation {
        at_ms: 1_000,
        shards: vec![shard_0(), shard_1()],
        trades: trades(),
        activities: activities(),
        history: [
            op("c1-0", OpKind::OpenAccount, None, Outcome::Ok),
            op("c1-1", OpKind::Fund, Some(dec!(100)), Outcome::Ok),
            op("c1-2", OpKind::Transfer, Some(dec!(30)), Outcome::Ok),
            op("c2-1", OpKind::Fund, Some(dec!(50)), Outcome::Ok),
            op(
                "c1-3",
                OpKind::Transfer,
                Some(dec!(500)),
                Outcome::fail("insufficient-funds", "acct-3 has 50.00, 500.00 needed"),
            ),
            op("c2-2", OpKind::Transfer, Some(dec!(10)), Outcome::Unknown),
            trade_op("c2-t1", OpKind::CreateTrade, "T0-1", dec!(20), Outcome::Ok),
            trade_op("c2-t2", OpKind::CreateTrade, "T0-2", dec!(30), Outcome::Ok),
            trade_op("c2-t3", OpKind::CreateTrade, "T0-3", dec!(8), Outcome::Ok),
            pay,
            trade_op("c1-r1", OpKind::Refund, "T0-1", dec!(5), Outcome::Ok),
            trade_op(
                "c1-p2",
                OpKind::Pay,
                "T0-3",
                dec!(8),
                Outcome::fail("aborted", "a branch refused its Try"),
            ),
        ]
        .into_iter()
        .map(Arc::new)
        .collect(),
        messages: crate::observation::MessageSnapshot::default(),
        progress: crate::observation::Progress::default(),
        owners: None,
        clearing: crate::ClearingSnapshot::default(),
        strategy: crate::StrategySnapshot::default(),
    }
}

/// A trade event of merchant 12 with no payer, nothing paid or refunded and no refund: the
/// tests and [`messages_valid`] fill in what their kind needs.
pub fn event(
    id: &str,
    trade: &str,
    version: u32,
    kind: EventKind,
    status: TradeStatus,
) -> EventState {
    EventState {
        id: id.to_string(),
        trade: trade.to_string(),
        version,
        kind,
        status,
        merchant: 12,
        payer: None,
        paid: dec!(0),
        refunded: dec!(0),
        refund: None,
    }
}

/// The consumer-record row that event `e` makes: its payer as buyer, and the trade's paid
/// amount (Paid) or the refund's amount (Refunded).
pub fn record(e: &EventState) -> ConsumptionRecord {
    let amount = match e.kind {
        EventKind::Refunded => e.refund.as_ref().map_or(dec!(0), |r| r.1),
        _ => e.paid,
    };
    ConsumptionRecord {
        event: e.id.clone(),
        trade: e.trade.clone(),
        buyer: e.payer.unwrap_or(0),
        merchant: e.merchant,
        amount,
        kind: e.kind,
    }
}

/// The merchant-query row that event `e` projects to.
pub fn merchant_row(e: &EventState) -> MerchantRow {
    MerchantRow {
        trade: e.trade.clone(),
        merchant: e.merchant,
        status: e.status,
        paid: e.paid,
        refunded: e.refunded,
        version: e.version,
    }
}

/// A notification of event `event` on Alipay's schedule of 8 attempts.
pub fn notification(event: &str, status: NotificationStatus, attempts: u32) -> NotificationState {
    NotificationState {
        event: event.to_string(),
        status,
        attempts,
        max_attempts: 8,
    }
}

pub fn callback(
    event: &str,
    trade: &str,
    notified: TradeStatus,
    queried: Option<TradeStatus>,
) -> CallbackState {
    CallbackState {
        event: event.to_string(),
        trade: trade.to_string(),
        notified,
        queried,
    }
}

/// Id of T0-1's payment event in [`messages_valid`].
pub const PAID: &str = "T0-1:v1:paid";
/// Id of T0-1's refund event (c1-r1) in [`messages_valid`].
pub const REFUNDED: &str = "T0-1:v2:refunded:c1-r1";
/// Id of T0-2's close event in [`messages_valid`].
pub const CLOSED: &str = "T0-2:v1:closed";

/// The committed events of [`valid`]'s trades: T0-1 paid 20 by user 2 (v1), then refunded 5
/// by c1-r1 (v2); T0-2 closed unpaid (v1). T0-3 is unpaid and has none.
pub fn events() -> Vec<EventState> {
    use TradeStatus::*;
    let mut paid = event(PAID, "T0-1", 1, EventKind::Paid, Paid);
    paid.payer = Some(2);
    paid.paid = dec!(20);
    let mut refunded = event(REFUNDED, "T0-1", 2, EventKind::Refunded, PartiallyRefunded);
    refunded.payer = Some(2);
    refunded.paid = dec!(20);
    refunded.refunded = dec!(5);
    refunded.refund = Some(("c1-r1".to_string(), dec!(5)));
    let closed = event(CLOSED, "T0-2", 1, EventKind::Closed, Closed);
    vec![paid, refunded, closed]
}

/// A message layer at rest that satisfies every message invariant, for [`valid`]'s trades.
/// The broker delivered the payment event twice (the groups deduplicated it). Three groups
/// consumed every event. The consumer-record replica has one row per payment or refund; the
/// merchant-query replica holds each trade's latest projection, written in version order.
/// The payment and refund notifications were acknowledged at the first and third attempts;
/// the merchant never answered the close notification, which exhausted its schedule. The
/// payment's callback was queried after the refund, so the query answers a later status.
pub fn messages_valid() -> MessageSnapshot {
    use NotificationStatus::{Acknowledged, Exhausted};
    use TradeStatus::*;
    let events = events();
    let committed: BTreeMap<String, EventState> =
        events.iter().map(|e| (e.id.clone(), e.clone())).collect();
    let published = [(PAID, 2), (REFUNDED, 1), (CLOSED, 1)]
        .into_iter()
        .map(|(id, n)| (id.to_string(), n))
        .collect();
    let consumed: BTreeMap<String, u32> = events.iter().map(|e| (e.id.clone(), 1)).collect();
    let groups = ["consumer-records", "merchant-query", "notify"]
        .into_iter()
        .map(|name| {
            let group = GroupState {
                consumed: consumed.clone(),
                dead_lettered: Vec::new(),
            };
            (name.to_string(), group)
        })
        .collect();
    let (paid, refunded, closed) = (&events[0], &events[1], &events[2]);
    let merchant_rows = [merchant_row(refunded), merchant_row(closed)]
        .into_iter()
        .map(|r| (r.trade.clone(), r))
        .collect();
    let notifications = [
        notification(PAID, Acknowledged, 1),
        notification(REFUNDED, Acknowledged, 3),
        notification(CLOSED, Exhausted, 8),
    ]
    .into_iter()
    .map(|n| (n.event.clone(), n))
    .collect();
    MessageSnapshot {
        enabled: true,
        committed,
        published,
        discarded: BTreeMap::new(),
        seen: BTreeMap::new(),
        groups,
        consumer_records: vec![record(paid), record(refunded)],
        merchant_rows,
        merchant_history: vec![
            merchant_row(paid),
            merchant_row(closed),
            merchant_row(refunded),
        ],
        notifications,
        callbacks: vec![
            callback(PAID, "T0-1", Paid, Some(PartiallyRefunded)),
            callback(REFUNDED, "T0-1", PartiallyRefunded, Some(PartiallyRefunded)),
        ],
    }
}

/// [`valid`] with the message layer of [`messages_valid`].
pub fn valid_with_messages() -> Observation {
    Observation {
        messages: messages_valid(),
        ..valid()
    }
}

/// An event of T0-3 that no trade shard committed: its payment was rolled back (x0.3), but
/// the event was delivered anyway. It is in `seen`, for evidence.
pub const ABORTED: &str = "T0-3:v1:paid";

/// The payload of [`ABORTED`].
pub fn aborted_event() -> EventState {
    let mut e = event(ABORTED, "T0-3", 1, EventKind::Paid, TradeStatus::Paid);
    e.payer = Some(2);
    e.paid = dec!(8);
    e
}

/// The single violation in `found`, after checking that it names `invariant`.
pub fn single(mut found: Vec<Violation>, invariant: Invariant) -> Violation {
    assert_eq!(found.len(), 1, "expected one violation, got {found:#?}");
    let only = found.remove(0);
    assert_eq!(only.invariant, invariant);
    only
}

/// A family's batch check of `obs`, after asserting that the incremental checker agrees with
/// the batch checkers on `obs` reached from nothing and from [`valid`]: every failing case of
/// the always-families' unit tests goes through here.
pub fn agreeing(check: fn(&Observation) -> Vec<Violation>, obs: &Observation) -> Vec<Violation> {
    crate::incremental::tests::assert_agrees(std::slice::from_ref(obs));
    crate::incremental::tests::assert_agrees(&[valid(), obs.clone()]);
    check(obs)
}

/// One piece of evidence, or "" when it is missing, so that assertions show what was there.
pub fn ev<'a>(v: &'a Violation, key: &str) -> &'a str {
    v.evidence.get(key).map_or("", String::as_str)
}

mod tests {
    use super::valid;

    #[test]
    fn valid_run_passes_every_checker() {
        let found = crate::check_all(&valid());
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn valid_run_with_messages_passes_every_checker() {
        let found = crate::check_all(&super::valid_with_messages());
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn empty_observation_passes_every_checker() {
        let found = crate::check_all(&crate::Observation::default());
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn check_all_is_always_then_quiescent() {
        // A freeze left at rest is only a quiescent violation; a flipped reply an always one.
        let mut obs = valid();
        obs.shards[0].freezes[0].key = "c1-f1".into();
        std::sync::Arc::make_mut(&mut obs.history[9])
            .replies
            .push(crate::Outcome::Unknown);
        std::sync::Arc::make_mut(&mut obs.history[9])
            .replies
            .push(crate::Outcome::fail("unavailable", "late"));
        let always = crate::check_always(&obs);
        let quiescent = crate::check_quiescent(&obs);
        assert_eq!(always.len(), 1, "{always:#?}");
        assert_eq!(always[0].invariant, crate::Invariant::Idempotency);
        assert_eq!(quiescent.len(), 1, "{quiescent:#?}");
        assert_eq!(quiescent[0].invariant, crate::Invariant::ReservationRelease);
        assert_eq!(crate::check_all(&obs), [always, quiescent].concat());
    }
}

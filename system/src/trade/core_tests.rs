//! Unit tests of the trade core: decisions, records, recovery, events and outbox rows.

use super::*;
use crate::bugs::Bug;
use crate::refusal::{Refusal, RefusalCode};

const SHARD: TradeShardId = TradeShardId(3);
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
    TradeId {
        shard: SHARD.0,
        seq,
    }
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
        by_card: false,
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
        outcome: outcome.map_err(|detail| aborted(&detail)),
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
        outcome: outcome.map_err(|detail| aborted(&detail)),
    }
}

/// The refusal a payment node reports when its movement aborted (the code the tests tell).
fn aborted(detail: &str) -> Refusal {
    Refusal::new(RefusalCode::Aborted, detail)
}

/// The answer to a begin of a key already pinned to a failure with `reason` (by the trade
/// itself: a tombstone of an end that never began).
fn failed(reason: &str) -> Outcome {
    failed_with(RefusalCode::Invalid, reason)
}

/// The answer to a begin of a key the trade refused itself, with the refusal's code.
fn failed_with(code: RefusalCode, reason: &str) -> Outcome {
    Ok(TradeReply::Settled(AttemptStatus::Failed(Refusal::new(
        code, reason,
    ))))
}

/// The answer to a begin of a key pinned to the failure a payment node reported.
fn failed_as_told(reason: &str) -> Outcome {
    Ok(TradeReply::Settled(AttemptStatus::Failed(aborted(reason))))
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
        to_card: false,
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
    let refused = failed_with(
        RefusalCode::NotPayable,
        "trade T3-1 cannot be paid in status Paying",
    );
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
        AttemptStatus::Failed(aborted("declined"))
    );
    assert_eq!((trade.paid, trade.payer()), (d(0), None));
    assert_eq!(
        run(&mut c, begin_pay(t, "k1", "x1", PAYER), 0),
        failed_as_told("declined")
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
    assert_eq!(trade.pays[0].key.as_str(), "k9");
    assert_eq!(
        trade.pays[0].status,
        AttemptStatus::Failed(Refusal::new(RefusalCode::Invalid, reason))
    );
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
    let refused = failed_with(
        RefusalCode::NotRefundable,
        "trade T3-1 cannot be refunded in status WaitPay",
    );
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
    let refused = failed_with(
        RefusalCode::RefundExceeds,
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
        AttemptStatus::Failed(aborted("bank said no"))
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
    let refused = failed_with(
        RefusalCode::NotPayable,
        "trade T3-1 cannot be paid in status Closed",
    );
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
        by_card: false,
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
    let ids: Vec<&str> = c.events().keys().map(EventId::as_str).collect();
    assert_eq!(
        ids,
        ["T3-1:v1:paid", "T3-1:v2:refunded:r1", "T3-1:v3:refunded:r2"]
    );
    let last = c.event(&"T3-1:v3:refunded:r2".into()).unwrap();
    assert_eq!(last.status, TradeStatus::Refunded);
    assert_eq!((last.paid, last.refunded), (d(100), d(100)));
    assert_eq!(last.payer, Some(PAYER));
    assert_eq!(c.trade(t).unwrap().version, 3);
    let u = created(&mut c, "o2", 5, 0);
    let close = c.decide_close(u).unwrap();
    let preview = c.event_of(&close).unwrap();
    c.apply(close).unwrap();
    assert_eq!(c.event(&"T3-2:v1:closed".into()), Some(&preview));
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
    let unsent: Vec<EventId> = c.unsent().map(|e| e.id()).collect();
    assert_eq!(unsent, [EventId::from("T3-1:v1:paid")]);
    // Unsent rows are the node's pending work (where a resender exists), not the core's.
    assert!(c.pending().is_empty());
    let r = TradeCore::recover_with_messages(SHARD, Bugs::none(), Some(MessageMode::Outbox), &log);
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
    let r = TradeCore::recover_with_messages(SHARD, Bugs::none(), Some(MessageMode::Outbox), &log);
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

/// A shard (with `bugs` planted) holding trade T3-1 of 100.00, paid and fully refunded by r1.
fn refunded_trade(bugs: Bugs) -> (TradeCore, TradeId, Vec<TradeRecord>) {
    let mut c = TradeCore::new(SHARD, bugs);
    let mut log = Vec::new();
    run_logged(&mut c, create("o1", 10_000), &mut log).unwrap();
    let t = id(1);
    for cmd in [
        begin_pay(t, "k1", "x1", PAYER),
        end_pay(t, "k1", "x1", PAYER, Ok(())),
        begin_refund(t, "r1", "y1", 10_000),
        end_refund(t, "r1", "y1", 10_000, Ok(())),
    ] {
        run_logged(&mut c, cmd, &mut log).unwrap();
    }
    assert_eq!(c.trade(t).unwrap().status, TradeStatus::Refunded);
    (c, t, log)
}

#[test]
fn late_or_repeated_refund_ends_leave_a_refunded_trade_refunded() {
    let (mut c, t, _) = refunded_trade(Bugs::none());
    let ends = [
        end_refund(t, "r1", "y1", 10_000, Ok(())),
        end_refund(t, "r1", "y1", 10_000, Err("late".into())),
        end_refund(t, "r9", "y9", 500, Err("never began".into())),
    ];
    for end in ends {
        assert_eq!(run(&mut c, end, 0), Ok(TradeReply::Ended));
        assert_eq!(c.trade(t).unwrap().status, TradeStatus::Refunded);
    }
    use TradeStatus::*;
    let history = &c.trade(t).unwrap().history;
    assert_eq!(history, &[WaitPay, Paying, Paid, Refunded]);
}

#[test]
fn planted_trade_refunded_reopens_moves_refunded_back_and_records_it() {
    use TradeStatus::*;
    for end in [
        end_refund(id(1), "r1", "y1", 10_000, Ok(())),
        end_refund(id(1), "r9", "y9", 500, Err("never began".into())),
    ] {
        let (mut c, t, mut log) = refunded_trade(Bugs::planted(Bug::TradeRefundedReopens));
        assert_eq!(run_logged(&mut c, end, &mut log), Ok(TradeReply::Ended));
        let trade = c.trade(t).unwrap();
        assert_eq!(trade.status, PartiallyRefunded);
        assert_eq!(
            trade.history,
            [WaitPay, Paying, Paid, Refunded, PartiallyRefunded]
        );
        assert_eq!((trade.refunded, trade.refunding), (d(10_000), d(0)));
        assert_eq!(c.events().len(), 2, "reopening publishes nothing");
        // The log replays to the same illegal history: recovery relaxes the same check.
        let r = TradeCore::recover(SHARD, Bugs::planted(Bug::TradeRefundedReopens), &log);
        assert_eq!(r.trade(t).unwrap().history, trade.history);
    }
}

#[test]
#[should_panic(expected = "illegal trade transition Refunded -> PartiallyRefunded on T3-1")]
fn the_reopening_edge_is_asserted_unless_relaxed() {
    let (c, t, _) = refunded_trade(Bugs::none());
    let mut trade = c.trade(t).unwrap().clone();
    move_to(&mut trade, TradeStatus::PartiallyRefunded, false);
    assert_eq!(
        trade.status,
        TradeStatus::PartiallyRefunded,
        "relaxed, it moves"
    );
    move_to(&mut trade, TradeStatus::Refunded, true);
    move_to(&mut trade, TradeStatus::PartiallyRefunded, true);
}

#[test]
#[should_panic(expected = "refund r1 ended twice")]
fn a_repeated_end_in_the_log_is_asserted_by_a_shard_without_the_bug() {
    let (_, t, mut log) = refunded_trade(Bugs::planted(Bug::TradeRefundedReopens));
    let mut buggy = TradeCore::recover(SHARD, Bugs::planted(Bug::TradeRefundedReopens), &log);
    run_logged(
        &mut buggy,
        end_refund(t, "r1", "y1", 10_000, Ok(())),
        &mut log,
    )
    .unwrap();
    let _ = TradeCore::recover(SHARD, Bugs::none(), &log);
}

#[test]
#[should_panic(expected = "refund bound broken on T3-1")]
fn another_planted_bug_does_not_relax_the_refund_bound() {
    // Two refunds decided before either is applied, with a bug planted that needs only the
    // transitions relaxed: the bound assertion still fires.
    let (mut c, t) = paid_trade(10_000);
    c.bugs = Bugs::planted(Bug::TradeRefundedReopens);
    let first = c.decide(&begin_refund(t, "r1", "y1", 6_000), 0);
    let second = c.decide(&begin_refund(t, "r2", "y2", 6_000), 0);
    for decision in [first, second] {
        if let TradeDecision::Write(record) = decision {
            let _ = c.apply(record);
        }
    }
}

use super::*;
use crate::money::Amount;
use rust_decimal_macros::dec;

const DAY: u64 = 10_000;

fn instr(id: &str, direction: Direction, card: u64, amount: Decimal) -> Instruction {
    Instruction {
        id: InstrId::new(id),
        direction,
        card,
        amount: Amount::new(amount).expect("a valid amount"),
        to_bank: (direction == Direction::TransferOut).then_some(1),
    }
}

/// Decides and applies; returns the status the bank answers.
fn submit(core: &mut BankCore, i: &Instruction, now: u64, late: Option<u64>) -> InstrStatus {
    let draw = Draw {
        late,
        ..Draw::default()
    };
    match core.decide(i, now, draw) {
        Decision::Write(records) => records.into_iter().for_each(|r| core.apply(r)),
        Decision::Reply(reply) => panic!("a new instruction is written, got {reply:?}"),
    }
    match core.query(&i.id) {
        BankReply::Status(s) => s,
        other => panic!("{other:?}"),
    }
}

fn books_balance(core: &BankCore) -> bool {
    let cards: Decimal = core.cards.values().map(|c| c.balance).sum();
    let openings: Decimal = core.cards.values().map(|c| c.opening).sum();
    cards + core.reserve == openings
}

#[test]
fn a_debit_moves_card_money_into_the_reserve_and_writes_its_line() {
    let mut core = BankCore::new(0, DAY);
    let i = instr("i1", Direction::Debit, 40, dec!(12.50));
    assert_eq!(submit(&mut core, &i, 25_000, None), InstrStatus::Success);
    assert_eq!(core.reserve, dec!(12.50));
    assert_eq!(core.cards[&40].balance, CARD_OPENING - dec!(12.50));
    assert_eq!(core.statement(2).lines.len(), 1);
    assert!(core.statement(1).lines.is_empty());
    assert!(books_balance(&core));
}

#[test]
fn a_repeat_answers_where_the_instruction_stands_and_another_body_is_refused() {
    let mut core = BankCore::new(0, DAY);
    let i = instr("i1", Direction::Debit, 40, dec!(5));
    submit(&mut core, &i, 0, None);
    let repeat = core.decide(&i, 10, Draw::default());
    assert_eq!(
        repeat,
        Decision::Reply(Ok(BankReply::Status(InstrStatus::Success)))
    );
    let other = instr("i1", Direction::Debit, 40, dec!(6));
    let refused = core.decide(&other, 10, Draw::default());
    assert_eq!(
        refused,
        Decision::Reply(Err(BankError::Mismatch(InstrId::new("i1"))))
    );
    assert_eq!(core.lines.len(), 1);
}

#[test]
fn definitive_failures_move_nothing() {
    let mut core = BankCore::new(0, DAY);
    let closed = 7;
    assert!(card_is_closed(closed));
    let on_closed = instr("i1", Direction::Debit, closed, dec!(1));
    let status = submit(&mut core, &on_closed, 0, None);
    assert_eq!(status, InstrStatus::Fail(FailReason::CardClosed));
    let too_much = instr("i2", Direction::Debit, 40, CARD_OPENING + dec!(1));
    let status = submit(&mut core, &too_much, 0, None);
    assert_eq!(status, InstrStatus::Fail(FailReason::NoFunds));
    let payout = instr("i3", Direction::Credit, 40, dec!(1));
    let status = submit(&mut core, &payout, 0, None);
    assert_eq!(status, InstrStatus::Fail(FailReason::ReserveShort));
    assert!(core.lines.is_empty() && core.reserve == Decimal::ZERO);
    assert!(books_balance(&core));
}

#[test]
fn a_processing_instruction_is_decided_when_due_on_the_books_of_that_moment() {
    let mut core = BankCore::new(0, DAY);
    let payout = instr("i1", Direction::Credit, 40, dec!(3));
    assert_eq!(
        submit(&mut core, &payout, 100, Some(900)),
        InstrStatus::Processing
    );
    assert!(core.due(899).is_empty());
    submit(
        &mut core,
        &instr("i2", Direction::Debit, 41, dec!(5)),
        200,
        None,
    );
    assert_eq!(core.due(900), vec![InstrId::new("i1")]);
    let record = core
        .decide_late(&InstrId::new("i1"), 12_000, false)
        .expect("due");
    core.apply(record);
    assert_eq!(
        core.query(&InstrId::new("i1")),
        BankReply::Status(InstrStatus::Success)
    );
    assert_eq!(core.reserve, dec!(2));
    // Its line belongs to the date it was decided on.
    assert_eq!(core.statement(1).lines.len(), 1);
    assert!(core
        .decide_late(&InstrId::new("i1"), 13_000, false)
        .is_none());
    assert!(books_balance(&core));
}

#[test]
fn recovery_replays_the_same_books() {
    let mut core = BankCore::new(1, DAY);
    let mut log = Vec::new();
    for (n, i) in [
        instr("a", Direction::Debit, 40, dec!(9)),
        instr("b", Direction::Credit, 41, dec!(4)),
        instr("c", Direction::Debit, 7, dec!(1)),
    ]
    .iter()
    .enumerate()
    {
        if let Decision::Write(records) = core.decide(i, n as u64 * 10, Draw::default()) {
            for r in records {
                log.push(r.clone());
                core.apply(r);
            }
        }
    }
    assert_eq!(BankCore::recover(1, DAY, &log), core);
    assert_eq!(core.query(&InstrId::new("zzz")), BankReply::NotFound);
}

#[test]
fn every_record_survives_the_log_encoding() {
    let mut core = BankCore::new(0, DAY);
    let Decision::Write(records) = core.decide(
        &instr("a", Direction::Debit, 40, dec!(9)),
        0,
        Draw {
            late: Some(50),
            ..Draw::default()
        },
    ) else {
        panic!("a new instruction is written")
    };
    records.iter().for_each(|r| core.apply(r.clone()));
    let decided = core
        .decide_late(&InstrId::new("a"), 60, false)
        .expect("due");
    for r in records.iter().chain([&decided]) {
        let bytes = bincode::serialize(r).expect("serializes");
        let back: BankRecord = bincode::deserialize(&bytes).expect("the log can read it back");
        assert_eq!(&back, r);
    }
}

#[test]
fn a_rejected_instruction_moves_nothing_and_a_bounced_payout_leaves_the_days_statement() {
    let mut core = BankCore::new(0, DAY);
    submit(
        &mut core,
        &instr("in", Direction::Debit, 40, dec!(100)),
        0,
        None,
    );
    let rejected = Draw {
        reject: true,
        ..Draw::default()
    };
    let payout = instr("out", Direction::Credit, 41, dec!(30));
    let Decision::Write(records) =
        core.decide(&instr("r", Direction::Credit, 41, dec!(1)), 5, rejected)
    else {
        panic!("written")
    };
    records.into_iter().for_each(|r| core.apply(r));
    assert_eq!(
        core.query(&InstrId::new("r")),
        BankReply::Status(InstrStatus::Fail(FailReason::Rejected))
    );
    // A bounce drawn past the day's end does not happen: a published line never changes.
    let late = Draw {
        bounce_at: Some(DAY + 1),
        ..Draw::default()
    };
    let Decision::Write(records) = core.decide(&payout, 10, late) else {
        panic!("written")
    };
    assert!(matches!(
        records.last(),
        Some(BankRecord::Accepted {
            bounce_ms: None,
            ..
        })
    ));
    let same_day = Draw {
        bounce_at: Some(500),
        ..Draw::default()
    };
    let Decision::Write(records) = core.decide(&payout, 10, same_day) else {
        panic!("written")
    };
    records.into_iter().for_each(|r| core.apply(r));
    assert_eq!(core.reserve, dec!(70));
    assert!(core.bounces_due(499).is_empty());
    assert_eq!(core.bounces_due(500), vec![InstrId::new("out")]);
    core.apply(BankRecord::Bounced {
        instr: InstrId::new("out"),
    });
    assert_eq!(core.reserve, dec!(100));
    assert_eq!(
        core.query(&InstrId::new("out")),
        BankReply::Status(InstrStatus::Fail(FailReason::Bounced))
    );
    assert_eq!(
        core.statement(0).lines.len(),
        1,
        "only the deposit's line is left"
    );
    assert!(books_balance(&core));
}

/// 内转: a transfer out needs the reserve, leaves it at once, waits to be delivered and is on
/// the day's statement; the receiving bank takes it once, and the two banks' books together
/// balance once it arrived.
#[test]
fn a_transfer_leaves_one_reserve_and_arrives_once_at_the_other() {
    let (mut a, mut b) = (BankCore::new(0, DAY), BankCore::new(1, DAY));
    let deposit = instr("d1", Direction::Debit, 40, dec!(100));
    submit(&mut a, &deposit, 0, None);
    let too_much = instr("t0", Direction::TransferOut, 0, dec!(101));
    let short = InstrStatus::Fail(FailReason::ReserveShort);
    assert_eq!(submit(&mut a, &too_much, 10, None), short);
    let t = instr("t1", Direction::TransferOut, 0, dec!(60));
    assert_eq!(submit(&mut a, &t, 12_000, None), InstrStatus::Success);
    assert_eq!(a.reserve, dec!(40));
    assert_eq!(a.to_deliver(), vec![(InstrId::new("t1"), 1, t.amount)]);
    assert_eq!(
        a.statement(1).closing,
        dec!(40),
        "the closing counts the transfer out"
    );
    assert_eq!(a.statement(0).closing, dec!(100));
    let taken = b.receive(&t.id, 0, t.amount, 13_000).unwrap().expect("new");
    b.apply(taken);
    assert_eq!(b.reserve, dec!(60));
    assert_eq!(b.statement(1).lines.len(), 1);
    assert_eq!(
        b.receive(&t.id, 0, t.amount, 14_000),
        Ok(None),
        "a repeat is absorbed"
    );
    let other = Amount::new(dec!(61)).expect("valid");
    assert!(
        b.receive(&t.id, 0, other, 14_000).is_err(),
        "another body is refused"
    );
    a.apply(BankRecord::Delivered {
        instr: t.id.clone(),
    });
    assert!(a.to_deliver().is_empty());
    let cards: Decimal = a.cards.values().map(|c| c.balance).sum();
    let openings: Decimal = a.cards.values().map(|c| c.opening).sum();
    assert_eq!(cards + a.reserve + b.reserve, openings);
}

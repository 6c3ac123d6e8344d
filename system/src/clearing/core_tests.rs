use super::*;
use crate::bank::FailReason;
use crate::clearing::reverse_request;
use crate::ids::AccountId;
use crate::money::Amount;
use rust_decimal_macros::dec;

fn request(key: &str, kind: OrderKind, amount: rust_decimal::Decimal) -> FundRequest {
    FundRequest {
        client: 1,
        key: key.to_string(),
        kind,
        account: AccountId(41),
        amount: Amount::new(amount).expect("valid"),
    }
}

fn created(core: &mut ClearingCore, r: &FundRequest) -> InstrId {
    match core.admit(r, 2) {
        Admission::Create(record) => core.apply(record),
        other => panic!("{other:?}"),
    }
    instr_of(&r.key)
}

#[test]
fn a_key_makes_one_order_and_another_body_under_it_is_refused() {
    let mut core = ClearingCore::default();
    let r = request("c1-f1", OrderKind::Deposit, dec!(10));
    let instr = created(&mut core, &r);
    let order = core.get(&instr).expect("created");
    assert_eq!(
        (order.bank, order.card, order.status),
        (1, 41, OrderStatus::Init)
    );
    assert_eq!(core.admit(&r, 2), Admission::Existing(instr.clone()));
    let other = request("c1-f1", OrderKind::Deposit, dec!(11));
    let Admission::Mismatch(refusal) = core.admit(&other, 2) else {
        panic!("a reused key is refused")
    };
    assert_eq!(refusal.code, RefusalCode::KeyReused);
    assert_eq!(core.answer(&instr), Ok(FundReply::Pending));
}

#[test]
fn a_final_status_is_reached_once_whatever_tells_it_again() {
    let mut core = ClearingCore::default();
    let instr = created(&mut core, &request("k", OrderKind::Deposit, dec!(5)));
    assert!(
        core.move_to(&instr, OrderStatus::Success, None).is_none(),
        "INIT is not final yet"
    );
    for status in [
        OrderStatus::Sent,
        OrderStatus::Unknown,
        OrderStatus::Success,
    ] {
        let record = core.move_to(&instr, status, None).expect("a legal edge");
        core.apply(record);
    }
    // A late reply, a second notification or a query saying the same: no edge, no record.
    assert!(core.move_to(&instr, OrderStatus::Success, None).is_none());
    assert!(core.move_to(&instr, OrderStatus::Fail, None).is_none());
    assert_eq!(
        core.unfinished(),
        vec![instr.clone()],
        "final but not posted"
    );
    core.apply(ClearingRecord::Settled {
        instr: instr.clone(),
    });
    assert!(core.unfinished().is_empty());
    assert_eq!(core.answer(&instr), Ok(FundReply::Done));
    let order = core.get(&instr).expect("exists");
    let history = [
        OrderStatus::Init,
        OrderStatus::Sent,
        OrderStatus::Unknown,
        OrderStatus::Success,
    ];
    assert_eq!(order.history, history);
}

#[test]
fn answers_follow_the_kind_a_deposit_declined_and_a_withdrawal_held() {
    let mut core = ClearingCore::default();
    let d = created(&mut core, &request("d", OrderKind::Deposit, dec!(5)));
    core.apply(core.move_to(&d, OrderStatus::Sent, None).expect("edge"));
    let declined = Some(FailCause::Bank(FailReason::NoFunds));
    core.apply(core.move_to(&d, OrderStatus::Fail, declined).expect("edge"));
    assert_eq!(core.answer(&d).unwrap_err().code, RefusalCode::BankDeclined);
    let w = created(&mut core, &request("w", OrderKind::Withdrawal, dec!(5)));
    assert_eq!(core.answer(&w), Ok(FundReply::Pending));
    core.apply(ClearingRecord::Held { instr: w.clone() });
    assert_eq!(core.answer(&w), Ok(FundReply::Done));
    let order = core.get(&w).expect("exists").clone();
    assert_eq!(
        order.final_request(),
        None,
        "nothing to post before its end"
    );
    core.apply(core.move_to(&w, OrderStatus::Sent, None).expect("edge"));
    core.apply(core.move_to(&w, OrderStatus::Fail, declined).expect("edge"));
    let order = core.get(&w).expect("exists");
    assert_eq!(order.final_request(), Some(reverse_request("w")));
    assert_eq!(
        core.answer(&w),
        Ok(FundReply::Done),
        "accepted, then reversed"
    );
    let h = created(&mut core, &request("h", OrderKind::Withdrawal, dec!(5)));
    let refused = Some(FailCause::Hold(RefusalCode::InsufficientFunds));
    core.apply(core.move_to(&h, OrderStatus::Fail, refused).expect("edge"));
    assert_eq!(
        core.answer(&h).unwrap_err().code,
        RefusalCode::InsufficientFunds
    );
    assert_eq!(core.get(&h).expect("exists").final_request(), None);
}

#[test]
fn illegal_edges_are_not_offered_and_recovery_folds_the_same_orders() {
    use OrderStatus::*;
    assert!(!Success.may_become(Fail) && !Fail.may_become(Success));
    assert!(!Sent.may_become(Init) && !Unknown.may_become(Init));
    assert!(!Init.may_become(Unknown) && !Init.may_become(Success));
    let mut core = ClearingCore::default();
    let mut log = Vec::new();
    let r = request("k", OrderKind::Deposit, dec!(5));
    if let Admission::Create(record) = core.admit(&r, 2) {
        log.push(record.clone());
        core.apply(record);
    }
    let instr = instr_of("k");
    let sent = core.move_to(&instr, Sent, None).expect("edge");
    log.push(sent.clone());
    core.apply(sent);
    assert_eq!(ClearingCore::recover(&log), core);
}

#[test]
fn every_record_survives_the_log_encoding() {
    let mut core = ClearingCore::default();
    let Admission::Create(created) = core.admit(&request("k", OrderKind::Withdrawal, dec!(5)), 2)
    else {
        panic!("new")
    };
    core.apply(created.clone());
    let instr = instr_of("k");
    let refused = Some(FailCause::Hold(RefusalCode::InsufficientFunds));
    let moved = core
        .move_to(&instr, OrderStatus::Fail, refused)
        .expect("edge");
    let records = [
        created,
        ClearingRecord::Held {
            instr: instr.clone(),
        },
        moved,
        ClearingRecord::Settled { instr },
    ];
    for r in &records {
        let bytes = bincode::serialize(r).expect("serializes");
        let back: ClearingRecord = bincode::deserialize(&bytes).expect("the log can read it back");
        assert_eq!(&back, r);
    }
}

#[test]
fn successes_are_listed_per_bank_in_the_order_they_happen_once_each() {
    let mut core = ClearingCore::default();
    let succeed = |core: &mut ClearingCore, key: &str| {
        let instr = created(core, &request(key, OrderKind::Deposit, dec!(5)));
        for status in [OrderStatus::Sent, OrderStatus::Success] {
            let record = core.move_to(&instr, status, None).expect("a legal edge");
            core.apply(record);
        }
        instr
    };
    let b = succeed(&mut core, "b");
    let a = succeed(&mut core, "a");
    let failed = created(&mut core, &request("c", OrderKind::Deposit, dec!(5)));
    let record = core
        .move_to(&failed, OrderStatus::Fail, None)
        .expect("INIT -> FAIL");
    core.apply(record);
    // Success order, not key order; a failed order is not listed; nothing twice.
    let bank = core.get(&a).expect("exists").bank;
    assert_eq!(core.successes.get(&bank), Some(&vec![b.clone(), a.clone()]));
    assert!(core.move_to(&a, OrderStatus::Success, None).is_none());
}

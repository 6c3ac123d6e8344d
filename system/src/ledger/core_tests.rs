//! Table and scenario tests of the ledger core: posts, freezes, the TCC participant, recovery,
//! and the planted participant bugs.

use super::*;
use crate::bugs::Bug;
use crate::ids::{RequestId, VoucherId, Xid};
use crate::ledger::participant::ParticipantRecord;
use crate::money::Amount;
use crate::movement::LegAction;
use crate::outbox::participant::OutboxRecord;
use crate::tcc::fence::{BranchKey, FenceState};
use crate::tcc::participant::TccRecord;
use rust_decimal::Decimal;

const SHARDS: u32 = 2;

fn amt(fen: i64) -> Amount {
    Amount::from_fen(fen).unwrap()
}

/// Decides and applies like the shell does.
fn run(core: &mut LedgerCore, cmd: LedgerCommand, bugs: Bugs) -> Outcome {
    // The bug the command meets (a test may switch one on mid-way).
    core.books.plant(bugs);
    match core.decide(&cmd, 0) {
        Decision::Reply(r) => r,
        Decision::Write(rec) => core.apply(rec),
    }
}

fn funded_shard() -> (LedgerCore, AccountId, AccountId) {
    let mut c = LedgerCore::new(ShardId(0), SHARDS, Bugs::none());
    let (a, b) = (AccountId(10), AccountId(12));
    for id in [a, b] {
        let open = LedgerCommand::OpenAccount {
            account: id,
            subject: Subject::User,
        };
        assert_eq!(run(&mut c, open, Bugs::none()), Ok(LedgerReply::Opened));
    }
    let fund = LedgerCommand::Post {
        request: RequestId::new("fund-a"),
        legs: vec![
            Leg::debit(AccountId::world(ShardId(0)), amt(10_000)),
            Leg::credit(a, amt(10_000)),
        ],
    };
    assert!(run(&mut c, fund, Bugs::none()).is_ok());
    (c, a, b)
}

fn transfer(req: &str, from: AccountId, to: AccountId, fen: i64) -> LedgerCommand {
    LedgerCommand::Post {
        request: RequestId::new(req),
        legs: vec![Leg::debit(from, amt(fen)), Leg::credit(to, amt(fen))],
    }
}

#[test]
fn a_post_moves_money_and_journals_each_leg() {
    let (mut c, a, b) = funded_shard();
    let r = run(&mut c, transfer("t1", a, b, 2_500), Bugs::none());
    assert!(matches!(r, Ok(LedgerReply::Posted { .. })));
    assert_eq!(c.account(a).unwrap().available.to_string(), "75.00");
    assert_eq!(c.account(b).unwrap().available.to_string(), "25.00");
    assert_eq!(c.journal().len(), 4);
    let total: Decimal = c.accounts().map(|a| a.available + a.frozen).sum();
    assert_eq!(total, Decimal::ZERO);
}

#[test]
fn a_retried_post_returns_the_first_result_and_posts_nothing() {
    let (mut c, a, b) = funded_shard();
    let first = run(&mut c, transfer("t1", a, b, 100), Bugs::none());
    let again = run(&mut c, transfer("t1", a, b, 100), Bugs::none());
    assert_eq!(first, again);
    assert_eq!(c.vouchers().len(), 2);
}

#[test]
fn the_planted_bug_applies_a_retry_again() {
    let (mut c, a, b) = funded_shard();
    let bug = Bugs::planted(Bug::LedgerRetryAppliesTwice);
    assert!(run(&mut c, transfer("t1", a, b, 100), bug).is_ok());
    assert!(run(&mut c, transfer("t1", a, b, 100), bug).is_ok());
    assert_eq!(c.vouchers().len(), 3, "funding + the transfer twice");
}

#[test]
fn a_request_id_reused_with_other_legs_is_refused_and_the_planted_bug_answers_it() {
    let (mut c, a, b) = funded_shard();
    assert!(run(&mut c, transfer("t1", a, b, 100), Bugs::none()).is_ok());
    let other = run(&mut c, transfer("t1", a, b, 200), Bugs::none());
    assert_eq!(
        other.unwrap_err().code(),
        crate::refusal::RefusalCode::KeyReused
    );
    // A refusal is remembered with its legs too.
    assert!(run(&mut c, transfer("t2", a, b, 1_000_000), Bugs::none()).is_err());
    let again = run(&mut c, transfer("t2", a, b, 1), Bugs::none());
    assert_eq!(
        again.unwrap_err().code(),
        crate::refusal::RefusalCode::KeyReused
    );
    let vouchers = c.vouchers().len();
    let bug = Bugs::planted(Bug::PostSameKeyOtherBody);
    assert!(
        run(&mut c, transfer("t1", a, b, 300), bug).is_ok(),
        "the first answer"
    );
    assert_eq!(c.vouchers().len(), vouchers, "and nothing posted");
}

#[test]
fn overdraft_is_refused_durably_and_the_refusal_never_flips() {
    let (mut c, a, b) = funded_shard();
    let r = run(&mut c, transfer("t1", b, a, 100), Bugs::none());
    assert!(matches!(r, Err(LedgerError::InsufficientFunds { .. })));
    // b receives money; the retry of t1 must still be refused.
    assert!(run(&mut c, transfer("t2", a, b, 500), Bugs::none()).is_ok());
    let again = run(&mut c, transfer("t1", b, a, 100), Bugs::none());
    assert_eq!(r, again);
}

#[test]
fn unbalanced_vouchers_and_foreign_accounts_are_refused() {
    let (mut c, a, b) = funded_shard();
    let unbalanced = LedgerCommand::Post {
        request: RequestId::new("u"),
        legs: vec![Leg::debit(a, amt(100)), Leg::credit(b, amt(99))],
    };
    assert!(matches!(
        run(&mut c, unbalanced, Bugs::none()),
        Err(LedgerError::Unbalanced { .. })
    ));
    let foreign = transfer("f", a, AccountId(11), 1);
    assert!(matches!(
        run(&mut c, foreign, Bugs::none()),
        Err(LedgerError::WrongShard { .. })
    ));
}

#[test]
fn freeze_and_unfreeze_are_idempotent() {
    let (mut c, a, _) = funded_shard();
    let freeze = LedgerCommand::Freeze {
        key: "k".into(),
        account: a,
        amount: amt(4_000),
    };
    assert_eq!(
        run(&mut c, freeze.clone(), Bugs::none()),
        Ok(LedgerReply::Frozen)
    );
    assert_eq!(run(&mut c, freeze, Bugs::none()), Ok(LedgerReply::Frozen));
    assert_eq!(c.account(a).unwrap().frozen.to_string(), "40.00");
    let unfreeze = LedgerCommand::Unfreeze { key: "k".into() };
    assert_eq!(
        run(&mut c, unfreeze.clone(), Bugs::none()),
        Ok(LedgerReply::Unfrozen)
    );
    assert_eq!(
        run(&mut c, unfreeze, Bugs::none()),
        Ok(LedgerReply::Unfrozen)
    );
    assert_eq!(c.account(a).unwrap().frozen, Decimal::ZERO);
    assert_eq!(c.account(a).unwrap().available.to_string(), "100.00");
}

#[test]
fn recovery_from_the_records_rebuilds_the_same_state() {
    let mut c = LedgerCore::new(ShardId(1), SHARDS, Bugs::none());
    let mut log = Vec::new();
    let cmds = [
        LedgerCommand::OpenAccount {
            account: AccountId(5),
            subject: Subject::User,
        },
        LedgerCommand::Post {
            request: RequestId::new("f"),
            legs: vec![
                Leg::debit(AccountId(1), amt(50)),
                Leg::credit(AccountId(5), amt(50)),
            ],
        },
        LedgerCommand::Freeze {
            key: "z".into(),
            account: AccountId(5),
            amount: amt(20),
        },
    ];
    for cmd in cmds {
        if let Decision::Write(rec) = c.decide(&cmd, 7) {
            c.apply(rec.clone()).unwrap();
            log.push(rec);
        }
    }
    let r = LedgerCore::recover(ShardId(1), SHARDS, Bugs::none(), &log);
    assert_eq!(
        r.accounts().collect::<Vec<_>>(),
        c.accounts().collect::<Vec<_>>()
    );
    assert_eq!(r.journal(), c.journal());
    assert_eq!(r.vouchers(), c.vouchers());
    assert_eq!(r.freezes().count(), 1);
}

// TCC participant: one payer on shard 0, one merchant on shard 1 (ids: world 0/1,
// transit 2/3, customers from 4 on, home shard = id % 2).

use crate::tcc::fence::FenceRefusal;

const PAYER: AccountId = AccountId(4);
const MERCHANT: AccountId = AccountId(5);

/// A balance at the money scale, from fen.
fn d(fen: i64) -> Decimal {
    Decimal::new(fen, 2)
}

fn bk(xid: &str, branch: u32) -> BranchKey {
    BranchKey {
        xid: xid.into(),
        branch,
    }
}

fn debit(fen: i64) -> LegAction {
    LegAction::Debit {
        account: PAYER,
        amount: amt(fen),
    }
}

fn credit(fen: i64) -> LegAction {
    LegAction::Credit {
        account: MERCHANT,
        amount: amt(fen),
    }
}

fn try_(branch: &BranchKey, action: LegAction) -> LedgerCommand {
    LedgerCommand::TccTry {
        branch: branch.clone(),
        action,
    }
}

fn confirm(branch: &BranchKey) -> LedgerCommand {
    LedgerCommand::TccConfirm {
        branch: branch.clone(),
    }
}

fn cancel(branch: &BranchKey) -> LedgerCommand {
    LedgerCommand::TccCancel {
        branch: branch.clone(),
    }
}

/// Shard 0 with PAYER opened and funded with 100.00 from the world.
fn payer_shard(bugs: Bugs) -> LedgerCore {
    let mut c = LedgerCore::new(ShardId(0), SHARDS, bugs);
    let open = LedgerCommand::OpenAccount {
        account: PAYER,
        subject: Subject::User,
    };
    assert_eq!(run(&mut c, open, bugs), Ok(LedgerReply::Opened));
    let fund = LedgerCommand::Post {
        request: RequestId::new("fund-payer"),
        legs: vec![
            Leg::debit(AccountId::world(ShardId(0)), amt(10_000)),
            Leg::credit(PAYER, amt(10_000)),
        ],
    };
    assert!(run(&mut c, fund, bugs).is_ok());
    c
}

/// Shard 1 with MERCHANT opened, empty.
fn merchant_shard() -> LedgerCore {
    let mut c = LedgerCore::new(ShardId(1), SHARDS, Bugs::none());
    let open = LedgerCommand::OpenAccount {
        account: MERCHANT,
        subject: Subject::Merchant,
    };
    assert_eq!(run(&mut c, open, Bugs::none()), Ok(LedgerReply::Opened));
    c
}

/// (available, frozen) of an account.
fn bal(c: &LedgerCore, id: AccountId) -> (Decimal, Decimal) {
    let a = c.account(id).unwrap();
    (a.available, a.frozen)
}

fn holds(c: &LedgerCore) -> Vec<(BranchKey, LegAction)> {
    c.tcc().holds().map(|(k, a)| (k.clone(), *a)).collect()
}

fn fence_rows(c: &LedgerCore) -> Vec<(BranchKey, FenceState)> {
    c.tcc()
        .fences()
        .rows()
        .map(|(k, s)| (k.clone(), s))
        .collect()
}

/// Σ available + frozen over every account of one shard (world and transit included).
fn shard_total(c: &LedgerCore) -> Decimal {
    c.accounts().map(|a| a.available + a.frozen).sum()
}

fn transit(shard: u32) -> AccountId {
    AccountId::transit(ShardId(shard), SHARDS)
}

#[test]
fn try_debit_freezes_once_and_writes_the_fence() {
    let mut c = payer_shard(Bugs::none());
    let k = bk("x1", 0);
    assert_eq!(
        run(&mut c, try_(&k, debit(3_000)), Bugs::none()),
        Ok(LedgerReply::Tried)
    );
    assert_eq!(bal(&c, PAYER), (d(7_000), d(3_000)));
    assert_eq!(c.tcc().fences().get(&k), Some(FenceState::Tried));
    assert_eq!(holds(&c), vec![(k.clone(), debit(3_000))]);
    // A repeated Try answers without a record and freezes nothing more.
    assert_eq!(
        c.decide(&try_(&k, debit(3_000)), 0),
        Decision::Reply(Ok(LedgerReply::Tried))
    );
    assert_eq!(bal(&c, PAYER), (d(7_000), d(3_000)));
    assert_eq!(c.vouchers().len(), 1, "only the funding voucher");
}

#[test]
fn a_branch_tried_again_with_another_action_is_refused() {
    let mut c = payer_shard(Bugs::none());
    let k = bk("x1", 0);
    run(&mut c, try_(&k, debit(3_000)), Bugs::none()).unwrap();
    assert_eq!(
        run(&mut c, try_(&k, debit(4_000)), Bugs::none()),
        Err(LedgerError::BranchReused("x1#0".into()))
    );
    assert_eq!(bal(&c, PAYER), (d(7_000), d(3_000)));
    assert_eq!(holds(&c), vec![(k, debit(3_000))]);
}

#[test]
fn an_insufficient_try_writes_nothing_so_its_cancel_is_an_empty_rollback() {
    let mut c = payer_shard(Bugs::none());
    let k = bk("x1", 0);
    assert_eq!(
        c.decide(&try_(&k, debit(10_001)), 0),
        Decision::Reply(Err(LedgerError::InsufficientFunds {
            account: PAYER,
            available: "100.00".into(),
            needed: "100.01".into(),
        }))
    );
    assert_eq!(c.tcc().fences().get(&k), None);
    assert_eq!(holds(&c), vec![]);
    assert_eq!(bal(&c, PAYER), (d(10_000), d(0)));
    assert_eq!(
        c.decide(&cancel(&k), 0),
        Decision::Write(LedgerRecord::Participant(
            TccRecord::Suspended { branch: k.clone() }.into()
        ))
    );
    assert_eq!(
        run(&mut c, cancel(&k), Bugs::none()),
        Ok(LedgerReply::Cancelled)
    );
    assert_eq!(c.tcc().fences().get(&k), Some(FenceState::Suspended));
    assert_eq!(bal(&c, PAYER), (d(10_000), d(0)));
}

#[test]
fn confirm_debit_consumes_the_freeze_and_posts_payer_to_transit_once() {
    let mut c = payer_shard(Bugs::none());
    let k = bk("x1", 0);
    run(&mut c, try_(&k, debit(3_000)), Bugs::none()).unwrap();
    let Decision::Write(record) = c.decide(&confirm(&k), 42) else {
        panic!("a first Confirm writes a record");
    };
    assert_eq!(c.apply(record), Ok(LedgerReply::Confirmed));
    assert_eq!(bal(&c, PAYER), (d(7_000), d(0)));
    assert_eq!(bal(&c, transit(0)), (d(3_000), d(0)));
    assert_eq!(c.tcc().fences().get(&k), Some(FenceState::Committed));
    assert_eq!(holds(&c), vec![]);
    let v = c.vouchers().last().unwrap();
    let id = VoucherId {
        shard: ShardId(0),
        seq: 1,
    };
    assert_eq!(v.id, id);
    assert_eq!(
        v.legs,
        vec![
            Leg::debit(PAYER, amt(3_000)),
            Leg::credit(transit(0), amt(3_000))
        ]
    );
    assert_eq!(v.xid, Some(Xid::from("x1")));
    assert_eq!(v.request, RequestId::new("tcc:x1:0"));
    assert_eq!(v.posted_ms, 42);
    let tail: Vec<_> = c.journal()[2..]
        .iter()
        .map(|e| (e.seq, e.voucher, e.account, e.side))
        .collect();
    assert_eq!(
        tail,
        vec![
            (2, id, PAYER, Side::Debit),
            (3, id, transit(0), Side::Credit)
        ]
    );
    // Phase two is idempotent: a repeat answers and posts nothing.
    assert_eq!(
        run(&mut c, confirm(&k), Bugs::none()),
        Ok(LedgerReply::Confirmed)
    );
    assert_eq!((c.vouchers().len(), c.journal().len()), (2, 4));
    assert_eq!(bal(&c, PAYER), (d(7_000), d(0)));
}

#[test]
fn a_duplicate_try_after_confirm_answers_tried_and_freezes_nothing() {
    let mut c = payer_shard(Bugs::none());
    let k = bk("x1", 0);
    run(&mut c, try_(&k, debit(3_000)), Bugs::none()).unwrap();
    run(&mut c, confirm(&k), Bugs::none()).unwrap();
    assert_eq!(
        run(&mut c, try_(&k, debit(3_000)), Bugs::none()),
        Ok(LedgerReply::Tried)
    );
    assert_eq!(bal(&c, PAYER), (d(7_000), d(0)));
    assert_eq!(c.tcc().fences().get(&k), Some(FenceState::Committed));
    assert_eq!(holds(&c), vec![]);
}

#[test]
fn credit_branch_prepares_then_posts_and_every_shard_balances() {
    let (mut payer, mut merchant) = (payer_shard(Bugs::none()), merchant_shard());
    let (kd, kc) = (bk("x1", 0), bk("x1", 1));
    run(&mut payer, try_(&kd, debit(3_000)), Bugs::none()).unwrap();
    assert_eq!(
        run(&mut merchant, try_(&kc, credit(3_000)), Bugs::none()),
        Ok(LedgerReply::Tried)
    );
    // A prepared credit is in no balance yet.
    assert_eq!(bal(&merchant, MERCHANT), (d(0), d(0)));
    assert_eq!(holds(&merchant), vec![(kc.clone(), credit(3_000))]);
    assert_eq!(merchant.tcc().fences().get(&kc), Some(FenceState::Tried));
    assert_eq!(merchant.vouchers().len(), 0);

    run(&mut payer, confirm(&kd), Bugs::none()).unwrap();
    // Between the two Confirms each shard still balances on its own.
    assert_eq!(shard_total(&payer), Decimal::ZERO);
    assert_eq!(shard_total(&merchant), Decimal::ZERO);
    assert_eq!(
        run(&mut merchant, confirm(&kc), Bugs::none()),
        Ok(LedgerReply::Confirmed)
    );
    assert_eq!(bal(&merchant, MERCHANT), (d(3_000), d(0)));
    assert_eq!(bal(&merchant, transit(1)), (d(-3_000), d(0)));
    assert_eq!(holds(&merchant), vec![]);
    assert_eq!(
        merchant.tcc().fences().get(&kc),
        Some(FenceState::Committed)
    );
    let v = &merchant.vouchers()[0];
    assert_eq!(
        v.legs,
        vec![
            Leg::debit(transit(1), amt(3_000)),
            Leg::credit(MERCHANT, amt(3_000))
        ]
    );
    assert_eq!(v.request, RequestId::new("tcc:x1:1"));
    let transits = bal(&payer, transit(0)).0 + bal(&merchant, transit(1)).0;
    assert_eq!(transits, Decimal::ZERO);
    assert_eq!(shard_total(&payer), Decimal::ZERO);
    assert_eq!(shard_total(&merchant), Decimal::ZERO);
}

#[test]
fn cancel_after_try_releases_once_and_then_refuses_confirm() {
    let mut c = payer_shard(Bugs::none());
    let k = bk("x1", 0);
    run(&mut c, try_(&k, debit(3_000)), Bugs::none()).unwrap();
    assert_eq!(
        run(&mut c, cancel(&k), Bugs::none()),
        Ok(LedgerReply::Cancelled)
    );
    assert_eq!(bal(&c, PAYER), (d(10_000), d(0)));
    assert_eq!(c.tcc().fences().get(&k), Some(FenceState::RolledBack));
    assert_eq!(holds(&c), vec![]);
    assert_eq!(
        c.decide(&cancel(&k), 0),
        Decision::Reply(Ok(LedgerReply::Cancelled))
    );
    assert_eq!(
        run(&mut c, confirm(&k), Bugs::none()),
        Err(LedgerError::Fence(FenceRefusal::ConfirmAfterCancel))
    );
    assert_eq!(bal(&c, PAYER), (d(10_000), d(0)));
    assert_eq!(c.vouchers().len(), 1, "only the funding voucher");
}

#[test]
fn cancel_of_a_prepared_credit_drops_the_hold_and_moves_no_money() {
    let mut c = merchant_shard();
    let k = bk("x1", 1);
    run(&mut c, try_(&k, credit(3_000)), Bugs::none()).unwrap();
    assert_eq!(
        run(&mut c, cancel(&k), Bugs::none()),
        Ok(LedgerReply::Cancelled)
    );
    assert_eq!(bal(&c, MERCHANT), (d(0), d(0)));
    assert_eq!(holds(&c), vec![]);
    assert_eq!(c.tcc().fences().get(&k), Some(FenceState::RolledBack));
    assert_eq!(c.vouchers().len(), 0);
}

#[test]
fn cancel_after_confirm_is_refused() {
    let mut c = payer_shard(Bugs::none());
    let k = bk("x1", 0);
    run(&mut c, try_(&k, debit(3_000)), Bugs::none()).unwrap();
    run(&mut c, confirm(&k), Bugs::none()).unwrap();
    assert_eq!(
        run(&mut c, cancel(&k), Bugs::none()),
        Err(LedgerError::Fence(FenceRefusal::CancelAfterConfirm))
    );
    assert_eq!(bal(&c, PAYER), (d(7_000), d(0)));
    assert_eq!(c.tcc().fences().get(&k), Some(FenceState::Committed));
}

#[test]
fn an_empty_rollback_suspends_the_branch_and_a_late_try_cannot_hang() {
    let mut c = payer_shard(Bugs::none());
    let k = bk("x1", 0);
    assert_eq!(
        run(&mut c, cancel(&k), Bugs::none()),
        Ok(LedgerReply::Cancelled)
    );
    assert_eq!(c.tcc().fences().get(&k), Some(FenceState::Suspended));
    assert_eq!(
        run(&mut c, try_(&k, debit(3_000)), Bugs::none()),
        Err(LedgerError::Fence(FenceRefusal::TryAfterCancel))
    );
    assert_eq!(bal(&c, PAYER), (d(10_000), d(0)));
    assert_eq!(holds(&c), vec![]);
    assert_eq!(c.tcc().fences().get(&k), Some(FenceState::Suspended));
    assert_eq!(
        run(&mut c, cancel(&k), Bugs::none()),
        Ok(LedgerReply::Cancelled)
    );
}

#[test]
fn confirm_without_try_is_refused_and_posts_nothing() {
    let mut c = payer_shard(Bugs::none());
    let k = bk("x1", 0);
    assert_eq!(
        run(&mut c, confirm(&k), Bugs::none()),
        Err(LedgerError::Fence(FenceRefusal::ConfirmWithoutTry))
    );
    assert_eq!(c.tcc().fences().get(&k), None);
    assert_eq!(c.vouchers().len(), 1, "only the funding voucher");
}

#[test]
fn a_try_for_a_foreign_or_unknown_account_is_refused_without_a_record() {
    let mut c = payer_shard(Bugs::none());
    let foreign = LegAction::Debit {
        account: MERCHANT,
        amount: amt(100),
    };
    assert_eq!(
        run(&mut c, try_(&bk("x1", 0), foreign), Bugs::none()),
        Err(LedgerError::WrongShard {
            account: MERCHANT,
            shard: ShardId(0),
        })
    );
    let unknown = LegAction::Credit {
        account: AccountId(6),
        amount: amt(100),
    };
    assert_eq!(
        run(&mut c, try_(&bk("x2", 0), unknown), Bugs::none()),
        Err(LedgerError::UnknownAccount(AccountId(6)))
    );
    assert_eq!(fence_rows(&c), vec![]);
    assert_eq!(holds(&c), vec![]);
}

#[test]
fn recovery_rebuilds_fences_holds_and_tcc_postings() {
    let mut c = LedgerCore::new(ShardId(0), SHARDS, Bugs::none());
    let mut log = Vec::new();
    let fund = LedgerCommand::Post {
        request: RequestId::new("fund-payer"),
        legs: vec![
            Leg::debit(AccountId::world(ShardId(0)), amt(10_000)),
            Leg::credit(PAYER, amt(10_000)),
        ],
    };
    let (k1, k2, k3, k4) = (bk("x1", 0), bk("x2", 0), bk("x3", 0), bk("x4", 0));
    let commands = [
        LedgerCommand::OpenAccount {
            account: PAYER,
            subject: Subject::User,
        },
        fund,
        try_(&k1, debit(3_000)),
        confirm(&k1),
        try_(&k2, debit(2_000)),
        cancel(&k2),
        cancel(&k3),
        try_(&k3, debit(1_000)), // refused: writes nothing
        try_(&k4, debit(500)),   // left in Try
    ];
    for cmd in commands {
        if let Decision::Write(rec) = c.decide(&cmd, 9) {
            let _ = c.apply(rec.clone());
            log.push(rec);
        }
    }
    assert_eq!(log.len(), 8);
    let r = LedgerCore::recover(ShardId(0), SHARDS, Bugs::none(), &log);
    assert_eq!(
        r.accounts().collect::<Vec<_>>(),
        c.accounts().collect::<Vec<_>>()
    );
    assert_eq!(r.vouchers(), c.vouchers());
    assert_eq!(r.journal(), c.journal());
    assert_eq!(fence_rows(&r), fence_rows(&c));
    assert_eq!(holds(&r), holds(&c));
    // The rebuilt state is the expected one, not merely the same as the live one.
    assert_eq!(bal(&r, PAYER), (d(6_500), d(500)));
    assert_eq!(
        fence_rows(&r),
        vec![
            (k1.clone(), FenceState::Committed),
            (k2, FenceState::RolledBack),
            (k3, FenceState::Suspended),
            (k4.clone(), FenceState::Tried),
        ]
    );
    assert_eq!(holds(&r), vec![(k4, debit(500))]);
    // And it decides the same: a repeated Confirm is still answered without a record.
    assert_eq!(
        r.decide(&confirm(&k1), 10),
        Decision::Reply(Ok(LedgerReply::Confirmed))
    );
}

#[test]
fn planted_no_fence_lets_a_late_try_hang_after_an_empty_rollback() {
    let bugs = Bugs::planted(Bug::TccNoFence);
    let mut c = payer_shard(bugs);
    let k = bk("x1", 0);
    assert_eq!(
        c.decide(&cancel(&k), 0),
        Decision::Reply(Ok(LedgerReply::Cancelled)),
        "the empty rollback leaves no record"
    );
    assert_eq!(c.tcc().fences().get(&k), None);
    assert_eq!(
        run(&mut c, try_(&k, debit(3_000)), bugs),
        Ok(LedgerReply::Tried)
    );
    // Nobody will Cancel again: 30.00 stays frozen for ever.
    assert_eq!(bal(&c, PAYER), (d(7_000), d(3_000)));
    assert_eq!(holds(&c), vec![(k, debit(3_000))]);
}

#[test]
fn planted_confirm_not_idempotent_posts_a_repeat_twice() {
    let bugs = Bugs::planted(Bug::TccConfirmNotIdempotent);
    let mut c = payer_shard(bugs);
    let k = bk("x1", 0);
    run(&mut c, try_(&k, debit(3_000)), bugs).unwrap();
    assert_eq!(run(&mut c, confirm(&k), bugs), Ok(LedgerReply::Confirmed));
    assert_eq!(run(&mut c, confirm(&k), bugs), Ok(LedgerReply::Confirmed));
    assert_eq!(c.vouchers().len(), 3, "funding + the branch twice");
    let tcc: Vec<_> = c.vouchers()[1..]
        .iter()
        .map(|v| v.request.clone())
        .collect();
    assert_eq!(tcc, vec![RequestId::new("tcc:x1:0"); 2]);
    assert_eq!(bal(&c, PAYER), (d(4_000), d(0)));
    assert_eq!(bal(&c, transit(0)), (d(6_000), d(0)));
    assert_eq!(c.tcc().fences().get(&k), Some(FenceState::Committed));
}

#[test]
fn planted_cancel_not_idempotent_releases_twice_and_frozen_goes_negative() {
    let bugs = Bugs::planted(Bug::TccCancelNotIdempotent);
    let mut c = payer_shard(bugs);
    let k = bk("x1", 0);
    run(&mut c, try_(&k, debit(3_000)), bugs).unwrap();
    assert_eq!(run(&mut c, cancel(&k), bugs), Ok(LedgerReply::Cancelled));
    assert_eq!(bal(&c, PAYER), (d(10_000), d(0)));
    assert_eq!(run(&mut c, cancel(&k), bugs), Ok(LedgerReply::Cancelled));
    assert_eq!(bal(&c, PAYER), (d(13_000), d(-3_000)));
    assert_eq!(c.tcc().fences().get(&k), Some(FenceState::RolledBack));
}

// Scoped relaxations: a planted bug relaxes only the checks its own records need; with no bug
// or an unrelated one, every assertion stays on.

/// Applies a repeated Cancel record directly, as the planted bug's decision would write it.
fn apply_cancel_twice(bugs: Bugs) -> LedgerCore {
    let mut c = payer_shard(bugs);
    let k = bk("x1", 0);
    run(&mut c, try_(&k, debit(3_000)), bugs).unwrap();
    run(&mut c, cancel(&k), bugs).unwrap();
    let _ = c.apply(LedgerRecord::Participant(
        TccRecord::Cancelled { branch: k }.into(),
    ));
    c
}

#[test]
#[should_panic(expected = "illegal fence transition")]
fn a_repeated_phase_two_record_is_asserted_without_a_bug() {
    apply_cancel_twice(Bugs::none());
}

#[test]
#[should_panic(expected = "illegal fence transition")]
fn a_repeated_phase_two_record_is_asserted_under_an_unrelated_bug() {
    apply_cancel_twice(Bugs::planted(Bug::ReplicaNoVersion));
}

#[test]
#[should_panic(expected = "release made")]
fn confirm_not_idempotent_does_not_relax_the_non_negative_check() {
    // Its bug relaxes the fence repeat, not the balances: a double release still fires.
    apply_cancel_twice(Bugs::planted(Bug::TccConfirmNotIdempotent));
}

#[test]
fn cancel_not_idempotent_relaxes_both_checks_its_records_break() {
    let c = apply_cancel_twice(Bugs::planted(Bug::TccCancelNotIdempotent));
    assert_eq!(bal(&c, PAYER), (d(13_000), d(-3_000)));
}

#[test]
#[should_panic(expected = "reservation overdrew")]
fn an_overdrawing_try_record_is_asserted_under_an_unrelated_bug() {
    let bugs = Bugs::planted(Bug::LedgerRetryAppliesTwice);
    let mut c = payer_shard(bugs);
    let tried = TccRecord::Tried {
        branch: bk("x1", 0),
        action: debit(10_001),
    };
    let _ = c.apply(LedgerRecord::Participant(tried.into()));
}

/// Only a debit can overdraw: a credit to an account already below zero (left there by two
/// stale decisions applied, as a planted bug could) is taken, and a debit from it refused.
#[test]
fn a_credit_to_an_overdrawn_account_is_taken_and_a_debit_refused() {
    let (mut c, a, b) = funded_shard();
    // A second decision taken against the state before the first was applied (its voucher
    // numbered after it): both debit the whole balance.
    let mut stale = c.clone();
    let decide = |core: &LedgerCore, r: &str| match core.decide(&transfer(r, a, b, 10_000), 0) {
        Decision::Write(record) => record,
        other => panic!("{other:?}"),
    };
    let first = decide(&c, "s1");
    let _ = c.apply(first);
    let world = LedgerCommand::Post {
        request: RequestId::new("w"),
        legs: vec![
            Leg::debit(AccountId::world(ShardId(0)), amt(1)),
            Leg::credit(b, amt(1)),
        ],
    };
    assert!(run(&mut stale, world, Bugs::none()).is_ok());
    let second = decide(&stale, "s2");
    let _ = c.apply(second);
    assert_eq!(c.account(a).unwrap().available.to_string(), "-100.00");
    let credit = run(&mut c, transfer("back", b, a, 1_000), Bugs::none());
    assert!(
        matches!(credit, Ok(LedgerReply::Posted { .. })),
        "{credit:?}"
    );
    let debit = run(&mut c, transfer("more", a, b, 1), Bugs::none());
    assert!(
        matches!(debit, Err(LedgerError::InsufficientFunds { .. })),
        "{debit:?}"
    );
}

#[test]
fn a_prepared_branch_locks_its_account_until_it_is_decided_under_2pc() {
    let bugs = Bugs::default();
    let mut c = payer_shard(bugs).with_locks(true);
    let (a, b) = (bk("x1", 0), bk("x2", 0));
    assert_eq!(
        run(&mut c, try_(&a, debit(1_000)), bugs),
        Ok(LedgerReply::Tried)
    );
    let refused = run(&mut c, try_(&b, debit(1_000)), bugs);
    assert!(
        matches!(refused, Err(LedgerError::Locked { .. })),
        "another branch on the locked account: {refused:?}"
    );
    assert_eq!(
        holds(&c),
        vec![(a.clone(), debit(1_000))],
        "the refusal reserved nothing"
    );
    assert_eq!(
        run(&mut c, try_(&a, debit(1_000)), bugs),
        Ok(LedgerReply::Tried),
        "its own repeat"
    );
    run(&mut c, confirm(&a), bugs).unwrap();
    assert_eq!(
        run(&mut c, try_(&b, debit(1_000)), bugs),
        Ok(LedgerReply::Tried),
        "released"
    );
    // Without locks (tcc) both reserve at once.
    let mut t = payer_shard(bugs);
    run(&mut t, try_(&a, debit(1_000)), bugs).unwrap();
    assert_eq!(
        run(&mut t, try_(&b, debit(1_000)), bugs),
        Ok(LedgerReply::Tried)
    );
}

/// The outbox strategy's local transaction: the debit voucher and the credit's row in one
/// record; a repeat answers as the first time and writes no second row; a refused debit
/// writes no row; a sent mark takes the row off the unsent list (recovery keeps what is left
/// unsent: `sim/tests/strategies.rs` sees a restarted shard send it).
#[test]
fn a_debit_and_its_credit_row_are_one_record() {
    let bugs = Bugs::none();
    let mut c = payer_shard(bugs);
    let transit = AccountId::transit(ShardId(0), SHARDS);
    let with_row = |req: &str, xid: &str, fen: i64| LedgerCommand::PostWithRow {
        xid: Xid::new(xid),
        step: Step::of(0),
        request: RequestId::new(req),
        legs: vec![Leg::debit(PAYER, amt(fen)), Leg::credit(transit, amt(fen))],
        row: CreditRow {
            xid: Xid::new(xid),
            step: Step::of(1),
            shard: ShardId(1),
            legs: Vec::new(),
        },
    };
    let decided = c.decide(&with_row("d1", "x1", 3_000), 0);
    let Decision::Write(
        record @ LedgerRecord::Participant(ParticipantRecord::Outbox(OutboxRecord::PostedWithRow {
            ..
        })),
    ) = decided
    else {
        panic!("one record with the voucher and the row: {decided:?}");
    };
    assert!(c.apply(record).is_ok());
    assert!(
        run(&mut c, with_row("d1", "x1", 3_000), bugs).is_ok(),
        "a repeat"
    );
    assert_eq!(c.outbox().unsent_rows().count(), 1, "one row");
    let refused = run(&mut c, with_row("d2", "x2", 1_000_000), bugs);
    assert!(matches!(
        refused,
        Err(LedgerError::InsufficientFunds { .. })
    ));
    assert_eq!(
        c.outbox().unsent_rows().count(),
        1,
        "a refused debit writes no row"
    );
    let sent = OutboxRecord::RowsSent {
        xids: vec![Xid::new("x1")],
    };
    let _ = c.apply(LedgerRecord::Participant(sent.into()));
    assert_eq!(c.outbox().unsent_rows().count(), 0);
}

/// The txmsg check-back's question to the ledger: a request posted is settled as posted; one
/// never seen is settled durably as never to be posted, and a late post of it is refused.
#[test]
fn a_settled_request_can_never_be_posted_later() {
    let bugs = Bugs::none();
    let (mut c, a, b) = funded_shard();
    let legs = vec![Leg::debit(a, amt(100)), Leg::credit(b, amt(100))];
    let settle = |req: &str| LedgerCommand::SettleRequest {
        request: RequestId::new(req),
        legs: legs.clone(),
    };
    assert!(run(&mut c, transfer("posted", a, b, 100), bugs).is_ok());
    assert!(
        run(&mut c, settle("posted"), bugs).is_ok(),
        "posted: commit"
    );
    let unseen = run(&mut c, settle("late"), bugs);
    assert!(matches!(unseen, Err(LedgerError::Settled(_))), "{unseen:?}");
    let late = run(&mut c, transfer("late", a, b, 100), bugs);
    assert!(
        matches!(late, Err(LedgerError::Settled(_))),
        "the late post: {late:?}"
    );
    assert_eq!(c.vouchers().len(), 2, "funding and the one posted");
}

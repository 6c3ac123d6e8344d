use super::*;
use crate::testkit::{ev, op, single, valid, voucher};
use crate::{Attack, Owner};
use rust_decimal_macros::dec;

/// [`valid`] with the clients' registration: users 2 and 3 and merchant 12 are client 1's.
/// Its two platform sweeps (postings no client asked) are dropped: this family judges them.
fn registered() -> Observation {
    let mut obs = valid();
    for shard in &mut obs.shards {
        shard.vouchers.retain(|v| !v.request.starts_with("sys:"));
    }
    let owners = [
        (2, Subject::User),
        (3, Subject::User),
        (12, Subject::Merchant),
    ]
    .into_iter()
    .map(|(a, subject)| (a, Owner { client: 1, subject }))
    .collect();
    obs.owners = Some(owners);
    obs
}

fn attack(request: &str, expect: &str, outcome: Outcome) -> Operation {
    Operation {
        attack: Some(Box::new(Attack {
            name: "debit-another".into(),
            expect: expect.into(),
            victim: Some(2),
        })),
        ..op(request, OpKind::Attack, Some(dec!(1)), outcome)
    }
}

#[test]
fn a_registered_run_passes() {
    assert_eq!(check(&registered()), vec![]);
}

#[test]
fn a_posting_no_client_asked_is_a_violation() {
    let mut obs = registered();
    obs.shards[1]
        .vouchers
        .push(voucher("v1-3", "sys:sweep-1", 12, 13, dec!(5)));
    let v = &single(check(&obs), Invariant::NoUnauthorizedEffect);
    assert!(v.message.contains("which no client asked"), "{}", v.message);
    assert_eq!(ev(v, "voucher"), "v1-3");
}

#[test]
fn a_transfer_debiting_another_clients_account_is_a_violation() {
    let mut obs = registered();
    obs.owners.as_mut().unwrap().get_mut(&2).unwrap().client = 2;
    // Client 1's transfer c1-2 debits 2, now client 2's; its pay x0.1 debits 2 as well.
    let found = check(&obs);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found
        .iter()
        .any(|v| v.message.contains("transfer debits 2")));
    assert!(found.iter().any(|v| v
        .message
        .contains("debits 2, not client-1's, for its Pay c1-p1")));
}

#[test]
fn money_from_the_world_outside_a_fund_is_a_violation() {
    let mut obs = registered();
    // A "transfer" that takes money from the world: minting.
    obs.history
        .push(op("c1-9", OpKind::Transfer, Some(dec!(7)), Outcome::Ok).into());
    obs.shards[0]
        .vouchers
        .push(voucher("v0-3", "c1-9", 1, 2, dec!(7)));
    let v = &single(check(&obs), Invariant::NoUnauthorizedEffect);
    assert!(
        v.message.contains("touches platform account 1"),
        "{}",
        v.message
    );
}

#[test]
fn a_fund_into_someone_elses_account_is_a_violation() {
    let mut obs = registered();
    obs.owners.as_mut().unwrap().insert(
        3,
        Owner {
            client: 2,
            subject: Subject::User,
        },
    );
    obs.history
        .push(op("c1-8", OpKind::Fund, Some(dec!(4)), Outcome::Ok).into());
    obs.shards[0]
        .vouchers
        .push(voucher("v0-3", "c1-8", 1, 3, dec!(4)));
    let found = check(&obs);
    let fund = found
        .iter()
        .find(|v| ev(v, "request") == "c1-8")
        .expect("the fund is judged");
    assert!(fund
        .message
        .contains("is not Dr world / Cr an account of client-1"));
}

#[test]
fn an_account_held_as_another_subject_than_registered_is_a_violation() {
    let mut obs = registered();
    obs.shards[0].accounts[1].subject = Subject::World;
    let found = check(&obs);
    assert!(found
        .iter()
        .any(|v| v.message == "account 2 of client-1 was registered user but is held as world"));
}

#[test]
fn a_hostile_attempt_must_get_its_refusal() {
    let mut obs = registered();
    let refused = Outcome::fail("unauthorized", "client-1 may not debit 2");
    obs.history
        .push(attack("c1-x1", "unauthorized", refused).into());
    obs.history
        .push(attack("c1-x2", "unauthorized", Outcome::Unknown).into());
    assert_eq!(check(&obs), vec![]);
    obs.history
        .push(attack("c1-x3", "unauthorized", Outcome::Ok).into());
    let other = Outcome::fail("insufficient-funds", "2 has 1, 9 needed");
    obs.history
        .push(attack("c1-x4", "unauthorized", other).into());
    let found = check(&obs);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(ev(&found[0], "request"), "c1-x3");
    assert_eq!(ev(&found[0], "answer"), "ok");
    assert_eq!(ev(&found[1], "expected"), "unauthorized");
    // An attempt that must merely fail takes any refusal, never a success.
    let mut obs = registered();
    let aborted = Outcome::fail("aborted", "branch 0 did not answer Try");
    obs.history
        .push(attack("c1-x7", Attack::ANY_REFUSAL, aborted).into());
    assert_eq!(check(&obs), vec![]);
    obs.history
        .push(attack("c1-x8", Attack::ANY_REFUSAL, Outcome::Ok).into());
    assert_eq!(check(&obs).len(), 1);
}

#[test]
fn a_posting_of_a_hostile_attempt_is_a_violation_whatever_it_was_answered() {
    let mut obs = registered();
    obs.history
        .push(attack("c1-x5", "unauthorized", Outcome::Unknown).into());
    obs.shards[0]
        .vouchers
        .push(voucher("v0-3", "c1-x5", 3, 2, dec!(1)));
    let v = &single(check(&obs), Invariant::NoUnauthorizedEffect);
    assert!(
        v.message.contains("carries out hostile attempt c1-x5"),
        "{}",
        v.message
    );
}

#[test]
fn without_a_registration_only_the_answers_are_judged() {
    let mut obs = valid();
    assert_eq!(check(&obs), vec![]);
    obs.history
        .push(attack("c1-x6", "unauthorized", Outcome::Ok).into());
    assert_eq!(check(&obs).len(), 1);
}

/// The clearing layer's own postings: a withdrawal's settlement and reconciliation's correction
/// are the platform's steps for the client's request; one crediting someone else's account is
/// not.
#[test]
fn clearing_postings_trace_to_the_clients_deposit_or_withdrawal() {
    let mut obs = registered();
    obs.history
        .push(op("c1-w1", OpKind::Withdraw, Some(dec!(5)), Outcome::Ok).into());
    obs.history
        .push(op("c1-d1", OpKind::Fund, Some(dec!(5)), Outcome::Ok).into());
    let (reserve, transit) = (100, 101);
    let vouchers = &mut obs.shards[0].vouchers;
    vouchers.push(voucher(
        "v0-50",
        "clr:c1-w1:settle",
        transit,
        reserve,
        dec!(5),
    ));
    // A bounced payout corrected: the user gets it back.
    vouchers.push(voucher("v0-51", "clr:c1-w1:recon", reserve, 2, dec!(5)));
    // A deposit the bank refused after all: taken back from the user.
    vouchers.push(voucher("v0-52", "clr:c1-d1:recon", 2, reserve, dec!(5)));
    assert_eq!(check(&obs), vec![]);
    // A settlement of a deposit, and a reversal to another client's account, are not.
    let theirs = Owner {
        client: 2,
        subject: Subject::User,
    };
    obs.owners.as_mut().expect("registered").insert(99, theirs);
    let vouchers = &mut obs.shards[0].vouchers;
    vouchers.push(voucher(
        "v0-53",
        "clr:c1-d1:settle",
        transit,
        reserve,
        dec!(5),
    ));
    vouchers.push(voucher("v0-54", "clr:c1-w1:reverse", transit, 99, dec!(5)));
    let found = check(&obs);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found
        .iter()
        .all(|v| v.invariant == Invariant::NoUnauthorizedEffect));
    assert_eq!(ev(&found[1], "account"), "99");
}

/// A card payment's deposit credits the payer, who is the paying client; a refund's payout to
/// the card debits the trade's payer, another client than the refunding merchant. Either one
/// touching anyone else, or with no request behind it, is a violation.
#[test]
fn card_postings_trace_to_the_card_payment_or_the_refund_of_its_trade() {
    use crate::testkit::{pay_attempt, trade, trade_op};
    let mut obs = registered();
    let buyer = Owner {
        client: 2,
        subject: Subject::User,
    };
    let owners = obs.owners.as_mut().expect("registered");
    owners.insert(40, buyer);
    owners.insert(41, buyer);
    let mut t = trade("t1", "o1", dec!(5), &[]);
    t.pays.push(pay_attempt(
        "c2-p1",
        "x1",
        40,
        crate::AttemptStatus::Succeeded,
    ));
    obs.trades.push(t);
    let mut pay = trade_op("c2-p1", OpKind::Pay, "t1", dec!(5), Outcome::Ok);
    pay.client = 2;
    obs.history.push(pay.into());
    obs.history
        .push(trade_op("c1-r1", OpKind::Refund, "t1", dec!(5), Outcome::Ok).into());
    let (reserve, refunds) = (100, 102);
    let vouchers = &mut obs.shards[0].vouchers;
    vouchers.push(voucher("v0-60", "clr:c2-p1.card", reserve, 40, dec!(5)));
    vouchers.push(voucher("v0-61", "clr:c1-r1.tocard", 40, refunds, dec!(5)));
    vouchers.push(voucher(
        "v0-62",
        "clr:c1-r1.tocard:settle",
        refunds,
        reserve,
        dec!(5),
    ));
    assert_eq!(check(&obs), vec![]);
    let vouchers = &mut obs.shards[0].vouchers;
    // The payout taken from the buyer's other account; a card deposit of a refund; a payout of
    // a refund no client asked.
    vouchers.push(voucher("v0-63", "clr:c1-r1.tocard", 41, refunds, dec!(5)));
    vouchers.push(voucher("v0-64", "clr:c1-r1.card", reserve, 2, dec!(5)));
    vouchers.push(voucher("v0-65", "clr:c1-r9.tocard", 40, refunds, dec!(5)));
    let found = check(&obs);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found
        .iter()
        .all(|v| v.invariant == Invariant::NoUnauthorizedEffect));
    assert_eq!(ev(&found[0], "account"), "41");
}

/// The treasury's transfer moves money between the platform's reserves only.
#[test]
fn a_treasury_transfer_touches_only_bank_reserves() {
    use crate::testkit::account;
    let mut obs = registered();
    let shard = &mut obs.shards[0];
    for id in [100, 104] {
        shard
            .accounts
            .push(account(id, Subject::Reserve, dec!(0), dec!(0)));
    }
    shard
        .accounts
        .push(account(107, Subject::Suspense, dec!(0), dec!(0)));
    shard
        .vouchers
        .push(voucher("v0-70", "clr:xfer-3:settle", 104, 100, dec!(9)));
    shard
        .vouchers
        .push(voucher("v0-72", "clr:suspense-i~c9-d1", 100, 107, dec!(9)));
    assert_eq!(check(&obs), vec![]);
    obs.shards[0]
        .vouchers
        .push(voucher("v0-71", "clr:xfer-4:settle", 2, 100, dec!(9)));
    let v = single(check(&obs), Invariant::NoUnauthorizedEffect);
    assert_eq!(ev(&v, "account"), "2");
}

use super::*;

/// The batch check, once the incremental checker is shown to agree on `obs`.
fn check(obs: &Observation) -> Vec<Violation> {
    crate::testkit::agreeing(super::check, obs)
}
use crate::testkit::{account, entries, ev, freeze, single, valid, voucher};
use crate::{JournalEntry, Subject};
use rust_decimal_macros::dec;

#[test]
fn valid_observation_passes() {
    assert!(check(&valid()).is_empty());
}

#[test]
fn entry_without_voucher_fails() {
    let mut obs = valid();
    // Replacing a voucher by a different one orphans its entries and leaves it unapplied.
    obs.shards[1].vouchers[1] = voucher("v1-9", "sys:sweep-1", 12, 13, dec!(5));
    let found = check(&obs);
    assert!(found.iter().all(|v| v.invariant == Invariant::Derivation));
    let orphans: Vec<_> = found
        .iter()
        .filter(|v| v.evidence.contains_key("seq"))
        .collect();
    assert_eq!(orphans.len(), 2, "{found:#?}");
    assert_eq!(ev(orphans[0], "seq"), "3");
    assert_eq!(ev(orphans[0], "voucher"), "v1-2");
    assert_eq!(ev(orphans[0], "shard"), "1");
    let unapplied = found.iter().find(|v| ev(v, "voucher") == "v1-9").unwrap();
    assert_eq!(ev(unapplied, "request"), "sys:sweep-1");
    assert_eq!(ev(unapplied, "entries"), "none");
}

#[test]
fn duplicated_entry_fails_twice() {
    let mut obs = valid();
    // Applying a leg twice breaks both the voucher's multiset and the account's fold.
    let again = JournalEntry {
        seq: 5,
        ..obs.shards[0].journal[3].clone()
    };
    obs.shards[0].journal.push(again);
    let found = check(&obs);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(ev(&found[0], "voucher"), "v0-2");
    assert_eq!(ev(&found[0], "request"), "c1-2");
    assert_eq!(ev(&found[0], "entries"), "D2:30,C3:30,C3:30");
    assert_eq!(ev(&found[1], "account"), "3");
    assert_eq!(ev(&found[1], "expected"), "60");
    assert_eq!(ev(&found[1], "actual"), "30");
}

#[test]
fn balance_off_journal_fails() {
    let mut obs = valid();
    obs.shards[1].accounts[2].available = dec!(6);
    let v = &single(check(&obs), Invariant::Derivation);
    assert_eq!(ev(v, "account"), "13");
    assert_eq!(ev(v, "shard"), "1");
    assert_eq!(ev(v, "expected"), "-10");
    assert_eq!(ev(v, "actual"), "6");
}

#[test]
fn unposted_account_with_money_fails() {
    let mut obs = valid();
    obs.shards[0]
        .accounts
        .push(account(4, Subject::User, dec!(1), dec!(0)));
    let v = &single(check(&obs), Invariant::Derivation);
    assert_eq!(ev(v, "account"), "4");
    assert_eq!(ev(v, "expected"), "0");
    assert_eq!(ev(v, "actual"), "1");
}

#[test]
fn frozen_without_freeze_fails() {
    let mut obs = valid();
    obs.shards[0].freezes.clear();
    let v = &single(check(&obs), Invariant::Derivation);
    assert_eq!(ev(v, "account"), "3");
    assert_eq!(ev(v, "expected"), "0");
    assert_eq!(ev(v, "actual"), "10");
}

#[test]
fn entry_on_unknown_account_fails() {
    let mut obs = valid();
    let v = voucher("v0-3", "c1-4", 2, 9, dec!(1));
    obs.shards[0].journal.extend(entries(&v, 5));
    obs.shards[0].vouchers.push(v);
    obs.shards[0].accounts[1].available -= dec!(1);
    let v = &single(check(&obs), Invariant::Derivation);
    assert_eq!(ev(v, "seq"), "6");
    assert_eq!(ev(v, "account"), "9");
    assert_eq!(ev(v, "voucher"), "v0-3");
}

#[test]
fn freeze_on_unknown_account_fails() {
    let mut obs = valid();
    obs.shards[1].freezes.push(freeze("f-9", 99, dec!(2)));
    let v = &single(check(&obs), Invariant::Derivation);
    assert_eq!(ev(v, "freeze"), "f-9");
    assert_eq!(ev(v, "account"), "99");
    assert_eq!(ev(v, "shard"), "1");
}

#[test]
fn overflowing_journal_fails_without_panicking() {
    let mut obs = valid();
    let big = voucher("v1-3", "sys:big", 11, 13, Decimal::MAX);
    obs.shards[1].journal.extend(entries(&big, 5));
    obs.shards[1].journal.extend(entries(&big, 7));
    obs.shards[1].vouchers.push(big);
    let found = check(&obs);
    assert!(
        found.iter().any(|v| ev(v, "expected") == "overflow"),
        "{found:#?}"
    );
}

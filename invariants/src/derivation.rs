//! Invariant 3: every balance is derived from the journal, and the journal from the vouchers.
//!
//! Balances are a cache; the journal is the record. If a balance cannot be re-derived by
//! folding its journal entries, or a journal entry cannot be traced back to a voucher leg,
//! then money moved without an accountable reason, even if the totals still balance.

use crate::money::{balance, same, show, signed};
use crate::{Invariant, Observation, ShardSnapshot, Side, Violation, VoucherRecord};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};

/// One posting as both a voucher leg and a journal entry describe it: (account, side, amount).
type Posting = (u64, Side, Decimal);

/// Checks each shard on its own, since vouchers and journals never span shards.
pub fn check(obs: &Observation) -> Vec<Violation> {
    let mut out = Vec::new();
    for shard in &obs.shards {
        out.extend(orphan_entries(shard));
        out.extend(unknown_accounts(shard));
        out.extend(legs_match_entries(shard));
        out.extend(balances_match_journal(shard));
        out.extend(frozen_matches_freezes(shard));
    }
    out
}

fn violation(message: String, shard: u32) -> Violation {
    Violation::new(Invariant::Derivation, message).with("shard", shard)
}

/// (a) A journal entry without a voucher on its shard moved money for no recorded reason.
fn orphan_entries(shard: &ShardSnapshot) -> Vec<Violation> {
    let vouchers: BTreeSet<&str> = shard.vouchers.iter().map(|v| v.voucher.as_str()).collect();
    let orphans = shard
        .journal
        .iter()
        .filter(|e| !vouchers.contains(e.voucher.as_str()));
    orphans
        .map(|e| {
            let msg = format!(
                "journal entry {} on shard {} references voucher {}, which the shard does not hold",
                e.seq, shard.shard, e.voucher
            );
            violation(msg, shard.shard)
                .with("seq", e.seq)
                .with("voucher", &e.voucher)
                .with("account", e.account)
        })
        .collect()
}

/// (e) Entries and freezes must name accounts that exist, or their money has no owner.
fn unknown_accounts(shard: &ShardSnapshot) -> Vec<Violation> {
    let known: BTreeSet<u64> = shard.accounts.iter().map(|a| a.account).collect();
    let n = shard.shard;
    let entries = shard.journal.iter().filter(|e| !known.contains(&e.account));
    let freezes = shard.freezes.iter().filter(|f| !known.contains(&f.account));
    let from_entries = entries.map(|e| {
        let msg = format!(
            "journal entry {} names account {}, which does not exist on shard {n}",
            e.seq, e.account
        );
        violation(msg, n)
            .with("seq", e.seq)
            .with("voucher", &e.voucher)
            .with("account", e.account)
    });
    let from_freezes = freezes.map(|f| {
        let msg = format!(
            "freeze {} names account {}, which does not exist on shard {n}",
            f.key, f.account
        );
        violation(msg, n)
            .with("freeze", &f.key)
            .with("account", f.account)
            .with("amount", f.amount)
    });
    from_entries.chain(from_freezes).collect()
}

/// (b) Each voucher's legs and its journal entries must be the same multiset of postings:
/// a missing entry means a leg was never applied, an extra one that money moved twice.
fn legs_match_entries(shard: &ShardSnapshot) -> Vec<Violation> {
    let mut applied: BTreeMap<&str, Vec<Posting>> = BTreeMap::new();
    for e in &shard.journal {
        let postings = applied.entry(e.voucher.as_str()).or_default();
        postings.push((e.account, e.side, e.amount));
    }
    let mut out = Vec::new();
    for v in &shard.vouchers {
        let mut entries = applied.get(v.voucher.as_str()).cloned().unwrap_or_default();
        entries.sort();
        let legs = sorted_legs(v);
        if legs != entries {
            out.push(mismatch(shard.shard, v, &legs, &entries));
        }
    }
    out
}

fn sorted_legs(v: &VoucherRecord) -> Vec<Posting> {
    let mut legs: Vec<Posting> = v
        .legs
        .iter()
        .map(|l| (l.account, l.side, l.amount))
        .collect();
    legs.sort();
    legs
}

fn mismatch(shard: u32, v: &VoucherRecord, legs: &[Posting], entries: &[Posting]) -> Violation {
    let msg = format!(
        "voucher {} on shard {shard} has legs [{}] but journal entries [{}]",
        v.voucher,
        render(legs),
        render(entries)
    );
    violation(msg, shard)
        .with("voucher", &v.voucher)
        .with("request", &v.request)
        .with("legs", render(legs))
        .with("entries", render(entries))
}

/// Postings as "D1:100,C2:100": compact enough for one line of evidence.
fn render(postings: &[Posting]) -> String {
    let one = |(account, side, amount): &Posting| {
        let s = if *side == Side::Debit { 'D' } else { 'C' };
        format!("{s}{account}:{amount}")
    };
    postings.iter().map(one).collect::<Vec<_>>().join(",")
}

/// (c) available + frozen must equal the fold of the account's journal, credits adding and
/// debits subtracting; an account that was never posted to must hold nothing.
fn balances_match_journal(shard: &ShardSnapshot) -> Vec<Violation> {
    let mut folds: BTreeMap<u64, Option<Decimal>> = BTreeMap::new();
    for e in &shard.journal {
        let fold = folds.entry(e.account).or_insert(Some(Decimal::ZERO));
        *fold = fold.and_then(|f| f.checked_add(signed(e.side, e.amount)));
    }
    let mut out = Vec::new();
    for a in &shard.accounts {
        let expected = folds
            .get(&a.account)
            .copied()
            .unwrap_or(Some(Decimal::ZERO));
        let actual = balance(a);
        if !same(expected, actual) {
            let msg = format!(
                "account {} on shard {} holds {} but its journal folds to {}",
                a.account,
                shard.shard,
                show(actual),
                show(expected)
            );
            out.push(with_amounts(
                violation(msg, shard.shard),
                a.account,
                expected,
                actual,
            ));
        }
    }
    out
}

/// (d) What an account has frozen must be exactly what its active freezes reserve.
fn frozen_matches_freezes(shard: &ShardSnapshot) -> Vec<Violation> {
    let mut reserved: BTreeMap<u64, Option<Decimal>> = BTreeMap::new();
    for f in &shard.freezes {
        let sum = reserved.entry(f.account).or_insert(Some(Decimal::ZERO));
        *sum = sum.and_then(|s| s.checked_add(f.amount));
    }
    let mut out = Vec::new();
    for a in &shard.accounts {
        let expected = reserved
            .get(&a.account)
            .copied()
            .unwrap_or(Some(Decimal::ZERO));
        let actual = Some(a.frozen);
        if !same(expected, actual) {
            let msg = format!(
                "account {} on shard {} has frozen {} but its freezes reserve {}",
                a.account,
                shard.shard,
                a.frozen,
                show(expected)
            );
            out.push(with_amounts(
                violation(msg, shard.shard),
                a.account,
                expected,
                actual,
            ));
        }
    }
    out
}

fn with_amounts(
    v: Violation,
    account: u64,
    expected: Option<Decimal>,
    actual: Option<Decimal>,
) -> Violation {
    v.with("account", account)
        .with("expected", show(expected))
        .with("actual", show(actual))
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(ev(unapplied, "entries"), "");
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
}

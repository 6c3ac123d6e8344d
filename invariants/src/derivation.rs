//! Invariant 3: every balance is derived from the journal, and the journal from the vouchers.
//!
//! Balances are a cache; the journal is the record. If a balance cannot be re-derived by
//! folding its journal entries, or a journal entry cannot be traced back to a voucher leg,
//! then money moved without an accountable reason, even if the totals still balance.

use crate::money::{balance, same, show, signed};
use crate::{
    AccountState, FreezeState, Invariant, JournalEntry, Observation, ShardSnapshot, Side,
    Violation, VoucherRecord,
};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};

/// One posting as both a voucher leg and a journal entry describe it: (account, side, amount).
pub(crate) type Posting = (u64, Side, Decimal);

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
    orphans.map(|e| orphan(shard.shard, e)).collect()
}

/// Journal entry `e` of shard `shard`, whose voucher the shard does not hold.
pub(crate) fn orphan(shard: u32, e: &JournalEntry) -> Violation {
    let msg = format!(
        "journal entry {} on shard {shard} references voucher {}, which the shard does not hold",
        e.seq, e.voucher
    );
    violation(msg, shard)
        .with("seq", e.seq)
        .with("voucher", &e.voucher)
        .with("account", e.account)
}

/// (e) Entries and freezes must name accounts that exist, or their money has no owner.
fn unknown_accounts(shard: &ShardSnapshot) -> Vec<Violation> {
    let known: BTreeSet<u64> = shard.accounts.iter().map(|a| a.account).collect();
    let n = shard.shard;
    let entries = shard.journal.iter().filter(|e| !known.contains(&e.account));
    let freezes = shard.freezes.iter().filter(|f| !known.contains(&f.account));
    let from_entries = entries.map(|e| unknown_entry(n, e));
    let from_freezes = freezes.map(|f| unknown_freeze(n, f));
    from_entries.chain(from_freezes).collect()
}

/// Journal entry `e` of shard `n`, whose account the shard does not hold.
pub(crate) fn unknown_entry(n: u32, e: &JournalEntry) -> Violation {
    let msg = format!(
        "journal entry {} names account {}, which does not exist on shard {n}",
        e.seq, e.account
    );
    violation(msg, n)
        .with("seq", e.seq)
        .with("voucher", &e.voucher)
        .with("account", e.account)
}

/// Freeze `f` of shard `n`, whose account the shard does not hold.
pub(crate) fn unknown_freeze(n: u32, f: &FreezeState) -> Violation {
    let msg = format!(
        "freeze {} names account {}, which does not exist on shard {n}",
        f.key, f.account
    );
    violation(msg, n)
        .with("freeze", &f.key)
        .with("account", f.account)
        .with("amount", f.amount)
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
        let entries = applied.get(v.voucher.as_str()).cloned().unwrap_or_default();
        out.extend(legs_mismatch(shard.shard, v, entries));
    }
    out
}

/// Voucher `v` of shard `shard` against the postings its journal entries made.
pub(crate) fn legs_mismatch(
    shard: u32,
    v: &VoucherRecord,
    mut entries: Vec<Posting>,
) -> Option<Violation> {
    entries.sort();
    let legs = sorted_legs(v);
    (legs != entries).then(|| mismatch(shard, v, &legs, &entries))
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
    let entries = shard.journal.iter();
    let folds = sums_by_account(entries.map(|e| (e.account, signed(e.side, e.amount))));
    each_account(shard, &folds, balance_mismatch)
}

/// The checked sum of `amounts` per account (`None` once a sum overflowed).
fn sums_by_account(
    amounts: impl Iterator<Item = (u64, Decimal)>,
) -> BTreeMap<u64, Option<Decimal>> {
    let mut sums: BTreeMap<u64, Option<Decimal>> = BTreeMap::new();
    for (account, amount) in amounts {
        let sum = sums.entry(account).or_insert(Some(Decimal::ZERO));
        *sum = sum.and_then(|s| s.checked_add(amount));
    }
    sums
}

/// Every account of `shard` judged against its sum (zero for an account with none).
fn each_account(
    shard: &ShardSnapshot,
    sums: &BTreeMap<u64, Option<Decimal>>,
    judge: fn(u32, &AccountState, Option<Decimal>) -> Option<Violation>,
) -> Vec<Violation> {
    let expected = |a: &AccountState| sums.get(&a.account).copied().unwrap_or(Some(Decimal::ZERO));
    let judged = shard
        .accounts
        .iter()
        .map(|a| judge(shard.shard, a, expected(a)));
    judged.flatten().collect()
}

/// Account `a` of shard `shard` against what its journal folds to.
pub(crate) fn balance_mismatch(
    shard: u32,
    a: &AccountState,
    expected: Option<Decimal>,
) -> Option<Violation> {
    let actual = balance(a);
    if same(expected, actual) {
        return None;
    }
    let msg = format!(
        "account {} on shard {shard} holds {} but its journal folds to {}",
        a.account,
        show(actual),
        show(expected)
    );
    Some(with_amounts(
        violation(msg, shard),
        a.account,
        expected,
        actual,
    ))
}

/// Whether account `a`'s balance is what its journal folds to (no message built).
pub(crate) fn balance_agrees(a: &AccountState, expected: Option<Decimal>) -> bool {
    same(expected, balance(a))
}

/// (d) What an account has frozen must be exactly what its active freezes reserve.
fn frozen_matches_freezes(shard: &ShardSnapshot) -> Vec<Violation> {
    let reserved = sums_by_account(shard.freezes.iter().map(|f| (f.account, f.amount)));
    each_account(shard, &reserved, frozen_mismatch)
}

/// Account `a` of shard `shard` against what its freezes reserve.
pub(crate) fn frozen_mismatch(
    shard: u32,
    a: &AccountState,
    expected: Option<Decimal>,
) -> Option<Violation> {
    let actual = Some(a.frozen);
    if same(expected, actual) {
        return None;
    }
    let msg = format!(
        "account {} on shard {shard} has frozen {} but its freezes reserve {}",
        a.account,
        a.frozen,
        show(expected)
    );
    Some(with_amounts(
        violation(msg, shard),
        a.account,
        expected,
        actual,
    ))
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
#[path = "derivation/tests.rs"]
mod tests;

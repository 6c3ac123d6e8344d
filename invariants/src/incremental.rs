//! The periodic check, incrementally: each snapshot is judged by what changed since the
//! previous one ([`Delta`]), so that a run's checking costs time linear in its length.
//!
//! Applying a delta to the checker's [`World`] says which keys it touched ([`Dirty`]); only the
//! rules about those keys are judged again, each by the very per-key function its batch
//! checker calls, on what the world's indexes hold for that key. The batch checkers
//! ([`crate::check_always`]) stay the oracle: for any sequence of observations, the violations
//! this checker reports (first sighting of each, by invariant and message) equal those of the
//! batch checkers run on each whole observation (`incremental/tests.rs` proves it on random
//! sequences and on every failing case of the families' unit tests).

use crate::delta::Delta;
use crate::world::{Dirty, ShardWorld, World};
use crate::Id;
use crate::{
    conservation, derivation, exactly_once, idempotency, non_negativity, refund_bound, transitions,
    voucher_balance, Violation,
};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};

/// The always-invariants, checked one delta at a time.
#[derive(Debug, Default)]
pub struct IncrementalChecker {
    world: World,
}

impl IncrementalChecker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one snapshot's changes and returns the violations of the rules they touched
    /// (a violation that persists is reported again only if its keys are touched again);
    /// then folds away what the delta seals, judged for the last time.
    pub fn step(&mut self, delta: &Delta) -> Vec<Violation> {
        let dirty = self.world.apply(delta);
        let found = self.judge(&dirty, delta);
        self.world.seal(&delta.seals);
        found
    }

    /// The rules about the keys in `dirty`, judged on the world as it now is; the rules about
    /// one trade or activity alone on the whole record `delta` brought (the world keeps only
    /// part of it).
    fn judge(&self, dirty: &Dirty, delta: &Delta) -> Vec<Violation> {
        let w = &self.world;
        let mut out = Vec::new();
        ledger_rules(w, dirty, &mut out);
        if dirty.conservation {
            out.extend(conservation_rule(w));
        }
        exactly_once_rules(w, dirty, &mut out);
        idempotency_rules(w, dirty, &mut out);
        let trades = last_by_key(&delta.trades.upserts, |t| &t.trade);
        for t in dirty.trades.iter().filter_map(|id| trades.get(id)) {
            refund_bound::check_trade(t, &mut out);
            transitions::check_trade(t, &mut out);
        }
        let activities = last_by_key(&delta.activities.upserts, |a| &a.xid);
        for a in dirty.activities.iter().filter_map(|x| activities.get(x)) {
            transitions::check_activity(a, &mut out);
        }
        out
    }

    /// The world as of the last delta.
    pub fn world(&self) -> &World {
        &self.world
    }
}

/// Vouchers, entries, freezes and accounts: voucher balance, derivation, non-negativity.
fn ledger_rules(w: &World, dirty: &Dirty, out: &mut Vec<Violation>) {
    for (&n, shard) in &w.shards {
        let mine = |set: &BTreeSet<(u32, u64)>| -> Vec<u64> {
            set.range((n, 0)..=(n, u64::MAX)).map(|(_, k)| *k).collect()
        };
        let vouchers = dirty
            .vouchers
            .range((n, Id::default())..)
            .take_while(|(s, _)| *s == n);
        for (_, id) in vouchers {
            if let Some(v) = shard.voucher(id) {
                voucher_balance::check_voucher(n, v, out);
                out.extend(derivation::legs_mismatch(n, v, shard.postings(id)));
            }
        }
        entry_rules(n, shard, dirty, out);
        for a in mine(&dirty.accounts) {
            if let Some(account) = shard.accounts.get(&a) {
                non_negativity::check_account(n, account, out);
                out.extend(balance_rule(n, shard, account));
                out.extend(derivation::frozen_mismatch(n, account, shard.reserved(a)));
            }
        }
    }
}

/// The entries and freezes whose voucher or account may have appeared or gone.
fn entry_rules(n: u32, shard: &ShardWorld, dirty: &Dirty, out: &mut Vec<Violation>) {
    let in_shard = |s: &&(u32, u64)| s.0 == n;
    let mut seqs: BTreeSet<u64> = dirty.entries.iter().filter(in_shard).map(|s| s.1).collect();
    let mut freezes: BTreeSet<&str> = dirty
        .freezes
        .iter()
        .filter(|(s, _)| *s == n)
        .map(|(_, k)| k.as_str())
        .collect();
    for (_, v) in dirty.voucher_presence.iter().filter(|(s, _)| *s == n) {
        seqs.extend(shard.entries_of(v));
    }
    for (_, a) in dirty.born_or_gone.iter().filter(in_shard) {
        seqs.extend(shard.entries_by_account.get(a).into_iter().flatten());
        let keys = shard.freezes_by_account.get(a).into_iter().flatten();
        freezes.extend(keys.map(Id::as_str));
    }
    for e in seqs.iter().filter_map(|s| shard.entry(*s)) {
        if !shard.holds_voucher(&e.voucher) {
            out.push(derivation::orphan(n, e));
        }
        if !shard.accounts.contains_key(&e.account) {
            out.push(derivation::unknown_entry(n, e));
        }
    }
    for f in freezes.iter().filter_map(|k| shard.freezes.get(*k)) {
        if !shard.accounts.contains_key(&f.account) {
            out.push(derivation::unknown_freeze(n, f));
        }
    }
}

/// An account against its journal: the running fold decides, the exact fold words it.
fn balance_rule(n: u32, shard: &ShardWorld, account: &crate::AccountState) -> Option<Violation> {
    if derivation::balance_agrees(account, shard.fold(account.account)) {
        return None;
    }
    derivation::balance_mismatch(n, account, shard.fold_exactly(account.account))
}

/// Money is conserved: the running subtotals decide, exact ones word a violation.
fn conservation_rule(w: &World) -> Vec<Violation> {
    let total = w
        .shards
        .values()
        .try_fold(Decimal::ZERO, |t, s| t.checked_add(s.subtotal?));
    if total == Some(Decimal::ZERO) {
        return Vec::new();
    }
    let exact = w.shards.iter().map(|(n, s)| {
        let accounts = s.snapshot(*n);
        (*n, conservation::shard_total(&accounts))
    });
    conservation::verdict(exact.collect())
}

/// Exactly-once: each touched operation against its request's vouchers, each touched request
/// for a phantom, each touched branch for a double post.
fn exactly_once_rules(w: &World, dirty: &Dirty, out: &mut Vec<Violation>) {
    let mut ops: BTreeSet<usize> = dirty.ops.clone();
    for r in &dirty.requests {
        ops.extend(w.ops_of(r));
    }
    for op in ops.iter().filter_map(|i| w.history.get(*i)) {
        if op.kind.posts_voucher() {
            let found = w.vouchers_at(w.plain_by_request.get(&op.request));
            exactly_once::check_op(op, &found, out);
        }
    }
    for r in &dirty.requests {
        let found = w.vouchers_at(w.plain_by_request.get(r));
        out.extend(exactly_once::phantom(r, w.asked(r), &found));
    }
    for (xid, request) in &dirty.branches {
        let key = (xid.clone(), request.clone());
        let found = w.vouchers_at(w.branch_posts.get(&key));
        out.extend(exactly_once::branch_twice(xid, request, &found));
    }
}

/// Idempotency: touched operations' replies and effects, touched keys, trades and
/// out_trade_nos.
fn idempotency_rules(w: &World, dirty: &Dirty, out: &mut Vec<Violation>) {
    let committed = |xids| {
        let all = w.activities_in(xids);
        all.into_iter()
            .filter(idempotency::decided_commit)
            .collect::<Vec<_>>()
    };
    let mut ops: BTreeSet<usize> = dirty.ops.clone();
    for (kind, key) in &dirty.keys {
        out.extend(idempotency::effect_twice(
            *kind,
            key,
            &committed(w.by_key.get(&(*kind, key.clone()))),
        ));
        let same_kind = |i: &usize| {
            w.history
                .get(*i)
                .and_then(|op| idempotency::activity_kind(op.kind))
                == Some(*kind)
        };
        ops.extend(w.ops_of(key).filter(same_kind));
    }
    for t in &dirty.pay_trades {
        out.extend(idempotency::paid_twice(
            t,
            &committed(w.pays_by_trade.get(t)),
        ));
    }
    for op in ops.iter().filter_map(|i| w.history.get(*i)) {
        let Some(kind) = idempotency::activity_kind(op.kind) else {
            continue;
        };
        let under_key = w.activities_in(w.by_key.get(&(kind, op.request.clone())));
        out.extend(idempotency::reply_matches_effect(op, &under_key));
    }
    for i in &dirty.ops {
        if let Some(op) = w.history.get(*i) {
            idempotency::check_replies(op, out);
        }
    }
    for (merchant, no) in &dirty.out_nos {
        let ids = w.trades_by_no.get(&(*merchant, no.clone()));
        let list: Vec<&str> = ids
            .into_iter()
            .flatten()
            .filter(|t| w.trades.contains_key(*t))
            .map(Id::as_str)
            .collect();
        out.extend(idempotency::trades_twice(*merchant, no, &list));
    }
}

/// The records of `upserts` by key, the last of each key winning (as applying them does).
fn last_by_key<T>(upserts: &[T], key: impl Fn(&T) -> &Id) -> BTreeMap<&Id, &T> {
    upserts.iter().map(|t| (key(t), t)).collect()
}

#[cfg(test)]
#[path = "incremental/tests.rs"]
pub(crate) mod tests;

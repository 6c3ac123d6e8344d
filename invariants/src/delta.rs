//! What changed between two successive god's-eye snapshots: the input of the incremental
//! checker ([`crate::incremental`]).
//!
//! A delta names, per keyed collection, the new value of every entry that appeared or changed
//! and the key of every entry that disappeared (a node that lost unsynced writes in a crash
//! can lose vouchers, journal entries, trades or activities). It covers exactly what the
//! always-invariants read: accounts, vouchers, journal entries and freezes of every shard,
//! trades, activities and the clients' history. The harness builds one per snapshot from
//! what each node changed since the previous one; [`Delta::between`] builds one from two whole
//! observations (the oracle's way, used by the tests and by a node read whole).

use crate::Id;
use crate::{
    AccountState, ActivityState, FreezeState, JournalEntry, Observation, Operation, ShardSnapshot,
    TradeState, VoucherRecord,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Changes to one keyed collection: entries that appeared or changed (their new value), and
/// keys of entries that disappeared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes<K, V> {
    pub upserts: Vec<V>,
    pub removed: Vec<K>,
}

impl<K, V> Default for Changes<K, V> {
    fn default() -> Self {
        Changes {
            upserts: Vec::new(),
            removed: Vec::new(),
        }
    }
}

impl<K: Ord + Clone, V: Clone + PartialEq> Changes<K, V> {
    /// The changes that turn `old` into `new`, in key order.
    pub fn between(old: &BTreeMap<K, V>, new: &BTreeMap<K, V>) -> Self {
        let upserts = new
            .iter()
            .filter(|(k, v)| old.get(*k) != Some(*v))
            .map(|(_, v)| v.clone())
            .collect();
        let removed = old
            .keys()
            .filter(|k| !new.contains_key(*k))
            .cloned()
            .collect();
        Changes { upserts, removed }
    }
}

impl<K, V> Changes<K, V> {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removed.is_empty()
    }

    /// Adds `other`'s changes after this one's.
    pub fn extend(&mut self, other: Changes<K, V>) {
        self.upserts.extend(other.upserts);
        self.removed.extend(other.removed);
    }
}

/// What changed on one ledger shard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardDelta {
    pub shard: u32,
    /// By account id.
    pub accounts: Changes<u64, AccountState>,
    /// By voucher id.
    pub vouchers: Changes<Id, VoucherRecord>,
    /// By sequence number.
    pub journal: Changes<u64, JournalEntry>,
    /// By freeze key.
    pub freezes: Changes<Id, FreezeState>,
}

impl ShardDelta {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.vouchers.is_empty()
            && self.journal.is_empty()
            && self.freezes.is_empty()
    }

    /// The changes that turn shard `old` into `new` (`None`: the shard was not there).
    pub fn between(shard: u32, old: Option<&ShardSnapshot>, new: &ShardSnapshot) -> Self {
        let empty = ShardSnapshot::default();
        let old = old.unwrap_or(&empty);
        ShardDelta {
            shard,
            accounts: Changes::between(&keyed_accounts(old), &keyed_accounts(new)),
            vouchers: Changes::between(&keyed_vouchers(old), &keyed_vouchers(new)),
            journal: Changes::between(&keyed_journal(old), &keyed_journal(new)),
            freezes: Changes::between(&keyed_freezes(old), &keyed_freezes(new)),
        }
    }
}

/// One operation of the clients' history that was invoked or changed (completed, or re-asked),
/// by its position in the history. Shared, not copied: the harness's history and the checker's
/// world hold the same record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpChange {
    pub index: u64,
    pub op: Arc<Operation>,
}

/// What changed between two snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// Simulated milliseconds at which the newer snapshot was read.
    pub at_ms: u64,
    /// Only the shards that changed.
    pub shards: Vec<ShardDelta>,
    /// By trade id.
    pub trades: Changes<Id, TradeState>,
    /// By xid.
    pub activities: Changes<Id, ActivityState>,
    /// Operations that are new or changed.
    pub history: Vec<OpChange>,
    /// The length of the history after this delta (a longer one is cut to it).
    pub history_len: u64,
    /// Shards whose journal is final below a sequence number, as (shard, bound): every entry
    /// below it, and the voucher each names, is durable on its shard and can never change
    /// again, so the world judges it once more with this delta and then folds it away
    /// ([`crate::world::World::seal`]). A whole read's difference leaves such entries out.
    #[serde(default)]
    pub seals: Vec<(u32, u64)>,
}

impl Delta {
    /// The changes that turn observation `old` into `new` (what the always-invariants read).
    pub fn between(old: &Observation, new: &Observation) -> Self {
        let old_shards: BTreeMap<u32, &ShardSnapshot> =
            old.shards.iter().map(|s| (s.shard, s)).collect();
        let mut shards: Vec<ShardDelta> = new
            .shards
            .iter()
            .map(|s| (old_shards.get(&s.shard).copied(), s))
            .map(|(old, s)| (old.is_none(), ShardDelta::between(s.shard, old, s)))
            // A shard that appears is named even when empty: the checks count shards.
            .filter(|(new, d)| *new || !d.is_empty())
            .map(|(_, d)| d)
            .collect();
        let kept: std::collections::BTreeSet<u32> = new.shards.iter().map(|s| s.shard).collect();
        for (n, s) in old_shards.iter().filter(|(n, _)| !kept.contains(n)) {
            shards.push(ShardDelta::between(*n, Some(s), &ShardSnapshot::default()));
        }
        let history = new
            .history
            .iter()
            .enumerate()
            .filter(|(i, op)| old.history.get(*i) != Some(*op))
            .map(|(i, op)| OpChange {
                index: i as u64,
                op: op.clone(),
            })
            .collect();
        Delta {
            at_ms: new.at_ms,
            shards,
            trades: Changes::between(&keyed_trades(&old.trades), &keyed_trades(&new.trades)),
            activities: Changes::between(
                &keyed_activities(&old.activities),
                &keyed_activities(&new.activities),
            ),
            history,
            history_len: new.history.len() as u64,
            seals: Vec::new(),
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
            && self.trades.is_empty()
            && self.activities.is_empty()
            && self.history.is_empty()
    }

    /// An empty delta: nothing changed, with the history of length `history_len`.
    pub fn unchanged(at_ms: u64, history_len: u64) -> Self {
        Delta {
            at_ms,
            history_len,
            ..Delta::default()
        }
    }
}

/// A shard's accounts by id.
pub fn keyed_accounts(s: &ShardSnapshot) -> BTreeMap<u64, AccountState> {
    s.accounts.iter().map(|a| (a.account, a.clone())).collect()
}

/// A shard's vouchers by id.
pub fn keyed_vouchers(s: &ShardSnapshot) -> BTreeMap<Id, VoucherRecord> {
    s.vouchers
        .iter()
        .map(|v| (v.voucher.clone(), v.clone()))
        .collect()
}

/// A shard's journal by sequence number.
pub fn keyed_journal(s: &ShardSnapshot) -> BTreeMap<u64, JournalEntry> {
    s.journal.iter().map(|e| (e.seq, e.clone())).collect()
}

/// A shard's freezes by key.
pub fn keyed_freezes(s: &ShardSnapshot) -> BTreeMap<Id, FreezeState> {
    s.freezes
        .iter()
        .map(|f| (f.key.clone(), f.clone()))
        .collect()
}

/// Trades by id.
pub fn keyed_trades(trades: &[TradeState]) -> BTreeMap<Id, TradeState> {
    trades
        .iter()
        .map(|t| (t.trade.clone(), t.clone()))
        .collect()
}

/// Activities by xid.
pub fn keyed_activities(activities: &[ActivityState]) -> BTreeMap<Id, ActivityState> {
    activities
        .iter()
        .map(|a| (a.xid.clone(), a.clone()))
        .collect()
}

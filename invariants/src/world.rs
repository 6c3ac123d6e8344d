//! The incremental checker's copy of the platform: every entity the always-invariants read,
//! keyed, kept current by applying one [`Delta`] per snapshot.

use crate::delta::{Changes, Delta, ShardDelta};
use crate::{
    AccountState, ActivityState, FreezeState, JournalEntry, Observation, Operation, ShardSnapshot,
    TradeState, VoucherRecord,
};
use std::collections::BTreeMap;

/// One ledger shard, keyed.
#[derive(Debug, Clone, Default)]
pub struct ShardWorld {
    pub accounts: BTreeMap<u64, AccountState>,
    pub vouchers: BTreeMap<String, VoucherRecord>,
    pub journal: BTreeMap<u64, JournalEntry>,
    pub freezes: BTreeMap<String, FreezeState>,
}

/// Everything the always-invariants read, as of the last applied delta.
#[derive(Debug, Clone, Default)]
pub struct World {
    pub at_ms: u64,
    pub shards: BTreeMap<u32, ShardWorld>,
    pub trades: BTreeMap<String, TradeState>,
    pub activities: BTreeMap<String, ActivityState>,
    /// By position; an index past the end grows it.
    pub history: Vec<Operation>,
}

impl World {
    /// Applies one delta.
    pub fn apply(&mut self, delta: &Delta) {
        self.at_ms = delta.at_ms;
        for d in &delta.shards {
            self.apply_shard(d);
        }
        apply(&mut self.trades, &delta.trades, |t| t.trade.clone());
        apply(&mut self.activities, &delta.activities, |a| a.xid.clone());
        for c in &delta.history {
            let i = c.index as usize;
            if i >= self.history.len() {
                self.history.resize(i + 1, c.op.clone());
            }
            self.history[i] = c.op.clone();
        }
    }

    fn apply_shard(&mut self, d: &ShardDelta) {
        let s = self.shards.entry(d.shard).or_default();
        apply(&mut s.accounts, &d.accounts, |a| a.account);
        apply(&mut s.vouchers, &d.vouchers, |v| v.voucher.clone());
        apply(&mut s.journal, &d.journal, |e| e.seq);
        apply(&mut s.freezes, &d.freezes, |f| f.key.clone());
    }

    /// The whole world as an observation (shards, trades and activities in key order).
    pub fn observation(&self) -> Observation {
        Observation {
            at_ms: self.at_ms,
            shards: self
                .shards
                .iter()
                .map(|(n, s)| ShardSnapshot {
                    shard: *n,
                    accounts: s.accounts.values().cloned().collect(),
                    freezes: s.freezes.values().cloned().collect(),
                    vouchers: s.vouchers.values().cloned().collect(),
                    journal: s.journal.values().cloned().collect(),
                    ..ShardSnapshot::default()
                })
                .collect(),
            trades: self.trades.values().cloned().collect(),
            activities: self.activities.values().cloned().collect(),
            history: self.history.clone(),
            ..Observation::default()
        }
    }
}

/// Applies `changes` to `map`: removals first, then upserts.
pub fn apply<K: Ord, V: Clone>(
    map: &mut BTreeMap<K, V>,
    changes: &Changes<K, V>,
    key: impl Fn(&V) -> K,
) where
    K: Clone,
{
    for k in &changes.removed {
        map.remove(k);
    }
    for v in &changes.upserts {
        map.insert(key(v), v.clone());
    }
}

//! The incremental checker's copy of the platform: every entity the always-invariants read,
//! keyed, with the indexes their rules look things up by, kept current by applying one
//! [`Delta`] per snapshot. Applying a delta also says which keys it touched ([`Dirty`]): the
//! only ones whose rules can have changed their verdict.

use crate::delta::{Delta, OpChange, ShardDelta};
use crate::exactly_once::Found;
use crate::journal::Journal;
use crate::kept::{KeptActivity, KeptTrade};
use crate::money::{balance, side_total, signed};
use crate::small_set::SmallSet;
use crate::Id;
use crate::{
    AccountState, ActivityKind, FreezeState, JournalEntry, Observation, Operation, ShardSnapshot,
    Side, VoucherRecord,
};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One ledger shard, keyed, with its indexes and running sums.
#[derive(Debug, Clone, Default)]
pub struct ShardWorld {
    pub accounts: BTreeMap<u64, AccountState>,
    /// Every voucher id that the shard's vouchers or journal entries name.
    vouchers: BTreeMap<Id, VoucherSlot>,
    /// How many of `vouchers` hold a voucher.
    held: usize,
    journal: Journal,
    pub freezes: BTreeMap<Id, FreezeState>,
    pub(crate) entries_by_account: BTreeMap<u64, SmallSet<u64>>,
    pub(crate) freezes_by_account: BTreeMap<u64, SmallSet<Id>>,
    /// Each account's journal, folded (`None`: overflowed); absent means no entry.
    pub(crate) folds: BTreeMap<u64, Option<Decimal>>,
    /// Accounts whose fold a removed entry left stale.
    stale: BTreeSet<u64>,
    /// Σ of every account's balance, kept as accounts change (`None`: recompute).
    pub(crate) subtotal: Option<Decimal>,
    /// Journal entries below this sequence number are sealed: final, and folded away.
    sealed: u64,
    /// Each account's sealed entries folded in sequence order (`None`: overflowed): where its
    /// exact fold starts.
    sealed_folds: BTreeMap<u64, Option<Decimal>>,
}

/// A voucher id in a shard's world: the voucher, if the shard holds it, and the journal
/// entries that name it (an entry may name a voucher the shard does not hold: an orphan).
/// One map for both, so that a voucher's entries cost no second key.
#[derive(Debug, Clone, Default)]
struct VoucherSlot {
    held: Held,
    entries: SmallSet<u64>,
}

/// What a shard's world holds of one voucher.
#[derive(Debug, Clone, Default)]
enum Held {
    #[default]
    Absent,
    /// The whole record (boxed, so that the slot of a sealed voucher stays small).
    Whole(Box<VoucherRecord>),
    /// Sealed: final, and judged for every rule but exactly-once, which still reads its
    /// debit total.
    Sealed(Option<Decimal>),
}

impl VoucherSlot {
    fn is_empty(&self) -> bool {
        matches!(self.held, Held::Absent) && self.entries.is_empty()
    }

    /// Keeps of the voucher only what is read of it once sealed.
    fn seal(&mut self) {
        if let Held::Whole(v) = &self.held {
            self.held = Held::Sealed(side_total(&v.legs, Side::Debit));
        }
    }
}

/// Everything the always-invariants read, as of the last applied delta.
#[derive(Debug, Clone, Default)]
pub struct World {
    pub at_ms: u64,
    pub shards: BTreeMap<u32, ShardWorld>,
    /// Trades and activities as kept once their own rules judged them ([`crate::kept`]).
    pub trades: BTreeMap<Id, KeptTrade>,
    pub activities: BTreeMap<Id, KeptActivity>,
    /// By position, each shared with the harness's history.
    pub history: Vec<Arc<Operation>>,
    pub(crate) ops_by_request: BTreeMap<Id, SmallSet<usize>>,
    /// Vouchers outside any activity, by request: (shard, voucher id).
    pub(crate) plain_by_request: BTreeMap<Id, SmallSet<(u32, Id)>>,
    /// Branch vouchers, by (xid, request).
    pub(crate) branch_posts: BTreeMap<(Id, Id), SmallSet<(u32, Id)>>,
    /// Every activity under its (kind, business key), by xid.
    pub(crate) by_key: BTreeMap<(ActivityKind, Id), SmallSet<Id>>,
    /// Payment activities by trade.
    pub(crate) pays_by_trade: BTreeMap<Id, SmallSet<Id>>,
    /// Trades by (merchant, out_trade_no).
    pub(crate) trades_by_no: BTreeMap<(u64, Id), SmallSet<Id>>,
}

/// The keys one delta touched: the rules about them must be judged again.
#[derive(Debug, Default)]
pub struct Dirty {
    /// Accounts whose state, journal or freezes changed.
    pub accounts: BTreeSet<(u32, u64)>,
    /// Accounts that appeared or disappeared: their entries and freezes name them.
    pub born_or_gone: BTreeSet<(u32, u64)>,
    /// Vouchers that changed, or whose journal entries did.
    pub vouchers: BTreeSet<(u32, Id)>,
    /// Vouchers that appeared or disappeared: their entries reference them.
    pub voucher_presence: BTreeSet<(u32, Id)>,
    pub entries: BTreeSet<(u32, u64)>,
    pub freezes: BTreeSet<(u32, Id)>,
    /// Whether any balance changed.
    pub conservation: bool,
    /// Requests whose plain vouchers or operations changed.
    pub requests: BTreeSet<Id>,
    pub branches: BTreeSet<(Id, Id)>,
    pub ops: BTreeSet<usize>,
    pub trades: BTreeSet<Id>,
    pub out_nos: BTreeSet<(u64, Id)>,
    pub activities: BTreeSet<Id>,
    pub keys: BTreeSet<(ActivityKind, Id)>,
    pub pay_trades: BTreeSet<Id>,
}

impl World {
    /// Applies one delta (removals before upserts) and says what it touched.
    pub fn apply(&mut self, delta: &Delta) -> Dirty {
        let mut dirty = Dirty::default();
        self.at_ms = delta.at_ms;
        for d in &delta.shards {
            self.apply_shard(d, &mut dirty);
        }
        for id in &delta.trades.removed {
            self.remove_trade(id, &mut dirty);
        }
        for t in &delta.trades.upserts {
            self.remove_trade(&t.trade, &mut dirty);
            self.insert_trade(KeptTrade::of(t), &mut dirty);
        }
        for xid in &delta.activities.removed {
            self.remove_activity(xid, &mut dirty);
        }
        for a in &delta.activities.upserts {
            self.remove_activity(&a.xid, &mut dirty);
            self.insert_activity(KeptActivity::of(a), &mut dirty);
        }
        for c in &delta.history {
            self.apply_op(c, &mut dirty);
        }
        self.cut_history(delta.history_len as usize, &mut dirty);
        dirty
    }

    fn apply_shard(&mut self, d: &ShardDelta, dirty: &mut Dirty) {
        let n = d.shard;
        let mut shard = self.shards.remove(&n).unwrap_or_default();
        for k in &d.accounts.removed {
            shard.set_account(n, *k, None, dirty);
        }
        for a in &d.accounts.upserts {
            shard.set_account(n, a.account, Some(a.clone()), dirty);
        }
        for k in &d.vouchers.removed {
            let old = shard.set_voucher(n, k, None, dirty);
            self.unindex_voucher(n, old.as_ref(), dirty);
        }
        for v in &d.vouchers.upserts {
            let old = shard.set_voucher(n, &v.voucher, Some(v.clone()), dirty);
            self.unindex_voucher(n, old.as_ref(), dirty);
            self.index_voucher(n, v, dirty);
        }
        for k in &d.journal.removed {
            shard.set_entry(n, *k, None, dirty);
        }
        for e in &d.journal.upserts {
            shard.set_entry(n, e.seq, Some(e.clone()), dirty);
        }
        for k in &d.freezes.removed {
            shard.set_freeze(n, k, None, dirty);
        }
        for f in &d.freezes.upserts {
            shard.set_freeze(n, &f.key, Some(f.clone()), dirty);
        }
        shard.settle();
        self.shards.insert(n, shard);
    }

    fn index_voucher(&mut self, n: u32, v: &VoucherRecord, dirty: &mut Dirty) {
        let at = (n, v.voucher.clone());
        match &v.xid {
            None => {
                dirty.requests.insert(v.request.clone());
                let set = self.plain_by_request.entry(v.request.clone()).or_default();
                set.insert(at);
            }
            Some(xid) => {
                let branch = (xid.clone(), v.request.clone());
                dirty.branches.insert(branch.clone());
                self.branch_posts.entry(branch).or_default().insert(at);
            }
        }
    }

    fn unindex_voucher(&mut self, n: u32, old: Option<&VoucherRecord>, dirty: &mut Dirty) {
        let Some(v) = old else { return };
        let at = (n, v.voucher.clone());
        match &v.xid {
            None => {
                dirty.requests.insert(v.request.clone());
                remove_from(&mut self.plain_by_request, &v.request, &at);
            }
            Some(xid) => {
                let branch = (xid.clone(), v.request.clone());
                dirty.branches.insert(branch.clone());
                remove_from(&mut self.branch_posts, &branch, &at);
            }
        }
    }

    fn remove_trade(&mut self, id: &str, dirty: &mut Dirty) {
        dirty.trades.insert(Id::from(id));
        if let Some(t) = self.trades.remove(id) {
            let no = (t.merchant, t.out_trade_no.clone());
            remove_from(&mut self.trades_by_no, &no, &t.trade);
            dirty.out_nos.insert(no);
        }
    }

    fn insert_trade(&mut self, t: KeptTrade, dirty: &mut Dirty) {
        let no = (t.merchant, t.out_trade_no.clone());
        self.trades_by_no
            .entry(no.clone())
            .or_default()
            .insert(t.trade.clone());
        dirty.out_nos.insert(no);
        dirty.trades.insert(t.trade.clone());
        self.trades.insert(t.trade.clone(), t);
    }

    fn remove_activity(&mut self, xid: &str, dirty: &mut Dirty) {
        dirty.activities.insert(Id::from(xid));
        if let Some(a) = self.activities.remove(xid) {
            let key = (a.kind, a.key.clone());
            remove_from(&mut self.by_key, &key, &a.xid);
            dirty.keys.insert(key);
            if a.kind == ActivityKind::Pay {
                remove_from(&mut self.pays_by_trade, &a.trade, &a.xid);
                dirty.pay_trades.insert(a.trade);
            }
        }
    }

    fn insert_activity(&mut self, a: KeptActivity, dirty: &mut Dirty) {
        let key = (a.kind, a.key.clone());
        self.by_key
            .entry(key.clone())
            .or_default()
            .insert(a.xid.clone());
        dirty.keys.insert(key);
        if a.kind == ActivityKind::Pay {
            let set = self.pays_by_trade.entry(a.trade.clone()).or_default();
            set.insert(a.xid.clone());
            dirty.pay_trades.insert(a.trade.clone());
        }
        dirty.activities.insert(a.xid.clone());
        self.activities.insert(a.xid.clone(), a);
    }

    fn apply_op(&mut self, c: &OpChange, dirty: &mut Dirty) {
        let i = c.index as usize;
        if i >= self.history.len() {
            self.history.resize(i + 1, c.op.clone());
        } else {
            let old = &self.history[i].request;
            dirty.requests.insert(old.clone());
            remove_from(&mut self.ops_by_request, &old.clone(), &i);
        }
        self.history[i] = c.op.clone();
        let request = c.op.request.clone();
        self.ops_by_request
            .entry(request.clone())
            .or_default()
            .insert(i);
        dirty.requests.insert(request);
        dirty.ops.insert(i);
    }

    fn cut_history(&mut self, len: usize, dirty: &mut Dirty) {
        while self.history.len() > len {
            let i = self.history.len() - 1;
            let op = self.history.pop().expect("longer than len");
            remove_from(&mut self.ops_by_request, &op.request, &i);
            dirty.requests.insert(op.request.clone());
            dirty.ops.remove(&i);
        }
    }

    /// The world's shards and history as an observation (shards in key order). Its trades and
    /// activities are not in it: the world keeps them only in part ([`World::trades`]).
    pub fn observation(&self) -> Observation {
        Observation {
            at_ms: self.at_ms,
            shards: self.shards.iter().map(|(n, s)| s.snapshot(*n)).collect(),
            history: self.history.clone(),
            ..Observation::default()
        }
    }

    /// Seals each (shard, bound): the journal below the bound is final (durable on its shard,
    /// never to change), so it is folded away once it has been judged. Bounds only rise.
    pub fn seal(&mut self, seals: &[(u32, u64)]) {
        for (n, bound) in seals {
            if let Some(shard) = self.shards.get_mut(n) {
                shard.seal(*bound);
            }
        }
    }

    /// Each shard's sealed bound, where anything is sealed.
    pub fn seals(&self) -> BTreeMap<u32, u64> {
        let sealed = self.shards.iter().map(|(n, s)| (*n, s.sealed));
        sealed.filter(|(_, b)| *b > 0).collect()
    }

    /// Operations under `request`, by position.
    pub(crate) fn ops_of(&self, request: &str) -> impl Iterator<Item = usize> + '_ {
        self.ops_by_request
            .get(request)
            .into_iter()
            .flatten()
            .copied()
    }

    /// Whether any operation asked for `request`.
    pub(crate) fn asked(&self, request: &str) -> bool {
        self.ops_by_request
            .get(request)
            .is_some_and(|s| !s.is_empty())
    }

    /// The vouchers at `at` (shard, voucher id), as exactly-once reads them.
    pub(crate) fn vouchers_at<'a>(&'a self, at: Option<&'a SmallSet<(u32, Id)>>) -> Vec<Found<'a>> {
        let one = |(n, id): &'a (u32, Id)| self.shards.get(n)?.found(*n, id);
        at.into_iter().flatten().filter_map(one).collect()
    }

    /// The activities with the given xids.
    pub(crate) fn activities_in<'a>(
        &'a self,
        xids: Option<&'a SmallSet<Id>>,
    ) -> Vec<&'a KeptActivity> {
        let one = |x: &Id| self.activities.get(x);
        xids.into_iter().flatten().filter_map(one).collect()
    }
}

impl ShardWorld {
    fn set_account(&mut self, n: u32, id: u64, new: Option<AccountState>, dirty: &mut Dirty) {
        let old = match &new {
            Some(a) => self.accounts.insert(id, a.clone()),
            None => self.accounts.remove(&id),
        };
        if old.is_none() != new.is_none() {
            dirty.born_or_gone.insert((n, id));
        }
        if old == new {
            return;
        }
        let delta = |a: &Option<AccountState>| a.as_ref().map_or(Some(Decimal::ZERO), balance);
        self.subtotal = match (self.subtotal, delta(&old), delta(&new)) {
            (Some(s), Some(o), Some(v)) => s.checked_sub(o).and_then(|s| s.checked_add(v)),
            _ => None,
        };
        dirty.accounts.insert((n, id));
        dirty.conservation = true;
    }

    fn set_voucher(
        &mut self,
        n: u32,
        id: &str,
        new: Option<VoucherRecord>,
        dirty: &mut Dirty,
    ) -> Option<VoucherRecord> {
        let present = new.is_some();
        let old = match new {
            Some(v) => {
                let slot = self.vouchers.entry(Id::from(id)).or_default();
                std::mem::replace(&mut slot.held, Held::Whole(Box::new(v)))
            }
            None => self.slot_edit(id, |slot| std::mem::take(&mut slot.held)),
        };
        let was = !matches!(old, Held::Absent);
        if was != present {
            self.held = self.held + usize::from(present) - usize::from(was);
            dirty.voucher_presence.insert((n, Id::from(id)));
        }
        dirty.vouchers.insert((n, Id::from(id)));
        // A sealed voucher never changes (the seal's promise), so only a whole one comes back.
        match old {
            Held::Whole(v) => Some(*v),
            Held::Absent | Held::Sealed(_) => None,
        }
    }

    fn set_entry(&mut self, n: u32, seq: u64, new: Option<JournalEntry>, dirty: &mut Dirty) {
        if let Some(old) = self.journal.remove(seq) {
            self.slot_edit(&old.voucher, |slot| slot.entries.remove(&seq));
            remove_from(&mut self.entries_by_account, &old.account, &seq);
            // A fold cannot take an entry back exactly (overflow, scale): refold it.
            self.folds.insert(old.account, None);
            self.stale.insert(old.account);
            dirty.accounts.insert((n, old.account));
            dirty.vouchers.insert((n, old.voucher));
        }
        dirty.entries.insert((n, seq));
        let Some(e) = new else { return };
        let slot = self.vouchers.entry(e.voucher.clone()).or_default();
        slot.entries.insert(seq);
        self.entries_by_account
            .entry(e.account)
            .or_default()
            .insert(seq);
        let fold = self.folds.entry(e.account).or_insert(Some(Decimal::ZERO));
        *fold = fold.and_then(|f| f.checked_add(signed(e.side, e.amount)));
        dirty.accounts.insert((n, e.account));
        dirty.vouchers.insert((n, e.voucher.clone()));
        self.journal.insert(seq, e);
    }

    /// Changes the slot of voucher id `id`, if there is one, and lets it go once empty.
    fn slot_edit<T: Default>(&mut self, id: &str, edit: impl FnOnce(&mut VoucherSlot) -> T) -> T {
        let Some(slot) = self.vouchers.get_mut(id) else {
            return T::default();
        };
        let out = edit(slot);
        if slot.is_empty() {
            self.vouchers.remove(id);
        }
        out
    }

    fn set_freeze(&mut self, n: u32, key: &str, new: Option<FreezeState>, dirty: &mut Dirty) {
        if let Some(old) = self.freezes.remove(key) {
            remove_from(&mut self.freezes_by_account, &old.account, &old.key);
            dirty.accounts.insert((n, old.account));
        }
        dirty.freezes.insert((n, Id::from(key)));
        let Some(f) = new else { return };
        let set = self.freezes_by_account.entry(f.account).or_default();
        set.insert(f.key.clone());
        dirty.accounts.insert((n, f.account));
        self.freezes.insert(Id::from(key), f);
    }

    /// Folds away the journal below `bound`: its entries leave, each account's exact fold
    /// starting from what they sum to; the vouchers they name stay, final.
    fn seal(&mut self, bound: u64) {
        if bound <= self.sealed {
            return;
        }
        self.sealed = bound;
        let mut accounts = BTreeSet::new();
        for e in self.journal.seal_below(bound) {
            let prefix = self
                .sealed_folds
                .entry(e.account)
                .or_insert(Some(Decimal::ZERO));
            *prefix = prefix.and_then(|f| f.checked_add(signed(e.side, e.amount)));
            accounts.insert(e.account);
            self.slot_edit(&e.voucher, |slot| {
                slot.entries.remove(&e.seq);
                slot.seal();
            });
        }
        for a in accounts {
            if let Some(set) = self.entries_by_account.get_mut(&a) {
                set.remove_below(&bound);
                if set.is_empty() {
                    self.entries_by_account.remove(&a);
                }
            }
        }
    }

    /// The sequence number the journal is sealed below (0: nothing sealed).
    pub fn sealed(&self) -> u64 {
        self.sealed
    }

    /// Recomputes what a removal left stale: refolds touched accounts, and the subtotal.
    fn settle(&mut self) {
        for a in std::mem::take(&mut self.stale) {
            if self.entries_by_account.contains_key(&a) || self.sealed_folds.contains_key(&a) {
                let fold = self.fold_exactly(a);
                self.folds.insert(a, fold);
            } else {
                self.folds.remove(&a);
            }
        }
        if self.subtotal.is_none() {
            self.subtotal = crate::conservation::shard_total(&self.snapshot_accounts());
        }
    }

    /// Account `a`'s journal folded in sequence order, as the batch check does (from its
    /// sealed entries' fold on).
    pub(crate) fn fold_exactly(&self, a: u64) -> Option<Decimal> {
        let start = self
            .sealed_folds
            .get(&a)
            .copied()
            .unwrap_or(Some(Decimal::ZERO))?;
        let seqs = self.entries_by_account.get(&a).into_iter().flatten();
        seqs.filter_map(|s| self.journal.get(*s))
            .try_fold(start, |f, e| f.checked_add(signed(e.side, e.amount)))
    }

    /// Account `a`'s journal folded (the running fold; zero without entries).
    pub(crate) fn fold(&self, a: u64) -> Option<Decimal> {
        self.folds.get(&a).copied().unwrap_or(Some(Decimal::ZERO))
    }

    /// What account `a`'s freezes reserve, summed in key order as the batch check does.
    pub(crate) fn reserved(&self, a: u64) -> Option<Decimal> {
        let keys = self.freezes_by_account.get(&a).into_iter().flatten();
        keys.filter_map(|k| self.freezes.get(k))
            .try_fold(Decimal::ZERO, |s, f| s.checked_add(f.amount))
    }

    /// The postings of voucher `id`'s journal entries.
    pub(crate) fn postings(&self, id: &str) -> Vec<crate::derivation::Posting> {
        self.entries_of(id)
            .filter_map(|s| self.journal.get(s))
            .map(|e| (e.account, e.side, e.amount))
            .collect()
    }

    /// Voucher `id`, if the shard holds it whole (not sealed).
    pub fn voucher(&self, id: &str) -> Option<&VoucherRecord> {
        match &self.vouchers.get(id)?.held {
            Held::Whole(v) => Some(v),
            Held::Absent | Held::Sealed(_) => None,
        }
    }

    /// Whether the shard holds voucher `id`, whole or sealed.
    pub fn holds_voucher(&self, id: &str) -> bool {
        self.vouchers
            .get(id)
            .is_some_and(|s| !matches!(s.held, Held::Absent))
    }

    /// Voucher `id` as exactly-once reads it, if the shard holds it (whole or sealed).
    pub(crate) fn found<'a>(&'a self, shard: u32, id: &'a str) -> Option<Found<'a>> {
        let debit = match &self.vouchers.get(id)?.held {
            Held::Absent => return None,
            Held::Whole(v) => side_total(&v.legs, Side::Debit),
            Held::Sealed(debit) => *debit,
        };
        Some(Found {
            shard,
            voucher: id,
            debit,
        })
    }

    /// The vouchers the shard holds whole (not sealed), by id.
    pub fn vouchers(&self) -> impl Iterator<Item = &VoucherRecord> + '_ {
        self.vouchers.values().filter_map(|s| match &s.held {
            Held::Whole(v) => Some(v.as_ref()),
            Held::Absent | Held::Sealed(_) => None,
        })
    }

    /// How many vouchers the shard holds.
    pub fn voucher_count(&self) -> usize {
        self.held
    }

    /// The sequence numbers of the journal entries that name voucher `id`.
    pub(crate) fn entries_of(&self, id: &str) -> impl Iterator<Item = u64> + '_ {
        let slot = self.vouchers.get(id);
        slot.into_iter().flat_map(|s| s.entries.iter().copied())
    }

    /// Journal entry `seq`, if the shard holds it.
    pub fn entry(&self, seq: u64) -> Option<&JournalEntry> {
        self.journal.get(seq)
    }

    fn snapshot_accounts(&self) -> ShardSnapshot {
        ShardSnapshot {
            accounts: self.accounts.values().cloned().collect(),
            ..ShardSnapshot::default()
        }
    }

    /// This shard as a snapshot (its lists in key order).
    pub fn snapshot(&self, n: u32) -> ShardSnapshot {
        ShardSnapshot {
            shard: n,
            accounts: self.accounts.values().cloned().collect(),
            freezes: self.freezes.values().cloned().collect(),
            vouchers: self.vouchers().cloned().collect(),
            journal: self.journal.values().cloned().collect(),
            ..ShardSnapshot::default()
        }
    }
}

fn remove_from<K, V, Q>(index: &mut BTreeMap<K, SmallSet<V>>, key: &Q, value: &V)
where
    K: Ord + std::borrow::Borrow<Q>,
    V: Ord,
    Q: Ord + ?Sized,
{
    if let Some(set) = index.get_mut(key) {
        set.remove(value);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

//! The periodic capture: one [`Delta`] per god's-eye snapshot, in time proportional to what
//! changed, instead of a whole observation rebuilt from every node's whole state.
//!
//! Every node is read at the same simulated instant (the capture runs without yielding). A
//! running node reports what it changed since its last read (its cores keep the touched keys;
//! vouchers and journal are read from a position). A node read whole instead, and diffed
//! against what the checker's world holds for it:
//!
//! - the first time the capture sees it;
//! - once per down period: a down node is read through its durable log, exactly what it will
//!   recover (a crash can lose unsynced vouchers, journal entries, trades or activities);
//! - once per new incarnation: a restarted node rebuilt its live state from its log.
//!
//! Crashes are rare, so a whole read per crash and per restart keeps the capture linear.

use crate::cluster::Cluster;
use crate::history::History;
use crate::services::Scope;
use crate::workload::now_ms;
use paylab_invariants::delta::{
    keyed_accounts, keyed_activities, keyed_freezes, keyed_journal, keyed_trades, keyed_vouchers,
};
use paylab_invariants::kept::{changes_from, KeptActivity, KeptTrade, Print, Printed};
use paylab_invariants::world::{ShardWorld, World};
use paylab_invariants::{
    ActivityState, Changes, Delta, Id, Observation, ShardDelta, ShardSnapshot, TradeState,
};
use std::collections::BTreeMap;
use std::hash::Hash;

/// What the capture last read of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Incarnation `k`, running: its next read is its changes.
    Live(u64),
    /// Down, read once through its durable log.
    Down,
}

/// The harness's side of the incremental check: one delta per snapshot.
#[derive(Debug, Default)]
pub struct Capture {
    /// Per node, in start order; `None` until first read.
    seen: Vec<Option<Seen>>,
    /// Whole reads of a node after a crash or a restart (first sightings not counted).
    resyncs: u64,
}

impl Capture {
    pub fn new() -> Self {
        Self::default()
    }

    /// What changed since the previous snapshot, read from every node at this instant, as a
    /// delta against `world` (the checker's copy, as of the previous delta): only entries
    /// whose value differs from the world's, in key order.
    pub fn snapshot(&mut self, cluster: &Cluster, history: &History, world: &World) -> Delta {
        let reads = cluster.reads();
        self.seen.resize(reads.len(), None);
        let mut delta = Delta {
            at_ms: now_ms(),
            history: history.take_changes(),
            history_len: history.len() as u64,
            ..Delta::default()
        };
        for (node, seen) in reads.iter().zip(self.seen.iter_mut()) {
            let now = node.incarnation().map_or(Seen::Down, Seen::Live);
            match *seen {
                Some(Seen::Live(k)) if now == Seen::Live(k) => node.changes(&mut delta),
                Some(Seen::Down) if now == Seen::Down => {}
                before => {
                    self.resyncs += u64::from(before.is_some());
                    node.resync(world, &mut delta);
                }
            }
            *seen = Some(now);
        }
        settle(&mut delta, world);
        delta
    }

    /// How many times a node was read whole after a crash or a restart.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }
}

/// Keeps only real changes against `world` (an upsert of the value the world already holds,
/// or a removal of a key it does not hold, is dropped) and puts each list in key order.
fn settle(delta: &mut Delta, world: &World) {
    for d in &mut delta.shards {
        let ws = world.shards.get(&d.shard);
        settle_changes(&mut d.accounts, |k| ws?.accounts.get(k), |a| a.account);
        settle_changes(&mut d.vouchers, |k| ws?.voucher(k), |v| v.voucher.clone());
        settle_changes(&mut d.journal, |k| ws?.entry(*k), |e| e.seq);
        settle_changes(&mut d.freezes, |k| ws?.freezes.get(k), |f| f.key.clone());
    }
    delta.shards.retain(|d| !d.is_empty());
    delta.shards.sort_by_key(|d| d.shard);
    settle_kept(&mut delta.trades, &world.trades, |t| t.trade.clone());
    settle_kept(&mut delta.activities, &world.activities, |a| a.xid.clone());
    delta.history.sort_by_key(|c| c.index);
}

/// `held` is what the world holds under a key.
fn settle_changes<'w, K: Ord + Clone, V: PartialEq + 'w>(
    changes: &mut Changes<K, V>,
    held: impl Fn(&K) -> Option<&'w V>,
    key: impl Fn(&V) -> K,
) {
    settle_by(changes, held, |held, v| *held == v, key);
}

/// [`settle_changes`] for records the world keeps in part: an upsert is dropped when its
/// fingerprint is the kept record's. Only a record the world holds is fingerprinted here (a
/// new one is kept as it comes).
fn settle_kept<V: Hash, K: Printed>(
    changes: &mut Changes<Id, V>,
    kept: &BTreeMap<Id, K>,
    key: impl Fn(&V) -> Id,
) {
    let held = |k: &Id| kept.get(k).map(Printed::print);
    settle_by(changes, held, |print, v| *print == Print::of(v), key);
}

/// Drops each upsert that is `same` as what the world holds under its key and each removal of
/// a key it does not hold, then puts both lists in key order.
fn settle_by<K: Ord + Clone, V, H>(
    changes: &mut Changes<K, V>,
    held: impl Fn(&K) -> Option<H>,
    same: impl Fn(&H, &V) -> bool,
    key: impl Fn(&V) -> K,
) {
    changes
        .upserts
        .retain(|v| held(&key(v)).is_none_or(|h| !same(&h, v)));
    changes.upserts.sort_by_key(&key);
    changes.removed.retain(|k| held(k).is_some());
    changes.removed.sort();
    changes.removed.dedup();
}

// ---- Whole reads diffed against the world (the kinds' `NodeService::diff`) -----------------

/// Adds what turns the world's copy of a shard into `whole` (a whole read after a crash or a
/// restart, rare: the world's shard is taken as a snapshot to diff against). The journal the
/// world sealed, and the vouchers it names, are left out of both: they are durable, so the
/// whole read holds them unchanged.
pub fn shard_diff(whole: &ShardSnapshot, world: Option<&ShardWorld>, out: &mut Delta) {
    let old = world.map(|w| w.snapshot(whole.shard));
    let sealed = world.map_or(0, ShardWorld::sealed);
    let whole = unsealed(whole, sealed);
    let d = ShardDelta::between(whole.shard, old.as_ref(), &whole);
    if !d.is_empty() {
        out.shards.push(d);
    }
}

/// `shard` as a world sealed below `sealed` holds it whole: without the journal entries below
/// the bound, nor the vouchers they name.
fn unsealed(shard: &ShardSnapshot, sealed: u64) -> std::borrow::Cow<'_, ShardSnapshot> {
    if sealed == 0 {
        return std::borrow::Cow::Borrowed(shard);
    }
    let below = shard.journal.iter().filter(|e| e.seq < sealed);
    let named: std::collections::BTreeSet<&str> = below.map(|e| e.voucher.as_str()).collect();
    let mut kept = shard.clone();
    kept.journal.retain(|e| e.seq >= sealed);
    kept.vouchers
        .retain(|v| !named.contains(v.voucher.as_str()));
    std::borrow::Cow::Owned(kept)
}

/// `obs` as a world sealed at `seals` (shard → bound) holds it whole: without the sealed
/// journal and vouchers.
pub fn without_sealed(obs: &Observation, seals: &BTreeMap<u32, u64>) -> Observation {
    let shards = obs.shards.iter().map(|s| {
        let sealed = seals.get(&s.shard).copied().unwrap_or(0);
        unsealed(s, sealed).into_owned()
    });
    Observation {
        shards: shards.collect(),
        ..obs.clone()
    }
}

/// Adds what turns the world's trades of trade shard `shard` (those whose id names it) into
/// `whole`.
pub fn trades_diff(shard: u32, whole: &[TradeState], world: &World, out: &mut Delta) {
    let prefix = format!("T{shard}-");
    let old = world
        .trades
        .range(Id::from(prefix.as_str())..)
        .take_while(|(k, _)| k.starts_with(&prefix));
    out.trades.extend(changes_from(old, &keyed_trades(whole)));
}

/// Adds what turns the world's activities of payment node `node` into `whole`.
pub fn activities_diff(node: &str, whole: &[ActivityState], world: &World, out: &mut Delta) {
    let old = world.activities.iter().filter(|(_, a)| a.node == node);
    out.activities
        .extend(changes_from(old, &keyed_activities(whole)));
}

// ---- Verification (tests): the capture against a whole read --------------------------------

/// What a verified run found, for the tests that prove the capture.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CaptureStats {
    /// Snapshots whose delta and resulting world were compared with a whole read.
    pub verified: u32,
    /// Whole reads after a crash or a restart.
    pub resyncs: u64,
    /// Entries the deltas removed (only a whole read after a crash that lost unsynced writes
    /// removes any).
    pub removed: u64,
    /// Journal entries the deltas removed (a crash lost ledger writes that a snapshot saw).
    pub removed_journal: u64,
    /// Journal entries the world had sealed (folded away as final) at the last snapshot.
    pub sealed: u64,
    /// Whether the final read, which lets each node go as it reads it, was compared with a
    /// plain read of the same instant (and equalled it).
    pub final_read_verified: bool,
}

/// How many entries a delta removes.
pub fn removals(delta: &Delta) -> u64 {
    let shards: usize = delta
        .shards
        .iter()
        .map(|d| {
            d.accounts.removed.len()
                + d.vouchers.removed.len()
                + d.journal.removed.len()
                + d.freezes.removed.len()
        })
        .sum();
    (shards + delta.trades.removed.len() + delta.activities.removed.len()) as u64
}

/// What a world held at one instant, as [`verify`] compares it with a whole read: its shards
/// and history as an observation, its seals, and the trades and activities it keeps in part.
#[derive(Debug, Clone)]
pub struct WorldView {
    obs: Observation,
    seals: BTreeMap<u32, u64>,
    trades: BTreeMap<Id, KeptTrade>,
    activities: BTreeMap<Id, KeptActivity>,
}

impl WorldView {
    pub fn of(world: &World) -> WorldView {
        WorldView {
            obs: world.observation(),
            seals: world.seals(),
            trades: world.trades.clone(),
            activities: world.activities.clone(),
        }
    }

    /// How many journal entries the world had sealed.
    pub fn sealed(&self) -> u64 {
        self.seals.values().sum()
    }
}

/// Checks one snapshot's `delta` against a whole read of the cluster at the same instant:
/// it must be exactly what turns the world before it (`before`) into that read, and the world
/// after it (`after`) must equal that read. `Err` says where they part.
pub fn verify(
    before: &WorldView,
    delta: &Delta,
    after: &WorldView,
    cluster: &Cluster,
    history: &History,
) -> Result<(), String> {
    let whole = Observation {
        at_ms: delta.at_ms,
        history: history.shared(),
        ..cluster.observe(Scope::Instant)
    };
    sealed_kept(&whole, &after.seals, delta.at_ms)?;
    let (trades, activities) = (
        keyed_trades(&whole.trades),
        keyed_activities(&whole.activities),
    );
    let expected = Delta {
        seals: delta.seals.clone(),
        trades: changes_from(&before.trades, &trades),
        activities: changes_from(&before.activities, &activities),
        ..Delta::between(&before.obs, &without_sealed(&whole, &before.seals))
    };
    if &expected != delta {
        return Err(format!(
            "at {} ms the capture's delta differs from a whole read's:\n captured {delta:?}\n \
             expected {expected:?}",
            delta.at_ms
        ));
    }
    let kept_trades = trades.iter().map(|(k, t)| (k.clone(), KeptTrade::of(t)));
    let kept_activities = activities
        .iter()
        .map(|(k, a)| (k.clone(), KeptActivity::of(a)));
    let same_shards = keyed(&after.obs) == keyed(&without_sealed(&whole, &after.seals));
    if !same_shards
        || after.trades != kept_trades.collect::<BTreeMap<_, _>>()
        || after.activities != kept_activities.collect::<BTreeMap<_, _>>()
    {
        return Err(format!(
            "at {} ms the world built from deltas differs from a whole read",
            delta.at_ms
        ));
    }
    Ok(())
}

/// Every entry a world sealed must still be in a whole read: sealed means durable.
fn sealed_kept(whole: &Observation, seals: &BTreeMap<u32, u64>, at_ms: u64) -> Result<(), String> {
    for s in &whole.shards {
        let sealed = seals.get(&s.shard).copied().unwrap_or(0);
        let kept = s.journal.iter().filter(|e| e.seq < sealed).count() as u64;
        if kept != sealed {
            return Err(format!(
                "at {at_ms} ms shard {} holds {kept} of the {sealed} journal entries the \
                 world sealed as durable",
                s.shard
            ));
        }
    }
    Ok(())
}

/// An observation's ledger shards and history, every list in key order (as a world holds them).
fn keyed(obs: &Observation) -> Observation {
    let shards = obs
        .shards
        .iter()
        .map(|s| ShardSnapshot {
            shard: s.shard,
            accounts: keyed_accounts(s).into_values().collect(),
            freezes: keyed_freezes(s).into_values().collect(),
            vouchers: keyed_vouchers(s).into_values().collect(),
            journal: keyed_journal(s).into_values().collect(),
            ..ShardSnapshot::default()
        })
        .collect();
    Observation {
        at_ms: obs.at_ms,
        shards,
        history: obs.history.clone(),
        ..Observation::default()
    }
}

//! Invariant 22: a locking participant never lets two movements hold one account.
//!
//! The `2pc` strategy's participants lock a prepared branch's account until its decision
//! arrives: that lock is what makes the strategy isolated (no other movement reads or moves
//! the money in doubt). Judged at rest over each locking shard's whole lock history, in its
//! log's order, so no overlap between two snapshots escapes: a branch taking the lock on an
//! account another branch holds breaks it, whatever happened to either afterwards. Shards
//! that do not lock report no history, so the rule is silent for every other strategy.

use crate::{Invariant, LockEvent, Observation, Violation};
use std::collections::BTreeMap;

pub fn check(obs: &Observation) -> Vec<Violation> {
    let mut by_shard: BTreeMap<u32, Vec<&LockEvent>> = BTreeMap::new();
    for e in &obs.strategy.locks {
        by_shard.entry(e.shard).or_default().push(e);
    }
    let mut out = Vec::new();
    for (shard, mut events) in by_shard {
        events.sort_by_key(|e| e.seq);
        out.extend(shard_history(shard, &events));
    }
    out
}

/// One shard's lock history, folded in log order.
fn shard_history(shard: u32, events: &[&LockEvent]) -> Vec<Violation> {
    let mut holders: BTreeMap<u64, &LockEvent> = BTreeMap::new();
    let mut out = Vec::new();
    for e in events {
        let holder = holders.get(&e.account).copied();
        let same = |h: &LockEvent| h.xid == e.xid && h.branch == e.branch;
        match (e.acquire, holder) {
            (true, Some(h)) if !same(h) => out.push(overlap(shard, h, e)),
            (true, _) => {
                holders.insert(e.account, e);
            }
            (false, Some(h)) if same(h) => {
                holders.remove(&e.account);
            }
            (false, _) => {}
        }
    }
    out
}

fn overlap(shard: u32, held: &LockEvent, taken: &LockEvent) -> Violation {
    let msg = format!(
        "account {} on shard {shard} was locked by {}#{} while {}#{} held it",
        taken.account, taken.xid, taken.branch, held.xid, held.branch
    );
    Violation::new(Invariant::Isolation, msg)
        .with("shard", shard)
        .with("account", taken.account)
        .with("holder", format!("{}#{}", held.xid, held.branch))
        .with("held_since_seq", held.seq)
        .with("taker", format!("{}#{}", taken.xid, taken.branch))
        .with("taken_at_seq", taken.seq)
}

#[cfg(test)]
#[path = "isolation/tests.rs"]
mod tests;

//! Invariant 13: at rest, every committed trade event reached every consumer group, and no
//! other event did.
//!
//! Checked at quiescence only: mid-flight an event is legitimately committed but not yet
//! relayed, or published but not yet consumed. At rest (broker healed, relays and consumers
//! drained) the transactional outbox must have delivered each event that a trade shard
//! committed to every group subscribed to the topic, and each group must have consumed it: an
//! event sitting in a dead-letter queue counts as a failure to consume, whatever the reason.
//! Conversely, an event that reached the topic or a consumer but that no trade shard committed
//! belongs to a local transaction that aborted (an event sent before, or outside, the commit
//! of its state change): consumers acted on a change that never happened.
//!
//! One violation per (event, group): a dead-lettered event is reported as such rather than
//! also as not consumed. An uncommitted event is reported once per group that consumed or
//! dead-lettered it, or, when no group did, once for the topic (group `topic`).

use crate::{EventState, GroupState, Invariant, MessageSnapshot, Observation, Violation};
use std::collections::{BTreeMap, BTreeSet};

/// The `group` evidence of an uncommitted event found on the topic but in no group.
const TOPIC: &str = "topic";

pub fn check(obs: &Observation) -> Vec<Violation> {
    let m = &obs.messages;
    if !m.enabled {
        return Vec::new();
    }
    // How many times each group dead-lettered each event (a DLQ may hold an event twice).
    let dead: BTreeMap<&str, BTreeMap<&str, usize>> = m
        .groups
        .iter()
        .map(|(name, g)| {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for id in &g.dead_lettered {
                *counts.entry(id.as_str()).or_default() += 1;
            }
            (name.as_str(), counts)
        })
        .collect();
    let mut ids: BTreeSet<&str> = m.committed.keys().map(String::as_str).collect();
    ids.extend(m.published.keys().map(String::as_str));
    for g in m.groups.values() {
        ids.extend(g.consumed.keys().map(String::as_str));
        ids.extend(g.dead_lettered.iter().map(String::as_str));
    }
    let mut out = Vec::new();
    for id in ids {
        let committed = m.committed.get(id);
        let mut reached_a_group = false;
        for (name, g) in &m.groups {
            let dead_count = dead
                .get(name.as_str())
                .and_then(|d| d.get(id))
                .copied()
                .unwrap_or(0);
            let consumed = g.consumed.get(id).copied();
            reached_a_group |= dead_count > 0 || consumed.is_some();
            if dead_count > 0 {
                out.push(dead_lettered(m, id, committed, name, g, dead_count));
            } else if let Some(times) = consumed {
                if committed.is_none() {
                    let msg = format!(
                        "event of an aborted local transaction delivered: {id} was consumed by \
                         group {name} but no trade shard committed it"
                    );
                    out.push(
                        uncommitted(m, id, msg)
                            .with("group", name)
                            .with("consumed", times),
                    );
                }
            } else if let Some(e) = committed {
                let msg = format!("committed event {id} was never consumed by group {name}");
                out.push(about_committed(m, e, msg).with("group", name));
            }
        }
        if committed.is_none() && !reached_a_group {
            let msg = format!(
                "event of an aborted local transaction delivered: {id} was published but no \
                 trade shard committed it"
            );
            out.push(uncommitted(m, id, msg).with("group", TOPIC));
        }
    }
    out
}

/// A violation about a committed event: its trade and whether the outbox published it.
fn about_committed(m: &MessageSnapshot, e: &EventState, message: String) -> Violation {
    let published = m.published.get(&e.id).copied().unwrap_or(0);
    Violation::new(Invariant::MessageCompleteness, message)
        .with("event", &e.id)
        .with("trade", &e.trade)
        .with("kind", format!("{:?}", e.kind))
        .with("version", e.version)
        .with("committed", true)
        .with("published", published > 0)
        .with("published_count", published)
        .with(
            "halves_discarded",
            m.discarded.get(&e.id).copied().unwrap_or(0),
        )
}

/// A violation about an event no trade shard committed, with what its payload said if any
/// broker or consumer kept it.
fn uncommitted(m: &MessageSnapshot, id: &str, message: String) -> Violation {
    let published = m.published.get(id).copied().unwrap_or(0);
    let seen = m.seen.get(id);
    let unknown = || "unknown".to_string();
    Violation::new(Invariant::MessageCompleteness, message)
        .with("event", id)
        .with("trade", seen.map_or_else(unknown, |e| e.trade.clone()))
        .with(
            "kind",
            seen.map_or_else(unknown, |e| format!("{:?}", e.kind)),
        )
        .with(
            "version",
            seen.map_or_else(unknown, |e| e.version.to_string()),
        )
        .with("committed", false)
        .with("published", published > 0)
        .with("published_count", published)
}

fn dead_lettered(
    m: &MessageSnapshot,
    id: &str,
    committed: Option<&EventState>,
    name: &str,
    g: &GroupState,
    count: usize,
) -> Violation {
    let msg = format!("event {id} was dead-lettered by group {name}");
    let base = match committed {
        Some(e) => about_committed(m, e, msg),
        None => uncommitted(m, id, format!("{msg}; no trade shard committed it")),
    };
    base.with("group", name)
        .with("dead_lettered", count)
        .with("consumed", g.consumed.get(id).copied().unwrap_or(0))
}

#[cfg(test)]
#[path = "message_completeness/tests.rs"]
mod tests;

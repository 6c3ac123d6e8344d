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
mod tests {
    use super::*;
    use crate::testkit::{
        aborted_event, ev, single, valid_with_messages, ABORTED, CLOSED, PAID, REFUNDED,
    };

    #[test]
    fn valid_observation_passes() {
        // Every committed event consumed by all three groups, the payment one delivered twice.
        assert!(check(&valid_with_messages()).is_empty());
    }

    #[test]
    fn no_message_layer_passes() {
        assert!(check(&crate::testkit::valid()).is_empty());
    }

    #[test]
    fn disabled_snapshot_with_garbage_says_nothing() {
        let mut obs = valid_with_messages();
        let m = &mut obs.messages;
        m.enabled = false;
        m.committed.clear();
        m.published.insert(ABORTED.to_string(), 1);
        let g = m.groups.get_mut("notifier").unwrap();
        g.consumed.clear();
        g.dead_lettered.push(PAID.to_string());
        assert!(check(&obs).is_empty());
    }

    #[test]
    fn committed_event_not_consumed_by_a_group_fails() {
        let mut obs = valid_with_messages();
        // The outbox relay lost the refund event: published nowhere, consumed by no group.
        obs.messages.published.remove(REFUNDED);
        for g in obs.messages.groups.values_mut() {
            g.consumed.remove(REFUNDED);
        }
        let found = check(&obs);
        assert_eq!(found.len(), 3, "{found:#?}");
        let groups: Vec<&str> = found.iter().map(|v| ev(v, "group")).collect();
        assert_eq!(groups, ["consumer-records", "merchant-query", "notifier"]);
        let v = &found[1];
        assert_eq!(v.invariant, Invariant::MessageCompleteness);
        assert_eq!(
            v.message,
            format!("committed event {REFUNDED} was never consumed by group merchant-query")
        );
        assert_eq!(ev(v, "event"), REFUNDED);
        assert_eq!(ev(v, "trade"), "T0-1");
        assert_eq!(ev(v, "published"), "false");
        assert_eq!(ev(v, "published_count"), "0");
        assert_eq!(ev(v, "halves_discarded"), "0");
    }

    #[test]
    fn a_committed_event_whose_half_was_discarded_says_so() {
        let mut obs = valid_with_messages();
        obs.messages.published.remove(CLOSED);
        obs.messages.discarded.insert(CLOSED.to_string(), 1);
        for g in obs.messages.groups.values_mut() {
            g.consumed.remove(CLOSED);
        }
        let found = check(&obs);
        assert_eq!(found.len(), obs.messages.groups.len());
        for v in &found {
            assert_eq!(ev(v, "event"), CLOSED);
            assert_eq!(ev(v, "halves_discarded"), "1");
        }
    }

    #[test]
    fn published_event_one_group_missed_fails() {
        let mut obs = valid_with_messages();
        let g = obs.messages.groups.get_mut("merchant-query").unwrap();
        g.consumed.remove(PAID);
        let v = &single(check(&obs), Invariant::MessageCompleteness);
        assert_eq!(ev(v, "event"), PAID);
        assert_eq!(ev(v, "group"), "merchant-query");
        assert_eq!(ev(v, "published"), "true");
        assert_eq!(ev(v, "published_count"), "2");
    }

    #[test]
    fn dead_lettered_event_fails_once_per_group() {
        let mut obs = valid_with_messages();
        // The notifier gave up on the close event and parked it, twice, without consuming it.
        let g = obs.messages.groups.get_mut("notifier").unwrap();
        g.consumed.remove(CLOSED);
        g.dead_lettered = vec![CLOSED.to_string(), CLOSED.to_string()];
        let v = &single(check(&obs), Invariant::MessageCompleteness);
        assert_eq!(
            v.message,
            format!("event {CLOSED} was dead-lettered by group notifier")
        );
        assert_eq!(ev(v, "group"), "notifier");
        assert_eq!(ev(v, "trade"), "T0-2");
        assert_eq!(ev(v, "dead_lettered"), "2");
        assert_eq!(ev(v, "consumed"), "0");
    }

    #[test]
    fn dead_lettered_even_if_consumed_fails() {
        let mut obs = valid_with_messages();
        let g = obs.messages.groups.get_mut("consumer-records").unwrap();
        g.dead_lettered.push(PAID.to_string());
        let v = &single(check(&obs), Invariant::MessageCompleteness);
        assert_eq!(ev(v, "event"), PAID);
        assert_eq!(ev(v, "consumed"), "1");
    }

    #[test]
    fn consumed_event_of_aborted_transaction_fails_per_group() {
        let mut obs = valid_with_messages();
        // T0-3's payment rolled back, but its event was sent before the local commit.
        obs.messages.published.insert(ABORTED.to_string(), 1);
        obs.messages
            .seen
            .insert(ABORTED.to_string(), aborted_event());
        for g in obs.messages.groups.values_mut() {
            g.consumed.insert(ABORTED.to_string(), 1);
        }
        let found = check(&obs);
        assert_eq!(found.len(), 3, "{found:#?}");
        let v = &found[0];
        assert_eq!(v.invariant, Invariant::MessageCompleteness);
        assert!(v
            .message
            .starts_with("event of an aborted local transaction delivered"));
        assert_eq!(ev(v, "event"), ABORTED);
        assert_eq!(ev(v, "group"), "consumer-records");
        assert_eq!(ev(v, "trade"), "T0-3");
        assert_eq!(ev(v, "kind"), "Paid");
        assert_eq!(ev(v, "version"), "1");
        assert_eq!(ev(v, "committed"), "false");
    }

    #[test]
    fn published_event_of_aborted_transaction_fails_for_the_topic() {
        let mut obs = valid_with_messages();
        obs.messages.published.insert(ABORTED.to_string(), 1);
        let v = &single(check(&obs), Invariant::MessageCompleteness);
        assert_eq!(ev(v, "event"), ABORTED);
        assert_eq!(ev(v, "group"), "topic");
        // Nothing kept its payload.
        assert_eq!(ev(v, "trade"), "unknown");
        assert_eq!(ev(v, "published_count"), "1");
    }

    #[test]
    fn dead_lettered_uncommitted_event_fails() {
        let mut obs = valid_with_messages();
        let g = obs.messages.groups.get_mut("notifier").unwrap();
        g.dead_lettered.push(ABORTED.to_string());
        let v = &single(check(&obs), Invariant::MessageCompleteness);
        assert!(v.message.ends_with("no trade shard committed it"));
        assert_eq!(ev(v, "committed"), "false");
        assert_eq!(ev(v, "published"), "false");
    }
}

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
    let g = m.groups.get_mut("notify").unwrap();
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
    assert_eq!(groups, ["consumer-records", "merchant-query", "notify"]);
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
    let g = obs.messages.groups.get_mut("notify").unwrap();
    g.consumed.remove(CLOSED);
    g.dead_lettered = vec![CLOSED.to_string(), CLOSED.to_string()];
    let v = &single(check(&obs), Invariant::MessageCompleteness);
    assert_eq!(
        v.message,
        format!("event {CLOSED} was dead-lettered by group notify")
    );
    assert_eq!(ev(v, "group"), "notify");
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
    let g = obs.messages.groups.get_mut("notify").unwrap();
    g.dead_lettered.push(ABORTED.to_string());
    let v = &single(check(&obs), Invariant::MessageCompleteness);
    assert!(v.message.ends_with("no trade shard committed it"));
    assert_eq!(ev(v, "committed"), "false");
    assert_eq!(ev(v, "published"), "false");
}

use super::*;
use crate::testkit::{
    callback, ev, notification, single, valid_with_messages, ABORTED, CLOSED, PAID, REFUNDED,
};
use NotificationStatus::{Acknowledged, Exhausted, Pending};
use TradeStatus::*;

#[test]
fn valid_observation_passes() {
    // Two acknowledged, one exhausted; the payment's callback queried after the refund.
    assert!(check(&valid_with_messages()).is_empty());
}

#[test]
fn disabled_snapshot_with_garbage_says_nothing() {
    let mut obs = valid_with_messages();
    let m = &mut obs.messages;
    m.enabled = false;
    m.notifications.clear();
    m.callbacks
        .push(callback(ABORTED, "T0-3", Paid, Some(WaitPay)));
    assert!(check(&obs).is_empty());
}

#[test]
fn reachability_follows_legal_edges_transitively() {
    assert!(reachable(WaitPay).contains(&Refunded));
    assert!(reachable(Paid).contains(&Paid));
    assert!(!reachable(Paid).contains(&WaitPay));
    assert!(!reachable(Closed).contains(&Paid));
    assert_eq!(reachable(Refunded), BTreeSet::from([Refunded]));
}

#[test]
fn pending_at_rest_fails() {
    let mut obs = valid_with_messages();
    obs.messages
        .notifications
        .insert(REFUNDED.to_string(), notification(REFUNDED, Pending, 3));
    let v = &single(check(&obs), Invariant::NotificationOutcome);
    assert_eq!(
        v.message,
        format!("notification of event {REFUNDED} is still pending at rest")
    );
    assert_eq!(ev(v, "event"), REFUNDED);
    assert_eq!(ev(v, "trade"), "T0-1");
    assert_eq!(ev(v, "status"), "Pending");
    assert_eq!(ev(v, "attempts"), "3");
}

#[test]
fn missing_notification_fails() {
    let mut obs = valid_with_messages();
    obs.messages.notifications.remove(CLOSED);
    let v = &single(check(&obs), Invariant::NotificationOutcome);
    assert_eq!(
        v.message,
        format!("committed event {CLOSED} has no merchant notification")
    );
    assert_eq!(ev(v, "trade"), "T0-2");
    assert_eq!(ev(v, "status"), "none");
}

#[test]
fn exhausted_early_fails() {
    let mut obs = valid_with_messages();
    obs.messages.notifications.get_mut(CLOSED).unwrap().attempts = 5;
    let v = &single(check(&obs), Invariant::NotificationOutcome);
    assert!(v.message.contains("given up after 5 of 8 attempts"));
    assert_eq!(ev(v, "status"), "Exhausted");
    assert_eq!(ev(v, "max_attempts"), "8");
}

#[test]
fn attempts_above_max_fail() {
    let mut obs = valid_with_messages();
    obs.messages.notifications.get_mut(PAID).unwrap().attempts = 9;
    let v = &single(check(&obs), Invariant::NotificationOutcome);
    assert!(v
        .message
        .contains("made 9 attempts, above the schedule's 8"));
    assert_eq!(ev(v, "event"), PAID);
}

#[test]
fn acknowledged_without_attempt_fails() {
    let mut obs = valid_with_messages();
    obs.messages.notifications.get_mut(PAID).unwrap().attempts = 0;
    let v = &single(check(&obs), Invariant::NotificationOutcome);
    assert!(v.message.ends_with("is acknowledged without any attempt"));
}

#[test]
fn acknowledged_at_the_last_attempt_passes() {
    let mut obs = valid_with_messages();
    let n = notification(PAID, Acknowledged, 8);
    obs.messages.notifications.insert(PAID.to_string(), n);
    assert!(check(&obs).is_empty());
}

#[test]
fn notification_of_uncommitted_event_fails() {
    let mut obs = valid_with_messages();
    let n = notification(ABORTED, Exhausted, 8);
    obs.messages.notifications.insert(ABORTED.to_string(), n);
    let v = &single(check(&obs), Invariant::NotificationOutcome);
    assert!(v.message.contains("no trade shard committed"));
    assert_eq!(ev(v, "event"), ABORTED);
    assert_eq!(ev(v, "committed"), "false");
    assert_eq!(ev(v, "trade"), "unknown");
}

#[test]
fn status_never_reached_fails() {
    let mut obs = valid_with_messages();
    // The merchant was told T0-1 was refunded in full; it is only partially refunded.
    obs.messages.callbacks[1].notified = Refunded;
    let v = &single(check(&obs), Invariant::NotificationOutcome);
    assert_eq!(
        v.message,
        "merchant told a status the trade never reached: trade T0-1 was notified Refunded \
         but is PartiallyRefunded"
    );
    assert_eq!(ev(v, "callback"), "1");
    assert_eq!(ev(v, "event"), REFUNDED);
    assert_eq!(ev(v, "notified"), "Refunded");
    assert_eq!(ev(v, "queried"), "PartiallyRefunded");
}

#[test]
fn failed_query_is_not_judged() {
    let mut obs = valid_with_messages();
    obs.messages.callbacks[0].queried = None;
    assert!(check(&obs).is_empty());
}

#[test]
fn callback_of_aborted_transaction_fails_twice() {
    let mut obs = valid_with_messages();
    // T0-3's payment rolled back, yet the merchant was told it was paid: the query answers
    // WaitPay, which Paid never leads to.
    obs.messages
        .callbacks
        .push(callback(ABORTED, "T0-3", Paid, Some(WaitPay)));
    let found = check(&obs);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found
        .iter()
        .all(|v| v.invariant == Invariant::NotificationOutcome));
    assert!(found[0].message.contains("no trade shard committed"));
    assert!(found[1].message.starts_with("merchant told a status"));
    assert_eq!(ev(&found[1], "trade"), "T0-3");
    assert_eq!(ev(&found[1], "queried"), "WaitPay");
    assert_eq!(ev(&found[1], "committed"), "false");
}

#[test]
fn callback_of_uncommitted_event_fails_even_if_consistent() {
    let mut obs = valid_with_messages();
    obs.messages
        .callbacks
        .push(callback(ABORTED, "T0-3", Paid, Some(Paid)));
    let v = &single(check(&obs), Invariant::NotificationOutcome);
    assert_eq!(ev(v, "event"), ABORTED);
    assert_eq!(ev(v, "callback"), "2");
}

/// The notifier's record alone is not evidence: an acknowledgement the merchant's own log does
/// not hold (a timeout booked as an ack) is a violation, even with a plausible attempt count.
#[test]
fn an_acknowledgement_the_merchant_never_gave_fails() {
    let mut obs = valid_with_messages();
    obs.messages.callbacks.retain(|c| c.event != REFUNDED);
    let v = &single(check(&obs), Invariant::NotificationOutcome);
    assert!(
        v.message
            .contains("the merchant never acknowledged a callback of it"),
        "{}",
        v.message
    );
    assert_eq!(ev(v, "event"), REFUNDED);
    assert_eq!(ev(v, "merchant_acks"), "0");
}

//! Notification outcome: at rest, every committed trade event's merchant notification (最大努力
//! 通知) has ended, one way or the other, and no merchant was told of a change that never
//! happened.
//!
//! Checked at quiescence only: mid-flight a notification is legitimately waiting for its next
//! attempt. Best-effort notification promises no delivery, only an outcome: at rest each
//! committed event has a notification that was either acknowledged by the merchant, within
//! the schedule (1 ≤ attempts ≤ max), or given up after the whole schedule ran (Exhausted with
//! attempts = max ≥ 1). Still Pending at rest, Exhausted early, or more attempts than the
//! schedule allows is a broken retry loop. A notification for an event that no trade shard
//! committed announces a change that never happened.
//!
//! The simulated merchant checks each callback it acknowledges by querying the trade right
//! after. The trade may have moved on since (a refund after the payment), but only forwards:
//! the status queried must be the one notified or reachable from it along the trade's legal
//! edges. Anything else means the merchant was told a status the trade never reached, which is
//! what a delivered event of an aborted local transaction looks like from outside.

use crate::{
    CallbackState, Invariant, MessageSnapshot, NotificationState, NotificationStatus, Observation,
    TradeStatus, Violation,
};
use std::collections::BTreeSet;

pub fn check(obs: &Observation) -> Vec<Violation> {
    let m = &obs.messages;
    if !m.enabled {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut ids: BTreeSet<&str> = m.committed.keys().map(String::as_str).collect();
    ids.extend(m.notifications.keys().map(String::as_str));
    for id in ids {
        out.extend(outcome(m, id));
    }
    for (n, c) in m.callbacks.iter().enumerate() {
        out.extend(callback(m, n, c));
    }
    out
}

/// A violation about the notification of event `id` (which may be missing).
fn about(m: &MessageSnapshot, id: &str, n: Option<&NotificationState>, msg: String) -> Violation {
    let trade = m
        .committed
        .get(id)
        .or_else(|| m.seen.get(id))
        .map_or_else(|| "unknown".to_string(), |e| e.trade.clone());
    let none = || "none".to_string();
    Violation::new(Invariant::NotificationOutcome, msg)
        .with("event", id)
        .with("trade", trade)
        .with("committed", m.committed.contains_key(id))
        .with("status", n.map_or_else(none, |n| format!("{:?}", n.status)))
        .with("attempts", n.map_or_else(none, |n| n.attempts.to_string()))
        .with(
            "max_attempts",
            n.map_or_else(none, |n| n.max_attempts.to_string()),
        )
}

/// What is wrong with notification `n` of a committed event at rest, if anything.
fn problem(n: &NotificationState) -> Option<String> {
    let (attempts, max) = (n.attempts, n.max_attempts);
    if attempts > max {
        return Some(format!(
            "made {attempts} attempts, above the schedule's {max}"
        ));
    }
    match n.status {
        NotificationStatus::Pending => Some("is still pending at rest".to_string()),
        NotificationStatus::Acknowledged if attempts == 0 => {
            Some("is acknowledged without any attempt".to_string())
        }
        NotificationStatus::Exhausted if attempts == 0 => {
            Some("was given up without any attempt".to_string())
        }
        NotificationStatus::Exhausted if attempts < max => Some(format!(
            "was given up after {attempts} of {max} attempts, before the schedule ran out"
        )),
        NotificationStatus::Acknowledged | NotificationStatus::Exhausted => None,
    }
}

fn outcome(m: &MessageSnapshot, id: &str) -> Option<Violation> {
    let n = m.notifications.get(id);
    let msg = match (m.committed.contains_key(id), n) {
        (false, _) => {
            format!("notification of event {id}, which no trade shard committed")
        }
        (true, None) => format!("committed event {id} has no merchant notification"),
        (true, Some(n)) => format!("notification of event {id} {}", problem(n)?),
    };
    Some(about(m, id, n, msg))
}

/// Every status some chain of legal edges leads to from `from`, `from` included.
fn reachable(from: TradeStatus) -> BTreeSet<TradeStatus> {
    use TradeStatus::*;
    const ALL: [TradeStatus; 6] = [WaitPay, Paying, Paid, PartiallyRefunded, Refunded, Closed];
    let mut seen = BTreeSet::from([from]);
    let mut todo = vec![from];
    while let Some(s) = todo.pop() {
        for next in ALL {
            if crate::transitions::trade_can_become(s, next) && seen.insert(next) {
                todo.push(next);
            }
        }
    }
    seen
}

fn callback(m: &MessageSnapshot, n: usize, c: &CallbackState) -> Vec<Violation> {
    let about = |msg: String| {
        let queried = c
            .queried
            .map_or_else(|| "none".to_string(), |q| format!("{q:?}"));
        Violation::new(Invariant::NotificationOutcome, msg)
            .with("callback", n)
            .with("event", &c.event)
            .with("trade", &c.trade)
            .with("notified", format!("{:?}", c.notified))
            .with("queried", queried)
            .with("committed", m.committed.contains_key(&c.event))
    };
    let mut out = Vec::new();
    if !m.committed.contains_key(&c.event) {
        let msg = format!(
            "merchant acknowledged a callback of event {}, which no trade shard committed",
            c.event
        );
        out.push(about(msg));
    }
    if let Some(q) = c.queried {
        if !reachable(c.notified).contains(&q) {
            let msg = format!(
                "merchant told a status the trade never reached: trade {} was notified {:?} \
                 but is {q:?}",
                c.trade, c.notified
            );
            out.push(about(msg));
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
}

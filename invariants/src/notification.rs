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
//! The notifier's word is never the only evidence: a notification it records as acknowledged
//! must appear in the merchant endpoint's own log of the callbacks it acknowledged
//! ([`MessageSnapshot::callbacks`], the counterpart's record). A notifier that books a timeout
//! as an acknowledgement says the merchant knows what the merchant never received.
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
    let acked_by_merchant: BTreeSet<&str> = m.callbacks.iter().map(|c| c.event.as_str()).collect();
    for id in ids {
        out.extend(outcome(m, id));
        out.extend(unconfirmed_ack(m, id, &acked_by_merchant));
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

/// A notification booked as acknowledged that the merchant's own log has no acknowledgement of.
fn unconfirmed_ack(m: &MessageSnapshot, id: &str, merchant: &BTreeSet<&str>) -> Option<Violation> {
    let n = m.notifications.get(id)?;
    if n.status != NotificationStatus::Acknowledged || merchant.contains(id) {
        return None;
    }
    let msg = format!(
        "notification of event {id} is recorded as acknowledged, but the merchant never \
         acknowledged a callback of it"
    );
    Some(about(m, id, Some(n), msg).with("merchant_acks", 0))
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
#[path = "notification/tests.rs"]
mod tests;

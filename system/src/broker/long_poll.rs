//! Long polling, the broker's side (RocketMQ's `PullRequestHoldService`): a consumer whose round
//! of pulls found nothing sends one `Await` instead of pulling again and again; the broker
//! answers at once if a pull would now find something, and otherwise holds the call until a
//! message lands on the topic, a retry of the consumer's queues falls due, or the hold ends.
//!
//! The waiters live in memory only: a broker that crashes drops them, and their callers time
//! out and pull as before. Waking a waiter only makes it decide again, so a spurious wake is
//! harmless; a missed one costs at most the hold.

use super::core::BrokerRecord;
use std::sync::Mutex;
use tokio::sync::oneshot;

/// The held `Await`s, in the order they began (woken in that order).
#[derive(Default)]
pub(super) struct Waiters {
    waiting: Mutex<Vec<(String, oneshot::Sender<()>)>>,
}

impl Waiters {
    /// A held `Await` on `topic`: the receiver fires at the topic's next [`Waiters::wake_for`].
    /// Waiters whose hold ended (their receiver dropped) are forgotten here too, so that a
    /// topic that never has news does not keep them.
    pub(super) fn register(&self, topic: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut waiting = self.lock();
        waiting.retain(|(_, tx)| !tx.is_closed());
        waiting.push((topic.to_string(), tx));
        rx
    }

    /// How many waiters are kept (held ones, and ended ones not yet forgotten).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Wakes every waiter on the topic `record` makes news on, if any; forgets waiters whose
    /// calls have ended.
    pub(super) fn wake_for(&self, record: &BrokerRecord) {
        let Some(topic) = news_topic(record) else {
            return;
        };
        let mut waiting = self.lock();
        let (woken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut *waiting)
            .into_iter()
            .partition(|(t, _)| t == topic);
        *waiting = kept.into_iter().filter(|(_, tx)| !tx.is_closed()).collect();
        drop(waiting);
        for (_, tx) in woken {
            let _ = tx.send(());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, oneshot::Sender<()>)>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The topic on which `record` gives a consumer something to pull: a message made visible, or
/// a retry scheduled (whose due time a held `Await` must now watch).
fn news_topic(record: &BrokerRecord) -> Option<&str> {
    match record {
        BrokerRecord::Appended(message) => Some(&message.id.topic),
        BrokerRecord::HalfCommitted { message, .. } => Some(&message.topic),
        BrokerRecord::RetryScheduled { message, .. } => Some(&message.topic),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::types::{Message, MessageId};

    fn appended(topic: &str) -> BrokerRecord {
        BrokerRecord::Appended(Message {
            id: MessageId {
                topic: topic.into(),
                queue: 0,
                offset: 0,
            },
            key: "k".into(),
            payload: "p".into(),
            producer_msg_id: "m".into(),
            stored_ms: 0,
            from_half: None,
        })
    }

    #[test]
    fn a_wake_reaches_the_waiters_of_its_topic_only() {
        let w = Waiters::default();
        let mut a = w.register("a");
        let mut b = w.register("b");
        w.wake_for(&appended("a"));
        assert_eq!(a.try_recv(), Ok(()));
        assert!(b.try_recv().is_err(), "b has no news");
        assert_eq!(w.len(), 1, "the woken waiter is gone, b's is kept");
        w.wake_for(&BrokerRecord::TopicCreated {
            topic: "b".into(),
            queues: 1,
        });
        assert!(b.try_recv().is_err(), "a new topic is no news");
    }

    #[test]
    fn ended_holds_are_forgotten_even_without_news() {
        let w = Waiters::default();
        for _ in 0..100 {
            drop(w.register("quiet"));
        }
        assert_eq!(w.len(), 1, "only the last registration is kept");
    }
}

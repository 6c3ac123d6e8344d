//! The notifier's protocol engine (最大努力通知): the `notify` group's deliveries schedule one
//! callback per event durably; a timer calls each merchant back when its attempt is due and
//! records every result. Plain state and `step`, with no clock, no RNG, no disk and no async:
//! the time comes in with each input.
//!
//! A delivery is done only once its schedule record is durable. A due attempt is called once
//! at a time (the in-flight set is memory only: after a crash every due attempt is called
//! again, which the merchant deduplicates by event id), and stays due until its result is
//! recorded, so a crash only delays it.

use super::core::{NotifyCore, NotifyRecord};
use super::types::{MerchantNotifyCall, ATTEMPTS_MAX};
use crate::broker::Delivery;
use crate::ids::EventId;
use crate::probes::names;
use crate::trade::TradeEvent;
use std::collections::BTreeSet;

/// What happened, fed to [`NotifyEngine::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyInput {
    /// The `notify` group delivered a trade event.
    Delivered { delivery: Delivery, now_ms: u64 },
    /// The callback timer fired.
    Tick { now_ms: u64 },
    /// The merchant answered an attempt (`acked`: it said success; a failure, a late answer
    /// and no answer are all `false`).
    Answered {
        event: EventId,
        attempt: u32,
        acked: bool,
        now_ms: u64,
    },
    /// The result of an attempt is durable (or there was none to record): the event may be
    /// called again when due.
    CallEnded { event: EventId },
}

/// What the runtime must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyOutput {
    /// Count a coverage probe.
    Probe(&'static str),
    /// Append this record to the node's log (the engine has already applied it).
    Append(NotifyRecord),
    /// Wait until the log is durable.
    Sync,
    /// Report the delivery to the consumer runtime.
    Done(Result<(), String>),
    /// Make this callback; answer with [`NotifyInput::Answered`], then, once the outputs that
    /// answer led to are performed, [`NotifyInput::CallEnded`].
    Call(MerchantNotifyCall),
}

/// One incarnation of the notifier: its durable schedule and the callbacks on their way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyEngine {
    core: NotifyCore,
    /// Events whose callback is on its way (memory only).
    calling: BTreeSet<EventId>,
}

impl NotifyEngine {
    /// Recovers the schedule from the log; nothing is on its way after a start.
    pub fn recover(schedule: [u64; 7], records: &[NotifyRecord]) -> Self {
        NotifyEngine {
            core: NotifyCore::recover(schedule, records),
            calling: BTreeSet::new(),
        }
    }

    pub fn core(&self) -> &NotifyCore {
        &self.core
    }

    /// Whether a callback of `event` is on its way.
    pub fn is_calling(&self, event: &EventId) -> bool {
        self.calling.contains(event)
    }

    pub fn step(&mut self, input: NotifyInput) -> Vec<NotifyOutput> {
        match input {
            NotifyInput::Delivered { delivery, now_ms } => self.on_delivered(&delivery, now_ms),
            NotifyInput::Tick { now_ms } => self.on_tick(now_ms),
            NotifyInput::Answered {
                event,
                attempt,
                acked,
                now_ms,
            } => self.on_answered(&event, attempt, acked, now_ms),
            NotifyInput::CallEnded { event } => {
                self.calling.remove(&event);
                Vec::new()
            }
        }
    }

    /// Schedules the event's notification (once per event id), durably.
    fn on_delivered(&mut self, delivery: &Delivery, now_ms: u64) -> Vec<NotifyOutput> {
        let event = match TradeEvent::decode(&delivery.message.payload) {
            Ok(event) => event,
            Err(reason) => return vec![NotifyOutput::Done(Err(reason))],
        };
        let first = match self.core.decide_schedule(&event, now_ms) {
            Some(record) => {
                self.core.apply(record.clone());
                NotifyOutput::Append(record)
            }
            None => NotifyOutput::Probe(names::CONSUMER_DUPLICATE_SKIPPED),
        };
        // A duplicate's first schedule may still be on its way to the disk.
        vec![first, NotifyOutput::Sync, NotifyOutput::Done(Ok(()))]
    }

    /// Calls every due attempt that is not already on its way, in event-id order.
    fn on_tick(&mut self, now_ms: u64) -> Vec<NotifyOutput> {
        let mut out = Vec::new();
        for (event, attempt) in self.core.due(now_ms) {
            if self.calling.insert(event.clone()) {
                let n = self.core.notification(&event).expect("a due notification");
                out.push(NotifyOutput::Call(n.call(attempt)));
            }
        }
        out
    }

    /// Records an attempt's result: acknowledged, retried on the schedule, or given up after
    /// the last attempt. A stale result (for an attempt no longer due) records nothing.
    fn on_answered(
        &mut self,
        event: &EventId,
        attempt: u32,
        acked: bool,
        now_ms: u64,
    ) -> Vec<NotifyOutput> {
        let mut out = Vec::new();
        if let Some(record) = self.core.decide_result(event, attempt, acked, now_ms) {
            let probe = match (&record, acked) {
                (_, true) => names::NOTIFY_ACKED,
                (
                    NotifyRecord::Attempted {
                        next_due_ms: None, ..
                    },
                    false,
                ) => {
                    tracing::warn!(%event, attempts = ATTEMPTS_MAX, "merchant notification given up");
                    names::NOTIFY_EXHAUSTED
                }
                _ => names::NOTIFY_RETRIED,
            };
            out.push(NotifyOutput::Probe(probe));
            self.core.apply(record.clone());
            out.push(NotifyOutput::Append(record));
        }
        out.push(NotifyOutput::Sync);
        out
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;

//! The notifier's deterministic core: one notification per trade event, retried on a fixed
//! schedule until the merchant acknowledges it or the attempts run out (最大努力通知).
//! No clock, no I/O.
//!
//! [`NotifyCore::decide_schedule`] turns a consumed trade event into a new notification (or
//! `None` if the event is already known), [`NotifyCore::due`] lists the attempts whose time has
//! come, and [`NotifyCore::decide_result`] turns an attempt's outcome into a record: acknowledged,
//! retry at a time taken from the schedule, or exhausted after attempt [`ATTEMPTS_MAX`].
//! [`NotifyCore::apply`] folds records into state, live and on recovery alike. Every due time
//! is written into its record, so a replay never consults the schedule.
//!
//! Delivery to the merchant is at-least-once: an attempt whose reply was lost is retried, so
//! the merchant must deduplicate by the event id it is sent.

use super::types::{MerchantNotifyCall, ATTEMPTS_MAX};
use crate::ids::{AccountId, EventId};
use crate::trade::{TradeEvent, TradeId, TradeStatus};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotifyState {
    /// Attempt `attempts + 1` is due at `next_due_ms`.
    Pending { next_due_ms: u64 },
    /// The merchant answered success to attempt `attempt`.
    Acknowledged { attempt: u32 },
    /// All [`ATTEMPTS_MAX`] attempts failed; nobody tries again.
    Exhausted,
}

/// One trade event to tell its merchant about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The trade event's id.
    pub event: EventId,
    pub trade: TradeId,
    pub merchant: AccountId,
    pub status: TradeStatus,
    pub version: u32,
    /// Attempts made so far (their results recorded).
    pub attempts: u32,
    pub state: NotifyState,
}

impl Notification {
    /// The callback for attempt `attempt`.
    pub fn call(&self, attempt: u32) -> MerchantNotifyCall {
        MerchantNotifyCall {
            event: self.event.clone(),
            trade: self.trade,
            merchant: self.merchant,
            status: self.status,
            version: self.version,
            attempt,
        }
    }
}

/// One durable change to the notifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotifyRecord {
    /// A new notification, its first attempt due at `due_ms`.
    Scheduled {
        event: EventId,
        trade: TradeId,
        merchant: AccountId,
        status: TradeStatus,
        version: u32,
        due_ms: u64,
    },
    /// Attempt `attempt` ended: acknowledged, or failed with the next attempt due at
    /// `next_due_ms` (none after the last attempt: the notification is exhausted).
    Attempted {
        event: EventId,
        attempt: u32,
        acked: bool,
        next_due_ms: Option<u64>,
    },
}

/// The notifier's state. Equal states compare equal, which is how recovery is tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyCore {
    notifications: BTreeMap<EventId, Notification>,
    /// The notifications still pending, so a tick reads only those (derived from
    /// `notifications`; kept by `apply`).
    pending: BTreeSet<EventId>,
    /// The waits after failed attempts 1..7.
    schedule: [u64; 7],
}

impl NotifyCore {
    pub fn new(schedule: [u64; 7]) -> Self {
        NotifyCore {
            notifications: BTreeMap::new(),
            pending: BTreeSet::new(),
            schedule,
        }
    }

    /// Rebuilds the notifier by applying its log from the start.
    pub fn recover(schedule: [u64; 7], records: &[NotifyRecord]) -> Self {
        let mut core = NotifyCore::new(schedule);
        for record in records {
            core.apply(record.clone());
        }
        core
    }

    /// A new notification for `event`, its first attempt due at `now_ms`; `None` if the event
    /// is already known (a duplicate delivery).
    pub fn decide_schedule(&self, event: &TradeEvent, now_ms: u64) -> Option<NotifyRecord> {
        let id = event.id();
        if self.notifications.contains_key(&id) {
            return None;
        }
        Some(NotifyRecord::Scheduled {
            event: id,
            trade: event.trade,
            merchant: event.merchant,
            status: event.status,
            version: event.version,
            due_ms: now_ms,
        })
    }

    /// The notifications whose next attempt is due at `now_ms`: (event id, attempt number), in
    /// event-id order. A due attempt stays due until its result is recorded, so a crash of the
    /// notifier only delays it.
    pub fn due(&self, now_ms: u64) -> Vec<(EventId, u32)> {
        self.pending_notifications()
            .filter_map(|n| match n.state {
                NotifyState::Pending { next_due_ms } if next_due_ms <= now_ms => {
                    Some((n.event.clone(), n.attempts + 1))
                }
                _ => None,
            })
            .collect()
    }

    /// The record of attempt `attempt`'s result at `now_ms`; `None` if the result is stale (the
    /// notification is unknown or no longer pending, or `attempt` is not the one due). A failed
    /// attempt k < [`ATTEMPTS_MAX`] makes attempt k + 1 due `schedule[k - 1]` later; a failed
    /// last attempt exhausts the notification.
    pub fn decide_result(
        &self,
        event: &EventId,
        attempt: u32,
        acked: bool,
        now_ms: u64,
    ) -> Option<NotifyRecord> {
        let n = self.notifications.get(event)?;
        if !matches!(n.state, NotifyState::Pending { .. }) || attempt != n.attempts + 1 {
            return None;
        }
        let next_due_ms = if acked || attempt >= ATTEMPTS_MAX {
            None
        } else {
            Some(now_ms.saturating_add(self.schedule[attempt as usize - 1]))
        };
        Some(NotifyRecord::Attempted {
            event: event.clone(),
            attempt,
            acked,
            next_due_ms,
        })
    }

    /// Applies one durable record. A second schedule of one event, a result for an attempt that
    /// was not due, or an impossible next step is asserted.
    pub fn apply(&mut self, record: NotifyRecord) {
        match record {
            NotifyRecord::Scheduled {
                event,
                trade,
                merchant,
                status,
                version,
                due_ms,
            } => {
                let previous = self.notifications.insert(
                    event.clone(),
                    Notification {
                        event: event.clone(),
                        trade,
                        merchant,
                        status,
                        version,
                        attempts: 0,
                        state: NotifyState::Pending {
                            next_due_ms: due_ms,
                        },
                    },
                );
                assert!(previous.is_none(), "notification {event} scheduled twice");
                self.pending.insert(event);
            }
            NotifyRecord::Attempted {
                event,
                attempt,
                acked,
                next_due_ms,
            } => {
                let n = self
                    .notifications
                    .get_mut(&event)
                    .unwrap_or_else(|| panic!("notification {event} exists"));
                assert!(
                    matches!(n.state, NotifyState::Pending { .. }) && attempt == n.attempts + 1,
                    "notification {event}: attempt {attempt} recorded after {} attempts, {:?}",
                    n.attempts,
                    n.state
                );
                n.attempts = attempt;
                n.state = match (acked, next_due_ms) {
                    (true, None) => NotifyState::Acknowledged { attempt },
                    (false, Some(next_due_ms)) if attempt < ATTEMPTS_MAX => {
                        NotifyState::Pending { next_due_ms }
                    }
                    (false, None) if attempt == ATTEMPTS_MAX => NotifyState::Exhausted,
                    _ => panic!(
                        "notification {event}: attempt {attempt} acked={acked} cannot be \
                         followed by {next_due_ms:?}"
                    ),
                };
                if !matches!(n.state, NotifyState::Pending { .. }) {
                    self.pending.remove(&event);
                }
            }
        }
    }

    pub fn notification(&self, event: &EventId) -> Option<&Notification> {
        self.notifications.get(event)
    }

    /// Every notification, in event-id order.
    pub fn notifications(&self) -> impl Iterator<Item = &Notification> {
        self.notifications.values()
    }

    /// The pending notifications, in event-id order.
    pub fn pending_notifications(&self) -> impl Iterator<Item = &Notification> {
        self.pending.iter().map(|id| &self.notifications[id])
    }

    /// What is still pending, one line each (empty at rest), for liveness reports.
    pub fn pending(&self) -> Vec<String> {
        self.pending_notifications()
            .filter_map(|n| match n.state {
                NotifyState::Pending { next_due_ms } => Some(format!(
                    "notification {}: attempt {} due at {next_due_ms}ms",
                    n.event,
                    n.attempts + 1
                )),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;

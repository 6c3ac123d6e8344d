//! The notifier's deterministic core: one notification per trade event, retried on a fixed
//! schedule until the merchant acknowledges it or the attempts run out (最大努力通知).
//! No clock, no I/O.
//!
//! [`NotifyCore::decide_schedule`] turns a consumed trade event into a new notification (or
//! `None` if the event is already known), [`NotifyCore::due`] lists the attempts whose time has
//! come, and [`NotifyCore::decide_result`] turns an attempt's outcome into a record: acknowledged,
//! retry at a time taken from the schedule, or exhausted after attempt [`MAX_ATTEMPTS`].
//! [`NotifyCore::apply`] folds records into state, live and on recovery alike. Every due time
//! is written into its record, so a replay never consults the schedule.
//!
//! Delivery to the merchant is at-least-once: an attempt whose reply was lost is retried, so
//! the merchant must deduplicate by the event id it is sent.

use super::types::{MerchantNotifyCall, MAX_ATTEMPTS};
use crate::ids::AccountId;
use crate::trade::{TradeEvent, TradeId, TradeStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotifyState {
    /// Attempt `attempts + 1` is due at `next_due_ms`.
    Pending { next_due_ms: u64 },
    /// The merchant answered success to attempt `attempt`.
    Acknowledged { attempt: u32 },
    /// All [`MAX_ATTEMPTS`] attempts failed; nobody tries again.
    Exhausted,
}

/// One trade event to tell its merchant about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The trade event's id.
    pub event: String,
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
        event: String,
        trade: TradeId,
        merchant: AccountId,
        status: TradeStatus,
        version: u32,
        due_ms: u64,
    },
    /// Attempt `attempt` ended: acknowledged, or failed with the next attempt due at
    /// `next_due_ms` (none after the last attempt: the notification is exhausted).
    Attempted {
        event: String,
        attempt: u32,
        acked: bool,
        next_due_ms: Option<u64>,
    },
}

/// The notifier's state. Equal states compare equal, which is how recovery is tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyCore {
    notifications: BTreeMap<String, Notification>,
    /// The waits after failed attempts 1..7.
    schedule: [u64; 7],
}

impl NotifyCore {
    pub fn new(schedule: [u64; 7]) -> Self {
        NotifyCore {
            notifications: BTreeMap::new(),
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
        let id = event.id().to_string();
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
    pub fn due(&self, now_ms: u64) -> Vec<(String, u32)> {
        self.notifications
            .values()
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
    /// attempt k < [`MAX_ATTEMPTS`] makes attempt k + 1 due `schedule[k - 1]` later; a failed
    /// last attempt exhausts the notification.
    pub fn decide_result(
        &self,
        event: &str,
        attempt: u32,
        acked: bool,
        now_ms: u64,
    ) -> Option<NotifyRecord> {
        let n = self.notifications.get(event)?;
        if !matches!(n.state, NotifyState::Pending { .. }) || attempt != n.attempts + 1 {
            return None;
        }
        let next_due_ms = if acked || attempt >= MAX_ATTEMPTS {
            None
        } else {
            Some(now_ms.saturating_add(self.schedule[attempt as usize - 1]))
        };
        Some(NotifyRecord::Attempted {
            event: event.to_string(),
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
                    (false, Some(next_due_ms)) if attempt < MAX_ATTEMPTS => {
                        NotifyState::Pending { next_due_ms }
                    }
                    (false, None) if attempt == MAX_ATTEMPTS => NotifyState::Exhausted,
                    _ => panic!(
                        "notification {event}: attempt {attempt} acked={acked} cannot be \
                         followed by {next_due_ms:?}"
                    ),
                };
            }
        }
    }

    pub fn notification(&self, event: &str) -> Option<&Notification> {
        self.notifications.get(event)
    }

    /// Every notification, in event-id order.
    pub fn notifications(&self) -> impl Iterator<Item = &Notification> {
        self.notifications.values()
    }

    /// What is still pending, one line each (empty at rest), for liveness reports.
    pub fn pending(&self) -> Vec<String> {
        self.notifications
            .values()
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
mod tests {
    use super::*;
    use crate::money::Amount;
    use crate::notify::types::SIMULATION_NOTIFY_SCHEDULE_MS;
    use crate::trade::TradeEventKind;
    use rust_decimal::Decimal;

    const MERCHANT: AccountId = AccountId(5);

    fn core() -> NotifyCore {
        NotifyCore::new(SIMULATION_NOTIFY_SCHEDULE_MS)
    }

    fn paid(seq: u64) -> TradeEvent {
        TradeEvent {
            trade: TradeId { shard: 0, seq },
            version: 1,
            kind: TradeEventKind::Paid,
            status: TradeStatus::Paid,
            merchant: MERCHANT,
            payer: Some(AccountId(9)),
            amount: Amount::from_fen(1_000).unwrap(),
            paid: Decimal::new(1_000, 2),
            refunded: Decimal::new(0, 2),
            refund: None,
        }
    }

    /// Decides and applies like the shell does, keeping the records written.
    struct Run {
        core: NotifyCore,
        log: Vec<NotifyRecord>,
    }

    impl Run {
        fn new() -> Self {
            Run {
                core: core(),
                log: Vec::new(),
            }
        }

        fn write(&mut self, record: Option<NotifyRecord>) -> bool {
            match record {
                Some(r) => {
                    self.log.push(r.clone());
                    self.core.apply(r);
                    true
                }
                None => false,
            }
        }

        fn schedule(&mut self, event: &TradeEvent, now_ms: u64) -> bool {
            let r = self.core.decide_schedule(event, now_ms);
            self.write(r)
        }

        fn result(&mut self, event: &str, attempt: u32, acked: bool, now_ms: u64) -> bool {
            let r = self.core.decide_result(event, attempt, acked, now_ms);
            self.write(r)
        }
    }

    fn state(c: &NotifyCore, event: &str) -> (u32, NotifyState) {
        let n = c.notification(event).unwrap();
        (n.attempts, n.state)
    }

    #[test]
    fn an_acknowledged_first_attempt_ends_the_notification() {
        let mut r = Run::new();
        let e = paid(1);
        assert!(r.schedule(&e, 1_000));
        let n = r.core.notification("T0-1:v1:paid").unwrap();
        assert_eq!(
            n.call(1),
            MerchantNotifyCall {
                event: "T0-1:v1:paid".into(),
                trade: e.trade,
                merchant: MERCHANT,
                status: TradeStatus::Paid,
                version: 1,
                attempt: 1,
            }
        );
        assert_eq!(r.core.due(999), vec![]);
        assert_eq!(r.core.due(1_000), vec![("T0-1:v1:paid".to_string(), 1)]);
        assert_eq!(
            r.core.pending(),
            vec!["notification T0-1:v1:paid: attempt 1 due at 1000ms".to_string()]
        );
        assert!(r.result("T0-1:v1:paid", 1, true, 1_010));
        assert_eq!(
            state(&r.core, "T0-1:v1:paid"),
            (1, NotifyState::Acknowledged { attempt: 1 })
        );
        assert_eq!(r.core.due(u64::MAX), vec![]);
        assert_eq!(r.core.pending(), Vec::<String>::new());
    }

    #[test]
    fn eight_failed_attempts_follow_the_schedule_then_give_up() {
        let mut r = Run::new();
        assert!(r.schedule(&paid(1), 1_000));
        let id = "T0-1:v1:paid";
        let mut attempted_at = Vec::new();
        let mut now_ms = 1_000;
        for attempt in 1..=MAX_ATTEMPTS {
            assert_eq!(
                r.core.due(now_ms - 1),
                vec![],
                "attempt {attempt} not yet due"
            );
            assert_eq!(r.core.due(now_ms), vec![(id.to_string(), attempt)]);
            attempted_at.push(now_ms);
            assert!(r.result(id, attempt, false, now_ms));
            match state(&r.core, id) {
                (a, NotifyState::Pending { next_due_ms }) if a == attempt => now_ms = next_due_ms,
                (a, NotifyState::Exhausted) if a == MAX_ATTEMPTS => {}
                other => panic!("after attempt {attempt}: {other:?}"),
            }
        }
        assert_eq!(
            attempted_at,
            vec![1_000, 1_240, 1_840, 2_440, 6_040, 13_240, 34_840, 88_840]
        );
        assert_eq!(attempted_at[7] - attempted_at[0], 87_840, "87.84 s");
        assert_eq!(state(&r.core, id), (8, NotifyState::Exhausted));
        assert_eq!(
            r.log.last(),
            Some(&NotifyRecord::Attempted {
                event: id.into(),
                attempt: 8,
                acked: false,
                next_due_ms: None,
            })
        );
        assert_eq!(r.core.due(u64::MAX), vec![]);
        assert_eq!(r.core.pending(), Vec::<String>::new());
        assert_eq!(r.core.decide_result(id, 9, true, 100_000), None);
    }

    #[test]
    fn a_second_schedule_of_one_event_is_ignored() {
        let mut r = Run::new();
        assert!(r.schedule(&paid(1), 1_000));
        assert!(!r.schedule(&paid(1), 2_000));
        assert!(r.result("T0-1:v1:paid", 1, true, 1_000));
        assert!(!r.schedule(&paid(1), 3_000), "not even once acknowledged");
        assert_eq!(r.log.len(), 2);
        assert_eq!(r.core.notifications().count(), 1);
    }

    #[test]
    fn stale_results_are_ignored() {
        let mut r = Run::new();
        let id = "T0-1:v1:paid";
        assert_eq!(r.core.decide_result(id, 1, true, 0), None, "unknown event");
        assert!(r.schedule(&paid(1), 0));
        assert_eq!(r.core.decide_result(id, 2, false, 0), None, "not yet due");
        assert_eq!(r.core.decide_result(id, 0, false, 0), None);
        assert!(r.result(id, 1, false, 0));
        // A late reply to attempt 1 (a duplicate, or one from before a crash) changes nothing.
        assert!(!r.result(id, 1, true, 100));
        assert_eq!(
            state(&r.core, id),
            (1, NotifyState::Pending { next_due_ms: 240 })
        );
        assert!(r.result(id, 2, true, 240));
        assert!(!r.result(id, 2, true, 250));
        assert!(!r.result(id, 3, false, 250));
        assert_eq!(
            state(&r.core, id),
            (2, NotifyState::Acknowledged { attempt: 2 })
        );
    }

    #[test]
    fn due_lists_attempts_in_event_id_order() {
        // Event ids order as strings: "T0-10:…" comes before "T0-1:…" (':' > '0').
        let mut r = Run::new();
        for (seq, at) in [(3, 100), (1, 300), (2, 200), (10, 0)] {
            assert!(r.schedule(&paid(seq), at));
        }
        assert_eq!(r.core.due(50), vec![("T0-10:v1:paid".to_string(), 1)]);
        assert!(r.result("T0-10:v1:paid", 1, false, 50)); // attempt 2 due at 290
        let due: Vec<_> = r
            .core
            .due(300)
            .into_iter()
            .map(|(e, a)| format!("{e}#{a}"))
            .collect();
        assert_eq!(
            due,
            vec![
                "T0-10:v1:paid#2",
                "T0-1:v1:paid#1",
                "T0-2:v1:paid#1",
                "T0-3:v1:paid#1"
            ]
        );
        assert_eq!(r.core.due(199).len(), 1);
    }

    #[test]
    fn recovery_mid_schedule_resumes_where_the_log_stopped() {
        let mut r = Run::new();
        let a = "T0-1:v1:paid";
        let b = "T0-2:v1:paid";
        let c = "T0-3:v1:paid";
        assert!(r.schedule(&paid(1), 0));
        assert!(r.schedule(&paid(2), 0));
        assert!(r.schedule(&paid(3), 0));
        assert!(r.result(a, 1, false, 0));
        assert!(r.result(a, 2, false, 240));
        assert!(r.result(a, 3, false, 840)); // attempt 4 due at 1_440
        assert!(r.result(b, 1, true, 5));
        for attempt in 1..=MAX_ATTEMPTS {
            assert!(r.result(c, attempt, false, 0));
        }

        let bytes: Vec<Vec<u8>> = r
            .log
            .iter()
            .map(|x| bincode::serialize(x).unwrap())
            .collect();
        let decoded: Vec<NotifyRecord> = bytes
            .iter()
            .map(|x| bincode::deserialize(x).unwrap())
            .collect();
        assert_eq!(decoded, r.log);
        // Replay never consults the schedule: a notifier restarted with another one rebuilds
        // the same due times.
        let other = NotifyCore::recover(crate::notify::NOTIFY_SCHEDULE_MS, &decoded);
        assert_eq!(
            other.notifications().collect::<Vec<_>>(),
            r.core.notifications().collect::<Vec<_>>()
        );
        let mut back = NotifyCore::recover(SIMULATION_NOTIFY_SCHEDULE_MS, &decoded);
        assert_eq!(back, r.core);
        assert_eq!(
            back.pending(),
            vec!["notification T0-1:v1:paid: attempt 4 due at 1440ms".to_string()]
        );
        assert_eq!(back.due(1_439), vec![]);
        assert_eq!(back.due(1_440), vec![(a.to_string(), 4)]);
        assert_eq!(back.decide_schedule(&paid(2), 2_000), None);
        let next = back.decide_result(a, 4, false, 1_440).unwrap();
        back.apply(next);
        assert_eq!(
            state(&back, a),
            (4, NotifyState::Pending { next_due_ms: 5_040 })
        );
        assert_eq!(
            state(&back, b),
            (1, NotifyState::Acknowledged { attempt: 1 })
        );
        assert_eq!(state(&back, c), (8, NotifyState::Exhausted));
    }

    #[test]
    #[should_panic(expected = "notification T0-1:v1:paid scheduled twice")]
    fn a_second_schedule_in_the_log_is_asserted() {
        let mut c = core();
        let record = c.decide_schedule(&paid(1), 0).unwrap();
        c.apply(record.clone());
        c.apply(record);
    }

    #[test]
    #[should_panic(expected = "attempt 3 recorded after 1 attempts")]
    fn a_result_for_an_attempt_not_due_is_asserted() {
        let mut c = core();
        let record = c.decide_schedule(&paid(1), 0).unwrap();
        c.apply(record);
        let first = c.decide_result("T0-1:v1:paid", 1, false, 0).unwrap();
        c.apply(first);
        c.apply(NotifyRecord::Attempted {
            event: "T0-1:v1:paid".into(),
            attempt: 3,
            acked: false,
            next_due_ms: Some(10),
        });
    }

    #[test]
    #[should_panic(expected = "attempt 2 acked=false cannot be followed by None")]
    fn giving_up_before_the_last_attempt_is_asserted() {
        let mut c = core();
        let record = c.decide_schedule(&paid(1), 0).unwrap();
        c.apply(record);
        let first = c.decide_result("T0-1:v1:paid", 1, false, 0).unwrap();
        c.apply(first);
        c.apply(NotifyRecord::Attempted {
            event: "T0-1:v1:paid".into(),
            attempt: 2,
            acked: false,
            next_due_ms: None,
        });
    }
}

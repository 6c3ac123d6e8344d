//! Table tests of the notifier engine: each case runs (input, expected outputs) rows against one
//! engine, with the time carried by the inputs.

use super::*;
use crate::ids::EventId;

fn eid(event: &TradeEvent) -> EventId {
    event.id()
}
use crate::broker::{Message, MessageId};
use crate::ids::AccountId;
use crate::money::Amount;
use crate::notify::types::SIMULATION_NOTIFY_SCHEDULE_MS;
use crate::notify::NotifyState;
use crate::trade::{TradeEventKind, TradeId, TradeStatus};
use rust_decimal::Decimal;

fn paid(seq: u64) -> TradeEvent {
    TradeEvent {
        trade: TradeId { shard: 0, seq },
        version: 1,
        kind: TradeEventKind::Paid,
        status: TradeStatus::Paid,
        merchant: AccountId(5),
        payer: Some(AccountId(9)),
        amount: Amount::from_fen(1_000).unwrap(),
        paid: Decimal::new(1_000, 2),
        refunded: Decimal::new(0, 2),
        refund: None,
    }
}

fn delivered(event: &TradeEvent, now_ms: u64) -> NotifyInput {
    NotifyInput::Delivered {
        delivery: Delivery {
            message: Message {
                id: MessageId {
                    topic: "trade-events".into(),
                    queue: 0,
                    offset: 0,
                },
                key: event.key(),
                payload: event.encode(),
                producer_msg_id: event.id().to_string(),
                stored_ms: 0,
                from_half: None,
            },
            attempt: 1,
        },
        now_ms,
    }
}

fn scheduled(event: &TradeEvent, due_ms: u64) -> NotifyRecord {
    NotifyRecord::Scheduled {
        event: eid(event),
        trade: event.trade,
        merchant: event.merchant,
        status: event.status,
        version: event.version,
        due_ms,
    }
}

fn call(event: &TradeEvent, attempt: u32) -> NotifyOutput {
    NotifyOutput::Call(MerchantNotifyCall {
        event: eid(event),
        trade: event.trade,
        merchant: event.merchant,
        status: event.status,
        version: event.version,
        attempt,
    })
}

fn tick(now_ms: u64) -> NotifyInput {
    NotifyInput::Tick { now_ms }
}

fn answered(event: &TradeEvent, attempt: u32, acked: bool, now_ms: u64) -> NotifyInput {
    NotifyInput::Answered {
        event: eid(event),
        attempt,
        acked,
        now_ms,
    }
}

fn attempted(event: &TradeEvent, attempt: u32, acked: bool, next: Option<u64>) -> NotifyRecord {
    NotifyRecord::Attempted {
        event: eid(event),
        attempt,
        acked,
        next_due_ms: next,
    }
}

fn ended(event: &TradeEvent) -> NotifyInput {
    NotifyInput::CallEnded { event: eid(event) }
}

fn engine() -> NotifyEngine {
    NotifyEngine::recover(SIMULATION_NOTIFY_SCHEDULE_MS, &[])
}

fn run(e: &mut NotifyEngine, rows: Vec<(NotifyInput, Vec<NotifyOutput>)>) {
    for (i, (input, expected)) in rows.into_iter().enumerate() {
        let shown = format!("{input:?}");
        assert_eq!(e.step(input), expected, "row {i}: {shown}");
    }
}

fn state(e: &NotifyEngine, event: &TradeEvent) -> (u32, NotifyState) {
    let n = e.core().notification(&eid(event)).unwrap();
    (n.attempts, n.state)
}

#[test]
fn a_delivery_schedules_its_notification_once_and_durably() {
    let (mut e, a) = (engine(), paid(1));
    let mut garbage = delivered(&a, 10);
    if let NotifyInput::Delivered { delivery, .. } = &mut garbage {
        delivery.message.payload = "garbage".into();
    }
    let out = e.step(garbage);
    assert!(matches!(&out[..], [NotifyOutput::Done(Err(_))]), "{out:?}");
    run(
        &mut e,
        vec![
            (
                delivered(&a, 10),
                vec![
                    NotifyOutput::Append(scheduled(&a, 10)),
                    NotifyOutput::Sync,
                    NotifyOutput::Done(Ok(())),
                ],
            ),
            // A redelivery schedules nothing, but waits for the first schedule's sync.
            (
                delivered(&a, 20),
                vec![
                    NotifyOutput::Probe(names::CONSUMER_DUPLICATE_SKIPPED),
                    NotifyOutput::Sync,
                    NotifyOutput::Done(Ok(())),
                ],
            ),
        ],
    );
}

#[test]
fn attempts_are_called_when_due_in_event_id_order_and_once_at_a_time() {
    let (mut e, a, b, c) = (engine(), paid(1), paid(2), paid(3));
    for (event, now) in [(&c, 50), (&b, 100), (&a, 50)] {
        e.step(delivered(event, now));
    }
    run(
        &mut e,
        vec![
            (tick(40), vec![]),
            // b is not due before 100; a and c come in event-id order.
            (tick(60), vec![call(&a, 1), call(&c, 1)]),
            // On their way: not called again.
            (tick(100), vec![call(&b, 1)]),
            (tick(150), vec![]),
        ],
    );
    assert!(e.is_calling(&eid(&a)) && e.is_calling(&eid(&b)));
}

#[test]
fn an_acknowledged_attempt_ends_the_notification() {
    let (mut e, a) = (engine(), paid(1));
    e.step(delivered(&a, 0));
    run(
        &mut e,
        vec![
            (tick(0), vec![call(&a, 1)]),
            (
                answered(&a, 1, true, 30),
                vec![
                    NotifyOutput::Probe(names::NOTIFY_ACKED),
                    NotifyOutput::Append(attempted(&a, 1, true, None)),
                    NotifyOutput::Sync,
                ],
            ),
            (ended(&a), vec![]),
            (tick(1_000_000), vec![]),
        ],
    );
    assert_eq!(state(&e, &a), (1, NotifyState::Acknowledged { attempt: 1 }));
    assert!(!e.is_calling(&eid(&a)));
}

#[test]
fn a_failed_attempt_is_retried_on_the_schedule() {
    let (mut e, a) = (engine(), paid(1));
    e.step(delivered(&a, 0));
    let due = 30 + SIMULATION_NOTIFY_SCHEDULE_MS[0];
    run(
        &mut e,
        vec![
            (tick(0), vec![call(&a, 1)]),
            // A failure, or a reply that came too late (the caller saw no answer).
            (
                answered(&a, 1, false, 30),
                vec![
                    NotifyOutput::Probe(names::NOTIFY_RETRIED),
                    NotifyOutput::Append(attempted(&a, 1, false, Some(due))),
                    NotifyOutput::Sync,
                ],
            ),
            (ended(&a), vec![]),
            (tick(due - 1), vec![]),
            (tick(due), vec![call(&a, 2)]),
        ],
    );
    assert_eq!(
        state(&e, &a),
        (1, NotifyState::Pending { next_due_ms: due })
    );
}

#[test]
fn a_late_or_repeated_answer_records_nothing() {
    let (mut e, a) = (engine(), paid(1));
    e.step(delivered(&a, 0));
    e.step(tick(0));
    e.step(answered(&a, 1, true, 10));
    e.step(ended(&a));
    run(
        &mut e,
        vec![
            // A second answer to attempt 1 (the merchant's duplicate), and one for an attempt
            // never made: only the sync, nothing recorded.
            (answered(&a, 1, false, 20), vec![NotifyOutput::Sync]),
            (answered(&a, 5, true, 20), vec![NotifyOutput::Sync]),
            (answered(&paid(9), 1, true, 20), vec![NotifyOutput::Sync]),
        ],
    );
    assert_eq!(state(&e, &a), (1, NotifyState::Acknowledged { attempt: 1 }));
}

#[test]
fn eight_failed_attempts_exhaust_the_notification() {
    let (mut e, a) = (engine(), paid(1));
    e.step(delivered(&a, 0));
    let mut now = 0;
    for attempt in 1..=ATTEMPTS_MAX {
        assert_eq!(
            e.step(tick(now)),
            vec![call(&a, attempt)],
            "attempt {attempt}"
        );
        let out = e.step(answered(&a, attempt, false, now));
        let last = attempt == ATTEMPTS_MAX;
        let next = (!last).then(|| now + SIMULATION_NOTIFY_SCHEDULE_MS[attempt as usize - 1]);
        let probe = if last {
            names::NOTIFY_EXHAUSTED
        } else {
            names::NOTIFY_RETRIED
        };
        assert_eq!(
            out,
            vec![
                NotifyOutput::Probe(probe),
                NotifyOutput::Append(attempted(&a, attempt, false, next)),
                NotifyOutput::Sync,
            ],
            "attempt {attempt}"
        );
        e.step(ended(&a));
        now = next.unwrap_or(now);
    }
    assert_eq!(state(&e, &a), (ATTEMPTS_MAX, NotifyState::Exhausted));
    assert_eq!(e.step(tick(u64::MAX)), vec![]);
}

#[test]
fn a_restarted_notifier_resumes_from_its_log_and_calls_what_was_on_its_way() {
    let (a, b) = (paid(1), paid(2));
    let due = 10 + SIMULATION_NOTIFY_SCHEDULE_MS[0];
    // The first life: a failed once, b was acknowledged; a's second attempt was on its way
    // when the node crashed, so its result was never recorded.
    let log = vec![
        scheduled(&a, 0),
        scheduled(&b, 0),
        attempted(&a, 1, false, Some(due)),
        attempted(&b, 1, true, None),
    ];
    let mut first = NotifyEngine::recover(SIMULATION_NOTIFY_SCHEDULE_MS, &log);
    assert_eq!(first.step(tick(due)), vec![call(&a, 2)]);
    // The second life: nothing is on its way; attempt 2 is still due and called again.
    let mut second = NotifyEngine::recover(SIMULATION_NOTIFY_SCHEDULE_MS, &log);
    assert!(!second.is_calling(&eid(&a)));
    run(
        &mut second,
        vec![
            (tick(due - 1), vec![]),
            (tick(due + 500), vec![call(&a, 2)]),
        ],
    );
    assert_eq!(second.core(), first.core());
}

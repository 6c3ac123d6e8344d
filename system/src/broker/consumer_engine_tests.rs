//! Table tests of the consumer engine: each case is a sequence of (input, expected outputs)
//! rows run against one engine, then a check of its positions.

use super::*;
use crate::broker::types::{Message, NackOutcome};

const GROUP: &str = "g";
const TOPIC: &str = "t";

fn engine_on(queues: Vec<u32>, mode: ConsumeMode, commit_first: bool) -> ConsumerEngine {
    let id = ConsumerIdentity {
        group: GROUP.into(),
        consumer: "c".into(),
        topic: TOPIC.into(),
        mode,
        batch: 4,
        hold_ms: 0,
        consume_batch: 1,
    };
    ConsumerEngine::new(id, queues, commit_first)
}

fn engine(commit_first: bool) -> ConsumerEngine {
    engine_on(vec![0, 1], ConsumeMode::Clustering, commit_first)
}

fn mid(queue: u32, offset: u64) -> MessageId {
    MessageId {
        topic: TOPIC.into(),
        queue,
        offset,
    }
}

fn delivery(queue: u32, offset: u64, attempt: u32) -> Delivery {
    Delivery {
        message: Message {
            id: mid(queue, offset),
            key: format!("k{queue}"),
            payload: format!("p{queue}-{offset}"),
            producer_msg_id: format!("m{queue}-{offset}"),
            stored_ms: 0,
            from_half: None,
        },
        attempt,
    }
}

fn subscribe() -> Output {
    Output::Call(BrokerCommand::Subscribe {
        group: GROUP.into(),
        topic: TOPIC.into(),
        mode: ConsumeMode::Clustering,
    })
}

fn subscribed() -> Input {
    Input::Answer(Some(Ok(BrokerReply::Subscribed {
        group: GROUP.into(),
        topic: TOPIC.into(),
        mode: ConsumeMode::Clustering,
    })))
}

fn pull(queue: u32, from: Option<u64>) -> Output {
    Output::Call(BrokerCommand::Pull {
        group: GROUP.into(),
        consumer: "c".into(),
        topic: TOPIC.into(),
        queue,
        from,
        max: 4,
    })
}

fn pulled(deliveries: Vec<Delivery>, next_offset: u64) -> Input {
    Input::Answer(Some(Ok(BrokerReply::Pulled {
        deliveries,
        next_offset,
        end_offset: next_offset,
    })))
}

fn pull_retries() -> Output {
    Output::Call(BrokerCommand::PullRetries {
        group: GROUP.into(),
        max: 4,
    })
}

fn retries_due(deliveries: Vec<Delivery>) -> Input {
    Input::Answer(Some(Ok(BrokerReply::RetriesDue { deliveries })))
}

fn commit_command(queue: u32, offset: u64) -> BrokerCommand {
    BrokerCommand::CommitOffset {
        group: GROUP.into(),
        consumer: "c".into(),
        topic: TOPIC.into(),
        queue,
        offset,
    }
}

fn committed(queue: u32, offset: u64) -> Input {
    Input::Committed {
        queue,
        answer: Some(Ok(BrokerReply::OffsetCommitted { offset })),
    }
}

fn nack(queue: u32, offset: u64, attempt: u32) -> Output {
    Output::Call(BrokerCommand::Nack {
        group: GROUP.into(),
        message: mid(queue, offset),
        attempt,
    })
}

fn nacked(queue: u32, offset: u64) -> Input {
    Input::Answer(Some(Ok(BrokerReply::Nacked {
        message: mid(queue, offset),
        outcome: NackOutcome::Retry {
            attempt: 2,
            due_ms: 100,
        },
    })))
}

fn ok() -> Input {
    Input::Processed(Ok(()))
}

fn failed() -> Input {
    Input::Processed(Err("busy".into()))
}

fn pos(next: Option<u64>, done: Option<u64>, committed: u64) -> Position {
    Position {
        next,
        done,
        committed,
    }
}

/// Runs the rows in order, asserting each input's outputs; a main-loop input must block on
/// exactly one output, its last.
fn run(e: &mut ConsumerEngine, rows: Vec<(Input, Vec<Output>)>) {
    for (i, (input, expected)) in rows.into_iter().enumerate() {
        let main_loop = !matches!(input, Input::CommitTick | Input::Committed { .. });
        let shown = format!("{input:?}");
        let got = e.step(input);
        assert_eq!(got, expected, "row {i}: {shown}");
        if main_loop {
            let blocking: Vec<_> = got.iter().filter(|o| o.blocks()).collect();
            assert_eq!(blocking.len(), 1, "row {i}: {shown} blocks on one output");
            assert!(
                got.last().unwrap().blocks(),
                "row {i}: the blocking output is last"
            );
        }
    }
}

/// Start and subscribe: the first round pulls queue 0 from the committed offset.
fn started(commit_first: bool) -> ConsumerEngine {
    let mut e = engine(commit_first);
    run(
        &mut e,
        vec![
            (Input::Start, vec![subscribe()]),
            (subscribed(), vec![Output::StartCommitTimer, pull(0, None)]),
        ],
    );
    e
}

#[test]
fn a_refused_or_unanswered_subscription_is_retried_after_a_pause() {
    let mut e = engine(false);
    let refused = Input::Answer(Some(Err(BrokerError::UnknownTopic(TOPIC.into()))));
    run(
        &mut e,
        vec![
            (Input::Start, vec![subscribe()]),
            (refused, vec![Output::Idle]),
            (Input::Woke, vec![subscribe()]),
            (Input::Answer(None), vec![Output::Idle]),
            (Input::Woke, vec![subscribe()]),
            (subscribed(), vec![Output::StartCommitTimer, pull(0, None)]),
        ],
    );
}

#[test]
fn a_batch_is_processed_one_delivery_at_a_time_in_queue_order() {
    let mut e = started(false);
    run(
        &mut e,
        vec![
            (
                pulled(vec![delivery(0, 3, 1), delivery(0, 4, 1)], 5),
                vec![Output::Process(delivery(0, 3, 1))],
            ),
            (ok(), vec![Output::Process(delivery(0, 4, 1))]),
            (ok(), vec![Output::Window]),
        ],
    );
    // Processed, but not committable until the window is passed.
    assert_eq!(e.position(0), Some(pos(None, Some(3), 3)));
    run(&mut e, vec![(Input::Woke, vec![pull(1, None)])]);
    assert_eq!(e.position(0), Some(pos(Some(5), Some(5), 3)));
    // The next round pulls queue 0 from where processing reached.
    run(
        &mut e,
        vec![
            (pulled(vec![], 0), vec![pull_retries()]),
            (retries_due(vec![]), vec![pull(0, Some(5))]),
        ],
    );
}

#[test]
fn only_processed_positions_are_committed() {
    let mut e = started(false);
    run(
        &mut e,
        vec![
            (
                pulled(vec![delivery(0, 0, 1), delivery(0, 1, 1)], 2),
                vec![Output::Process(delivery(0, 0, 1))],
            ),
            // Mid-batch: nothing processed is committable yet.
            (Input::CommitTick, vec![]),
            (ok(), vec![Output::Process(delivery(0, 1, 1))]),
            (ok(), vec![Output::Window]),
            // In the window between processing and the offset: still nothing.
            (Input::CommitTick, vec![]),
            (Input::Woke, vec![pull(1, None)]),
            (
                Input::CommitTick,
                vec![Output::Commit {
                    queue: 0,
                    command: commit_command(0, 2),
                }],
            ),
            (committed(0, 2), vec![]),
            // Committed: nothing moved since.
            (Input::CommitTick, vec![]),
        ],
    );
    assert_eq!(e.position(0), Some(pos(Some(2), Some(2), 2)));
}

#[test]
fn a_lost_commit_is_sent_again_on_the_next_tick() {
    let mut e = started(false);
    run(
        &mut e,
        vec![
            (
                pulled(vec![delivery(0, 0, 1)], 1),
                vec![Output::Process(delivery(0, 0, 1))],
            ),
            (ok(), vec![Output::Window]),
            (Input::Woke, vec![pull(1, None)]),
        ],
    );
    let commit = Output::Commit {
        queue: 0,
        command: commit_command(0, 1),
    };
    run(
        &mut e,
        vec![
            (Input::CommitTick, vec![commit.clone()]),
            (
                Input::Committed {
                    queue: 0,
                    answer: None,
                },
                vec![],
            ),
            (Input::CommitTick, vec![commit]),
        ],
    );
}

#[test]
fn a_failure_is_nacked_and_its_retry_delivered_in_a_later_round() {
    let mut e = started(false);
    run(
        &mut e,
        vec![
            (
                pulled(vec![delivery(0, 0, 1), delivery(0, 1, 1)], 2),
                vec![Output::Process(delivery(0, 0, 1))],
            ),
            (
                failed(),
                vec![
                    Output::Probe(names::CONSUMER_PROCESSING_FAILED),
                    nack(0, 0, 1),
                ],
            ),
            // The broker took the failure: the batch goes on, and its end is committable.
            (nacked(0, 0), vec![Output::Process(delivery(0, 1, 1))]),
            (ok(), vec![Output::Window]),
            (Input::Woke, vec![pull(1, None)]),
            (pulled(vec![], 0), vec![pull_retries()]),
            // The retry comes due later, from the group's retry queue.
            (
                retries_due(vec![delivery(0, 0, 2)]),
                vec![
                    Output::Probe(names::CONSUMER_RETRY_DELIVERED),
                    Output::Process(delivery(0, 0, 2)),
                ],
            ),
            (
                ok(),
                vec![Output::Call(BrokerCommand::AckRetry {
                    group: GROUP.into(),
                    message: mid(0, 0),
                    attempt: 2,
                })],
            ),
            // The round found messages: the next starts at once.
            (
                Input::Answer(Some(Ok(BrokerReply::RetryAcked))),
                vec![pull(0, Some(2))],
            ),
        ],
    );
    assert_eq!(e.position(0), Some(pos(Some(2), Some(2), 0)));
}

#[test]
fn a_failure_the_broker_did_not_take_stops_the_batch_there() {
    let mut e = started(false);
    run(
        &mut e,
        vec![
            (
                pulled(
                    vec![delivery(0, 0, 1), delivery(0, 1, 1), delivery(0, 2, 1)],
                    3,
                ),
                vec![Output::Process(delivery(0, 0, 1))],
            ),
            (ok(), vec![Output::Process(delivery(0, 1, 1))]),
            (
                failed(),
                vec![
                    Output::Probe(names::CONSUMER_PROCESSING_FAILED),
                    nack(0, 1, 1),
                ],
            ),
            // The nack went unanswered: offset 1 must be delivered again, 2 is not handed out.
            (Input::Answer(None), vec![Output::Window]),
            (Input::Woke, vec![pull(1, None)]),
        ],
    );
    assert_eq!(e.position(0), Some(pos(Some(1), Some(1), 0)));
}

#[test]
fn a_failed_retry_is_nacked_again_and_an_unanswered_nack_leaves_it_due() {
    let mut e = started(false);
    run(
        &mut e,
        vec![
            (pulled(vec![], 0), vec![pull(1, None)]),
            (pulled(vec![], 0), vec![pull_retries()]),
            (
                retries_due(vec![delivery(1, 0, 3), delivery(0, 5, 2)]),
                vec![
                    Output::Probe(names::CONSUMER_RETRY_DELIVERED),
                    Output::Process(delivery(1, 0, 3)),
                ],
            ),
            (
                failed(),
                vec![
                    Output::Probe(names::CONSUMER_PROCESSING_FAILED),
                    nack(1, 0, 3),
                ],
            ),
            // Unanswered: the retry stays due at the broker; the next one is processed.
            (
                Input::Answer(None),
                vec![
                    Output::Probe(names::CONSUMER_RETRY_DELIVERED),
                    Output::Process(delivery(0, 5, 2)),
                ],
            ),
        ],
    );
}

#[test]
fn retries_of_queues_another_consumer_owns_are_left_to_it() {
    let mut e = engine_on(vec![0], ConsumeMode::Clustering, false);
    let mut other_topic = delivery(0, 0, 2);
    other_topic.message.id.topic = "other".into();
    run(
        &mut e,
        vec![
            (Input::Start, vec![subscribe()]),
            (subscribed(), vec![Output::StartCommitTimer, pull(0, None)]),
            (pulled(vec![], 0), vec![pull_retries()]),
            // Queue 1 is not this consumer's, nor is another topic: the round found nothing.
            (
                retries_due(vec![delivery(1, 0, 2), other_topic]),
                vec![Output::Idle],
            ),
            (Input::Woke, vec![pull(0, Some(0))]),
        ],
    );
}

#[test]
fn an_empty_round_pauses_and_an_unanswered_pull_pauses_then_goes_on() {
    let mut e = started(false);
    run(
        &mut e,
        vec![
            (Input::Answer(None), vec![Output::Idle]),
            (Input::Woke, vec![pull(1, None)]),
            (pulled(vec![], 7), vec![pull_retries()]),
            (Input::Answer(None), vec![Output::Idle]),
            // The round found nothing: one more pause before the next.
            (Input::Woke, vec![Output::Idle]),
            (Input::Woke, vec![pull(0, None)]),
        ],
    );
    // An empty first pull still learns the position.
    assert_eq!(e.position(1), Some(pos(Some(7), Some(7), 7)));
}

#[test]
fn a_restarted_consumer_replays_from_the_committed_offset() {
    // The first life processed 0..4, committed 2, and crashed.
    let mut first = started(false);
    let batch: Vec<Delivery> = (0..4).map(|o| delivery(0, o, 1)).collect();
    let mut rows = vec![(
        pulled(batch.clone(), 4),
        vec![Output::Process(batch[0].clone())],
    )];
    for d in &batch[1..] {
        rows.push((ok(), vec![Output::Process(d.clone())]));
    }
    rows.push((ok(), vec![Output::Window]));
    run(&mut first, rows);
    // The second life knows nothing: it pulls from the committed offset, and the broker hands
    // back 2 and 3 again, which the handler (a replica) must deduplicate.
    let mut second = started(false);
    run(
        &mut second,
        vec![(
            pulled(batch[2..].to_vec(), 4),
            vec![Output::Process(batch[2].clone())],
        )],
    );
    assert_eq!(second.position(0), Some(pos(None, Some(2), 2)));
}

#[test]
fn the_planted_offset_before_processing_commits_the_batch_before_handing_it_out() {
    let mut e = started(true);
    run(
        &mut e,
        vec![
            (
                pulled(vec![delivery(0, 0, 1), delivery(0, 1, 1)], 2),
                vec![Output::Call(commit_command(0, 2))],
            ),
            (
                Input::Answer(Some(Ok(BrokerReply::OffsetCommitted { offset: 2 }))),
                vec![Output::Window],
            ),
        ],
    );
    // Committed to the batch's end with nothing processed: a crash here loses both messages.
    assert_eq!(e.position(0), Some(pos(None, Some(0), 2)));
    run(
        &mut e,
        vec![
            (Input::Woke, vec![Output::Process(delivery(0, 0, 1))]),
            (ok(), vec![Output::Process(delivery(0, 1, 1))]),
            // No second window after processing.
            (ok(), vec![pull(1, None)]),
        ],
    );
    assert_eq!(e.position(0), Some(pos(Some(2), Some(2), 2)));
}

#[test]
fn a_lost_subscription_is_renewed_and_its_queue_rewound() {
    let mut e = started(false);
    run(
        &mut e,
        vec![
            (
                pulled(vec![delivery(0, 0, 1)], 1),
                vec![Output::Process(delivery(0, 0, 1))],
            ),
            (ok(), vec![Output::Window]),
            (Input::Woke, vec![pull(1, None)]),
            (pulled(vec![], 0), vec![pull_retries()]),
            (retries_due(vec![]), vec![pull(0, Some(1))]),
            (
                Input::Answer(Some(Err(BrokerError::UnknownGroup(GROUP.into())))),
                vec![subscribe()],
            ),
            // Subscribed again: queue 0 starts over from whatever offset the broker kept.
            (subscribed(), vec![pull(1, Some(0))]),
        ],
    );
    assert_eq!(e.position(0), Some(Position::default()));
}

#[test]
fn a_position_beyond_the_queues_end_is_rewound() {
    let mut e = started(false);
    run(
        &mut e,
        vec![
            (
                pulled(vec![delivery(0, 0, 1)], 1),
                vec![Output::Process(delivery(0, 0, 1))],
            ),
            (ok(), vec![Output::Window]),
            (Input::Woke, vec![pull(1, None)]),
            (
                Input::Committed {
                    queue: 0,
                    answer: Some(Err(BrokerError::OffsetBeyondEnd { offset: 1, end: 0 })),
                },
                vec![],
            ),
        ],
    );
    assert_eq!(e.position(0), Some(Position::default()));
    // A rewound queue is not committed until it is pulled again.
    run(&mut e, vec![(Input::CommitTick, vec![])]);
}

#[test]
fn a_broadcast_failure_is_not_nacked_and_there_are_no_retries() {
    let mut e = engine_on(vec![0], ConsumeMode::Broadcast, false);
    let broadcast_subscribe = Output::Call(BrokerCommand::Subscribe {
        group: GROUP.into(),
        topic: TOPIC.into(),
        mode: ConsumeMode::Broadcast,
    });
    run(
        &mut e,
        vec![
            (Input::Start, vec![broadcast_subscribe]),
            (subscribed(), vec![Output::StartCommitTimer, pull(0, None)]),
            (
                pulled(vec![delivery(0, 0, 1), delivery(0, 1, 1)], 2),
                vec![Output::Process(delivery(0, 0, 1))],
            ),
            (
                failed(),
                vec![
                    Output::Probe(names::CONSUMER_PROCESSING_FAILED),
                    Output::Process(delivery(0, 1, 1)),
                ],
            ),
            (ok(), vec![Output::Window]),
            // No retry pull in broadcast mode: the round ends, and it found messages.
            (Input::Woke, vec![pull(0, Some(2))]),
        ],
    );
}

#[test]
fn the_batch_size_is_clamped_to_the_pull_limit() {
    let id = ConsumerIdentity {
        group: GROUP.into(),
        consumer: "c".into(),
        topic: TOPIC.into(),
        mode: ConsumeMode::Clustering,
        batch: 1_000,
        hold_ms: 0,
        consume_batch: 1_000,
    };
    let mut e = ConsumerEngine::new(id, vec![0], false);
    e.step(Input::Start);
    let out = e.step(subscribed());
    assert!(
        matches!(&out[1], Output::Call(BrokerCommand::Pull { max, .. }) if *max == PULL_BATCH_MAX),
        "{out:?}"
    );
    // A consumption batch is never larger than a pull.
    assert_eq!(e.id.consume_batch, PULL_BATCH_MAX);
}

fn await_news(positions: Vec<(u32, u64)>) -> Output {
    Output::Call(BrokerCommand::Await {
        group: GROUP.into(),
        consumer: "c".into(),
        topic: TOPIC.into(),
        positions,
        hold_ms: 200,
    })
}

fn news(queues: Vec<u32>, retries: bool) -> Input {
    Input::Answer(Some(Ok(BrokerReply::News { queues, retries })))
}

/// A long-polling consumer of queues 0 and 1 after an empty first round (positions 3 and 7).
fn long_polling() -> ConsumerEngine {
    let mut e = engine(false);
    e.id.hold_ms = 200;
    run(
        &mut e,
        vec![
            (Input::Start, vec![subscribe()]),
            (subscribed(), vec![Output::StartCommitTimer, pull(0, None)]),
            (pulled(vec![], 3), vec![pull(1, None)]),
            (pulled(vec![], 7), vec![pull_retries()]),
            (retries_due(vec![]), vec![await_news(vec![(0, 3), (1, 7)])]),
        ],
    );
    e
}

#[test]
fn a_long_polling_consumer_pulls_only_the_queues_with_news() {
    let mut e = long_polling();
    run(
        &mut e,
        vec![
            // Nothing within the hold: hold again, without pulling.
            (news(vec![], false), vec![await_news(vec![(0, 3), (1, 7)])]),
            // News on queue 1 only: pull it, and no retries.
            (news(vec![1], false), vec![pull(1, Some(7))]),
            (
                pulled(vec![delivery(1, 7, 1)], 8),
                vec![Output::Process(delivery(1, 7, 1))],
            ),
            (ok(), vec![Output::Window]),
            // Every round ends in a long poll, which the broker answers at once if there is more.
            (Input::Woke, vec![await_news(vec![(0, 3), (1, 8)])]),
            // Due retries (and a queue this consumer does not own, ignored).
            (news(vec![5], true), vec![pull_retries()]),
            (
                retries_due(vec![delivery(0, 1, 2)]),
                vec![
                    Output::Probe(names::CONSUMER_RETRY_DELIVERED),
                    Output::Process(delivery(0, 1, 2)),
                ],
            ),
        ],
    );
    assert_eq!(e.position(1), Some(pos(Some(8), Some(8), 7)));
}

#[test]
fn an_unanswered_or_refused_long_poll_pauses_then_pulls_a_round() {
    let mut e = long_polling();
    let refused = Input::Answer(Some(Err(BrokerError::UnknownGroup(GROUP.into()))));
    run(
        &mut e,
        vec![
            (Input::Answer(None), vec![Output::Idle]),
            // After the pause, a full round.
            (Input::Woke, vec![pull(0, Some(3))]),
            (pulled(vec![], 3), vec![pull(1, Some(7))]),
            (pulled(vec![], 7), vec![pull_retries()]),
            (retries_due(vec![]), vec![await_news(vec![(0, 3), (1, 7)])]),
            (refused, vec![Output::Idle]),
            (Input::Woke, vec![pull(0, Some(3))]),
        ],
    );
}

#[test]
fn a_rewound_queue_pauses_instead_of_long_polling() {
    let mut e = long_polling();
    run(
        &mut e,
        vec![
            (news(vec![0], false), vec![pull(0, Some(3))]),
            // Queue 0's position is unknown until its next pull: no long poll can name it, so
            // an empty round pauses and a full round follows.
            (
                Input::Answer(Some(Err(BrokerError::OffsetBeyondEnd {
                    offset: 3,
                    end: 1,
                }))),
                vec![Output::Idle],
            ),
            (Input::Woke, vec![pull(0, None)]),
        ],
    );
}

// ---- Batch consumption -------------------------------------------------------------------

/// A started consumer whose handler takes up to three deliveries at once.
fn batched() -> ConsumerEngine {
    let mut e = engine(false);
    e.id.consume_batch = 3;
    run(
        &mut e,
        vec![
            (Input::Start, vec![subscribe()]),
            (subscribed(), vec![Output::StartCommitTimer, pull(0, None)]),
        ],
    );
    e
}

fn verdicts(results: &[bool]) -> Input {
    let one = |ok: &bool| if *ok { Ok(()) } else { Err("busy".to_string()) };
    Input::ProcessedMany(results.iter().map(one).collect())
}

#[test]
fn batch_consumption_hands_a_pull_out_in_slices_of_the_consumption_batch() {
    let mut e = batched();
    let d = |offset| delivery(0, offset, 1);
    run(
        &mut e,
        vec![
            (
                pulled(vec![d(0), d(1), d(2), d(3)], 4),
                vec![
                    Output::Probe(names::CONSUMER_BATCH_HANDED),
                    Output::ProcessMany(vec![d(0), d(1), d(2)]),
                ],
            ),
            (
                verdicts(&[true, true, true]),
                vec![Output::ProcessMany(vec![d(3)])],
            ),
            (verdicts(&[true]), vec![Output::Window]),
            (Input::Woke, vec![pull(1, None)]),
        ],
    );
    assert_eq!(e.position(0), Some(pos(Some(4), Some(4), 0)));
}

#[test]
fn a_batch_settles_each_verdict_in_order_before_handing_out_more() {
    let mut e = batched();
    let retry = |offset| delivery(0, offset, 2);
    run(
        &mut e,
        vec![
            (
                pulled(
                    vec![
                        delivery(0, 0, 1),
                        delivery(0, 1, 1),
                        retry(2),
                        delivery(0, 3, 1),
                    ],
                    4,
                ),
                vec![
                    Output::Probe(names::CONSUMER_BATCH_HANDED),
                    Output::ProcessMany(vec![delivery(0, 0, 1), delivery(0, 1, 1), retry(2)]),
                ],
            ),
            // The failure is nacked, then the succeeded retry acknowledged, in order.
            (
                verdicts(&[true, false, true]),
                vec![
                    Output::Probe(names::CONSUMER_PROCESSING_FAILED),
                    nack(0, 1, 1),
                ],
            ),
            (
                nacked(0, 1),
                vec![Output::Call(BrokerCommand::AckRetry {
                    group: GROUP.into(),
                    message: mid(0, 2),
                    attempt: 2,
                })],
            ),
            (
                Input::Answer(Some(Ok(BrokerReply::RetryAcked))),
                vec![Output::ProcessMany(vec![delivery(0, 3, 1)])],
            ),
        ],
    );
}

#[test]
fn an_unanswered_nack_stops_the_batch_there_and_drops_the_later_verdicts() {
    let mut e = batched();
    let d = |offset| delivery(0, offset, 1);
    run(
        &mut e,
        vec![
            (
                pulled(vec![d(5), d(6), d(7)], 8),
                vec![
                    Output::Probe(names::CONSUMER_BATCH_HANDED),
                    Output::ProcessMany(vec![d(5), d(6), d(7)]),
                ],
            ),
            (
                verdicts(&[true, false, true]),
                vec![
                    Output::Probe(names::CONSUMER_PROCESSING_FAILED),
                    nack(0, 6, 1),
                ],
            ),
            // The broker did not take the failure: processing reached 6, so 6 and 7 come
            // again from the next pull (7's success is not settled).
            (Input::Answer(None), vec![Output::Window]),
            (Input::Woke, vec![pull(1, None)]),
        ],
    );
    assert_eq!(e.position(0), Some(pos(Some(6), Some(6), 5)));
}

#[test]
#[should_panic(expected = "one verdict per delivery")]
fn a_batch_handler_must_give_one_verdict_per_delivery() {
    let mut e = batched();
    e.step(pulled(vec![delivery(0, 0, 1), delivery(0, 1, 1)], 2));
    e.step(verdicts(&[true]));
}

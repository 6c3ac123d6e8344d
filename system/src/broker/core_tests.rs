//! Unit tests of the broker core: decisions, replies, records, recovery and the assertions on
//! a corrupt log.

use super::*;

const TOPIC: &str = "trade-events";
const PRODUCERS: &str = "trade-producers";

type Answer = Result<BrokerReply, BrokerError>;

/// Decides and applies like the shell does.
fn run(c: &mut BrokerCore, cmd: BrokerCommand, now_ms: u64) -> Answer {
    match c.decide(&cmd, now_ms) {
        BrokerDecision::Reply(r) => r,
        BrokerDecision::Write(rec) => Ok(c.apply(rec)),
    }
}

/// As [`run`], keeping the commit log.
fn run_logged(
    c: &mut BrokerCore,
    cmd: BrokerCommand,
    now_ms: u64,
    log: &mut Vec<BrokerRecord>,
) -> Answer {
    match c.decide(&cmd, now_ms) {
        BrokerDecision::Reply(r) => r,
        BrokerDecision::Write(rec) => {
            log.push(rec.clone());
            Ok(c.apply(rec))
        }
    }
}

/// Whether `cmd` would be answered without writing anything.
fn writes_nothing(c: &BrokerCore, cmd: &BrokerCommand, now_ms: u64) -> bool {
    matches!(c.decide(cmd, now_ms), BrokerDecision::Reply(_))
}

/// A simulation-speed broker with one topic of four queues.
fn broker() -> BrokerCore {
    broker_with(BrokerConfig::simulation())
}

fn broker_with(config: BrokerConfig) -> BrokerCore {
    let mut c = BrokerCore::new(config);
    run(&mut c, create(TOPIC, 4), 0).unwrap();
    c
}

fn create(topic: &str, queues: u32) -> BrokerCommand {
    BrokerCommand::CreateTopic {
        topic: topic.into(),
        queues,
    }
}

fn send(key: &str, payload: &str, producer_msg_id: &str) -> BrokerCommand {
    BrokerCommand::Send {
        topic: TOPIC.into(),
        key: key.into(),
        payload: payload.into(),
        producer_msg_id: producer_msg_id.into(),
    }
}

fn send_half(key: &str, payload: &str, producer_msg_id: &str) -> BrokerCommand {
    BrokerCommand::SendHalf {
        topic: TOPIC.into(),
        key: key.into(),
        payload: payload.into(),
        producer_msg_id: producer_msg_id.into(),
        producer_group: PRODUCERS.into(),
    }
}

fn end_tx(half: HalfId, commit: bool) -> BrokerCommand {
    BrokerCommand::EndTransaction { half, commit }
}

fn check(half: HalfId) -> BrokerCommand {
    BrokerCommand::CheckBack { half }
}

fn subscribe(group: &str, mode: ConsumeMode) -> BrokerCommand {
    BrokerCommand::Subscribe {
        group: group.into(),
        topic: TOPIC.into(),
        mode,
    }
}

fn pull(group: &str, consumer: &str, queue: u32, from: Option<u64>, max: u32) -> BrokerCommand {
    BrokerCommand::Pull {
        group: group.into(),
        consumer: consumer.into(),
        topic: TOPIC.into(),
        queue,
        from,
        max,
    }
}

fn commit(group: &str, consumer: &str, queue: u32, offset: u64) -> BrokerCommand {
    BrokerCommand::CommitOffset {
        group: group.into(),
        consumer: consumer.into(),
        topic: TOPIC.into(),
        queue,
        offset,
    }
}

fn nack(group: &str, message: &MessageId, attempt: u32) -> BrokerCommand {
    BrokerCommand::Nack {
        group: group.into(),
        message: message.clone(),
        attempt,
    }
}

fn ack(group: &str, message: &MessageId, attempt: u32) -> BrokerCommand {
    BrokerCommand::AckRetry {
        group: group.into(),
        message: message.clone(),
        attempt,
    }
}

fn mid(queue: u32, offset: u64) -> MessageId {
    MessageId {
        topic: TOPIC.into(),
        queue,
        offset,
    }
}

fn sent(c: &mut BrokerCore, cmd: BrokerCommand, now_ms: u64) -> MessageId {
    match run(c, cmd, now_ms) {
        Ok(BrokerReply::Sent { message }) => message,
        other => panic!("send failed: {other:?}"),
    }
}

fn half_sent(c: &mut BrokerCore, cmd: BrokerCommand, now_ms: u64) -> HalfId {
    match run(c, cmd, now_ms) {
        Ok(BrokerReply::HalfSent { half }) => half,
        other => panic!("half send failed: {other:?}"),
    }
}

/// The offsets and payloads a pull returned.
fn pulled(answer: Answer) -> (Vec<(u64, String)>, u64, u64) {
    match answer {
        Ok(BrokerReply::Pulled {
            deliveries,
            next_offset,
            end_offset,
        }) => {
            for d in &deliveries {
                assert_eq!(d.attempt, 1, "a pull is a first delivery");
            }
            let got = deliveries
                .into_iter()
                .map(|d| (d.message.id.offset, d.message.payload))
                .collect();
            (got, next_offset, end_offset)
        }
        other => panic!("pull failed: {other:?}"),
    }
}

fn payloads(c: &BrokerCore, queue: u32) -> Vec<&str> {
    let messages = c.queue(TOPIC, queue).unwrap();
    messages.iter().map(|m| m.payload.as_str()).collect()
}

#[test]
fn queues_are_chosen_by_fnv1a_of_the_key() {
    assert_eq!(queue_of("", 4), 1, "the FNV offset basis 0x..25 is 1 mod 4");
    assert_eq!(queue_of("a", 4), 0);
    assert_eq!(queue_of("buyer-9", 8), 2);
    assert_eq!(queue_of("order-3", 4), 3);
    assert_eq!(queue_of("anything", 1), 0);
}

#[test]
fn one_keys_messages_go_to_one_queue_at_increasing_offsets() {
    let mut c = broker();
    let mut ids = Vec::new();
    for (i, key) in ["buyer-7", "buyer-8", "buyer-7", "buyer-8", "buyer-7"]
        .into_iter()
        .enumerate()
    {
        ids.push(sent(
            &mut c,
            send(key, &format!("p{i}"), &format!("m{i}")),
            0,
        ));
    }
    assert_eq!(
        ids,
        vec![mid(0, 0), mid(1, 0), mid(0, 1), mid(1, 1), mid(0, 2)]
    );
    assert_eq!(payloads(&c, 0), vec!["p0", "p2", "p4"]);
    assert_eq!(payloads(&c, 1), vec!["p1", "p3"]);
    assert_eq!(payloads(&c, 2), Vec::<&str>::new());
    assert_eq!(c.message(&mid(0, 2)).unwrap().key, "buyer-7");
}

#[test]
fn a_retried_send_returns_the_same_id_and_appends_nothing() {
    let mut c = broker();
    let first = sent(&mut c, send("k1", "paid", "m1"), 5);
    assert!(writes_nothing(&c, &send("k1", "paid", "m1"), 9));
    assert_eq!(sent(&mut c, send("k1", "paid", "m1"), 9), first);
    assert_eq!(first, mid(1, 0));
    assert_eq!(c.queue(TOPIC, 1).unwrap().len(), 1);
    assert_eq!(c.message(&first).unwrap().stored_ms, 5);
    let reused = Err(BrokerError::ProducerMsgIdReused("m1".into()));
    assert_eq!(run(&mut c, send("k1", "refunded", "m1"), 9), reused);
    assert_eq!(run(&mut c, send_half("k1", "paid", "m1"), 9), reused);
    assert_eq!(c.queue(TOPIC, 1).unwrap().len(), 1);
    assert_eq!(c.halves().len(), 0);
}

#[test]
fn a_committed_half_becomes_visible_exactly_once() {
    let mut c = broker();
    run(&mut c, subscribe("replica", ConsumeMode::Clustering), 0).unwrap();
    let half = half_sent(&mut c, send_half("k1", "paid", "tx-1"), 100);
    assert_eq!(half, HalfId(0));
    let (got, _, end) = pulled(run(&mut c, pull("replica", "", 1, None, 32), 150));
    assert_eq!((got, end), (vec![], 0), "a half is invisible");
    assert_eq!(
        half_sent(&mut c, send_half("k1", "paid", "tx-1"), 120),
        half
    );
    assert_eq!(c.halves().len(), 1);

    let committed = Ok(BrokerReply::TransactionEnded {
        half,
        state: HalfState::Committed(mid(1, 0)),
    });
    assert_eq!(run(&mut c, end_tx(half, true), 200), committed);
    let (got, next, end) = pulled(run(&mut c, pull("replica", "", 1, None, 32), 250));
    assert_eq!((got, next, end), (vec![(0, "paid".to_string())], 1, 1));
    let message = c.message(&mid(1, 0)).unwrap();
    assert_eq!((message.from_half, message.stored_ms), (Some(half), 200));
    assert_eq!(message.producer_msg_id, "tx-1");

    assert!(writes_nothing(&c, &end_tx(half, true), 300));
    assert_eq!(run(&mut c, end_tx(half, true), 300), committed);
    assert_eq!(
        run(&mut c, end_tx(half, false), 300),
        Err(BrokerError::TransactionDecided {
            half,
            state: HalfState::Committed(mid(1, 0)),
        })
    );
    assert_eq!(c.queue(TOPIC, 1).unwrap().len(), 1);
    assert_eq!(c.checks_due(u64::MAX), vec![]);
    assert_eq!(c.pending(), Vec::<String>::new());
}

#[test]
fn a_rolled_back_half_is_never_delivered() {
    let mut c = broker();
    let half = half_sent(&mut c, send_half("k1", "paid", "tx-1"), 100);
    assert_eq!(
        c.pending(),
        vec!["half-0 on trade-events undecided".to_string()]
    );
    let rolled_back = Ok(BrokerReply::TransactionEnded {
        half,
        state: HalfState::RolledBack,
    });
    assert_eq!(run(&mut c, end_tx(half, false), 200), rolled_back);
    assert_eq!(run(&mut c, end_tx(half, false), 300), rolled_back);
    assert_eq!(
        run(&mut c, end_tx(half, true), 300),
        Err(BrokerError::TransactionDecided {
            half,
            state: HalfState::RolledBack,
        })
    );
    assert_eq!(run(&mut c, check(half), 10_000), rolled_back);
    for queue in 0..4 {
        assert_eq!(c.queue(TOPIC, queue).unwrap().len(), 0);
    }
    assert_eq!(c.checks_due(u64::MAX), vec![]);
    assert_eq!(c.pending(), Vec::<String>::new());
    assert_eq!(
        run(&mut c, end_tx(HalfId(7), true), 300),
        Err(BrokerError::UnknownHalf(HalfId(7)))
    );
}

#[test]
fn check_backs_follow_the_schedule_then_the_half_is_discarded() {
    let mut c = broker();
    let half = half_sent(&mut c, send_half("k1", "paid", "tx-1"), 1_000);
    let other = half_sent(&mut c, send_half("k2", "paid", "tx-2"), 1_100);
    assert_eq!(c.checks_due(1_599), vec![]);
    assert_eq!(c.checks_due(1_700), vec![half, other]);
    assert_eq!(
        run(&mut c, check(half), 1_599),
        Ok(BrokerReply::CheckNotDue {
            half,
            next_check_ms: 1_600,
        })
    );
    run(&mut c, end_tx(other, true), 1_650).unwrap();
    for (n, at_ms) in [1_600, 2_600, 3_600, 4_600, 5_600].into_iter().enumerate() {
        assert_eq!(c.checks_due(at_ms - 1), vec![]);
        assert_eq!(c.checks_due(at_ms), vec![half]);
        assert_eq!(
            run(&mut c, check(half), at_ms),
            Ok(BrokerReply::CheckSent {
                half,
                producer_group: PRODUCERS.into(),
                check: n as u32 + 1,
            })
        );
        assert_eq!(c.half(half).unwrap().next_check_ms, at_ms + 1_000);
    }
    assert_eq!(c.half(half).unwrap().checks, 5);
    assert_eq!(c.checks_due(6_599), vec![]);
    assert_eq!(c.checks_due(6_600), vec![half]);
    let discarded = Ok(BrokerReply::TransactionEnded {
        half,
        state: HalfState::Discarded,
    });
    assert_eq!(run(&mut c, check(half), 6_600), discarded);
    assert_eq!(c.discarded_halves(), &[half]);
    assert_eq!(c.half(half).unwrap().checks, 5);
    assert_eq!(c.checks_due(u64::MAX), vec![]);
    // A commit that comes too late is refused and the message never appears.
    assert_eq!(
        run(&mut c, end_tx(half, true), 7_000),
        Err(BrokerError::TransactionDecided {
            half,
            state: HalfState::Discarded,
        })
    );
    assert_eq!(run(&mut c, end_tx(half, false), 7_000), discarded);
    assert_eq!(c.queue(TOPIC, 1).unwrap().len(), 0);
    assert_eq!(
        c.queue(TOPIC, 0).unwrap().len(),
        1,
        "the other half, committed"
    );
}

#[test]
fn rocketmq_check_policy_checks_fifteen_times_a_minute_apart() {
    let mut c = broker_with(BrokerConfig::default());
    let half = half_sent(&mut c, send_half("k1", "paid", "tx-1"), 0);
    let mut checked_at = Vec::new();
    let discarded_at = loop {
        let now_ms = c.half(half).unwrap().next_check_ms;
        assert_eq!(c.checks_due(now_ms), vec![half]);
        match run(&mut c, check(half), now_ms) {
            Ok(BrokerReply::CheckSent { .. }) => checked_at.push(now_ms),
            Ok(BrokerReply::TransactionEnded { .. }) => break now_ms,
            other => panic!("unexpected check answer {other:?}"),
        }
    };
    let expected: Vec<u64> = (0..15).map(|n| 6_000 + n * 60_000).collect();
    assert_eq!(checked_at, expected);
    assert_eq!(
        discarded_at, 906_000,
        "discarded one interval after the 15th check"
    );
    assert_eq!(c.half(half).unwrap().state, HalfState::Discarded);
}

#[test]
fn pull_starts_at_the_committed_offset_and_commits_only_move_forward() {
    let mut c = broker();
    run(&mut c, subscribe("replica", ConsumeMode::Clustering), 0).unwrap();
    for i in 0..5 {
        sent(&mut c, send("k2", &format!("p{i}"), &format!("m{i}")), 0);
    }
    let first_two = vec![(0, "p0".to_string()), (1, "p1".to_string())];
    let (got, next, end) = pulled(run(&mut c, pull("replica", "", 0, None, 2), 0));
    assert_eq!((got, next, end), (first_two.clone(), 2, 5));
    // Pulling moves nothing: until a commit, the same messages come again.
    let (got, _, _) = pulled(run(&mut c, pull("replica", "", 0, None, 2), 0));
    assert_eq!(got, first_two);

    let committed = |offset| Ok(BrokerReply::OffsetCommitted { offset });
    assert_eq!(run(&mut c, commit("replica", "", 0, 2), 0), committed(2));
    let (got, next, _) = pulled(run(&mut c, pull("replica", "", 0, None, 2), 0));
    assert_eq!(got, vec![(2, "p2".to_string()), (3, "p3".to_string())]);
    assert_eq!(next, 4);
    assert!(writes_nothing(&c, &commit("replica", "", 0, 1), 0));
    assert_eq!(run(&mut c, commit("replica", "", 0, 1), 0), committed(2));
    assert_eq!(run(&mut c, commit("replica", "", 0, 2), 0), committed(2));
    assert_eq!(run(&mut c, commit("replica", "", 0, 5), 0), committed(5));
    let (got, next, end) = pulled(run(&mut c, pull("replica", "", 0, None, 32), 0));
    assert_eq!((got, next, end), (vec![], 5, 5));
    assert_eq!(
        run(&mut c, commit("replica", "", 0, 6), 0),
        Err(BrokerError::OffsetBeyondEnd { offset: 6, end: 5 })
    );
    let (got, _, _) = pulled(run(&mut c, pull("replica", "", 0, Some(1), 1), 0));
    assert_eq!(got, vec![(1, "p1".to_string())]);
    assert_eq!(
        run(&mut c, pull("replica", "", 0, Some(6), 1), 0),
        Err(BrokerError::OffsetBeyondEnd { offset: 6, end: 5 })
    );
    for max in [0, PULL_BATCH_MAX + 1] {
        assert_eq!(
            run(&mut c, pull("replica", "", 0, None, max), 0),
            Err(BrokerError::BatchSize(max))
        );
    }
    assert_eq!(
        run(&mut c, pull("nobody", "", 0, None, 1), 0),
        Err(BrokerError::UnknownGroup("nobody".into()))
    );
    assert_eq!(
        run(&mut c, pull("replica", "", 4, None, 1), 0),
        Err(BrokerError::UnknownQueue {
            topic: TOPIC.into(),
            queue: 4,
        })
    );
    let offsets: Vec<(OffsetKey, u64)> = c.offsets().map(|(k, o)| (k.clone(), o)).collect();
    let key = OffsetKey {
        group: "replica".into(),
        consumer: None,
        topic: TOPIC.into(),
        queue: 0,
    };
    assert_eq!(offsets, vec![(key, 5)]);
}

#[test]
fn broadcast_groups_keep_one_offset_per_consumer() {
    let mut c = broker();
    run(&mut c, subscribe("cache", ConsumeMode::Broadcast), 0).unwrap();
    run(&mut c, subscribe("replica", ConsumeMode::Clustering), 0).unwrap();
    for i in 0..3 {
        sent(&mut c, send("k2", &format!("p{i}"), &format!("m{i}")), 0);
    }
    run(&mut c, commit("cache", "c1", 0, 3), 0).unwrap();
    let (got, _, _) = pulled(run(&mut c, pull("cache", "c2", 0, None, 32), 0));
    assert_eq!(got.len(), 3, "c1's commit does not move c2");
    let (got, _, _) = pulled(run(&mut c, pull("cache", "c1", 0, None, 32), 0));
    assert_eq!(got, vec![]);
    run(&mut c, commit("cache", "c2", 0, 1), 0).unwrap();
    let key = |consumer: &str| OffsetKey {
        group: "cache".into(),
        consumer: Some(consumer.into()),
        topic: TOPIC.into(),
        queue: 0,
    };
    assert_eq!(c.committed_offset(&key("c1")), 3);
    assert_eq!(c.committed_offset(&key("c2")), 1);
    assert_eq!(c.committed_offset(&key("c3")), 0);
    // In a clustering group the consumer's name does not matter: one offset for all.
    run(&mut c, commit("replica", "a", 0, 2), 0).unwrap();
    let (got, _, _) = pulled(run(&mut c, pull("replica", "b", 0, None, 32), 0));
    assert_eq!(got, vec![(2, "p2".to_string())]);
    assert_eq!(c.offsets().count(), 3);

    assert_eq!(
        run(&mut c, subscribe("cache", ConsumeMode::Clustering), 0),
        Err(BrokerError::ModeMismatch {
            group: "cache".into(),
            existing: ConsumeMode::Broadcast,
            requested: ConsumeMode::Clustering,
        })
    );
    assert!(matches!(
        run(&mut c, pull("cache", "", 0, None, 1), 0),
        Err(BrokerError::InvalidName { .. })
    ));
    assert_eq!(
        run(&mut c, nack("cache", &mid(0, 0), 1), 0),
        Err(BrokerError::BroadcastHasNoRetry("cache".into()))
    );
}

#[test]
fn failed_deliveries_follow_the_retry_levels_then_go_to_the_dead_letter_queue() {
    let mut c = broker();
    run(&mut c, subscribe("replica", ConsumeMode::Clustering), 0).unwrap();
    let m = sent(&mut c, send("k2", "paid", "m1"), 0);
    let scheduled = |attempt, due_ms| {
        Ok(BrokerReply::Nacked {
            message: m.clone(),
            outcome: NackOutcome::Retry { attempt, due_ms },
        })
    };
    assert_eq!(
        run(&mut c, nack("replica", &m, 1), 10_000),
        scheduled(2, 10_100)
    );
    // A duplicate report of the same failure changes nothing.
    assert!(writes_nothing(&c, &nack("replica", &m, 1), 10_050));
    assert_eq!(
        run(&mut c, nack("replica", &m, 1), 10_050),
        scheduled(2, 10_100)
    );
    // Retry 2 is not handed out before it is due, so it cannot fail before then.
    assert_eq!(
        run(&mut c, nack("replica", &m, 2), 10_099),
        Err(BrokerError::NoSuchDelivery {
            message: m.clone(),
            attempt: 2,
            latest: 1,
        })
    );
    assert_eq!(c.retries_due("replica", 10_099), vec![]);

    let mut now_ms = 10_100;
    let mut waits = vec![100];
    for attempt in 2..=16 {
        let due = c.retries_due("replica", now_ms);
        assert_eq!(due.len(), 1);
        assert_eq!((&due[0].message.id, due[0].attempt), (&m, attempt));
        let next_due = match run(&mut c, nack("replica", &m, attempt), now_ms) {
            Ok(BrokerReply::Nacked {
                outcome: NackOutcome::Retry { attempt: a, due_ms },
                ..
            }) if a == attempt + 1 => due_ms,
            other => panic!("retry {attempt} not scheduled: {other:?}"),
        };
        waits.push(next_due - now_ms);
        now_ms = next_due;
    }
    assert_eq!(waits, SIMULATION_RETRY_DELAYS_MS.to_vec());
    assert_eq!(now_ms, 10_000 + 171_400, "16 retries take 171.4 s");
    assert_eq!(c.retries_due("replica", now_ms)[0].attempt, 17);
    assert_eq!(c.dead_letters("replica"), &[]);

    let dead = Ok(BrokerReply::Nacked {
        message: m.clone(),
        outcome: NackOutcome::DeadLettered,
    });
    assert_eq!(run(&mut c, nack("replica", &m, 17), now_ms), dead);
    let letter = DeadLetter {
        message: m.clone(),
        attempts: 17,
        at_ms: now_ms,
    };
    assert_eq!(c.dead_letters("replica"), &[letter]);
    assert_eq!(dlq_topic("replica"), "%DLQ%replica");
    let states: Vec<_> = c.retry_queue("replica").collect();
    assert_eq!(
        states,
        vec![(&m, &RetryState::DeadLettered { attempts: 17 })]
    );
    assert_eq!(c.retries_due("replica", u64::MAX), vec![]);
    assert_eq!(run(&mut c, nack("replica", &m, 17), now_ms + 1), dead);
    assert_eq!(c.dead_letters("replica").len(), 1);
    assert!(matches!(
        run(&mut c, nack("replica", &m, 18), now_ms + 1),
        Err(BrokerError::NoSuchDelivery { latest: 17, .. })
    ));
    assert_eq!(c.pending(), Vec::<String>::new());
}

#[test]
fn an_acknowledged_retry_ends_and_each_group_retries_on_its_own() {
    let mut c = broker();
    for group in ["replica", "settlement"] {
        run(&mut c, subscribe(group, ConsumeMode::Clustering), 0).unwrap();
    }
    let m = sent(&mut c, send("k2", "paid", "m1"), 0);
    run(&mut c, nack("replica", &m, 1), 0).unwrap();
    assert_eq!(
        c.pending(),
        vec!["trade-events:0:0 retry 2 for replica".to_string()]
    );
    assert_eq!(c.retries_due("settlement", u64::MAX), vec![]);
    assert_eq!(retry_topic("replica"), "%RETRY%replica");
    let pull_retries = BrokerCommand::PullRetries {
        group: "replica".into(),
        max: 32,
    };
    let due = match run(&mut c, pull_retries.clone(), 100) {
        Ok(BrokerReply::RetriesDue { deliveries }) => deliveries,
        other => panic!("{other:?}"),
    };
    assert_eq!(due.len(), 1);
    assert_eq!((&due[0].message.id, due[0].attempt), (&m, 2));
    // An unacknowledged due retry stays due (a consumer crash only delays it).
    assert_eq!(c.retries_due("replica", 500).len(), 1);

    assert!(!writes_nothing(&c, &ack("replica", &m, 2), 150));
    assert_eq!(
        run(&mut c, ack("replica", &m, 2), 150),
        Ok(BrokerReply::RetryAcked)
    );
    assert_eq!(
        run(&mut c, ack("replica", &m, 2), 160),
        Ok(BrokerReply::RetryAcked)
    );
    assert!(writes_nothing(&c, &ack("replica", &m, 2), 160));
    assert_eq!(
        run(&mut c, pull_retries, 10_000),
        Ok(BrokerReply::RetriesDue { deliveries: vec![] })
    );
    let states: Vec<_> = c.retry_queue("replica").collect();
    assert_eq!(states, vec![(&m, &RetryState::Acked { attempt: 2 })]);
    assert_eq!(
        run(&mut c, nack("replica", &m, 2), 200),
        Ok(BrokerReply::Nacked {
            message: m.clone(),
            outcome: NackOutcome::Stale,
        })
    );
    assert!(matches!(
        run(&mut c, ack("replica", &m, 3), 200),
        Err(BrokerError::NoSuchDelivery { latest: 2, .. })
    ));
    // The other group fails independently, from its own first delivery.
    assert_eq!(
        run(&mut c, nack("settlement", &m, 1), 300),
        Ok(BrokerReply::Nacked {
            message: m.clone(),
            outcome: NackOutcome::Retry {
                attempt: 2,
                due_ms: 400,
            },
        })
    );
    assert_eq!(c.dead_letters("replica"), &[]);
    assert_eq!(
        run(&mut c, nack("replica", &mid(3, 0), 1), 0),
        Err(BrokerError::UnknownMessage(mid(3, 0)))
    );
}

#[test]
fn topics_and_messages_are_bounded_and_validated() {
    let mut c = broker();
    assert_eq!(
        run(&mut c, create(TOPIC, 4), 0),
        Ok(BrokerReply::TopicCreated {
            topic: TOPIC.into(),
            queues: 4,
        })
    );
    assert!(writes_nothing(&c, &create(TOPIC, 4), 0));
    assert_eq!(
        run(&mut c, create(TOPIC, 8), 0),
        Err(BrokerError::TopicQueuesMismatch {
            topic: TOPIC.into(),
            existing: 4,
            requested: 8,
        })
    );
    for queues in [0, QUEUES_PER_TOPIC_MAX + 1] {
        assert_eq!(
            run(&mut c, create("t2", queues), 0),
            Err(BrokerError::QueueCount(queues))
        );
    }
    for bad in [
        "",
        "%DLQ%replica",
        "has space",
        &"x".repeat(NAME_BYTES_MAX + 1),
    ] {
        assert!(matches!(
            run(&mut c, create(bad, 1), 0),
            Err(BrokerError::InvalidName { .. })
        ));
    }
    let big = "x".repeat(PAYLOAD_BYTES_MAX + 1);
    assert_eq!(
        run(&mut c, send("k", &big, "m1"), 0),
        Err(BrokerError::PayloadTooLarge(PAYLOAD_BYTES_MAX + 1))
    );
    let long_key = "k".repeat(KEY_BYTES_MAX + 1);
    assert_eq!(
        run(&mut c, send(&long_key, "p", "m1"), 0),
        Err(BrokerError::KeyTooLong(KEY_BYTES_MAX + 1))
    );
    let unknown = BrokerCommand::Send {
        topic: "nope".into(),
        key: "k".into(),
        payload: "p".into(),
        producer_msg_id: "m1".into(),
    };
    assert_eq!(
        run(&mut c, unknown, 0),
        Err(BrokerError::UnknownTopic("nope".into()))
    );
    let exact = "x".repeat(PAYLOAD_BYTES_MAX);
    assert_eq!(sent(&mut c, send("k1", &exact, "m1"), 0), mid(1, 0));
    assert_eq!(c.topics().collect::<Vec<_>>(), vec![(TOPIC, 4)]);
}

#[test]
fn recovery_from_the_log_rebuilds_the_same_broker() {
    let mut c = BrokerCore::new(BrokerConfig::simulation());
    let mut log = Vec::new();
    let mut go = |c: &mut BrokerCore, cmd, now_ms| run_logged(c, cmd, now_ms, &mut log);
    go(&mut c, create(TOPIC, 4), 0).unwrap();
    go(&mut c, subscribe("replica", ConsumeMode::Clustering), 0).unwrap();
    go(&mut c, subscribe("cache", ConsumeMode::Broadcast), 0).unwrap();
    for i in 0..6 {
        let key = ["k1", "k2", "k3"][i % 3];
        go(
            &mut c,
            send(key, &format!("p{i}"), &format!("m{i}")),
            i as u64,
        )
        .unwrap();
    }
    go(&mut c, send("k1", "p0", "m0"), 9).unwrap(); // a retried send: no record
    go(&mut c, send_half("k2", "h0", "tx-0"), 10).unwrap();
    go(&mut c, send_half("k3", "h1", "tx-1"), 10).unwrap();
    go(&mut c, send_half("k1", "h2", "tx-2"), 10).unwrap();
    go(&mut c, send_half("k1", "h3", "tx-3"), 10).unwrap();
    go(&mut c, end_tx(HalfId(0), true), 20).unwrap();
    go(&mut c, end_tx(HalfId(1), false), 20).unwrap();
    go(&mut c, check(HalfId(2)), 610).unwrap();
    for at_ms in [610, 1_610, 2_610, 3_610, 4_610, 5_610] {
        go(&mut c, check(HalfId(3)), at_ms).unwrap(); // five checks, then the discard
    }
    go(&mut c, commit("replica", "", 1, 2), 700).unwrap();
    go(&mut c, commit("cache", "c1", 0, 3), 700).unwrap();
    go(&mut c, commit("cache", "c2", 0, 1), 700).unwrap();
    go(&mut c, commit("replica", "", 1, 1), 700).unwrap(); // backwards: no record
    go(&mut c, nack("replica", &mid(1, 0), 1), 800).unwrap();
    go(&mut c, nack("replica", &mid(0, 0), 1), 800).unwrap();
    go(&mut c, ack("replica", &mid(0, 0), 2), 900).unwrap();
    let mut now_ms = 800;
    for attempt in 1..=17 {
        let answer = go(&mut c, nack("replica", &mid(3, 0), attempt), now_ms).unwrap();
        if let BrokerReply::Nacked {
            outcome: NackOutcome::Retry { due_ms, .. },
            ..
        } = answer
        {
            now_ms = due_ms;
        }
    }
    assert_eq!(log.len(), 3 + 6 + 4 + 2 + 1 + 6 + 3 + 3 + 17);
    assert_eq!(c.dead_letters("replica").len(), 1);
    assert_eq!(c.discarded_halves(), &[HalfId(3)]);

    // Through bincode, as the log on disk would be.
    let bytes: Vec<Vec<u8>> = log.iter().map(|r| bincode::serialize(r).unwrap()).collect();
    let decoded: Vec<BrokerRecord> = bytes
        .iter()
        .map(|b| bincode::deserialize(b).unwrap())
        .collect();
    assert_eq!(decoded, log);
    let r = BrokerCore::recover(BrokerConfig::simulation(), &decoded);

    for queue in 0..4 {
        assert_eq!(r.queue(TOPIC, queue), c.queue(TOPIC, queue));
    }
    assert_eq!(r.halves(), c.halves());
    assert_eq!(r.discarded_halves(), c.discarded_halves());
    assert_eq!(
        r.offsets().collect::<Vec<_>>(),
        c.offsets().collect::<Vec<_>>()
    );
    for group in ["replica", "cache"] {
        assert_eq!(
            r.retry_queue(group).collect::<Vec<_>>(),
            c.retry_queue(group).collect::<Vec<_>>()
        );
        assert_eq!(r.dead_letters(group), c.dead_letters(group));
    }
    assert_eq!(r.checks_due(u64::MAX), vec![HalfId(2)]);
    assert_eq!(
        r.retries_due("replica", u64::MAX),
        c.retries_due("replica", u64::MAX)
    );
    assert_eq!(r.pending(), c.pending());
    assert_eq!(r, c, "every other field too");
    // The idempotency index is rebuilt: a retried send and half send find the old ids.
    assert_eq!(
        r.decide(&send("k1", "p0", "m0"), 0),
        BrokerDecision::Reply(Ok(BrokerReply::Sent { message: mid(1, 0) }))
    );
    assert_eq!(
        r.decide(&send_half("k1", "h3", "tx-3"), 0),
        BrokerDecision::Reply(Ok(BrokerReply::HalfSent { half: HalfId(3) }))
    );
}

#[test]
#[should_panic(expected = "offsets of trade-events:1 out of sequence")]
fn an_appended_offset_out_of_sequence_is_asserted() {
    let mut c = broker();
    let _ = c.apply(BrokerRecord::Appended(Message {
        id: mid(1, 1),
        key: "k1".into(),
        payload: "p".into(),
        producer_msg_id: "m1".into(),
        stored_ms: 0,
        from_half: None,
    }));
}

/// Offsets are assigned at decision time, so the shell must apply each record before it
/// decides the next command; two sends decided against the same state collide.
#[test]
#[should_panic(expected = "offsets of trade-events:1 out of sequence")]
fn two_sends_decided_before_either_is_applied_trip_the_sequence_assertion() {
    let mut c = broker();
    let first = c.decide(&send("k1", "a", "m1"), 0);
    let second = c.decide(&send("k1", "b", "m2"), 0);
    for decision in [first, second] {
        let BrokerDecision::Write(rec) = decision else {
            panic!("both sends write");
        };
        let _ = c.apply(rec);
    }
}

#[test]
#[should_panic(expected = "is not in the queue of its key")]
fn a_message_outside_its_keys_queue_is_asserted() {
    let mut c = broker();
    let _ = c.apply(BrokerRecord::Appended(Message {
        id: mid(2, 0),
        key: "k1".into(),
        payload: "p".into(),
        producer_msg_id: "m1".into(),
        stored_ms: 0,
        from_half: None,
    }));
}

#[test]
#[should_panic(expected = "offset went backwards from 3 to 2")]
fn an_offset_going_backwards_is_asserted() {
    let mut c = broker();
    run(&mut c, subscribe("replica", ConsumeMode::Clustering), 0).unwrap();
    for i in 0..3 {
        sent(&mut c, send("k2", "p", &format!("m{i}")), 0);
    }
    run(&mut c, commit("replica", "", 0, 3), 0).unwrap();
    let _ = c.apply(BrokerRecord::OffsetCommitted {
        key: OffsetKey {
            group: "replica".into(),
            consumer: None,
            topic: TOPIC.into(),
            queue: 0,
        },
        offset: 2,
    });
}

#[test]
#[should_panic(expected = "half-0 decided twice: already Committed")]
fn a_half_decided_twice_in_the_log_is_asserted() {
    let mut c = broker();
    let half = half_sent(&mut c, send_half("k1", "p", "tx-1"), 0);
    run(&mut c, end_tx(half, true), 10).unwrap();
    let _ = c.apply(BrokerRecord::HalfRolledBack { half });
}

#[test]
#[should_panic(expected = "retried in replica after delivery 3, but 2 was the one due")]
fn a_retry_that_skips_a_delivery_is_asserted() {
    let mut c = broker();
    run(&mut c, subscribe("replica", ConsumeMode::Clustering), 0).unwrap();
    let m = sent(&mut c, send("k2", "p", "m1"), 0);
    run(&mut c, nack("replica", &m, 1), 0).unwrap();
    let _ = c.apply(BrokerRecord::RetryScheduled {
        group: "replica".into(),
        message: m,
        attempt: 4,
        due_ms: 1_000,
    });
}

fn await_news(group: &str, positions: Vec<(u32, u64)>) -> BrokerCommand {
    BrokerCommand::Await {
        group: group.into(),
        consumer: "c".into(),
        topic: TOPIC.into(),
        positions,
        hold_ms: 200,
    }
}

fn news(queues: Vec<u32>, retries: bool) -> Answer {
    Ok(BrokerReply::News { queues, retries })
}

#[test]
fn a_long_poll_names_the_queues_with_news_and_due_retries_of_its_own_queues() {
    let mut c = broker();
    run(&mut c, subscribe("g", ConsumeMode::Clustering), 0).unwrap();
    let m = sent(&mut c, send("k2", "paid", "m1"), 0);
    let (q, other) = (m.queue, (m.queue + 1) % 4);
    let all = |at: u64| vec![(q, at), (other, 0)];
    // Behind the end of its queue: that queue is named; at the end: nothing.
    assert_eq!(
        run(&mut c, await_news("g", all(0)), 0),
        news(vec![q], false)
    );
    assert!(writes_nothing(&c, &await_news("g", all(0)), 0));
    assert_eq!(run(&mut c, await_news("g", all(1)), 0), news(vec![], false));
    // A retry is news once due, and only to a consumer of its queue.
    run(&mut c, nack("g", &m, 1), 1_000).unwrap();
    assert_eq!(
        run(&mut c, await_news("g", all(1)), 1_099),
        news(vec![], false)
    );
    assert_eq!(
        run(&mut c, await_news("g", all(1)), 1_100),
        news(vec![], true)
    );
    let elsewhere = await_news("g", vec![(other, 0)]);
    assert_eq!(run(&mut c, elsewhere, 1_100), news(vec![], false));
    assert_eq!(c.next_retry_due("g", TOPIC, &[q]), Some(1_100));
    assert_eq!(c.next_retry_due("g", TOPIC, &[other]), None);
    // Refusals: too long a hold, a queue named twice, an unknown group.
    let mut long = await_news("g", all(1));
    if let BrokerCommand::Await { hold_ms, .. } = &mut long {
        *hold_ms = AWAIT_HOLD_MAX_MS + 1;
    }
    assert_eq!(
        run(&mut c, long, 0),
        Err(BrokerError::HoldTooLong(AWAIT_HOLD_MAX_MS + 1))
    );
    let twice = await_news("g", vec![(q, 0), (q, 1)]);
    assert_eq!(run(&mut c, twice, 0), Err(BrokerError::AwaitQueues));
    assert_eq!(
        run(&mut c, await_news("nobody", all(0)), 0),
        Err(BrokerError::UnknownGroup("nobody".into()))
    );
}

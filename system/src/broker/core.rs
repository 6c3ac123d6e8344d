//! The broker's deterministic core: topics and their queues, half messages and their
//! check-backs, consumer-group offsets, retry and dead-letter queues. No clock, no I/O.
//!
//! As in the ledger and the trade: [`BrokerCore::decide`] turns a command into an immediate
//! reply (a read, an idempotent repeat or a refusal) or a [`BrokerRecord`] to append to the
//! commit log; [`BrokerCore::apply`] folds records into state, live and on recovery alike. Every
//! time a policy yields (a check-back's next due time, a retry's due time) is written into its
//! record, so a replay never consults the configuration. The shell must apply each record
//! before deciding the next command: offsets are assigned at decision time and `apply` asserts
//! that they come in sequence.

use super::types::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One durable change to the broker: the commit log is a sequence of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BrokerRecord {
    TopicCreated {
        topic: String,
        queues: u32,
    },
    /// A message appended to its queue by a plain send.
    Appended(Message),
    /// A half message stored, invisible, with its first check-back due.
    HalfStored(HalfMessage),
    /// A half committed: appended to its queue as `message`.
    HalfCommitted {
        half: HalfId,
        message: MessageId,
        at_ms: u64,
    },
    HalfRolledBack {
        half: HalfId,
    },
    /// A check-back sent to the half's producer group; the next one is due at `next_check_ms`.
    CheckSent {
        half: HalfId,
        at_ms: u64,
        next_check_ms: u64,
    },
    /// A half still undecided after its last check-back, parked in
    /// [`TRANS_CHECK_MAX_TIME_TOPIC`].
    HalfDiscarded {
        half: HalfId,
        at_ms: u64,
    },
    Subscribed {
        group: String,
        topic: String,
        mode: ConsumeMode,
    },
    OffsetCommitted {
        key: OffsetKey,
        offset: u64,
    },
    /// Delivery `attempt - 1` failed; delivery `attempt` is due at `due_ms`.
    RetryScheduled {
        group: String,
        message: MessageId,
        attempt: u32,
        due_ms: u64,
    },
    /// All `attempts` deliveries failed: the message goes to `%DLQ%group`.
    DeadLettered {
        group: String,
        message: MessageId,
        attempts: u32,
        at_ms: u64,
    },
    /// Retry delivery `attempt` succeeded.
    RetryAcked {
        group: String,
        message: MessageId,
        attempt: u32,
    },
}

/// What the shell must do with a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerDecision {
    /// Reply at once; nothing to write.
    Reply(Result<BrokerReply, BrokerError>),
    /// Append this record, apply it, and reply with what `apply` returns once it is durable.
    Write(BrokerRecord),
}

type Outcome = Result<BrokerDecision, BrokerError>;

/// What a producer message id was used for: it is unique across sends and half sends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Produced {
    Message(MessageId),
    Half(HalfId),
}

/// One broker's state. Equal states compare equal, which is how recovery is tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerCore {
    config: BrokerConfig,
    /// Each topic's queues, each queue its messages in offset order.
    topics: BTreeMap<String, Vec<Vec<Message>>>,
    produced: BTreeMap<String, Produced>,
    /// Every half message ever stored, indexed by its id.
    halves: Vec<HalfMessage>,
    pending_halves: usize,
    /// The halves parked in [`TRANS_CHECK_MAX_TIME_TOPIC`], in the order they were discarded.
    discarded_halves: Vec<HalfId>,
    groups: BTreeMap<String, ConsumerGroup>,
    offsets: BTreeMap<OffsetKey, u64>,
    /// Each group's retry queue (`%RETRY%group`): every message that ever failed there.
    retries: BTreeMap<String, BTreeMap<MessageId, RetryState>>,
    /// Each group's scheduled retries by due time: the index the due and next-due questions
    /// read, so that they do not walk every retry the group ever had.
    scheduled: BTreeMap<String, BTreeSet<(u64, MessageId)>>,
    /// Each group's dead-letter queue (`%DLQ%group`), in the order messages arrived.
    dead_letters: BTreeMap<String, Vec<DeadLetter>>,
}

impl BrokerCore {
    pub fn new(config: BrokerConfig) -> Self {
        assert!(
            config.retry.retries_max as usize <= RETRY_LEVELS,
            "at most {RETRY_LEVELS} retries, not {}",
            config.retry.retries_max
        );
        assert!(config.check.interval_ms > 0, "check-backs need an interval");
        BrokerCore {
            config,
            topics: BTreeMap::new(),
            produced: BTreeMap::new(),
            halves: Vec::new(),
            pending_halves: 0,
            discarded_halves: Vec::new(),
            groups: BTreeMap::new(),
            offsets: BTreeMap::new(),
            retries: BTreeMap::new(),
            scheduled: BTreeMap::new(),
            dead_letters: BTreeMap::new(),
        }
    }

    /// Rebuilds a broker by applying its commit log from the start.
    pub fn recover(config: BrokerConfig, records: &[BrokerRecord]) -> Self {
        let mut core = BrokerCore::new(config);
        for record in records {
            // Replies were sent when first applied; replay only rebuilds the state.
            let _ = core.apply(record.clone());
        }
        core
    }

    pub fn config(&self) -> BrokerConfig {
        self.config
    }

    /// Every topic with its queue count.
    pub fn topics(&self) -> impl Iterator<Item = (&str, u32)> {
        self.topics
            .iter()
            .map(|(t, qs)| (t.as_str(), qs.len() as u32))
    }

    /// One queue's messages in offset order.
    pub fn queue(&self, topic: &str, queue: u32) -> Option<&[Message]> {
        let queues = self.topics.get(topic)?;
        queues.get(queue as usize).map(Vec::as_slice)
    }

    pub fn message(&self, id: &MessageId) -> Option<&Message> {
        self.queue(&id.topic, id.queue)?.get(id.offset as usize)
    }

    /// Every half message ever stored, in id order.
    pub fn halves(&self) -> &[HalfMessage] {
        &self.halves
    }

    pub fn half(&self, id: HalfId) -> Option<&HalfMessage> {
        self.halves.get(id.0 as usize)
    }

    /// The halves discarded after their last check-back, in discard order.
    pub fn discarded_halves(&self) -> &[HalfId] {
        &self.discarded_halves
    }

    pub fn groups(&self) -> impl Iterator<Item = (&str, &ConsumerGroup)> {
        self.groups.iter().map(|(g, c)| (g.as_str(), c))
    }

    /// Every committed offset.
    pub fn offsets(&self) -> impl Iterator<Item = (&OffsetKey, u64)> {
        self.offsets.iter().map(|(k, o)| (k, *o))
    }

    /// The offset committed under `key`; a queue nobody committed on starts at 0 (RocketMQ's
    /// CONSUME_FROM_FIRST_OFFSET, so that a new group misses no event).
    /// Every queue a clustering group subscribes to and has not committed to its end:
    /// (group, topic, queue, committed offset, end offset). Broadcast groups keep an offset
    /// per consumer and are never behind as a group.
    pub fn lag(&self) -> Vec<QueueLag> {
        let mut out = Vec::new();
        for (group, g) in self.groups() {
            if g.mode != ConsumeMode::Clustering {
                continue;
            }
            for topic in &g.topics {
                let mut queue = 0;
                while let Some(messages) = self.queue(topic, queue) {
                    let key = OffsetKey {
                        group: group.to_string(),
                        consumer: None,
                        topic: topic.clone(),
                        queue,
                    };
                    let (committed, end) = (self.committed_offset(&key), messages.len() as u64);
                    if committed < end {
                        out.push(QueueLag {
                            group: group.to_string(),
                            topic: topic.clone(),
                            queue,
                            committed,
                            end,
                        });
                    }
                    queue += 1;
                }
            }
        }
        out
    }

    pub fn committed_offset(&self, key: &OffsetKey) -> u64 {
        self.offsets.get(key).copied().unwrap_or(0)
    }

    /// A group's retry queue: every message that failed there, with where it stands.
    pub fn retry_queue(&self, group: &str) -> impl Iterator<Item = (&MessageId, &RetryState)> {
        self.retries.get(group).into_iter().flatten()
    }

    /// A group's dead-letter queue (`%DLQ%group`), in arrival order.
    pub fn dead_letters(&self, group: &str) -> &[DeadLetter] {
        self.dead_letters.get(group).map_or(&[], Vec::as_slice)
    }

    /// Undecided halves whose next check-back (or discard) is due at `now_ms`, earliest first.
    pub fn checks_due(&self, now_ms: u64) -> Vec<HalfId> {
        let mut due: Vec<&HalfMessage> = self
            .halves
            .iter()
            .filter(|h| h.state == HalfState::Pending && h.next_check_ms <= now_ms)
            .collect();
        due.sort_by_key(|h| (h.next_check_ms, h.id));
        due.into_iter().map(|h| h.id).collect()
    }

    /// The retry deliveries of `group` due at `now_ms`, earliest first. A due retry stays due
    /// until it is acknowledged or fails again, so a consumer crash only delays it.
    pub fn retries_due(&self, group: &str, now_ms: u64) -> Vec<Delivery> {
        self.due_ids(group, now_ms)
            .map(|id| Delivery {
                message: self.message(id).expect("a retried message exists").clone(),
                attempt: self.scheduled_attempt(group, id),
            })
            .collect()
    }

    /// The ids of `group`'s retries due at `now_ms`, earliest first (then by id).
    fn due_ids(&self, group: &str, now_ms: u64) -> impl Iterator<Item = &MessageId> {
        self.scheduled_by_due(group)
            .take_while(move |(due_ms, _)| *due_ms <= now_ms)
            .map(|(_, id)| id)
    }

    /// `group`'s scheduled retries, earliest due first.
    fn scheduled_by_due(&self, group: &str) -> impl Iterator<Item = &(u64, MessageId)> {
        self.scheduled.get(group).into_iter().flatten()
    }

    fn scheduled_attempt(&self, group: &str, id: &MessageId) -> u32 {
        match self.retries.get(group).and_then(|q| q.get(id)) {
            Some(RetryState::Scheduled { attempt, .. }) => *attempt,
            other => panic!("{id} indexed as scheduled in {group} but {other:?}"),
        }
    }

    /// What is still in flight: undecided halves and scheduled retries (empty at rest).
    pub fn pending(&self) -> Vec<String> {
        let halves = self
            .halves
            .iter()
            .filter(|h| h.state == HalfState::Pending)
            .map(|h| format!("{} on {} undecided", h.id, h.topic));
        let retries = self.retries.iter().flat_map(|(group, queue)| {
            queue.iter().filter_map(move |(id, state)| match state {
                RetryState::Scheduled { attempt, .. } => {
                    Some(format!("{id} retry {attempt} for {group}"))
                }
                _ => None,
            })
        });
        halves.chain(retries).collect()
    }

    /// Decides what `command` means now; `now_ms` is the broker's clock.
    pub fn decide(&self, command: &BrokerCommand, now_ms: u64) -> BrokerDecision {
        let decided = match command {
            BrokerCommand::CreateTopic { topic, queues } => {
                self.decide_create_topic(topic, *queues)
            }
            BrokerCommand::Send {
                topic,
                key,
                payload,
                producer_msg_id,
            } => self.decide_send(topic, key, payload, producer_msg_id, now_ms),
            BrokerCommand::SendHalf {
                topic,
                key,
                payload,
                producer_msg_id,
                producer_group,
            } => {
                self.decide_send_half(topic, key, payload, producer_msg_id, producer_group, now_ms)
            }
            BrokerCommand::EndTransaction { half, commit } => {
                self.decide_end_transaction(*half, *commit, now_ms)
            }
            BrokerCommand::CheckBack { half } => self.decide_check_back(*half, now_ms),
            BrokerCommand::Subscribe { group, topic, mode } => {
                self.decide_subscribe(group, topic, *mode)
            }
            BrokerCommand::Pull {
                group,
                consumer,
                topic,
                queue,
                from,
                max,
            } => self.decide_pull(group, consumer, topic, *queue, *from, *max),
            BrokerCommand::CommitOffset {
                group,
                consumer,
                topic,
                queue,
                offset,
            } => self.decide_commit_offset(group, consumer, topic, *queue, *offset),
            BrokerCommand::Nack {
                group,
                message,
                attempt,
            } => self.decide_nack(group, message, *attempt, now_ms),
            BrokerCommand::PullRetries { group, max } => {
                self.decide_pull_retries(group, *max, now_ms)
            }
            BrokerCommand::AckRetry {
                group,
                message,
                attempt,
            } => self.decide_ack_retry(group, message, *attempt, now_ms),
            BrokerCommand::Await {
                group,
                consumer,
                topic,
                positions,
                hold_ms,
            } => self.decide_await(group, consumer, topic, positions, *hold_ms, now_ms),
        };
        decided.unwrap_or_else(|e| BrokerDecision::Reply(Err(e)))
    }

    fn decide_create_topic(&self, topic: &str, queues: u32) -> Outcome {
        check_name("topic", topic)?;
        if queues == 0 || queues > QUEUES_PER_TOPIC_MAX {
            return Err(BrokerError::QueueCount(queues));
        }
        if let Some(existing) = self.topics.get(topic) {
            let existing = existing.len() as u32;
            if existing != queues {
                return Err(BrokerError::TopicQueuesMismatch {
                    topic: topic.to_string(),
                    existing,
                    requested: queues,
                });
            }
            return Ok(reply(BrokerReply::TopicCreated {
                topic: topic.to_string(),
                queues,
            }));
        }
        if self.topics.len() >= TOPICS_MAX {
            return Err(BrokerError::TooManyTopics);
        }
        Ok(BrokerDecision::Write(BrokerRecord::TopicCreated {
            topic: topic.to_string(),
            queues,
        }))
    }

    fn decide_send(
        &self,
        topic: &str,
        key: &str,
        payload: &str,
        producer_msg_id: &str,
        now_ms: u64,
    ) -> Outcome {
        check_message(key, payload, producer_msg_id)?;
        match self.produced.get(producer_msg_id) {
            Some(Produced::Message(id)) => {
                let stored = self.message(id).expect("a produced message exists");
                if stored.id.topic != topic || stored.key != key || stored.payload != payload {
                    return Err(BrokerError::ProducerMsgIdReused(
                        producer_msg_id.to_string(),
                    ));
                }
                return Ok(reply(BrokerReply::Sent {
                    message: id.clone(),
                }));
            }
            Some(Produced::Half(_)) => {
                return Err(BrokerError::ProducerMsgIdReused(
                    producer_msg_id.to_string(),
                ))
            }
            None => {}
        }
        let id = self.next_message_id(topic, key)?;
        Ok(BrokerDecision::Write(BrokerRecord::Appended(Message {
            id,
            key: key.to_string(),
            payload: payload.to_string(),
            producer_msg_id: producer_msg_id.to_string(),
            stored_ms: now_ms,
            from_half: None,
        })))
    }

    /// Where the next message of `key` on `topic` goes.
    fn next_message_id(&self, topic: &str, key: &str) -> Result<MessageId, BrokerError> {
        let queues = self
            .topics
            .get(topic)
            .ok_or_else(|| BrokerError::UnknownTopic(topic.to_string()))?;
        let queue = queue_of(key, queues.len() as u32);
        let offset = queues[queue as usize].len() as u64;
        if offset >= MESSAGES_PER_QUEUE_MAX {
            return Err(BrokerError::QueueFull {
                topic: topic.to_string(),
                queue,
            });
        }
        Ok(MessageId {
            topic: topic.to_string(),
            queue,
            offset,
        })
    }

    fn decide_send_half(
        &self,
        topic: &str,
        key: &str,
        payload: &str,
        producer_msg_id: &str,
        producer_group: &str,
        now_ms: u64,
    ) -> Outcome {
        check_message(key, payload, producer_msg_id)?;
        check_id("producer group", producer_group)?;
        match self.produced.get(producer_msg_id) {
            Some(Produced::Half(id)) => {
                let h = &self.halves[id.0 as usize];
                let same = h.topic == topic
                    && h.key == key
                    && h.payload == payload
                    && h.producer_group == producer_group;
                if !same {
                    return Err(BrokerError::ProducerMsgIdReused(
                        producer_msg_id.to_string(),
                    ));
                }
                return Ok(reply(BrokerReply::HalfSent { half: *id }));
            }
            Some(Produced::Message(_)) => {
                return Err(BrokerError::ProducerMsgIdReused(
                    producer_msg_id.to_string(),
                ))
            }
            None => {}
        }
        if !self.topics.contains_key(topic) {
            return Err(BrokerError::UnknownTopic(topic.to_string()));
        }
        if self.pending_halves >= PENDING_HALVES_MAX {
            return Err(BrokerError::TooManyPendingHalves);
        }
        Ok(BrokerDecision::Write(BrokerRecord::HalfStored(
            HalfMessage {
                id: HalfId(self.halves.len() as u64),
                topic: topic.to_string(),
                key: key.to_string(),
                payload: payload.to_string(),
                producer_msg_id: producer_msg_id.to_string(),
                producer_group: producer_group.to_string(),
                stored_ms: now_ms,
                checks: 0,
                next_check_ms: now_ms.saturating_add(self.config.check.first_ms),
                state: HalfState::Pending,
            },
        )))
    }

    /// The first decision wins; repeating it is answered from the record, contradicting it is
    /// refused. A rollback of a discarded half agrees with the discard (neither delivers).
    fn decide_end_transaction(&self, half: HalfId, commit: bool, now_ms: u64) -> Outcome {
        let h = self.half(half).ok_or(BrokerError::UnknownHalf(half))?;
        let agrees = match &h.state {
            HalfState::Pending if commit => {
                let message = self.next_message_id(&h.topic, &h.key)?;
                return Ok(BrokerDecision::Write(BrokerRecord::HalfCommitted {
                    half,
                    message,
                    at_ms: now_ms,
                }));
            }
            HalfState::Pending => {
                return Ok(BrokerDecision::Write(BrokerRecord::HalfRolledBack { half }))
            }
            HalfState::Committed(_) => commit,
            HalfState::RolledBack | HalfState::Discarded => !commit,
        };
        if !agrees {
            return Err(BrokerError::TransactionDecided {
                half,
                state: h.state.clone(),
            });
        }
        Ok(reply(BrokerReply::TransactionEnded {
            half,
            state: h.state.clone(),
        }))
    }

    /// A due, undecided half gets its next check-back, or is discarded once `max_checks` were
    /// sent and the last one's interval has passed without a decision.
    fn decide_check_back(&self, half: HalfId, now_ms: u64) -> Outcome {
        let h = self.half(half).ok_or(BrokerError::UnknownHalf(half))?;
        if h.state != HalfState::Pending {
            return Ok(reply(BrokerReply::TransactionEnded {
                half,
                state: h.state.clone(),
            }));
        }
        if now_ms < h.next_check_ms {
            return Ok(reply(BrokerReply::CheckNotDue {
                half,
                next_check_ms: h.next_check_ms,
            }));
        }
        if h.checks >= self.config.check.max_checks {
            return Ok(BrokerDecision::Write(BrokerRecord::HalfDiscarded {
                half,
                at_ms: now_ms,
            }));
        }
        Ok(BrokerDecision::Write(BrokerRecord::CheckSent {
            half,
            at_ms: now_ms,
            next_check_ms: now_ms.saturating_add(self.config.check.interval_ms),
        }))
    }

    fn decide_subscribe(&self, group: &str, topic: &str, mode: ConsumeMode) -> Outcome {
        check_name("group", group)?;
        if !self.topics.contains_key(topic) {
            return Err(BrokerError::UnknownTopic(topic.to_string()));
        }
        let subscribed = BrokerReply::Subscribed {
            group: group.to_string(),
            topic: topic.to_string(),
            mode,
        };
        match self.groups.get(group) {
            Some(g) if g.mode != mode => Err(BrokerError::ModeMismatch {
                group: group.to_string(),
                existing: g.mode,
                requested: mode,
            }),
            Some(g) if g.topics.contains(topic) => Ok(reply(subscribed)),
            None if self.groups.len() >= GROUPS_MAX => Err(BrokerError::TooManyGroups),
            _ => Ok(BrokerDecision::Write(BrokerRecord::Subscribed {
                group: group.to_string(),
                topic: topic.to_string(),
                mode,
            })),
        }
    }

    fn group(&self, group: &str) -> Result<&ConsumerGroup, BrokerError> {
        self.groups
            .get(group)
            .ok_or_else(|| BrokerError::UnknownGroup(group.to_string()))
    }

    fn check_subscribed(&self, group: &str, topic: &str) -> Result<&ConsumerGroup, BrokerError> {
        let g = self.group(group)?;
        if !g.topics.contains(topic) {
            return Err(BrokerError::NotSubscribed {
                group: group.to_string(),
                topic: topic.to_string(),
            });
        }
        Ok(g)
    }

    /// The offset key of a consumer on a queue, and the queue's end offset.
    fn offset_key(
        &self,
        group: &str,
        consumer: &str,
        topic: &str,
        queue: u32,
    ) -> Result<(OffsetKey, u64), BrokerError> {
        let mode = self.check_subscribed(group, topic)?.mode;
        let end = self
            .queue(topic, queue)
            .ok_or_else(|| BrokerError::UnknownQueue {
                topic: topic.to_string(),
                queue,
            })?
            .len() as u64;
        let consumer = match mode {
            ConsumeMode::Clustering => None,
            ConsumeMode::Broadcast => {
                check_id("consumer", consumer)?;
                Some(consumer.to_string())
            }
        };
        let key = OffsetKey {
            group: group.to_string(),
            consumer,
            topic: topic.to_string(),
            queue,
        };
        Ok((key, end))
    }

    fn decide_pull(
        &self,
        group: &str,
        consumer: &str,
        topic: &str,
        queue: u32,
        from: Option<u64>,
        max: u32,
    ) -> Outcome {
        check_batch(max)?;
        let (key, end) = self.offset_key(group, consumer, topic, queue)?;
        let from = from.unwrap_or_else(|| self.committed_offset(&key));
        if from > end {
            return Err(BrokerError::OffsetBeyondEnd { offset: from, end });
        }
        let to = end.min(from + u64::from(max));
        let messages =
            &self.queue(topic, queue).expect("queue checked")[from as usize..to as usize];
        let deliveries = messages
            .iter()
            .map(|m| Delivery {
                message: m.clone(),
                attempt: 1,
            })
            .collect();
        Ok(reply(BrokerReply::Pulled {
            deliveries,
            next_offset: to,
            end_offset: end,
        }))
    }

    fn decide_commit_offset(
        &self,
        group: &str,
        consumer: &str,
        topic: &str,
        queue: u32,
        offset: u64,
    ) -> Outcome {
        let (key, end) = self.offset_key(group, consumer, topic, queue)?;
        if offset > end {
            return Err(BrokerError::OffsetBeyondEnd { offset, end });
        }
        let committed = self.committed_offset(&key);
        if offset <= committed {
            return Ok(reply(BrokerReply::OffsetCommitted { offset: committed }));
        }
        Ok(BrokerDecision::Write(BrokerRecord::OffsetCommitted {
            key,
            offset,
        }))
    }

    /// The latest delivery of `message` to `group` made by `now_ms`: 1 from the topic's queue,
    /// then each retry once it is due.
    fn latest_delivery(state: Option<&RetryState>, now_ms: u64) -> u32 {
        match state {
            None => 1,
            Some(RetryState::Scheduled { attempt, due_ms }) if *due_ms <= now_ms => *attempt,
            Some(RetryState::Scheduled { attempt, .. }) => attempt - 1,
            Some(RetryState::Acked { attempt }) => *attempt,
            Some(RetryState::DeadLettered { attempts }) => *attempts,
        }
    }

    /// The retry state of a message in a clustering group that subscribes to its topic.
    fn retry_state(
        &self,
        group: &str,
        message: &MessageId,
    ) -> Result<Option<&RetryState>, BrokerError> {
        if self.check_subscribed(group, &message.topic)?.mode == ConsumeMode::Broadcast {
            return Err(BrokerError::BroadcastHasNoRetry(group.to_string()));
        }
        if self.message(message).is_none() {
            return Err(BrokerError::UnknownMessage(message.clone()));
        }
        Ok(self.retries.get(group).and_then(|q| q.get(message)))
    }

    fn decide_nack(&self, group: &str, message: &MessageId, attempt: u32, now_ms: u64) -> Outcome {
        let state = self.retry_state(group, message)?;
        let latest = Self::latest_delivery(state, now_ms);
        if attempt == 0 || attempt > latest {
            return Err(BrokerError::NoSuchDelivery {
                message: message.clone(),
                attempt,
                latest,
            });
        }
        // Only the delivery made last can fail now; an earlier one is a late duplicate.
        let failing_latest = match state {
            None => attempt == 1,
            Some(RetryState::Scheduled {
                attempt: due,
                due_ms,
            }) => attempt == *due && *due_ms <= now_ms,
            Some(_) => false,
        };
        if !failing_latest {
            let outcome = match state {
                Some(RetryState::Scheduled { attempt, due_ms }) => NackOutcome::Retry {
                    attempt: *attempt,
                    due_ms: *due_ms,
                },
                Some(RetryState::DeadLettered { .. }) => NackOutcome::DeadLettered,
                _ => NackOutcome::Stale,
            };
            return Ok(reply(BrokerReply::Nacked {
                message: message.clone(),
                outcome,
            }));
        }
        // Delivery `attempt` is retry number `attempt - 1`; after `retries_max` retries failed,
        // the message is dead.
        let retry = self.config.retry;
        if attempt > retry.retries_max {
            return Ok(BrokerDecision::Write(BrokerRecord::DeadLettered {
                group: group.to_string(),
                message: message.clone(),
                attempts: attempt,
                at_ms: now_ms,
            }));
        }
        let delay_ms = retry.delays_ms[attempt as usize - 1];
        Ok(BrokerDecision::Write(BrokerRecord::RetryScheduled {
            group: group.to_string(),
            message: message.clone(),
            attempt: attempt + 1,
            due_ms: now_ms.saturating_add(delay_ms),
        }))
    }

    fn decide_pull_retries(&self, group: &str, max: u32, now_ms: u64) -> Outcome {
        check_batch(max)?;
        self.group(group)?;
        let mut deliveries = self.retries_due(group, now_ms);
        deliveries.truncate(max as usize);
        Ok(reply(BrokerReply::RetriesDue { deliveries }))
    }

    /// What a round of pulls from `positions` would find now: the queues whose end is not the
    /// consumer's position (new messages, or messages lost under it), and whether a retry of
    /// one of those queues is due. The shell holds an empty answer ([`BrokerCommand::Await`]).
    fn decide_await(
        &self,
        group: &str,
        consumer: &str,
        topic: &str,
        positions: &[(u32, u64)],
        hold_ms: u64,
        now_ms: u64,
    ) -> Outcome {
        if hold_ms > AWAIT_HOLD_MAX_MS {
            return Err(BrokerError::HoldTooLong(hold_ms));
        }
        let queues: BTreeSet<u32> = positions.iter().map(|(q, _)| *q).collect();
        if queues.is_empty()
            || queues.len() != positions.len()
            || queues.len() > QUEUES_PER_TOPIC_MAX as usize
        {
            return Err(BrokerError::AwaitQueues);
        }
        let mut news = Vec::new();
        for (queue, next) in positions {
            let (_, end) = self.offset_key(group, consumer, topic, *queue)?;
            if end != *next {
                news.push(*queue);
            }
        }
        let retries = self
            .due_ids(group, now_ms)
            .any(|id| id.topic == topic && queues.contains(&id.queue));
        Ok(reply(BrokerReply::News {
            queues: news,
            retries,
        }))
    }

    /// When the next scheduled retry of `group` on one of `queues` of `topic` falls due (the
    /// broker's clock), if any: how long a held `Await` may sleep before it looks again.
    pub fn next_retry_due(&self, group: &str, topic: &str, queues: &[u32]) -> Option<u64> {
        self.scheduled_by_due(group)
            .find(|(_, id)| id.topic == topic && queues.contains(&id.queue))
            .map(|(due_ms, _)| *due_ms)
    }

    fn decide_ack_retry(
        &self,
        group: &str,
        message: &MessageId,
        attempt: u32,
        now_ms: u64,
    ) -> Outcome {
        let state = self.retry_state(group, message)?;
        let latest = Self::latest_delivery(state, now_ms);
        if attempt == 0 || attempt > latest {
            return Err(BrokerError::NoSuchDelivery {
                message: message.clone(),
                attempt,
                latest,
            });
        }
        match state {
            Some(RetryState::Scheduled { attempt: due, .. }) if *due == attempt => {
                Ok(BrokerDecision::Write(BrokerRecord::RetryAcked {
                    group: group.to_string(),
                    message: message.clone(),
                    attempt,
                }))
            }
            // A first delivery is acknowledged by committing its offset; anything else is a
            // late duplicate of a delivery already settled.
            _ => Ok(reply(BrokerReply::RetryAcked)),
        }
    }

    /// Applies one durable record and returns the reply it stands for. Asserts what a correct
    /// log guarantees, so that a corrupt or mis-decided log stops replay with a sentence.
    pub fn apply(&mut self, record: BrokerRecord) -> BrokerReply {
        match record {
            BrokerRecord::TopicCreated { topic, queues } => self.apply_topic_created(topic, queues),
            BrokerRecord::Appended(message) => self.apply_appended(message),
            BrokerRecord::HalfStored(half) => self.apply_half_stored(half),
            BrokerRecord::HalfCommitted {
                half,
                message,
                at_ms,
            } => self.apply_half_committed(half, message, at_ms),
            BrokerRecord::HalfRolledBack { half } => {
                self.settle_half(half, HalfState::RolledBack);
                BrokerReply::TransactionEnded {
                    half,
                    state: HalfState::RolledBack,
                }
            }
            BrokerRecord::CheckSent {
                half,
                at_ms,
                next_check_ms,
            } => self.apply_check_sent(half, at_ms, next_check_ms),
            BrokerRecord::HalfDiscarded { half, at_ms } => self.apply_half_discarded(half, at_ms),
            BrokerRecord::Subscribed { group, topic, mode } => {
                self.apply_subscribed(group, topic, mode)
            }
            BrokerRecord::OffsetCommitted { key, offset } => {
                self.apply_offset_committed(key, offset)
            }
            BrokerRecord::RetryScheduled {
                group,
                message,
                attempt,
                due_ms,
            } => self.apply_retry_scheduled(group, message, attempt, due_ms),
            BrokerRecord::DeadLettered {
                group,
                message,
                attempts,
                at_ms,
            } => self.apply_dead_lettered(group, message, attempts, at_ms),
            BrokerRecord::RetryAcked {
                group,
                message,
                attempt,
            } => self.apply_retry_acked(group, message, attempt),
        }
    }

    fn apply_topic_created(&mut self, topic: String, queues: u32) -> BrokerReply {
        assert!(
            (1..=QUEUES_PER_TOPIC_MAX).contains(&queues),
            "topic {topic} created with {queues} queues"
        );
        let previous = self
            .topics
            .insert(topic.clone(), vec![Vec::new(); queues as usize]);
        assert!(previous.is_none(), "topic {topic} created twice");
        BrokerReply::TopicCreated { topic, queues }
    }

    fn apply_appended(&mut self, message: Message) -> BrokerReply {
        let previous = self.produced.insert(
            message.producer_msg_id.clone(),
            Produced::Message(message.id.clone()),
        );
        assert!(
            previous.is_none(),
            "producer message id {} stored twice",
            message.producer_msg_id
        );
        let id = message.id.clone();
        self.append(message);
        BrokerReply::Sent { message: id }
    }

    fn apply_half_committed(
        &mut self,
        half: HalfId,
        message: MessageId,
        at_ms: u64,
    ) -> BrokerReply {
        let h = self.settle_half(half, HalfState::Committed(message.clone()));
        assert_eq!(
            message.topic, h.topic,
            "{half} committed to another topic than its own"
        );
        let appended = Message {
            id: message,
            key: h.key,
            payload: h.payload,
            producer_msg_id: h.producer_msg_id,
            stored_ms: at_ms,
            from_half: Some(half),
        };
        let state = HalfState::Committed(appended.id.clone());
        self.append(appended);
        BrokerReply::TransactionEnded { half, state }
    }

    fn apply_check_sent(&mut self, half: HalfId, at_ms: u64, next_check_ms: u64) -> BrokerReply {
        let h = self.pending_half_mut(half);
        assert!(
            h.next_check_ms <= at_ms && at_ms < next_check_ms,
            "check of {half} at {at_ms} ms out of its schedule"
        );
        h.checks += 1;
        h.next_check_ms = next_check_ms;
        BrokerReply::CheckSent {
            half,
            producer_group: h.producer_group.clone(),
            check: h.checks,
        }
    }

    fn apply_half_discarded(&mut self, half: HalfId, at_ms: u64) -> BrokerReply {
        let h = self.settle_half(half, HalfState::Discarded);
        assert!(
            h.next_check_ms <= at_ms,
            "{half} discarded at {at_ms} ms before its last check ran out"
        );
        self.discarded_halves.push(half);
        BrokerReply::TransactionEnded {
            half,
            state: HalfState::Discarded,
        }
    }

    fn apply_subscribed(&mut self, group: String, topic: String, mode: ConsumeMode) -> BrokerReply {
        assert!(
            self.topics.contains_key(&topic),
            "{group} subscribed to unknown topic {topic}"
        );
        let g = self
            .groups
            .entry(group.clone())
            .or_insert_with(|| ConsumerGroup {
                mode,
                topics: BTreeSet::new(),
            });
        assert_eq!(g.mode, mode, "group {group} changed its mode");
        assert!(
            g.topics.insert(topic.clone()),
            "{group} subscribed to {topic} twice"
        );
        BrokerReply::Subscribed { group, topic, mode }
    }

    fn apply_offset_committed(&mut self, key: OffsetKey, offset: u64) -> BrokerReply {
        let end = self
            .queue(&key.topic, key.queue)
            .unwrap_or_else(|| panic!("offset committed on unknown queue {key:?}"))
            .len() as u64;
        assert!(
            offset <= end,
            "offset {offset} beyond the end {end} of {key:?}"
        );
        let committed = self.offsets.entry(key).or_insert(0);
        assert!(
            offset > *committed,
            "offset went backwards from {committed} to {offset}"
        );
        *committed = offset;
        BrokerReply::OffsetCommitted { offset }
    }

    fn apply_retry_acked(
        &mut self,
        group: String,
        message: MessageId,
        attempt: u32,
    ) -> BrokerReply {
        let state = self
            .retries
            .get_mut(&group)
            .and_then(|q| q.get_mut(&message))
            .unwrap_or_else(|| panic!("{message} acked in {group} without a retry"));
        assert!(
            matches!(state, RetryState::Scheduled { attempt: a, .. } if *a == attempt),
            "{message} acked at delivery {attempt} in {group} from {state:?}"
        );
        let previous = std::mem::replace(state, RetryState::Acked { attempt });
        self.unschedule(&group, &message, Some(previous));
        BrokerReply::RetryAcked
    }

    /// Appends a message at the end of its queue, asserting that its offset is the next one and
    /// that its queue is the one its key hashes to (per-key order).
    fn append(&mut self, message: Message) {
        let queues = self
            .topics
            .get_mut(&message.id.topic)
            .unwrap_or_else(|| panic!("{} appended to an unknown topic", message.id));
        assert_eq!(
            message.id.queue,
            queue_of(&message.key, queues.len() as u32),
            "{} is not in the queue of its key",
            message.id
        );
        assert!(
            message.payload.len() <= PAYLOAD_BYTES_MAX,
            "{} has an oversized payload",
            message.id
        );
        let queue = &mut queues[message.id.queue as usize];
        assert_eq!(
            message.id.offset,
            queue.len() as u64,
            "offsets of {}:{} out of sequence",
            message.id.topic,
            message.id.queue
        );
        queue.push(message);
    }

    fn apply_half_stored(&mut self, half: HalfMessage) -> BrokerReply {
        let id = half.id;
        assert_eq!(id.0, self.halves.len() as u64, "half ids out of sequence");
        assert!(
            half.state == HalfState::Pending && half.checks == 0,
            "{id} stored already decided or checked"
        );
        assert!(
            self.topics.contains_key(&half.topic),
            "{id} stored for unknown topic {}",
            half.topic
        );
        let previous = self
            .produced
            .insert(half.producer_msg_id.clone(), Produced::Half(id));
        assert!(
            previous.is_none(),
            "producer message id {} stored twice",
            half.producer_msg_id
        );
        self.halves.push(half);
        self.pending_halves += 1;
        BrokerReply::HalfSent { half: id }
    }

    fn pending_half_mut(&mut self, half: HalfId) -> &mut HalfMessage {
        let h = self
            .halves
            .get_mut(half.0 as usize)
            .unwrap_or_else(|| panic!("{half} does not exist"));
        assert!(
            h.state == HalfState::Pending,
            "{half} decided twice: already {:?}",
            h.state
        );
        h
    }

    /// Moves a pending half to its final state, once; returns a copy of it.
    fn settle_half(&mut self, half: HalfId, state: HalfState) -> HalfMessage {
        let h = self.pending_half_mut(half);
        h.state = state;
        let settled = h.clone();
        self.pending_halves -= 1;
        settled
    }

    fn apply_retry_scheduled(
        &mut self,
        group: String,
        message: MessageId,
        attempt: u32,
        due_ms: u64,
    ) -> BrokerReply {
        assert!(
            (2..=RETRY_LEVELS as u32 + 1).contains(&attempt),
            "retry delivery {attempt} of {message} is outside the retry levels"
        );
        assert!(
            self.message(&message).is_some(),
            "{message} retried but never stored"
        );
        let queue = self.retries.entry(group.clone()).or_default();
        let failed = attempt - 1;
        match queue.get(&message) {
            None => assert_eq!(
                failed, 1,
                "{message} retried in {group} without failing first"
            ),
            Some(RetryState::Scheduled { attempt: due, .. }) => assert_eq!(
                *due, failed,
                "{message} retried in {group} after delivery {failed}, but {due} was the one due"
            ),
            Some(other) => panic!("{message} retried in {group} after it ended: {other:?}"),
        }
        let previous = queue.insert(message.clone(), RetryState::Scheduled { attempt, due_ms });
        self.unschedule(&group, &message, previous);
        let index = self.scheduled.entry(group).or_default();
        index.insert((due_ms, message.clone()));
        BrokerReply::Nacked {
            message,
            outcome: NackOutcome::Retry { attempt, due_ms },
        }
    }

    fn apply_dead_lettered(
        &mut self,
        group: String,
        message: MessageId,
        attempts: u32,
        at_ms: u64,
    ) -> BrokerReply {
        assert!(
            self.message(&message).is_some(),
            "{message} dead-lettered but never stored"
        );
        let queue = self.retries.entry(group.clone()).or_default();
        let last = match queue.get(&message) {
            None => 1,
            Some(RetryState::Scheduled { attempt, .. }) => *attempt,
            Some(other) => panic!("{message} dead-lettered in {group} after it ended: {other:?}"),
        };
        assert_eq!(
            last, attempts,
            "{message} dead-lettered in {group} after {attempts} deliveries, but {last} were made"
        );
        let previous = queue.insert(message.clone(), RetryState::DeadLettered { attempts });
        self.unschedule(&group, &message, previous);
        self.dead_letters
            .entry(group)
            .or_default()
            .push(DeadLetter {
                message: message.clone(),
                attempts,
                at_ms,
            });
        BrokerReply::Nacked {
            message,
            outcome: NackOutcome::DeadLettered,
        }
    }
}

impl BrokerCore {
    /// Drops `message` from `group`'s due-time index if its `previous` state was scheduled
    /// (its retry was then acknowledged, rescheduled or dead-lettered).
    fn unschedule(&mut self, group: &str, message: &MessageId, previous: Option<RetryState>) {
        if let Some(RetryState::Scheduled { due_ms, .. }) = previous {
            let index = self.scheduled.get_mut(group);
            let removed = index.is_some_and(|index| index.remove(&(due_ms, message.clone())));
            assert!(
                removed,
                "{message} was scheduled in {group} but not indexed"
            );
        }
    }
}

fn reply(r: BrokerReply) -> BrokerDecision {
    BrokerDecision::Reply(Ok(r))
}

/// Topic and group names: RocketMQ's characters, without `%`, which marks the broker's own
/// topics (`%RETRY%group`, `%DLQ%group`).
fn check_name(kind: &str, name: &str) -> Result<(), BrokerError> {
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match ok {
        true => check_id(kind, name),
        false => Err(invalid(kind, name)),
    }
}

/// Consumers, producer groups and producer message ids: any bytes, bounded.
fn check_id(kind: &str, name: &str) -> Result<(), BrokerError> {
    match (1..=NAME_BYTES_MAX).contains(&name.len()) {
        true => Ok(()),
        false => Err(invalid(kind, name)),
    }
}

fn invalid(kind: &str, name: &str) -> BrokerError {
    BrokerError::InvalidName {
        kind: kind.to_string(),
        name: name.to_string(),
    }
}

fn check_message(key: &str, payload: &str, producer_msg_id: &str) -> Result<(), BrokerError> {
    check_id("producer message id", producer_msg_id)?;
    if key.len() > KEY_BYTES_MAX {
        return Err(BrokerError::KeyTooLong(key.len()));
    }
    if payload.len() > PAYLOAD_BYTES_MAX {
        return Err(BrokerError::PayloadTooLarge(payload.len()));
    }
    Ok(())
}

fn check_batch(max: u32) -> Result<(), BrokerError> {
    match (1..=PULL_BATCH_MAX).contains(&max) {
        true => Ok(()),
        false => Err(BrokerError::BatchSize(max)),
    }
}

/// A clustering group behind on one queue ([`BrokerCore::lag`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLag {
    pub group: String,
    pub topic: String,
    pub queue: u32,
    pub committed: u64,
    pub end: u64,
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;

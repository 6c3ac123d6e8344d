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
        let mut due: Vec<(u64, &MessageId, u32)> = self
            .retry_queue(group)
            .filter_map(|(id, state)| match state {
                RetryState::Scheduled { attempt, due_ms } if *due_ms <= now_ms => {
                    Some((*due_ms, id, *attempt))
                }
                _ => None,
            })
            .collect();
        due.sort();
        due.into_iter()
            .map(|(_, id, attempt)| Delivery {
                message: self.message(id).expect("a retried message exists").clone(),
                attempt,
            })
            .collect()
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
            BrokerRecord::TopicCreated { topic, queues } => {
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
            BrokerRecord::Appended(message) => {
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
            BrokerRecord::HalfStored(half) => self.apply_half_stored(half),
            BrokerRecord::HalfCommitted {
                half,
                message,
                at_ms,
            } => {
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
            } => {
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
            BrokerRecord::HalfDiscarded { half, at_ms } => {
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
            BrokerRecord::Subscribed { group, topic, mode } => {
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
            BrokerRecord::OffsetCommitted { key, offset } => {
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
            } => {
                let state = self
                    .retries
                    .get_mut(&group)
                    .and_then(|q| q.get_mut(&message))
                    .unwrap_or_else(|| panic!("{message} acked in {group} without a retry"));
                assert!(
                    matches!(state, RetryState::Scheduled { attempt: a, .. } if *a == attempt),
                    "{message} acked at delivery {attempt} in {group} from {state:?}"
                );
                *state = RetryState::Acked { attempt };
                BrokerReply::RetryAcked
            }
        }
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
        queue.insert(message.clone(), RetryState::Scheduled { attempt, due_ms });
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
        queue.insert(message.clone(), RetryState::DeadLettered { attempts });
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

#[cfg(test)]
mod tests {
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
}

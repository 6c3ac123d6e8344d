//! The consumer runtime's protocol engine: every decision of a push consumer over pulls, as
//! plain state and a `step` function, with no clock, no RNG, no sockets and no async.
//!
//! The engine drives one main loop and one commit timer. The main loop waits on exactly one
//! thing at a time — a broker call, the handler, an idle pause or the buggify window — so every
//! main-loop input returns exactly one such blocking [`Output`] (after any probes): subscribe,
//! then rounds over the consumer's queues (pull from the local position, the first time from
//! the committed offset; hand each delivery to the handler in queue order; nack a failure to
//! the retry queue), then the group's due retries, then an idle pause if the round found
//! nothing. The commit timer ([`Input::CommitTick`]) commits every position that processing
//! moved past the committed offset; its answers ([`Input::Committed`]) only update state.
//!
//! Delivery is at-least-once because a position becomes committable only after its batch was
//! processed. The planted `offset-before-processing` ([`ConsumerEngine::new`]'s
//! `commit_first`) commits a batch's end before handing out its first delivery, so a crash in
//! between loses the batch.

use super::types::{
    BrokerCommand, BrokerError, BrokerReply, ConsumeMode, Delivery, MessageId, AWAIT_HOLD_MAX_MS,
    PULL_BATCH_MAX,
};
use crate::probes::names;
use std::collections::{BTreeMap, VecDeque};

/// A broker call's answer as the engine sees it: `None` when the call went unanswered.
pub type Answer = Option<Result<BrokerReply, BrokerError>>;

/// What happened, fed to [`ConsumerEngine::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The runtime starts: subscribe.
    Start,
    /// The answer to the main loop's outstanding [`Output::Call`].
    Answer(Answer),
    /// The handler's verdict on the delivery of the last [`Output::Process`].
    Processed(Result<(), String>),
    /// The handler's verdicts on the deliveries of the last [`Output::ProcessMany`], in order.
    ProcessedMany(Vec<Result<(), String>>),
    /// The main loop's [`Output::Idle`] pause or [`Output::Window`] ended.
    Woke,
    /// The commit timer fired: commit what processing moved.
    CommitTick,
    /// The answer to the timer's [`Output::Commit`] on `queue`.
    Committed { queue: u32, answer: Answer },
}

/// What the runtime must do. Outputs are performed in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Count a coverage probe.
    Probe(&'static str),
    /// Start the commit timer (once, after the first subscription).
    StartCommitTimer,
    /// Main loop: call the broker and answer with [`Input::Answer`].
    Call(BrokerCommand),
    /// Main loop: hand the delivery to the handler and answer with [`Input::Processed`].
    Process(Delivery),
    /// Main loop: hand the deliveries (one queue's, in queue order) to the handler at once and
    /// answer with [`Input::ProcessedMany`]: batch consumption, one durable write for them all.
    ProcessMany(Vec<Delivery>),
    /// Main loop: pause for the idle wait, then [`Input::Woke`].
    Idle,
    /// Main loop: pass the buggify window between processing and the offset
    /// (`Point::ConsumeToOffset`), then [`Input::Woke`].
    Window,
    /// Commit timer: call the broker and answer with [`Input::Committed`].
    Commit { queue: u32, command: BrokerCommand },
}

impl Output {
    /// Whether the main loop waits on this output's answer.
    pub fn blocks(&self) -> bool {
        matches!(
            self,
            Output::Call(_)
                | Output::Process(_)
                | Output::ProcessMany(_)
                | Output::Idle
                | Output::Window
        )
    }
}

/// Where a consumer stands on one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// The next offset to pull; `None` until the first pull, which starts at the committed
    /// offset.
    pub next: Option<u64>,
    /// Everything below is processed and may be committed; `None` while the position is
    /// unknown (before the first pull, or after a rewind).
    pub done: Option<u64>,
    /// The offset known committed at the broker.
    pub committed: u64,
}

/// Who the consumer is and how it pulls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerIdentity {
    pub group: String,
    pub consumer: String,
    pub topic: String,
    pub mode: ConsumeMode,
    /// Messages per pull, clamped to 1..=[`PULL_BATCH_MAX`].
    pub batch: u32,
    /// Long polling: after a round that found nothing, how long the broker may hold an
    /// `Await` for this consumer (at most [`AWAIT_HOLD_MAX_MS`]); 0 pauses for the idle wait
    /// instead.
    pub hold_ms: u64,
    /// Batch consumption (RocketMQ's `consumeMessageBatchMaxSize`): how many deliveries of a
    /// pull the handler takes at once, clamped to 1..=`batch`; 1 hands them out one at a time.
    pub consume_batch: u32,
}

/// What the main loop waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wait {
    /// Not started.
    Start,
    Subscribe(AfterSubscribe),
    Pull {
        queue: u32,
        from: Option<u64>,
    },
    /// The planted bug's commit of the batch's end before processing it.
    EarlyCommit {
        queue: u32,
    },
    Window,
    Handler {
        message: MessageId,
        attempt: u32,
    },
    /// Batch consumption: the handler has these deliveries (message, attempt), in order.
    Handlers(Vec<(MessageId, u32)>),
    Ack,
    Nack {
        message: MessageId,
    },
    Retries,
    /// A held long poll.
    Await,
    Idle(Then),
}

/// What a subscription is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterSubscribe {
    /// The consumer's start: begin the first round.
    Start,
    /// The broker had lost the subscription while `queue` was pulled: rewind it, go on.
    Rewind(u32),
}

/// Where the main loop goes after an idle pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    Round,
    NextQueue,
    EndRound,
    Subscribe(AfterSubscribe),
}

/// One round over the queues, then the retries: all of them, or (after a long poll) those
/// the broker named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Round {
    /// The queues this round pulls, in order.
    queues: Vec<u32>,
    /// Whether it pulls the group's due retries after them.
    retries: bool,
    /// The index of the next queue to pull; `queues.len()` means the retries come next.
    next: usize,
    /// Whether the round found any message.
    found: bool,
}

/// The deliveries of one pull, processed one at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Batch {
    /// The queue it was pulled from; `None` for the group's retries.
    queue: Option<u32>,
    deliveries: VecDeque<Delivery>,
    /// The offset after the batch: where processing reaches if every delivery settles.
    end: u64,
    /// Where processing reached, once it stopped.
    reached: Option<u64>,
    /// Whether the buggify window was already passed (the planted bug passes it before
    /// processing, the correct consumer after).
    windowed: bool,
}

/// The consumer's state: its positions and where its main loop stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerEngine {
    id: ConsumerIdentity,
    /// The planted `offset-before-processing`.
    commit_first: bool,
    queues: Vec<u32>,
    positions: BTreeMap<u32, Position>,
    wait: Wait,
    round: Round,
    batch: Option<Batch>,
    /// Batch consumption: the verdicts of the handler's last deliveries not yet settled with
    /// the broker (acknowledged or nacked one at a time, in order).
    settling: VecDeque<(MessageId, u32, Result<(), String>)>,
    timer_started: bool,
}

impl ConsumerEngine {
    /// A consumer of `queues` of its topic. `commit_first` plants `offset-before-processing`.
    pub fn new(id: ConsumerIdentity, queues: Vec<u32>, commit_first: bool) -> Self {
        let batch = id.batch.clamp(1, PULL_BATCH_MAX);
        ConsumerEngine {
            id: ConsumerIdentity {
                batch,
                hold_ms: id.hold_ms.min(AWAIT_HOLD_MAX_MS),
                consume_batch: id.consume_batch.clamp(1, batch),
                ..id
            },
            commit_first,
            positions: queues.iter().map(|q| (*q, Position::default())).collect(),
            queues,
            wait: Wait::Start,
            round: Round::default(),
            batch: None,
            settling: VecDeque::new(),
            timer_started: false,
        }
    }

    /// Where the consumer stands on `queue` (`None` if it does not own the queue).
    pub fn position(&self, queue: u32) -> Option<Position> {
        self.positions.get(&queue).copied()
    }

    /// Takes one input and returns what to do.
    pub fn step(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                assert_eq!(self.wait, Wait::Start, "a consumer starts once");
                self.subscribe(AfterSubscribe::Start, &mut out);
            }
            Input::Answer(answer) => self.on_answer(answer, &mut out),
            Input::Processed(result) => self.on_processed(result, &mut out),
            Input::ProcessedMany(results) => self.on_processed_many(results, &mut out),
            Input::Woke => self.on_woke(&mut out),
            Input::CommitTick => self.on_commit_tick(&mut out),
            Input::Committed { queue, answer } => self.note_commit(queue, answer),
        }
        out
    }

    fn subscribe(&mut self, after: AfterSubscribe, out: &mut Vec<Output>) {
        self.wait = Wait::Subscribe(after);
        out.push(Output::Call(BrokerCommand::Subscribe {
            group: self.id.group.clone(),
            topic: self.id.topic.clone(),
            mode: self.id.mode,
        }));
    }

    fn idle(&mut self, then: Then, out: &mut Vec<Output>) {
        self.wait = Wait::Idle(then);
        out.push(Output::Idle);
    }

    fn on_answer(&mut self, answer: Answer, out: &mut Vec<Output>) {
        match std::mem::replace(&mut self.wait, Wait::Start) {
            Wait::Subscribe(after) => self.on_subscribed(after, answer, out),
            Wait::Pull { queue, from } => self.on_pulled(queue, from, answer, out),
            Wait::EarlyCommit { queue } => {
                self.note_commit(queue, answer);
                self.wait = Wait::Window;
                out.push(Output::Window);
            }
            Wait::Ack => {
                if let Some(Err(refusal)) = answer {
                    tracing::warn!(group = %self.id.group, %refusal, "retry acknowledgement refused");
                }
                self.process_next(out);
            }
            Wait::Nack { message } => match answer {
                Some(Ok(_)) => self.process_next(out),
                Some(Err(refusal)) => {
                    tracing::warn!(group = %self.id.group, %message, %refusal, "nack refused");
                    self.process_next(out);
                }
                // The broker did not take the failure: the delivery must be made again.
                None => self.unsettled(message.offset, out),
            },
            Wait::Retries => self.on_retries(answer, out),
            Wait::Await => self.on_news(answer, out),
            other => panic!("a broker answer while waiting for {other:?}"),
        }
    }

    fn on_subscribed(&mut self, after: AfterSubscribe, answer: Answer, out: &mut Vec<Output>) {
        match answer {
            Some(Ok(_)) => {}
            Some(Err(refusal)) => {
                tracing::warn!(group = %self.id.group, topic = %self.id.topic, %refusal, "subscription refused");
                return self.idle(Then::Subscribe(after), out);
            }
            None => {
                tracing::debug!(group = %self.id.group, "subscription unanswered");
                return self.idle(Then::Subscribe(after), out);
            }
        }
        match after {
            AfterSubscribe::Start => {
                if !self.timer_started {
                    self.timer_started = true;
                    out.push(Output::StartCommitTimer);
                }
                self.start_round(out);
            }
            AfterSubscribe::Rewind(queue) => {
                self.positions.insert(queue, Position::default());
                self.continue_round(out);
            }
        }
    }

    /// A round over every queue, then the retries (clustering only).
    fn start_round(&mut self, out: &mut Vec<Output>) {
        let queues = self.queues.clone();
        let retries = self.id.mode == ConsumeMode::Clustering;
        self.start_round_of(queues, retries, out);
    }

    fn start_round_of(&mut self, queues: Vec<u32>, retries: bool, out: &mut Vec<Output>) {
        self.round = Round {
            queues,
            retries,
            ..Round::default()
        };
        self.continue_round(out);
    }

    /// Pulls the round's next queue, or the retries after the last queue, or ends the round.
    fn continue_round(&mut self, out: &mut Vec<Output>) {
        let next = self.round.next;
        self.round.next += 1;
        if let Some(&queue) = self.round.queues.get(next) {
            let from = self.positions.get(&queue).and_then(|p| p.next);
            self.wait = Wait::Pull { queue, from };
            out.push(Output::Call(BrokerCommand::Pull {
                group: self.id.group.clone(),
                consumer: self.id.consumer.clone(),
                topic: self.id.topic.clone(),
                queue,
                from,
                max: self.id.batch,
            }));
        } else if next == self.round.queues.len() && self.round.retries {
            self.wait = Wait::Retries;
            out.push(Output::Call(BrokerCommand::PullRetries {
                group: self.id.group.clone(),
                max: self.id.batch,
            }));
        } else {
            self.end_round(out);
        }
    }

    /// With long polling, every round is followed by a long poll, which the broker answers at
    /// once if there is more. Without: a round that found messages is followed at once by the
    /// next, an empty one by a pause.
    fn end_round(&mut self, out: &mut Vec<Output>) {
        if self.id.hold_ms > 0 {
            self.await_news(out);
        } else if self.round.found {
            self.start_round(out);
        } else {
            self.idle(Then::Round, out);
        }
    }

    /// Asks the broker which queues (and whether the retries) a pull from the current
    /// positions would find something in, holding until there is some. While a position is
    /// unknown (a rewound queue) no long poll can name it: a full round follows a round that
    /// found messages, a pause an empty one.
    fn await_news(&mut self, out: &mut Vec<Output>) {
        let positions: Option<Vec<(u32, u64)>> = self
            .positions
            .iter()
            .map(|(q, p)| p.next.map(|next| (*q, next)))
            .collect();
        match positions {
            Some(positions) if self.id.hold_ms > 0 && !positions.is_empty() => {
                self.wait = Wait::Await;
                out.push(Output::Call(BrokerCommand::Await {
                    group: self.id.group.clone(),
                    consumer: self.id.consumer.clone(),
                    topic: self.id.topic.clone(),
                    positions,
                    hold_ms: self.id.hold_ms,
                }));
            }
            _ if self.round.found => self.start_round(out),
            _ => self.idle(Then::Round, out),
        }
    }

    /// News: pull the queues (and the retries) named; none within the hold: hold again; a
    /// refusal or no answer (the broker down or lost the subscription): pause, then a full
    /// round sorts it out.
    fn on_news(&mut self, answer: Answer, out: &mut Vec<Output>) {
        match answer {
            Some(Ok(BrokerReply::News { queues, retries })) => {
                let queues: Vec<u32> = queues
                    .into_iter()
                    .filter(|q| self.positions.contains_key(q))
                    .collect();
                let retries = retries && self.id.mode == ConsumeMode::Clustering;
                if queues.is_empty() && !retries {
                    self.round = Round::default();
                    self.await_news(out)
                } else {
                    self.start_round_of(queues, retries, out)
                }
            }
            Some(other) => {
                tracing::debug!(group = %self.id.group, ?other, "long poll refused");
                self.idle(Then::Round, out);
            }
            None => self.idle(Then::Round, out),
        }
    }

    fn on_pulled(&mut self, queue: u32, from: Option<u64>, answer: Answer, out: &mut Vec<Output>) {
        let group = &self.id.group;
        let (deliveries, next_offset) = match answer {
            Some(Ok(BrokerReply::Pulled {
                deliveries,
                next_offset,
                ..
            })) => (deliveries, next_offset),
            Some(Err(BrokerError::OffsetBeyondEnd { offset, end })) => {
                // The broker lost messages this consumer had seen (an unsafe flush policy and
                // a power loss): start again from the committed offset.
                tracing::warn!(%group, queue, offset, end, "position beyond the queue's end, rewinding");
                self.positions.insert(queue, Position::default());
                return self.continue_round(out);
            }
            Some(Ok(other)) => {
                tracing::warn!(?other, "unexpected reply to a pull");
                return self.continue_round(out);
            }
            Some(Err(BrokerError::UnknownGroup(_) | BrokerError::NotSubscribed { .. })) => {
                // The broker lost the subscription (an unsafe flush policy and a power loss):
                // subscribe again and start over from whatever offset it kept.
                tracing::warn!(%group, queue, "subscription lost, subscribing again");
                return self.subscribe(AfterSubscribe::Rewind(queue), out);
            }
            Some(Err(refusal)) => {
                tracing::warn!(%group, queue, %refusal, "pull refused");
                return self.idle(Then::NextQueue, out);
            }
            None => return self.idle(Then::NextQueue, out),
        };
        let first = deliveries
            .first()
            .map_or(next_offset, |d| d.message.id.offset);
        if from.is_none() {
            // The first pull started at the committed offset.
            let p = self.positions.entry(queue).or_default();
            p.committed = p.committed.max(first);
            p.done = Some(first);
        }
        if deliveries.is_empty() {
            self.advance(queue, next_offset);
            return self.continue_round(out);
        }
        self.round.found = true;
        self.batch = Some(Batch {
            queue: Some(queue),
            deliveries: deliveries.into(),
            end: next_offset,
            reached: None,
            windowed: self.commit_first,
        });
        if self.commit_first {
            // The planted bug: the batch is committed before it is processed.
            self.wait = Wait::EarlyCommit { queue };
            out.push(Output::Call(self.commit_command(queue, next_offset)));
        } else {
            self.process_next(out);
        }
    }

    fn on_retries(&mut self, answer: Answer, out: &mut Vec<Output>) {
        let deliveries = match answer {
            Some(Ok(BrokerReply::RetriesDue { deliveries })) => deliveries,
            Some(other) => {
                tracing::warn!(group = %self.id.group, ?other, "retry pull refused");
                return self.end_round(out);
            }
            None => return self.idle(Then::EndRound, out),
        };
        // A retry of another topic, or of a queue another consumer of the group owns, is that
        // consumer's to process.
        let ours: VecDeque<Delivery> = deliveries
            .into_iter()
            .filter(|d| {
                d.message.id.topic == self.id.topic
                    && self.positions.contains_key(&d.message.id.queue)
            })
            .collect();
        if ours.is_empty() {
            return self.end_round(out);
        }
        self.round.found = true;
        self.batch = Some(Batch {
            queue: None,
            deliveries: ours,
            end: 0,
            reached: None,
            windowed: true,
        });
        self.process_next(out);
    }

    /// Settles the handler's next verdict, or hands out the batch's next delivery (or, with
    /// batch consumption, its next deliveries), or finishes the batch.
    fn process_next(&mut self, out: &mut Vec<Output>) {
        if let Some((message, attempt, result)) = self.settling.pop_front() {
            return self.settle(message, attempt, result, out);
        }
        let take = self.id.consume_batch as usize;
        let batch = self.batch.as_mut().expect("a batch is being processed");
        if batch.deliveries.is_empty() {
            let end = batch.end;
            return self.batch_done(end, out);
        }
        let retries = batch.queue.is_none();
        let deliveries: Vec<Delivery> = batch
            .deliveries
            .drain(..take.min(batch.deliveries.len()))
            .collect();
        if retries {
            out.extend(
                deliveries
                    .iter()
                    .map(|_| Output::Probe(names::CONSUMER_RETRY_DELIVERED)),
            );
        }
        if take == 1 {
            let delivery = deliveries.into_iter().next().expect("one delivery");
            self.wait = Wait::Handler {
                message: delivery.message.id.clone(),
                attempt: delivery.attempt,
            };
            out.push(Output::Process(delivery));
        } else {
            if deliveries.len() > 1 {
                out.push(Output::Probe(names::CONSUMER_BATCH_HANDED));
            }
            let handed = deliveries.iter().map(|d| (d.message.id.clone(), d.attempt));
            self.wait = Wait::Handlers(handed.collect());
            out.push(Output::ProcessMany(deliveries));
        }
    }

    /// A failure the broker did not take: a queue's batch stops there (the delivery is pulled
    /// again); a retry simply stays due and comes again.
    fn unsettled(&mut self, offset: u64, out: &mut Vec<Output>) {
        let batch = self.batch.as_ref().expect("a batch is being processed");
        match batch.queue {
            Some(_) => self.batch_done(offset, out),
            None => self.process_next(out),
        }
    }

    /// Processing of the batch reached `reached`: pass the window if not yet passed, then make
    /// the position committable and go on with the round.
    fn batch_done(&mut self, reached: u64, out: &mut Vec<Output>) {
        // Verdicts past a queue batch's stop are dropped: those deliveries are pulled again.
        self.settling.clear();
        let batch = self.batch.as_mut().expect("a batch is being processed");
        batch.reached = Some(reached);
        if !batch.windowed {
            batch.windowed = true;
            self.wait = Wait::Window;
            out.push(Output::Window);
            return;
        }
        let batch = self.batch.take().expect("the batch");
        match batch.queue {
            Some(queue) => {
                self.advance(queue, reached);
                self.continue_round(out);
            }
            None => self.end_round(out),
        }
    }

    fn on_processed(&mut self, result: Result<(), String>, out: &mut Vec<Output>) {
        let Wait::Handler { message, attempt } = std::mem::replace(&mut self.wait, Wait::Start)
        else {
            panic!("a handler's verdict while waiting for {:?}", self.wait);
        };
        self.settle(message, attempt, result, out);
    }

    fn on_processed_many(&mut self, results: Vec<Result<(), String>>, out: &mut Vec<Output>) {
        let Wait::Handlers(handed) = std::mem::replace(&mut self.wait, Wait::Start) else {
            panic!("a handler's verdicts while waiting for {:?}", self.wait);
        };
        assert_eq!(handed.len(), results.len(), "one verdict per delivery");
        let verdicts = handed.into_iter().zip(results);
        self.settling = verdicts.map(|((m, a), r)| (m, a, r)).collect();
        self.process_next(out);
    }

    /// One delivery's verdict: a retry that succeeded is acknowledged, a failure nacked (a
    /// broadcast failure only logged), then the batch goes on.
    fn settle(
        &mut self,
        message: MessageId,
        attempt: u32,
        result: Result<(), String>,
        out: &mut Vec<Output>,
    ) {
        let group = self.id.group.clone();
        let reason = match result {
            Ok(()) if attempt > 1 => {
                // A retry that succeeded is acknowledged; a lost acknowledgement leaves it due,
                // so it is delivered again.
                self.wait = Wait::Ack;
                out.push(Output::Call(BrokerCommand::AckRetry {
                    group,
                    message,
                    attempt,
                }));
                return;
            }
            Ok(()) => return self.process_next(out),
            Err(reason) => reason,
        };
        out.push(Output::Probe(names::CONSUMER_PROCESSING_FAILED));
        if self.id.mode == ConsumeMode::Broadcast {
            tracing::warn!(%group, consumer = %self.id.consumer, %message, %reason, "broadcast consumption failed (not retried)");
            return self.process_next(out);
        }
        tracing::debug!(%group, %message, attempt, %reason, "consumption failed");
        self.wait = Wait::Nack {
            message: message.clone(),
        };
        out.push(Output::Call(BrokerCommand::Nack {
            group,
            message,
            attempt,
        }));
    }

    fn on_woke(&mut self, out: &mut Vec<Output>) {
        match std::mem::replace(&mut self.wait, Wait::Start) {
            Wait::Window => {
                let batch = self.batch.as_ref().expect("a batch is in its window");
                match batch.reached {
                    // The correct consumer: processed, now committable.
                    Some(reached) => self.batch_done(reached, out),
                    // The planted bug: committed, now processed.
                    None => self.process_next(out),
                }
            }
            Wait::Idle(Then::Round) => self.start_round(out),
            Wait::Idle(Then::NextQueue) => self.continue_round(out),
            Wait::Idle(Then::EndRound) => self.end_round(out),
            Wait::Idle(Then::Subscribe(after)) => self.subscribe(after, out),
            other => panic!("woken while waiting for {other:?}"),
        }
    }

    /// Moves the local position of `queue` to `offset` after a batch, and makes it committable.
    fn advance(&mut self, queue: u32, offset: u64) {
        let p = self.positions.entry(queue).or_default();
        // Not if the queue was rewound meanwhile (its position is then unknown again).
        if p.done.is_some() {
            p.next = Some(offset);
            p.done = Some(offset);
        }
    }

    /// Commits every queue whose processed position moved past its committed offset.
    fn on_commit_tick(&mut self, out: &mut Vec<Output>) {
        let moved: Vec<(u32, u64)> = self
            .positions
            .iter()
            .filter_map(|(q, p)| p.done.filter(|d| *d > p.committed).map(|d| (*q, d)))
            .collect();
        for (queue, offset) in moved {
            let command = self.commit_command(queue, offset);
            out.push(Output::Commit { queue, command });
        }
    }

    fn commit_command(&self, queue: u32, offset: u64) -> BrokerCommand {
        BrokerCommand::CommitOffset {
            group: self.id.group.clone(),
            consumer: self.id.consumer.clone(),
            topic: self.id.topic.clone(),
            queue,
            offset,
        }
    }

    /// Takes in the answer to a commit of `queue`.
    fn note_commit(&mut self, queue: u32, answer: Answer) {
        let group = &self.id.group;
        match answer {
            Some(Ok(BrokerReply::OffsetCommitted { offset })) => {
                let p = self.positions.entry(queue).or_default();
                p.committed = p.committed.max(offset);
            }
            Some(Err(BrokerError::OffsetBeyondEnd { offset, end })) => {
                tracing::warn!(%group, queue, offset, end, "commit beyond the queue's end, rewinding");
                self.positions.insert(queue, Position::default());
            }
            Some(other) => tracing::warn!(%group, queue, ?other, "offset commit refused"),
            None => {}
        }
    }
}

#[cfg(test)]
#[path = "consumer_engine_tests.rs"]
mod tests;

//! Mode 2, transactional (half) messages, RocketMQ style: the trade node stores the event as a
//! half message, runs its local transaction (the trade change), then commits the half, or
//! rolls it back when the change did not happen. The commit or rollback goes one way, as in
//! RocketMQ's `endTransactionOneway`: if it is lost, or the node crashes before sending it, the
//! broker checks back, and the node answers from its durable state:
//!
//! - the event is durable (and is the one the half carries) → COMMIT;
//! - its local transaction is still running in this process → UNKNOWN (ask again);
//! - otherwise the local transaction never committed → ROLLBACK.
//!
//! The planted `checkback-from-memory` answers from a map of this process's decisions instead
//! (a restart empties it); `checkback-defaults-commit` answers COMMIT whenever the event is not
//! durable.

use super::core::{TradeCore, TradeDecision, TradeRecord};
use super::events::{producer_group, TradeEvent, TRADE_EVENTS_TOPIC};
use super::node::Shell;
use super::types::{TradeError, TradeReply};
use crate::broker::{BrokerCall, BrokerCommand, BrokerReply, CheckAnswer, CheckBackCall, HalfId};
use crate::buggify::Point;
use crate::bugs::Bug;
use crate::probes::names;
use crate::transport::RetryPolicy;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How a half message is sent: a few quick attempts, then the change is refused as
/// unavailable (nothing was written; the caller retries).
const HALF_POLICY: RetryPolicy = RetryPolicy {
    attempts_max: 3,
    timeout: Duration::from_millis(300),
    backoff: Duration::from_millis(50),
    backoff_max: Duration::from_millis(200),
};

/// How long the one-way commit or rollback is given.
const END_TIMEOUT: Duration = Duration::from_millis(300);

/// A change re-judged after its half message was stored gives another event at most this many
/// times before the node gives up (the caller retries).
const ATTEMPTS_MAX: u32 = 3;

#[derive(Default)]
struct State {
    /// Events known durable: recovered from the log, or whose own fsync completed.
    durable: BTreeSet<String>,
    /// Events whose half message is stored and whose local transaction is still running.
    running: BTreeMap<String, u32>,
    /// The planted bug's memory: producer message id → committed locally?
    memory: BTreeMap<String, bool>,
}

/// Mode 2's bookkeeping. Only `durable` matters to a correct check-back, and it is rebuilt
/// from the log on every start.
pub(super) struct Txmsg {
    state: Mutex<State>,
    /// Events recovered at start: committing one on a check-back means the node crashed
    /// between the local commit and the message commit.
    recovered: BTreeSet<String>,
    /// Makes producer message ids unique per half message, across restarts.
    incarnation: u64,
    next: Mutex<u64>,
}

impl Txmsg {
    pub(super) fn recovered(core: &TradeCore) -> Txmsg {
        let durable: BTreeSet<String> = core.events().keys().cloned().collect();
        Txmsg {
            recovered: durable.clone(),
            state: Mutex::new(State {
                durable,
                ..State::default()
            }),
            incarnation: madsim::rand::random::<u64>() >> 16,
            next: Mutex::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn durable_ids(&self) -> Vec<String> {
        self.state().durable.iter().cloned().collect()
    }

    fn producer_msg_id(&self, event: &TradeEvent) -> String {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        *next += 1;
        format!("{}#{:x}-{}", event.id(), self.incarnation, *next)
    }

    /// Makes the change `record` (which publishes an event) under a half message. `redecide`
    /// judges the command again once the half is stored: the trade may have moved meanwhile,
    /// and then the half is rolled back and the new judgement carried out.
    pub(super) async fn write_with_half(
        shell: &Arc<Shell>,
        record: TradeRecord,
        redecide: impl Fn(&TradeCore) -> TradeDecision,
    ) -> Result<TradeReply, TradeError> {
        let mut event = shell
            .core()
            .event_of(&record)
            .expect("only changes that publish come here");
        for _ in 0..ATTEMPTS_MAX {
            let id = event.id();
            let producer_msg_id = shell.txmsg.producer_msg_id(&event);
            // Running from before the half is sent: the broker may store it and check back
            // before its reply reaches us.
            *shell.txmsg.state().running.entry(id.clone()).or_default() += 1;
            let half = match send_half(shell, &event, &producer_msg_id).await {
                Ok(half) => half,
                Err(e) => {
                    finish_running(&mut shell.txmsg.state(), &id);
                    return Err(e);
                }
            };
            let env = &shell.env;
            env.buggify.window(Point::HalfToLocal, &env.probes).await;
            let (reply, next) = {
                let mut core = shell.core();
                match redecide(&core) {
                    TradeDecision::Write(r) if core.event_of(&r).as_ref() == Some(&event) => {
                        (Some(shell.write(&mut core, r).0), None)
                    }
                    TradeDecision::Write(r) => match core.event_of(&r) {
                        Some(other) => (None, Some(Err(other))),
                        None => (None, Some(Ok(shell.write(&mut core, r).0))),
                    },
                    TradeDecision::Reply(reply) => (None, Some(Ok(reply))),
                }
            };
            if let Some(reply) = reply {
                shell.log.sync().await;
                {
                    let mut state = shell.txmsg.state();
                    state.durable.insert(id.clone());
                    state.memory.insert(producer_msg_id, true);
                    finish_running(&mut state, &id);
                }
                env.buggify
                    .window(Point::CommitToMessage, &env.probes)
                    .await;
                end_transaction(shell, half, true);
                return reply;
            }
            // The local transaction did not happen: roll the half back.
            {
                let mut state = shell.txmsg.state();
                state.memory.insert(producer_msg_id, false);
                finish_running(&mut state, &id);
            }
            env.probes.hit(names::TXMSG_LOCAL_ABORTED);
            end_transaction(shell, half, false);
            match next.expect("an aborted attempt has a next step") {
                Ok(reply) => {
                    shell.log.sync().await;
                    return reply;
                }
                Err(other) => event = other,
            }
        }
        Err(TradeError::Unavailable(
            "the trade kept changing under its half messages".into(),
        ))
    }

    /// Answers the broker's check-back about a half message.
    pub(super) fn answer_check(shell: &Shell, check: &CheckBackCall) -> CheckAnswer {
        let answer = Self::judge(shell, check);
        let probe = match answer {
            CheckAnswer::Commit => names::TXMSG_CHECK_COMMIT,
            CheckAnswer::Rollback => names::TXMSG_CHECK_ROLLBACK,
            CheckAnswer::Unknown => names::TXMSG_CHECK_UNKNOWN,
        };
        shell.env.probes.hit(probe);
        answer
    }

    fn judge(shell: &Shell, check: &CheckBackCall) -> CheckAnswer {
        let bugs = shell.env.bugs;
        let state = shell.txmsg.state();
        if bugs.is(Bug::CheckbackFromMemory) {
            return match state.memory.get(&check.producer_msg_id) {
                Some(true) => CheckAnswer::Commit,
                Some(false) => CheckAnswer::Rollback,
                None => CheckAnswer::Unknown,
            };
        }
        let Ok(event) = TradeEvent::decode(&check.payload) else {
            return CheckAnswer::Rollback;
        };
        let id = event.id();
        let durable = state.durable.contains(&id)
            && shell.core().event(&id) == Some(&event)
            && event.trade.shard == shell.config.shard;
        if durable {
            if shell.txmsg.recovered.contains(&id) {
                shell.env.probes.hit(names::TXMSG_COMMITTED_AFTER_RESTART);
            }
            CheckAnswer::Commit
        } else if bugs.is(Bug::CheckbackDefaultsCommit) {
            CheckAnswer::Commit
        } else if state.running.contains_key(&id) {
            CheckAnswer::Unknown
        } else {
            CheckAnswer::Rollback
        }
    }
}

fn finish_running(state: &mut State, id: &str) {
    if let Some(n) = state.running.get_mut(id) {
        *n -= 1;
        if *n == 0 {
            state.running.remove(id);
        }
    }
}

/// Stores the event as a half message.
async fn send_half(
    shell: &Shell,
    event: &TradeEvent,
    producer_msg_id: &str,
) -> Result<HalfId, TradeError> {
    let broker = shell.config.messages.expect("mode 2 has a broker").broker;
    let command = BrokerCommand::SendHalf {
        topic: TRADE_EVENTS_TOPIC.to_string(),
        key: event.key(),
        payload: event.encode(),
        producer_msg_id: producer_msg_id.to_string(),
        producer_group: producer_group(shell.config.shard),
    };
    let answer = shell
        .transport
        .call_with_retry(broker, BrokerCall(command), HALF_POLICY)
        .await
        .result;
    match answer {
        Ok(Ok(BrokerReply::HalfSent { half })) => {
            shell.env.probes.hit(names::TXMSG_HALF_SENT);
            Ok(half)
        }
        Ok(Ok(other)) => Err(TradeError::Unavailable(format!(
            "the broker answered a half message with {other:?}"
        ))),
        Ok(Err(refusal)) => Err(TradeError::Unavailable(format!(
            "the broker refused the half message: {refusal}"
        ))),
        Err(e) => Err(TradeError::Unavailable(format!(
            "the broker did not store the half message: {e}"
        ))),
    }
}

/// The commit or rollback, one way: nobody waits for it, and a lost one is settled by a
/// check-back.
fn end_transaction(shell: &Shell, half: HalfId, commit: bool) {
    let broker = shell.config.messages.expect("mode 2 has a broker").broker;
    let transport = shell.transport.clone();
    madsim::task::spawn(async move {
        let command = BrokerCommand::EndTransaction { half, commit };
        let _ = transport
            .call(broker, BrokerCall(command), END_TIMEOUT)
            .await;
    });
}

//! Mode 2's runtime: the trade node hosting the [`producer::halfmsg`](crate::producer::halfmsg)
//! engine. It performs what the engine decides (store a half, run the local transaction, end
//! the half one way, answer a check-back) and feeds the results back; the local transaction is
//! the trade change, judged again once its half is stored because the trade may have moved
//! meanwhile.

use super::core::{TradeCore, TradeDecision, TradeRecord};
use super::events::{producer_group, TradeEvent, TRADE_EVENTS_TOPIC};
use super::node::Shell;
use super::types::{TradeError, TradeReply};
use crate::broker::{BrokerCall, BrokerCommand, BrokerReply, CheckAnswer, CheckBackCall, HalfId};
use crate::buggify::Point;
use crate::node::NodeEnv;
use crate::probes::names;
use crate::producer::halfmsg::{HalfMsg, HalfOutput, TxOutcome};
use crate::producer::Message;
use crate::transport::RetryPolicy;
use rand::Rng;
use std::sync::Arc;
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

/// The engine of a node that recovered `core`. The incarnation (which makes producer message
/// ids unique across restarts) is drawn from the node's own stream, mixed with the recovered
/// record count and the node's clock at start, which differ between two starts of one node.
pub(super) fn recovered(env: &NodeEnv, core: &TradeCore, records: usize) -> HalfMsg {
    let extra = (records as u64) << 32 ^ env.clock.now_ms();
    let incarnation = env.rng_with("txmsg.incarnation", extra).gen::<u64>() >> 16;
    HalfMsg::recovered(
        env.bugs,
        incarnation,
        core.events().values().map(TradeEvent::message),
    )
}

/// What running the local transaction came to.
enum Local {
    /// The change that publishes the half's event was written (and must be synced).
    Committed(Result<TradeReply, TradeError>),
    /// The change now publishes another event: try it under a new half.
    Moved(TradeEvent),
    /// The change publishes nothing now; this is its answer (synced before it is given).
    Answered(Result<TradeReply, TradeError>),
}

/// Makes the change `record` (which publishes an event) under a half message. `redecide`
/// judges the command again once the half is stored.
pub(super) async fn write_with_half(
    shell: &Arc<Shell>,
    record: TradeRecord,
    redecide: impl Fn(&TradeCore) -> TradeDecision,
) -> Result<TradeReply, TradeError> {
    let mut event = shell
        .core()
        .event_of(&record)
        .expect("only changes that publish come here");
    let tx = shell.next_tx();
    let mut reply = None;
    let mut refusal = None;
    let mut queue = shell.halfmsg().begin(tx, event.message());
    while !queue.is_empty() {
        let mut next = Vec::new();
        for output in queue {
            match output {
                HalfOutput::SendHalf {
                    producer_msg_id,
                    message,
                    ..
                } => next.extend(match send_half(shell, message, producer_msg_id).await {
                    Ok(half) => shell.halfmsg().half_stored(tx, half),
                    Err(e) => {
                        refusal = Some(e);
                        shell.halfmsg().half_failed(tx)
                    }
                }),
                HalfOutput::RunLocal { .. } => {
                    let env = &shell.env;
                    env.buggify.window(Point::HalfToLocal, &env.probes).await;
                    let local = run_local(shell, &event, &redecide);
                    next.extend(match local {
                        Local::Committed(r) => {
                            shell.log.sync().await;
                            reply = Some(r);
                            shell.halfmsg().local_committed(tx)
                        }
                        Local::Moved(other) => {
                            let message = other.message();
                            event = other;
                            shell.halfmsg().local_aborted(tx, Some(message))
                        }
                        Local::Answered(r) => {
                            reply = Some(r);
                            shell.halfmsg().local_aborted(tx, None)
                        }
                    });
                }
                HalfOutput::End { half, commit } => end_transaction(shell, half, commit).await,
                HalfOutput::Finish { outcome, .. } => {
                    return finish(shell, outcome, reply.take(), refusal.take()).await;
                }
                HalfOutput::Answer { .. } => unreachable!("a change's steps are never answers"),
            }
        }
        queue = next;
    }
    unreachable!("the engine finishes every change it begins")
}

/// Judges the change again under the core's lock and writes what it now comes to.
fn run_local(
    shell: &Shell,
    event: &TradeEvent,
    redecide: &impl Fn(&TradeCore) -> TradeDecision,
) -> Local {
    let mut core = shell.core();
    match redecide(&core) {
        TradeDecision::Write(r) if core.event_of(&r).as_ref() == Some(event) => {
            Local::Committed(shell.write(&mut core, r).0)
        }
        TradeDecision::Write(r) => match core.event_of(&r) {
            Some(other) => Local::Moved(other),
            None => Local::Answered(shell.write(&mut core, r).0),
        },
        TradeDecision::Reply(reply) => Local::Answered(reply),
    }
}

async fn finish(
    shell: &Shell,
    outcome: TxOutcome,
    reply: Option<Result<TradeReply, TradeError>>,
    refusal: Option<TradeError>,
) -> Result<TradeReply, TradeError> {
    match outcome {
        TxOutcome::Committed => reply.expect("a committed change has its reply"),
        TxOutcome::Aborted => {
            shell.log.sync().await;
            reply.expect("an aborted change has its answer")
        }
        TxOutcome::HalfNotStored => Err(refusal.expect("a half not stored has its refusal")),
        TxOutcome::GaveUp => Err(TradeError::Unavailable(
            "the trade kept changing under its half messages".into(),
        )),
    }
}

/// Answers the broker's check-back about a half message.
pub(super) fn answer_check(shell: &Shell, check: &CheckBackCall) -> CheckAnswer {
    let id = TradeEvent::decode(&check.payload).ok().map(|e| e.id());
    let out = shell
        .halfmsg()
        .check_back(&check.producer_msg_id, id.as_ref(), &check.payload);
    let [HalfOutput::Answer {
        answer,
        after_restart,
    }] = out[..]
    else {
        unreachable!("a check-back has one answer");
    };
    let probes = &shell.env.probes;
    if after_restart {
        probes.hit(names::TXMSG_COMMITTED_AFTER_RESTART);
    }
    probes.hit(match answer {
        CheckAnswer::Commit => names::TXMSG_CHECK_COMMIT,
        CheckAnswer::Rollback => names::TXMSG_CHECK_ROLLBACK,
        CheckAnswer::Unknown => names::TXMSG_CHECK_UNKNOWN,
    });
    answer
}

/// Stores the event as a half message.
async fn send_half(
    shell: &Shell,
    message: Message,
    producer_msg_id: String,
) -> Result<HalfId, TradeError> {
    let broker = shell.config.messages.expect("mode 2 has a broker").broker;
    let command = BrokerCommand::SendHalf {
        topic: TRADE_EVENTS_TOPIC.to_string(),
        key: message.key,
        payload: message.payload,
        producer_msg_id,
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
/// check-back. A commit first passes the buggify window between the local commit and the
/// message commit, a rollback the one between the local abort and the message rollback.
async fn end_transaction(shell: &Shell, half: HalfId, commit: bool) {
    let env = &shell.env;
    if commit {
        env.buggify
            .window(Point::CommitToMessage, &env.probes)
            .await;
    } else {
        env.probes.hit(names::TXMSG_LOCAL_ABORTED);
        env.buggify.window(Point::AbortToMessage, &env.probes).await;
    }
    let broker = shell.config.messages.expect("mode 2 has a broker").broker;
    let transport = shell.transport.clone();
    madsim::task::spawn(async move {
        let command = BrokerCommand::EndTransaction { half, commit };
        let _ = transport
            .call(broker, BrokerCall(command), END_TIMEOUT)
            .await;
    });
}

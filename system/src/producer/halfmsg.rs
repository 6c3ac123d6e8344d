//! Mode 2, transactional (half) messages, RocketMQ style, as a pure engine.
//!
//! For each change the host wants to publish ([`HalfMsg::begin`]) the engine has the broker
//! store a half message, then asks the host to run its local transaction (the change), and on
//! the host's report commits the half (the change is durable) or rolls it back (the change did
//! not happen; the host may offer another message to try instead, up to [`ATTEMPTS_MAX`]
//! halves per change). Commit and rollback go one way, as RocketMQ's `endTransactionOneway`:
//! if one is lost, or the node crashes before sending it, the broker checks back and the
//! engine answers from the durable state ([`HalfMsg::check_back`]):
//!
//! - the event is durable and is the one the half carries (same payload) → COMMIT;
//! - its local transaction is running → UNKNOWN (ask again). It counts as running from before
//!   its half is sent: the broker may store the half and check back before the half's reply
//!   reaches us (seed 70);
//! - otherwise the local transaction never committed → ROLLBACK.
//!
//! The planted bugs are decided here: `checkback-from-memory` answers from this incarnation's
//! memory of its decisions (a restart empties it); `checkback-defaults-commit` answers COMMIT
//! whenever the event is not durable.

use super::Message;
use crate::broker::{CheckAnswer, HalfId};
use crate::bugs::{Bug, Bugs};
use crate::ids::EventId;
use std::collections::{BTreeMap, BTreeSet};

/// A change re-judged after its half message was stored may offer another message at most
/// this many halves in all before the engine gives up (the caller retries).
pub const ATTEMPTS_MAX: u32 = 3;

/// The host's handle of one change published under half messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxId(pub u64);

/// How a change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxOutcome {
    /// The local transaction committed (durably) and its half is being committed.
    Committed,
    /// The local transaction did not publish; its half is being rolled back.
    Aborted,
    /// The broker did not store the half message: nothing was written.
    HalfNotStored,
    /// The change kept offering other messages; every half was rolled back.
    GaveUp,
}

/// What the host must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HalfOutput {
    /// Store `message` as a half message under `producer_msg_id`, then report
    /// [`HalfMsg::half_stored`] or [`HalfMsg::half_failed`].
    SendHalf {
        tx: TxId,
        producer_msg_id: String,
        message: Message,
    },
    /// The half is stored: run the local transaction (judge the change again, write it, sync)
    /// and report [`HalfMsg::local_committed`] or [`HalfMsg::local_aborted`].
    RunLocal { tx: TxId },
    /// Commit or roll back the half, one way (nobody waits for the answer).
    End { half: HalfId, commit: bool },
    /// The change is over.
    Finish { tx: TxId, outcome: TxOutcome },
    /// The answer to a check-back; `after_restart`: a commit of an event recovered at start,
    /// so the node crashed between its local commit and its message commit.
    Answer {
        answer: CheckAnswer,
        after_restart: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Tx {
    message: Message,
    producer_msg_id: String,
    half: Option<HalfId>,
    attempts: u32,
}

/// The producer's state. Only `durable` matters to a correct check-back, and the host rebuilds
/// it from its log on every start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HalfMsg {
    bugs: Bugs,
    /// Makes producer message ids unique per half message, across restarts.
    incarnation: u64,
    next: u64,
    /// Events known durable, with their payloads: recovered from the log, or whose local
    /// transaction's fsync completed.
    durable: BTreeMap<EventId, String>,
    /// Events recovered at start.
    recovered: BTreeSet<EventId>,
    /// Events whose local transaction is running (from before its half is sent), with how many
    /// changes run for each.
    running: BTreeMap<EventId, u32>,
    /// The planted `checkback-from-memory`'s memory: producer message id → committed locally?
    memory: BTreeMap<String, bool>,
    txs: BTreeMap<TxId, Tx>,
}

impl HalfMsg {
    /// The engine of a node that starts with `durable` events in its log. `incarnation` must
    /// differ between two starts of one node.
    pub fn recovered(
        bugs: Bugs,
        incarnation: u64,
        durable: impl IntoIterator<Item = Message>,
    ) -> HalfMsg {
        let durable: BTreeMap<EventId, String> =
            durable.into_iter().map(|m| (m.id, m.payload)).collect();
        HalfMsg {
            bugs,
            incarnation,
            next: 0,
            recovered: durable.keys().cloned().collect(),
            durable,
            running: BTreeMap::new(),
            memory: BTreeMap::new(),
            txs: BTreeMap::new(),
        }
    }

    /// Ids of the events known durable.
    pub fn durable_ids(&self) -> impl Iterator<Item = &EventId> {
        self.durable.keys()
    }

    /// Publishes the change `tx` announced by `message`: its first half.
    pub fn begin(&mut self, tx: TxId, message: Message) -> Vec<HalfOutput> {
        assert!(!self.txs.contains_key(&tx), "{tx:?} begun twice");
        vec![self.send_half(tx, message, 1)]
    }

    fn send_half(&mut self, tx: TxId, message: Message, attempts: u32) -> HalfOutput {
        self.next += 1;
        let producer_msg_id = format!("{}#{:x}-{}", message.id, self.incarnation, self.next);
        // Running from before the half is sent: the broker may store it and check back before
        // its reply reaches us.
        *self.running.entry(message.id.clone()).or_default() += 1;
        self.txs.insert(
            tx,
            Tx {
                message: message.clone(),
                producer_msg_id: producer_msg_id.clone(),
                half: None,
                attempts,
            },
        );
        HalfOutput::SendHalf {
            tx,
            producer_msg_id,
            message,
        }
    }

    /// The broker stored `tx`'s half as `half`.
    pub fn half_stored(&mut self, tx: TxId, half: HalfId) -> Vec<HalfOutput> {
        let Some(t) = self.txs.get_mut(&tx) else {
            return Vec::new();
        };
        t.half = Some(half);
        vec![HalfOutput::RunLocal { tx }]
    }

    /// The broker did not store `tx`'s half: the change is refused, nothing was written.
    pub fn half_failed(&mut self, tx: TxId) -> Vec<HalfOutput> {
        let Some(t) = self.txs.remove(&tx) else {
            return Vec::new();
        };
        self.finish_running(&t.message.id);
        vec![HalfOutput::Finish {
            tx,
            outcome: TxOutcome::HalfNotStored,
        }]
    }

    /// `tx`'s local transaction committed its message and the commit is durable.
    pub fn local_committed(&mut self, tx: TxId) -> Vec<HalfOutput> {
        let Some(t) = self.txs.remove(&tx) else {
            return Vec::new();
        };
        let half = t
            .half
            .expect("a local transaction runs once its half is stored");
        self.durable.insert(t.message.id.clone(), t.message.payload);
        self.remember(t.producer_msg_id, true);
        self.finish_running(&t.message.id);
        vec![
            HalfOutput::End { half, commit: true },
            HalfOutput::Finish {
                tx,
                outcome: TxOutcome::Committed,
            },
        ]
    }

    /// `tx`'s local transaction did not publish its message; `instead` is another message the
    /// change now publishes (the state moved while the half was stored), if any.
    pub fn local_aborted(&mut self, tx: TxId, instead: Option<Message>) -> Vec<HalfOutput> {
        let Some(t) = self.txs.remove(&tx) else {
            return Vec::new();
        };
        let half = t
            .half
            .expect("a local transaction runs once its half is stored");
        self.remember(t.producer_msg_id, false);
        self.finish_running(&t.message.id);
        let mut out = vec![HalfOutput::End {
            half,
            commit: false,
        }];
        out.push(match instead {
            None => HalfOutput::Finish {
                tx,
                outcome: TxOutcome::Aborted,
            },
            Some(_) if t.attempts >= ATTEMPTS_MAX => HalfOutput::Finish {
                tx,
                outcome: TxOutcome::GaveUp,
            },
            Some(message) => self.send_half(tx, message, t.attempts + 1),
        });
        out
    }

    /// The broker asks about the half `producer_msg_id` carrying `payload`; `event` is the id
    /// the host read from the payload (`None`: not one of its events).
    pub fn check_back(
        &self,
        producer_msg_id: &str,
        event: Option<&EventId>,
        payload: &str,
    ) -> Vec<HalfOutput> {
        let (answer, after_restart) = self.judge(producer_msg_id, event, payload);
        vec![HalfOutput::Answer {
            answer,
            after_restart,
        }]
    }

    fn judge(
        &self,
        producer_msg_id: &str,
        event: Option<&EventId>,
        payload: &str,
    ) -> (CheckAnswer, bool) {
        if self.bugs.is(Bug::CheckbackFromMemory) {
            let answer = match self.memory.get(producer_msg_id) {
                Some(true) => CheckAnswer::Commit,
                Some(false) => CheckAnswer::Rollback,
                None => CheckAnswer::Unknown,
            };
            return (answer, false);
        }
        let Some(id) = event else {
            return (CheckAnswer::Rollback, false);
        };
        if self.durable.get(id).map(String::as_str) == Some(payload) {
            (CheckAnswer::Commit, self.recovered.contains(id))
        } else if self.bugs.is(Bug::CheckbackDefaultsCommit) {
            (CheckAnswer::Commit, false)
        } else if self.running.contains_key(id) {
            (CheckAnswer::Unknown, false)
        } else {
            (CheckAnswer::Rollback, false)
        }
    }

    fn remember(&mut self, producer_msg_id: String, committed: bool) {
        if self.bugs.is(Bug::CheckbackFromMemory) {
            self.memory.insert(producer_msg_id, committed);
        }
    }

    fn finish_running(&mut self, id: &EventId) {
        if let Some(n) = self.running.get_mut(id) {
            *n -= 1;
            if *n == 0 {
                self.running.remove(id);
            }
        }
    }
}

#[cfg(test)]
#[path = "halfmsg_tests.rs"]
mod tests;

//! Liveness: once faults are healed, everything in flight finishes. This checker lists what is
//! still unfinished in an observation, as typed items read from the observed state alone (never
//! from what a node says of itself), so it is the same whatever bug is planted.
//!
//! Two lists, by what the harness does with them:
//!
//! - [`unfinished`]: work a correct platform must finish by itself after healing: a node
//!   still down, a business activity not terminal, a payment order not ended, a trade's pay or
//!   refund attempt still pending, a half message undecided, a consumer group behind on a
//!   queue, a scheduled redelivery, a merchant notification with attempts to go. Left after the
//!   drain horizon, any of these is a liveness failure.
//! - [`settling`]: the unfinished items plus work that may legitimately never finish and that
//!   the at-rest checks judge instead: an outbox row not yet sent. The drain waits for it (a
//!   resender needs the time), but a row still unsent at the horizon is judged by message
//!   completeness (the event never reached its consumers), not by liveness.

use crate::observation::{AttemptStatus, NotificationStatus, Observation};
use std::fmt;

/// One piece of work still in flight.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unfinished {
    /// A serving node is down.
    Down { node: String },
    /// A business activity has not reached a terminal state.
    Activity { node: String, xid: String },
    /// A payment order has not ended.
    Order {
        node: String,
        key: String,
        xid: String,
    },
    /// A trade's pay attempt is still pending (the trade is stuck PAYING).
    Pay {
        trade: String,
        key: String,
        xid: String,
    },
    /// A trade's refund is still pending.
    Refund {
        trade: String,
        out_request_no: String,
        xid: String,
    },
    /// The broker holds a half message undecided.
    Half { half: String, topic: String },
    /// A consumer group has not committed a queue to its end.
    Lag {
        group: String,
        topic: String,
        queue: u32,
        committed: u64,
        end: u64,
    },
    /// The broker has a redelivery scheduled.
    Retry {
        message: String,
        group: String,
        attempt: u32,
    },
    /// A merchant notification has attempts left to make.
    Notification { event: String, attempts: u32 },
    /// A channel order not final, or final without its posting.
    ChannelOrder { instr: String, status: String },
    /// A bank has an instruction PROCESSING.
    BankInstruction { bank: u32, instr: String },
    /// A bank has not delivered a transfer between the platform's reserves.
    Undelivered { bank: u32, instr: String },
    /// Reconciliation has not yet reconciled a bank date on which money moved (it runs once
    /// more at rest, after the last date's statement is out).
    Unreconciled { bank: u32, date: u32 },
    /// An outbox row not yet acknowledged by the broker (settling only, see [`settling`]).
    Unsent { node: String, event: String },
}

impl fmt::Display for Unfinished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unfinished::Down { node } => write!(f, "{node} is down"),
            Unfinished::Activity { node, xid } => write!(f, "{node}: activity {xid}"),
            Unfinished::Order { node, key, xid } => write!(f, "{node}: order {key} ({xid})"),
            Unfinished::Pay { trade, key, xid } => write!(f, "{trade} pay {key} ({xid})"),
            Unfinished::Refund {
                trade,
                out_request_no,
                xid,
            } => write!(f, "{trade} refund {out_request_no} ({xid})"),
            Unfinished::Half { half, topic } => write!(f, "half {half} on {topic} undecided"),
            Unfinished::Lag {
                group,
                topic,
                queue,
                committed,
                end,
            } => write!(
                f,
                "group {group} behind on {topic}:{queue} (committed {committed} of end {end})"
            ),
            Unfinished::Retry {
                message,
                group,
                attempt,
            } => write!(f, "{message} retry {attempt} for {group}"),
            Unfinished::Notification { event, attempts } => {
                write!(f, "notification {event}: attempt {} to go", attempts + 1)
            }
            Unfinished::Unsent { node, event } => write!(f, "{node}: outbox row {event} unsent"),
            Unfinished::ChannelOrder { instr, status } => {
                write!(f, "channel order {instr} {status}")
            }
            Unfinished::BankInstruction { bank, instr } => {
                write!(f, "bank {bank}: instruction {instr} processing")
            }
            Unfinished::Undelivered { bank, instr } => {
                write!(f, "bank {bank}: transfer {instr} not delivered")
            }
            Unfinished::Unreconciled { bank, date } => {
                write!(f, "bank {bank}: date {date} not reconciled")
            }
        }
    }
}

/// Everything a correct platform must still finish by itself (empty at rest).
pub fn unfinished(obs: &Observation) -> Vec<Unfinished> {
    let p = &obs.progress;
    let mut out: Vec<Unfinished> = p
        .down
        .iter()
        .map(|node| Unfinished::Down { node: node.clone() })
        .collect();
    out.extend(
        p.orders
            .iter()
            .filter(|o| !o.ended)
            .map(|o| Unfinished::Order {
                node: o.node.clone(),
                key: o.key.clone(),
                xid: o.xid.clone(),
            }),
    );
    out.extend(
        obs.activities
            .iter()
            .filter(|a| !a.status.is_terminal())
            .map(|a| Unfinished::Activity {
                node: a.node.to_string(),
                xid: a.xid.to_string(),
            }),
    );
    for t in &obs.trades {
        let pending = |s: &AttemptStatus| *s == AttemptStatus::Pending;
        out.extend(
            t.pays
                .iter()
                .filter(|a| pending(&a.status))
                .map(|a| Unfinished::Pay {
                    trade: t.trade.to_string(),
                    key: a.key.to_string(),
                    xid: a.xid.to_string(),
                }),
        );
        out.extend(
            t.refunds
                .iter()
                .filter(|r| pending(&r.status))
                .map(|r| Unfinished::Refund {
                    trade: t.trade.to_string(),
                    out_request_no: r.out_request_no.to_string(),
                    xid: r.xid.to_string(),
                }),
        );
    }
    out.extend(message_layer(obs));
    out.extend(clearing(obs));
    out
}

/// The clearing layer's unfinished items: orders not done, instructions processing.
fn clearing(obs: &Observation) -> Vec<Unfinished> {
    let c = &obs.clearing;
    let orders = c
        .orders
        .iter()
        .filter(|o| !(o.status.is_final() && o.settled));
    let mut out: Vec<Unfinished> = orders
        .map(|o| Unfinished::ChannelOrder {
            instr: o.instr.clone(),
            status: format!("{:?}", o.status).to_uppercase(),
        })
        .collect();
    for b in &c.banks {
        let processing = b
            .instructions
            .iter()
            .filter(|i| i.status == crate::BankStatus::Processing);
        out.extend(processing.map(|i| Unfinished::BankInstruction {
            bank: b.bank,
            instr: i.instr.clone(),
        }));
        out.extend(b.undelivered.iter().map(|i| Unfinished::Undelivered {
            bank: b.bank,
            instr: i.clone(),
        }));
        let next = c.reconciled.get(&b.bank).copied().unwrap_or(0);
        if let Some(date) = b.last_date.filter(|d| *d >= next) {
            out.push(Unfinished::Unreconciled { bank: b.bank, date });
        }
    }
    out
}

/// The message layer's unfinished items: halves, lag, retries, notifications.
fn message_layer(obs: &Observation) -> Vec<Unfinished> {
    let p = &obs.progress;
    let halves = p.halves.iter().map(|h| Unfinished::Half {
        half: h.half.clone(),
        topic: h.topic.clone(),
    });
    let lag = p.lag.iter().map(|l| Unfinished::Lag {
        group: l.group.clone(),
        topic: l.topic.clone(),
        queue: l.queue,
        committed: l.committed,
        end: l.end,
    });
    let retries = p.retries.iter().map(|r| Unfinished::Retry {
        message: r.message.clone(),
        group: r.group.clone(),
        attempt: r.attempt,
    });
    let notifications = obs
        .messages
        .notifications
        .values()
        .filter(|n| n.status == NotificationStatus::Pending)
        .map(|n| Unfinished::Notification {
            event: n.event.clone(),
            attempts: n.attempts,
        });
    halves
        .chain(lag)
        .chain(retries)
        .chain(notifications)
        .collect()
}

/// The unfinished items plus the work the drain also waits for but does not judge: outbox
/// rows not yet sent.
pub fn settling(obs: &Observation) -> Vec<Unfinished> {
    let mut out = unfinished(obs);
    out.extend(obs.progress.unsent.iter().map(|u| Unfinished::Unsent {
        node: u.node.clone(),
        event: u.event.clone(),
    }));
    out
}

#[cfg(test)]
#[path = "liveness_tests.rs"]
mod tests;

//! Mode 1, the local message table (outbox) as a pure engine.
//!
//! The host writes an event's row in the same record as the change it announces and tells the
//! engine ([`Outbox::appended`]); once that record's fsync has completed it says so
//! ([`Outbox::durable`]) and the engine relays the row, once. A row is sendable only when it is
//! durable: publishing a row whose record a crash can still lose would announce a change that
//! never happened (issue 17's resender defect). On the broker's acknowledgement the engine asks
//! the host to mark the row sent; every [`RESEND_INTERVAL`] the host ticks the resender, which
//! sends every durable row still unsent and not in flight, including the rows found unsent at
//! start. The broker deduplicates by the event id (the producer message id), so a resend after
//! a lost acknowledgement is harmless.
//!
//! The planted `outbox-no-resender` is decided here: the relay still runs, the resender never
//! sends.

use super::Message;
use crate::bugs::{Bug, Bugs};
use crate::ids::EventId;
use std::collections::BTreeMap;
use std::time::Duration;

/// How often the host ticks the resender.
pub const RESEND_INTERVAL: Duration = Duration::from_millis(300);

/// Why a row is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Once, right after its change became durable.
    Relay,
    /// By the resender's scan.
    Resend,
    /// By the resender's scan, a row already unsent when the node started: a crash came
    /// between its commit and its relay.
    ResendAfterRestart,
}

/// What the host must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxOutput {
    /// Send the row to the broker and report [`Outbox::acked`] or [`Outbox::failed`].
    Send { message: Message, origin: Origin },
    /// The broker acknowledged the row: record it as sent (it need not be synced: a mark lost
    /// in a crash only makes the row go out again, and the broker recognises it).
    MarkSent { id: EventId, origin: Origin },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    message: Message,
    /// Its record's fsync completed (always true for a row recovered from the log).
    durable: bool,
    /// Found unsent at start.
    recovered: bool,
    /// Sent and not yet answered: why.
    in_flight: Option<Origin>,
}

/// The outbox's state: the unsent rows this incarnation knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbox {
    rows: BTreeMap<EventId, Row>,
    resender: bool,
}

impl Outbox {
    /// The engine of a node that starts with `unsent` rows in its table (read from the durable
    /// log, so durable).
    pub fn recovered(bugs: Bugs, unsent: impl IntoIterator<Item = Message>) -> Outbox {
        let rows = unsent
            .into_iter()
            .map(|message| {
                let row = Row {
                    message,
                    durable: true,
                    recovered: true,
                    in_flight: None,
                };
                (row.message.id.clone(), row)
            })
            .collect();
        Outbox {
            rows,
            resender: !bugs.is(Bug::OutboxNoResender),
        }
    }

    /// The host appended a record carrying `message`'s row; not sendable until durable.
    pub fn appended(&mut self, message: Message) -> Vec<OutboxOutput> {
        let row = Row {
            message,
            durable: false,
            recovered: false,
            in_flight: None,
        };
        self.rows.entry(row.message.id.clone()).or_insert(row);
        Vec::new()
    }

    /// The records carrying rows `ids` are durable: relay each row, once.
    pub fn durable(&mut self, ids: &[EventId]) -> Vec<OutboxOutput> {
        let mut out = Vec::new();
        for id in ids {
            let Some(row) = self.rows.get_mut(id) else {
                continue;
            };
            if row.durable {
                continue;
            }
            row.durable = true;
            if row.in_flight.is_none() {
                row.in_flight = Some(Origin::Relay);
                out.push(OutboxOutput::Send {
                    message: row.message.clone(),
                    origin: Origin::Relay,
                });
            }
        }
        out
    }

    /// The resender's timer fired: send every durable row that is unsent and not in flight.
    pub fn tick(&mut self) -> Vec<OutboxOutput> {
        if !self.resender {
            return Vec::new();
        }
        let mut out = Vec::new();
        for row in self.rows.values_mut() {
            if !row.durable || row.in_flight.is_some() {
                continue;
            }
            let origin = if row.recovered {
                Origin::ResendAfterRestart
            } else {
                Origin::Resend
            };
            row.in_flight = Some(origin);
            out.push(OutboxOutput::Send {
                message: row.message.clone(),
                origin,
            });
        }
        out
    }

    /// The broker acknowledged row `id`: mark it sent (once, however many acknowledgements
    /// arrive).
    pub fn acked(&mut self, id: &EventId) -> Vec<OutboxOutput> {
        match self.rows.remove(id) {
            Some(row) => vec![OutboxOutput::MarkSent {
                id: id.clone(),
                origin: row.in_flight.unwrap_or(Origin::Resend),
            }],
            None => Vec::new(),
        }
    }

    /// The send of row `id` failed or timed out: the row stays unsent, for the resender.
    pub fn failed(&mut self, id: &EventId) -> Vec<OutboxOutput> {
        if let Some(row) = self.rows.get_mut(id) {
            row.in_flight = None;
        }
        Vec::new()
    }

    /// Rows the resender will still send, all unsent rows when a resender runs. A node without
    /// one never sends a row whose relay failed: that row is lost, not pending, and message
    /// completeness says so.
    pub fn pending(&self) -> impl Iterator<Item = &EventId> {
        self.rows.keys().filter(|_| self.resender)
    }

    /// Every row not yet acknowledged, durable or not.
    pub fn unsent(&self) -> impl Iterator<Item = &EventId> {
        self.rows.keys()
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;

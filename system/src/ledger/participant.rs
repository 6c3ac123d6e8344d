//! The seam between the ledger and the consistency strategies: a strategy's participant on a
//! shard is a pure sub-state machine the core hosts behind [`LedgerParticipant`], and its
//! records reach the shard's log through one record variant, [`LedgerRecord::Participant`].
//!
//! The core decides the books' own commands (open, post, post a movement's step, freeze) and
//! hands every other command to its participants in turn; the one that owns the command
//! decides it against the books, and later applies its record to its own state and the books.
//! Each participant lives in its strategy's folder: [`crate::tcc::participant`] (fence rows,
//! reservations and, under `2pc`, locks) and [`crate::outbox::participant`] (the outbox's
//! credit rows, and the `txmsg` check-back's settlement).

use super::books::{Books, Decision, Outcome};
use super::core::LedgerRecord;
use super::types::LedgerCommand;
use crate::outbox::participant::OutboxRecord;
use crate::tcc::participant::TccRecord;
use serde::{Deserialize, Serialize};

/// A strategy's participant on one ledger shard.
pub trait LedgerParticipant {
    /// The participant's own durable changes.
    type Record: Into<ParticipantRecord>;

    /// What `command` means against the participant's state and the books, or `None` when
    /// the command is not the participant's. A participant writes either its own record or
    /// one of the books' (a refusal, say); it changes nothing here.
    fn decide(&self, command: &LedgerCommand, books: &Books, now_ms: u64) -> Option<Decision>;

    /// Applies one of its records to its own state and the books (also on replay), and
    /// returns the reply the record stands for.
    fn apply(&mut self, record: Self::Record, books: &mut Books) -> Outcome;
}

/// The participants' records, as the shard's log holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParticipantRecord {
    Tcc(TccRecord),
    Outbox(OutboxRecord),
}

impl From<TccRecord> for ParticipantRecord {
    fn from(record: TccRecord) -> Self {
        ParticipantRecord::Tcc(record)
    }
}

impl From<OutboxRecord> for ParticipantRecord {
    fn from(record: OutboxRecord) -> Self {
        ParticipantRecord::Outbox(record)
    }
}

/// A participant that writes no record of its own.
impl From<std::convert::Infallible> for ParticipantRecord {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// A participant's record as a decision to write it.
pub fn write<R: Into<ParticipantRecord>>(record: R) -> Decision {
    Decision::Write(LedgerRecord::Participant(record.into()))
}

//! The ledger shard's deterministic core: state and decisions, no clock, no I/O.
//!
//! The node shell asks [`LedgerCore::decide`] what a command means. The answer is either an
//! immediate reply (an idempotent repeat, or a refusal that needs no record) or a
//! [`LedgerRecord`] to make durable; the shell appends it and [`LedgerCore::apply`]s it, and the
//! same `apply` rebuilds the state from the log after a crash. So the log is the truth and the
//! in-memory state is its fold.
//!
//! The core is the shard's [`Books`] plus the strategies' participants, hosted behind
//! [`LedgerParticipant`]: the books decide their own commands, every other command goes to the
//! participant that owns it, and a participant's records come back through
//! [`LedgerRecord::Participant`].

use super::books::Books;
use super::books::{Decision, Outcome};
use super::changes::LedgerChanges;
use super::participant::{LedgerParticipant, ParticipantRecord};
use super::types::*;
use crate::bugs::Bugs;
use crate::ids::{AccountId, ShardId};
use crate::outbox::participant::{OutboxParticipant, TxmsgParticipant};
use crate::tcc::participant::TccParticipant;
use serde::{Deserialize, Serialize};

/// One durable change to a shard. The log is a sequence of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerRecord {
    Opened {
        account: AccountId,
        subject: Subject,
    },
    Posted(Voucher),
    /// A durable refusal of a post, so that a retry of the same request gets the same answer.
    PostRefused {
        request: crate::ids::RequestId,
        /// The fingerprint of the refused legs ([`super::books::legs_fingerprint`]).
        body: u64,
        error: LedgerError,
    },
    /// A durable refusal of a freeze, likewise.
    FreezeRefused {
        key: String,
        error: LedgerError,
    },
    Frozen {
        key: String,
        account: AccountId,
        amount: crate::money::Amount,
    },
    Unfrozen {
        key: String,
    },
    /// A strategy participant's own change (its state and, through the books, balances).
    Participant(ParticipantRecord),
}

/// One ledger shard's state: its books and the participants it hosts.
#[derive(Debug, Clone)]
pub struct LedgerCore {
    books: Books,
    tcc: TccParticipant,
    outbox: OutboxParticipant,
    txmsg: TxmsgParticipant,
}

impl LedgerCore {
    /// An empty shard holding only its sub-account of the world and its transit account.
    pub fn new(shard: ShardId, shards: u32, bugs: Bugs) -> Self {
        LedgerCore {
            books: Books::new(shard, shards, bugs),
            tcc: TccParticipant::default(),
            outbox: OutboxParticipant::default(),
            txmsg: TxmsgParticipant,
        }
    }

    /// Rebuilds a shard by applying its log from the start.
    pub fn recover(shard: ShardId, shards: u32, bugs: Bugs, records: &[LedgerRecord]) -> Self {
        LedgerCore::new(shard, shards, bugs).replay(records)
    }

    /// Applies a log from the start to this (empty) shard.
    pub fn replay(mut self, records: &[LedgerRecord]) -> Self {
        for record in records {
            // Outcomes were returned when first applied; replay only rebuilds the state.
            let _ = self.apply(record.clone());
        }
        self
    }

    /// Opens this shard's sub-accounts of the clearing accounts of `banks` banks.
    pub fn with_clearing(mut self, banks: u32) -> Self {
        self.books.open_clearing(banks);
        self
    }

    /// The shard with its TCC participant fenced or not (`tcc-nofence`).
    pub fn with_fence(mut self, fenced: bool) -> Self {
        self.tcc = TccParticipant::new(fenced, self.tcc.locking());
        self
    }

    /// The shard with prepared branches locking their accounts or not (`2pc`).
    pub fn with_locks(mut self, locking: bool) -> Self {
        self.tcc = TccParticipant::new(self.tcc.fenced(), locking);
        self
    }

    pub fn books(&self) -> &Books {
        &self.books
    }
    /// The TCC (and 2PC) participant: fence rows, reservations, locks.
    pub fn tcc(&self) -> &TccParticipant {
        &self.tcc
    }
    /// The outbox participant: the credit rows not yet acknowledged.
    pub fn outbox(&self) -> &OutboxParticipant {
        &self.outbox
    }

    pub fn shard(&self) -> ShardId {
        self.books.shard()
    }
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.books.accounts()
    }
    pub fn account(&self, id: AccountId) -> Option<&Account> {
        self.books.account(id)
    }
    pub fn freezes(&self) -> impl Iterator<Item = &Freeze> {
        self.books.freezes()
    }
    pub fn freeze(&self, key: &str) -> Option<&Freeze> {
        self.books.freeze(key)
    }
    pub fn vouchers(&self) -> &[Voucher] {
        self.books.vouchers()
    }
    pub fn journal(&self) -> &[JournalEntry] {
        self.books.journal()
    }

    /// What changed since the last call (or since the shard was built), and starts afresh: the
    /// harness's incremental capture. Changes nothing the platform reads.
    pub fn take_changes(&mut self) -> LedgerChanges {
        self.books.take_changes()
    }

    /// Decides what `command` means against the current state (the run's planted bug, if
    /// any, is the one the shard was built with).
    pub fn decide(&self, command: &LedgerCommand, now_ms: u64) -> Decision {
        let books = &self.books;
        match command {
            LedgerCommand::OpenAccount { account, subject } => {
                books.decide_open(*account, *subject)
            }
            LedgerCommand::Post { request, legs } => books.decide_post(request, legs, None, now_ms),
            LedgerCommand::PostStep {
                xid,
                step,
                request,
                legs,
            } => books.decide_post(request, legs, Some((xid, *step)), now_ms),
            LedgerCommand::Freeze {
                key,
                account,
                amount,
            } => books.decide_freeze(key, *account, *amount),
            LedgerCommand::Unfreeze { key } => books.decide_unfreeze(key),
            other => self.participant_decides(other, now_ms),
        }
    }

    /// A strategy's command, decided by the participant that owns it.
    fn participant_decides(&self, command: &LedgerCommand, now_ms: u64) -> Decision {
        let books = &self.books;
        self.tcc
            .decide(command, books, now_ms)
            .or_else(|| self.outbox.decide(command, books, now_ms))
            .or_else(|| self.txmsg.decide(command, books, now_ms))
            .unwrap_or_else(|| panic!("no participant owns {}", command.name()))
    }

    /// Applies one durable record and returns the reply it stands for.
    pub fn apply(&mut self, record: LedgerRecord) -> Outcome {
        let books = &mut self.books;
        match record {
            LedgerRecord::Opened { account, subject } => books.apply_open(account, subject),
            LedgerRecord::Posted(voucher) => books.apply_post(voucher),
            LedgerRecord::PostRefused {
                request,
                body,
                error,
            } => books.apply_post_refused(request, body, error),
            LedgerRecord::FreezeRefused { key, error } => books.apply_freeze_refused(key, error),
            LedgerRecord::Frozen {
                key,
                account,
                amount,
            } => books.apply_frozen(key, account, amount),
            LedgerRecord::Unfrozen { key } => books.apply_unfrozen(&key),
            LedgerRecord::Participant(ParticipantRecord::Tcc(r)) => self.tcc.apply(r, books),
            LedgerRecord::Participant(ParticipantRecord::Outbox(r)) => self.outbox.apply(r, books),
        }
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;

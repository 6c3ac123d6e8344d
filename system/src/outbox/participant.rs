//! The ledger side of the message-based strategies on a shard.
//!
//! - [`OutboxParticipant`] (`outbox`): the debit voucher and its credit's row in one record
//!   (`PostWithRow`), the rows the broker has not acknowledged yet, and the relay's marks
//!   (`RowsSent`). The shell's relay (`ledger/credits.rs`) sends what is unsent.
//! - [`TxmsgParticipant`] (`txmsg`): the check-back's settlement of a debit's request
//!   (`SettleRequest`): its first outcome, or a durable refusal so that it can never be
//!   posted later. It keeps no state of its own; the refusal is one of the books' records.

use crate::ids::Xid;
use crate::ledger::participant::{write, LedgerParticipant};
use crate::ledger::{
    Books, CreditRow, Decision, LedgerCommand, LedgerError, LedgerRecord, LedgerReply, Outcome,
    Voucher,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The outbox participant's durable changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboxRecord {
    /// The local transaction: the debit voucher and its credit's row.
    PostedWithRow { voucher: Voucher, row: CreditRow },
    /// The broker acknowledged these rows (not synced: a lost mark sends a row again, which
    /// the broker and the consumer recognise).
    RowsSent { xids: Vec<Xid> },
}

/// One shard's outbox: the credit rows not yet acknowledged, by xid.
#[derive(Debug, Clone, Default)]
pub struct OutboxParticipant {
    unsent: BTreeMap<Xid, CreditRow>,
}

impl OutboxParticipant {
    /// The credit rows not yet acknowledged by the broker (the relay's and the resender's).
    pub fn unsent_rows(&self) -> impl Iterator<Item = &CreditRow> {
        self.unsent.values()
    }
}

impl LedgerParticipant for OutboxParticipant {
    type Record = OutboxRecord;

    fn decide(&self, command: &LedgerCommand, books: &Books, now_ms: u64) -> Option<Decision> {
        let LedgerCommand::PostWithRow {
            xid,
            step,
            request,
            legs,
            row,
        } = command
        else {
            return None;
        };
        // A refusal, or a repeat's first answer, is the books' own; only a fresh debit
        // carries the row.
        Some(
            match books.decide_post(request, legs, Some((xid, *step)), now_ms) {
                Decision::Write(LedgerRecord::Posted(voucher)) => {
                    write(OutboxRecord::PostedWithRow {
                        voucher,
                        row: row.clone(),
                    })
                }
                other => other,
            },
        )
    }

    fn apply(&mut self, record: OutboxRecord, books: &mut Books) -> Outcome {
        match record {
            OutboxRecord::PostedWithRow { voucher, row } => {
                self.unsent.insert(row.xid.clone(), row);
                books.apply_post(voucher)
            }
            OutboxRecord::RowsSent { xids } => {
                for xid in &xids {
                    self.unsent.remove(xid);
                }
                // The mark answers nobody (the relay writes it): any reply will do.
                Ok(LedgerReply::Posted {
                    voucher: books.next_voucher(),
                })
            }
        }
    }
}

/// The `txmsg` check-back's side on a shard (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct TxmsgParticipant;

impl LedgerParticipant for TxmsgParticipant {
    /// It writes only the books' own records.
    type Record = std::convert::Infallible;

    fn decide(&self, command: &LedgerCommand, books: &Books, _now_ms: u64) -> Option<Decision> {
        let LedgerCommand::SettleRequest { request, legs } = command else {
            return None;
        };
        Some(match books.post_outcome(request) {
            Some(outcome) => Decision::Reply(outcome.clone()),
            None => {
                let settled = LedgerError::Settled(request.to_string());
                Decision::Write(books.refusal(request, legs, settled))
            }
        })
    }

    fn apply(&mut self, record: Self::Record, _books: &mut Books) -> Outcome {
        match record {}
    }
}

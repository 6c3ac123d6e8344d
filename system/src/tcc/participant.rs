//! The TCC participant on a ledger shard: Try reserves, Confirm posts through the shard's
//! transit account, Cancel releases, each with its fence row ([`super::fence`]) in the same
//! record. Unfenced under `tcc-nofence`; locking under `2pc`, where a prepared branch holds
//! its account against every other branch's Try until its decision arrives.

use super::fence::{BranchKey, FenceDecision, FenceState, Fences};
use crate::bugs::{Bug, Bugs, Check};
use crate::ids::{AccountId, RequestId};
use crate::ledger::participant::{write, LedgerParticipant};
use crate::ledger::{
    Books, Decision, LedgerCommand, LedgerError, LedgerReply, Leg, Outcome, Voucher,
};
use crate::movement::{LegAction, Step};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The TCC participant's durable changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TccRecord {
    /// Try: the fence row TRIED and the reservation, in one record.
    Tried {
        branch: BranchKey,
        action: LegAction,
    },
    /// Confirm: the fence row COMMITTED, the reservation consumed and the voucher posted.
    Confirmed { branch: BranchKey, voucher: Voucher },
    /// Cancel after a Try: the fence row ROLLED_BACK and the reservation released.
    Cancelled { branch: BranchKey },
    /// Cancel without a Try (empty rollback): the fence row SUSPENDED, which makes a late
    /// Try fail (anti-hanging).
    Suspended { branch: BranchKey },
}

/// One shard's TCC participant.
#[derive(Debug, Clone)]
pub struct TccParticipant {
    /// Fence rows, one per (xid, branch) this shard has seen.
    fences: Fences,
    /// Every branch ever tried here, with its action (kept after phase two).
    branches: BTreeMap<BranchKey, LegAction>,
    /// Reservations of branches tried and not yet confirmed or cancelled.
    holds: BTreeMap<BranchKey, LegAction>,
    /// Whether empty rollbacks leave fence rows (Seata's `useTCCFence`); without them a late
    /// Try after its Cancel reserves for ever.
    fenced: bool,
    /// Whether a tried (prepared) branch locks its account against other branches' Tries
    /// until it is confirmed or cancelled (the `2pc` strategy's participants).
    locking: bool,
}

impl Default for TccParticipant {
    fn default() -> Self {
        TccParticipant::new(true, false)
    }
}

impl TccParticipant {
    pub fn new(fenced: bool, locking: bool) -> Self {
        TccParticipant {
            fences: Fences::default(),
            branches: BTreeMap::new(),
            holds: BTreeMap::new(),
            fenced,
            locking,
        }
    }

    pub fn fenced(&self) -> bool {
        self.fenced
    }
    /// Whether prepared branches lock their accounts here.
    pub fn locking(&self) -> bool {
        self.locking
    }
    pub fn fences(&self) -> &Fences {
        &self.fences
    }
    /// Reservations of branches tried and not yet confirmed or cancelled.
    pub fn holds(&self) -> impl Iterator<Item = (&BranchKey, &LegAction)> {
        self.holds.iter()
    }
    /// The reservation of one branch, if it is held.
    pub fn hold(&self, branch: &BranchKey) -> Option<&LegAction> {
        self.holds.get(branch)
    }
    /// What branch `branch` does here, if it was ever tried.
    pub fn branch(&self, branch: &BranchKey) -> Option<&LegAction> {
        self.branches.get(branch)
    }

    /// The branch other than `branch` holding `account` locked, if any (only when locking).
    /// The planted bug lets a prepared credit hold no lock.
    fn locked_by(&self, account: AccountId, branch: &BranchKey, bugs: Bugs) -> Option<&BranchKey> {
        if !self.locking {
            return None;
        }
        let unlocked = |a: &LegAction| {
            bugs.is(Bug::TwoPcLockIgnoresCredits) && matches!(a, LegAction::Credit { .. })
        };
        let held = self.holds.iter();
        held.filter(|(k, a)| *k != branch && a.account() == account && !unlocked(a))
            .map(|(k, _)| k)
            .next()
    }
}

impl LedgerParticipant for TccParticipant {
    type Record = TccRecord;

    fn decide(&self, command: &LedgerCommand, books: &Books, now_ms: u64) -> Option<Decision> {
        Some(match command {
            LedgerCommand::TccTry { branch, action } => self.decide_try(branch, action, books),
            LedgerCommand::TccConfirm { branch } => self.decide_confirm(branch, books, now_ms),
            LedgerCommand::TccCancel { branch } => self.decide_cancel(branch, books),
            _ => return None,
        })
    }

    fn apply(&mut self, record: TccRecord, books: &mut Books) -> Outcome {
        match record {
            TccRecord::Tried { branch, action } => self.apply_tried(branch, action, books),
            TccRecord::Confirmed { branch, voucher } => {
                self.apply_confirmed(branch, voucher, books)
            }
            TccRecord::Cancelled { branch } => self.apply_cancelled(branch, books),
            TccRecord::Suspended { branch } => {
                self.fences.set(branch, FenceState::Suspended);
                Ok(LedgerReply::Cancelled)
            }
        }
    }
}

/// Decisions.
impl TccParticipant {
    /// Try: the fence first (a branch already cancelled must not reserve: anti-hanging), then
    /// the business check. A refused Try writes nothing, as Seata rolls back the fence insert
    /// with the failed local transaction; its Cancel will then be an empty rollback.
    fn decide_try(&self, branch: &BranchKey, action: &LegAction, books: &Books) -> Decision {
        match self.fences.try_(branch) {
            FenceDecision::Refuse(refusal) => Decision::Reply(Err(LedgerError::Fence(refusal))),
            FenceDecision::AlreadyDone => Decision::Reply(match self.branches.get(branch) {
                Some(tried) if tried == action => Ok(LedgerReply::Tried),
                _ => Err(LedgerError::BranchReused(branch.to_string())),
            }),
            FenceDecision::Apply(_) | FenceDecision::Record(_) => {
                match self.validate_try(branch, action, books) {
                    Ok(()) => write(TccRecord::Tried {
                        branch: branch.clone(),
                        action: *action,
                    }),
                    Err(e) => Decision::Reply(Err(e)),
                }
            }
        }
    }

    fn validate_try(
        &self,
        branch: &BranchKey,
        action: &LegAction,
        books: &Books,
    ) -> Result<(), LedgerError> {
        let account = action.account();
        books.check_home(account)?;
        if let Some(by) = self.locked_by(account, branch, books.bugs()) {
            let by = by.to_string();
            return Err(LedgerError::Locked { account, by });
        }
        let a = books
            .account(account)
            .ok_or(LedgerError::UnknownAccount(account))?;
        if let LegAction::Debit { amount, .. } = action {
            if a.available < amount.value() {
                return Err(LedgerError::InsufficientFunds {
                    account,
                    available: a.available.to_string(),
                    needed: amount.to_string(),
                });
            }
        }
        Ok(())
    }

    fn decide_confirm(&self, branch: &BranchKey, books: &Books, now_ms: u64) -> Decision {
        match self.fences.confirm(branch) {
            FenceDecision::Refuse(refusal) => Decision::Reply(Err(LedgerError::Fence(refusal))),
            // The planted bug posts a repeated Confirm again.
            FenceDecision::AlreadyDone if books.bugs().is(Bug::TccConfirmNotIdempotent) => {
                write(self.confirmation(branch, books, now_ms))
            }
            FenceDecision::AlreadyDone => Decision::Reply(Ok(LedgerReply::Confirmed)),
            FenceDecision::Apply(_) | FenceDecision::Record(_) => {
                write(self.confirmation(branch, books, now_ms))
            }
        }
    }

    /// The record of a Confirm: the branch's voucher through this shard's transit account.
    fn confirmation(&self, branch: &BranchKey, books: &Books, now_ms: u64) -> TccRecord {
        let action = self.branches[branch];
        let transit = AccountId::transit(books.shard(), books.shards());
        let legs = match action {
            LegAction::Debit { account, amount } => {
                vec![Leg::debit(account, amount), Leg::credit(transit, amount)]
            }
            LegAction::Credit { account, amount } => {
                vec![Leg::debit(transit, amount), Leg::credit(account, amount)]
            }
        };
        TccRecord::Confirmed {
            branch: branch.clone(),
            voucher: Voucher {
                id: books.next_voucher(),
                request: RequestId::new(compact_str::format_compact!(
                    "tcc:{}:{}",
                    branch.xid,
                    branch.branch
                )),
                legs,
                posted_ms: now_ms,
                xid: Some(branch.xid.clone()),
                step: Some(Step::of(branch.branch)),
            },
        }
    }

    fn decide_cancel(&self, branch: &BranchKey, books: &Books) -> Decision {
        let bugs = books.bugs();
        let record = match self.fences.cancel(branch) {
            FenceDecision::Refuse(refusal) => {
                return Decision::Reply(Err(LedgerError::Fence(refusal)))
            }
            // The planted bug releases a repeated Cancel's reservation again.
            FenceDecision::AlreadyDone
                if bugs.is(Bug::TccCancelNotIdempotent) && self.branches.contains_key(branch) =>
            {
                TccRecord::Cancelled {
                    branch: branch.clone(),
                }
            }
            FenceDecision::AlreadyDone => return Decision::Reply(Ok(LedgerReply::Cancelled)),
            // Without the fence (the strategy `tcc-nofence`, or the planted bug), an empty
            // rollback leaves no trace for a late Try to trip on.
            FenceDecision::Record(_) if bugs.is(Bug::TccNoFence) || !self.fenced => {
                return Decision::Reply(Ok(LedgerReply::Cancelled))
            }
            FenceDecision::Record(_) => TccRecord::Suspended {
                branch: branch.clone(),
            },
            FenceDecision::Apply(_) => TccRecord::Cancelled {
                branch: branch.clone(),
            },
        };
        write(record)
    }
}

/// Effects.
impl TccParticipant {
    /// Try: the fence row TRIED and the reservation (a debit's money frozen; a credit only
    /// remembered, in no balance yet).
    fn apply_tried(&mut self, branch: BranchKey, action: LegAction, books: &mut Books) -> Outcome {
        self.fences.set(branch.clone(), FenceState::Tried);
        if let LegAction::Debit { account, amount } = action {
            let checked = !books.bugs().relaxes(Check::NonNegative);
            books.reserve(account, amount, checked);
        }
        self.branches.insert(branch.clone(), action);
        books.note_hold(&branch);
        self.holds.insert(branch, action);
        Ok(LedgerReply::Tried)
    }

    /// Confirm: the fence row COMMITTED, the reservation consumed, the voucher posted.
    fn apply_confirmed(
        &mut self,
        branch: BranchKey,
        voucher: Voucher,
        books: &mut Books,
    ) -> Outcome {
        self.write_fence(branch.clone(), FenceState::Committed, books);
        if let Some(action) = self.holds.remove(&branch) {
            books.note_hold(&branch);
            release(action, books);
        }
        books.apply_post(voucher).map(|_| LedgerReply::Confirmed)
    }

    /// Cancel after a Try: the fence row ROLLED_BACK and the reservation released.
    fn apply_cancelled(&mut self, branch: BranchKey, books: &mut Books) -> Outcome {
        let repeat = self.fences.get(&branch) == Some(FenceState::RolledBack);
        self.write_fence(branch.clone(), FenceState::RolledBack, books);
        let held = self.holds.remove(&branch);
        books.note_hold(&branch);
        // A repeat only reaches here through the planted bug: it releases again.
        if let Some(action) = held.or_else(|| repeat.then(|| self.branches[&branch])) {
            release(action, books);
        }
        Ok(LedgerReply::Cancelled)
    }

    /// Writes a fence row. A repeat of the same state only comes from a planted bug that
    /// relaxes [`Check::PhaseTwoIdempotent`]; for every other run the transition is asserted.
    fn write_fence(&mut self, branch: BranchKey, state: FenceState, books: &Books) {
        let repeat = self.fences.get(&branch) == Some(state);
        if repeat && books.bugs().relaxes(Check::PhaseTwoIdempotent) {
            self.fences.force(branch, state);
        } else {
            self.fences.set(branch, state);
        }
    }
}

/// Gives a branch's reservation back: a debit's frozen money becomes available again; a
/// prepared credit was in no balance and simply disappears.
fn release(action: LegAction, books: &mut Books) {
    if let LegAction::Debit { account, amount } = action {
        let checked = !books.bugs().relaxes(Check::NonNegative);
        books.release(account, amount, checked);
    }
}

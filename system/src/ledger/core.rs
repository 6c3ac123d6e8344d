//! The ledger shard's deterministic core: state and decisions, no clock, no I/O.
//!
//! The node shell asks [`LedgerCore::decide`] what a command means. The answer is either an
//! immediate reply (an idempotent repeat, or a refusal that needs no record) or a
//! [`LedgerRecord`] to make durable; the shell appends it and [`LedgerCore::apply`]s it, and the
//! same `apply` rebuilds the state from the log after a crash. So the log is the truth and the
//! in-memory state is its fold.

use super::changes::LedgerChanges;
use super::fence::{BranchKey, FenceDecision, FenceState, Fences};
use super::types::*;
use crate::bugs::{Bug, Bugs, Check};
use crate::ids::{AccountId, RequestId, ShardId, VoucherId, Xid};
use crate::money::{zero, Amount};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
        request: RequestId,
        /// The fingerprint of the refused legs ([`legs_fingerprint`]).
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
        amount: Amount,
    },
    Unfrozen {
        key: String,
    },
    /// TCC Try: the fence row TRIED and the reservation, in one record.
    TccTried {
        branch: BranchKey,
        action: LegAction,
    },
    /// TCC Confirm: the fence row COMMITTED, the reservation consumed and the voucher posted.
    TccConfirmed {
        branch: BranchKey,
        voucher: Voucher,
    },
    /// TCC Cancel after a Try: the fence row ROLLED_BACK and the reservation released.
    TccCancelled {
        branch: BranchKey,
    },
    /// TCC Cancel without a Try (empty rollback): the fence row SUSPENDED, which makes a late
    /// Try fail (anti-hanging).
    TccSuspended {
        branch: BranchKey,
    },
    /// The `outbox` strategy's local transaction: the debit voucher and its credit's row.
    PostedWithRow {
        voucher: Voucher,
        row: CreditRow,
    },
    /// The broker acknowledged these rows (not synced: a lost mark sends a row again, which
    /// the broker and the consumer recognise).
    RowsSent {
        xids: Vec<crate::ids::Xid>,
    },
}

/// What the shell must do with a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Reply at once; nothing to write.
    Reply(Result<LedgerReply, LedgerError>),
    /// Append this record, apply it, and reply with what `apply` returns once it is durable.
    Write(LedgerRecord),
}

/// The outcome remembered per idempotency key.
type Outcome = Result<LedgerReply, LedgerError>;

/// One ledger shard's state.
#[derive(Debug, Clone)]
pub struct LedgerCore {
    shard: ShardId,
    shards: u32,
    accounts: BTreeMap<AccountId, Account>,
    freezes: BTreeMap<String, Freeze>,
    vouchers: Vec<Voucher>,
    journal: Vec<JournalEntry>,
    /// Idempotency: the first outcome of every post, by request id, with the fingerprint of
    /// the legs it was asked with (a repeat with other legs is refused, not answered).
    posts: BTreeMap<RequestId, (u64, Outcome)>,
    /// Idempotency: the first outcome of every freeze, by freeze key.
    freeze_outcomes: BTreeMap<String, Outcome>,
    /// TCC fence rows, one per (xid, branch) this shard has seen.
    fences: Fences,
    /// Every branch ever tried here, with its action (kept after phase two).
    branches: BTreeMap<BranchKey, LegAction>,
    /// Reservations of branches tried and not yet confirmed or cancelled.
    holds: BTreeMap<BranchKey, LegAction>,
    /// Whether the TCC participant keeps fence rows for empty rollbacks (Seata's
    /// `useTCCFence`); without them a late Try after its Cancel reserves for ever.
    fenced: bool,
    /// Whether a tried (prepared) branch locks its account against other branches' Tries
    /// until it is confirmed or cancelled (the `2pc` strategy's participants).
    locking: bool,
    /// The planted bug, if any. `apply` skips exactly the assertions the bug relaxes
    /// ([`Bugs::relaxes`]), so that a checker (not an assertion) has to catch it; every other
    /// assertion stays on.
    bugs: Bugs,
    /// What changed since the harness's observer last took it (never read by the platform).
    changes: LedgerChanges,
    /// The `outbox` strategy's credit rows the broker has not acknowledged yet, by xid.
    unsent: BTreeMap<Xid, CreditRow>,
}

impl LedgerCore {
    /// An empty shard holding only its sub-account of the world and its transit account.
    pub fn new(shard: ShardId, shards: u32, bugs: Bugs) -> Self {
        assert!(shard.0 < shards, "shard {shard} out of range 0..{shards}");
        let mut accounts = BTreeMap::new();
        for (id, subject) in [
            (AccountId::world(shard), Subject::World),
            (AccountId::transit(shard, shards), Subject::Transit),
        ] {
            let account = Account {
                id,
                subject,
                available: zero(),
                frozen: zero(),
            };
            accounts.insert(id, account);
        }
        LedgerCore {
            shard,
            shards,
            accounts,
            freezes: BTreeMap::new(),
            vouchers: Vec::new(),
            journal: Vec::new(),
            posts: BTreeMap::new(),
            freeze_outcomes: BTreeMap::new(),
            fences: Fences::default(),
            branches: BTreeMap::new(),
            holds: BTreeMap::new(),
            fenced: true,
            locking: false,
            bugs,
            changes: LedgerChanges::default(),
            unsent: BTreeMap::new(),
        }
    }

    /// The credit rows not yet acknowledged by the broker (the relay's and the resender's).
    pub fn unsent_rows(&self) -> impl Iterator<Item = &CreditRow> {
        self.unsent.values()
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

    /// Opens this shard's sub-accounts of the clearing accounts of `banks` banks: the reserve
    /// at each bank and its withdrawals in transit (platform accounts, like the world's).
    pub fn with_clearing(mut self, banks: u32) -> Self {
        for bank in 0..banks {
            let (shard, shards) = (self.shard, self.shards);
            let opened = [
                (AccountId::reserve(bank, shard, shards), Subject::Reserve),
                (
                    AccountId::in_transit(bank, shard, shards),
                    Subject::InTransit,
                ),
                (
                    AccountId::refund_transit(bank, shard, shards),
                    Subject::InTransit,
                ),
                (AccountId::suspense(bank, shard, shards), Subject::Suspense),
            ];
            for (id, subject) in opened {
                let account = Account {
                    id,
                    subject,
                    available: zero(),
                    frozen: zero(),
                };
                self.accounts.insert(id, account);
            }
        }
        self
    }

    /// The shard with prepared branches locking their accounts or not (`2pc`).
    pub fn with_locks(mut self, locking: bool) -> Self {
        self.locking = locking;
        self
    }

    /// Whether prepared branches lock their accounts here.
    pub fn locking(&self) -> bool {
        self.locking
    }

    /// The branch other than `branch` holding `account` locked, if any (only when locking).
    fn locked_by(&self, account: AccountId, branch: &BranchKey) -> Option<&BranchKey> {
        if !self.locking {
            return None;
        }
        let held = self.holds.iter();
        held.filter(|(k, a)| *k != branch && a.account() == account)
            .map(|(k, _)| k)
            .next()
    }

    /// The shard with its TCC participant fenced or not (`tcc-nofence`).
    pub fn with_fence(mut self, fenced: bool) -> Self {
        self.fenced = fenced;
        self
    }

    pub fn shard(&self) -> ShardId {
        self.shard
    }
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }
    pub fn account(&self, id: AccountId) -> Option<&Account> {
        self.accounts.get(&id)
    }
    pub fn freezes(&self) -> impl Iterator<Item = &Freeze> {
        self.freezes.values()
    }
    pub fn vouchers(&self) -> &[Voucher] {
        &self.vouchers
    }
    pub fn journal(&self) -> &[JournalEntry] {
        &self.journal
    }
    pub fn fences(&self) -> &Fences {
        &self.fences
    }
    /// Reservations of TCC branches tried and not yet confirmed or cancelled.
    pub fn holds(&self) -> impl Iterator<Item = (&BranchKey, &LegAction)> {
        self.holds.iter()
    }
    /// The reservation of one TCC branch, if it is held.
    pub fn hold(&self, branch: &BranchKey) -> Option<&LegAction> {
        self.holds.get(branch)
    }
    /// What TCC branch `branch` does here, if it was ever tried.
    pub fn branch(&self, branch: &BranchKey) -> Option<&LegAction> {
        self.branches.get(branch)
    }
    pub fn freeze(&self, key: &str) -> Option<&Freeze> {
        self.freezes.get(key)
    }

    /// What changed since the last call (or since the shard was built), and starts afresh: the
    /// harness's incremental capture. Changes nothing the platform reads.
    pub fn take_changes(&mut self) -> LedgerChanges {
        let next = LedgerChanges::at(self.vouchers.len(), self.journal.len());
        std::mem::replace(&mut self.changes, next)
    }

    /// Decides what `command` means against the current state.
    pub fn decide(&self, command: &LedgerCommand, now_ms: u64, bugs: Bugs) -> Decision {
        match command {
            LedgerCommand::OpenAccount { account, subject } => self.decide_open(*account, *subject),
            LedgerCommand::Post { request, legs } => {
                self.decide_post(request, legs, None, (now_ms, bugs))
            }
            LedgerCommand::PostStep { xid, request, legs } => {
                self.decide_post(request, legs, Some(xid), (now_ms, bugs))
            }
            LedgerCommand::SettleRequest { request, legs } => match self.posts.get(request) {
                Some((_, outcome)) => Decision::Reply(outcome.clone()),
                None => Decision::Write(LedgerRecord::PostRefused {
                    request: request.clone(),
                    body: legs_fingerprint(legs),
                    error: LedgerError::Settled(request.to_string()),
                }),
            },
            LedgerCommand::PostWithRow {
                xid,
                request,
                legs,
                row,
            } => match self.decide_post(request, legs, Some(xid), (now_ms, bugs)) {
                Decision::Write(LedgerRecord::Posted(voucher)) => {
                    let row = row.clone();
                    Decision::Write(LedgerRecord::PostedWithRow { voucher, row })
                }
                other => other,
            },
            LedgerCommand::Freeze {
                key,
                account,
                amount,
            } => self.decide_freeze(key, *account, *amount),
            LedgerCommand::Unfreeze { key } => match self.freezes.contains_key(key) {
                true => Decision::Write(LedgerRecord::Unfrozen { key: key.clone() }),
                false => Decision::Reply(Ok(LedgerReply::Unfrozen)),
            },
            LedgerCommand::TccTry { branch, action } => self.decide_try(branch, action),
            LedgerCommand::TccConfirm { branch } => self.decide_confirm(branch, now_ms, bugs),
            LedgerCommand::TccCancel { branch } => self.decide_cancel(branch, bugs),
        }
    }

    /// Try: the fence first (a branch already cancelled must not reserve: anti-hanging), then
    /// the business check. A refused Try writes nothing, as Seata rolls back the fence insert
    /// with the failed local transaction; its Cancel will then be an empty rollback.
    fn decide_try(&self, branch: &BranchKey, action: &LegAction) -> Decision {
        match self.fences.try_(branch) {
            FenceDecision::Refuse(refusal) => Decision::Reply(Err(LedgerError::Fence(refusal))),
            FenceDecision::AlreadyDone => Decision::Reply(match self.branches.get(branch) {
                Some(tried) if tried == action => Ok(LedgerReply::Tried),
                _ => Err(LedgerError::BranchReused(branch.to_string())),
            }),
            FenceDecision::Apply(_) | FenceDecision::Record(_) => {
                match self.validate_try(branch, action) {
                    Ok(()) => Decision::Write(LedgerRecord::TccTried {
                        branch: branch.clone(),
                        action: *action,
                    }),
                    Err(e) => Decision::Reply(Err(e)),
                }
            }
        }
    }

    fn validate_try(&self, branch: &BranchKey, action: &LegAction) -> Result<(), LedgerError> {
        let account = action.account();
        self.check_home(account)?;
        if let Some(by) = self.locked_by(account, branch) {
            let by = by.to_string();
            return Err(LedgerError::Locked { account, by });
        }
        let a = self
            .accounts
            .get(&account)
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

    fn decide_confirm(&self, branch: &BranchKey, now_ms: u64, bugs: Bugs) -> Decision {
        match self.fences.confirm(branch) {
            FenceDecision::Refuse(refusal) => Decision::Reply(Err(LedgerError::Fence(refusal))),
            // The planted bug posts a repeated Confirm again.
            FenceDecision::AlreadyDone if bugs.is(Bug::TccConfirmNotIdempotent) => {
                Decision::Write(self.confirmation(branch, now_ms))
            }
            FenceDecision::AlreadyDone => Decision::Reply(Ok(LedgerReply::Confirmed)),
            FenceDecision::Apply(_) | FenceDecision::Record(_) => {
                Decision::Write(self.confirmation(branch, now_ms))
            }
        }
    }

    /// The record of a Confirm: the branch's voucher through this shard's transit account.
    fn confirmation(&self, branch: &BranchKey, now_ms: u64) -> LedgerRecord {
        let action = self.branches[branch];
        let transit = AccountId::transit(self.shard, self.shards);
        let legs = match action {
            LegAction::Debit { account, amount } => {
                vec![Leg::debit(account, amount), Leg::credit(transit, amount)]
            }
            LegAction::Credit { account, amount } => {
                vec![Leg::debit(transit, amount), Leg::credit(account, amount)]
            }
        };
        LedgerRecord::TccConfirmed {
            branch: branch.clone(),
            voucher: Voucher {
                id: VoucherId {
                    shard: self.shard,
                    seq: self.vouchers.len() as u64,
                },
                request: RequestId::new(format!("tcc:{}:{}", branch.xid, branch.branch)),
                legs,
                posted_ms: now_ms,
                xid: Some(branch.xid.clone()),
            },
        }
    }

    fn decide_cancel(&self, branch: &BranchKey, bugs: Bugs) -> Decision {
        let record = match self.fences.cancel(branch) {
            FenceDecision::Refuse(refusal) => {
                return Decision::Reply(Err(LedgerError::Fence(refusal)))
            }
            // The planted bug releases a repeated Cancel's reservation again.
            FenceDecision::AlreadyDone
                if bugs.is(Bug::TccCancelNotIdempotent) && self.branches.contains_key(branch) =>
            {
                LedgerRecord::TccCancelled {
                    branch: branch.clone(),
                }
            }
            FenceDecision::AlreadyDone => return Decision::Reply(Ok(LedgerReply::Cancelled)),
            // Without the fence (the strategy `tcc-nofence`, or the planted bug), an empty
            // rollback leaves no trace for a late Try to trip on.
            FenceDecision::Record(_) if bugs.is(Bug::TccNoFence) || !self.fenced => {
                return Decision::Reply(Ok(LedgerReply::Cancelled))
            }
            FenceDecision::Record(_) => LedgerRecord::TccSuspended {
                branch: branch.clone(),
            },
            FenceDecision::Apply(_) => LedgerRecord::TccCancelled {
                branch: branch.clone(),
            },
        };
        Decision::Write(record)
    }

    fn decide_open(&self, account: AccountId, subject: Subject) -> Decision {
        if let Err(e) = self.check_home(account) {
            return Decision::Reply(Err(e));
        }
        match self.accounts.get(&account) {
            Some(a) if a.subject == subject => Decision::Reply(Ok(LedgerReply::Opened)),
            Some(a) => Decision::Reply(Err(LedgerError::AccountExists {
                account,
                subject: a.subject,
            })),
            None => Decision::Write(LedgerRecord::Opened { account, subject }),
        }
    }

    /// A post (of movement `xid`'s step, if any): the first outcome of `request` again, or
    /// the voucher, or a durable refusal.
    fn decide_post(
        &self,
        request: &RequestId,
        legs: &[Leg],
        xid: Option<&Xid>,
        (now_ms, bugs): (u64, Bugs),
    ) -> Decision {
        if let Some((body, outcome)) = self.posts.get(request) {
            // The same request with other legs is another request under a used id: refused,
            // unless the planted bug answers it with the first one's outcome.
            if *body != legs_fingerprint(legs) && !bugs.is(Bug::PostSameKeyOtherBody) {
                return Decision::Reply(Err(LedgerError::RequestReused(request.to_string())));
            }
            // The planted bug forgets that this request was already applied.
            if !bugs.is(Bug::LedgerRetryAppliesTwice) {
                return Decision::Reply(outcome.clone());
            }
        }
        match self.validate_post(legs) {
            Ok(()) => Decision::Write(LedgerRecord::Posted(Voucher {
                id: VoucherId {
                    shard: self.shard,
                    seq: self.vouchers.len() as u64,
                },
                request: request.clone(),
                legs: legs.to_vec(),
                posted_ms: now_ms,
                xid: xid.cloned(),
            })),
            Err(error) => Decision::Write(LedgerRecord::PostRefused {
                request: request.clone(),
                body: legs_fingerprint(legs),
                error,
            }),
        }
    }

    fn validate_post(&self, legs: &[Leg]) -> Result<(), LedgerError> {
        check_balanced(legs)?;
        // Net effect per account, so a voucher touching one account twice is judged whole.
        // Vouchers have a handful of legs: a small vector beats a map here.
        let mut net: Vec<(AccountId, Decimal)> = Vec::with_capacity(legs.len());
        for leg in legs {
            self.check_home(leg.account)?;
            match net.iter_mut().find(|(id, _)| *id == leg.account) {
                Some((_, delta)) => *delta += leg.signed(),
                None => net.push((leg.account, leg.signed())),
            }
        }
        for (id, delta) in net {
            let account = self
                .accounts
                .get(&id)
                .ok_or(LedgerError::UnknownAccount(id))?;
            // Only a debit can overdraw: a credit to an account already below zero (which only
            // a planted bug leaves) is taken, not refused.
            let overdraws = delta < Decimal::ZERO && account.available + delta < Decimal::ZERO;
            if account.subject.must_stay_non_negative() && overdraws {
                return Err(LedgerError::InsufficientFunds {
                    account: id,
                    available: account.available.to_string(),
                    needed: (-delta).to_string(),
                });
            }
        }
        Ok(())
    }

    fn decide_freeze(&self, key: &str, account: AccountId, amount: Amount) -> Decision {
        if let Some(outcome) = self.freeze_outcomes.get(key) {
            return Decision::Reply(match self.freezes.get(key) {
                Some(f) if f.account != account || f.amount != amount => {
                    Err(LedgerError::FreezeKeyReused(key.to_string()))
                }
                _ => outcome.clone(),
            });
        }
        let refuse = |error| {
            Decision::Write(LedgerRecord::FreezeRefused {
                key: key.to_string(),
                error,
            })
        };
        if let Err(e) = self.check_home(account) {
            return refuse(e);
        }
        let Some(a) = self.accounts.get(&account) else {
            return refuse(LedgerError::UnknownAccount(account));
        };
        if a.available < amount.value() {
            return refuse(LedgerError::InsufficientFunds {
                account,
                available: a.available.to_string(),
                needed: amount.to_string(),
            });
        }
        Decision::Write(LedgerRecord::Frozen {
            key: key.to_string(),
            account,
            amount,
        })
    }

    fn check_home(&self, account: AccountId) -> Result<(), LedgerError> {
        if account.shard(self.shards) != self.shard {
            return Err(LedgerError::WrongShard {
                account,
                shard: self.shard,
            });
        }
        Ok(())
    }

    /// Applies one durable record and returns the reply it stands for.
    pub fn apply(&mut self, record: LedgerRecord) -> Outcome {
        match record {
            LedgerRecord::Opened { account, subject } => self.apply_open(account, subject),
            LedgerRecord::Posted(voucher) => self.apply_post(voucher),
            LedgerRecord::PostedWithRow { voucher, row } => {
                self.unsent.insert(row.xid.clone(), row);
                self.apply_post(voucher)
            }
            LedgerRecord::RowsSent { xids } => {
                for xid in &xids {
                    self.unsent.remove(xid);
                }
                // The mark answers nobody (the relay writes it): any reply will do.
                Ok(LedgerReply::Posted {
                    voucher: VoucherId {
                        shard: self.shard,
                        seq: self.vouchers.len() as u64,
                    },
                })
            }
            LedgerRecord::PostRefused {
                request,
                body,
                error,
            } => {
                self.posts.insert(request, (body, Err(error.clone())));
                Err(error)
            }
            LedgerRecord::FreezeRefused { key, error } => {
                self.freeze_outcomes.insert(key, Err(error.clone()));
                Err(error)
            }
            LedgerRecord::Frozen {
                key,
                account,
                amount,
            } => self.apply_frozen(key, account, amount),
            LedgerRecord::Unfrozen { key } => self.apply_unfrozen(&key),
            LedgerRecord::TccTried { branch, action } => self.apply_tried(branch, action),
            LedgerRecord::TccConfirmed { branch, voucher } => self.apply_confirmed(branch, voucher),
            LedgerRecord::TccCancelled { branch } => self.apply_cancelled(branch),
            LedgerRecord::TccSuspended { branch } => {
                self.fences.set(branch, FenceState::Suspended);
                Ok(LedgerReply::Cancelled)
            }
        }
    }

    fn apply_open(&mut self, account: AccountId, subject: Subject) -> Outcome {
        let opened = Account {
            id: account,
            subject,
            available: zero(),
            frozen: zero(),
        };
        let previous = self.accounts.insert(account, opened);
        assert!(previous.is_none(), "{account} opened twice");
        self.changes.accounts.insert(account);
        Ok(LedgerReply::Opened)
    }

    fn apply_frozen(&mut self, key: String, account: AccountId, amount: Amount) -> Outcome {
        self.changes.freezes.insert(key.clone());
        self.changes.accounts.insert(account);
        let a = self
            .accounts
            .get_mut(&account)
            .expect("frozen account exists");
        a.available -= amount.value();
        a.frozen += amount.value();
        assert!(a.available >= Decimal::ZERO, "freeze overdrew {account}");
        self.freeze_outcomes
            .insert(key.clone(), Ok(LedgerReply::Frozen));
        let freeze = Freeze {
            key: key.clone(),
            account,
            amount,
        };
        self.freezes.insert(key, freeze);
        Ok(LedgerReply::Frozen)
    }

    fn apply_unfrozen(&mut self, key: &str) -> Outcome {
        let f = self.freezes.remove(key).expect("unfrozen key exists");
        self.changes.freezes.insert(key.to_string());
        self.changes.accounts.insert(f.account);
        let a = self
            .accounts
            .get_mut(&f.account)
            .expect("frozen account exists");
        a.frozen -= f.amount.value();
        a.available += f.amount.value();
        assert!(
            a.frozen >= Decimal::ZERO,
            "unfreeze made {} negative",
            f.account
        );
        Ok(LedgerReply::Unfrozen)
    }

    /// Try: the fence row TRIED and the reservation (a debit's money frozen; a credit only
    /// remembered, in no balance yet).
    fn apply_tried(&mut self, branch: BranchKey, action: LegAction) -> Outcome {
        self.fences.set(branch.clone(), FenceState::Tried);
        if let LegAction::Debit { account, amount } = action {
            let checked = !self.bugs.relaxes(Check::NonNegative);
            let a = self.account_mut(account);
            a.available -= amount.value();
            a.frozen += amount.value();
            assert!(
                !checked || a.available >= Decimal::ZERO,
                "Try overdrew {account}"
            );
        }
        self.branches.insert(branch.clone(), action);
        self.changes.holds.insert(branch.clone());
        self.holds.insert(branch, action);
        Ok(LedgerReply::Tried)
    }

    /// Confirm: the fence row COMMITTED, the reservation consumed, the voucher posted.
    fn apply_confirmed(&mut self, branch: BranchKey, voucher: Voucher) -> Outcome {
        self.write_fence(branch.clone(), FenceState::Committed);
        if let Some(action) = self.holds.remove(&branch) {
            self.changes.holds.insert(branch.clone());
            self.release(action);
        }
        self.apply_post(voucher).map(|_| LedgerReply::Confirmed)
    }

    /// Cancel after a Try: the fence row ROLLED_BACK and the reservation released.
    fn apply_cancelled(&mut self, branch: BranchKey) -> Outcome {
        let repeat = self.fences.get(&branch) == Some(FenceState::RolledBack);
        self.write_fence(branch.clone(), FenceState::RolledBack);
        let held = self.holds.remove(&branch);
        self.changes.holds.insert(branch.clone());
        // A repeat only reaches here through the planted bug: it releases again.
        if let Some(action) = held.or_else(|| repeat.then(|| self.branches[&branch])) {
            self.release(action);
        }
        Ok(LedgerReply::Cancelled)
    }

    /// An account about to change (so also one the observer will read again).
    fn account_mut(&mut self, id: AccountId) -> &mut Account {
        self.changes.accounts.insert(id);
        self.accounts
            .get_mut(&id)
            .unwrap_or_else(|| panic!("{id} exists"))
    }

    /// Writes a fence row. A repeat of the same state only comes from a planted bug that
    /// relaxes [`Check::PhaseTwoIdempotent`]; for every other run the transition is asserted.
    fn write_fence(&mut self, branch: BranchKey, state: FenceState) {
        let repeat = self.fences.get(&branch) == Some(state);
        if repeat && self.bugs.relaxes(Check::PhaseTwoIdempotent) {
            self.fences.force(branch, state);
        } else {
            self.fences.set(branch, state);
        }
    }

    /// Gives a branch's reservation back: a debit's frozen money becomes available again; a
    /// prepared credit was in no balance and simply disappears.
    fn release(&mut self, action: LegAction) {
        if let LegAction::Debit { account, amount } = action {
            let checked = !self.bugs.relaxes(Check::NonNegative);
            let a = self.account_mut(account);
            a.frozen -= amount.value();
            a.available += amount.value();
            assert!(
                !checked || a.frozen >= Decimal::ZERO,
                "release made {account} frozen negative"
            );
        }
    }

    fn apply_post(&mut self, voucher: Voucher) -> Outcome {
        // Asserted again on replay: a log can never hold an unbalanced voucher.
        check_balanced(&voucher.legs).expect("a posted voucher is balanced");
        assert_eq!(
            voucher.id.seq,
            self.vouchers.len() as u64,
            "vouchers are applied in sequence"
        );
        for leg in &voucher.legs {
            self.changes.accounts.insert(leg.account);
            let a = self
                .accounts
                .get_mut(&leg.account)
                .expect("posted account exists");
            a.available += leg.signed();
            self.journal.push(JournalEntry {
                seq: self.journal.len() as u64,
                voucher: voucher.id,
                account: leg.account,
                side: leg.side,
                amount: leg.amount,
            });
        }
        let outcome = Ok(LedgerReply::Posted {
            voucher: voucher.id,
        });
        let body = legs_fingerprint(&voucher.legs);
        self.posts
            .insert(voucher.request.clone(), (body, outcome.clone()));
        self.vouchers.push(voucher);
        outcome
    }
}

/// A fingerprint of a post's legs (FNV-1a over account, side and fen of each leg, in order):
/// what tells a repeat of a request from another request under the same id.
pub fn legs_fingerprint(legs: &[Leg]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for leg in legs {
        let side = u64::from(leg.side == super::types::Side::Credit);
        for word in [leg.account.0, side, leg.amount.fen() as u64] {
            for byte in word.to_le_bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    hash
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;

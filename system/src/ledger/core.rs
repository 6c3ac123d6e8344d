//! The ledger shard's deterministic core: state and decisions, no clock, no I/O.
//!
//! The node shell asks [`LedgerCore::decide`] what a command means. The answer is either an
//! immediate reply (an idempotent repeat, or a refusal that needs no record) or a
//! [`LedgerRecord`] to make durable; the shell appends it and [`LedgerCore::apply`]s it, and the
//! same `apply` rebuilds the state from the log after a crash. So the log is the truth and the
//! in-memory state is its fold.

use super::fence::{BranchKey, FenceDecision, FenceState, Fences};
use super::types::*;
use crate::bugs::{Bug, Bugs};
use crate::ids::{AccountId, RequestId, ShardId, VoucherId};
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
        action: TccAction,
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
    /// Idempotency: the first outcome of every post, by request id.
    posts: BTreeMap<RequestId, Outcome>,
    /// Idempotency: the first outcome of every freeze, by freeze key.
    freeze_outcomes: BTreeMap<String, Outcome>,
    /// TCC fence rows, one per (xid, branch) this shard has seen.
    fences: Fences,
    /// Every branch ever tried here, with its action (kept after phase two).
    branches: BTreeMap<BranchKey, TccAction>,
    /// Reservations of branches tried and not yet confirmed or cancelled.
    holds: BTreeMap<BranchKey, TccAction>,
    /// The planted bug, if any. With one planted, `apply` skips the assertions that would stop
    /// the bug's own records, so that a checker (not an assertion) has to catch it.
    bugs: Bugs,
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
            bugs,
        }
    }

    /// Rebuilds a shard by applying its log from the start.
    pub fn recover(shard: ShardId, shards: u32, bugs: Bugs, records: &[LedgerRecord]) -> Self {
        let mut core = LedgerCore::new(shard, shards, bugs);
        for record in records {
            // Outcomes were returned when first applied; replay only rebuilds the state.
            let _ = core.apply(record.clone());
        }
        core
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
    pub fn holds(&self) -> impl Iterator<Item = (&BranchKey, &TccAction)> {
        self.holds.iter()
    }

    fn strict(&self) -> bool {
        self.bugs.get().is_none()
    }

    /// Decides what `command` means against the current state.
    pub fn decide(&self, command: &LedgerCommand, now_ms: u64, bugs: Bugs) -> Decision {
        match command {
            LedgerCommand::OpenAccount { account, subject } => self.decide_open(*account, *subject),
            LedgerCommand::Post { request, legs } => self.decide_post(request, legs, now_ms, bugs),
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
    fn decide_try(&self, branch: &BranchKey, action: &TccAction) -> Decision {
        match self.fences.try_(branch) {
            FenceDecision::Refuse(refusal) => Decision::Reply(Err(LedgerError::Fence(refusal))),
            FenceDecision::AlreadyDone => Decision::Reply(match self.branches.get(branch) {
                Some(tried) if tried == action => Ok(LedgerReply::Tried),
                _ => Err(LedgerError::BranchReused(branch.to_string())),
            }),
            FenceDecision::Apply(_) | FenceDecision::Record(_) => match self.validate_try(action) {
                Ok(()) => Decision::Write(LedgerRecord::TccTried {
                    branch: branch.clone(),
                    action: *action,
                }),
                Err(e) => Decision::Reply(Err(e)),
            },
        }
    }

    fn validate_try(&self, action: &TccAction) -> Result<(), LedgerError> {
        let account = action.account();
        self.check_home(account)?;
        let a = self
            .accounts
            .get(&account)
            .ok_or(LedgerError::UnknownAccount(account))?;
        if let TccAction::Debit { amount, .. } = action {
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
            TccAction::Debit { account, amount } => {
                vec![Leg::debit(account, amount), Leg::credit(transit, amount)]
            }
            TccAction::Credit { account, amount } => {
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
            // Without the fence, an empty rollback leaves no trace for a late Try to trip on.
            FenceDecision::Record(_) if bugs.is(Bug::TccNoFence) => {
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

    fn decide_post(&self, request: &RequestId, legs: &[Leg], now_ms: u64, bugs: Bugs) -> Decision {
        if let Some(outcome) = self.posts.get(request) {
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
                xid: None,
            })),
            Err(error) => Decision::Write(LedgerRecord::PostRefused {
                request: request.clone(),
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
            if account.subject.must_stay_non_negative() && account.available + delta < Decimal::ZERO
            {
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
            LedgerRecord::Opened { account, subject } => {
                let previous = self.accounts.insert(
                    account,
                    Account {
                        id: account,
                        subject,
                        available: zero(),
                        frozen: zero(),
                    },
                );
                assert!(previous.is_none(), "{account} opened twice");
                Ok(LedgerReply::Opened)
            }
            LedgerRecord::Posted(voucher) => self.apply_post(voucher),
            LedgerRecord::PostRefused { request, error } => {
                self.posts.insert(request, Err(error.clone()));
                Err(error)
            }
            LedgerRecord::TccTried { branch, action } => {
                self.fences.set(branch.clone(), FenceState::Tried);
                if let TccAction::Debit { account, amount } = action {
                    let strict = self.strict();
                    let a = self.account_mut(account);
                    a.available -= amount.value();
                    a.frozen += amount.value();
                    assert!(
                        !strict || a.available >= Decimal::ZERO,
                        "Try overdrew {account}"
                    );
                }
                self.branches.insert(branch.clone(), action);
                self.holds.insert(branch, action);
                Ok(LedgerReply::Tried)
            }
            LedgerRecord::TccConfirmed { branch, voucher } => {
                self.write_fence(branch.clone(), FenceState::Committed);
                if let Some(action) = self.holds.remove(&branch) {
                    self.release(action);
                }
                self.apply_post(voucher).map(|_| LedgerReply::Confirmed)
            }
            LedgerRecord::TccCancelled { branch } => {
                let repeat = self.fences.get(&branch) == Some(FenceState::RolledBack);
                self.write_fence(branch.clone(), FenceState::RolledBack);
                let held = self.holds.remove(&branch);
                // A repeat only reaches here through the planted bug: it releases again.
                if let Some(action) = held.or_else(|| repeat.then(|| self.branches[&branch])) {
                    self.release(action);
                }
                Ok(LedgerReply::Cancelled)
            }
            LedgerRecord::TccSuspended { branch } => {
                self.fences.set(branch, FenceState::Suspended);
                Ok(LedgerReply::Cancelled)
            }
            LedgerRecord::FreezeRefused { key, error } => {
                self.freeze_outcomes.insert(key, Err(error.clone()));
                Err(error)
            }
            LedgerRecord::Frozen {
                key,
                account,
                amount,
            } => {
                let a = self
                    .accounts
                    .get_mut(&account)
                    .expect("frozen account exists");
                a.available -= amount.value();
                a.frozen += amount.value();
                assert!(a.available >= Decimal::ZERO, "freeze overdrew {account}");
                self.freeze_outcomes
                    .insert(key.clone(), Ok(LedgerReply::Frozen));
                self.freezes.insert(
                    key.clone(),
                    Freeze {
                        key,
                        account,
                        amount,
                    },
                );
                Ok(LedgerReply::Frozen)
            }
            LedgerRecord::Unfrozen { key } => {
                let f = self.freezes.remove(&key).expect("unfrozen key exists");
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
        }
    }

    fn account_mut(&mut self, id: AccountId) -> &mut Account {
        self.accounts
            .get_mut(&id)
            .unwrap_or_else(|| panic!("{id} exists"))
    }

    /// Writes a fence row; a repeat of the same state only comes from a planted bug.
    fn write_fence(&mut self, branch: BranchKey, state: FenceState) {
        if self.fences.get(&branch) == Some(state) && !self.strict() {
            self.fences.force(branch, state);
        } else {
            self.fences.set(branch, state);
        }
    }

    /// Gives a branch's reservation back: a debit's frozen money becomes available again; a
    /// prepared credit was in no balance and simply disappears.
    fn release(&mut self, action: TccAction) {
        if let TccAction::Debit { account, amount } = action {
            let strict = self.strict();
            let a = self.account_mut(account);
            a.frozen -= amount.value();
            a.available += amount.value();
            assert!(
                !strict || a.frozen >= Decimal::ZERO,
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
        self.posts.insert(voucher.request.clone(), outcome.clone());
        self.vouchers.push(voucher);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARDS: u32 = 2;

    fn amt(fen: i64) -> Amount {
        Amount::from_fen(fen).unwrap()
    }

    /// Decides and applies like the shell does.
    fn run(core: &mut LedgerCore, cmd: LedgerCommand, bugs: Bugs) -> Outcome {
        match core.decide(&cmd, 0, bugs) {
            Decision::Reply(r) => r,
            Decision::Write(rec) => core.apply(rec),
        }
    }

    fn funded_shard() -> (LedgerCore, AccountId, AccountId) {
        let mut c = LedgerCore::new(ShardId(0), SHARDS, Bugs::none());
        let (a, b) = (AccountId(10), AccountId(12));
        for id in [a, b] {
            let open = LedgerCommand::OpenAccount {
                account: id,
                subject: Subject::User,
            };
            assert_eq!(run(&mut c, open, Bugs::none()), Ok(LedgerReply::Opened));
        }
        let fund = LedgerCommand::Post {
            request: RequestId::new("fund-a"),
            legs: vec![
                Leg::debit(AccountId::world(ShardId(0)), amt(10_000)),
                Leg::credit(a, amt(10_000)),
            ],
        };
        assert!(run(&mut c, fund, Bugs::none()).is_ok());
        (c, a, b)
    }

    fn transfer(req: &str, from: AccountId, to: AccountId, fen: i64) -> LedgerCommand {
        LedgerCommand::Post {
            request: RequestId::new(req),
            legs: vec![Leg::debit(from, amt(fen)), Leg::credit(to, amt(fen))],
        }
    }

    #[test]
    fn a_post_moves_money_and_journals_each_leg() {
        let (mut c, a, b) = funded_shard();
        let r = run(&mut c, transfer("t1", a, b, 2_500), Bugs::none());
        assert!(matches!(r, Ok(LedgerReply::Posted { .. })));
        assert_eq!(c.account(a).unwrap().available.to_string(), "75.00");
        assert_eq!(c.account(b).unwrap().available.to_string(), "25.00");
        assert_eq!(c.journal().len(), 4);
        let total: Decimal = c.accounts().map(|a| a.available + a.frozen).sum();
        assert_eq!(total, Decimal::ZERO);
    }

    #[test]
    fn a_retried_post_returns_the_first_result_and_posts_nothing() {
        let (mut c, a, b) = funded_shard();
        let first = run(&mut c, transfer("t1", a, b, 100), Bugs::none());
        let again = run(&mut c, transfer("t1", a, b, 100), Bugs::none());
        assert_eq!(first, again);
        assert_eq!(c.vouchers().len(), 2);
    }

    #[test]
    fn the_planted_bug_applies_a_retry_again() {
        let (mut c, a, b) = funded_shard();
        let bug = Bugs::planted(Bug::LedgerRetryAppliesTwice);
        assert!(run(&mut c, transfer("t1", a, b, 100), bug).is_ok());
        assert!(run(&mut c, transfer("t1", a, b, 100), bug).is_ok());
        assert_eq!(c.vouchers().len(), 3, "funding + the transfer twice");
    }

    #[test]
    fn overdraft_is_refused_durably_and_the_refusal_never_flips() {
        let (mut c, a, b) = funded_shard();
        let r = run(&mut c, transfer("t1", b, a, 100), Bugs::none());
        assert!(matches!(r, Err(LedgerError::InsufficientFunds { .. })));
        // b receives money; the retry of t1 must still be refused.
        assert!(run(&mut c, transfer("t2", a, b, 500), Bugs::none()).is_ok());
        let again = run(&mut c, transfer("t1", b, a, 100), Bugs::none());
        assert_eq!(r, again);
    }

    #[test]
    fn unbalanced_vouchers_and_foreign_accounts_are_refused() {
        let (mut c, a, b) = funded_shard();
        let unbalanced = LedgerCommand::Post {
            request: RequestId::new("u"),
            legs: vec![Leg::debit(a, amt(100)), Leg::credit(b, amt(99))],
        };
        assert!(matches!(
            run(&mut c, unbalanced, Bugs::none()),
            Err(LedgerError::Unbalanced { .. })
        ));
        let foreign = transfer("f", a, AccountId(11), 1);
        assert!(matches!(
            run(&mut c, foreign, Bugs::none()),
            Err(LedgerError::WrongShard { .. })
        ));
    }

    #[test]
    fn freeze_and_unfreeze_are_idempotent() {
        let (mut c, a, _) = funded_shard();
        let freeze = LedgerCommand::Freeze {
            key: "k".into(),
            account: a,
            amount: amt(4_000),
        };
        assert_eq!(
            run(&mut c, freeze.clone(), Bugs::none()),
            Ok(LedgerReply::Frozen)
        );
        assert_eq!(run(&mut c, freeze, Bugs::none()), Ok(LedgerReply::Frozen));
        assert_eq!(c.account(a).unwrap().frozen.to_string(), "40.00");
        let unfreeze = LedgerCommand::Unfreeze { key: "k".into() };
        assert_eq!(
            run(&mut c, unfreeze.clone(), Bugs::none()),
            Ok(LedgerReply::Unfrozen)
        );
        assert_eq!(
            run(&mut c, unfreeze, Bugs::none()),
            Ok(LedgerReply::Unfrozen)
        );
        assert_eq!(c.account(a).unwrap().frozen, Decimal::ZERO);
        assert_eq!(c.account(a).unwrap().available.to_string(), "100.00");
    }

    #[test]
    fn recovery_from_the_records_rebuilds_the_same_state() {
        let mut c = LedgerCore::new(ShardId(1), SHARDS, Bugs::none());
        let mut log = Vec::new();
        let cmds = [
            LedgerCommand::OpenAccount {
                account: AccountId(5),
                subject: Subject::User,
            },
            LedgerCommand::Post {
                request: RequestId::new("f"),
                legs: vec![
                    Leg::debit(AccountId(1), amt(50)),
                    Leg::credit(AccountId(5), amt(50)),
                ],
            },
            LedgerCommand::Freeze {
                key: "z".into(),
                account: AccountId(5),
                amount: amt(20),
            },
        ];
        for cmd in cmds {
            if let Decision::Write(rec) = c.decide(&cmd, 7, Bugs::none()) {
                c.apply(rec.clone()).unwrap();
                log.push(rec);
            }
        }
        let r = LedgerCore::recover(ShardId(1), SHARDS, Bugs::none(), &log);
        assert_eq!(
            r.accounts().collect::<Vec<_>>(),
            c.accounts().collect::<Vec<_>>()
        );
        assert_eq!(r.journal(), c.journal());
        assert_eq!(r.vouchers(), c.vouchers());
        assert_eq!(r.freezes().count(), 1);
    }

    // TCC participant: one payer on shard 0, one merchant on shard 1 (ids: world 0/1,
    // transit 2/3, customers from 4 on, home shard = id % 2).

    use crate::ledger::fence::FenceRefusal;

    const PAYER: AccountId = AccountId(4);
    const MERCHANT: AccountId = AccountId(5);

    /// A balance at the money scale, from fen.
    fn d(fen: i64) -> Decimal {
        Decimal::new(fen, 2)
    }

    fn bk(xid: &str, branch: u32) -> BranchKey {
        BranchKey {
            xid: xid.into(),
            branch,
        }
    }

    fn debit(fen: i64) -> TccAction {
        TccAction::Debit {
            account: PAYER,
            amount: amt(fen),
        }
    }

    fn credit(fen: i64) -> TccAction {
        TccAction::Credit {
            account: MERCHANT,
            amount: amt(fen),
        }
    }

    fn try_(branch: &BranchKey, action: TccAction) -> LedgerCommand {
        LedgerCommand::TccTry {
            branch: branch.clone(),
            action,
        }
    }

    fn confirm(branch: &BranchKey) -> LedgerCommand {
        LedgerCommand::TccConfirm {
            branch: branch.clone(),
        }
    }

    fn cancel(branch: &BranchKey) -> LedgerCommand {
        LedgerCommand::TccCancel {
            branch: branch.clone(),
        }
    }

    /// Shard 0 with PAYER opened and funded with 100.00 from the world.
    fn payer_shard(bugs: Bugs) -> LedgerCore {
        let mut c = LedgerCore::new(ShardId(0), SHARDS, bugs);
        let open = LedgerCommand::OpenAccount {
            account: PAYER,
            subject: Subject::User,
        };
        assert_eq!(run(&mut c, open, bugs), Ok(LedgerReply::Opened));
        let fund = LedgerCommand::Post {
            request: RequestId::new("fund-payer"),
            legs: vec![
                Leg::debit(AccountId::world(ShardId(0)), amt(10_000)),
                Leg::credit(PAYER, amt(10_000)),
            ],
        };
        assert!(run(&mut c, fund, bugs).is_ok());
        c
    }

    /// Shard 1 with MERCHANT opened, empty.
    fn merchant_shard() -> LedgerCore {
        let mut c = LedgerCore::new(ShardId(1), SHARDS, Bugs::none());
        let open = LedgerCommand::OpenAccount {
            account: MERCHANT,
            subject: Subject::Merchant,
        };
        assert_eq!(run(&mut c, open, Bugs::none()), Ok(LedgerReply::Opened));
        c
    }

    /// (available, frozen) of an account.
    fn bal(c: &LedgerCore, id: AccountId) -> (Decimal, Decimal) {
        let a = c.account(id).unwrap();
        (a.available, a.frozen)
    }

    fn holds(c: &LedgerCore) -> Vec<(BranchKey, TccAction)> {
        c.holds().map(|(k, a)| (k.clone(), *a)).collect()
    }

    fn fence_rows(c: &LedgerCore) -> Vec<(BranchKey, FenceState)> {
        c.fences().rows().map(|(k, s)| (k.clone(), s)).collect()
    }

    /// Σ available + frozen over every account of one shard (world and transit included).
    fn shard_total(c: &LedgerCore) -> Decimal {
        c.accounts().map(|a| a.available + a.frozen).sum()
    }

    fn transit(shard: u32) -> AccountId {
        AccountId::transit(ShardId(shard), SHARDS)
    }

    #[test]
    fn try_debit_freezes_once_and_writes_the_fence() {
        let mut c = payer_shard(Bugs::none());
        let k = bk("x1", 0);
        assert_eq!(
            run(&mut c, try_(&k, debit(3_000)), Bugs::none()),
            Ok(LedgerReply::Tried)
        );
        assert_eq!(bal(&c, PAYER), (d(7_000), d(3_000)));
        assert_eq!(c.fences().get(&k), Some(FenceState::Tried));
        assert_eq!(holds(&c), vec![(k.clone(), debit(3_000))]);
        // A repeated Try answers without a record and freezes nothing more.
        assert_eq!(
            c.decide(&try_(&k, debit(3_000)), 0, Bugs::none()),
            Decision::Reply(Ok(LedgerReply::Tried))
        );
        assert_eq!(bal(&c, PAYER), (d(7_000), d(3_000)));
        assert_eq!(c.vouchers().len(), 1, "only the funding voucher");
    }

    #[test]
    fn a_branch_tried_again_with_another_action_is_refused() {
        let mut c = payer_shard(Bugs::none());
        let k = bk("x1", 0);
        run(&mut c, try_(&k, debit(3_000)), Bugs::none()).unwrap();
        assert_eq!(
            run(&mut c, try_(&k, debit(4_000)), Bugs::none()),
            Err(LedgerError::BranchReused("x1#0".into()))
        );
        assert_eq!(bal(&c, PAYER), (d(7_000), d(3_000)));
        assert_eq!(holds(&c), vec![(k, debit(3_000))]);
    }

    #[test]
    fn an_insufficient_try_writes_nothing_so_its_cancel_is_an_empty_rollback() {
        let mut c = payer_shard(Bugs::none());
        let k = bk("x1", 0);
        assert_eq!(
            c.decide(&try_(&k, debit(10_001)), 0, Bugs::none()),
            Decision::Reply(Err(LedgerError::InsufficientFunds {
                account: PAYER,
                available: "100.00".into(),
                needed: "100.01".into(),
            }))
        );
        assert_eq!(c.fences().get(&k), None);
        assert_eq!(holds(&c), vec![]);
        assert_eq!(bal(&c, PAYER), (d(10_000), d(0)));
        assert_eq!(
            c.decide(&cancel(&k), 0, Bugs::none()),
            Decision::Write(LedgerRecord::TccSuspended { branch: k.clone() })
        );
        assert_eq!(
            run(&mut c, cancel(&k), Bugs::none()),
            Ok(LedgerReply::Cancelled)
        );
        assert_eq!(c.fences().get(&k), Some(FenceState::Suspended));
        assert_eq!(bal(&c, PAYER), (d(10_000), d(0)));
    }

    #[test]
    fn confirm_debit_consumes_the_freeze_and_posts_payer_to_transit_once() {
        let mut c = payer_shard(Bugs::none());
        let k = bk("x1", 0);
        run(&mut c, try_(&k, debit(3_000)), Bugs::none()).unwrap();
        let Decision::Write(record) = c.decide(&confirm(&k), 42, Bugs::none()) else {
            panic!("a first Confirm writes a record");
        };
        assert_eq!(c.apply(record), Ok(LedgerReply::Confirmed));
        assert_eq!(bal(&c, PAYER), (d(7_000), d(0)));
        assert_eq!(bal(&c, transit(0)), (d(3_000), d(0)));
        assert_eq!(c.fences().get(&k), Some(FenceState::Committed));
        assert_eq!(holds(&c), vec![]);
        let v = c.vouchers().last().unwrap();
        let id = VoucherId {
            shard: ShardId(0),
            seq: 1,
        };
        assert_eq!(v.id, id);
        assert_eq!(
            v.legs,
            vec![
                Leg::debit(PAYER, amt(3_000)),
                Leg::credit(transit(0), amt(3_000))
            ]
        );
        assert_eq!(v.xid, Some("x1".to_string()));
        assert_eq!(v.request, RequestId::new("tcc:x1:0"));
        assert_eq!(v.posted_ms, 42);
        let tail: Vec<_> = c.journal()[2..]
            .iter()
            .map(|e| (e.seq, e.voucher, e.account, e.side))
            .collect();
        assert_eq!(
            tail,
            vec![
                (2, id, PAYER, Side::Debit),
                (3, id, transit(0), Side::Credit)
            ]
        );
        // Phase two is idempotent: a repeat answers and posts nothing.
        assert_eq!(
            run(&mut c, confirm(&k), Bugs::none()),
            Ok(LedgerReply::Confirmed)
        );
        assert_eq!((c.vouchers().len(), c.journal().len()), (2, 4));
        assert_eq!(bal(&c, PAYER), (d(7_000), d(0)));
    }

    #[test]
    fn a_duplicate_try_after_confirm_answers_tried_and_freezes_nothing() {
        let mut c = payer_shard(Bugs::none());
        let k = bk("x1", 0);
        run(&mut c, try_(&k, debit(3_000)), Bugs::none()).unwrap();
        run(&mut c, confirm(&k), Bugs::none()).unwrap();
        assert_eq!(
            run(&mut c, try_(&k, debit(3_000)), Bugs::none()),
            Ok(LedgerReply::Tried)
        );
        assert_eq!(bal(&c, PAYER), (d(7_000), d(0)));
        assert_eq!(c.fences().get(&k), Some(FenceState::Committed));
        assert_eq!(holds(&c), vec![]);
    }

    #[test]
    fn credit_branch_prepares_then_posts_and_every_shard_balances() {
        let (mut payer, mut merchant) = (payer_shard(Bugs::none()), merchant_shard());
        let (kd, kc) = (bk("x1", 0), bk("x1", 1));
        run(&mut payer, try_(&kd, debit(3_000)), Bugs::none()).unwrap();
        assert_eq!(
            run(&mut merchant, try_(&kc, credit(3_000)), Bugs::none()),
            Ok(LedgerReply::Tried)
        );
        // A prepared credit is in no balance yet.
        assert_eq!(bal(&merchant, MERCHANT), (d(0), d(0)));
        assert_eq!(holds(&merchant), vec![(kc.clone(), credit(3_000))]);
        assert_eq!(merchant.fences().get(&kc), Some(FenceState::Tried));
        assert_eq!(merchant.vouchers().len(), 0);

        run(&mut payer, confirm(&kd), Bugs::none()).unwrap();
        // Between the two Confirms each shard still balances on its own.
        assert_eq!(shard_total(&payer), Decimal::ZERO);
        assert_eq!(shard_total(&merchant), Decimal::ZERO);
        assert_eq!(
            run(&mut merchant, confirm(&kc), Bugs::none()),
            Ok(LedgerReply::Confirmed)
        );
        assert_eq!(bal(&merchant, MERCHANT), (d(3_000), d(0)));
        assert_eq!(bal(&merchant, transit(1)), (d(-3_000), d(0)));
        assert_eq!(holds(&merchant), vec![]);
        assert_eq!(merchant.fences().get(&kc), Some(FenceState::Committed));
        let v = &merchant.vouchers()[0];
        assert_eq!(
            v.legs,
            vec![
                Leg::debit(transit(1), amt(3_000)),
                Leg::credit(MERCHANT, amt(3_000))
            ]
        );
        assert_eq!(v.request, RequestId::new("tcc:x1:1"));
        let transits = bal(&payer, transit(0)).0 + bal(&merchant, transit(1)).0;
        assert_eq!(transits, Decimal::ZERO);
        assert_eq!(shard_total(&payer), Decimal::ZERO);
        assert_eq!(shard_total(&merchant), Decimal::ZERO);
    }

    #[test]
    fn cancel_after_try_releases_once_and_then_refuses_confirm() {
        let mut c = payer_shard(Bugs::none());
        let k = bk("x1", 0);
        run(&mut c, try_(&k, debit(3_000)), Bugs::none()).unwrap();
        assert_eq!(
            run(&mut c, cancel(&k), Bugs::none()),
            Ok(LedgerReply::Cancelled)
        );
        assert_eq!(bal(&c, PAYER), (d(10_000), d(0)));
        assert_eq!(c.fences().get(&k), Some(FenceState::RolledBack));
        assert_eq!(holds(&c), vec![]);
        assert_eq!(
            c.decide(&cancel(&k), 0, Bugs::none()),
            Decision::Reply(Ok(LedgerReply::Cancelled))
        );
        assert_eq!(
            run(&mut c, confirm(&k), Bugs::none()),
            Err(LedgerError::Fence(FenceRefusal::ConfirmAfterCancel))
        );
        assert_eq!(bal(&c, PAYER), (d(10_000), d(0)));
        assert_eq!(c.vouchers().len(), 1, "only the funding voucher");
    }

    #[test]
    fn cancel_of_a_prepared_credit_drops_the_hold_and_moves_no_money() {
        let mut c = merchant_shard();
        let k = bk("x1", 1);
        run(&mut c, try_(&k, credit(3_000)), Bugs::none()).unwrap();
        assert_eq!(
            run(&mut c, cancel(&k), Bugs::none()),
            Ok(LedgerReply::Cancelled)
        );
        assert_eq!(bal(&c, MERCHANT), (d(0), d(0)));
        assert_eq!(holds(&c), vec![]);
        assert_eq!(c.fences().get(&k), Some(FenceState::RolledBack));
        assert_eq!(c.vouchers().len(), 0);
    }

    #[test]
    fn cancel_after_confirm_is_refused() {
        let mut c = payer_shard(Bugs::none());
        let k = bk("x1", 0);
        run(&mut c, try_(&k, debit(3_000)), Bugs::none()).unwrap();
        run(&mut c, confirm(&k), Bugs::none()).unwrap();
        assert_eq!(
            run(&mut c, cancel(&k), Bugs::none()),
            Err(LedgerError::Fence(FenceRefusal::CancelAfterConfirm))
        );
        assert_eq!(bal(&c, PAYER), (d(7_000), d(0)));
        assert_eq!(c.fences().get(&k), Some(FenceState::Committed));
    }

    #[test]
    fn an_empty_rollback_suspends_the_branch_and_a_late_try_cannot_hang() {
        let mut c = payer_shard(Bugs::none());
        let k = bk("x1", 0);
        assert_eq!(
            run(&mut c, cancel(&k), Bugs::none()),
            Ok(LedgerReply::Cancelled)
        );
        assert_eq!(c.fences().get(&k), Some(FenceState::Suspended));
        assert_eq!(
            run(&mut c, try_(&k, debit(3_000)), Bugs::none()),
            Err(LedgerError::Fence(FenceRefusal::TryAfterCancel))
        );
        assert_eq!(bal(&c, PAYER), (d(10_000), d(0)));
        assert_eq!(holds(&c), vec![]);
        assert_eq!(c.fences().get(&k), Some(FenceState::Suspended));
        assert_eq!(
            run(&mut c, cancel(&k), Bugs::none()),
            Ok(LedgerReply::Cancelled)
        );
    }

    #[test]
    fn confirm_without_try_is_refused_and_posts_nothing() {
        let mut c = payer_shard(Bugs::none());
        let k = bk("x1", 0);
        assert_eq!(
            run(&mut c, confirm(&k), Bugs::none()),
            Err(LedgerError::Fence(FenceRefusal::ConfirmWithoutTry))
        );
        assert_eq!(c.fences().get(&k), None);
        assert_eq!(c.vouchers().len(), 1, "only the funding voucher");
    }

    #[test]
    fn a_try_for_a_foreign_or_unknown_account_is_refused_without_a_record() {
        let mut c = payer_shard(Bugs::none());
        let foreign = TccAction::Debit {
            account: MERCHANT,
            amount: amt(100),
        };
        assert_eq!(
            run(&mut c, try_(&bk("x1", 0), foreign), Bugs::none()),
            Err(LedgerError::WrongShard {
                account: MERCHANT,
                shard: ShardId(0),
            })
        );
        let unknown = TccAction::Credit {
            account: AccountId(6),
            amount: amt(100),
        };
        assert_eq!(
            run(&mut c, try_(&bk("x2", 0), unknown), Bugs::none()),
            Err(LedgerError::UnknownAccount(AccountId(6)))
        );
        assert_eq!(fence_rows(&c), vec![]);
        assert_eq!(holds(&c), vec![]);
    }

    #[test]
    fn recovery_rebuilds_fences_holds_and_tcc_postings() {
        let mut c = LedgerCore::new(ShardId(0), SHARDS, Bugs::none());
        let mut log = Vec::new();
        let fund = LedgerCommand::Post {
            request: RequestId::new("fund-payer"),
            legs: vec![
                Leg::debit(AccountId::world(ShardId(0)), amt(10_000)),
                Leg::credit(PAYER, amt(10_000)),
            ],
        };
        let (k1, k2, k3, k4) = (bk("x1", 0), bk("x2", 0), bk("x3", 0), bk("x4", 0));
        let commands = [
            LedgerCommand::OpenAccount {
                account: PAYER,
                subject: Subject::User,
            },
            fund,
            try_(&k1, debit(3_000)),
            confirm(&k1),
            try_(&k2, debit(2_000)),
            cancel(&k2),
            cancel(&k3),
            try_(&k3, debit(1_000)), // refused: writes nothing
            try_(&k4, debit(500)),   // left in Try
        ];
        for cmd in commands {
            if let Decision::Write(rec) = c.decide(&cmd, 9, Bugs::none()) {
                let _ = c.apply(rec.clone());
                log.push(rec);
            }
        }
        assert_eq!(log.len(), 8);
        let r = LedgerCore::recover(ShardId(0), SHARDS, Bugs::none(), &log);
        assert_eq!(
            r.accounts().collect::<Vec<_>>(),
            c.accounts().collect::<Vec<_>>()
        );
        assert_eq!(r.vouchers(), c.vouchers());
        assert_eq!(r.journal(), c.journal());
        assert_eq!(fence_rows(&r), fence_rows(&c));
        assert_eq!(holds(&r), holds(&c));
        // The rebuilt state is the expected one, not merely the same as the live one.
        assert_eq!(bal(&r, PAYER), (d(6_500), d(500)));
        assert_eq!(
            fence_rows(&r),
            vec![
                (k1.clone(), FenceState::Committed),
                (k2, FenceState::RolledBack),
                (k3, FenceState::Suspended),
                (k4.clone(), FenceState::Tried),
            ]
        );
        assert_eq!(holds(&r), vec![(k4, debit(500))]);
        // And it decides the same: a repeated Confirm is still answered without a record.
        assert_eq!(
            r.decide(&confirm(&k1), 10, Bugs::none()),
            Decision::Reply(Ok(LedgerReply::Confirmed))
        );
    }

    #[test]
    fn planted_no_fence_lets_a_late_try_hang_after_an_empty_rollback() {
        let bugs = Bugs::planted(Bug::TccNoFence);
        let mut c = payer_shard(bugs);
        let k = bk("x1", 0);
        assert_eq!(
            c.decide(&cancel(&k), 0, bugs),
            Decision::Reply(Ok(LedgerReply::Cancelled)),
            "the empty rollback leaves no record"
        );
        assert_eq!(c.fences().get(&k), None);
        assert_eq!(
            run(&mut c, try_(&k, debit(3_000)), bugs),
            Ok(LedgerReply::Tried)
        );
        // Nobody will Cancel again: 30.00 stays frozen for ever.
        assert_eq!(bal(&c, PAYER), (d(7_000), d(3_000)));
        assert_eq!(holds(&c), vec![(k, debit(3_000))]);
    }

    #[test]
    fn planted_confirm_not_idempotent_posts_a_repeat_twice() {
        let bugs = Bugs::planted(Bug::TccConfirmNotIdempotent);
        let mut c = payer_shard(bugs);
        let k = bk("x1", 0);
        run(&mut c, try_(&k, debit(3_000)), bugs).unwrap();
        assert_eq!(run(&mut c, confirm(&k), bugs), Ok(LedgerReply::Confirmed));
        assert_eq!(run(&mut c, confirm(&k), bugs), Ok(LedgerReply::Confirmed));
        assert_eq!(c.vouchers().len(), 3, "funding + the branch twice");
        let tcc: Vec<_> = c.vouchers()[1..]
            .iter()
            .map(|v| v.request.clone())
            .collect();
        assert_eq!(tcc, vec![RequestId::new("tcc:x1:0"); 2]);
        assert_eq!(bal(&c, PAYER), (d(4_000), d(0)));
        assert_eq!(bal(&c, transit(0)), (d(6_000), d(0)));
        assert_eq!(c.fences().get(&k), Some(FenceState::Committed));
    }

    #[test]
    fn planted_cancel_not_idempotent_releases_twice_and_frozen_goes_negative() {
        let bugs = Bugs::planted(Bug::TccCancelNotIdempotent);
        let mut c = payer_shard(bugs);
        let k = bk("x1", 0);
        run(&mut c, try_(&k, debit(3_000)), bugs).unwrap();
        assert_eq!(run(&mut c, cancel(&k), bugs), Ok(LedgerReply::Cancelled));
        assert_eq!(bal(&c, PAYER), (d(10_000), d(0)));
        assert_eq!(run(&mut c, cancel(&k), bugs), Ok(LedgerReply::Cancelled));
        assert_eq!(bal(&c, PAYER), (d(13_000), d(-3_000)));
        assert_eq!(c.fences().get(&k), Some(FenceState::RolledBack));
    }
}

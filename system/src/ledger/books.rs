//! A shard's books: accounts, plain freezes, vouchers and the journal, with idempotency by
//! request id and freeze key. Every strategy posts through them; a strategy's participant
//! ([`super::participant`]) keeps its own state beside them and changes balances only through
//! the operations here.

use super::changes::LedgerChanges;
use super::core::LedgerRecord;
use super::types::*;
use crate::bugs::{Bug, Bugs};
use crate::ids::{AccountId, RequestId, ShardId, VoucherId, Xid};
use crate::money::{zero, Amount};
use crate::tcc::fence::BranchKey;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// The reply a command stands for.
pub type Outcome = Result<LedgerReply, LedgerError>;

/// What the shell must do with a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Reply at once; nothing to write.
    Reply(Outcome),
    /// Append this record, apply it, and reply with what `apply` returns once it is durable.
    Write(LedgerRecord),
}

/// One shard's books.
#[derive(Debug, Clone)]
pub struct Books {
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
    /// The planted bug, if any. `apply` skips exactly the assertions the bug relaxes
    /// ([`Bugs::relaxes`]), so that a checker (not an assertion) has to catch it.
    bugs: Bugs,
    /// What changed since the harness's observer last took it (never read by the platform).
    changes: LedgerChanges,
}

impl Books {
    /// Books holding only the shard's sub-account of the world and its transit account.
    pub fn new(shard: ShardId, shards: u32, bugs: Bugs) -> Self {
        assert!(shard.0 < shards, "shard {shard} out of range 0..{shards}");
        let mut books = Books {
            shard,
            shards,
            accounts: BTreeMap::new(),
            freezes: BTreeMap::new(),
            vouchers: Vec::new(),
            journal: Vec::new(),
            posts: BTreeMap::new(),
            freeze_outcomes: BTreeMap::new(),
            bugs,
            changes: LedgerChanges::default(),
        };
        books.open_platform(AccountId::world(shard), Subject::World);
        books.open_platform(AccountId::transit(shard, shards), Subject::Transit);
        books
    }

    /// Opens a platform account at construction (not a record: every replay opens it again).
    fn open_platform(&mut self, id: AccountId, subject: Subject) {
        let account = Account {
            id,
            subject,
            available: zero(),
            frozen: zero(),
        };
        self.accounts.insert(id, account);
    }

    /// Opens this shard's sub-accounts of the clearing accounts of `banks` banks: the reserve
    /// at each bank and its withdrawals in transit (platform accounts, like the world's).
    pub fn open_clearing(&mut self, banks: u32) {
        let (shard, shards) = (self.shard, self.shards);
        for bank in 0..banks {
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
                self.open_platform(id, subject);
            }
        }
    }

    pub fn shard(&self) -> ShardId {
        self.shard
    }
    pub fn shards(&self) -> u32 {
        self.shards
    }
    pub fn bugs(&self) -> Bugs {
        self.bugs
    }
    /// Plants another bug in a shard already built (tests that switch a bug on mid-way).
    #[cfg(test)]
    pub(crate) fn plant(&mut self, bugs: Bugs) {
        self.bugs = bugs;
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
    pub fn freeze(&self, key: &str) -> Option<&Freeze> {
        self.freezes.get(key)
    }
    pub fn vouchers(&self) -> &[Voucher] {
        &self.vouchers
    }
    pub fn journal(&self) -> &[JournalEntry] {
        &self.journal
    }
    /// The first outcome of request `request`, if it was posted or refused.
    pub fn post_outcome(&self, request: &RequestId) -> Option<&Outcome> {
        self.posts.get(request).map(|(_, outcome)| outcome)
    }
    /// The id the next voucher posted here gets.
    pub fn next_voucher(&self) -> VoucherId {
        VoucherId {
            shard: self.shard,
            seq: self.vouchers.len() as u64,
        }
    }

    /// What changed since the last call (or since the books were built), and starts afresh:
    /// the harness's incremental capture. Changes nothing the platform reads.
    pub fn take_changes(&mut self) -> LedgerChanges {
        let next = LedgerChanges::at(self.vouchers.len(), self.journal.len());
        std::mem::replace(&mut self.changes, next)
    }

    /// Notes that a participant's reservation `branch` was made or released.
    pub fn note_hold(&mut self, branch: &BranchKey) {
        self.changes.holds.insert(branch.clone());
    }

    pub fn check_home(&self, account: AccountId) -> Result<(), LedgerError> {
        if account.shard(self.shards) != self.shard {
            return Err(LedgerError::WrongShard {
                account,
                shard: self.shard,
            });
        }
        Ok(())
    }
}

/// Decisions: what a command means against the books.
impl Books {
    pub fn decide_open(&self, account: AccountId, subject: Subject) -> Decision {
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

    /// A post (of a movement's step, if any): the first outcome of `request` again, or
    /// the voucher, or a durable refusal.
    pub fn decide_post(
        &self,
        request: &RequestId,
        legs: &[Leg],
        movement: Option<(&Xid, Step)>,
        now_ms: u64,
    ) -> Decision {
        let bugs = self.bugs;
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
                id: self.next_voucher(),
                request: request.clone(),
                legs: legs.to_vec(),
                posted_ms: now_ms,
                xid: movement.map(|(xid, _)| xid.clone()),
                step: movement.map(|(_, step)| step),
            })),
            Err(error) => Decision::Write(self.refusal(request, legs, error)),
        }
    }

    /// The durable refusal of request `request` (with these legs).
    pub fn refusal(&self, request: &RequestId, legs: &[Leg], error: LedgerError) -> LedgerRecord {
        LedgerRecord::PostRefused {
            request: request.clone(),
            body: legs_fingerprint(legs),
            error,
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

    pub fn decide_freeze(&self, key: &str, account: AccountId, amount: Amount) -> Decision {
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

    pub fn decide_unfreeze(&self, key: &str) -> Decision {
        match self.freezes.contains_key(key) {
            true => Decision::Write(LedgerRecord::Unfrozen {
                key: key.to_string(),
            }),
            false => Decision::Reply(Ok(LedgerReply::Unfrozen)),
        }
    }
}

/// Effects: the books' records applied.
impl Books {
    pub fn apply_open(&mut self, account: AccountId, subject: Subject) -> Outcome {
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

    pub fn apply_post_refused(
        &mut self,
        request: RequestId,
        body: u64,
        error: LedgerError,
    ) -> Outcome {
        self.posts.insert(request, (body, Err(error.clone())));
        Err(error)
    }

    pub fn apply_freeze_refused(&mut self, key: String, error: LedgerError) -> Outcome {
        self.freeze_outcomes.insert(key, Err(error.clone()));
        Err(error)
    }

    pub fn apply_frozen(&mut self, key: String, account: AccountId, amount: Amount) -> Outcome {
        self.changes.freezes.insert(key.clone());
        self.reserve(account, amount, true);
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

    pub fn apply_unfrozen(&mut self, key: &str) -> Outcome {
        let f = self.freezes.remove(key).expect("unfrozen key exists");
        self.changes.freezes.insert(key.to_string());
        self.release(f.account, f.amount, true);
        Ok(LedgerReply::Unfrozen)
    }

    /// Moves `amount` of `account` from available to frozen; asserts it does not overdraw
    /// when `checked`.
    pub fn reserve(&mut self, account: AccountId, amount: Amount, checked: bool) {
        let a = self.account_mut(account);
        a.available -= amount.value();
        a.frozen += amount.value();
        assert!(
            !checked || a.available >= Decimal::ZERO,
            "a reservation overdrew {account}"
        );
    }

    /// Gives a reservation back: frozen money becomes available again; asserts frozen stays
    /// non-negative when `checked`.
    pub fn release(&mut self, account: AccountId, amount: Amount, checked: bool) {
        let a = self.account_mut(account);
        a.frozen -= amount.value();
        a.available += amount.value();
        assert!(
            !checked || a.frozen >= Decimal::ZERO,
            "a release made {account} frozen negative"
        );
    }

    /// An account about to change (so also one the observer will read again).
    fn account_mut(&mut self, id: AccountId) -> &mut Account {
        self.changes.accounts.insert(id);
        self.accounts
            .get_mut(&id)
            .unwrap_or_else(|| panic!("{id} exists"))
    }

    pub fn apply_post(&mut self, voucher: Voucher) -> Outcome {
        // Asserted again on replay: a log can never hold an unbalanced voucher.
        check_balanced(&voucher.legs).expect("a posted voucher is balanced");
        assert_eq!(
            voucher.id,
            self.next_voucher(),
            "vouchers are applied in sequence"
        );
        for leg in &voucher.legs {
            self.account_mut(leg.account).available += leg.signed();
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
        let side = u64::from(leg.side == Side::Credit);
        for word in [leg.account.0, side, leg.amount.fen() as u64] {
            for byte in word.to_le_bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    hash
}

//! Movements of money across ledger shards, seen the same way whatever the strategy: the
//! bottom of the strategy graph, which every coordinator and the harness's observer share.
//!
//! - [`Movement`]: what the payment service asks (legs on any shards, all or none), and
//!   [`MovementOutcome`], what it is told (committed, aborted, or heuristic).
//! - [`MovementView`]: the neutral view of one movement: its legs as [`Branch`]es, its
//!   [`Phase`] and the phase history; the checkers judge every strategy by it.
//! - [`MovementLog`]: a deterministic fold of [`MovementRecord`]s that asserts every phase
//!   change is legal. The TCC and 2PC managers keep their business-activity log (业务活动日志)
//!   in it; saga, outbox and naive coordinators fold their own records into it as their view.

pub use crate::ids::Xid;
use crate::ids::{AccountId, ShardId};
use crate::ledger::Leg;
use crate::money::Amount;
use crate::refusal::Refusal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One movement of money: legs on any shards that must all happen or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// The global transaction id, unique across the platform.
    pub xid: Xid,
    pub legs: Vec<Leg>,
}

/// Which part of its movement a posting is: the step of leg `index` (the movement's legs in
/// order; a TCC branch's index), or that step's compensation (`undo`, a saga's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Step {
    pub index: u32,
    pub undo: bool,
}

impl Step {
    /// Leg `index`'s step.
    pub fn of(index: u32) -> Step {
        Step { index, undo: false }
    }
    /// The compensation of leg `index`'s step.
    pub fn undo(index: u32) -> Step {
        Step { index, undo: true }
    }
}

/// How a movement ended, as its caller is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MovementOutcome {
    /// Every leg was posted.
    Committed,
    /// No leg was posted (or every posted leg was undone); why, with the code the client is
    /// told (a branch's insufficient funds stays `insufficient-funds`).
    Aborted(Refusal),
    /// The legs ended differently and nobody can tell the client one outcome: in doubt for
    /// good (only planted bugs, and strategies that do not claim atomicity, get here).
    Heuristic(String),
}

/// What one leg of a movement does on its shard. Under TCC and 2PC both sides go through the
/// shard's transit account, so every shard balances on its own at every instant, whichever
/// branches have been confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegAction {
    /// Try freezes `amount` on `account`; Confirm posts Dr account / Cr transit.
    Debit { account: AccountId, amount: Amount },
    /// Try prepares the credit (reserved, in no balance); Confirm posts Dr transit / Cr account.
    Credit { account: AccountId, amount: Amount },
}

impl LegAction {
    pub fn account(&self) -> AccountId {
        match *self {
            LegAction::Debit { account, .. } | LegAction::Credit { account, .. } => account,
        }
    }
    pub fn amount(&self) -> Amount {
        match *self {
            LegAction::Debit { amount, .. } | LegAction::Credit { amount, .. } => amount,
        }
    }
}

/// A movement's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Begun; legs being prepared or posted; no decision yet.
    Running,
    /// Decided to commit: every leg must end posted.
    Committing,
    /// Decided to abort: every leg must end unposted (released, or compensated).
    Aborting,
    Committed,
    Aborted,
    /// Some leg refused the decision: the legs did not end the same way.
    Heuristic,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Committed | Phase::Aborted | Phase::Heuristic)
    }

    /// Decided but not ended: participants may still hold what the decision must settle
    /// (a 2PC branch in doubt, a compensation not yet posted).
    pub fn in_doubt(self) -> bool {
        matches!(self, Phase::Committing | Phase::Aborting)
    }

    pub fn can_become(self, next: Phase) -> bool {
        use Phase::*;
        matches!(
            (self, next),
            (Running, Committing)
                | (Running, Aborting)
                | (Committing, Committed)
                | (Aborting, Aborted)
                | (Committing, Heuristic)
                | (Aborting, Heuristic)
        )
    }
}

/// One branch: an action on one ledger shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    pub shard: ShardId,
    pub action: LegAction,
}

impl Branch {
    /// A movement's leg as a branch on its account's shard (the neutral view every strategy
    /// gives of its movements).
    pub fn of_leg(leg: &crate::ledger::Leg, shards: u32) -> Branch {
        let (account, amount) = (leg.account, leg.amount);
        Branch {
            shard: account.shard(shards),
            action: match leg.side {
                crate::ledger::Side::Debit => LegAction::Debit { account, amount },
                crate::ledger::Side::Credit => LegAction::Credit { account, amount },
            },
        }
    }
}

/// One movement as its log describes it: the neutral view every strategy gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovementView {
    pub xid: Xid,
    pub branches: Vec<Branch>,
    pub status: Phase,
    /// Every status it has had, oldest first.
    pub history: Vec<Phase>,
    /// Why it was rolled back: the refusal (with its code) the client is told.
    pub reason: Option<Refusal>,
    /// Why it ended heuristically: which branches refused phase two.
    pub heuristic: Option<String>,
}

/// One durable change to a movement log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MovementRecord {
    Begun {
        xid: Xid,
        branches: Vec<Branch>,
    },
    /// COMMIT (`reason` is `None`) or ROLLBACK with the refusal that caused it.
    Decided {
        xid: Xid,
        commit: bool,
        reason: Option<Refusal>,
    },
    /// Every branch answered phase two; `heuristic` says which refused, if any did.
    Ended {
        xid: Xid,
        status: Phase,
        heuristic: Option<String>,
    },
}

/// Every movement of one coordinator.
#[derive(Debug, Clone, Default)]
pub struct MovementLog {
    activities: BTreeMap<Xid, MovementView>,
    /// Activities changed since the harness's observer last took them (never read by the
    /// platform).
    changed: BTreeSet<Xid>,
    /// Activities not yet ended, so progress reads touch only those (derived from
    /// `activities`; kept by `apply`).
    open: BTreeSet<Xid>,
}

impl MovementLog {
    pub fn recover(records: &[MovementRecord]) -> Self {
        let mut log = MovementLog::default();
        for r in records {
            log.apply(r.clone());
        }
        log
    }

    pub fn get(&self, xid: &Xid) -> Option<&MovementView> {
        self.activities.get(xid)
    }

    pub fn activities(&self) -> impl Iterator<Item = &MovementView> {
        self.activities.values()
    }

    /// Activities not yet ended, in xid order.
    pub fn unfinished(&self) -> Vec<Xid> {
        self.open.iter().cloned().collect()
    }

    /// The activities not yet ended, in xid order.
    pub fn open_activities(&self) -> impl Iterator<Item = &MovementView> {
        self.open.iter().map(|xid| &self.activities[xid])
    }

    /// The activities changed since the last call (or since the log was built), and starts
    /// afresh: the harness's incremental capture. Changes nothing the platform reads.
    pub fn take_changed(&mut self) -> Vec<&MovementView> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .iter()
            .filter_map(|xid| self.activities.get(xid))
            .collect()
    }

    pub fn apply(&mut self, record: MovementRecord) {
        let xid = match &record {
            MovementRecord::Begun { xid, .. }
            | MovementRecord::Decided { xid, .. }
            | MovementRecord::Ended { xid, .. } => xid.clone(),
        };
        self.changed.insert(xid.clone());
        self.apply_change(record);
        if self.activities[&xid].status.is_terminal() {
            self.open.remove(&xid);
        } else {
            self.open.insert(xid);
        }
    }

    fn apply_change(&mut self, record: MovementRecord) {
        match record {
            MovementRecord::Begun { xid, branches } => {
                assert!(!branches.is_empty(), "movement {xid} has no branch");
                let previous = self.activities.insert(
                    xid.clone(),
                    MovementView {
                        xid: xid.clone(),
                        branches,
                        status: Phase::Running,
                        history: vec![Phase::Running],
                        reason: None,
                        heuristic: None,
                    },
                );
                assert!(previous.is_none(), "movement {xid} begun twice");
            }
            MovementRecord::Decided {
                xid,
                commit,
                reason,
            } => {
                let next = if commit {
                    Phase::Committing
                } else {
                    Phase::Aborting
                };
                let a = self.move_to(&xid, next);
                a.reason = reason;
            }
            MovementRecord::Ended {
                xid,
                status,
                heuristic,
            } => {
                let a = self.move_to(&xid, status);
                a.heuristic = heuristic;
            }
        }
    }

    fn move_to(&mut self, xid: &Xid, next: Phase) -> &mut MovementView {
        let a = self
            .activities
            .get_mut(xid)
            .unwrap_or_else(|| panic!("movement {xid} exists"));
        assert!(
            a.status.can_become(next),
            "illegal movement transition {:?} -> {next:?} for {xid}",
            a.status
        );
        a.status = next;
        a.history.push(next);
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AccountId;
    use crate::money::Amount;

    fn begun(xid: &str) -> MovementRecord {
        let action = LegAction::Debit {
            account: AccountId(9),
            amount: Amount::from_fen(100).unwrap(),
        };
        MovementRecord::Begun {
            xid: xid.into(),
            branches: vec![Branch {
                shard: ShardId(1),
                action,
            }],
        }
    }

    #[test]
    fn an_activity_moves_through_its_statuses_and_ends() {
        let mut log = MovementLog::default();
        log.apply(begun("x1"));
        assert_eq!(log.unfinished(), vec![Xid::from("x1")]);
        log.apply(MovementRecord::Decided {
            xid: "x1".into(),
            commit: true,
            reason: None,
        });
        log.apply(MovementRecord::Ended {
            xid: "x1".into(),
            status: Phase::Committed,
            heuristic: None,
        });
        let a = log.get(&"x1".into()).unwrap();
        assert_eq!(
            a.history,
            vec![Phase::Running, Phase::Committing, Phase::Committed]
        );
        assert!(log.unfinished().is_empty());
    }

    #[test]
    #[should_panic(expected = "illegal movement transition")]
    fn committing_cannot_roll_back() {
        let mut log = MovementLog::default();
        log.apply(begun("x1"));
        for commit in [true, false] {
            log.apply(MovementRecord::Decided {
                xid: "x1".into(),
                commit,
                reason: None,
            });
        }
    }
}

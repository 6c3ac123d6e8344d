//! The business-activity log (业务活动日志) of a TCC manager: a deterministic fold of records.
//!
//! An activity is begun with its branches, then decided (commit or rollback), then ended when
//! every branch has answered phase two. The manager writes the records; this module only
//! folds them and asserts that every status change is legal.

use crate::ids::{ShardId, Xid};
use crate::ledger::TccAction;
use crate::refusal::Refusal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// An activity's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ActivityStatus {
    /// Begun; branches being tried; no decision yet.
    Trying,
    /// COMMIT logged: every branch must be confirmed.
    Committing,
    /// ROLLBACK logged: every branch must be cancelled.
    RollingBack,
    Committed,
    RolledBack,
    /// Some branch refused phase two: the branches did not end the same way.
    Heuristic,
}

impl ActivityStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ActivityStatus::Committed | ActivityStatus::RolledBack | ActivityStatus::Heuristic
        )
    }

    pub fn can_become(self, next: ActivityStatus) -> bool {
        use ActivityStatus::*;
        matches!(
            (self, next),
            (Trying, Committing)
                | (Trying, RollingBack)
                | (Committing, Committed)
                | (RollingBack, RolledBack)
                | (Committing, Heuristic)
                | (RollingBack, Heuristic)
        )
    }
}

/// One branch: an action on one ledger shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    pub shard: ShardId,
    pub action: TccAction,
}

impl Branch {
    /// A movement's leg as a branch on its account's shard (the neutral view every strategy
    /// gives of its movements).
    pub fn of_leg(leg: &crate::ledger::Leg, shards: u32) -> Branch {
        let (account, amount) = (leg.account, leg.amount);
        Branch {
            shard: account.shard(shards),
            action: match leg.side {
                crate::ledger::Side::Debit => TccAction::Debit { account, amount },
                crate::ledger::Side::Credit => TccAction::Credit { account, amount },
            },
        }
    }
}

/// One activity as the log describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub xid: Xid,
    pub branches: Vec<Branch>,
    pub status: ActivityStatus,
    /// Every status it has had, oldest first.
    pub history: Vec<ActivityStatus>,
    /// Why it was rolled back: the refusal (with its code) the client is told.
    pub reason: Option<Refusal>,
    /// Why it ended heuristically: which branches refused phase two.
    pub heuristic: Option<String>,
}

/// One durable change to the activity log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivityRecord {
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
        status: ActivityStatus,
        heuristic: Option<String>,
    },
}

/// Every activity of one manager.
#[derive(Debug, Clone, Default)]
pub struct ActivityLog {
    activities: BTreeMap<Xid, Activity>,
    /// Activities changed since the harness's observer last took them (never read by the
    /// platform).
    changed: BTreeSet<Xid>,
    /// Activities not yet ended, so progress reads touch only those (derived from
    /// `activities`; kept by `apply`).
    open: BTreeSet<Xid>,
}

impl ActivityLog {
    pub fn recover(records: &[ActivityRecord]) -> Self {
        let mut log = ActivityLog::default();
        for r in records {
            log.apply(r.clone());
        }
        log
    }

    pub fn get(&self, xid: &Xid) -> Option<&Activity> {
        self.activities.get(xid)
    }

    pub fn activities(&self) -> impl Iterator<Item = &Activity> {
        self.activities.values()
    }

    /// Activities not yet ended, in xid order.
    pub fn unfinished(&self) -> Vec<Xid> {
        self.open.iter().cloned().collect()
    }

    /// The activities not yet ended, in xid order.
    pub fn open_activities(&self) -> impl Iterator<Item = &Activity> {
        self.open.iter().map(|xid| &self.activities[xid])
    }

    /// The activities changed since the last call (or since the log was built), and starts
    /// afresh: the harness's incremental capture. Changes nothing the platform reads.
    pub fn take_changed(&mut self) -> Vec<&Activity> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .iter()
            .filter_map(|xid| self.activities.get(xid))
            .collect()
    }

    pub fn apply(&mut self, record: ActivityRecord) {
        let xid = match &record {
            ActivityRecord::Begun { xid, .. }
            | ActivityRecord::Decided { xid, .. }
            | ActivityRecord::Ended { xid, .. } => xid.clone(),
        };
        self.changed.insert(xid.clone());
        self.apply_change(record);
        if self.activities[&xid].status.is_terminal() {
            self.open.remove(&xid);
        } else {
            self.open.insert(xid);
        }
    }

    fn apply_change(&mut self, record: ActivityRecord) {
        match record {
            ActivityRecord::Begun { xid, branches } => {
                assert!(!branches.is_empty(), "activity {xid} has no branch");
                let previous = self.activities.insert(
                    xid.clone(),
                    Activity {
                        xid: xid.clone(),
                        branches,
                        status: ActivityStatus::Trying,
                        history: vec![ActivityStatus::Trying],
                        reason: None,
                        heuristic: None,
                    },
                );
                assert!(previous.is_none(), "activity {xid} begun twice");
            }
            ActivityRecord::Decided {
                xid,
                commit,
                reason,
            } => {
                let next = if commit {
                    ActivityStatus::Committing
                } else {
                    ActivityStatus::RollingBack
                };
                let a = self.move_to(&xid, next);
                a.reason = reason;
            }
            ActivityRecord::Ended {
                xid,
                status,
                heuristic,
            } => {
                let a = self.move_to(&xid, status);
                a.heuristic = heuristic;
            }
        }
    }

    fn move_to(&mut self, xid: &Xid, next: ActivityStatus) -> &mut Activity {
        let a = self
            .activities
            .get_mut(xid)
            .unwrap_or_else(|| panic!("activity {xid} exists"));
        assert!(
            a.status.can_become(next),
            "illegal activity transition {:?} -> {next:?} for {xid}",
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

    fn begun(xid: &str) -> ActivityRecord {
        let action = TccAction::Debit {
            account: AccountId(9),
            amount: Amount::from_fen(100).unwrap(),
        };
        ActivityRecord::Begun {
            xid: xid.into(),
            branches: vec![Branch {
                shard: ShardId(1),
                action,
            }],
        }
    }

    #[test]
    fn an_activity_moves_through_its_statuses_and_ends() {
        let mut log = ActivityLog::default();
        log.apply(begun("x1"));
        assert_eq!(log.unfinished(), vec![Xid::from("x1")]);
        log.apply(ActivityRecord::Decided {
            xid: "x1".into(),
            commit: true,
            reason: None,
        });
        log.apply(ActivityRecord::Ended {
            xid: "x1".into(),
            status: ActivityStatus::Committed,
            heuristic: None,
        });
        let a = log.get(&"x1".into()).unwrap();
        assert_eq!(
            a.history,
            vec![
                ActivityStatus::Trying,
                ActivityStatus::Committing,
                ActivityStatus::Committed
            ]
        );
        assert!(log.unfinished().is_empty());
    }

    #[test]
    #[should_panic(expected = "illegal activity transition")]
    fn committing_cannot_roll_back() {
        let mut log = ActivityLog::default();
        log.apply(begun("x1"));
        for commit in [true, false] {
            log.apply(ActivityRecord::Decided {
                xid: "x1".into(),
                commit,
                reason: None,
            });
        }
    }
}

//! The TCC fence: one row per (xid, branch) that makes Try, Confirm and Cancel safe to repeat,
//! reorder and lose, following Seata's rules (see PLATFORM.md).
//!
//! The fence row must be written in the same durable record as the branch's business effect;
//! this module only decides. Each phase asks [`Fences::try_`], [`Fences::confirm`] or
//! [`Fences::cancel`] what to do, and gets back whether to perform the business effect (and which
//! state to write) or just to answer.
//!
//! | phase   | no row                          | TRIED                  | COMMITTED | ROLLED_BACK / SUSPENDED |
//! |---------|---------------------------------|------------------------|-----------|-------------------------|
//! | Try     | insert TRIED + effect           | repeat: ok             | ok        | refuse (anti-hanging)   |
//! | Confirm | refuse                          | COMMITTED + effect     | ok        | refuse                  |
//! | Cancel  | insert SUSPENDED (empty rollback)| ROLLED_BACK + release | refuse    | ok                      |

use crate::ids::Xid;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A branch of a global transaction: the xid and the branch's index within it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BranchKey {
    pub xid: Xid,
    pub branch: u32,
}

impl std::fmt::Display for BranchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.xid, self.branch)
    }
}

/// The state of a fence row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FenceState {
    Tried,
    Committed,
    RolledBack,
    /// Written by a Cancel that found no Try: the branch may never be tried afterwards.
    Suspended,
}

/// What a phase must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceDecision {
    /// Perform the phase's business effect and write the row in this state, atomically.
    Apply(FenceState),
    /// Write only the row (an empty rollback records SUSPENDED); no business effect.
    Record(FenceState),
    /// Nothing to do: the phase already happened; answer success.
    AlreadyDone,
    /// Refuse the phase; the row is left as it is.
    Refuse(FenceRefusal),
}

/// Why a phase is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum FenceRefusal {
    #[error("the branch was already cancelled: a late Try must not reserve money (anti-hanging)")]
    TryAfterCancel,
    #[error("Confirm without a Try: nothing was reserved")]
    ConfirmWithoutTry,
    #[error("Confirm after Cancel")]
    ConfirmAfterCancel,
    #[error("Cancel after Confirm")]
    CancelAfterConfirm,
}

/// Every fence row of one participant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fences {
    rows: BTreeMap<BranchKey, FenceState>,
}

impl Fences {
    pub fn get(&self, key: &BranchKey) -> Option<FenceState> {
        self.rows.get(key).copied()
    }

    pub fn rows(&self) -> impl Iterator<Item = (&BranchKey, FenceState)> {
        self.rows.iter().map(|(k, s)| (k, *s))
    }

    /// What a Try must do.
    pub fn try_(&self, key: &BranchKey) -> FenceDecision {
        match self.get(key) {
            None => FenceDecision::Apply(FenceState::Tried),
            Some(FenceState::Tried | FenceState::Committed) => FenceDecision::AlreadyDone,
            Some(FenceState::RolledBack | FenceState::Suspended) => {
                FenceDecision::Refuse(FenceRefusal::TryAfterCancel)
            }
        }
    }

    /// What a Confirm must do.
    pub fn confirm(&self, key: &BranchKey) -> FenceDecision {
        match self.get(key) {
            None => FenceDecision::Refuse(FenceRefusal::ConfirmWithoutTry),
            Some(FenceState::Tried) => FenceDecision::Apply(FenceState::Committed),
            Some(FenceState::Committed) => FenceDecision::AlreadyDone,
            Some(FenceState::RolledBack | FenceState::Suspended) => {
                FenceDecision::Refuse(FenceRefusal::ConfirmAfterCancel)
            }
        }
    }

    /// What a Cancel must do.
    pub fn cancel(&self, key: &BranchKey) -> FenceDecision {
        match self.get(key) {
            None => FenceDecision::Record(FenceState::Suspended),
            Some(FenceState::Tried) => FenceDecision::Apply(FenceState::RolledBack),
            Some(FenceState::Committed) => FenceDecision::Refuse(FenceRefusal::CancelAfterConfirm),
            Some(FenceState::RolledBack | FenceState::Suspended) => FenceDecision::AlreadyDone,
        }
    }

    /// Writes a row without judging the transition: only for planted bugs, whose records
    /// break the rules on purpose so that a checker (not an assertion) has to notice.
    pub fn force(&mut self, key: BranchKey, state: FenceState) {
        self.rows.insert(key, state);
    }

    /// Writes a row, asserting the transition is one the rules allow.
    pub fn set(&mut self, key: BranchKey, state: FenceState) {
        let from = self.rows.get(&key).copied();
        let legal = matches!(
            (from, state),
            (None, FenceState::Tried | FenceState::Suspended)
                | (
                    Some(FenceState::Tried),
                    FenceState::Committed | FenceState::RolledBack
                )
        );
        assert!(
            legal,
            "illegal fence transition {from:?} -> {state:?} for {key:?}"
        );
        self.rows.insert(key, state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FenceDecision::*;
    use FenceState::*;

    fn key() -> BranchKey {
        BranchKey {
            xid: "x1".into(),
            branch: 0,
        }
    }

    /// Runs a phase decision and writes the row the way a participant would.
    fn step(f: &mut Fences, phase: fn(&Fences, &BranchKey) -> FenceDecision) -> FenceDecision {
        let d = phase(f, &key());
        if let Apply(s) | Record(s) = d {
            f.set(key(), s);
        }
        d
    }

    #[test]
    fn try_then_confirm_commits_once() {
        let mut f = Fences::default();
        assert_eq!(step(&mut f, Fences::try_), Apply(Tried));
        assert_eq!(step(&mut f, Fences::try_), AlreadyDone);
        assert_eq!(step(&mut f, Fences::confirm), Apply(Committed));
        assert_eq!(
            step(&mut f, Fences::confirm),
            AlreadyDone,
            "Confirm is idempotent"
        );
        assert_eq!(f.cancel(&key()), Refuse(FenceRefusal::CancelAfterConfirm));
    }

    #[test]
    fn try_then_cancel_releases_once() {
        let mut f = Fences::default();
        step(&mut f, Fences::try_);
        assert_eq!(step(&mut f, Fences::cancel), Apply(RolledBack));
        assert_eq!(
            step(&mut f, Fences::cancel),
            AlreadyDone,
            "Cancel is idempotent"
        );
        assert_eq!(f.confirm(&key()), Refuse(FenceRefusal::ConfirmAfterCancel));
    }

    #[test]
    fn cancel_before_try_is_an_empty_rollback_and_the_late_try_is_refused() {
        let mut f = Fences::default();
        assert_eq!(step(&mut f, Fences::cancel), Record(Suspended));
        assert_eq!(
            f.try_(&key()),
            Refuse(FenceRefusal::TryAfterCancel),
            "anti-hanging"
        );
        assert_eq!(f.confirm(&key()), Refuse(FenceRefusal::ConfirmAfterCancel));
        assert_eq!(step(&mut f, Fences::cancel), AlreadyDone);
    }

    #[test]
    fn confirm_without_try_is_refused() {
        let f = Fences::default();
        assert_eq!(f.confirm(&key()), Refuse(FenceRefusal::ConfirmWithoutTry));
    }

    #[test]
    fn branches_are_fenced_independently() {
        let mut f = Fences::default();
        f.set(key(), Suspended);
        let other = BranchKey {
            xid: "x1".into(),
            branch: 1,
        };
        assert_eq!(f.try_(&other), Apply(Tried));
    }

    #[test]
    #[should_panic(expected = "illegal fence transition")]
    fn an_illegal_transition_is_asserted() {
        let mut f = Fences::default();
        f.set(key(), Committed);
    }
}

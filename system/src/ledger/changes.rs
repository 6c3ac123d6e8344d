//! What changed on a ledger shard since its observer last asked: the keys of the accounts,
//! freezes and TCC holds touched, and where the append-only vouchers and journal stood. The
//! harness's incremental capture reads only these; the platform never looks at them.

use crate::ids::AccountId;
use crate::tcc::fence::BranchKey;
use std::collections::BTreeSet;

/// Keys touched since the last [`LedgerCore::take_changes`](super::LedgerCore::take_changes);
/// their current values are read from the core.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerChanges {
    pub accounts: BTreeSet<AccountId>,
    /// Keys of plain freezes written or released.
    pub freezes: BTreeSet<String>,
    /// TCC branches whose reservation was made or released.
    pub holds: BTreeSet<BranchKey>,
    /// Vouchers from this position on are new.
    pub vouchers_from: usize,
    /// Journal entries from this position on are new.
    pub journal_from: usize,
}

impl LedgerChanges {
    /// Nothing touched, vouchers and journal read up to the given lengths.
    pub fn at(vouchers_from: usize, journal_from: usize) -> Self {
        LedgerChanges {
            vouchers_from,
            journal_from,
            ..LedgerChanges::default()
        }
    }
}

//! Reconciliation's durable state: the next bank date to reconcile per bank, the statement
//! lines seen so far, and the differences found, folded from its log.

use crate::ids::InstrId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One bank date reconciled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReconRecord {
    Reconciled {
        bank: u32,
        date: u32,
        /// Every instruction the statement listed.
        lines: Vec<InstrId>,
        /// Lines matched as they stood.
        matched: u32,
        /// 长款 found (resolved by statement or corrected) and 短款 found (corrected).
        long: u32,
        short: u32,
        /// Lines no channel order knows, or whose amount differs: held for the next look.
        held: Vec<InstrId>,
    },
}

/// What reconciliation knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconCore {
    /// The next date to reconcile, per bank (absent: 0).
    pub next: BTreeMap<u32, u32>,
    /// Every instruction some statement listed, per bank.
    pub seen: BTreeMap<u32, BTreeSet<InstrId>>,
    /// Lines still held as differences after the last reconciled date, per bank.
    pub held: BTreeMap<u32, BTreeSet<InstrId>>,
}

impl ReconCore {
    pub fn recover(records: &[ReconRecord]) -> Self {
        let mut core = ReconCore::default();
        for r in records {
            core.apply(r.clone());
        }
        core
    }

    pub fn next_date(&self, bank: u32) -> u32 {
        self.next.get(&bank).copied().unwrap_or(0)
    }

    /// Whether `instr` was on some statement of `bank`.
    pub fn was_seen(&self, bank: u32, instr: &InstrId) -> bool {
        self.seen.get(&bank).is_some_and(|s| s.contains(instr))
    }

    pub fn apply(&mut self, record: ReconRecord) {
        let ReconRecord::Reconciled {
            bank,
            date,
            lines,
            held,
            ..
        } = record;
        assert_eq!(
            date,
            self.next_date(bank),
            "bank {bank}'s dates are reconciled in order"
        );
        self.next.insert(bank, date + 1);
        self.seen.entry(bank).or_default().extend(lines);
        // A held line is looked at again with the next statement: what is held now replaces it.
        self.held.insert(bank, held.into_iter().collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reconciled(bank: u32, date: u32, lines: &[&str], held: &[&str]) -> ReconRecord {
        ReconRecord::Reconciled {
            bank,
            date,
            lines: lines.iter().map(|l| InstrId::new(*l)).collect(),
            matched: 0,
            long: 0,
            short: 0,
            held: held.iter().map(|l| InstrId::new(*l)).collect(),
        }
    }

    #[test]
    fn dates_advance_in_order_per_bank_and_lines_are_remembered() {
        let log = [
            reconciled(0, 0, &["a", "b"], &["b"]),
            reconciled(1, 0, &["c"], &[]),
            reconciled(0, 1, &["d"], &[]),
        ];
        let core = ReconCore::recover(&log);
        assert_eq!(
            (core.next_date(0), core.next_date(1), core.next_date(2)),
            (2, 1, 0)
        );
        assert!(core.was_seen(0, &InstrId::new("b")) && !core.was_seen(1, &InstrId::new("b")));
        assert!(
            core.held[&0].is_empty(),
            "b was held on date 0, not again on date 1"
        );
        let held = ReconCore::recover(&log[..1]);
        assert!(held.held[&0].contains(&InstrId::new("b")));
    }

    #[test]
    #[should_panic(expected = "in order")]
    fn a_date_reconciled_twice_is_refused() {
        ReconCore::recover(&[reconciled(0, 0, &[], &[]), reconciled(0, 0, &[], &[])]);
    }
}

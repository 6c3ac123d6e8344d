//! A shard's journal in the checker's world, by sequence number. The platform numbers a
//! shard's entries from 0 without gaps, so they are kept in a vector indexed by sequence
//! number: about half the memory of an ordered map, whose nodes a rising key leaves half
//! full. A sequence number far beyond the rest (only a test makes one) is kept aside, so that
//! no input can make the vector huge.

use crate::JournalEntry;
use std::collections::BTreeMap;

/// How far past the dense part a sequence number may land and still extend it.
const MAX_GAP: u64 = 4096;

/// Journal entries by sequence number.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    /// Entries `0..dense.len()`, each present or not.
    dense: Vec<Option<JournalEntry>>,
    /// Entries at `dense.len()` or beyond that did not extend it.
    sparse: BTreeMap<u64, JournalEntry>,
    len: usize,
}

impl Journal {
    pub fn get(&self, seq: u64) -> Option<&JournalEntry> {
        match usize::try_from(seq) {
            Ok(i) if i < self.dense.len() => self.dense[i].as_ref(),
            _ => self.sparse.get(&seq),
        }
    }

    /// Puts `entry` at `seq`, returning the entry it replaces.
    pub fn insert(&mut self, seq: u64, entry: JournalEntry) -> Option<JournalEntry> {
        let end = self.dense.len() as u64;
        let old = if seq < end {
            self.dense[seq as usize].replace(entry)
        } else if seq - end < MAX_GAP {
            self.extend_to(seq + 1);
            self.dense[seq as usize].replace(entry)
        } else {
            self.sparse.insert(seq, entry)
        };
        self.len += usize::from(old.is_none());
        old
    }

    /// Grows the dense part to `end`, taking in what was kept aside below it.
    fn extend_to(&mut self, end: u64) {
        self.dense.resize(end as usize, None);
        let above = self.sparse.split_off(&end);
        for (seq, e) in std::mem::replace(&mut self.sparse, above) {
            self.dense[seq as usize] = Some(e);
        }
    }

    pub fn remove(&mut self, seq: u64) -> Option<JournalEntry> {
        let old = match usize::try_from(seq) {
            Ok(i) if i < self.dense.len() => self.dense[i].take(),
            _ => self.sparse.remove(&seq),
        };
        self.len -= usize::from(old.is_some());
        old
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries in sequence order.
    pub fn values(&self) -> impl Iterator<Item = &JournalEntry> + '_ {
        self.dense.iter().flatten().chain(self.sparse.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Side;
    use rust_decimal::Decimal;

    fn entry(seq: u64) -> JournalEntry {
        JournalEntry {
            seq,
            voucher: "V".into(),
            account: 1,
            side: Side::Debit,
            amount: Decimal::ONE,
        }
    }

    #[test]
    fn behaves_as_an_ordered_map_for_any_sequence_numbers() {
        let (mut j, mut oracle) = (Journal::default(), BTreeMap::new());
        let mut aside = std::collections::BTreeSet::new();
        let mut x: u64 = 7;
        for step in 0..3_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = x >> 33;
            let seq = match r % 10 {
                0 => u64::MAX - r % 3,
                1..=3 => r % 30_000,
                _ => r % 64,
            };
            if r.is_multiple_of(3) {
                assert_eq!(
                    j.remove(seq),
                    oracle.remove(&seq),
                    "step {step}: remove {seq}"
                );
            } else {
                let old = oracle.insert(seq, entry(seq));
                assert_eq!(j.insert(seq, entry(seq)), old, "step {step}: insert {seq}");
            }
            aside.extend(j.sparse.keys().copied().filter(|&k| k < 30_000));
            assert_eq!(j.len(), oracle.len());
            assert_eq!(j.get(seq), oracle.get(&seq));
        }
        assert!(j.values().eq(oracle.values()));
        assert!(j.sparse.keys().all(|&k| k >= j.dense.len() as u64));
        assert!(
            j.dense.len() <= 30_000,
            "no gap over {MAX_GAP} extends the vector"
        );
        let taken_in = aside.iter().filter(|&&k| k < j.dense.len() as u64).count();
        assert!(
            taken_in > 0,
            "numbers kept aside were taken in as the vector grew"
        );
    }
}

//! A shard's journal in the checker's world, by sequence number. The platform numbers a
//! shard's entries from 0 without gaps, so they are kept in a vector indexed by sequence
//! number: about half the memory of an ordered map, whose nodes a rising key leaves half
//! full. A sequence number far beyond the rest (only a test makes one) is kept aside, so that
//! no input can make the vector huge. Entries below a sealed bound ([`Journal::seal_below`])
//! are given back and their room freed: the vector holds the entries from the bound on.

use crate::JournalEntry;
use std::collections::{BTreeMap, VecDeque};

/// How far past the dense part a sequence number may land and still extend it.
const MAX_GAP: u64 = 4096;

/// Journal entries by sequence number.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    /// Entries `base..base + dense.len()`, each present or not.
    dense: VecDeque<Option<JournalEntry>>,
    /// The sequence number of `dense[0]`: every entry below it was sealed and given back.
    base: u64,
    /// Entries outside the dense part (beyond it and not extending it, or below `base`).
    sparse: BTreeMap<u64, JournalEntry>,
    len: usize,
}

impl Journal {
    /// Where `seq` is in the dense part, if it is there.
    fn slot(&self, seq: u64) -> Option<usize> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        (i < self.dense.len()).then_some(i)
    }

    /// The end of the dense part.
    fn end(&self) -> u64 {
        self.base + self.dense.len() as u64
    }

    pub fn get(&self, seq: u64) -> Option<&JournalEntry> {
        match self.slot(seq) {
            Some(i) => self.dense[i].as_ref(),
            None => self.sparse.get(&seq),
        }
    }

    /// Puts `entry` at `seq`, returning the entry it replaces.
    pub fn insert(&mut self, seq: u64, entry: JournalEntry) -> Option<JournalEntry> {
        let end = self.end();
        let old = if let Some(i) = self.slot(seq) {
            self.dense[i].replace(entry)
        } else if seq >= end && seq - end < MAX_GAP {
            self.extend_to(seq + 1);
            let i = (seq - self.base) as usize;
            self.dense[i].replace(entry)
        } else {
            self.sparse.insert(seq, entry)
        };
        self.len += usize::from(old.is_none());
        old
    }

    /// Grows the dense part to `end`, taking in what was kept aside below it.
    fn extend_to(&mut self, end: u64) {
        let from = self.end();
        self.dense.resize((end - self.base) as usize, None);
        let above = self.sparse.split_off(&end);
        let below = std::mem::replace(&mut self.sparse, above);
        for (seq, e) in below {
            match seq.checked_sub(self.base) {
                Some(i) if seq >= from => self.dense[i as usize] = Some(e),
                _ => {
                    self.sparse.insert(seq, e);
                }
            }
        }
    }

    pub fn remove(&mut self, seq: u64) -> Option<JournalEntry> {
        let old = match self.slot(seq) {
            Some(i) => self.dense[i].take(),
            None => self.sparse.remove(&seq),
        };
        self.len -= usize::from(old.is_some());
        old
    }

    /// Takes out every entry numbered below `bound`, in sequence order, and frees their room:
    /// the dense part starts at `bound` from then on (or where it already started, if later).
    pub fn seal_below(&mut self, bound: u64) -> Vec<JournalEntry> {
        let above = self.sparse.split_off(&bound);
        let aside = std::mem::replace(&mut self.sparse, above);
        let mut out: Vec<JournalEntry> = aside.into_values().collect();
        let take = bound.saturating_sub(self.base).min(self.dense.len() as u64) as usize;
        out.extend(self.dense.drain(..take).flatten());
        self.base = self.base.max(bound);
        self.len -= out.len();
        if self.dense.capacity() > 4 * self.dense.len() + 1024 {
            self.dense.shrink_to(2 * self.dense.len());
        }
        out.sort_by_key(|e| e.seq);
        out
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries in sequence order.
    pub fn values(&self) -> impl Iterator<Item = &JournalEntry> + '_ {
        let (base, end) = (self.base, self.end());
        let below = self.sparse.range(..base).map(|(_, e)| e);
        let beyond = self.sparse.range(end..).map(|(_, e)| e);
        below.chain(self.dense.iter().flatten()).chain(beyond)
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

    /// A step of a linear congruential generator: the tests' own repeatable numbers.
    fn next(x: &mut u64) -> u64 {
        *x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *x >> 33
    }

    #[test]
    fn behaves_as_an_ordered_map_for_any_sequence_numbers() {
        let (mut j, mut oracle) = (Journal::default(), BTreeMap::new());
        let mut aside = std::collections::BTreeSet::new();
        let mut x: u64 = 7;
        for step in 0..3_000 {
            let r = next(&mut x);
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
        assert!(j.sparse.keys().all(|&k| k >= j.end()));
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

    #[test]
    fn seals_as_an_ordered_map_splits_and_frees_the_room() {
        let (mut j, mut oracle) = (Journal::default(), BTreeMap::new());
        let mut x: u64 = 11;
        let mut sealed: u64 = 0;
        for step in 0..6_000 {
            let r = next(&mut x);
            // Mostly rising numbers around a moving front, some far off, some below the bound.
            let seq = match r % 10 {
                0 => r % 50_000,
                1 => sealed.saturating_sub(r % 40),
                _ => sealed + r % 300,
            };
            match r % 23 {
                0 => {
                    let bound = seq;
                    let kept = oracle.split_off(&bound);
                    let gone: Vec<_> = std::mem::replace(&mut oracle, kept).into_values().collect();
                    assert_eq!(j.seal_below(bound), gone, "step {step}: seal below {bound}");
                    sealed = sealed.max(bound);
                }
                1..=6 => assert_eq!(j.remove(seq), oracle.remove(&seq), "step {step}"),
                _ => {
                    let old = oracle.insert(seq, entry(seq));
                    assert_eq!(j.insert(seq, entry(seq)), old, "step {step}: insert {seq}");
                }
            }
            assert_eq!(j.len(), oracle.len(), "step {step}");
            assert_eq!(j.get(seq), oracle.get(&seq), "step {step}");
            assert!(j.values().eq(oracle.values()), "step {step}: order");
        }
        assert!(j.base > 1_000, "the dense part moved up with the seals");
        assert!(j.dense.len() < 2_000, "sealed room was given back");
    }
}

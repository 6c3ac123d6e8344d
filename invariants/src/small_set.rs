//! A set kept as a sorted vector: what the checker's world indexes by, where almost every set
//! holds one or two members (and the large ones, an account's journal entries, grow in order). A `BTreeSet` allocates a node for eleven from its first member
//! (about 300 bytes for one `String`); this holds exactly its members, in the same order.

/// Up to this many members a set grows one slot at a time.
const SMALL: usize = 4;

/// A sorted set of `T` in a vector. Inserting in order (as journal sequence numbers come) is
/// an append; inserting or removing elsewhere moves the members after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmallSet<T> {
    members: Vec<T>,
}

impl<T> Default for SmallSet<T> {
    fn default() -> Self {
        SmallSet {
            members: Vec::new(),
        }
    }
}

impl<T: Ord> SmallSet<T> {
    /// Adds `value`; false if it was already there.
    pub fn insert(&mut self, value: T) -> bool {
        match self.members.binary_search(&value) {
            Ok(_) => false,
            Err(at) => {
                // Exact while small (most sets stay at one or two); amortized beyond, so that
                // a large set (an account's journal entries) still grows in linear time.
                if self.members.len() < SMALL {
                    self.members.reserve_exact(1);
                }
                self.members.insert(at, value);
                true
            }
        }
    }

    /// Removes `value`; false if it was not there.
    pub fn remove(&mut self, value: &T) -> bool {
        match self.members.binary_search(value) {
            Ok(at) => {
                self.members.remove(at);
                self.free_if_empty();
                true
            }
            Err(_) => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Removes every member below `bound` (one move of the rest, however many go).
    pub fn remove_below(&mut self, bound: &T) {
        let at = self.members.partition_point(|m| m < bound);
        self.members.drain(..at);
        self.free_if_empty();
    }

    /// An emptied set lets its room go: a sealed voucher keeps its (empty) set of entries for
    /// the rest of the run.
    fn free_if_empty(&mut self) {
        if self.members.is_empty() {
            self.members = Vec::new();
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// The members in order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.members.iter()
    }
}

impl<'a, T> IntoIterator for &'a SmallSet<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.members.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// Any sequence of inserts and removals leaves the same members, in the same order,
        /// with the same answers, as a `BTreeSet`.
        #[test]
        fn it_behaves_as_a_btree_set(steps in proptest::collection::vec((any::<bool>(), 0u8..12), 0..200)) {
            let (mut small, mut tree) = (SmallSet::default(), BTreeSet::new());
            for (add, v) in steps {
                if add {
                    prop_assert_eq!(small.insert(v), tree.insert(v));
                } else {
                    prop_assert_eq!(small.remove(&v), tree.remove(&v));
                }
                prop_assert_eq!(small.len(), tree.len());
            }
            prop_assert!(small.iter().eq(tree.iter()));
        }
    }
}

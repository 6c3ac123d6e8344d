//! What the incremental checker's world keeps of a trade or an activity once the rules about
//! that record alone have judged it: only what the rules across records read (its keys, its
//! decision), and a fingerprint of the whole record.
//!
//! A trade's own rules (refund bound, legal transitions) and an activity's (legal transitions)
//! are judged on the whole record as a delta brings it, and a record is judged again only when
//! a later delta brings it again. Between the two, the rules across records (one trade per
//! out_trade_no, one effect per key, one payment per trade, a reply against its key's effect)
//! read the kept form. The fingerprint lets the capture tell whether a record it reads again
//! differs from the one the world judged, without the world holding it whole.

use crate::{ActivityKind, ActivityState, Changes, Id, Phase, TradeState};
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// A 128-bit fingerprint of a record (two keyed SipHashes of it): equal records have equal
/// prints; two different records share one with a chance of about 2^-128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Print(u64, u64);

impl Print {
    pub fn of<T: Hash>(record: &T) -> Print {
        let half = |salt: u8| {
            let mut h = DefaultHasher::new();
            salt.hash(&mut h);
            record.hash(&mut h);
            h.finish()
        };
        // Two halves rather than a `u128`, whose 16-byte alignment would pad every kept record.
        Print(half(1), half(2))
    }
}

/// A trade as the world keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptTrade {
    pub trade: Id,
    pub merchant: u64,
    pub out_trade_no: Id,
    pub print: Print,
}

impl KeptTrade {
    pub fn of(t: &TradeState) -> KeptTrade {
        KeptTrade {
            trade: t.trade.clone(),
            merchant: t.merchant,
            out_trade_no: t.out_trade_no.clone(),
            print: Print::of(t),
        }
    }
}

/// An activity as the world keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptActivity {
    pub xid: Id,
    /// The manager node that owns it (a whole read of that node is diffed against these).
    pub node: Id,
    pub kind: ActivityKind,
    pub key: Id,
    pub trade: Id,
    pub status: Phase,
    pub print: Print,
}

impl KeptActivity {
    pub fn of(a: &ActivityState) -> KeptActivity {
        KeptActivity {
            xid: a.xid.clone(),
            node: a.node.clone(),
            kind: a.kind,
            key: a.key.clone(),
            trade: a.trade.clone(),
            status: a.status,
            print: Print::of(a),
        }
    }
}

/// A kept record's fingerprint.
pub trait Printed {
    fn print(&self) -> Print;
}

impl Printed for KeptTrade {
    fn print(&self) -> Print {
        self.print
    }
}

impl Printed for KeptActivity {
    fn print(&self) -> Print {
        self.print
    }
}

/// What turns the kept records `kept` into the whole records `whole` (both by key): an upsert
/// of each whole record whose fingerprint differs from the kept one's, a removal of each kept
/// key the whole read lacks. A whole read's diff against the world, without the world's
/// records whole.
pub fn changes_from<'k, K: Printed + 'k, V: Hash + Clone>(
    kept: impl IntoIterator<Item = (&'k Id, &'k K)>,
    whole: &BTreeMap<Id, V>,
) -> Changes<Id, V> {
    let mut changes = Changes::default();
    let mut kept = kept.into_iter().peekable();
    for (id, v) in whole {
        while let Some((k, _)) = kept.next_if(|(k, _)| *k < id) {
            changes.removed.push(k.clone());
        }
        let same = kept
            .next_if(|(k, _)| *k == id)
            .is_some_and(|(_, held)| held.print() == Print::of(v));
        if !same {
            changes.upserts.push(v.clone());
        }
    }
    changes.removed.extend(kept.map(|(k, _)| k.clone()));
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::valid;

    #[test]
    fn a_print_tells_any_field_apart() {
        let t = valid().trades[0].clone();
        let mut other = t.clone();
        assert_eq!(Print::of(&t), Print::of(&other));
        other.refunds[0].status = crate::AttemptStatus::Failed;
        assert_ne!(Print::of(&t), Print::of(&other));
        let mut paid = t.clone();
        paid.paid += rust_decimal::Decimal::ONE;
        assert_ne!(Print::of(&t), Print::of(&paid));
    }

    #[test]
    fn changes_from_kept_equal_changes_between_whole() {
        let obs = valid();
        let old = crate::delta::keyed_trades(&obs.trades);
        let mut new = old.clone();
        let first = new.keys().next().unwrap().clone();
        new.get_mut(&first).unwrap().paid += rust_decimal::Decimal::ONE;
        let mut added = new[&first].clone();
        added.trade = Id::from("T9-new");
        new.insert(added.trade.clone(), added);
        let kept: BTreeMap<Id, KeptTrade> = old
            .iter()
            .map(|(k, t)| (k.clone(), KeptTrade::of(t)))
            .collect();
        for (from, to) in [(&old, &new), (&new, &old), (&old, &BTreeMap::new())] {
            let kept: BTreeMap<Id, KeptTrade> = from
                .iter()
                .map(|(k, t)| (k.clone(), KeptTrade::of(t)))
                .collect();
            assert_eq!(changes_from(&kept, to), Changes::between(from, to));
        }
        assert!(changes_from(&kept, &old).is_empty());
    }
}

//! Reconciliation's durable state: the next bank date to reconcile per bank, the statement
//! lines seen so far, the differences found and each date's closing reserve, folded from its
//! log; and the treasury's decision (头寸调拨) after each bank date every bank has reconciled:
//! when the reserves drift apart, move half the difference from the richest to the poorest,
//! but never while its last transfer is still on its way: a transfer the sending bank has paid
//! out and the receiving bank's statements do not show yet makes the gap look wider than it
//! is, and ordering on it would overshoot, and then overshoot back, for ever.

use crate::ids::InstrId;
use crate::money::Amount;
use rust_decimal::Decimal;
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
        /// The platform's reserve at the bank at the end of the date, per its statement (in
        /// fen: the log is bincode, which cannot decode a `Decimal`).
        closing_fen: i64,
    },
    /// The treasury looked at the reserves after bank date `date` and ordered its transfer to
    /// bank `to`, if it needed one.
    Rebalanced { date: u32, to: Option<u32> },
    /// The treasury's transfer `instr` failed (the gateway's order is FAIL): it will never
    /// land, and the treasury stops waiting for it.
    TransferFailed { instr: InstrId },
    /// A line no order explains is held in suspense (posted).
    Suspended {
        bank: u32,
        instr: InstrId,
        into_reserve: bool,
        amount_fen: i64,
    },
    /// A suspended line's order turned up: taken out of suspense (posted).
    Released { instr: InstrId },
}

/// A statement line held in suspense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suspended {
    pub bank: u32,
    pub into_reserve: bool,
    pub amount_fen: i64,
}

/// How far apart two reserves may drift before the treasury moves money between them.
pub const REBALANCE_GAP: Decimal = Decimal::from_parts(2_000, 0, 0, false, 0);

/// A transfer the treasury orders: after bank date `date`, `amount` from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebalance {
    pub date: u32,
    pub transfer: Option<(u32, u32, Amount)>,
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
    /// Each reconciled date's closing reserve, per bank and date.
    pub closings: BTreeMap<u32, BTreeMap<u32, i64>>,
    /// The last bank date the treasury looked at.
    pub rebalanced: Option<u32>,
    /// Lines held in suspense, until their order turns up.
    pub suspended: BTreeMap<InstrId, Suspended>,
    /// The treasury's last transfer until the receiving bank's statements show it.
    pub in_flight: Option<InFlight>,
}

/// The treasury's transfer on its way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub instr: InstrId,
    /// The receiving bank.
    pub to: u32,
    /// The date of the receiving bank's statement that listed it, once one did.
    pub landed: Option<u32>,
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

    /// What the treasury does next over `banks` banks: nothing until every bank has
    /// reconciled a date it has not looked at; then, for the latest such date, a transfer of
    /// half the gap between the richest and the poorest reserve (whole yuan) if the gap is
    /// over [`REBALANCE_GAP`], else none.
    ///
    /// While its last transfer has not landed on a reconciled date every bank has reached,
    /// nothing: the closing reserves do not show it yet.
    pub fn rebalance(&self, banks: u32) -> Option<Rebalance> {
        let done = (0..banks).map(|b| self.next_date(b)).min()?;
        let date = done.checked_sub(1)?;
        if self.rebalanced.is_some_and(|r| r >= date) {
            return None;
        }
        if self.waits_for_transfer(date) {
            return None;
        }
        let closing = |b: u32| self.closings.get(&b).and_then(|c| c.get(&date)).copied();
        let mut reserves: Vec<(i64, u32)> = (0..banks)
            .map(|b| Some((closing(b)?, b)))
            .collect::<Option<_>>()?;
        reserves.sort();
        let ((low, to), (high, from)) = (*reserves.first()?, *reserves.last()?);
        let gap = Decimal::new(high - low, 2);
        let transfer = (gap > REBALANCE_GAP).then(|| {
            let half = (gap / Decimal::TWO).floor();
            (from, to, Amount::new(half).expect("half a positive gap"))
        });
        Some(Rebalance { date, transfer })
    }

    /// Whether the treasury's last transfer has yet to land on a statement of `date` or
    /// before.
    pub fn waits_for_transfer(&self, date: u32) -> bool {
        let f = self.in_flight.as_ref();
        f.is_some_and(|f| f.landed.is_none_or(|d| d > date))
    }

    pub fn apply(&mut self, record: ReconRecord) {
        let (bank, date, lines, held, closing) = match record {
            ReconRecord::Rebalanced { date, to } => {
                self.rebalanced = Some(date);
                self.in_flight = to.map(|to| InFlight {
                    instr: crate::clearing::instr_of(&crate::clearing::transfer_key(date)),
                    to,
                    landed: None,
                });
                return;
            }
            ReconRecord::TransferFailed { instr } => {
                if self.in_flight.as_ref().is_some_and(|f| f.instr == instr) {
                    self.in_flight = None;
                }
                return;
            }
            ReconRecord::Suspended {
                bank,
                instr,
                into_reserve,
                amount_fen,
            } => {
                let line = Suspended {
                    bank,
                    into_reserve,
                    amount_fen,
                };
                self.suspended.insert(instr, line);
                return;
            }
            ReconRecord::Released { instr } => {
                self.suspended.remove(&instr);
                return;
            }
            ReconRecord::Reconciled {
                bank,
                date,
                lines,
                held,
                closing_fen,
                ..
            } => (bank, date, lines, held, closing_fen),
        };
        self.closings.entry(bank).or_default().insert(date, closing);
        assert_eq!(
            date,
            self.next_date(bank),
            "bank {bank}'s dates are reconciled in order"
        );
        self.next.insert(bank, date + 1);
        if let Some(f) = &mut self.in_flight {
            if f.to == bank && f.landed.is_none() && lines.contains(&f.instr) {
                f.landed = Some(date);
            }
        }
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
            closing_fen: 0,
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

    fn closed(bank: u32, date: u32, closing_fen: i64) -> ReconRecord {
        ReconRecord::Reconciled {
            bank,
            date,
            lines: Vec::new(),
            matched: 0,
            long: 0,
            short: 0,
            held: Vec::new(),
            closing_fen,
        }
    }

    fn closed_listing(bank: u32, date: u32, closing_fen: i64, line: &InstrId) -> ReconRecord {
        match closed(bank, date, closing_fen) {
            ReconRecord::Reconciled { .. } => ReconRecord::Reconciled {
                bank,
                date,
                lines: vec![line.clone()],
                matched: 1,
                long: 0,
                short: 0,
                held: Vec::new(),
                closing_fen,
            },
            other => other,
        }
    }

    /// The treasury waits for every bank's date, moves half a gap over the threshold from
    /// the richest to the poorest, and looks at each date once; then it waits for its
    /// transfer to land on a date every bank has reconciled before it looks again.
    #[test]
    fn the_treasury_moves_half_a_wide_gap_once_every_bank_has_the_date() {
        let mut core = ReconCore::recover(&[closed(0, 0, 900_000)]);
        assert_eq!(core.rebalance(2), None, "bank 1 has not reconciled date 0");
        core.apply(closed(1, 0, 100_000));
        let gap = core.rebalance(2).expect("date 0 is due");
        let half = Amount::new(Decimal::new(4_000, 0)).expect("valid");
        assert_eq!(gap.date, 0);
        assert_eq!(gap.transfer, Some((0, 1, half)));
        core.apply(ReconRecord::Rebalanced {
            date: 0,
            to: Some(1),
        });
        assert_eq!(core.rebalance(2), None, "date 0 was looked at");
        // Date 1: the sending bank paid it out, the receiving one has not taken it yet.
        core.apply(closed(0, 1, 500_000));
        core.apply(closed(1, 1, 100_000));
        assert_eq!(
            core.rebalance(2),
            None,
            "the transfer is on its way: the gap it shows is not real"
        );
        let instr = crate::clearing::instr_of(&crate::clearing::transfer_key(0));
        core.apply(closed_listing(1, 2, 500_000, &instr));
        assert_eq!(core.rebalance(2), None, "bank 0 has not reconciled date 2");
        core.apply(closed(0, 2, 350_000));
        let narrow = core
            .rebalance(2)
            .expect("date 2 is due, the transfer landed");
        assert_eq!(
            (narrow.date, narrow.transfer),
            (2, None),
            "1,500 yuan apart"
        );
    }

    #[test]
    fn a_failed_transfer_is_not_waited_for() {
        let mut core = ReconCore::recover(&[closed(0, 0, 900_000), closed(1, 0, 100_000)]);
        core.apply(ReconRecord::Rebalanced {
            date: 0,
            to: Some(1),
        });
        core.apply(closed(0, 1, 900_000));
        core.apply(closed(1, 1, 100_000));
        assert_eq!(core.rebalance(2), None, "waiting for the transfer");
        let instr = crate::clearing::instr_of(&crate::clearing::transfer_key(0));
        core.apply(ReconRecord::TransferFailed { instr });
        let again = core.rebalance(2).expect("date 1 is due");
        assert_eq!(again.date, 1);
        assert!(again.transfer.is_some(), "the gap is still wide");
    }

    #[test]
    #[should_panic(expected = "in order")]
    fn a_date_reconciled_twice_is_refused() {
        ReconCore::recover(&[reconciled(0, 0, &[], &[]), reconciled(0, 0, &[], &[])]);
    }
}

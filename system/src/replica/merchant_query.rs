//! The merchant-query DB (商户查询): one row per trade, the trade's state as its latest event
//! told it, served to merchants who query their trades. No clock, no I/O.
//!
//! Events arrive at least once and, after a retry or a redelivery, out of order. Each row keeps
//! the version of the event that wrote it, and [`MerchantQueryCore::decide`] only lets a newer
//! version overwrite it: an old or repeated event is recorded as [`MerchantQueryRecord::Stale`]
//! (so it is consumed and never retried) and changes nothing. An event id already consumed
//! writes nothing at all. [`MerchantQueryCore::apply`] folds records into state, live and on
//! recovery alike, and keeps every row it wrote in `history`, which is how a regression shows.
//! Under [`Bug::ReplicaNoVersion`] the version check is skipped and any event overwrites.

use crate::bugs::{Bug, Bugs};
use crate::ids::AccountId;
use crate::trade::{TradeEvent, TradeId, TradeStatus};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A trade as a merchant sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantRow {
    pub trade: TradeId,
    pub merchant: AccountId,
    pub status: TradeStatus,
    #[serde(with = "decimal_text")]
    pub paid: Decimal,
    #[serde(with = "decimal_text")]
    pub refunded: Decimal,
    /// The version of the event that wrote the row.
    pub version: u32,
}

impl MerchantRow {
    /// The row an event writes.
    pub fn of(event: &TradeEvent) -> Self {
        MerchantRow {
            trade: event.trade,
            merchant: event.merchant,
            status: event.status,
            paid: event.paid,
            refunded: event.refunded,
            version: event.version,
        }
    }
}

/// A `Decimal` as its exact text. rust_decimal's own `Deserialize` asks for `deserialize_any`,
/// which bincode (the log's encoding) cannot serve; a string it can, scale and all.
mod decimal_text {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::str::FromStr;

    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        let text = String::deserialize(deserializer)?;
        Decimal::from_str(&text).map_err(serde::de::Error::custom)
    }
}

/// One durable change to the merchant-query DB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MerchantQueryRecord {
    /// Event `event` consumed and its row written.
    Applied { event: String, row: MerchantRow },
    /// Event `event` (of `version`) consumed but not written: the row was already at
    /// `row_version`.
    Stale {
        event: String,
        version: u32,
        row_version: u32,
    },
}

/// The merchant-query DB's state. Equal states compare equal, which is how recovery is tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantQueryCore {
    rows: BTreeMap<TradeId, MerchantRow>,
    /// Event id -> how many times it was applied (always 1: the dedup is never skipped).
    consumed: BTreeMap<String, u32>,
    /// Every row written, in order.
    history: Vec<MerchantRow>,
    bugs: Bugs,
}

impl MerchantQueryCore {
    pub fn new(bugs: Bugs) -> Self {
        MerchantQueryCore {
            rows: BTreeMap::new(),
            consumed: BTreeMap::new(),
            history: Vec::new(),
            bugs,
        }
    }

    /// Rebuilds the DB by applying its log from the start.
    pub fn recover(bugs: Bugs, records: &[MerchantQueryRecord]) -> Self {
        let mut core = MerchantQueryCore::new(bugs);
        for record in records {
            core.apply(record.clone());
        }
        core
    }

    /// What consuming `event` writes; `None` if its id was already consumed. An event no newer
    /// than the trade's row is [`MerchantQueryRecord::Stale`], unless [`Bug::ReplicaNoVersion`]
    /// is planted, which always applies.
    pub fn decide(&self, event: &TradeEvent) -> Option<MerchantQueryRecord> {
        let id = event.id().to_string();
        if self.consumed.contains_key(&id) {
            return None;
        }
        if !self.bugs.is(Bug::ReplicaNoVersion) {
            if let Some(row) = self.rows.get(&event.trade) {
                if row.version >= event.version {
                    return Some(MerchantQueryRecord::Stale {
                        event: id,
                        version: event.version,
                        row_version: row.version,
                    });
                }
            }
        }
        Some(MerchantQueryRecord::Applied {
            event: id,
            row: MerchantRow::of(event),
        })
    }

    /// Applies one durable record: an applied row overwrites the trade's row and joins the
    /// history; either kind marks its event consumed. Without a planted bug, a row that does not
    /// advance the stored version, or an event consumed twice, is asserted.
    pub fn apply(&mut self, record: MerchantQueryRecord) {
        let strict = self.bugs.get().is_none();
        let event = match record {
            MerchantQueryRecord::Applied { event, row } => {
                if strict {
                    if let Some(old) = self.rows.get(&row.trade) {
                        assert!(
                            row.version > old.version,
                            "event {event} regresses {} from version {} to {}",
                            row.trade,
                            old.version,
                            row.version
                        );
                    }
                }
                self.history.push(row.clone());
                self.rows.insert(row.trade, row);
                event
            }
            MerchantQueryRecord::Stale { event, .. } => event,
        };
        let times = self.consumed.entry(event.clone()).or_insert(0);
        *times += 1;
        if strict {
            assert!(*times == 1, "event {event} consumed {times} times");
        }
    }

    /// The merchant query API served by this replica: the trade's row, if any event of it
    /// arrived.
    pub fn query(&self, trade: TradeId) -> Option<&MerchantRow> {
        self.rows.get(&trade)
    }

    pub fn rows(&self) -> &BTreeMap<TradeId, MerchantRow> {
        &self.rows
    }

    /// Every row written, in order.
    pub fn history(&self) -> &[MerchantRow] {
        &self.history
    }

    /// Every consumed event id with how many times it was applied.
    pub fn consumed(&self) -> &BTreeMap<String, u32> {
        &self.consumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Amount;
    use crate::trade::TradeEventKind;

    const MERCHANT: AccountId = AccountId(5);
    const T1: TradeId = TradeId { shard: 0, seq: 1 };
    const T2: TradeId = TradeId { shard: 1, seq: 1 };

    fn d(fen: i64) -> Decimal {
        Decimal::new(fen, 2)
    }

    fn paid(trade: TradeId) -> TradeEvent {
        TradeEvent {
            trade,
            version: 1,
            kind: TradeEventKind::Paid,
            status: TradeStatus::Paid,
            merchant: MERCHANT,
            payer: Some(AccountId(9)),
            amount: Amount::from_fen(1_000).unwrap(),
            paid: d(1_000),
            refunded: d(0),
            refund: None,
        }
    }

    fn refunded(trade: TradeId, version: u32, no: &str, fen: i64, total_fen: i64) -> TradeEvent {
        TradeEvent {
            version,
            kind: TradeEventKind::Refunded,
            status: if total_fen == 1_000 {
                TradeStatus::Refunded
            } else {
                TradeStatus::PartiallyRefunded
            },
            refunded: d(total_fen),
            refund: Some((no.into(), Amount::from_fen(fen).unwrap())),
            ..paid(trade)
        }
    }

    /// Decides and applies like the shell does; the record written, if any.
    fn consume(c: &mut MerchantQueryCore, event: &TradeEvent) -> Option<MerchantQueryRecord> {
        let record = c.decide(event)?;
        c.apply(record.clone());
        Some(record)
    }

    #[test]
    fn events_in_order_advance_the_row() {
        let mut c = MerchantQueryCore::new(Bugs::none());
        let v2 = refunded(T1, 2, "R1", 300, 300);
        let v3 = refunded(T1, 3, "R2", 700, 1_000);
        for e in [paid(T1), paid(T2), v2.clone(), v3.clone()] {
            assert!(matches!(
                consume(&mut c, &e),
                Some(MerchantQueryRecord::Applied { .. })
            ));
        }
        assert_eq!(c.query(T1), Some(&MerchantRow::of(&v3)));
        assert_eq!(
            c.query(T1)
                .map(|r| (r.status, r.paid, r.refunded, r.version)),
            Some((TradeStatus::Refunded, d(1_000), d(1_000), 3))
        );
        assert_eq!(c.query(T2), Some(&MerchantRow::of(&paid(T2))));
        assert_eq!(c.query(TradeId { shard: 9, seq: 9 }), None);
        assert_eq!(c.rows().len(), 2);
        assert_eq!(
            c.history(),
            &[
                MerchantRow::of(&paid(T1)),
                MerchantRow::of(&paid(T2)),
                MerchantRow::of(&v2),
                MerchantRow::of(&v3),
            ]
        );
        assert_eq!(c.consumed().len(), 4);
    }

    #[test]
    fn an_older_version_after_a_newer_one_is_stale_and_changes_nothing() {
        let mut c = MerchantQueryCore::new(Bugs::none());
        let v2 = refunded(T1, 2, "R1", 300, 300);
        consume(&mut c, &v2).unwrap();
        let before = c.clone();
        assert_eq!(
            consume(&mut c, &paid(T1)),
            Some(MerchantQueryRecord::Stale {
                event: "T0-1:v1:paid".into(),
                version: 1,
                row_version: 2,
            })
        );
        assert_eq!(c.rows(), before.rows());
        assert_eq!(c.history(), before.history());
        assert_eq!(c.consumed().get("T0-1:v1:paid"), Some(&1));
        // A second refund racing for the same version is stale too.
        let rival = refunded(T1, 2, "R9", 100, 100);
        assert!(matches!(
            consume(&mut c, &rival),
            Some(MerchantQueryRecord::Stale { row_version: 2, .. })
        ));
        assert_eq!(c.query(T1), Some(&MerchantRow::of(&v2)));
    }

    #[test]
    fn a_consumed_event_id_is_skipped() {
        let mut c = MerchantQueryCore::new(Bugs::none());
        consume(&mut c, &paid(T1)).unwrap();
        assert_eq!(c.decide(&paid(T1)), None);
        // Whether it had been applied or found stale.
        consume(&mut c, &refunded(T1, 2, "R1", 300, 300)).unwrap();
        let late = paid(T2);
        consume(&mut c, &refunded(T2, 2, "R1", 300, 300)).unwrap();
        assert!(matches!(
            consume(&mut c, &late),
            Some(MerchantQueryRecord::Stale { .. })
        ));
        assert_eq!(c.decide(&late), None);
        let mut c = MerchantQueryCore::new(Bugs::planted(Bug::ReplicaNoVersion));
        consume(&mut c, &paid(T1)).unwrap();
        assert_eq!(
            c.decide(&paid(T1)),
            None,
            "the bug skips versions, not dedup"
        );
    }

    #[test]
    fn without_versions_an_older_event_rolls_the_row_back() {
        let mut c = MerchantQueryCore::new(Bugs::planted(Bug::ReplicaNoVersion));
        let v2 = refunded(T1, 2, "R1", 1_000, 1_000);
        consume(&mut c, &v2).unwrap();
        assert_eq!(
            consume(&mut c, &paid(T1)),
            Some(MerchantQueryRecord::Applied {
                event: "T0-1:v1:paid".into(),
                row: MerchantRow::of(&paid(T1)),
            })
        );
        assert_eq!(
            c.query(T1).map(|r| (r.status, r.version)),
            Some((TradeStatus::Paid, 1))
        );
        let versions: Vec<u32> = c.history().iter().map(|r| r.version).collect();
        assert_eq!(versions, vec![2, 1]);
    }

    #[test]
    #[should_panic(expected = "event T0-1:v1:paid regresses T0-1 from version 2 to 1")]
    fn an_applied_row_that_regresses_is_asserted() {
        let mut c = MerchantQueryCore::new(Bugs::none());
        consume(&mut c, &refunded(T1, 2, "R1", 300, 300)).unwrap();
        c.apply(MerchantQueryRecord::Applied {
            event: paid(T1).id().to_string(),
            row: MerchantRow::of(&paid(T1)),
        });
    }

    #[test]
    #[should_panic(expected = "event T0-1:v1:paid consumed 2 times")]
    fn an_event_consumed_twice_is_asserted() {
        let mut c = MerchantQueryCore::new(Bugs::none());
        consume(&mut c, &refunded(T1, 2, "R1", 300, 300)).unwrap();
        let stale = c.decide(&paid(T1)).unwrap();
        c.apply(stale.clone());
        c.apply(stale);
    }

    #[test]
    fn recovery_from_the_log_rebuilds_the_same_db() {
        for bugs in [Bugs::none(), Bugs::planted(Bug::ReplicaNoVersion)] {
            let mut c = MerchantQueryCore::new(bugs);
            let mut log = Vec::new();
            let deliveries = [
                paid(T1),
                refunded(T1, 3, "R2", 200, 500),
                paid(T2),
                refunded(T1, 2, "R1", 300, 300),
                paid(T1),
                refunded(T2, 2, "R1", 1_000, 1_000),
                paid(T2),
            ];
            for e in &deliveries {
                if let Some(record) = consume(&mut c, e) {
                    log.push(record);
                }
            }
            assert_eq!(log.len(), 5);
            let bytes: Vec<Vec<u8>> = log.iter().map(|r| bincode::serialize(r).unwrap()).collect();
            let decoded: Vec<MerchantQueryRecord> = bytes
                .iter()
                .map(|b| bincode::deserialize(b).unwrap())
                .collect();
            assert_eq!(decoded, log);
            let r = MerchantQueryCore::recover(bugs, &decoded);
            assert_eq!(r.rows(), c.rows());
            assert_eq!(r.history(), c.history());
            assert_eq!(r.consumed(), c.consumed());
            assert_eq!(r, c);
            assert_eq!(r.decide(&paid(T1)), None);
            // Decimals keep their scale through the log; without versions, v2 (refunded 3.00)
            // arrived after v3 (5.00) and overwrote it.
            let row = r.query(T1).unwrap();
            let refunded = if bugs == Bugs::none() { "5.00" } else { "3.00" };
            assert_eq!(
                (row.paid.to_string(), row.refunded.to_string()),
                ("10.00".into(), refunded.into())
            );
        }
    }
}

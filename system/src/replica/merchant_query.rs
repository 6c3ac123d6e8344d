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
use crate::ids::{AccountId, EventId};
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

/// The consumer group of the merchant-query DB (also its node's and its log's name).
pub const GROUP: &str = "merchant-query";

/// One durable change to the merchant-query DB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MerchantQueryRecord {
    /// Event `event` consumed and its row written.
    Applied { event: EventId, row: MerchantRow },
    /// Event `event` (of `version`) consumed but not written: the row was already at
    /// `row_version`.
    Stale {
        event: EventId,
        version: u32,
        row_version: u32,
    },
}

/// The merchant-query DB's state. Equal states compare equal, which is how recovery is tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantQueryCore {
    rows: BTreeMap<TradeId, MerchantRow>,
    /// Event id -> how many times it was applied (always 1: the dedup is never skipped).
    consumed: BTreeMap<EventId, u32>,
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
        let id = event.id();
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
    /// history; either kind marks its event consumed. An event consumed twice is asserted, and
    /// so is a row that does not advance the stored version (unless [`Bug::ReplicaNoVersion`]
    /// is planted, whose effect that is).
    pub fn apply(&mut self, record: MerchantQueryRecord) {
        let event = match record {
            MerchantQueryRecord::Applied { event, row } => {
                // Only the planted bug that skips the version check may regress a row.
                if !self.bugs.is(Bug::ReplicaNoVersion) {
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
        // The dedup is never skipped, whatever bug is planted.
        assert!(*times == 1, "event {event} consumed {times} times");
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
    pub fn consumed(&self) -> &BTreeMap<EventId, u32> {
        &self.consumed
    }
}

#[cfg(test)]
#[path = "merchant_query_tests.rs"]
mod tests;

//! The trade service's events (交易数据分发): what a committed trade change tells the rest of
//! the platform, how an event is named, encoded and routed, and the two ways (modes) the trade
//! node hands events to the broker.

use super::types::{TradeId, TradeStatus};
use crate::ids::{AccountId, EventId, TradeShardId};
use crate::money::Amount;
use crate::producer::Message;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The topic every trade event is published to.
pub const TRADE_EVENTS_TOPIC: &str = "trade-events";

/// Queues of [`TRADE_EVENTS_TOPIC`]; an event's queue is chosen by its trade id, so one trade's
/// events are consumed in order.
pub const TRADE_EVENTS_QUEUES: u32 = 4;

/// What happened to a trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TradeEventKind {
    /// A pay attempt succeeded: WAIT_PAY/PAYING → PAID.
    Paid,
    /// A refund succeeded: PAID → PARTIALLY_REFUNDED or REFUNDED.
    Refunded,
    /// The trade was closed unpaid.
    Closed,
}

impl TradeEventKind {
    pub fn name(self) -> &'static str {
        match self {
            TradeEventKind::Paid => "paid",
            TradeEventKind::Refunded => "refunded",
            TradeEventKind::Closed => "closed",
        }
    }
}

/// One committed change of a trade, as published. `version` counts the trade's events from 1,
/// so a replica can tell an old event from a new one; the fields after it are the trade's state
/// right after the change (what a projection stores).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeEvent {
    pub trade: TradeId,
    pub version: u32,
    pub kind: TradeEventKind,
    pub status: TradeStatus,
    pub merchant: AccountId,
    /// The buyer who paid (none for a trade closed unpaid).
    pub payer: Option<AccountId>,
    /// The trade's amount.
    pub amount: Amount,
    pub paid: Decimal,
    pub refunded: Decimal,
    /// For a refund: its out_request_no and amount.
    pub refund: Option<(String, Amount)>,
}

impl TradeEvent {
    /// The event's business id, unique across the platform: consumers deduplicate by it.
    /// A refund's id names the refund, so two refunds racing for one version never share an id.
    pub fn id(&self) -> EventId {
        EventId(match &self.refund {
            Some((no, _)) => compact_str::format_compact!(
                "{}:v{}:{}:{no}",
                self.trade,
                self.version,
                self.kind.name()
            ),
            None => compact_str::format_compact!(
                "{}:v{}:{}",
                self.trade,
                self.version,
                self.kind.name()
            ),
        })
    }

    /// The message key: the trade, so one trade's events share a queue.
    pub fn key(&self) -> String {
        self.trade.to_string()
    }

    /// The message payload.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a trade event always serializes")
    }

    /// The event as a producer publishes it (mode 1's outbox row, mode 2's half message).
    pub fn message(&self) -> Message {
        Message {
            id: self.id(),
            key: self.key(),
            payload: self.encode(),
        }
    }

    pub fn decode(payload: &str) -> Result<TradeEvent, String> {
        serde_json::from_str(payload).map_err(|e| format!("not a trade event: {e}"))
    }
}

/// The producer group of trade shard `shard`: who the broker asks on a check-back.
pub fn producer_group(shard: TradeShardId) -> String {
    format!("trade-{}", shard.0)
}

/// The trade shard of a producer group, if it is one.
pub fn shard_of_producer_group(group: &str) -> Option<TradeShardId> {
    group.strip_prefix("trade-")?.parse().ok().map(TradeShardId)
}

/// How a trade node hands its events to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageMode {
    /// Mode 1, local message table: the event row is written in the same record as the trade
    /// change; a relay sends it after the commit and marks it sent, a resender scans for rows
    /// left unsent.
    Outbox,
    /// Mode 2, transactional (half) messages: half message first, then the local transaction,
    /// then commit or rollback; the broker checks back about undecided halves.
    Txmsg,
}

impl MessageMode {
    pub const ALL: &'static [MessageMode] = &[MessageMode::Outbox, MessageMode::Txmsg];

    pub fn name(self) -> &'static str {
        match self {
            MessageMode::Outbox => "outbox",
            MessageMode::Txmsg => "txmsg",
        }
    }
}

impl fmt::Display for MessageMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for MessageMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageMode::ALL
            .iter()
            .copied()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown message mode '{s}' (outbox or txmsg)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(refund: Option<(String, Amount)>) -> TradeEvent {
        TradeEvent {
            trade: TradeId { shard: 1, seq: 7 },
            version: 2,
            kind: if refund.is_some() {
                TradeEventKind::Refunded
            } else {
                TradeEventKind::Paid
            },
            status: TradeStatus::Paid,
            merchant: AccountId(3),
            payer: Some(AccountId(9)),
            amount: Amount::from_fen(1250).unwrap(),
            paid: Decimal::new(1250, 2),
            refunded: Decimal::ZERO,
            refund,
        }
    }

    #[test]
    fn ids_name_trade_version_kind_and_refund() {
        assert_eq!(event(None).id().as_str(), "T1-7:v2:paid");
        let r = event(Some(("R1".into(), Amount::from_fen(100).unwrap())));
        assert_eq!(r.id().as_str(), "T1-7:v2:refunded:R1");
        assert_eq!(r.message().id, r.id());
        assert_eq!(r.key(), "T1-7");
    }

    #[test]
    fn events_round_trip_through_their_payload() {
        let e = event(Some(("R1".into(), Amount::from_fen(100).unwrap())));
        assert_eq!(TradeEvent::decode(&e.encode()).unwrap(), e);
        assert!(TradeEvent::decode("{}").is_err());
    }

    #[test]
    fn modes_and_producer_groups_parse() {
        assert_eq!("txmsg".parse::<MessageMode>().unwrap(), MessageMode::Txmsg);
        assert!("kafka".parse::<MessageMode>().is_err());
        let three = TradeShardId(3);
        assert_eq!(shard_of_producer_group(&producer_group(three)), Some(three));
        assert_eq!(shard_of_producer_group("payments"), None);
    }
}

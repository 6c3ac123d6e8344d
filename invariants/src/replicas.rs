//! Invariant 14: at rest, the read replicas that consumers build from trade events agree with
//! the committed events, and the merchant-query replica never moved backwards.
//!
//! Checked at quiescence only: mid-flight a replica legitimately lags its events.
//!
//! - **Consumer records** (消费记录): each committed Paid or Refunded event has exactly one row,
//!   made from that event (trade, buyer = the event's payer, merchant, kind, and the amount:
//!   the trade's paid amount for Paid, the refund's amount for Refunded). A second row for one
//!   event means the consumer processed a redelivery with effect (deduplication broke); a row
//!   for an event no trade shard committed, or for a Closed event, is a row that must not exist.
//! - **Merchant query** (商户查询): each trade with committed events has one row, the projection
//!   of its highest-version committed event (status, paid, refunded, version, merchant); a
//!   trade without committed events has none. A row that lags, or was overwritten by an older
//!   event delivered out of order, differs from the projection.
//! - **Monotonicity** of the merchant-query replica's write log: per trade, each write carries
//!   a strictly higher version than the previous one, its status never moves back (Paid <
//!   PartiallyRefunded < Refunded; Closed only ever as a trade's first and only status) and
//!   its refunded amount never decreases. A reader polling the replica must never see a trade
//!   go back in time, even if the final row ends up right.

use crate::{
    ConsumptionRecord, EventKind, EventState, Invariant, MerchantRow, MessageSnapshot, Observation,
    TradeStatus, Violation,
};
use std::collections::{BTreeMap, BTreeSet};

pub fn check(obs: &Observation) -> Vec<Violation> {
    let m = &obs.messages;
    if !m.enabled {
        return Vec::new();
    }
    let mut out = consumer_records(m);
    out.extend(merchant_rows(m));
    out.extend(monotonic(m));
    out
}

/// A consumer-record row as "trade=T0-1 buyer=2 merchant=12 kind=Paid amount=20".
fn render_record(r: &ConsumptionRecord) -> String {
    format!(
        "trade={} buyer={} merchant={} kind={:?} amount={}",
        r.trade, r.buyer, r.merchant, r.kind, r.amount
    )
}

/// What the row of a committed Paid or Refunded event must say, rendered like
/// [`render_record`]: a payer or refund the event lacks shows as "none", which no row matches.
fn expected_record(e: &EventState) -> String {
    let buyer = e
        .payer
        .map_or_else(|| "none".to_string(), |p| p.to_string());
    let amount = match e.kind {
        EventKind::Refunded => e
            .refund
            .as_ref()
            .map_or_else(|| "none".to_string(), |r| r.1.to_string()),
        _ => e.paid.to_string(),
    };
    format!(
        "trade={} buyer={buyer} merchant={} kind={:?} amount={amount}",
        e.trade, e.merchant, e.kind
    )
}

/// The fields in which row `r` differs from what event `e` says.
fn record_differences(e: &EventState, r: &ConsumptionRecord) -> Vec<&'static str> {
    let amount = match e.kind {
        EventKind::Refunded => e.refund.as_ref().map(|x| x.1),
        _ => Some(e.paid),
    };
    let mut fields = Vec::new();
    if r.trade != e.trade {
        fields.push("trade");
    }
    if e.payer != Some(r.buyer) {
        fields.push("buyer");
    }
    if r.merchant != e.merchant {
        fields.push("merchant");
    }
    if r.kind != e.kind {
        fields.push("kind");
    }
    if amount != Some(r.amount) {
        fields.push("amount");
    }
    fields
}

/// A violation about the consumer-record rows of event `id`.
fn about_records(id: &str, rows: &[&ConsumptionRecord], message: String) -> Violation {
    let rendered: Vec<String> = rows.iter().map(|r| render_record(r)).collect();
    Violation::new(Invariant::Replicas, message)
        .with("replica", "consumer-records")
        .with("event", id)
        .with("rows", rows.len())
        .with("actual", rendered.join("; "))
}

fn consumer_records(m: &MessageSnapshot) -> Vec<Violation> {
    let mut by_event: BTreeMap<&str, Vec<&ConsumptionRecord>> = BTreeMap::new();
    for r in &m.consumer_records {
        by_event.entry(r.event.as_str()).or_default().push(r);
    }
    let mut ids: BTreeSet<&str> = m.committed.keys().map(String::as_str).collect();
    ids.extend(by_event.keys().copied());
    let mut out = Vec::new();
    for id in ids {
        let rows = by_event.get(id).map_or(&[][..], Vec::as_slice);
        let Some(e) = m.committed.get(id) else {
            let trades: BTreeSet<&str> = rows.iter().map(|r| r.trade.as_str()).collect();
            let trades: Vec<&str> = trades.into_iter().collect();
            let msg = format!("consumer record of event {id}, which no trade shard committed");
            out.push(about_records(id, rows, msg).with("trade", trades.join(",")));
            continue;
        };
        let about = |msg: String| {
            about_records(id, rows, msg)
                .with("trade", &e.trade)
                .with("kind", format!("{:?}", e.kind))
                .with("expected", expected_record(e))
        };
        if e.kind == EventKind::Closed {
            if !rows.is_empty() {
                let msg = format!("closed event {id} has a consumer record; it must have none");
                out.push(about(msg));
            }
            continue;
        }
        match rows {
            [] => out.push(about(format!(
                "committed event {id} has no consumer record"
            ))),
            [_] => {}
            _ => {
                let msg = format!(
                    "event {id} consumed twice: {} consumer records instead of one",
                    rows.len()
                );
                out.push(about(msg));
            }
        }
        for (n, r) in rows.iter().enumerate() {
            let fields = record_differences(e, r);
            if !fields.is_empty() {
                let msg = format!(
                    "consumer record of event {id} differs from the event in {}",
                    fields.join(", ")
                );
                out.push(
                    about(msg)
                        .with("row", n)
                        .with("actual", render_record(r))
                        .with("differs", fields.join(",")),
                );
            }
        }
    }
    out
}

/// A merchant-query row as "merchant=12 status=Paid paid=20 refunded=0 version=1".
fn render_row(r: &MerchantRow) -> String {
    format!(
        "merchant={} status={:?} paid={} refunded={} version={}",
        r.merchant, r.status, r.paid, r.refunded, r.version
    )
}

fn projection(e: &EventState) -> MerchantRow {
    MerchantRow {
        trade: e.trade.clone(),
        merchant: e.merchant,
        status: e.status,
        paid: e.paid,
        refunded: e.refunded,
        version: e.version,
    }
}

fn merchant_rows(m: &MessageSnapshot) -> Vec<Violation> {
    // Each trade's highest-version committed event; on a tie, the first by id.
    let mut latest: BTreeMap<&str, &EventState> = BTreeMap::new();
    for e in m.committed.values() {
        let slot = latest.entry(e.trade.as_str()).or_insert(e);
        if e.version > slot.version {
            *slot = e;
        }
    }
    let mut trades: BTreeSet<&str> = latest.keys().copied().collect();
    trades.extend(m.merchant_rows.keys().map(String::as_str));
    let mut out = Vec::new();
    for trade in trades {
        let expected = latest.get(trade).map(|e| projection(e));
        let actual = m.merchant_rows.get(trade);
        let msg = match (&expected, actual) {
            (Some(x), Some(a)) if x == a => continue,
            (None, None) => continue,
            (Some(_), None) => format!("trade {trade} has committed events but no merchant row"),
            (None, Some(_)) => format!("trade {trade} has a merchant row but no committed event"),
            (Some(_), Some(a)) if a.trade != trade => {
                format!("merchant row under trade {trade} is for trade {}", a.trade)
            }
            (Some(x), Some(a)) => format!(
                "merchant row of trade {trade} is at v{} {:?} instead of v{} {:?}",
                a.version, a.status, x.version, x.status
            ),
        };
        let none = || "none".to_string();
        let v = Violation::new(Invariant::Replicas, msg)
            .with("replica", "merchant-query")
            .with("trade", trade)
            .with("expected", expected.as_ref().map_or_else(none, render_row))
            .with("actual", actual.map_or_else(none, render_row))
            .with(
                "event",
                latest.get(trade).map_or_else(none, |e| e.id.clone()),
            );
        out.push(v);
    }
    out
}

/// The order of the statuses a paid trade goes through; Closed stands apart. WaitPay and
/// Paying, which no trade event announces, come before Paid.
fn rank(status: TradeStatus) -> u8 {
    match status {
        TradeStatus::WaitPay => 0,
        TradeStatus::Paying => 1,
        TradeStatus::Paid => 2,
        TradeStatus::PartiallyRefunded => 3,
        TradeStatus::Refunded => 4,
        TradeStatus::Closed => 5,
    }
}

/// Why write `next` of a trade's merchant row goes back from `prev`, if it does.
fn regressions(prev: &MerchantRow, next: &MerchantRow) -> Vec<&'static str> {
    let mut why = Vec::new();
    if next.version <= prev.version {
        why.push("version not increasing");
    }
    if prev.status == TradeStatus::Closed || next.status == TradeStatus::Closed {
        why.push("closed is a trade's only status");
    } else if rank(next.status) < rank(prev.status) {
        why.push("status moved backwards");
    }
    if next.refunded < prev.refunded {
        why.push("refunded decreased");
    }
    why
}

fn monotonic(m: &MessageSnapshot) -> Vec<Violation> {
    let mut last: BTreeMap<&str, &MerchantRow> = BTreeMap::new();
    let mut out = Vec::new();
    for (n, next) in m.merchant_history.iter().enumerate() {
        if let Some(prev) = last.insert(next.trade.as_str(), next) {
            let why = regressions(prev, next);
            if why.is_empty() {
                continue;
            }
            let msg = format!(
                "merchant row of trade {} went from v{} {:?} back to v{} {:?} ({})",
                next.trade,
                prev.version,
                prev.status,
                next.version,
                next.status,
                why.join(", ")
            );
            let v = Violation::new(Invariant::Replicas, msg)
                .with("replica", "merchant-query")
                .with("trade", &next.trade)
                .with("write", n)
                .with("previous_version", prev.version)
                .with("previous_status", format!("{:?}", prev.status))
                .with("previous_refunded", prev.refunded)
                .with("next_version", next.version)
                .with("next_status", format!("{:?}", next.status))
                .with("next_refunded", next.refunded)
                .with("why", why.join(","));
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
#[path = "replicas/tests.rs"]
mod tests;

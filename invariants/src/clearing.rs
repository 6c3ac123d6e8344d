//! The clearing layer at rest: channel orders against the ledger's postings and against every
//! bank's own books and statement.
//!
//! - **Legal transitions** (10): each channel order's history starts INIT and follows the
//!   checker's own edge table (INIT → SENT | FAIL; SENT → SUCCESS | FAIL | UNKNOWN; UNKNOWN →
//!   SUCCESS | FAIL | SENT).
//! - **Conservation at the edge of the world** (2): each bank's cards plus the platform's
//!   reserve there equal the cards' opening balances (money is created only by opening a
//!   card), so the platform's ledger (Σ = 0, checked by [`crate::conservation`]) plus every
//!   bank's books is constant.
//! - **Exactly once per `instr_id`** (6): one posting per side whatever mix of reply,
//!   notification and query decided the order: a deposit credited once if it succeeded, never
//!   if it failed; a withdrawal held once, then settled once if paid or reversed once if
//!   refused for good, never both; no clearing posting without its order.
//! - **Reconciliation** (15): every order's outcome is its bank's (SUCCESS ⇔ a successful
//!   instruction of the same direction and amount; FAIL by the bank ⇔ a refused one; a refused
//!   hold sends nothing), every instruction at a bank has its order (长款 otherwise), every
//!   statement line matches exactly one successful order and every successful order has its
//!   line (短款 otherwise), each reserve in the ledger equals the bank's balance for the
//!   platform, and the withdrawals in transit net to zero.

use crate::{
    BankState, ChannelOrderState, ChannelStatus, FundKind, Invariant, Observation, Side, Violation,
    VoucherRecord,
};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// The prefix of the platform's clearing postings' requests (`clr:<key>:settle|reverse`).
pub const CLEARING_PREFIX: &str = "clr:";

/// The key prefix of reconciliation's suspense postings (`clr:suspense-<instr>[:release]`).
pub const SUSPENSE_PREFIX: &str = "suspense-";

/// Evidence about order `o`: its instruction, bank and (from the bank's books, in `dates`)
/// the bank date it was carried out on.
fn about(invariant: Invariant, o: &ChannelOrderState, message: String, dates: &Dates) -> Violation {
    let date = dates
        .get(o.instr.as_str())
        .map_or("none".to_string(), u32::to_string);
    Violation::new(invariant, message)
        .with("instr", &o.instr)
        .with("bank", o.bank)
        .with("date", date)
        .with("kind", format!("{:?}", o.kind))
        .with("amount", o.amount)
        .with("status", format!("{:?}", o.status))
}

/// The bank date each carried-out instruction belongs to.
pub(crate) type Dates<'a> = BTreeMap<&'a str, u32>;

pub(crate) fn dates(obs: &Observation) -> Dates<'_> {
    let all = obs.clearing.banks.iter().flat_map(|b| &b.instructions);
    all.filter_map(|i| Some((i.instr.as_str(), i.date?)))
        .collect()
}

pub fn check(obs: &Observation) -> Vec<Violation> {
    let c = &obs.clearing;
    let dates = dates(obs);
    let mut out = Vec::new();
    for o in &c.orders {
        out.extend(transitions(o, &dates));
    }
    for b in &c.banks {
        out.extend(bank_books(b));
    }
    out.extend(between_banks(&c.banks));
    let vouchers = vouchers_by_request(obs);
    for o in &c.orders {
        postings(o, &vouchers, &dates, &mut out);
    }
    out.extend(orphan_postings(obs, &vouchers, &dates));
    out.extend(crate::reconciliation::check(obs));
    out
}

/// The checker's own edge table of a channel order.
pub fn legal(from: ChannelStatus, to: ChannelStatus) -> bool {
    use ChannelStatus::*;
    matches!(
        (from, to),
        (Init, Sent)
            | (Init, Fail)
            | (Sent, Success)
            | (Sent, Fail)
            | (Sent, Unknown)
            | (Unknown, Success)
            | (Unknown, Fail)
            | (Unknown, Sent)
    )
}

fn transitions(o: &ChannelOrderState, dates: &Dates) -> Option<Violation> {
    let starts = o.history.first() == Some(&ChannelStatus::Init);
    let bad = o.history.windows(2).find(|w| !legal(w[0], w[1]));
    if starts && bad.is_none() && o.history.last() == Some(&o.status) {
        return None;
    }
    let path: Vec<String> = o.history.iter().map(|s| format!("{s:?}")).collect();
    let msg = format!("channel order {} went {}", o.instr, path.join(" → "));
    Some(about(Invariant::LegalTransitions, o, msg, dates).with("history", path.join(",")))
}

fn bank_books(b: &BankState) -> Option<Violation> {
    if b.cards + b.reserve + b.sent - b.received == b.openings {
        return None;
    }
    let msg = format!(
        "bank {} holds {} on cards and {} for the platform, and sent {} and received {} in \
         transfers, but opened cards with {}",
        b.bank, b.cards, b.reserve, b.sent, b.received, b.openings
    );
    Some(
        Violation::new(Invariant::Conservation, msg)
            .with("bank", b.bank)
            .with("cards", b.cards)
            .with("reserve", b.reserve)
            .with("sent", b.sent)
            .with("received", b.received)
            .with("openings", b.openings),
    )
}

/// Across banks at rest: every transfer sent has arrived, so money between banks is zero and
/// the banks' books together hold exactly the cards' openings.
fn between_banks(banks: &[BankState]) -> Option<Violation> {
    let sent: Decimal = banks.iter().map(|b| b.sent).sum();
    let received: Decimal = banks.iter().map(|b| b.received).sum();
    if sent == received {
        return None;
    }
    let undelivered: Vec<&str> = banks
        .iter()
        .flat_map(|b| b.undelivered.iter().map(String::as_str))
        .collect();
    let msg = format!(
        "banks sent {sent} in transfers between the platform's reserves but received {received}"
    );
    Some(
        Violation::new(Invariant::Conservation, msg)
            .with("sent", sent)
            .with("received", received)
            .with("undelivered", undelivered.join(",")),
    )
}

type Found<'a> = Vec<(u32, &'a VoucherRecord)>;

/// The vouchers outside any activity, by request.
fn vouchers_by_request(obs: &Observation) -> BTreeMap<&str, Found<'_>> {
    let mut by: BTreeMap<&str, Found<'_>> = BTreeMap::new();
    for s in &obs.shards {
        for v in s.vouchers.iter().filter(|v| v.xid.is_none()) {
            by.entry(v.request.as_str()).or_default().push((s.shard, v));
        }
    }
    by
}

/// The request of an order's posting `what`: `clr:<key>:<what>`, where a key the platform
/// made itself (`clr:<request>.<what>`) keeps its one prefix.
pub fn clearing_request(key: &str, what: &str) -> String {
    let key = key.strip_prefix(CLEARING_PREFIX).unwrap_or(key);
    format!("{CLEARING_PREFIX}{key}:{what}")
}

pub fn settle_request(key: &str) -> String {
    clearing_request(key, "settle")
}

pub fn reverse_request(key: &str) -> String {
    clearing_request(key, "reverse")
}

pub fn recon_request(key: &str) -> String {
    clearing_request(key, "recon")
}

/// How many postings each of an order's requests must have made, at rest.
fn expected(o: &ChannelOrderState) -> [(String, usize); 4] {
    let success = o.status == ChannelStatus::Success;
    let (first, settle, reverse) = match o.kind {
        FundKind::Deposit => (usize::from(success), 0, 0),
        FundKind::Transfer { .. } => (0, usize::from(success), 0),
        FundKind::Withdrawal | FundKind::RefundToCard => (
            usize::from(o.held),
            usize::from(success),
            usize::from(o.held && o.status == ChannelStatus::Fail),
        ),
    };
    [
        (o.key.clone(), first),
        (settle_request(&o.key), settle),
        (reverse_request(&o.key), reverse),
        (recon_request(&o.key), usize::from(o.corrected)),
    ]
}

/// One order's postings: as many as its outcome requires, each of its amount.
fn postings(
    o: &ChannelOrderState,
    by: &BTreeMap<&str, Found<'_>>,
    dates: &Dates,
    out: &mut Vec<Violation>,
) {
    if !o.status.is_final() || !o.settled {
        return;
    }
    for (request, want) in expected(o) {
        let found = by.get(request.as_str()).map_or(&[][..], Vec::as_slice);
        let wrong_amount = found.iter().find(|(_, v)| debits(v) != o.amount);
        if found.len() == want && wrong_amount.is_none() {
            continue;
        }
        let ids: Vec<&str> = found.iter().map(|(_, v)| v.voucher.as_str()).collect();
        let msg = match wrong_amount {
            Some((_, v)) if found.len() == want => format!(
                "{request} of channel order {} moved {}, not {}",
                o.instr,
                debits(v),
                o.amount
            ),
            _ => format!(
                "{request} of channel order {} posted {} times but must post {want} ({:?} {:?})",
                o.instr,
                found.len(),
                o.kind,
                o.status
            ),
        };
        let v = about(Invariant::ExactlyOnce, o, msg, dates)
            .with("request", &request)
            .with("vouchers", ids.join(","));
        out.push(v);
    }
}

impl ChannelStatus {
    pub fn is_final(self) -> bool {
        matches!(self, ChannelStatus::Success | ChannelStatus::Fail)
    }
}

fn debits(v: &VoucherRecord) -> Decimal {
    let legs = v.legs.iter().filter(|l| l.side == Side::Debit);
    legs.map(|l| l.amount).sum()
}

/// Clearing postings (`clr:` requests) that are none of their order's own: no such order,
/// or a request its order never makes (a second credit under another name, say).
fn orphan_postings(
    obs: &Observation,
    by: &BTreeMap<&str, Found<'_>>,
    dates: &Dates,
) -> Vec<Violation> {
    let orders: BTreeMap<&str, &ChannelOrderState> = obs
        .clearing
        .orders
        .iter()
        .map(|o| (o.key.strip_prefix(CLEARING_PREFIX).unwrap_or(&o.key), o))
        .collect();
    let mut out = Vec::new();
    for (request, found) in by {
        let Some(rest) = request.strip_prefix(CLEARING_PREFIX) else {
            continue;
        };
        let (key, what) = rest.split_once(':').unwrap_or((rest, ""));
        if key.starts_with(SUSPENSE_PREFIX) {
            // Reconciliation's suspense (judged by reconciliation: zero at rest).
            continue;
        }
        let order = orders.get(key);
        // A platform order's first posting is its own key (`clr:<request>.<what>`).
        let first = order.is_some_and(|o| o.key == *request);
        if first || (order.is_some() && matches!(what, "settle" | "reverse" | "recon")) {
            continue;
        }
        let ids: Vec<&str> = found.iter().map(|(_, v)| v.voucher.as_str()).collect();
        let v = match order {
            Some(o) => {
                let msg = format!(
                    "clearing posting {request} is none of channel order {}'s own postings",
                    o.instr
                );
                about(Invariant::ExactlyOnce, o, msg, dates)
            }
            None => {
                let msg = format!("clearing posting {request} belongs to no channel order");
                Violation::new(Invariant::ExactlyOnce, msg)
            }
        };
        out.push(v.with("request", request).with("vouchers", ids.join(",")));
    }
    out
}

#[cfg(test)]
#[path = "clearing/tests.rs"]
mod tests;

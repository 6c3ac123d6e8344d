//! The clearing figures `paylab run` prints with banks: channel orders by kind and outcome
//! (from the gateway's books at the end), how UNKNOWN orders were resolved, and what
//! reconciliation found and repaired (from the probes).

use paylab_invariants::{ChannelStatus, ClearingSnapshot, FundKind};
use paylab_system::probes::names;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A run's clearing figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearingFigures {
    /// Orders by `kind/outcome` (`deposit/success`, `withdrawal/fail`, ... `/open` if not
    /// final when the run ended).
    pub orders: BTreeMap<String, usize>,
    /// UNKNOWN orders (no answer in time) and how they were resolved.
    pub unknown: u64,
    pub by_query: u64,
    pub by_notify: u64,
    pub by_statement: u64,
    /// Bank dates reconciled with no difference; 长款 and 短款 found and repaired; statement
    /// lines held for want of an order.
    pub dates_matched: u64,
    pub long_repaired: u64,
    pub short_repaired: u64,
    pub lines_held: u64,
    /// Lines posted to suspense, and released from it once their order turned up.
    #[serde(default)]
    pub suspended: u64,
    #[serde(default)]
    pub released: u64,
    /// The treasury's rebalancing transfers ordered.
    #[serde(default)]
    pub rebalanced: u64,
}

/// Orders by kind and outcome, from the gateway's books.
pub fn orders(clearing: &ClearingSnapshot) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for o in &clearing.orders {
        let kind = match o.kind {
            FundKind::Deposit => "deposit",
            FundKind::Withdrawal => "withdrawal",
            FundKind::RefundToCard => "refund-to-card",
            FundKind::Transfer { .. } => "transfer",
        };
        let outcome = match o.status {
            ChannelStatus::Success => "success",
            ChannelStatus::Fail => "fail",
            _ => "open",
        };
        *out.entry(format!("{kind}/{outcome}")).or_insert(0) += 1;
    }
    out
}

impl ClearingFigures {
    /// The figures of a run whose final read found `orders` and whose probes are `probes`.
    pub fn new(orders: BTreeMap<String, usize>, probes: &BTreeMap<String, u64>) -> Self {
        let n = |name: &str| probes.get(name).copied().unwrap_or(0);
        ClearingFigures {
            orders,
            unknown: n(names::CLEARING_UNKNOWN),
            by_query: n(names::CLEARING_RESOLVED_BY_QUERY),
            by_notify: n(names::CLEARING_RESOLVED_BY_NOTIFY),
            by_statement: n(names::CLEARING_RESOLVED_BY_STATEMENT),
            dates_matched: n(names::RECON_DATE_MATCHED),
            long_repaired: n(names::RECON_LONG_REPAIRED),
            short_repaired: n(names::RECON_SHORT_REPAIRED),
            lines_held: n(names::RECON_UNMATCHED_HELD),
            suspended: n(names::RECON_SUSPENDED),
            released: n(names::RECON_RELEASED),
            rebalanced: n(names::RECON_REBALANCED),
        }
    }
}

impl std::fmt::Display for ClearingFigures {
    /// One line: orders, unknowns and their resolutions, reconciliation.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let orders: Vec<String> = self
            .orders
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        write!(
            f,
            "clearing: {} | unknown {} (resolved by query {}, notify {}, statement {}) | \
             reconciliation: {} dates matched, 长款 repaired {}, 短款 repaired {}, lines held {} \
             (suspended {}, released {}) | treasury: {} transfers",
            if orders.is_empty() {
                "no orders".to_string()
            } else {
                orders.join(" ")
            },
            self.unknown,
            self.by_query,
            self.by_notify,
            self.by_statement,
            self.dates_matched,
            self.long_repaired,
            self.short_repaired,
            self.lines_held,
            self.suspended,
            self.released,
            self.rebalanced
        )
    }
}

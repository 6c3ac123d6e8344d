//! A run's summary from its history alone: how many operations failed for which reason (the
//! platform's refusal codes), the share refused for insufficient funds, and the latency of
//! payments in simulated milliseconds. Hostile attempts are counted apart: their refusals are
//! what they must get, not the honest workload's failures.

use paylab_invariants::{OpKind, Operation, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The refusal code of a payer or merchant short of money.
pub const INSUFFICIENT_FUNDS: &str = "insufficient-funds";

/// What `paylab run` prints under its counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub operations: usize,
    /// Failed operations by refusal code.
    pub failures: BTreeMap<String, usize>,
    /// The share of all operations refused for insufficient funds, in percent.
    pub insufficient_funds_pct: f64,
    /// Payments that got a definite answer (ok or refused): the latency sample.
    pub pays: usize,
    /// Nearest-rank percentiles of `complete_ms - invoke_ms` over those payments.
    pub pay_p50_ms: Option<u64>,
    pub pay_p99_ms: Option<u64>,
    /// Hostile clients' attempts ([`OpKind::Attack`]), not in the counts above.
    #[serde(default)]
    pub attacks: usize,
}

/// The summary of a history.
pub fn summarize(history: &[Operation]) -> RunSummary {
    let mut failures = BTreeMap::new();
    let mut latencies = Vec::new();
    let attacks = history
        .iter()
        .filter(|op| op.kind == OpKind::Attack)
        .count();
    for op in history.iter().filter(|op| op.kind != OpKind::Attack) {
        if let Some(code) = op.outcome.code() {
            *failures.entry(code.to_string()).or_insert(0) += 1;
        }
        if op.kind == OpKind::Pay && op.outcome != Outcome::Unknown {
            latencies.push(op.complete_ms.saturating_sub(op.invoke_ms));
        }
    }
    latencies.sort_unstable();
    let short = failures.get(INSUFFICIENT_FUNDS).copied().unwrap_or(0);
    let operations = history.len() - attacks;
    RunSummary {
        operations,
        insufficient_funds_pct: percent(short, operations),
        failures,
        pays: latencies.len(),
        pay_p50_ms: percentile(&latencies, 50),
        pay_p99_ms: percentile(&latencies, 99),
        attacks,
    }
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// The nearest-rank `p`-th percentile of a sorted sample.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

impl std::fmt::Display for RunSummary {
    /// Two lines: failures by reason, then pay latency.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reasons: Vec<String> = self
            .failures
            .iter()
            .map(|(code, n)| format!("{code}={n}"))
            .collect();
        let reasons = if reasons.is_empty() {
            "none".to_string()
        } else {
            reasons.join(" ")
        };
        writeln!(
            f,
            "failures by reason: {reasons} | insufficient funds: {:.1}% of {} operations",
            self.insufficient_funds_pct, self.operations
        )?;
        let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v}ms"));
        write!(
            f,
            "pay latency (simulated): p50 {} p99 {} over {} payments | hostile attempts: {}",
            ms(self.pay_p50_ms),
            ms(self.pay_p99_ms),
            self.pays,
            self.attacks
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: OpKind, outcome: Outcome, invoke_ms: u64, complete_ms: u64) -> Operation {
        Operation {
            client: 0,
            request: format!("r{invoke_ms}").into(),
            kind,
            amount: None,
            invoke_ms,
            complete_ms,
            attempts: 1,
            outcome,
            trade: None,
            replies: Vec::new(),
            attack: None,
        }
    }

    #[test]
    fn failures_are_counted_by_code_and_pay_latency_by_rank() {
        let short = || Outcome::fail(INSUFFICIENT_FUNDS, "short");
        let mut history: Vec<Operation> = (0..100)
            .map(|i| op(OpKind::Pay, Outcome::Ok, i, 2 * i + 1))
            .collect();
        history.push(op(OpKind::Pay, Outcome::Unknown, 0, 10_000));
        history.push(op(OpKind::Transfer, short(), 0, 1));
        history.push(op(OpKind::Pay, short(), 0, 0));
        history.push(op(
            OpKind::Refund,
            Outcome::fail("refund-exceeds", "x"),
            0,
            1,
        ));
        let s = summarize(&history);
        assert_eq!(s.operations, 104);
        assert_eq!(s.failures[INSUFFICIENT_FUNDS], 2);
        assert_eq!(s.failures["refund-exceeds"], 1);
        assert_eq!(s.pays, 101, "the unknown pay is no latency sample");
        assert_eq!(s.pay_p50_ms, Some(50));
        assert_eq!(s.pay_p99_ms, Some(99));
        assert!((s.insufficient_funds_pct - 200.0 / 104.0).abs() < 1e-9);
        assert_eq!(summarize(&[]).pay_p50_ms, None);
    }
}

//! A campaign's summary from its results alone: counts per verdict, every failing seed with
//! its broken invariants and repro command, and the coverage table (for every probe and fault
//! kind, how many runs fired it; those that never fired are untested). Nothing in it depends
//! on wall time or on the order runs finished in, so shards merged give the same summary as
//! one machine running every seed.

use super::manifest::Manifest;
use super::results::{CampaignVerdict, RunRecord};
use crate::plan::FaultKind;
use paylab_system::probes::names;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const JSON_FILE: &str = "summary.json";
pub const MD_FILE: &str = "summary.md";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The campaign in one line (seeds and flags, no shard).
    pub campaign: String,
    pub runs: u64,
    /// Runs per verdict, every verdict listed.
    pub verdicts: BTreeMap<String, u64>,
    /// Every failing seed, in seed order.
    pub failures: Vec<Failure>,
    /// Every probe and fault kind, with the number of runs that fired it.
    pub coverage: Vec<Coverage>,
    /// The probes and fault kinds no run fired: what this campaign has not tested.
    pub untested: Vec<String>,
    pub simulated_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub seed: u64,
    pub verdict: CampaignVerdict,
    pub invariants: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub repro: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    pub name: String,
    /// `fault` for a fault kind, `probe` for a protocol corner.
    pub kind: String,
    pub runs: u64,
}

/// Every probe name the platform and harness declare (`paylab_system::probes::names`); a test
/// checks this list against that module's source.
pub const PROBES: &[&str] = &[
    names::NODE_CRASH,
    names::FAULT_SKIPPED,
    names::POWER_LOSS_DROPPED,
    names::TORN_TAIL,
    names::DUPLICATE_DELIVERED,
    names::MESSAGE_DELAYED,
    names::RPC_TIMEOUT,
    names::LEDGER_RECOVERED,
    names::LEDGER_TORN_TAIL_CUT,
    names::RECOVERY_TORN_TAIL_CUT,
    names::LEDGER_IDEMPOTENT_REPLAY,
    names::LEDGER_INSUFFICIENT_FUNDS,
    names::TCC_EMPTY_ROLLBACK,
    names::TCC_LATE_TRY_REFUSED,
    names::TCC_CONFIRM_REPEAT_ABSORBED,
    names::TCC_CANCEL_REPEAT_ABSORBED,
    names::TCC_TRY_TIMEOUT,
    names::TCC_TRY_REFUSED,
    names::TCC_PHASE_TWO_RETRY,
    names::TCC_RESUMED_COMMIT,
    names::TCC_RESUMED_ROLLBACK,
    names::TCC_HEURISTIC,
    names::TRADE_RECOVERED,
    names::TRADE_CLOSED_BY_TIMEOUT,
    names::TRADE_REFUND_BOUND_REFUSED,
    names::TRADE_DUPLICATE_CREATE,
    names::TRADE_UNAUTHORIZED_REFUSED,
    names::TRADE_BEGIN_AFTER_END,
    names::TRADE_END_BEFORE_BEGIN,
    names::LEDGER_UNAUTHORIZED_REFUSED,
    names::LEDGER_REQUEST_REUSED_REFUSED,
    names::PAYMENT_UNAUTHORIZED_REFUSED,
    names::PAYMENT_DEPOSITED,
    names::PAYMENT_WITHDRAWN,
    names::PAYMENT_CARD_DEPOSITED,
    names::PAYMENT_REFUNDED_TO_CARD,
    names::PAYMENT_RECOVERED,
    names::PAYMENT_ORDER_RESUMED,
    names::PAYMENT_GAVE_UP_RETOLD,
    names::PAYMENT_FORWARDED,
    names::PAYMENT_REPLAYED_OUTCOME,
    names::PAYMENT_PAID,
    names::BROKER_RECOVERED,
    names::BROKER_LOST_UNSYNCED,
    names::BROKER_CHECK_SENT,
    names::BROKER_HALF_COMMITTED_BY_CHECK,
    names::BROKER_HALF_ROLLED_BACK_BY_CHECK,
    names::BROKER_HALF_DISCARDED,
    names::BROKER_RETRY_SCHEDULED,
    names::BROKER_DEAD_LETTERED,
    names::OUTBOX_RELAYED,
    names::OUTBOX_RESENT,
    names::OUTBOX_RESENT_AFTER_RESTART,
    names::TXMSG_HALF_SENT,
    names::TXMSG_LOCAL_ABORTED,
    names::TXMSG_CHECK_COMMIT,
    names::TXMSG_CHECK_ROLLBACK,
    names::TXMSG_CHECK_UNKNOWN,
    names::TXMSG_COMMITTED_AFTER_RESTART,
    names::CONSUMER_DUPLICATE_SKIPPED,
    names::CONSUMER_STALE_VERSION_SKIPPED,
    names::CONSUMER_REPLAYED_AFTER_RESTART,
    names::CONSUMER_PROCESSING_FAILED,
    names::CONSUMER_RETRY_DELIVERED,
    names::CONSUMER_BATCH_HANDED,
    names::NOTIFY_ACKED,
    names::NOTIFY_RETRIED,
    names::NOTIFY_EXHAUSTED,
    names::BANK_RECOVERED,
    names::BANK_PROCESSING,
    names::BANK_NOTIFIED_TWICE,
    names::BANK_TRANSFER_RECEIVED,
    names::BANK_TRANSFER_REPEAT_ABSORBED,
    names::CLEARING_TRANSFER_ORDERED,
    names::CLEARING_REFUND_TO_CARD_REVERSED,
    names::RECON_REBALANCED,
    names::RECON_TRANSFER_AWAITED,
    names::CLEARING_FINAL_HELD,
    names::SAGA_COMPENSATED,
    names::OUTBOX_CREDIT_APPLIED,
    names::TXMSG_CREDIT_HALF_STORED,
    names::TXMSG_CREDIT_CHECK_COMMIT,
    names::TXMSG_CREDIT_CHECK_ROLLBACK,
    names::TXMSG_CREDIT_CHECK_UNKNOWN,
    names::CREDIT_RESENT_AFTER_RESTART,
    names::SAGA_COMPENSATION_REFUSED,
    names::SAGA_RESUMED,
    names::RECON_SUSPENDED,
    names::RECON_RELEASED,
    names::PAYMENT_REFUND_KEPT_IN_BALANCE,
    names::CLEARING_RECOVERED,
    names::CLEARING_UNKNOWN,
    names::CLEARING_RESOLVED_BY_QUERY,
    names::CLEARING_RESOLVED_BY_NOTIFY,
    names::CLEARING_DUPLICATE_NOTIFY,
    names::CLEARING_RESENT,
    names::CLEARING_REVERSED,
    names::CLEARING_DECLINED,
    names::CLEARING_RESUMED,
    names::CLEARING_RESOLVED_BY_STATEMENT,
    names::RECON_RECOVERED,
    names::RECON_DATE_MATCHED,
    names::RECON_LONG_REPAIRED,
    names::RECON_SHORT_REPAIRED,
    names::RECON_UNMATCHED_HELD,
    names::CLIENT_RETRY,
    names::CLIENT_UNKNOWN,
    names::CLIENT_RE_ASK,
    names::EXPECTED_ANOMALY,
    names::CHECKED_LOCK_EVENTS,
    names::CHECKED_SAGAS,
];

/// The summary of a campaign's records (in any order, each seed once).
pub fn summarize(manifest: &Manifest, records: &[RunRecord]) -> Summary {
    let mut sorted: Vec<&RunRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.seed);
    let mut verdicts: BTreeMap<String, u64> = CampaignVerdict::ALL
        .iter()
        .map(|v| (v.word().to_string(), 0))
        .collect();
    for r in &sorted {
        *verdicts.entry(r.verdict.word().to_string()).or_default() += 1;
    }
    let failures = sorted
        .iter()
        .filter(|r| r.failed())
        .map(|r| Failure {
            seed: r.seed,
            verdict: r.verdict,
            invariants: r.invariants.clone(),
            detail: r.detail.clone(),
            repro: r.repro.clone(),
            report: r.report.clone(),
        })
        .collect();
    let coverage = coverage(&sorted);
    let untested = coverage
        .iter()
        .filter(|c| c.runs == 0)
        .map(|c| c.name.clone())
        .collect();
    Summary {
        campaign: manifest.describe(),
        runs: sorted.len() as u64,
        verdicts,
        failures,
        coverage,
        untested,
        simulated_ms: sorted.iter().map(|r| r.sim_ms).sum(),
    }
}

/// Fault kinds first (in the catalogue's order), then every probe by name: the declared ones
/// and any other a run fired.
fn coverage(records: &[&RunRecord]) -> Vec<Coverage> {
    let fired = |name: &str| {
        records
            .iter()
            .filter(|r| r.probes.get(name).is_some_and(|n| *n > 0))
            .count() as u64
    };
    let faults: Vec<&str> = FaultKind::ALL.iter().map(|k| k.probe()).collect();
    let mut probes: std::collections::BTreeSet<&str> = PROBES.iter().copied().collect();
    for r in records {
        probes.extend(r.probes.keys().map(String::as_str));
    }
    let row = |name: &str, kind: &str| Coverage {
        name: name.to_string(),
        kind: kind.to_string(),
        runs: fired(name),
    };
    faults
        .iter()
        .map(|f| row(f, "fault"))
        .chain(
            probes
                .iter()
                .filter(|p| !faults.contains(p))
                .map(|p| row(p, "probe")),
        )
        .collect()
}

impl Summary {
    /// Whether every run passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The Markdown report: counts, failures with their repro commands, coverage.
    pub fn markdown(&self) -> String {
        let mut md = format!("# paylab campaign\n\n`{}`\n\n", self.campaign);
        md.push_str(&format!(
            "{} runs, {:.1} s simulated.\n\n",
            self.runs,
            self.simulated_ms as f64 / 1000.0
        ));
        md.push_str("| verdict | runs |\n| --- | --- |\n");
        for (verdict, n) in &self.verdicts {
            md.push_str(&format!("| {verdict} | {n} |\n"));
        }
        md.push_str(&format!("\n## Failures ({})\n\n", self.failures.len()));
        if self.failures.is_empty() {
            md.push_str("None: every run passed.\n");
        }
        for f in &self.failures {
            let broken = if f.invariants.is_empty() {
                "-".to_string()
            } else {
                f.invariants.join(", ")
            };
            md.push_str(&format!(
                "- seed {}: **{}** ({broken})",
                f.seed,
                f.verdict.word()
            ));
            if let Some(detail) = &f.detail {
                md.push_str(&format!(": {}", detail.replace('\n', " ")));
            }
            md.push_str(&format!("\n  repro: `{}`\n", f.repro));
            if let Some(report) = &f.report {
                md.push_str(&format!("  report: `{report}`\n"));
            }
        }
        md.push_str("\n## Coverage\n\n| fault kind or probe | kind | runs that fired it |\n| --- | --- | --- |\n");
        for c in &self.coverage {
            let runs = if c.runs == 0 {
                "0 **untested**".to_string()
            } else {
                c.runs.to_string()
            };
            md.push_str(&format!("| `{}` | {} | {runs} |\n", c.name, c.kind));
        }
        md.push_str(&format!(
            "\n{} of {} never fired (untested).\n",
            self.untested.len(),
            self.coverage.len()
        ));
        md
    }
}

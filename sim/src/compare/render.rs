//! The comparison as data (JSON) and as a Markdown report.

use super::measure::StrategyFigures;
use serde_json::{json, Value};

/// What the comparison ran: the seeds and the settings every strategy shared.
pub struct Header {
    pub seeds: std::ops::Range<u64>,
    /// The shared configuration, as `flag=value` (its strategy left out).
    pub config: String,
}

/// One strategy's row as JSON.
fn strategy_json(s: &StrategyFigures) -> Value {
    let broken: Vec<Value> = s
        .broken()
        .into_iter()
        .map(|b| {
            json!({
                "invariant": b.invariant, "runs": b.runs, "first_seed": b.first_seed,
                "repro": b.repro, "claimed": b.claimed,
                "kind": if b.claimed { "finding" } else { "expected anomaly" },
            })
        })
        .collect();
    json!({
        "strategy": s.strategy.name(),
        "claims": s.claims,
        "runs": s.runs.len(),
        "passing": s.passing(),
        "clean": s.clean(),
        "broken": broken,
        "money_at_risk": s.money_at_risk().to_string(),
        "pay_p50_ms": s.median(|r| r.pay_p50_ms),
        "pay_p99_ms": s.median(|r| r.pay_p99_ms),
        "payments_per_sim_second": round2(s.payments_per_sim_second()),
        "rpcs_per_payment": round2(s.rpcs_per_payment()),
        "fsyncs_per_payment": round2(s.fsyncs_per_payment()),
        "converge_ms": s.median(|r| r.converge_ms),
        "compensations": s.compensations(),
        "lock_ms": if s.strategy.locking() {
            json!({
                "longest_per_run_median": s.median(|r| Some(r.locks.longest_ms)),
                "longest": s.longest_lock_ms(),
                "total": s.runs.iter().map(|r| r.locks.total_ms).sum::<u64>(),
            })
        } else {
            Value::Null
        },
        "per_run": s.runs,
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The whole comparison as JSON.
pub fn to_json(header: &Header, strategies: &[StrategyFigures]) -> Value {
    json!({
        "seeds": format!("{}..{}", header.seeds.start, header.seeds.end),
        "config": header.config,
        "strategies": strategies.iter().map(strategy_json).collect::<Vec<_>>(),
    })
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn guarantees(s: &StrategyFigures) -> String {
    let c = &s.claims;
    let flags = [
        (c.atomic, "atomic"),
        (c.isolated, "isolated"),
        (c.eventual, "eventual"),
        (c.blocking, "blocking"),
    ];
    let on: Vec<&str> = flags.iter().filter(|(f, _)| *f).map(|(_, n)| *n).collect();
    if on.is_empty() {
        "none".to_string()
    } else {
        on.join(", ")
    }
}

/// The comparison as Markdown: one table of figures, then what each strategy broke.
pub fn to_markdown(header: &Header, strategies: &[StrategyFigures]) -> String {
    let mut out = format!(
        "# paylab compare: seeds {}..{}\n\nEvery strategy ran every seed with the same fault plan and the same client intents ({}).\n\n",
        header.seeds.start, header.seeds.end, header.config
    );
    out.push_str("| strategy | claims | runs passing | clean runs | invariants broken (runs) | money at risk (CNY) | pay p50 / p99 (sim ms) | payments per sim s | RPCs per payment | fsyncs per payment | heal to converged (sim ms) | lock time (2PC) | compensations |\n");
    out.push_str(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for s in strategies {
        let broken: Vec<String> = s
            .broken()
            .iter()
            .map(|b| format!("{} {}", b.invariant, b.runs))
            .collect();
        out.push_str(&format!(
            "| `{}` | {} | {} of {} | {} | {} | {} | {} / {} | {:.2} | {:.1} | {:.1} | {} | {} | {} |\n",
            s.strategy.name(),
            guarantees(s),
            s.passing(),
            s.runs.len(),
            s.clean(),
            if broken.is_empty() { "none".to_string() } else { broken.join(", ") },
            s.money_at_risk(),
            ms(s.median(|r| r.pay_p50_ms)),
            ms(s.median(|r| r.pay_p99_ms)),
            s.payments_per_sim_second(),
            s.rpcs_per_payment(),
            s.fsyncs_per_payment(),
            ms(s.median(|r| r.converge_ms)),
            lock_time(s),
            if s.strategy == paylab_system::strategy::StrategyKind::Saga {
                s.compensations().to_string()
            } else {
                "n/a".to_string()
            },
        ));
    }
    out.push_str("\nLatencies and convergence are medians over the runs of each run's figure; RPCs and fsyncs are whole-run totals (every node and client) per successful payment. Compensations count the sagas whose done steps were undone. Lock time (2PC only): the longest hold of a prepared branch's lock in a run, as the median over the runs and the longest of all; a coordinator that crashed after prepare leaves its participants in doubt holding theirs until it recovers.\n");
    for s in strategies {
        out.push_str(&strategy_section(s));
    }
    out
}

/// A locking strategy's lock time: the median over the runs of each run's longest hold, and
/// the longest of all.
fn lock_time(s: &StrategyFigures) -> String {
    if !s.strategy.locking() {
        return "n/a".to_string();
    }
    let median = ms(s.median(|r| Some(r.locks.longest_ms)));
    format!("longest {median} ms (median) / {} ms", s.longest_lock_ms())
}

fn strategy_section(s: &StrategyFigures) -> String {
    let mut out = format!(
        "\n## `{}`\n\nClaims: {}. Documented weakness: {}.\n\n",
        s.strategy.name(),
        guarantees(s),
        s.claims.weakness
    );
    let broken = s.broken();
    if broken.is_empty() {
        out.push_str("No invariant broke in any run.\n");
        return out;
    }
    for b in broken {
        let kind = if b.claimed {
            "**finding** (it claims this invariant)"
        } else {
            "expected anomaly (not claimed)"
        };
        out.push_str(&format!(
            "- `{}`: {} runs, {kind}; first seed {}: `{}`\n",
            b.invariant, b.runs, b.first_seed, b.repro
        ));
    }
    out
}

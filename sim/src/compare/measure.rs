//! Runs every (strategy, seed) pair of a comparison and folds each run into its strategy's
//! figures. Every pair of one seed gets the same fault plan and asks the same intents
//! (`sim/tests/identical.rs` holds that); only the strategy differs.

use crate::plan::FaultPlan;
use crate::run::{run_recorded, RecordedRun};
use crate::RunConfig;
use paylab_invariants::{OpKind, Operation, Outcome, Violation};
use paylab_system::strategy::{Claims, StrategyKind};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// What one run contributes to its strategy's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RunFigures {
    pub seed: u64,
    pub verdict: &'static str,
    /// Every invariant the run broke (as a violation or as an expected anomaly), with the
    /// number of reports of it.
    pub broken: BTreeMap<&'static str, usize>,
    /// The amounts of the operations the run's violations and anomalies name, each once.
    pub money_at_risk: Decimal,
    pub repro: String,
    pub payments: u64,
    pub pay_p50_ms: Option<u64>,
    pub pay_p99_ms: Option<u64>,
    pub sim_ms: u64,
    pub converge_ms: Option<u64>,
    pub rpcs: u64,
    pub fsyncs: u64,
    /// Sagas compensated (steps done, then undone).
    pub compensations: u64,
    /// The locks prepared 2PC branches held.
    pub locks: crate::run::Locks,
}

impl RunFigures {
    pub fn of(run: &RecordedRun) -> RunFigures {
        let r = &run.report;
        let named = r.violations.iter().chain(&r.expected_anomalies);
        let mut broken: BTreeMap<&'static str, usize> = BTreeMap::new();
        for v in named.clone() {
            *broken.entry(v.invariant.name()).or_default() += 1;
        }
        let payments = run
            .history
            .iter()
            .filter(|op| op.kind == OpKind::Pay && op.outcome == Outcome::Ok)
            .count() as u64;
        RunFigures {
            seed: r.config.seed,
            verdict: r.verdict.word(),
            broken,
            money_at_risk: money_at_risk(&run.history, named),
            repro: r.repro(),
            payments,
            pay_p50_ms: r.summary.pay_p50_ms,
            pay_p99_ms: r.summary.pay_p99_ms,
            sim_ms: r.sim_ms,
            converge_ms: r.converge_ms,
            rpcs: r.rpcs,
            fsyncs: r.fsyncs,
            compensations: r.probe(paylab_system::probes::names::SAGA_COMPENSATED),
            locks: r.locks,
        }
    }
}

/// The sum of the amounts of the operations `violations` name: by the request their evidence
/// names, else every payment and refund of the trade it names; each operation counted once.
fn money_at_risk<'a>(
    history: &[Operation],
    violations: impl Iterator<Item = &'a Violation>,
) -> Decimal {
    let (mut requests, mut trades) = (BTreeSet::new(), BTreeSet::new());
    for v in violations {
        match (v.evidence.get("request"), v.evidence.get("trade")) {
            (Some(request), _) => requests.insert(request.as_str()),
            (None, Some(trade)) => trades.insert(trade.as_str()),
            _ => false,
        };
    }
    let moves = |op: &&Operation| matches!(op.kind, OpKind::Pay | OpKind::Refund);
    history
        .iter()
        .filter(|op| {
            requests.contains(op.request.as_str())
                || (moves(op) && op.trade.as_deref().is_some_and(|t| trades.contains(t)))
        })
        .filter_map(|op| op.amount)
        .sum()
}

/// One strategy's figures over the seeds.
#[derive(Debug, Clone, Serialize)]
pub struct StrategyFigures {
    pub strategy: StrategyKind,
    pub claims: Claims,
    pub runs: Vec<RunFigures>,
}

/// One invariant a strategy broke in some runs.
#[derive(Debug, Clone, Serialize)]
pub struct Broken {
    pub invariant: &'static str,
    pub runs: usize,
    pub first_seed: u64,
    pub repro: String,
    /// Whether the strategy claims the invariant: breaking it is then a finding, otherwise
    /// its documented weakness (an expected anomaly).
    pub claimed: bool,
}

impl StrategyFigures {
    /// Runs whose verdict is PASS (expected anomalies do not fail a run).
    pub fn passing(&self) -> usize {
        self.runs.iter().filter(|r| r.verdict == "PASS").count()
    }

    /// Runs that broke no invariant at all, not even one the strategy does not claim.
    pub fn clean(&self) -> usize {
        self.runs.iter().filter(|r| r.broken.is_empty()).count()
    }

    /// Every invariant some run broke, in the catalogue's order.
    pub fn broken(&self) -> Vec<Broken> {
        let mut by: BTreeMap<&'static str, Broken> = BTreeMap::new();
        for r in &self.runs {
            for &invariant in r.broken.keys() {
                let b = by.entry(invariant).or_insert_with(|| Broken {
                    invariant,
                    runs: 0,
                    first_seed: r.seed,
                    repro: r.repro.clone(),
                    claimed: !self.claims.not_claimed.contains(&invariant),
                });
                b.runs += 1;
            }
        }
        paylab_invariants::Invariant::ALL
            .iter()
            .filter_map(|i| by.remove(i.name()))
            .collect()
    }

    /// The longest lock hold of any run, in simulated ms.
    pub fn longest_lock_ms(&self) -> u64 {
        self.runs
            .iter()
            .map(|r| r.locks.longest_ms)
            .max()
            .unwrap_or(0)
    }

    /// Sagas compensated, over every run.
    pub fn compensations(&self) -> u64 {
        self.runs.iter().map(|r| r.compensations).sum()
    }

    pub fn money_at_risk(&self) -> Decimal {
        self.runs.iter().map(|r| r.money_at_risk).sum()
    }

    /// The median over the runs of each run's figure.
    pub fn median(&self, figure: impl Fn(&RunFigures) -> Option<u64>) -> Option<u64> {
        let mut values: Vec<u64> = self.runs.iter().filter_map(figure).collect();
        values.sort_unstable();
        values.get(values.len().checked_sub(1)? / 2).copied()
    }

    fn payments(&self) -> u64 {
        self.runs.iter().map(|r| r.payments).sum()
    }

    /// Successful payments per simulated second, over every run.
    pub fn payments_per_sim_second(&self) -> f64 {
        let ms: u64 = self.runs.iter().map(|r| r.sim_ms).sum();
        self.payments() as f64 * 1_000.0 / ms.max(1) as f64
    }

    /// RPC sends of the whole runs per successful payment.
    pub fn rpcs_per_payment(&self) -> f64 {
        self.runs.iter().map(|r| r.rpcs).sum::<u64>() as f64 / self.payments().max(1) as f64
    }

    /// Fsyncs of the whole runs per successful payment.
    pub fn fsyncs_per_payment(&self) -> f64 {
        self.runs.iter().map(|r| r.fsyncs).sum::<u64>() as f64 / self.payments().max(1) as f64
    }
}

/// Runs every strategy over every seed of `seeds` with `base`'s other settings, on `jobs`
/// threads; `progress` hears of each run done.
pub fn measure(
    strategies: &[StrategyKind],
    seeds: Range<u64>,
    base: &RunConfig,
    jobs: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Vec<StrategyFigures> {
    let work: Vec<(usize, u64)> = seeds
        .clone()
        .flat_map(|s| (0..strategies.len()).map(move |k| (k, s)))
        .collect();
    let figures = crate::pool::run_all(
        &work,
        jobs,
        |&(k, seed)| {
            let config = RunConfig {
                seed,
                strategy: strategies[k],
                ..base.clone()
            };
            let plan = FaultPlan::generate(&config);
            (k, RunFigures::of(&run_recorded(config, plan)))
        },
        progress,
    );
    let mut runs: Vec<Vec<RunFigures>> = vec![Vec::new(); strategies.len()];
    for (k, f) in figures {
        runs[k].push(f);
    }
    strategies
        .iter()
        .zip(runs)
        .map(|(&strategy, mut runs)| {
            runs.sort_by_key(|r| r.seed);
            StrategyFigures {
                strategy,
                claims: strategy.claims(),
                runs,
            }
        })
        .collect()
}

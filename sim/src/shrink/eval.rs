//! Runs candidate cases, `jobs` at a time on their own OS threads, within a wall-time budget,
//! and says which still fail the way the original did.

use super::candidates::Case;
use crate::run::{run_with_plan, RunReport};
use paylab_invariants::Invariant;
use std::collections::HashMap;
use std::time::Instant;

/// The failure a shrunk case must keep: the same verdict and, for a safety violation, the same
/// broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub verdict: &'static str,
    pub invariant: Option<Invariant>,
}

impl Target {
    /// The failure of a run: its verdict and the invariant it breaks (the one the planted bug
    /// names if it broke that one, otherwise its first).
    pub fn of(report: &RunReport) -> Target {
        let wanted = report.config.bug.map(|b| b.caught_by());
        let invariant = report
            .violations
            .iter()
            .find(|v| Some(v.invariant.name()) == wanted)
            .or(report.violations.first())
            .map(|v| v.invariant);
        Target {
            verdict: report.verdict.word(),
            invariant,
        }
    }

    /// Whether the run fails this way.
    pub fn matches(&self, report: &RunReport) -> bool {
        report.verdict.word() == self.verdict
            && self
                .invariant
                .is_none_or(|i| report.violations.iter().any(|v| v.invariant == i))
    }

    /// The failure in words: `VIOLATION of refund-bound`, `LIVENESS`.
    pub fn describe(&self) -> String {
        match self.invariant {
            Some(i) => format!("{} of {i}", self.verdict),
            None => self.verdict.to_string(),
        }
    }
}

/// Runs candidates against the target, counting runs, until the deadline.
pub struct Evaluator {
    pub target: Target,
    pub jobs: usize,
    pub deadline: Instant,
    pub runs: usize,
    /// Set once a batch was refused for want of time.
    pub exhausted: bool,
    /// When set, a run matches only with fewer operations than this (and is not cached).
    pub ops_below: Option<usize>,
    /// A run matches only with at most this many operations: the current smallest case's,
    /// so that no accepted step makes the case bigger in operations (a dropped fault can let
    /// a run carry out more before it fails). It only falls, so a run refused for it stays
    /// refused and may be cached.
    pub ops_at_most: Option<usize>,
    /// Whether each case already run (keyed by its JSON) failed the target.
    seen: HashMap<String, bool>,
}

impl Evaluator {
    pub fn new(target: Target, jobs: usize, deadline: Instant) -> Self {
        Evaluator {
            target,
            jobs: jobs.max(1),
            deadline,
            runs: 0,
            exhausted: false,
            ops_below: None,
            ops_at_most: None,
            seen: HashMap::new(),
        }
    }

    /// The first of `cases` (in their order) whose run fails like the target, with its report.
    /// Runs them in batches of `jobs`; stops early at the first batch with a match, and before
    /// any batch once the deadline has passed. Cases run before and found passing are skipped.
    pub fn first_failing(&mut self, cases: &[Case]) -> Option<(usize, RunReport)> {
        let fresh: Vec<usize> = (0..cases.len())
            .filter(|&i| self.seen.get(&key(&cases[i])) != Some(&false))
            .collect();
        for batch in fresh.chunks(self.jobs) {
            if Instant::now() >= self.deadline {
                self.exhausted = true;
                return None;
            }
            let reports = run_batch(batch.iter().map(|&i| cases[i].clone()).collect());
            self.runs += reports.len();
            let mut found = None;
            for (&i, report) in batch.iter().zip(reports) {
                let ops = super::ops_of(&report);
                let fails = self.target.matches(&report)
                    && self.ops_below.is_none_or(|b| ops < b)
                    && self.ops_at_most.is_none_or(|b| ops <= b);
                if self.ops_below.is_none() {
                    self.seen.insert(key(&cases[i]), fails);
                }
                if fails && found.is_none() {
                    found = Some((i, report));
                }
            }
            if found.is_some() {
                return found;
            }
        }
        None
    }
}

/// Runs every case in parallel, one OS thread each (every run makes its own simulation
/// thread too); reports in the cases' order.
fn run_batch(cases: Vec<Case>) -> Vec<RunReport> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .into_iter()
            .map(|c| scope.spawn(move || run_with_plan(c.config, c.plan)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("run_with_plan turns panics into a verdict"))
            .collect()
    })
}

fn key(case: &Case) -> String {
    let config = serde_json::to_string(&case.config).expect("a config serializes");
    let plan = serde_json::to_string(&case.plan).expect("a plan serializes");
    format!("{config}|{plan}")
}

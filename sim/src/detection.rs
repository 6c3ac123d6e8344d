//! `paylab bugs --measure`: how often the default swarm catches each planted bug.
//!
//! Runs every planted bug of the catalogue (or a chosen few) over a range of seeds, each in the
//! message mode it lives in, and counts per bug the seeds that failed, the seeds that failed
//! the invariant the catalogue names for it, the first such seed, and every invariant that
//! fired. The README's detection table is this module's Markdown output, regenerated rather
//! than typed. Runs go to `jobs` worker threads; each run is still one simulation on a fresh
//! OS thread of its own, so the counts are the same whatever `jobs` is.

use crate::config::RunConfig;
use crate::plan::FaultKind;
use crate::run::{run, RunReport, Verdict};
use paylab_system::bugs::Bug;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// What a range of seeds showed about one planted bug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub bug: Bug,
    /// Seeds run.
    pub runs: u64,
    /// Seeds whose verdict was not a pass.
    pub failing: u64,
    /// Seeds on which the invariant the catalogue names fired.
    pub named: u64,
    /// The first seed on which the named invariant fired.
    pub first_named: Option<u64>,
    /// Every invariant that fired (`liveness` and `crash` for those verdicts), with the number
    /// of seeds it fired on.
    pub fired: BTreeMap<String, u64>,
}

impl Detection {
    fn new(bug: Bug) -> Self {
        Detection {
            bug,
            runs: 0,
            failing: 0,
            named: 0,
            first_named: None,
            fired: BTreeMap::new(),
        }
    }

    /// The share of seeds on which the named invariant fired, in percent.
    pub fn named_percent(&self) -> f64 {
        100.0 * self.named as f64 / self.runs.max(1) as f64
    }

    fn add(&mut self, seed: u64, fired: &BTreeSet<String>) {
        self.runs += 1;
        if fired.is_empty() {
            return;
        }
        self.failing += 1;
        for name in fired {
            *self.fired.entry(name.clone()).or_default() += 1;
        }
        if fired.contains(self.bug.caught_by()) {
            self.named += 1;
            self.first_named = Some(self.first_named.map_or(seed, |s| s.min(seed)));
        }
    }
}

/// The run of `seed` with `bug` planted: the defaults, in the message mode the bug lives in
/// (and with two banks if it lives in the clearing layer and the defaults have none, in its
/// strategy if it lives in one), with
/// `faults` as `--faults` (the seed's swarm when `None`).
pub fn config(bug: Bug, seed: u64, faults: Option<Vec<FaultKind>>) -> RunConfig {
    let mut config = RunConfig {
        bug: Some(bug),
        faults,
        ..RunConfig::new(seed)
    }
    .resolve();
    if crate::config::bug_needs_banks(bug) && config.banks == 0 {
        config.banks = 2;
    }
    if let Some(strategy) = crate::config::strategy_of_bug(bug) {
        config.strategy = strategy;
    }
    config
}

/// The invariants a run's verdict names: its violations', or `liveness`, or `crash` (with the
/// violations found before it).
pub fn fired(report: &RunReport) -> BTreeSet<String> {
    let broken = report
        .violations
        .iter()
        .map(|v| v.invariant.name().to_string());
    match &report.verdict {
        Verdict::Pass => BTreeSet::new(),
        Verdict::Violation => broken.collect(),
        Verdict::Liveness(_) => BTreeSet::from(["liveness".to_string()]),
        // A crash also names what the checks had found before it.
        Verdict::Crash(_) => broken.chain(["crash".to_string()]).collect(),
    }
}

/// Runs every bug of `bugs` on every seed of `seeds`, on `jobs` worker threads; `progress`
/// hears (runs done, runs in all) after each run.
pub fn measure(
    bugs: &[Bug],
    seeds: Range<u64>,
    jobs: usize,
    faults: Option<Vec<FaultKind>>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Vec<Detection> {
    let work: Vec<(usize, u64)> = (0..bugs.len())
        .flat_map(|b| seeds.clone().map(move |s| (b, s)))
        .collect();
    let fired_by = crate::pool::run_all(
        &work,
        jobs,
        |&(b, seed)| fired(&run(config(bugs[b], seed, faults.clone()))),
        progress,
    );
    let mut results: Vec<Detection> = bugs.iter().map(|&b| Detection::new(b)).collect();
    for (&(b, seed), fired) in work.iter().zip(&fired_by) {
        results[b].add(seed, fired);
    }
    results
}

/// Parses a seed range: `A..B` (B excluded) or `A..=B` (B included), non-empty.
pub fn parse_seeds(text: &str) -> Result<Range<u64>, String> {
    let bad = || format!("--seeds takes a non-empty range A..B or A..=B of seeds, got {text:?}");
    let (start, end, inclusive) = match text.split_once("..=") {
        Some((a, b)) => (a, b, true),
        None => {
            let (a, b) = text.split_once("..").ok_or_else(bad)?;
            (a, b, false)
        }
    };
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end: u64 = end.trim().parse().map_err(|_| bad())?;
    let end = if inclusive {
        end.checked_add(1).ok_or_else(bad)?
    } else {
        end
    };
    if start >= end {
        return Err(bad());
    }
    Ok(start..end)
}

/// One line per bug, for the terminal.
pub fn render_lines(results: &[Detection]) -> Vec<String> {
    results
        .iter()
        .map(|d| {
            format!(
                "{:<28} {:>3}/{} seeds ({:>5.1} %) fail {}, first seed {}; {} fail in all; fired: {}",
                d.bug.name(),
                d.named,
                d.runs,
                d.named_percent(),
                d.bug.caught_by(),
                d.first_named.map_or("none".to_string(), |s| s.to_string()),
                d.failing,
                fired_list(d),
            )
        })
        .collect()
}

/// The README's detection table (Markdown).
pub fn render_markdown(results: &[Detection]) -> Vec<String> {
    let mut lines = vec![
        "| bug | named invariant | seeds failing it | first seed | failing in all | invariants fired (seeds) |".to_string(),
        "| --- | --- | --- | --- | --- | --- |".to_string(),
    ];
    for d in results {
        lines.push(format!(
            "| `{}` | {} | {} of {} ({:.1} %) | {} | {} | {} |",
            d.bug.name(),
            d.bug.caught_by(),
            d.named,
            d.runs,
            d.named_percent(),
            d.first_named.map_or("—".to_string(), |s| s.to_string()),
            d.failing,
            fired_list(d),
        ));
    }
    lines
}

/// The invariants that fired, the named one first, each with its seed count.
fn fired_list(d: &Detection) -> String {
    let named = d.bug.caught_by();
    let mut names: Vec<(&String, &u64)> = d.fired.iter().collect();
    names.sort_by_key(|(name, _)| name.as_str() != named);
    if names.is_empty() {
        return "none".to_string();
    }
    names
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "detection_tests.rs"]
mod tests;

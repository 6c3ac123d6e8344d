//! `paylab bench --parts scale`: is a run's cost linear in its length?
//!
//! Runs the default scenario (`paylab run`'s defaults, every checker on) at several lengths
//! and reports the wall time per 1,000 operations of each; a linear harness gives the same
//! figure at every length, so the ratio of the largest figure to the smallest is the
//! linearity (target <= 1.3). The lengths are 100, 1,000 and 10,000 operations per client;
//! `PAYLAB_BENCH_SCALE_OPS` (e.g. `100,400`) replaces them, for trying the part quickly.
//!
//! One unmeasured warm-up run of the shortest length comes first: a process's first run pays
//! for its allocator's first pages and cold caches, a cost of the process and not of the run's
//! length, which would otherwise make the shortest run look dearest per operation. Each length
//! is then run `rounds` times, interleaved, and its best time kept (the machine's other load
//! only ever adds time).

use crate::config::{RunConfig, OPS_MAX};
use crate::run::{run, RunReport};
use std::time::Instant;

/// The lengths measured, in operations per client.
pub const SCALE_OPS: [u32; 3] = [100, 1_000, 10_000];

/// The environment variable that replaces [`SCALE_OPS`].
pub const SCALE_OPS_ENV: &str = "PAYLAB_BENCH_SCALE_OPS";

/// One length's measurement.
#[derive(Debug, Clone)]
pub struct ScalePoint {
    pub ops_per_client: u32,
    /// Operations the clients performed (ok, failed and unknown).
    pub operations: u64,
    pub wall_s: f64,
    pub verdict: &'static str,
}

impl ScalePoint {
    /// Wall seconds per 1,000 operations.
    pub fn per_thousand(&self) -> f64 {
        self.wall_s * 1_000.0 / self.operations.max(1) as f64
    }
}

/// The lengths to measure: [`SCALE_OPS`], or the list in [`SCALE_OPS_ENV`].
pub fn scale_ops() -> Result<Vec<u32>, String> {
    match std::env::var(SCALE_OPS_ENV) {
        Ok(list) => parse_ops(&list),
        Err(_) => Ok(SCALE_OPS.to_vec()),
    }
}

/// Parses a comma-separated list of operations per client, each 1..=`OPS_MAX`.
pub fn parse_ops(list: &str) -> Result<Vec<u32>, String> {
    let bad = |item: &str| {
        format!("{SCALE_OPS_ENV} must list operations per client between 1 and {OPS_MAX}, separated by commas; got {item:?}")
    };
    let ops = list
        .split(',')
        .map(|item| match item.trim().parse::<u32>() {
            Ok(n) if (1..=OPS_MAX).contains(&n) => Ok(n),
            _ => Err(bad(item)),
        })
        .collect::<Result<Vec<u32>, String>>()?;
    if ops.is_empty() {
        return Err(bad(list));
    }
    Ok(ops)
}

/// Runs the default scenario at each length `rounds` times (interleaved, after one warm-up run
/// of the shortest), on the wall clock, keeping each length's best time.
pub fn measure(lengths: &[u32], rounds: u32) -> Vec<ScalePoint> {
    if let Some(&shortest) = lengths.iter().min() {
        timed(shortest);
    }
    let mut best: Vec<ScalePoint> = lengths.iter().map(|&ops| timed(ops)).collect();
    for _ in 1..rounds {
        for (slot, &ops) in best.iter_mut().zip(lengths) {
            let p = timed(ops);
            if p.wall_s < slot.wall_s {
                *slot = p;
            }
        }
    }
    best
}

/// One run of the default scenario (seed 0) with `ops` operations per client.
fn timed(ops: u32) -> ScalePoint {
    let config = RunConfig {
        ops,
        ..RunConfig::new(0)
    };
    let started = Instant::now();
    let report = run(config);
    let wall_s = started.elapsed().as_secs_f64();
    point(ops, &report, wall_s)
}

fn point(ops_per_client: u32, report: &RunReport, wall_s: f64) -> ScalePoint {
    let o = report.ops;
    ScalePoint {
        ops_per_client,
        operations: (o.ok + o.fail + o.unknown) as u64,
        wall_s,
        verdict: report.verdict.word(),
    }
}

/// The largest wall time per 1,000 operations over the smallest (1.0 is perfectly linear);
/// `None` for fewer than two points.
pub fn linearity(points: &[ScalePoint]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let per = points.iter().map(ScalePoint::per_thousand);
    let max = per.clone().fold(f64::MIN, f64::max);
    let min = per.fold(f64::MAX, f64::min);
    Some(max / min.max(1e-12))
}

/// The part's lines, as `paylab bench` prints them.
pub fn render(points: &[ScalePoint], rounds: u32) -> Vec<String> {
    let mut lines = vec![format!(
        "scale: the default run (seed 0, swarm faults, every checker on) at {} operations per client, best of {rounds} after a warm-up run",
        points
            .iter()
            .map(|p| p.ops_per_client.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )];
    for p in points {
        lines.push(format!(
            "scale: --ops {:<6} {:>8} operations in {:>9.3}s wall = {:>8.4}s per 1,000 operations ({})",
            p.ops_per_client,
            p.operations,
            p.wall_s,
            p.per_thousand(),
            p.verdict
        ));
    }
    if let Some(ratio) = linearity(points) {
        lines.push(format!(
            "scale: largest / smallest wall per 1,000 operations = {ratio:.2} (target <= 1.30)"
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ops_per_client: u32, operations: u64, wall_s: f64) -> ScalePoint {
        ScalePoint {
            ops_per_client,
            operations,
            wall_s,
            verdict: "PASS",
        }
    }

    #[test]
    fn linearity_is_the_largest_cost_per_operation_over_the_smallest() {
        let linear = [p(100, 1_000, 0.5), p(1_000, 10_000, 5.0)];
        assert!((linearity(&linear).unwrap() - 1.0).abs() < 1e-9);
        let quadratic = [p(100, 1_000, 0.5), p(1_000, 10_000, 50.0)];
        assert!((linearity(&quadratic).unwrap() - 10.0).abs() < 1e-9);
        // A costly short run is as far from linear as a costly long one.
        let fixed_cost = [p(100, 1_000, 2.0), p(1_000, 10_000, 5.0)];
        assert!((linearity(&fixed_cost).unwrap() - 4.0).abs() < 1e-9);
        assert_eq!(linearity(&[p(100, 1_000, 0.5)]), None);
    }

    #[test]
    fn the_ops_list_parses_and_bad_lists_are_refused_in_one_sentence() {
        assert_eq!(parse_ops("100, 400").unwrap(), vec![100, 400]);
        for bad in ["", "0", "100,x", "100,,200", "-5", "100001"] {
            let e = parse_ops(bad).unwrap_err();
            assert!(
                e.contains(SCALE_OPS_ENV) && !e.contains('\n'),
                "{bad:?}: {e}"
            );
        }
    }
}

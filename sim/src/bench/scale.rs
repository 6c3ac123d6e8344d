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

use super::floor::Floor;
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
    /// RPCs the run sent ([`RunReport::rpcs`]).
    pub rpcs: u64,
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
        rpcs: report.rpcs,
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

/// The default run's length, in operations per client (`paylab run`'s `--ops`).
const DEFAULT_OPS: u32 = 100;

/// The default run's wall-time target, in seconds (what lets a 2-core CI job run 5,000 seeds
/// a minute).
const DEFAULT_RUN_TARGET_S: f64 = 0.05;

/// The part's lines, as `paylab bench` prints them; with a floor, each run's RPCs priced at it.
pub fn render(points: &[ScalePoint], rounds: u32, floor: Option<&Floor>) -> Vec<String> {
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
        if let Some(floor) = floor {
            lines.push(floor_line(p, floor));
        }
    }
    if let Some(ratio) = linearity(points) {
        lines.push(format!(
            "scale: largest / smallest wall per 1,000 operations = {ratio:.2} (target <= 1.30)"
        ));
    }
    if let Some(p) = points.iter().find(|p| p.ops_per_client == DEFAULT_OPS) {
        lines.push(default_run_line(p, floor));
    }
    lines
}

/// A run's RPCs, and the wall time they alone take at the floor's rate.
fn floor_line(p: &ScalePoint, floor: &Floor) -> String {
    format!(
        "scale:   its {} RPCs alone take {:.3}s at the floor; the run took {} that",
        p.rpcs,
        floor.seconds(p.rpcs as f64),
        floor.times(p.wall_s, p.rpcs)
    )
}

/// The default run (`paylab run --seed 0`) against its target, and against the floor if known.
fn default_run_line(p: &ScalePoint, floor: Option<&Floor>) -> String {
    let target = if p.wall_s <= DEFAULT_RUN_TARGET_S {
        "met"
    } else {
        "not met"
    };
    let below = floor.map_or(String::new(), |f| {
        let floor_s = f.seconds(p.rpcs as f64);
        let reach = if floor_s > DEFAULT_RUN_TARGET_S {
            "above the target: not reachable here without fewer or cheaper RPCs"
        } else {
            "below the target"
        };
        format!("; its RPCs' floor is {floor_s:.3}s, {reach}")
    });
    format!(
        "scale: the default run (--ops {DEFAULT_OPS}) took {:.3}s wall: target <= {DEFAULT_RUN_TARGET_S:.2}s {target}{below}",
        p.wall_s
    )
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
            rpcs: operations * 10,
        }
    }

    fn floor(round_trips_per_s: f64) -> Floor {
        let f = |name| crate::bench::Figure {
            name,
            count: round_trips_per_s as u64,
            wall_s: 1.0,
        };
        Floor {
            raw: f("raw"),
            bare: f("bare"),
        }
    }

    #[test]
    fn the_default_run_is_judged_against_its_target_and_its_floor() {
        // 1,000 operations, 10,000 RPCs: at 100,000 round trips a second their floor is 0.1 s.
        let slow = [p(100, 1_000, 0.3), p(1_000, 10_000, 3.0)];
        let lines = render(&slow, 1, Some(&floor(100_000.0)));
        let last = lines.last().unwrap();
        assert!(
            last.contains("took 0.300s wall: target <= 0.05s not met"),
            "{last}"
        );
        assert!(last.contains("floor is 0.100s, above the target"), "{last}");
        assert!(lines.iter().any(
            |l| l.contains("10000 RPCs alone take 0.100s at the floor; the run took 3.0x that")
        ));
        // At 1,000,000 a second the floor is 0.01 s, and a 0.04 s run meets the target.
        let fast = [p(100, 1_000, 0.04)];
        let last = render(&fast, 1, Some(&floor(1_000_000.0))).pop().unwrap();
        assert!(
            last.contains("target <= 0.05s met; its RPCs' floor is 0.010s, below the target"),
            "{last}"
        );
        // Without the default length there is no such line; without a floor, no floor.
        assert!(!render(&[p(400, 1_000, 0.3)], 1, None)
            .iter()
            .any(|l| l.contains("the default run (--ops")));
        let plain = render(&slow, 1, None);
        assert!(!plain.iter().any(|l| l.contains("floor")), "{plain:?}");
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

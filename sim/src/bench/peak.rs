//! `paylab bench --parts peak`: the Double-11 peak scenario, on the wall clock and in memory.
//!
//! Runs `paylab run --scenario peak-2015` (every checker on) once and reports its wall
//! seconds, the payments it completed, payments per wall second and the process's peak RSS
//! (targets: the simulated minute in <= 3 minutes of wall time and <= 8 GiB). A build whose
//! `paylab run` has no `--scenario peak-2015` yet runs the stand-in [`stand_in`] instead (the
//! largest topology of today's flags, closed-loop clients) and says so.

use crate::config::RunConfig;
use crate::run::run;
use paylab_system::probes::names;
use std::time::Instant;

/// The scenario the part runs.
pub const SCENARIO: &str = "peak-2015";

/// What the part measured.
#[derive(Debug, Clone)]
pub struct PeakFigures {
    /// `None` when the run was the stand-in (the scenario is not in this build).
    pub scenario: Option<&'static str>,
    pub config: RunConfig,
    pub wall_s: f64,
    pub sim_s: f64,
    /// Pay orders that finished paid.
    pub payments: u64,
    pub operations: u64,
    /// The process's peak resident set (VmHWM), in KiB, if the OS reports it.
    pub peak_rss_kib: Option<u64>,
    pub verdict: &'static str,
}

/// The scenario's configuration, if this build's `paylab run` knows `--scenario peak-2015`.
pub fn scenario_config() -> Option<RunConfig> {
    RunConfig::from_args(&["--scenario", SCENARIO]).ok()
}

/// Until the scenario exists: the largest topology today's flags allow (64 ledger shards, 16
/// trade shards, 16 payment nodes), 64 closed-loop clients of 100 steps, swarm faults.
pub fn stand_in() -> RunConfig {
    RunConfig {
        shards: 64,
        trade_shards: 16,
        payment_nodes: 16,
        clients: 64,
        ops: 100,
        ..RunConfig::new(0)
    }
}

/// Runs the scenario (or the stand-in) once.
pub fn measure() -> PeakFigures {
    let (scenario, config) = match scenario_config() {
        Some(config) => (Some(SCENARIO), config),
        None => (None, stand_in()),
    };
    reset_peak_rss();
    let started = Instant::now();
    let report = run(config.clone());
    let wall_s = started.elapsed().as_secs_f64();
    let o = report.ops;
    PeakFigures {
        scenario,
        config,
        wall_s,
        sim_s: report.sim_ms as f64 / 1_000.0,
        payments: report.probe(names::PAYMENT_PAID),
        operations: (o.ok + o.fail + o.unknown) as u64,
        peak_rss_kib: peak_rss_kib(),
        verdict: report.verdict.word(),
    }
}

/// Starts the process's peak-RSS count afresh (Linux: `5` into `/proc/self/clear_refs`), so
/// that the figure is this run's and not an earlier part's. Best effort.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident set in KiB (`VmHWM` of `/proc/self/status`), if known.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The part's lines, as `paylab bench` prints them.
pub fn render(f: &PeakFigures) -> Vec<String> {
    let what = match f.scenario {
        Some(name) => format!("--scenario {name}"),
        None => format!(
            "stand-in (this build has no --scenario {SCENARIO}): {}",
            f.config
        ),
    };
    let rss = f.peak_rss_kib.map_or("unknown".to_string(), |kib| {
        format!("{:.1} MiB", kib as f64 / 1_024.0)
    });
    vec![
        format!("peak: {what}"),
        format!(
            "peak: {:.3}s wall for {:.3}s simulated, {} payments ({} operations), {:.0} payments per wall second, peak RSS {rss} ({})",
            f.wall_s,
            f.sim_s,
            f.payments,
            f.operations,
            f.payments as f64 / f.wall_s.max(1e-9),
            f.verdict
        ),
        "peak: targets: the simulated minute in <= 180 s of wall time and <= 8 GiB".to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_rss_is_read_from_vm_hwm() {
        let status = "Name:\tpaylab\nVmPeak:\t  2000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(1234));
        assert_eq!(parse_vm_hwm("Name:\tpaylab\n"), None);
    }

    #[test]
    fn the_stand_in_is_a_valid_run() {
        assert!(stand_in().validate().is_ok());
    }
}

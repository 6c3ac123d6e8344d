//! `paylab bench --parts peak`: the Double-11 peak scenario, on the wall clock and in memory.
//!
//! Runs `paylab run --scenario peak-2015` (every checker on) once per duration of
//! `--peak-durations` (simulated seconds of arrivals; by default 0.1, 0.2 and 0.4, a ladder
//! that fits in a minute of wall time; `60` is the scenario's whole minute) and reports for
//! each its wall seconds, the payments it completed, payments per wall second, the process's
//! peak RSS during that run, its verdict and the time from heal to convergence. Then it
//! projects the whole minute from the largest run that passed: its wall time per payment
//! times the minute's payments, a lower bound (the cost per payment grows with the backlog an
//! overloaded platform builds, which the ladder shows). Targets: the simulated minute in
//! <= 3 minutes of wall time and <= 8 GiB.

use super::floor::Floor;
use crate::config::RunConfig;
use crate::run::run;
use paylab_system::probes::names;
use std::time::Instant;

/// The scenario the part runs.
pub const SCENARIO: &str = "peak-2015";

/// The durations measured by default, in simulated seconds of arrivals.
pub const DEFAULT_DURATIONS: &str = "0.1,0.2,0.4";

/// The scenario's payments per simulated second and its length (Alipay, 11.11 2015).
const PEAK_RATE: f64 = 85_900.0;
const PEAK_SECONDS: f64 = 60.0;

/// The wall-time target for the whole minute, in seconds.
const MINUTE_TARGET_S: f64 = 180.0;

/// What one run of the part measured.
#[derive(Debug, Clone)]
pub struct PeakFigures {
    /// Simulated seconds of arrivals (`--duration`).
    pub duration_s: f64,
    pub wall_s: f64,
    pub sim_s: f64,
    /// Pay orders that finished paid.
    pub payments: u64,
    pub operations: u64,
    /// The process's peak resident set (VmHWM) during this run, in KiB, if the OS reports it.
    pub peak_rss_kib: Option<u64>,
    pub verdict: &'static str,
    /// Simulated milliseconds from the heal to convergence (`None`: never, within the horizon).
    pub converge_ms: Option<u64>,
    /// Pay latency percentiles (simulated ms, `None` without payments): p50, p99.
    pub pay_ms: (Option<u64>, Option<u64>),
    /// RPCs the run sent ([`crate::run::RunReport::rpcs`]).
    pub rpcs: u64,
}

impl PeakFigures {
    fn wall_per_payment_s(&self) -> f64 {
        self.wall_s / self.payments.max(1) as f64
    }

    fn rpcs_per_payment(&self) -> f64 {
        self.rpcs as f64 / self.payments.max(1) as f64
    }
}

/// The runs `--peak-durations` asks for, each a valid `paylab run --scenario peak-2015
/// --duration D`, or one sentence on the first bad item.
pub fn configs(list: &[String]) -> Result<Vec<(f64, RunConfig)>, String> {
    list.iter()
        .map(|item| {
            let bad = |why: String| format!("--peak-durations: {item:?}: {why}");
            let duration: f64 = item
                .trim()
                .parse()
                .map_err(|_| bad("not a number of simulated seconds".into()))?;
            let args = ["--scenario", SCENARIO, "--duration", item.trim()];
            let config =
                RunConfig::from_args(&args).map_err(|e| bad(first_line(&e.to_string())))?;
            config.validate().map_err(|e| bad(e.to_string()))?;
            Ok((duration, config))
        })
        .collect()
}

/// The first line of a flag parser's message, without its own `error: ` prefix.
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s);
    line.trim_start_matches("error: ").to_string()
}

/// Runs the scenario once per configuration, in order.
pub fn measure(configs: &[(f64, RunConfig)]) -> Vec<PeakFigures> {
    configs
        .iter()
        .map(|(duration_s, config)| {
            reset_peak_rss();
            let started = Instant::now();
            let report = run(config.clone());
            let wall_s = started.elapsed().as_secs_f64();
            let o = report.ops;
            PeakFigures {
                duration_s: *duration_s,
                wall_s,
                sim_s: report.sim_ms as f64 / 1_000.0,
                payments: report.probe(names::PAYMENT_PAID),
                operations: (o.ok + o.fail + o.unknown) as u64,
                peak_rss_kib: peak_rss_kib(),
                verdict: report.verdict.word(),
                converge_ms: report.converge_ms,
                pay_ms: (report.summary.pay_p50_ms, report.summary.pay_p99_ms),
                rpcs: report.rpcs,
            }
        })
        .collect()
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

fn mib(kib: Option<u64>) -> String {
    kib.map_or("unknown".to_string(), |kib| {
        format!("{:.0} MiB", kib as f64 / 1_024.0)
    })
}

/// The part's lines, as `paylab bench` prints them: one per run, the projection, the targets;
/// with a floor, each run's RPCs and the minute's priced at it.
pub fn render(figures: &[PeakFigures], floor: Option<&Floor>) -> Vec<String> {
    let mut lines = vec![format!(
        "peak: --scenario {SCENARIO} (85,900 payments per simulated second), every checker on"
    )];
    for f in figures {
        let converged = f
            .converge_ms
            .map_or("never converged within the horizon".to_string(), |ms| {
                format!("converged {:.1}s after the heal", ms as f64 / 1_000.0)
            });
        let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v}ms"));
        lines.push(format!(
            "peak: --duration {}: {:.2}s wall for {:.1}s simulated, {} payments ({} operations), {:.0} payments per wall second, {:.0} us wall per payment, pay p50 {} p99 {} (simulated), peak RSS {}, {}, {converged}",
            f.duration_s,
            f.wall_s,
            f.sim_s,
            f.payments,
            f.operations,
            f.payments as f64 / f.wall_s.max(1e-9),
            f.wall_per_payment_s() * 1e6,
            ms(f.pay_ms.0),
            ms(f.pay_ms.1),
            mib(f.peak_rss_kib),
            f.verdict,
        ));
        if let Some(floor) = floor {
            lines.push(format!(
                "peak:   its {} RPCs ({:.1} per payment) alone take {:.2}s at the floor; the run took {} that",
                f.rpcs,
                f.rpcs_per_payment(),
                floor.seconds(f.rpcs as f64),
                floor.times(f.wall_s, f.rpcs)
            ));
        }
    }
    lines.push(projection(figures));
    if let Some(line) = floor.and_then(|floor| minute_floor(figures, floor)) {
        lines.push(line);
    }
    lines.push(
        "peak: targets: the simulated minute in <= 180 s of wall time and <= 8 GiB".to_string(),
    );
    lines
}

/// The largest run that passed with payments: what the minute is projected from.
fn largest_passing(figures: &[PeakFigures]) -> Option<&PeakFigures> {
    figures
        .iter()
        .filter(|f| f.verdict == "PASS" && f.payments > 0)
        .max_by(|a, b| a.duration_s.total_cmp(&b.duration_s))
}

/// The minute's RPCs, at the largest passing run's RPCs per payment, priced at the floor.
fn minute_floor(figures: &[PeakFigures], floor: &Floor) -> Option<String> {
    let f = largest_passing(figures)?;
    let rpcs = f.rpcs_per_payment() * PEAK_RATE * PEAK_SECONDS;
    let floor_s = floor.seconds(rpcs);
    let reach = if floor_s > MINUTE_TARGET_S {
        "above the 180 s target: not reachable here without fewer or cheaper RPCs"
    } else {
        "below the 180 s target"
    };
    Some(format!(
        "peak: the minute's RPCs at --duration {}'s {:.1} per payment: {:.0} million, which alone take {floor_s:.0}s at the floor, {reach}",
        f.duration_s,
        f.rpcs_per_payment(),
        rpcs / 1e6
    ))
}

/// The whole minute projected from the largest run that passed (a lower bound), or why not.
fn projection(figures: &[PeakFigures]) -> String {
    let Some(f) = largest_passing(figures) else {
        return "peak: no run passed: nothing to project the minute from".to_string();
    };
    if f.duration_s >= PEAK_SECONDS {
        return "peak: the whole minute ran (above)".to_string();
    }
    let minute_payments = PEAK_RATE * PEAK_SECONDS;
    let wall = f.wall_per_payment_s() * minute_payments;
    let rss = f.peak_rss_kib.map_or("unknown".to_string(), |kib| {
        let per_payment = kib as f64 / f.payments.max(1) as f64;
        format!(
            "{:.0} GiB",
            per_payment * minute_payments / (1_024.0 * 1_024.0)
        )
    });
    format!(
        "peak: the minute projected from --duration {} (its cost per payment, a lower bound: the cost grows with the backlog): at least {:.0}s wall and {rss} for {:.0} payments",
        f.duration_s, wall, minute_payments
    )
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

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn durations_are_the_scenarios_own_and_bad_ones_are_named() {
        let ok = configs(&list(&["0.05", "60"])).expect("valid durations");
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].0, 60.0);
        for bad in ["0", "-1", "abc", "4000"] {
            let e = configs(&list(&["0.1", bad])).expect_err(bad);
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    fn figures(duration_s: f64, wall_s: f64, payments: u64, verdict: &'static str) -> PeakFigures {
        PeakFigures {
            duration_s,
            wall_s,
            sim_s: 100.0,
            payments,
            operations: payments * 3,
            peak_rss_kib: Some(1_024 * 100),
            verdict,
            converge_ms: Some(5_000),
            pay_ms: (Some(90), Some(1_200)),
            rpcs: payments * 20,
        }
    }

    #[test]
    fn each_run_line_names_its_pay_latency() {
        let lines = render(&[figures(0.1, 1.0, 10_000, "PASS")], None);
        assert!(lines[1].contains("pay p50 90ms p99 1200ms"), "{}", lines[1]);
        assert!(!lines.iter().any(|l| l.contains("floor")), "{lines:?}");
    }

    #[test]
    fn the_runs_and_the_minute_are_priced_at_the_floor() {
        let f = |name| crate::bench::Figure {
            name,
            count: 200_000,
            wall_s: 1.0,
        };
        let floor = Floor {
            raw: f("raw"),
            bare: f("bare"),
        };
        let lines = render(&[figures(0.1, 5.0, 10_000, "PASS")], Some(&floor));
        // 200,000 RPCs at 200,000 a second: 1 s, and the run took 5 times that.
        assert!(lines[2].contains("200000 RPCs (20.0 per payment) alone take 1.00s at the floor; the run took 5.0x that"), "{}", lines[2]);
        // The minute: 5,154,000 payments x 20 RPCs = 103 million, 515 s at the floor.
        let minute = lines
            .iter()
            .find(|l| l.contains("the minute's RPCs"))
            .unwrap();
        assert!(
            minute.contains(
                "103 million, which alone take 515s at the floor, above the 180 s target"
            ),
            "{minute}"
        );
        let cheap = Floor {
            raw: f("raw"),
            bare: crate::bench::Figure {
                name: "bare",
                count: 2_000_000,
                wall_s: 1.0,
            },
        };
        let minute = minute_floor(&[figures(0.1, 5.0, 10_000, "PASS")], &cheap).unwrap();
        assert!(
            minute.contains("52s at the floor, below the 180 s target"),
            "{minute}"
        );
        assert_eq!(
            minute_floor(&[figures(0.1, 5.0, 10_000, "LIVENESS")], &floor),
            None
        );
    }

    #[test]
    fn the_minute_is_projected_from_the_largest_passing_run() {
        let runs = [
            figures(0.1, 1.0, 10_000, "PASS"),
            figures(0.2, 4.0, 20_000, "PASS"),
            figures(0.4, 50.0, 30_000, "LIVENESS"),
        ];
        let text = projection(&runs);
        // 200 us per payment (the 0.2 run) times 5,154,000 payments.
        assert!(text.contains("--duration 0.2"), "{text}");
        assert!(text.contains("at least 1031s wall"), "{text}");
        let none = projection(&[figures(0.1, 1.0, 10, "LIVENESS")]);
        assert!(none.contains("no run passed"), "{none}");
    }
}

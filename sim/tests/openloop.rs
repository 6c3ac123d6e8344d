//! Open-loop load and money that keeps flowing: an open-loop run under the seed's swarm
//! faults passes and reaches its corners (buyers topped up, merchants withdrew, many flows in
//! flight at once on a node); the closed loop's refusals for insufficient funds stay rare.

use paylab_sim::config::Scenario;
use paylab_sim::openloop::{ARRIVAL, IN_FLIGHT_PEAK, USER_OPENED};
use paylab_sim::summary::INSUFFICIENT_FUNDS;
use paylab_sim::workload::caller::{TOP_UP, WITHDRAWAL};
use paylab_sim::{run, RunConfig, RunReport, Verdict};
use paylab_system::probes::names;

fn assert_passes(report: &RunReport) {
    assert_eq!(
        report.verdict,
        Verdict::Pass,
        "{}: {:#?}",
        report.repro(),
        report.violations
    );
}

/// The share of operations refused for insufficient funds must stay under 10 %.
fn assert_money_flows(report: &RunReport) {
    let s = &report.summary;
    assert!(
        s.insufficient_funds_pct < 10.0,
        "{}: {:?} of {} operations refused for {INSUFFICIENT_FUNDS}",
        report.repro(),
        s.failures.get(INSUFFICIENT_FUNDS),
        s.operations
    );
}

#[test]
fn an_open_loop_run_under_faults_passes_with_money_flowing_both_ways() {
    // 300 payments a second for 3 s over 4 merchants: each takes far more than the 20,000
    // yuan above which it withdraws; 60 users spend more than their first funding.
    let config = RunConfig::from_args(&[
        "--seed",
        "2",
        "--rate",
        "300",
        "--duration",
        "3",
        "--users",
        "60",
        "--merchants",
        "4",
    ])
    .expect("flags parse");
    config.validate().expect("a valid open-loop run");
    let report = run(config);
    assert_passes(&report);
    assert_money_flows(&report);
    assert!(!report.plan.events.is_empty(), "the swarm plan has faults");
    assert!(report.probe(ARRIVAL) > 800, "about 1,125 arrivals");
    assert_eq!(report.probe(USER_OPENED), 60, "every user opened once");
    assert!(report.probe(TOP_UP) > 0, "a buyer topped up");
    assert!(report.probe(WITHDRAWAL) > 0, "a merchant withdrew");
    // The sum of the four nodes' peaks: above 4, some node had several flows at once.
    assert!(report.probe(IN_FLIGHT_PEAK) > 20, "flows overlap");
    assert!(report.summary.pay_p50_ms.is_some() && report.summary.pays > 500);
}

#[test]
fn the_closed_loop_keeps_refusals_for_insufficient_funds_rare() {
    let report = run(RunConfig {
        faults: Some(Vec::new()),
        ..RunConfig::new(3)
    });
    assert_passes(&report);
    assert_money_flows(&report);
    assert!(report.probe(TOP_UP) > 0, "a buyer topped up");
}

#[test]
fn the_peak_2015_scenario_scaled_down_passes_with_its_topology() {
    // Ten simulated milliseconds of the peak: about 1,070 arrivals over 64 client nodes.
    let config = RunConfig::from_args(&[
        "--seed",
        "1",
        "--scenario",
        "peak-2015",
        "--duration",
        "0.01",
    ])
    .expect("flags parse");
    assert_eq!(config.scenario, Some(Scenario::Peak2015));
    assert_eq!(
        (config.shards, config.trade_shards, config.payment_nodes),
        (64, 16, 16)
    );
    assert_eq!((config.rate, config.users), (Some(85_900), Some(1_000_000)));
    assert_eq!(config.consume_batch, Some(16), "batch consumption");
    assert_eq!(
        (config.serve_loops, config.event_consumers),
        (Some(64), Some(4)),
        "serving and consuming sized for the peak"
    );
    assert_eq!(config.faults, None, "the swarm plan");
    config.validate().expect("the scenario is valid");
    let report = run(config);
    assert_passes(&report);
    assert_money_flows(&report);
    assert!(report.probe(ARRIVAL) > 900);
    assert!(
        report.probe(names::CONSUMER_BATCH_HANDED) > 0,
        "an event consumer took several deliveries at once"
    );
    assert!(
        report
            .repro()
            .contains("--scenario peak-2015 --duration 0.010"),
        "{}",
        report.repro()
    );
}

//! Pinned scenarios: each names the trap it holds shut and proves, through a coverage probe,
//! that the run reached it.

use paylab_sim::{run, RunConfig, Verdict};
use paylab_system::probes::names;

/// Seed 0 crashes a ledger node inside an fsync window with a torn write: the unsynced tail is
/// lost, a partial record survives, and recovery must cut it and still balance.
#[test]
fn power_loss_with_a_torn_tail_is_recovered_without_breaking_an_invariant() {
    let report = run(RunConfig::new(0));
    assert_eq!(report.verdict, Verdict::Pass, "{:?}", report.violations);
    for probe in [
        names::NODE_CRASH,
        names::POWER_LOSS_DROPPED,
        names::TORN_TAIL,
        names::LEDGER_TORN_TAIL_CUT,
        names::LEDGER_RECOVERED,
    ] {
        assert!(report.probe(probe) > 0, "probe {probe} never fired");
    }
}

/// Every run crashes a ledger mid-load (and, without a planted bug, passes); clients time out, retry under the same request id, and
/// the recovered ledger answers the repeats from its durable outcomes.
#[test]
fn every_run_crashes_a_ledger_and_retries_are_absorbed() {
    let mut replays = 0;
    for seed in 0..10 {
        let report = run(RunConfig::new(seed));
        assert_eq!(
            report.verdict,
            Verdict::Pass,
            "seed {seed}: {:?}",
            report.violations
        );
        assert!(report.probe(names::NODE_CRASH) >= 1);
        assert!(
            report
                .probes
                .get(names::LEDGER_RECOVERED)
                .copied()
                .unwrap_or(0)
                >= 1
        );
        assert!(
            report.snapshots_checked > 5,
            "snapshots taken during the run"
        );
        replays += report
            .probes
            .get(names::LEDGER_IDEMPOTENT_REPLAY)
            .copied()
            .unwrap_or(0);
    }
    assert!(
        replays > 0,
        "some retry reached a ledger that had already applied it"
    );
}

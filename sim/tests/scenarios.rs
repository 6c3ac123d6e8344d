//! Pinned scenarios: each names the trap it holds shut and proves, through a coverage probe,
//! that the run reached it.
//!
//! Each scenario takes the first default-config seed in a small range whose run reaches its
//! corner, and asserts that the run passes. Searching a fixed range (rather than naming one
//! seed) keeps the scenario pinned to its corner when unrelated code shifts the simulation;
//! the range is deterministic, so so is the test.

use paylab_sim::{run, RunConfig, RunReport, Verdict};
use paylab_system::probes::names;

/// The first run among seeds `0..SEARCH` that reaches every probe in `corner`.
const SEARCH: u64 = 40;

fn first_run_reaching(corner: &[&str]) -> RunReport {
    for seed in 0..SEARCH {
        let report = run(RunConfig::new(seed));
        if corner.iter().all(|p| report.probe(p) > 0) {
            return report;
        }
    }
    panic!("no seed in 0..{SEARCH} reaches {corner:?}");
}

fn assert_passes(report: &RunReport) {
    assert_eq!(
        report.verdict,
        Verdict::Pass,
        "seed {}: {:#?}",
        report.config.seed,
        report.violations
    );
}

/// A node crashes inside an fsync window with a torn write: the unsynced tail is lost, a
/// partial record survives, and recovery must cut it and still balance.
#[test]
fn power_loss_with_a_torn_tail_is_recovered_without_breaking_an_invariant() {
    let report = first_run_reaching(&[
        names::POWER_LOSS_DROPPED,
        names::TORN_TAIL,
        names::RECOVERY_TORN_TAIL_CUT,
    ]);
    assert_passes(&report);
}

/// The payment manager crashes after logging COMMIT and before every Confirm was answered:
/// after its restart it must confirm the rest (never cancel), and everything still adds up.
#[test]
fn the_manager_crashes_after_commit_and_confirms_after_restart() {
    let report = first_run_reaching(&[names::PAYMENT_RECOVERED, names::TCC_RESUMED_COMMIT]);
    assert_passes(&report);
}

/// A Cancel arrives at a participant that never saw the Try (empty rollback): it succeeds
/// and leaves a SUSPENDED fence row.
#[test]
fn cancel_before_try_is_an_empty_rollback() {
    let report = first_run_reaching(&[names::TCC_EMPTY_ROLLBACK]);
    assert_passes(&report);
}

/// A Try held back in the network arrives after its Cancel: the fence refuses it, so no money
/// is frozen for ever (anti-hanging).
#[test]
fn a_try_after_its_cancel_is_refused() {
    let report = first_run_reaching(&[names::MESSAGE_DELAYED, names::TCC_LATE_TRY_REFUSED]);
    assert_passes(&report);
}

/// A Confirm's reply is lost (or the Confirm delivered twice): the manager retries, and the
/// participant answers the repeat from its fence without posting again.
#[test]
fn a_lost_confirm_reply_is_retried_and_absorbed() {
    let report = first_run_reaching(&[
        names::TCC_PHASE_TWO_RETRY,
        names::TCC_CONFIRM_REPEAT_ABSORBED,
    ]);
    assert_passes(&report);
}

/// Consecutive seeds pass under their swarm fault plans, with trades paid, refunded and
/// closed, and retries absorbed.
#[test]
fn consecutive_seeds_pass_with_faults_and_business_traffic() {
    for seed in 0..10 {
        let report = run(RunConfig::new(seed));
        assert_passes(&report);
        assert!(!report.plan.events.is_empty(), "seed {seed} has faults");
        assert!(
            report.snapshots_checked > 5,
            "snapshots taken during the run"
        );
        assert!(
            report.ops.ok > 100,
            "seed {seed}: the workload did real work"
        );
        for corner in [names::TRADE_CLOSED_BY_TIMEOUT, names::TCC_TRY_REFUSED] {
            assert!(
                report.probe(corner) > 0,
                "seed {seed} never reached {corner}"
            );
        }
    }
}

/// A client's retry lands on a payment node that does not own the key: it forwards the
/// request to the owner, whose order log pins the answer, so any node can serve.
#[test]
fn a_retry_at_another_payment_node_is_forwarded_to_the_owner() {
    let report = first_run_reaching(&[names::CLIENT_RETRY, names::PAYMENT_FORWARDED]);
    assert_passes(&report);
}

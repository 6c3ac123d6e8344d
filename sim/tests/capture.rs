//! The incremental capture is exact: at every periodic snapshot of runs with crashes, the
//! capture's delta is what turns the checker's world into a whole read of the cluster at the
//! same instant, and the world built from the deltas equals that read. The runs include
//! crashes, so the capture's whole reads of a down node (through its durable log) and of a
//! restarted one are among what is compared. The world seals the journal its shards made
//! durable (folds it away, judged for good); every check below runs with sealing, and a whole
//! read must still hold every entry the world sealed.

use paylab_sim::plan::FaultKind;
use paylab_sim::run::run_verifying_capture;
use paylab_sim::{RunConfig, Verdict};

fn crash_run(seed: u64, faults: &[FaultKind]) -> RunConfig {
    RunConfig {
        faults: Some(faults.to_vec()),
        ..RunConfig::new(seed)
    }
}

#[test]
fn every_snapshot_of_crashing_runs_matches_a_whole_read() {
    let (mut resyncs, mut sealed) = (0, 0);
    for seed in 1..=4 {
        let (report, stats) = run_verifying_capture(crash_run(seed, &[FaultKind::Crash]));
        assert_eq!(
            report.verdict,
            Verdict::Pass,
            "seed {seed}: {:?} {:#?}",
            report.verdict,
            report.violations
        );
        // Every periodic snapshot was verified (the final, whole check is the one left).
        assert!(stats.verified > 0, "seed {seed}: no snapshot verified");
        assert_eq!(stats.verified + 1, report.snapshots_checked, "seed {seed}");
        assert!(
            stats.final_read_verified,
            "seed {seed}: the final read went unverified"
        );
        resyncs += stats.resyncs;
        sealed += stats.sealed;
    }
    assert!(resyncs > 0, "no crash made the capture read a node whole");
    assert!(sealed > 0, "the world never sealed any journal");
}

#[test]
fn a_crash_that_loses_writes_is_resynced_into_the_world() {
    // Crashes with slow disks widen the unsynced window, so a power loss drops writes that the
    // live node had made visible: the capture's read of the down node must remove them.
    let found = (1..=12).find(|&seed| {
        let faults = [FaultKind::Crash, FaultKind::SlowDisk];
        let (report, stats) = run_verifying_capture(crash_run(seed, &faults));
        assert_eq!(
            report.verdict,
            Verdict::Pass,
            "seed {seed}: {:?}",
            report.verdict
        );
        stats.resyncs > 0 && stats.removed > 0
    });
    assert!(
        found.is_some(),
        "no seed in 1..=12 lost a visible write in a crash"
    );
}

#[test]
fn a_crash_that_loses_ledger_writes_keeps_every_sealed_entry() {
    // Seed 4 crashes a ledger shard on a slow disk, losing journal entries a snapshot had seen
    // while the world had sealed the shard's durable journal: the whole read after the crash
    // must still hold every sealed entry (sealing only what is synced), and the lost ones
    // must leave the world.
    let faults = [FaultKind::Crash, FaultKind::SlowDisk];
    let (report, stats) = run_verifying_capture(crash_run(4, &faults));
    assert_eq!(report.verdict, Verdict::Pass, "{:?}", report.violations);
    assert!(
        stats.removed_journal > 0,
        "the crash lost no seen journal entry"
    );
    assert!(stats.sealed > 0, "nothing was sealed");
}

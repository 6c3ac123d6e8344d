//! The log: framing and replay, and syncs under the strict disk model (group commit).

use super::*;

fn log(disk: &Disk) -> DurableLog<(u32, String)> {
    DurableLog::on_disk(disk.clone(), "t.log", Duration::ZERO)
}

#[test]
fn replays_what_was_appended() {
    let disk = Disk::new();
    let l = log(&disk);
    l.append(&(1, "a".into()));
    l.append(&(2, "b".into()));
    let (recs, rep) = l.replay();
    assert_eq!(recs, vec![(1, "a".into()), (2, "b".into())]);
    assert_eq!(rep.torn_bytes, 0);
}

#[test]
fn torn_tail_is_detected_and_cut() {
    let disk = Disk::new();
    let l = log(&disk);
    l.append(&(1, "a".into()));
    disk.sync("t.log");
    l.append(&(2, "bbbbbbbb".into()));
    let lost = disk.power_loss(Some(0.7));
    assert!(lost.torn_bytes > 0);
    let (recs, rep) = l.replay();
    assert_eq!(recs, vec![(1, "a".into())]);
    assert_eq!(rep.torn_bytes, lost.torn_bytes);
    // The next append lands on a clean boundary.
    l.append(&(3, "c".into()));
    let (recs, _) = l.replay();
    assert_eq!(recs.len(), 2);
}

#[test]
fn corrupted_payload_fails_the_checksum() {
    let disk = Disk::new();
    let l = log(&disk);
    l.append(&(7, "x".into()));
    let mut bytes = disk.read("t.log");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    disk.truncate("t.log", 0);
    disk.append("t.log", &bytes);
    let (recs, rep) = l.replay();
    assert!(recs.is_empty());
    assert_eq!(rep.torn_bytes, bytes.len());
}

const FSYNC: Duration = Duration::from_millis(10);

/// A node's log (`ledger/0`, `t.log`, a 10 ms fsync) on `disk`, with `bugs` planted.
fn node_log(disk: &Disk, probes: &Probes, bugs: Bugs) -> DurableLog<u32> {
    let env = NodeEnv {
        name: "ledger/0".parse().expect("a node name"),
        addr: "10.0.0.1:1".parse().expect("an address"),
        disk: disk.clone(),
        clock: Default::default(),
        faults: Default::default(),
        probes: probes.clone(),
        bugs,
        buggify: Default::default(),
        seed: 0,
        serve_loops: 1,
    };
    DurableLog::open(&env, "t.log", FSYNC)
}

/// Runs `test` in a fresh simulation on an OS thread of its own (madsim's determinism needs a
/// thread per runtime).
fn simulate<F: std::future::Future<Output = ()> + 'static>(test: impl FnOnce() -> F + Send) {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                madsim::runtime::Runtime::with_seed_and_config(1, Default::default())
                    .block_on(test())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    });
}

/// What happens to a writer that appends while another caller's fsync is in flight: a leader
/// syncs record 1 at 0 ms; at 1 ms a follower appends record 2 and syncs. Returns the follower's
/// return time, the (durable, written) lengths just after the leader's fsync completed, and
/// the breaches the run recorded.
fn writer_during_an_fsync(bugs: Bugs) -> (Duration, (usize, usize), Vec<SyncBreach>) {
    let out = Arc::new(Mutex::new(None));
    let result = out.clone();
    simulate(move || async move {
        let (disk, probes) = (Disk::new(), Probes::new());
        let log = node_log(&disk, &probes, bugs);
        let start = madsim::time::Instant::now();
        log.append(&1);
        let leader = {
            let log = log.clone();
            madsim::task::spawn(async move { log.sync().await })
        };
        madsim::time::sleep(Duration::from_millis(1)).await;
        log.append(&2);
        let follower = {
            let log = log.clone();
            madsim::task::spawn(async move {
                log.sync().await;
                start.elapsed()
            })
        };
        // Just after the leader's fsync (issued at 0 ms) completed at 10 ms.
        madsim::time::sleep(FSYNC).await;
        leader.await.expect("the leader returns");
        let after_first = disk.lengths("t.log");
        let returned = follower.await.expect("the follower returns");
        *result.lock().unwrap() = Some((returned, after_first, probes.durability().take()));
    });
    let taken = out.lock().unwrap().take();
    taken.expect("the simulation ran")
}

#[test]
fn a_write_appended_during_an_in_flight_fsync_is_not_made_durable_by_it() {
    let (_, (durable, written), breaches) = writer_during_an_fsync(Bugs::none());
    assert!(
        durable < written,
        "the first fsync covered only record 1: {durable} of {written} bytes durable"
    );
    assert!(breaches.is_empty(), "{breaches:?}");
}

#[test]
fn its_sync_returns_only_once_a_later_fsync_covers_it() {
    let (returned, _, breaches) = writer_during_an_fsync(Bugs::none());
    // It waited on the first fsync (0–10 ms), then led its own (10–20 ms).
    assert!(
        returned >= 2 * FSYNC && returned < 2 * FSYNC + Duration::from_millis(1),
        "the follower returned at {returned:?}"
    );
    assert!(breaches.is_empty(), "{breaches:?}");
}

#[test]
fn group_commit_early_ack_returns_with_the_first_fsync_and_breaches_durability() {
    let (returned, (durable, written), breaches) =
        writer_during_an_fsync(Bugs::planted(Bug::GroupCommitEarlyAck));
    assert!(returned < 2 * FSYNC, "returned at {returned:?}");
    assert_eq!(
        breaches,
        vec![SyncBreach {
            node: "ledger/0".into(),
            file: "t.log".into(),
            call: "sync",
            promised_len: written as u64,
            durable_len: durable as u64,
            at_ms: 10,
            by_design: false,
        }]
    );
}

#[test]
fn a_sync_with_nothing_pending_costs_no_fsync_and_an_unshared_one_covers_its_caller() {
    simulate(|| async {
        let (disk, probes) = (Disk::new(), Probes::new());
        let log = node_log(&disk, &probes, Bugs::planted(Bug::GroupCommitEarlyAck));
        log.append(&1);
        log.sync().await;
        let start = madsim::time::Instant::now();
        log.sync().await;
        assert_eq!(start.elapsed(), Duration::ZERO, "nothing pending, no fsync");
        assert_eq!(disk.stats().syncs, 1);
        log.append(&2);
        log.sync_unshared().await;
        assert!(!disk.has_unsynced("t.log"));
        assert_eq!(probes.durability().pending(), 0);
    });
}

/// The crash-time form: a restart's replay finds everything acknowledged before the crash. A
/// reply witnessed after its fsync is recovered whole; one witnessed before it (a breach at
/// reply time already) is also a recovery breach once the power loss takes the record, and
/// the loss is reported once, not at every later replay.
#[test]
fn a_replay_missing_an_acknowledged_record_breaches_durability_at_recovery() {
    simulate(|| async {
        let (disk, probes) = (Disk::new(), Probes::new());
        let log = node_log(&disk, &probes, Bugs::none());
        log.append(&1);
        log.sync().await;
        let kept = log.mark();
        log.witness_reply(kept);
        disk.power_loss(None);
        let (records, _) = node_log(&disk, &probes, Bugs::none()).replay();
        assert_eq!(records, vec![1]);
        assert_eq!(
            probes.durability().pending(),
            0,
            "an acknowledged sync survives"
        );

        let log = node_log(&disk, &probes, Bugs::none());
        log.append(&2);
        log.witness_reply(log.mark());
        let at_reply = probes.durability().take();
        assert_eq!(at_reply.len(), 1);
        assert_eq!(at_reply[0].call, "reply");
        disk.power_loss(None);
        let (records, _) = node_log(&disk, &probes, Bugs::none()).replay();
        assert_eq!(records, vec![1]);
        let at_recovery = probes.durability().take();
        assert_eq!(at_recovery.len(), 1, "{at_recovery:?}");
        let b = &at_recovery[0];
        assert_eq!((b.call, b.durable_len), ("recovery", kept as u64));
        assert!(b.promised_len > kept as u64);
        node_log(&disk, &probes, Bugs::none()).replay();
        assert_eq!(probes.durability().pending(), 0, "reported once");
    });
}

/// A reply sent before its fsync by a policy that is unsafe by design (the broker's async
/// flush) is no breach when it leaves; a crash that then takes the bytes back is recorded as
/// the expected loss it is, marked `by_design`, for the harness to report as an anomaly.
#[test]
fn a_loss_of_an_unsafely_acknowledged_write_is_recorded_by_design() {
    simulate(|| async {
        let (disk, probes) = (Disk::new(), Probes::new());
        let log = node_log(&disk, &probes, Bugs::none());
        log.append(&1);
        log.note_unsafe_reply(log.mark());
        assert_eq!(probes.durability().pending(), 0, "no breach as it leaves");
        disk.power_loss(None);
        let (records, _) = node_log(&disk, &probes, Bugs::none()).replay();
        assert!(records.is_empty());
        let lost = probes.durability().take();
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert!(lost[0].by_design && lost[0].call == "recovery", "{lost:?}");
    });
}

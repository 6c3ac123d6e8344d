//! The determinism guarantee, checked across separate processes: the same seed prints the same
//! trace hash; a different seed prints a different one. The trace hash covers the platform's
//! own events too (every durable record a node appends, every reply it sends), so the same seed
//! must also write the same records and send the same replies; the tiny simulations at the end
//! prove the hash sees a difference there that no client's timing shows.

use madsim::runtime::{Handle, Runtime};
use paylab_sim::trace::{Trace, TraceEvent};
use paylab_system::log::DurableLog;
use paylab_system::node::NodeEnv;
use paylab_system::probes::Probes;
use paylab_system::transport::{NetFaults, Rpc, Transport};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

fn trace_hash(seed: u64) -> String {
    trace_hash_of(&["--seed", &seed.to_string()])
}

fn trace_hash_of(flags: &[&str]) -> String {
    let seed = flags.join(" ");
    let out = Command::new(env!("CARGO_BIN_EXE_paylab"))
        .arg("run")
        .args(flags)
        .output()
        .expect("paylab runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "seed {seed} must pass:\n{stdout}"
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("trace hash: "))
        .map(|h| h.split_whitespace().next().unwrap_or_default().to_string())
        .expect("the run prints its trace hash")
}

#[test]
fn same_seed_same_hash_in_separate_processes_and_different_seed_different_hash() {
    let first = trace_hash(7);
    let second = trace_hash(7);
    assert_eq!(first, second, "seed 7 must replay exactly");
    assert_ne!(first, trace_hash(8), "seeds 7 and 8 must differ");
}

#[test]
fn batch_consumption_replays_exactly_and_changes_the_run() {
    let batched = ["--seed", "7", "--consume-batch", "16"];
    let first = trace_hash_of(&batched);
    assert_eq!(
        first,
        trace_hash_of(&batched),
        "a batched run must replay exactly"
    );
    assert_ne!(
        first,
        trace_hash(7),
        "batching changes how the events are consumed"
    );
}

#[test]
fn same_seed_same_hash_on_two_threads_of_one_process() {
    // Each run gets a fresh OS thread and runtime, so running one after another in one process
    // (where lazily initialised statics and HashMap seeds could leak between runs) must not
    // change the outcome either.
    let a = paylab_sim::run(paylab_sim::RunConfig::new(11));
    let b = paylab_sim::run(paylab_sim::RunConfig::new(11));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert!(a.trace_events > 100, "the run did something");
}

/// A node's environment for the tiny simulations below.
fn env(name: &str, addr: SocketAddr, probes: &Probes) -> NodeEnv {
    NodeEnv {
        name: name.parse().expect("a node name"),
        addr,
        disk: Default::default(),
        clock: Default::default(),
        faults: NetFaults::new(),
        probes: probes.clone(),
        bugs: Default::default(),
        buggify: Default::default(),
        seed: 3,
        serve_loops: 1,
    }
}

/// The trace hash of a tiny run: one node appends `records` to its log, and the harness
/// records the same single event whatever the records say.
fn hash_after_records(records: &[u64]) -> u64 {
    let probes = Probes::new();
    let node = env("ledger/0", SocketAddr::from(([10, 7, 0, 1], 1)), &probes);
    let log = DurableLog::<u64>::open(&node, "ledger.log", Duration::ZERO);
    for r in records {
        log.append(r);
    }
    let trace = Trace::new(&probes);
    trace.record(TraceEvent::Healed { at_ms: 0 });
    trace.hash()
}

#[test]
fn a_durable_record_of_other_content_changes_the_trace_hash_and_the_same_one_does_not() {
    let same = hash_after_records(&[1, 2, 3]);
    assert_eq!(same, hash_after_records(&[1, 2, 3]));
    assert_ne!(same, hash_after_records(&[1, 2, 4]), "one record's content");
    assert_ne!(same, hash_after_records(&[1, 2]), "one record fewer");
    // The same records in another node's log are other platform events.
    let probes = Probes::new();
    let other = env("ledger/1", SocketAddr::from(([10, 7, 0, 2], 1)), &probes);
    let log = DurableLog::<u64>::open(&other, "ledger.log", Duration::ZERO);
    for r in [1, 2, 3] {
        log.append(&r);
    }
    let trace = Trace::new(&probes);
    trace.record(TraceEvent::Healed { at_ms: 0 });
    assert_ne!(same, trace.hash(), "another node");
}

#[derive(Debug, Clone)]
struct Ask;

impl Rpc for Ask {
    type Response = u64;
    const TAG: u64 = 0x7e59;
}

/// The trace hash of a tiny simulation: a server answers `answer` to one call, and the client
/// records only that it was answered (at the same simulated time, whatever the answer).
fn hash_after_reply(answer: u64) -> u64 {
    let runtime = Runtime::with_seed_and_config(5, madsim::Config::default());
    runtime.block_on(async move {
        let probes = Probes::new();
        let trace = Trace::new(&probes);
        let server_addr = SocketAddr::from(([10, 7, 1, 1], 1));
        let server = env("trade/0", server_addr, &probes);
        let node = Handle::current().create_node().ip(server_addr.ip()).build();
        node.spawn(async move {
            let t = Transport::for_node(&server).await.expect("bind");
            t.serve(move |_: Ask| async move { answer });
            std::future::pending::<()>().await;
        });
        let client_addr = SocketAddr::from(([10, 7, 1, 2], 1));
        let client = Handle::current().create_node().ip(client_addr.ip()).build();
        let p = probes.clone();
        let answered = client
            .spawn(async move {
                madsim::time::sleep(Duration::from_millis(1)).await;
                let t = Transport::bind(client_addr, "client-0", 5, NetFaults::new(), p)
                    .await
                    .expect("bind");
                t.call(server_addr, Ask, Duration::from_secs(1))
                    .await
                    .is_ok()
            })
            .await
            .expect("client task");
        assert!(answered);
        let at_ms = madsim::time::TimeHandle::current().elapsed().as_millis() as u64;
        trace.record(TraceEvent::Healed { at_ms });
        trace.hash()
    })
}

#[test]
fn a_reply_of_other_content_changes_the_trace_hash_and_the_same_one_does_not() {
    let same = hash_after_reply(1);
    assert_eq!(same, hash_after_reply(1));
    assert_ne!(same, hash_after_reply(2));
}

//! The transport's fault hooks and the per-node clock take effect: a duplicated request is
//! delivered twice, a call to a dead node times out (unknown, not failed), and a skewed clock
//! moves on its own node only.

use madsim::runtime::{Handle, Runtime};
use paylab_system::clock::NodeClock;
use paylab_system::probes::{names, Probes};
use paylab_system::transport::{NetFaults, Rpc, RpcError, Transport};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
struct Count;

impl Rpc for Count {
    type Response = u32;
    const TAG: u64 = 0x7e57;
}

const SERVER: &str = "10.9.0.1:1";
const CLIENT: &str = "10.9.0.2:1";

/// Every simulation of this file runs on this fixed seed, never a wall-clock one.
const SEED: u64 = 0x7e57;

fn runtime() -> Runtime {
    Runtime::with_seed_and_config(SEED, madsim::Config::default())
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("valid address")
}

/// Starts a server counting the requests it handles; returns the counter and the node.
fn counting_server(faults: &NetFaults) -> (Arc<AtomicU32>, madsim::runtime::NodeHandle) {
    let seen = Arc::new(AtomicU32::new(0));
    let (seen2, faults) = (seen.clone(), faults.clone());
    let node = Handle::current()
        .create_node()
        .ip(addr(SERVER).ip())
        .build();
    node.spawn(async move {
        let t = Transport::bind(addr(SERVER), "server", 1, faults, Probes::new())
            .await
            .expect("bind");
        t.serve(move |_: Count| {
            let seen = seen2.clone();
            async move { seen.fetch_add(1, Ordering::SeqCst) + 1 }
        });
        std::future::pending::<()>().await;
    });
    (seen, node)
}

#[test]
fn a_duplicated_request_is_delivered_twice() {
    runtime().block_on(async {
        let faults = NetFaults::new();
        let probes = Probes::new();
        let (seen, _server) = counting_server(&faults);
        faults.set_duplicate_rate(1.0);
        let client = Handle::current()
            .create_node()
            .ip(addr(CLIENT).ip())
            .build();
        let p = probes.clone();
        client
            .spawn(async move {
                madsim::time::sleep(Duration::from_millis(1)).await;
                let t = Transport::bind(addr(CLIENT), "client", 1, faults, p)
                    .await
                    .expect("bind");
                t.call(addr(SERVER), Count, Duration::from_secs(1))
                    .await
                    .expect("reply");
                madsim::time::sleep(Duration::from_millis(100)).await;
            })
            .await
            .expect("client task");
        assert_eq!(seen.load(Ordering::SeqCst), 2, "one call, two deliveries");
        assert_eq!(probes.count(names::DUPLICATE_DELIVERED), 1);
    });
}

#[test]
fn a_call_to_a_killed_node_times_out_as_unknown() {
    runtime().block_on(async {
        let faults = NetFaults::new();
        let (seen, server) = counting_server(&faults);
        madsim::time::sleep(Duration::from_millis(1)).await;
        Handle::current().kill(server.id());
        let client = Handle::current()
            .create_node()
            .ip(addr(CLIENT).ip())
            .build();
        let result = client
            .spawn(async move {
                let t = Transport::bind(addr(CLIENT), "client", 1, faults, Probes::new())
                    .await
                    .expect("bind");
                t.call(addr(SERVER), Count, Duration::from_millis(300))
                    .await
            })
            .await
            .expect("client task");
        assert_eq!(result, Err(RpcError::Timeout(Duration::from_millis(300))));
        assert_eq!(seen.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn a_skewed_clock_moves_on_its_own_node_only() {
    runtime().block_on(async {
        let (skewed, honest) = (NodeClock::new(), NodeClock::new());
        madsim::time::sleep(Duration::from_millis(1_000)).await;
        skewed.jump_ms(5_000);
        assert_eq!(skewed.now_ms(), honest.now_ms() + 5_000);
        // A deadline 3 s ahead on the honest clock is already past on the skewed one.
        let deadline = honest.now_ms() + 3_000;
        let before = honest.now_ms();
        skewed.sleep_until_ms(deadline).await;
        assert_eq!(
            honest.now_ms(),
            before,
            "the skewed node's timeout fired at once"
        );
        honest.sleep_until_ms(deadline).await;
        assert_eq!(honest.now_ms(), deadline);
        skewed.jump_ms(-10_000);
        assert_eq!(
            skewed.now_ms(),
            0,
            "a clock jumped before the start reads zero"
        );
    });
}

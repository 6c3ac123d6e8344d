//! The transport in the simulator: how many requests a node takes off the network per
//! simulated second, with one receiving loop and with several.

mod common;

use common::{node_env, on_fixed_seeds};
use madsim::runtime::Handle;
use paylab_system::disk::Disk;
use paylab_system::probes::Probes;
use paylab_system::transport::{NetFaults, Rpc, Transport};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Echo(u32);

impl Rpc for Echo {
    type Response = u32;
    const TAG: u64 = 0x5e7e;
}

const CALLS: u32 = 400;

/// Starts a node serving [`Echo`] with `serve_loops` receiving loops, fires [`CALLS`] calls at
/// it at once from one client, and returns the simulated time until the last answer.
async fn all_answered_after(serve_loops: u32, server: &str, client: &str) -> Duration {
    let server_addr: SocketAddr = server.parse().expect("an address");
    let env = paylab_system::node::NodeEnv {
        serve_loops,
        ..node_env("ledger/0", server_addr, &Disk::new())
    };
    let node = Handle::current().create_node().ip(server_addr.ip()).build();
    node.spawn(async move {
        let t = Transport::for_node(&env).await.expect("bind the server");
        t.serve(|Echo(n): Echo| async move { n });
        std::future::pending::<()>().await;
    });
    let client_addr: SocketAddr = client.parse().expect("an address");
    let caller = Handle::current().create_node().ip(client_addr.ip()).build();
    caller
        .spawn(async move {
            madsim::time::sleep(Duration::from_millis(5)).await;
            let t = Transport::bind(client_addr, "client", 0, NetFaults::new(), Probes::new())
                .await
                .expect("bind the client");
            let start = madsim::time::Instant::now();
            let calls: Vec<_> = (0..CALLS)
                .map(|n| {
                    let t = t.clone();
                    madsim::task::spawn(async move {
                        t.call(server_addr, Echo(n), Duration::from_secs(10)).await
                    })
                })
                .collect();
            for (n, call) in (0..CALLS).zip(calls) {
                assert_eq!(call.await.expect("the call task"), Ok(n));
            }
            start.elapsed()
        })
        .await
        .expect("the client task")
}

#[test]
fn one_receiving_loop_serves_a_thousand_requests_a_second_and_more_loops_serve_more() {
    on_fixed_seeds(|| async {
        // madsim holds every receive for at least 1 ms: one loop takes the 400 requests one
        // per millisecond.
        let one = all_answered_after(1, "10.9.0.1:1", "10.9.1.1:1").await;
        assert!(one >= Duration::from_millis(400), "one loop: {one:?}");
        // Sixteen loops take sixteen at a time: the network's latency dominates.
        let many = all_answered_after(16, "10.9.0.2:1", "10.9.1.2:1").await;
        assert!(many < Duration::from_millis(100), "sixteen loops: {many:?}");
    });
}

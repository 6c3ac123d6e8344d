//! `paylab bench`: throughput figures beside a calibration run in the same process.
//!
//! Wall-clock figures depend on the machine, so each platform figure is reported as a ratio to
//! the calibration (raw madsim RPC round trips per wall second, same number of concurrent
//! clients): "one transfer costs X raw round trips" holds across machines where "N per second"
//! does not.

use crate::cluster::{client_addr, ledger_addr};
use madsim::net::rpc::Request;
use madsim::net::Endpoint;
use madsim::runtime::Runtime;
use paylab_system::disk::Disk;
use paylab_system::ledger::{LedgerCall, LedgerCommand, LedgerConfig, LedgerNode, Leg, Subject};
use paylab_system::node::NodeEnv;
use paylab_system::probes::Probes;
use paylab_system::transport::{NetFaults, Transport};
use paylab_system::{AccountId, Amount, RequestId, ShardId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: &'static str,
    pub count: u64,
    pub wall_s: f64,
}

impl Figure {
    pub fn per_sec(&self) -> f64 {
        self.count as f64 / self.wall_s.max(1e-9)
    }
}

/// The faster of two measurements of the same figure.
pub fn best(a: Figure, b: Figure) -> Figure {
    if b.per_sec() > a.per_sec() {
        b
    } else {
        a
    }
}

/// The sizes of a bench run.
#[derive(Debug, Clone, Copy)]
pub struct BenchSize {
    pub clients: u32,
    pub per_client: u32,
}

impl Default for BenchSize {
    fn default() -> Self {
        BenchSize {
            clients: 16,
            per_client: 5_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ping(u64);

impl Request for Ping {
    type Response = u64;
    const ID: u64 = 0x5049_4e47;
}

/// Raw madsim RPC round trips (`Endpoint::call`) per wall second.
pub fn calibration(size: BenchSize) -> Figure {
    timed(
        "calibration: raw madsim RPC round trips",
        size,
        |size| async move {
            let handle = madsim::runtime::Handle::current();
            let server = ledger_addr(0);
            handle
                .create_node()
                .name("echo")
                .ip(server.ip())
                .build()
                .spawn(async move {
                    let ep = Endpoint::bind(server).await.expect("bind echo");
                    ep.add_rpc_handler(|Ping(x)| async move { x });
                    std::future::pending::<()>().await;
                });
            madsim::time::sleep(Duration::from_millis(1)).await;
            let tasks: Vec<_> = (0..size.clients)
                .map(|c| {
                    let node = handle.create_node().ip(client_addr(c).ip()).build();
                    node.spawn(async move {
                        let ep = Endpoint::bind(client_addr(c)).await.expect("bind client");
                        for i in 0..size.per_client {
                            ep.call(server, Ping(u64::from(i)))
                                .await
                                .expect("echo replies");
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("client finishes");
            }
        },
    )
}

/// Ledger transfers per wall second: a client's post travels through paylab's transport to a
/// ledger node, which decides, appends to its durable log, applies, syncs and replies.
pub fn ledger_transfers(size: BenchSize) -> Figure {
    timed(
        "ledger transfers (post + durable log + reply)",
        size,
        |size| async move {
            let handle = madsim::runtime::Handle::current();
            let env = NodeEnv {
                name: "ledger-0".into(),
                addr: ledger_addr(0),
                disk: Disk::new(),
                clock: Default::default(),
                faults: NetFaults::new(),
                probes: Probes::new(),
                bugs: Default::default(),
            };
            let config = LedgerConfig {
                shard: ShardId(0),
                shards: 1,
                fsync_latency: Duration::from_millis(1),
            };
            let env = Arc::new(env);
            let env2 = env.clone();
            handle
                .create_node()
                .name("ledger-0")
                .ip(env.addr.ip())
                .build()
                .spawn(async move {
                    let _node = LedgerNode::start(&env2, config)
                        .await
                        .expect("ledger starts");
                    std::future::pending::<()>().await;
                });
            madsim::time::sleep(Duration::from_millis(1)).await;
            let tasks: Vec<_> = (0..size.clients)
                .map(|c| {
                    let node = handle.create_node().ip(client_addr(c).ip()).build();
                    let faults = env.faults.clone();
                    node.spawn(async move { transfer_client(c, size.per_client, faults).await })
                })
                .collect();
            for t in tasks {
                t.await.expect("client finishes");
            }
        },
    )
}

async fn transfer_client(c: u32, transfers: u32, faults: NetFaults) {
    let t = Transport::bind(client_addr(c), faults, Probes::new())
        .await
        .expect("bind client");
    let timeout = Duration::from_secs(1);
    let (a, b) = (
        AccountId(10 + 2 * u64::from(c)),
        AccountId(11 + 2 * u64::from(c)),
    );
    let call = |cmd| t.call(ledger_addr(0), LedgerCall(cmd), timeout);
    for account in [a, b] {
        let open = LedgerCommand::OpenAccount {
            account,
            subject: Subject::User,
        };
        call(open).await.expect("reply").expect("opened");
    }
    let fund = Amount::from_fen(1_000_000).expect("valid");
    let post = LedgerCommand::Post {
        request: RequestId::new(format!("fund-{c}")),
        legs: vec![
            Leg::debit(AccountId::world(ShardId(0)), fund),
            Leg::credit(a, fund),
        ],
    };
    call(post).await.expect("reply").expect("funded");
    let one = Amount::from_fen(100).expect("valid");
    for i in 0..transfers {
        let (from, to) = if i % 2 == 0 { (a, b) } else { (b, a) };
        let post = LedgerCommand::Post {
            request: RequestId::new(format!("t-{c}-{i}")),
            legs: vec![Leg::debit(from, one), Leg::credit(to, one)],
        };
        call(post).await.expect("reply").expect("posted");
    }
}

/// Runs `body` in a fresh runtime on a fresh thread and times it on the wall clock.
fn timed<F, Fut>(name: &'static str, size: BenchSize, body: F) -> Figure
where
    F: FnOnce(BenchSize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let wall_s = std::thread::spawn(move || {
        let runtime = Runtime::with_seed_and_config(1, madsim::Config::default());
        let started = Instant::now();
        runtime.block_on(body(size));
        started.elapsed().as_secs_f64()
    })
    .join()
    .expect("bench thread");
    Figure {
        name,
        count: u64::from(size.clients) * u64::from(size.per_client),
        wall_s,
    }
}

//! What the simulator tests of node shells share: running a test on fixed seeds, a node's
//! environment, and calling a node from a caller node of its own.
#![allow(dead_code)] // each test file uses its own share of these

use paylab_system::buggify::Buggify;
use paylab_system::bugs::Bugs;
use paylab_system::disk::Disk;
use paylab_system::node::NodeEnv;
use paylab_system::probes::Probes;
use paylab_system::transport::{NetFaults, Rpc, Transport};
use std::net::SocketAddr;
use std::time::Duration;

/// The seeds every test here runs on: fixed, so a failure replays exactly, and several, because
/// the simulated network's latencies (and so every interleaving) come from the seed.
pub const SEEDS: [u64; 4] = [1, 7, 42, 1_337];

/// Runs `test` in a fresh simulation for each of [`SEEDS`], each on an OS thread of its own (a
/// second runtime on one thread would inherit its thread-locals), named after its seed so that
/// a failure says which seed broke.
pub fn on_fixed_seeds<F, Fut>(test: F)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    for seed in SEEDS {
        let test = test.clone();
        std::thread::Builder::new()
            .name(format!("seed-{seed}"))
            .spawn(move || {
                let runtime =
                    madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
                runtime.block_on(test());
            })
            .expect("spawn a simulation thread")
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    }
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("valid address")
}

/// The environment of node `name` at `addr` on `disk`: no faults, no bug, seed 0.
pub fn node_env(name: &str, addr: SocketAddr, disk: &Disk) -> NodeEnv {
    NodeEnv {
        name: name.parse().expect("a node name"),
        addr,
        disk: disk.clone(),
        clock: Default::default(),
        faults: NetFaults::new(),
        probes: Probes::new(),
        bugs: Bugs::none(),
        buggify: Buggify::default(),
        seed: 0,
        serve_loops: 1,
    }
}

/// Sends `request` to `to` from a node of its own at `from` (madsim gives one IP to one node,
/// so each caller address is used once per simulation) and returns the answer.
pub async fn call_from<R: Rpc>(from: &str, to: SocketAddr, request: R) -> R::Response {
    let mut answers = calls_from(from, to, vec![request], || ()).await;
    answers.remove(0).0
}

/// Sends each of `calls` in turn to `to` from one node of its own at `from`, and returns each
/// answer with what `after` reads once it came (e.g. a log's length).
pub async fn calls_from<R: Rpc, T: Send + 'static>(
    from: &str,
    to: SocketAddr,
    calls: Vec<R>,
    after: impl Fn() -> T + Send + 'static,
) -> Vec<(R::Response, T)> {
    let (from, name) = (addr(from), format!("caller-{from}"));
    let node = madsim::runtime::Handle::current()
        .create_node()
        .name(name.clone())
        .ip(from.ip())
        .build();
    node.spawn(async move {
        let t = Transport::bind(from, &name, 0, NetFaults::new(), Probes::new())
            .await
            .expect("bind");
        let mut answers = Vec::new();
        for call in calls {
            let answer = t.call(to, call, Duration::from_secs(5)).await;
            answers.push((answer.expect("the node answers"), after()));
        }
        answers
    })
    .await
    .expect("the calls finish")
}

/// Starts one ledger shard (a one-shard platform, no banks, fenced, no locks) at `ledger`,
/// taking the internal calls of the payment node at `payment`, on `disk`.
pub fn start_ledger(ledger: &str, payment: &str, disk: &Disk) {
    use paylab_system::auth::Directory;
    use paylab_system::ids::ShardId;
    use paylab_system::ledger::{LedgerConfig, LedgerNode};
    let env = node_env("ledger/0", addr(ledger), disk);
    let config = LedgerConfig {
        shard: ShardId(0),
        shards: 1,
        fsync_latency: Duration::from_millis(1),
        platform_callers: vec![addr(payment)],
        directory: Directory::new(1),
        banks: 0,
        fenced: true,
        locking: false,
        credits_broker: None,
    };
    madsim::runtime::Handle::current()
        .create_node()
        .name("ledger")
        .ip(env.addr.ip())
        .init(move || {
            let (env, config) = (env.clone(), config.clone());
            async move {
                let _node = LedgerNode::start(&env, config)
                    .await
                    .expect("ledger starts");
                std::future::pending::<()>().await
            }
        })
        .build();
}

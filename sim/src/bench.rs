//! `paylab bench`: throughput figures beside a calibration run in the same process.
//!
//! Wall-clock figures depend on the machine, so each platform figure is reported as a ratio to
//! the calibration (raw madsim RPC round trips per wall second, same number of concurrent
//! clients): "one transfer costs X raw round trips" holds across machines where "N per second"
//! does not.
//!
//! Two parts are not ratios but whole runs: [`scale`] (is a run's cost linear in its length?)
//! and [`peak`] (the Double-11 peak scenario's wall time and memory). Both price each run's
//! RPCs at the [`floor`]: the wall time that sending them alone costs on this machine.

pub mod floor;
pub mod peak;
pub mod scale;

use crate::cluster::{broker_addr, client_addr, ledger_addr, payment_addr, topology, trade_addr};
use crate::config::RunConfig;
use madsim::net::rpc::Request;
use madsim::net::Endpoint;
use madsim::runtime::Runtime;
use paylab_system::auth::{Authority, Credential, Directory};
use paylab_system::broker::consumer::{self, ConsumerConfig};
use paylab_system::broker::{
    BrokerCall, BrokerCommand, BrokerNode, BrokerNodeConfig, BrokerReply, ConsumeMode, FlushPolicy,
};
use paylab_system::disk::Disk;
use paylab_system::ledger::{
    ClientLedgerCall, LedgerCall, LedgerCommand, LedgerConfig, LedgerNode, Leg, Subject,
};
use paylab_system::node::NodeEnv;
use paylab_system::payment::{ClientPaymentCall, PaymentCommand, PaymentConfig, PaymentNode};
use paylab_system::probes::Probes;
use paylab_system::trade::{
    ClientTradeCall, TradeCommand, TradeConfig, TradeId, TradeNode, TradeReply,
};
use paylab_system::transport::{NetFaults, Transport};
use paylab_system::{AccountId, Amount, RequestId, ShardId};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
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
            let serve = |server| async move {
                let ep = Endpoint::bind(server).await.expect("bind echo");
                ep.add_rpc_handler(|Ping(x)| async move { x });
                std::future::pending::<()>().await;
            };
            let client = |c: u32, calls: u32| async move {
                let ep = Endpoint::bind(client_addr(c)).await.expect("bind client");
                for i in 0..calls {
                    let reply = ep.call(ledger_addr(0), Ping(u64::from(i))).await;
                    reply.expect("echo replies");
                }
            };
            echo_round_trips(size, serve, client).await;
        },
    )
}

/// Starts an echo node (at the first ledger address) running `serve`, then `size.clients`
/// client nodes each running `client(c, size.per_client)`, and waits for the clients.
pub(crate) async fn echo_round_trips<S, SF, C, CF>(size: BenchSize, serve: S, client: C)
where
    S: FnOnce(std::net::SocketAddr) -> SF,
    SF: std::future::Future<Output = ()> + Send + 'static,
    C: Fn(u32, u32) -> CF,
    CF: std::future::Future<Output = ()> + Send + 'static,
{
    let handle = madsim::runtime::Handle::current();
    let server = ledger_addr(0);
    let node = handle.create_node().name("echo").ip(server.ip()).build();
    node.spawn(serve(server));
    madsim::time::sleep(Duration::from_millis(1)).await;
    let tasks: Vec<_> = (0..size.clients)
        .map(|c| {
            let node = handle.create_node().ip(client_addr(c).ip()).build();
            node.spawn(client(c, size.per_client))
        })
        .collect();
    for t in tasks {
        t.await.expect("client finishes");
    }
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
                name: crate::services::ledger::ROLE.at(0),
                addr: ledger_addr(0),
                disk: Disk::new(),
                clock: Default::default(),
                faults: NetFaults::new(),
                probes: Probes::new(),
                bugs: Default::default(),
                buggify: Default::default(),
                seed: 0,
                serve_loops: 1,
            };
            // No payment node here: each client funds itself over the internal call, as the
            // funding path would (once, before the timed part), then transfers as a client.
            let config = LedgerConfig {
                shard: ShardId(0),
                shards: 1,
                fsync_latency: Duration::from_millis(1),
                platform_callers: (0..size.clients).map(client_addr).collect(),
                directory: Directory::new(1),
                banks: 0,
                fenced: true,
                locking: false,
                credits_broker: None,
            };
            let env = Arc::new(env);
            let env2 = env.clone();
            handle
                .create_node()
                .name("ledger/0")
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
    let t = Transport::bind(client_addr(c), "bench-client", 0, faults, Probes::new())
        .await
        .expect("bind client");
    let timeout = Duration::from_secs(1);
    let accounts = Directory::new(1).user_accounts(c);
    let (a, b) = (accounts[0], accounts[1]);
    let credential = Authority::for_run(0).issue(c, client_addr(c));
    let call = |command| {
        t.call(
            ledger_addr(0),
            ClientLedgerCall {
                credential,
                command,
            },
            timeout,
        )
    };
    for account in [a, b] {
        let open = LedgerCommand::OpenAccount {
            account,
            subject: Subject::User,
        };
        call(open).await.expect("reply").expect("opened");
    }
    let fund = Amount::from_fen(1_000_000).expect("valid");
    let post = LedgerCommand::Post {
        request: RequestId::new(compact_str::format_compact!("c{c}-fund")),
        legs: vec![
            Leg::debit(AccountId::world(ShardId(0)), fund),
            Leg::credit(a, fund),
        ],
    };
    let funded = t.call(ledger_addr(0), LedgerCall(post), timeout).await;
    funded.expect("reply").expect("funded");
    let one = Amount::from_fen(100).expect("valid");
    for i in 0..transfers {
        let (from, to) = if i % 2 == 0 { (a, b) } else { (b, a) };
        let post = LedgerCommand::Post {
            request: RequestId::new(compact_str::format_compact!("c{c}-t{i}")),
            legs: vec![Leg::debit(from, one), Leg::credit(to, one)],
        };
        call(post).await.expect("reply").expect("posted");
    }
}

/// Payments per wall second: each client pays trades of its merchant, whose account is on
/// another ledger shard than the buyer's: the full TCC flow across two ledger shards, a trade
/// node and a payment node, every step durable. Accounts and trades are set up first and not
/// timed. Also returns the RPCs one payment costs (every send counted, retries included).
pub fn payments(size: BenchSize) -> (Figure, f64) {
    let probes = Probes::new();
    let counted = probes.clone();
    let rpcs_before_payments = Arc::new(AtomicU64::new(0));
    let before = rpcs_before_payments.clone();
    let figure = timed_phase(
        "payments (TCC pay across 2 ledger shards)",
        size,
        move |size, stopwatch| async move {
            let handle = madsim::runtime::Handle::current();
            start_payment_platform(&handle, &probes);
            madsim::time::sleep(Duration::from_millis(1)).await;
            let clients: Vec<_> = (0..size.clients)
                .map(|c| handle.create_node().ip(client_addr(c).ip()).build())
                .collect();
            let setups: Vec<_> = clients
                .iter()
                .zip(0..)
                .map(|(node, c)| {
                    let probes = probes.clone();
                    node.spawn(async move { pay_setup(c, size.per_client, probes).await })
                })
                .collect();
            let mut prepared = Vec::new();
            for s in setups {
                prepared.push(s.await.expect("setup finishes"));
            }
            before.store(probes.rpc_calls(), Ordering::Relaxed);
            stopwatch.start();
            let pays: Vec<_> = clients
                .iter()
                .zip(prepared)
                .map(|(node, (t, buyer, trades))| node.spawn(pay_all(t, buyer, trades)))
                .collect();
            for p in pays {
                p.await.expect("payments finish");
            }
            stopwatch.stop();
        },
    );
    let payments = u64::from(size.clients) * u64::from(size.per_client);
    let spent = counted.rpc_calls() - rpcs_before_payments.load(Ordering::Relaxed);
    (figure, spent as f64 / payments as f64)
}

/// A fault-free node environment with a fresh disk, counting into `probes`.
fn bench_env(name: &str, addr: std::net::SocketAddr, probes: &Probes) -> NodeEnv {
    NodeEnv {
        name: name.parse().expect("a node name"),
        addr,
        disk: Disk::new(),
        clock: Default::default(),
        faults: NetFaults::new(),
        probes: probes.clone(),
        bugs: Default::default(),
        buggify: Default::default(),
        seed: 0,
        serve_loops: 1,
    }
}

/// The topic of the messages bench.
const BENCH_TOPIC: &str = "bench-events";
const BENCH_QUEUES: u32 = 4;

/// Consumer nodes of the messages bench: one per queue.
pub const BENCH_CONSUMERS: u32 = 4;

/// Messages per wall second, published and consumed: `size.clients` producer nodes each send
/// `size.per_client` messages (`Send`, unique producer ids, keys spread over the 4 queues of
/// one topic) to one broker (group commit, the runs' fsync latency), while one clustering group
/// of [`BENCH_CONSUMERS`] consumer nodes, each running the consumer runtime on its share of the
/// queues with a trivial handler, consumes them. Timed from the first send until every message
/// is consumed. Also returns the RPCs one message costs (sends, pulls, commits, idle polls).
pub fn messages(size: BenchSize) -> (Figure, f64) {
    let probes = Probes::new();
    let counted = probes.clone();
    let rpcs_at_start = Arc::new(AtomicU64::new(0));
    let at_start = rpcs_at_start.clone();
    let figure = timed_phase(
        "messages (published and consumed, group commit)",
        size,
        move |size, stopwatch| async move {
            let handle = madsim::runtime::Handle::current();
            let total = u64::from(size.clients) * u64::from(size.per_client);
            let fsync_latency = Duration::from_millis(RunConfig::new(1).fsync_latency_ms);
            let broker = BrokerNodeConfig {
                flush: FlushPolicy::GroupCommit,
                fsync_latency,
                topics: vec![(BENCH_TOPIC.to_string(), BENCH_QUEUES)],
                ..BrokerNodeConfig::default()
            };
            serve_forever(
                &handle,
                bench_env("broker/0", broker_addr(), &probes),
                move |env| async move { BrokerNode::start(&env, broker).await.map(|_| ()) },
            );
            let consumed = Arc::new(AtomicU64::new(0));
            let all_consumed = Arc::new(tokio::sync::Notify::new());
            for i in 0..BENCH_CONSUMERS {
                let env = bench_env(
                    &format!("consumer/{i}"),
                    client_addr(size.clients + i),
                    &probes,
                );
                let (consumed, all_consumed) = (consumed.clone(), all_consumed.clone());
                let handler = consumer::handler(move |_| {
                    if consumed.fetch_add(1, Ordering::Relaxed) + 1 == total {
                        all_consumed.notify_one();
                    }
                    async { Ok(()) }
                });
                let config = ConsumerConfig::new(
                    "bench",
                    format!("c{i}"),
                    BENCH_TOPIC,
                    BENCH_QUEUES,
                    ConsumeMode::Clustering,
                    broker_addr(),
                );
                let queues = consumer::allocate(BENCH_QUEUES, BENCH_CONSUMERS, i);
                serve_forever(&handle, env, move |env| async move {
                    let t = Transport::for_node(&env).await?;
                    madsim::task::spawn(consumer::run_on(env, t, config, queues, handler));
                    Ok(())
                });
            }
            // The broker is up and every consumer subscribed before the clock starts.
            madsim::time::sleep(Duration::from_millis(100)).await;
            at_start.store(probes.rpc_calls(), Ordering::Relaxed);
            stopwatch.start();
            for c in 0..size.clients {
                let node = handle.create_node().ip(client_addr(c).ip()).build();
                let probes = probes.clone();
                node.spawn(async move { publish(c, size.per_client, probes).await });
            }
            all_consumed.notified().await;
            stopwatch.stop();
        },
    );
    let messages = u64::from(size.clients) * u64::from(size.per_client);
    let spent = counted.rpc_calls() - rpcs_at_start.load(Ordering::Relaxed);
    (figure, spent as f64 / messages as f64)
}

/// One producer: `count` sends in a row, each acknowledged (durable) before the next.
async fn publish(c: u32, count: u32, probes: Probes) {
    let t = Transport::bind(client_addr(c), "bench-client", 0, NetFaults::new(), probes)
        .await
        .expect("bind producer");
    for i in 0..count {
        let send = BrokerCommand::Send {
            topic: BENCH_TOPIC.to_string(),
            key: format!("key-{c}-{}", i % 16),
            payload: format!("message {i} of producer {c}"),
            producer_msg_id: format!("p{c}-{i}"),
        };
        let sent = t.call(broker_addr(), BrokerCall(send), BENCH_TIMEOUT).await;
        assert!(
            matches!(sent, Ok(Ok(BrokerReply::Sent { .. }))),
            "message sent: {sent:?}"
        );
    }
}

/// Two ledger shards, one trade shard and one payment node, as in a run; no banks (the
/// clients fund themselves from the world account before the timed part, which measures
/// payments alone).
fn start_payment_platform(handle: &madsim::runtime::Handle, probes: &Probes) {
    let config = RunConfig {
        shards: 2,
        trade_shards: 1,
        payment_nodes: 1,
        banks: 0,
        ..RunConfig::new(1)
    };
    let topology = topology(&config);
    let fsync_latency = Duration::from_millis(config.fsync_latency_ms);
    let env = |name: &str, addr| bench_env(name, addr, probes);
    for s in 0..config.shards {
        let ledger = LedgerConfig {
            shard: ShardId(s),
            shards: config.shards,
            fsync_latency,
            platform_callers: vec![payment_addr(0)],
            directory: Directory::new(config.shards),
            banks: 0,
            fenced: true,
            locking: false,
            credits_broker: None,
        };
        serve_forever(
            handle,
            env(&format!("ledger/{s}"), ledger_addr(s)),
            move |env| async move { LedgerNode::start(&env, ledger).await.map(|_| ()) },
        );
    }
    let trade = TradeConfig {
        shard: paylab_system::TradeShardId(0),
        fsync_latency,
        close_after_ms: u64::MAX / 2,
        sweep_interval: Duration::from_secs(3_600),
        messages: None,
        step_callers: vec![payment_addr(0)],
        query_callers: Vec::new(),
        directory: Directory::new(config.shards),
    };
    serve_forever(
        handle,
        env("trade/0", trade_addr(0)),
        move |env| async move { TradeNode::start(&env, trade).await.map(|_| ()) },
    );
    let payment = PaymentConfig {
        index: 0,
        fsync_latency,
        strategy: config.strategy,
        directory: Directory::new(config.shards),
        credits: None,
    };
    serve_forever(
        handle,
        env("payment/0", payment_addr(0)),
        move |env| async move {
            PaymentNode::start(&env, payment, topology)
                .await
                .map(|_| ())
        },
    );
}

/// Starts a node whose service lives until the runtime ends.
fn serve_forever<F, Fut>(handle: &madsim::runtime::Handle, env: NodeEnv, start: F)
where
    F: FnOnce(NodeEnv) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    handle
        .create_node()
        .name(env.name.clone())
        .ip(env.addr.ip())
        .build()
        .spawn(async move {
            start(env).await.expect("service starts");
            std::future::pending::<()>().await;
        });
}

const BENCH_TIMEOUT: Duration = Duration::from_secs(1);

/// A bench client's own connection: its transport and the credential the platform issued it.
struct BenchClient {
    t: Transport,
    c: u32,
    credential: Credential,
}

/// Opens and funds a buyer and opens a merchant on the other ledger shard, then creates the
/// trades the client will pay, all through the client APIs.
async fn pay_setup(
    c: u32,
    payments: u32,
    probes: Probes,
) -> (BenchClient, AccountId, Vec<TradeId>) {
    let t = Transport::bind(client_addr(c), "bench-client", 0, NetFaults::new(), probes)
        .await
        .expect("bind client");
    let credential = Authority::for_run(0).issue(c, client_addr(c));
    let dir = Directory::new(2);
    let merchant = dir.merchant_account(c);
    // The merchant lives on shard c % 2; the buyer's account on the other one.
    let buyer = dir.user_accounts(c)[((c + 1) % 2) as usize];
    for (account, subject) in [(buyer, Subject::User), (merchant, Subject::Merchant)] {
        let command = LedgerCommand::OpenAccount { account, subject };
        let shard = account.shard(2).0;
        let call = ClientLedgerCall {
            credential,
            command,
        };
        let reply = t.call(ledger_addr(shard), call, BENCH_TIMEOUT).await;
        reply.expect("reply").expect("opened");
    }
    let client = BenchClient { t, c, credential };
    let deposit = PaymentCommand::Deposit {
        account: buyer,
        key: format!("c{c}-fund"),
        amount: Amount::from_fen(1_000_000_000).expect("valid"),
    };
    client.pay(deposit).await;
    let one = Amount::from_fen(100).expect("valid");
    let mut trades = Vec::with_capacity(payments as usize);
    for i in 0..payments {
        let command = TradeCommand::Create {
            merchant,
            out_trade_no: format!("c{c}-o{i}"),
            amount: one,
        };
        let call = ClientTradeCall {
            credential,
            command,
        };
        let created = client.t.call(trade_addr(0), call, BENCH_TIMEOUT).await;
        let Ok(Ok(TradeReply::Created { trade, .. })) = created else {
            panic!("trade created: {created:?}");
        };
        trades.push(trade);
    }
    (client, buyer, trades)
}

impl BenchClient {
    async fn pay(&self, command: PaymentCommand) {
        let call = ClientPaymentCall {
            credential: self.credential,
            command,
        };
        let paid = self.t.call(payment_addr(0), call, BENCH_TIMEOUT).await;
        assert!(matches!(paid, Ok(Ok(_))), "payment succeeds: {paid:?}");
    }
}

async fn pay_all(client: BenchClient, buyer: AccountId, trades: Vec<TradeId>) {
    for trade in trades {
        let pay = PaymentCommand::Pay {
            trade,
            key: format!("c{}-{trade}-pay", client.c),
            payer: buyer,
            by_card: false,
        };
        client.pay(pay).await;
    }
}

/// Marks the timed part of a bench body for a watcher thread outside the simulation, since
/// inside it every clock is simulated. Each mark waits until the watcher has read the wall
/// clock (a rendezvous, so no wake-up delay of the watcher is timed), and the watcher blocks
/// between marks, taking no CPU from the simulation.
#[derive(Clone)]
pub struct Stopwatch {
    mark: mpsc::SyncSender<()>,
    read: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl Stopwatch {
    pub fn start(&self) {
        self.mark_and_wait();
    }
    pub fn stop(&self) {
        self.mark_and_wait();
    }
    fn mark_and_wait(&self) {
        if self.mark.send(()).is_ok() {
            let read = self.read.lock().unwrap_or_else(|p| p.into_inner());
            let _ = read.recv();
        }
    }
}

/// Like [`timed`], but times only what `body` brackets with its [`Stopwatch`].
fn timed_phase<F, Fut>(name: &'static str, size: BenchSize, body: F) -> Figure
where
    F: FnOnce(BenchSize, Stopwatch) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let (mark, marks) = mpsc::sync_channel(0);
    let (was_read, read) = mpsc::sync_channel(0);
    let watcher = std::thread::spawn(move || {
        marks.recv().expect("the stopwatch starts");
        let started = Instant::now();
        was_read.send(()).expect("the bench waits for the start");
        marks.recv().expect("the stopwatch stops after it started");
        let elapsed = started.elapsed().as_secs_f64();
        let _ = was_read.send(());
        elapsed
    });
    let stopwatch = Stopwatch {
        mark,
        read: Arc::new(Mutex::new(read)),
    };
    std::thread::spawn(move || {
        let runtime = Runtime::with_seed_and_config(1, madsim::Config::default());
        runtime.block_on(body(size, stopwatch));
    })
    .join()
    .expect("bench thread");
    Figure {
        name,
        count: u64::from(size.clients) * u64::from(size.per_client),
        wall_s: watcher.join().expect("watcher thread"),
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

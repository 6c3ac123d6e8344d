//! Open-loop load (`--rate`): business flows arrive as a Poisson process, whatever the
//! platform's speed, instead of a fixed set of clients each waiting for its last answer.
//!
//! Every client node draws its share of the arrivals (`rate / clients` payments per simulated
//! second, plus the unpaid trades and transfers of the mix) from its own seeded stream and
//! runs each arrival in a task of its own, so many flows are in flight at once. The node owns
//! the users and merchants whose index is its own modulo the node count: merchants are opened
//! at its start; a user's account is opened and funded by its first arrival (later arrivals of
//! the same user wait for it: a user finishes one flow before starting the next).
//!
//! The mix of an arrival: 80 % a trade paid (then re-asked 20 % of the time and refunded 40 %
//! of the time, as in the closed loop), 10 % a trade left unpaid until it closes, 10 % a
//! transfer to another user of the same shard.

use crate::cluster::lock;
use crate::config::OpenLoop;
use crate::workload::caller::Caller;
use crate::workload::flows::{self, amount, Names};
use crate::workload::intent::{FlowIntent, TransferIntent};
use madsim::time::{sleep, sleep_until, Instant};
use paylab_invariants::OpKind;
use paylab_system::ledger::{LedgerCommand, Subject};
use paylab_system::AccountId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Of every 100 arrivals, this many are paid trades; `--rate` counts those.
const PAID_PER_100: u64 = 80;

/// Coverage probes: every arrival; each new peak of flows in flight on one node (so the count
/// is the sum of the nodes' peaks); each user opened by its first arrival.
pub const ARRIVAL: &str = "openloop.arrival";
pub const IN_FLIGHT_PEAK: &str = "openloop.in-flight-peak";
pub const USER_OPENED: &str = "openloop.user-opened";

const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Arrivals of every kind per simulated second over all nodes, for `rate` payments.
pub fn arrival_rate(rate: u32) -> f64 {
    f64::from(rate) * 100.0 / PAID_PER_100 as f64
}

/// Expected arrivals of every kind in a run.
pub fn expected_arrivals(open: &OpenLoop) -> u64 {
    u64::from(open.rate) * open.duration_ms * 100 / PAID_PER_100 / 1_000
}

/// User `u`'s account: customer ids in order, so it lives on shard `u % shards` (the open-loop
/// layout of [`paylab_system::auth::Directory`], which says the node owning it is `u % nodes`).
pub fn user_account(shards: u32, u: u64) -> AccountId {
    AccountId(AccountId::first_customer(shards) + u)
}

/// Merchant `m`'s account, after every user's.
pub fn merchant_account(shards: u32, open: &OpenLoop, m: u64) -> AccountId {
    AccountId(AccountId::first_customer(shards) + u64::from(open.users) + m)
}

/// Node `node`'s share of `0..total` (every index congruent to it modulo `nodes`).
fn share(total: u32, node: u32, nodes: u32) -> u64 {
    u64::from(total.saturating_sub(node).div_ceil(nodes))
}

/// What one business flow is.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Paid,
    Unpaid,
    Transfer,
}

/// One arrival, drawn by the node's loop: who, with whom, what, and its own stream.
#[derive(Debug)]
struct Arrival {
    k: u64,
    user: u64,
    merchant: AccountId,
    kind: Kind,
    seed: u64,
}

/// What a node's flows share.
#[derive(Clone)]
struct Node {
    caller: Caller,
    open: OpenLoop,
    /// Users this node has touched, each behind the lock its flows take in turn; the flag
    /// says whether its account is opened.
    users: Arc<Mutex<BTreeMap<u64, Arc<tokio::sync::Mutex<bool>>>>>,
    /// Opened users by shard: the transfer targets.
    opened: Arc<Mutex<BTreeMap<u32, Vec<u64>>>>,
    in_flight: Arc<AtomicUsize>,
}

/// Runs client node `caller.id`'s share of the open-loop load to its end: opens its
/// merchants, lets its arrivals come for the run's duration, and waits for every flow.
pub async fn run_node(caller: Caller, mut rng: ChaCha8Rng) {
    let config = caller.ctx.config.clone();
    let open = config.open_loop().expect("an open-loop run has a rate");
    let (id, nodes, shards) = (caller.id, config.clients, config.shards);
    let node = Node {
        caller,
        open,
        users: Arc::default(),
        opened: Arc::default(),
        in_flight: Arc::default(),
    };
    for i in 0..share(open.merchants, id, nodes) {
        let m = u64::from(id) + i * u64::from(nodes);
        let account = merchant_account(shards, &open, m);
        let cmd = LedgerCommand::OpenAccount {
            account,
            subject: Subject::Merchant,
        };
        let request = format!("c{id}-m{m}-open");
        node.caller
            .ledger(OpKind::OpenAccount, &request, None, account, cmd)
            .await;
    }
    let lambda = arrival_rate(open.rate) / f64::from(nodes);
    let (start, mut at_s, mut peak) = (Instant::now(), 0.0_f64, 0);
    for k in 0.. {
        at_s += -(1.0 - rng.gen::<f64>()).ln() / lambda;
        if at_s * 1_000.0 >= open.duration_ms as f64 {
            break;
        }
        // Drawn whole here (its flow's choices come from its own seed), in arrival order.
        let arrival = node.draw(&mut rng, k);
        node.caller.ctx.intents.record(id, &arrival);
        sleep_until(start + Duration::from_secs_f64(at_s)).await;
        let now = node.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let probes = &node.caller.ctx.probes;
        probes.hit(ARRIVAL);
        if now > peak {
            peak = now;
            probes.hit(IN_FLIGHT_PEAK);
        }
        let flow = node.clone();
        madsim::task::spawn(async move {
            flow.run(arrival).await;
            flow.in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }
    while node.in_flight.load(Ordering::SeqCst) > 0 {
        sleep(DRAIN_POLL).await;
    }
}

impl Node {
    fn draw(&self, rng: &mut ChaCha8Rng, k: u64) -> Arrival {
        let config = &self.caller.ctx.config;
        let (id, nodes) = (self.caller.id, config.clients);
        let pick = |rng: &mut ChaCha8Rng, total: u32| {
            u64::from(id) + rng.gen_range(0..share(total, id, nodes)) * u64::from(nodes)
        };
        let user = pick(rng, self.open.users);
        let m = pick(rng, self.open.merchants);
        let kind = match rng.gen_range(0..100) {
            n if n < PAID_PER_100 => Kind::Paid,
            n if n < 90 => Kind::Unpaid,
            _ => Kind::Transfer,
        };
        Arrival {
            k,
            user,
            merchant: merchant_account(config.shards, &self.open, m),
            kind,
            seed: rng.gen(),
        }
    }

    /// One flow, its user's lock held throughout.
    async fn run(&self, a: Arrival) {
        let slot = lock(&self.users).entry(a.user).or_default().clone();
        let mut opened = slot.lock().await;
        let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
        let shards = self.caller.ctx.config.shards;
        let payer = user_account(shards, a.user);
        if !*opened {
            self.open_user(&mut rng, a.user, payer).await;
            *opened = true;
        }
        let names = Names::new(self.caller.id, format!("a{}", a.k));
        let caller = &self.caller;
        match a.kind {
            Kind::Paid => {
                let amount = amount(&mut rng, 100, 30_000);
                let config = &caller.ctx.config;
                let (banks, close_ms) = (config.banks, config.close_after_ms);
                let f = FlowIntent::draw(&mut rng, amount, banks, close_ms, |_| payer);
                flows::trade_flow(caller, &names, a.merchant, f).await;
                let banks = caller.ctx.config.banks;
                let (of_merchant, of_user) = crate::workload::money::withdrawal_thresholds(banks);
                caller
                    .maybe_withdraw(&names.id("w"), a.merchant, of_merchant)
                    .await;
                if let Some(threshold) = of_user {
                    caller
                        .maybe_withdraw(&names.id("u"), payer, threshold)
                        .await;
                }
            }
            Kind::Unpaid => {
                let amount = amount(&mut rng, 100, 30_000);
                caller
                    .create_trade(&names.id("o"), a.merchant, amount)
                    .await;
            }
            Kind::Transfer => {
                let shard = payer.shard(shards).0;
                let targets = lock(&self.opened).get(&shard).cloned().unwrap_or_default();
                let others: Vec<u64> = targets.into_iter().filter(|&u| u != a.user).collect();
                if let Some(&to) = others.get(rng.gen_range(0..others.len().max(1))) {
                    let to = user_account(shards, to);
                    let t = TransferIntent::draw(&mut rng, payer, to);
                    flows::transfer(caller, &names, t).await;
                }
            }
        }
    }

    /// A user's first arrival opens its account and funds it from the world.
    async fn open_user(&self, rng: &mut ChaCha8Rng, u: u64, account: AccountId) {
        let (id, shards) = (self.caller.id, self.caller.ctx.config.shards);
        let cmd = LedgerCommand::OpenAccount {
            account,
            subject: Subject::User,
        };
        let request = format!("c{id}-u{u}-open");
        self.caller
            .ledger(OpKind::OpenAccount, &request, None, account, cmd)
            .await;
        let funds = amount(rng, 10_000, 100_000);
        let request = format!("c{id}-u{u}-fund");
        self.caller.fund(&request, account, funds).await;
        self.caller.ctx.probes.hit(USER_OPENED);
        let shard = account.shard(shards).0;
        lock(&self.opened).entry(shard).or_default().push(u);
    }
}

//! The clients. Each opens its accounts (two user accounts per shard and one merchant
//! account, as the platform's directory registered them) and funds the user accounts by
//! deposits, then runs business steps: mostly trade flows (it creates a trade for its own
//! merchant account, pays it from one of its user accounts, sometimes refunds part or all of
//! it, sometimes with two refunds racing), some trades left unpaid until they close, and some
//! same-shard transfers (half of them to another client). Money keeps flowing ([`money`]): a
//! buyer about to pay more than it holds deposits first, and a merchant whose takings grow
//! large withdraws them. Every request carries the client's credential. Hostile clients (ids
//! after the honest ones) run [`hostile`] instead. With `--rate`, the clients are open-loop
//! ([`crate::openloop`]).
//!
//! Every operation has an idempotency key that every retry reuses; a reply that never comes
//! is recorded as `Unknown`, never as a failure. Some requests are asked again after their
//! answer, to check the answer never flips.
//!
//! Each client draws its choices from its own RNG stream derived from the seed, independent of
//! the fault plan and of madsim's network randomness, so the same seed asks for the same
//! operations whatever the faults do.

pub mod caller;
pub mod flows;
pub mod hostile;
pub mod intent;
pub mod money;
pub mod reask;

use crate::cluster::client_addr;
use crate::config::RunConfig;
use crate::history::History;
use crate::trace::Trace;
use caller::Caller;
use flows::{amount, Names};
use intent::{FlowIntent, Step, TransferIntent};
use money::Balances;
use paylab_system::auth::{Authority, Directory};
use paylab_system::probes::Probes;
use paylab_system::transport::{NetFaults, Transport};
use paylab_system::AccountId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reask::ReAsks;

const WORKLOAD_STREAM: u64 = 0x574f_524b_4c4f_4144; // "WORKLOAD"
/// Mixed into a client's seed for its re-ask stream.
const RE_ASK_STREAM: u64 = 0x5245_4153_4b53_0000; // "REASKS"

/// Milliseconds of simulated time since the run started.
pub fn now_ms() -> u64 {
    madsim::time::TimeHandle::current().elapsed().as_millis() as u64
}

/// What every client shares.
#[derive(Clone)]
pub struct ClientContext {
    pub config: RunConfig,
    pub history: History,
    pub trace: Trace,
    pub faults: NetFaults,
    pub probes: Probes,
    /// The clients' estimate of every balance they touch.
    pub balances: Balances,
    /// Every intent the clients drew (a test compares it across strategies).
    pub intents: intent::IntentLog,
}

/// One client's user accounts (the platform's [`paylab_system::auth::Directory`]): two per
/// shard, `ids[k]` lives on shard `k % shards`.
pub fn client_accounts(config: &RunConfig, client: u32) -> Vec<AccountId> {
    Directory::new(config.shards).user_accounts(client)
}

/// One client's merchant account, on shard `client % shards`.
pub fn merchant_account(config: &RunConfig, client: u32) -> AccountId {
    Directory::new(config.shards).merchant_account(client)
}

/// The seed of client `id`'s own stream of choices.
pub fn client_seed(config: &RunConfig, id: u32) -> u64 {
    config.seed ^ WORKLOAD_STREAM ^ (u64::from(id) << 32)
}

struct Client {
    caller: Caller,
    rng: ChaCha8Rng,
    shards: u32,
}

/// Runs client `id` to the end of its workload: closed-loop steps, or open-loop arrivals
/// when the run has a `--rate`.
pub async fn run_client(id: u32, ctx: ClientContext) {
    let name = format!("client-{id}");
    let (faults, probes) = (ctx.faults.clone(), ctx.probes.clone());
    let transport = Transport::bind(client_addr(id), &name, ctx.config.seed, faults, probes)
        .await
        .expect("client binds its address");
    let rng = ChaCha8Rng::seed_from_u64(client_seed(&ctx.config, id));
    let credential = Authority::for_run(ctx.config.seed).issue(id, client_addr(id));
    let caller = Caller {
        id,
        ctx,
        transport,
        credential,
        re_asks: None,
    };
    if id >= caller.ctx.config.clients {
        crate::workload::hostile::run(caller, rng).await;
        return;
    }
    let caller = Caller {
        re_asks: Some(ReAsks::new(
            client_seed(&caller.ctx.config, id) ^ RE_ASK_STREAM,
        )),
        ..caller
    };
    if caller.ctx.config.open_loop().is_some() {
        crate::openloop::run_node(caller, rng).await;
        return;
    }
    let mut client = Client {
        shards: caller.ctx.config.shards,
        caller,
        rng,
    };
    client.run().await;
}

impl Client {
    fn config(&self) -> &RunConfig {
        &self.caller.ctx.config
    }

    async fn run(&mut self) {
        let id = self.caller.id;
        let accounts = client_accounts(self.config(), id);
        let merchant = merchant_account(self.config(), id);
        self.caller.open_own_accounts(&accounts, merchant).await;
        for (k, &account) in accounts.iter().enumerate() {
            let amount = amount(&mut self.rng, 10_000, 100_000);
            let request = format!("c{id}-fund-{k}");
            self.caller.fund(&request, account, amount).await;
        }
        for n in 0..self.config().ops {
            let names = Names::new(id, n);
            let step = self.draw_step(&accounts);
            self.caller.ctx.intents.record(id, &step);
            match step {
                Step::Transfer(t) => {
                    flows::transfer(&self.caller, &names, t).await;
                }
                Step::Unpaid { amount } => {
                    self.caller
                        .create_trade(&names.id("o"), merchant, amount)
                        .await;
                }
                Step::Flow(f) => flows::trade_flow(&self.caller, &names, merchant, f).await,
            }
            let (of_merchant, of_user) = money::withdrawal_thresholds(self.config().banks);
            self.caller
                .maybe_withdraw(&names.id("w"), merchant, of_merchant)
                .await;
            if let Some(threshold) = of_user {
                let user = accounts[n as usize % accounts.len()];
                self.caller
                    .maybe_withdraw(&names.id("u"), user, threshold)
                    .await;
            }
        }
    }

    /// The next step, drawn whole before any of it is asked.
    fn draw_step(&mut self, accounts: &[AccountId]) -> Step {
        match self.rng.gen_range(0..100) {
            0..=9 => Step::Transfer(self.draw_transfer(accounts)),
            10..=19 => Step::Unpaid {
                amount: amount(&mut self.rng, 100, 30_000),
            },
            _ => {
                let amount = amount(&mut self.rng, 100, 30_000);
                let (banks, close_ms) = (self.config().banks, self.config().close_after_ms);
                let pick = |rng: &mut ChaCha8Rng| accounts[rng.gen_range(0..accounts.len())];
                Step::Flow(FlowIntent::draw(
                    &mut self.rng,
                    amount,
                    banks,
                    close_ms,
                    pick,
                ))
            }
        }
    }

    /// A same-shard transfer from one of this client's accounts: to its other account on that
    /// shard, or, half the time, to another client's account there (a payment between users).
    fn draw_transfer(&mut self, accounts: &[AccountId]) -> TransferIntent {
        let shard = self.rng.gen_range(0..self.shards) as usize;
        let (a, b) = (accounts[shard], accounts[shard + self.shards as usize]);
        let (from, mut to) = if self.rng.gen_bool(0.5) {
            (a, b)
        } else {
            (b, a)
        };
        let clients = self.config().clients;
        if clients > 1 && self.rng.gen_bool(0.5) {
            let other = (self.caller.id + self.rng.gen_range(1..clients)) % clients;
            to = client_accounts(self.config(), other)[shard];
        }
        TransferIntent::draw(&mut self.rng, from, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_accounts_are_unique_and_never_system_accounts() {
        for shards in [1, 3, 4] {
            let mut config = RunConfig::new(1);
            config.shards = shards;
            let mut all = std::collections::BTreeSet::new();
            for c in 0..config.clients {
                let ids = client_accounts(&config, c);
                for (k, id) in ids.iter().enumerate() {
                    assert_eq!(id.shard(config.shards).0, k as u32 % config.shards);
                    assert!(
                        id.0 >= AccountId::first_customer(shards),
                        "never world or transit"
                    );
                    assert!(all.insert(*id));
                }
                let m = merchant_account(&config, c);
                assert_eq!(m.shard(shards).0, c % shards);
                assert!(m.0 >= AccountId::first_customer(shards));
                assert!(all.insert(m));
            }
        }
    }
}

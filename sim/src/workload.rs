//! The clients: open accounts, fund them from the world, then transfer between accounts of the
//! same shard. Each operation has a request id that every retry reuses; a reply that never
//! comes is recorded as `Unknown`, never as a failure.
//!
//! Each client draws its choices from its own RNG stream derived from the seed, independent of
//! the fault plan and of madsim's network randomness, so the same seed asks for the same
//! operations whatever the faults do.

use crate::cluster::{client_addr, ledger_addr};
use crate::config::RunConfig;
use crate::history::History;
use crate::trace::{Trace, TraceEvent};
use paylab_invariants::{OpKind, Outcome};
use paylab_system::ledger::{LedgerCall, LedgerCommand, Leg, Subject};
use paylab_system::probes::{names, Probes};
use paylab_system::transport::{NetFaults, RetryPolicy, Transport};
use paylab_system::{AccountId, Amount, RequestId, ShardId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const WORKLOAD_STREAM: u64 = 0x574f_524b_4c4f_4144; // "WORKLOAD"

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
}

/// One client's account ids: two per shard, `ids[k]` lives on shard `k % shards`.
pub fn client_accounts(config: &RunConfig, client: u32) -> Vec<AccountId> {
    let per = config.accounts_per_client();
    let shards = u64::from(config.shards);
    (0..per)
        .map(|k| {
            let slot = 1 + u64::from(client) * u64::from(per) + u64::from(k);
            AccountId(shards * slot + u64::from(k) % shards)
        })
        .collect()
}

struct Client {
    id: u32,
    ctx: ClientContext,
    transport: Transport,
    rng: ChaCha8Rng,
    shards: u32,
}

/// Runs client `id` to the end of its workload.
pub async fn run_client(id: u32, ctx: ClientContext) {
    let transport = Transport::bind(client_addr(id), ctx.faults.clone(), ctx.probes.clone())
        .await
        .expect("client binds its address");
    let seed = ctx.config.seed ^ WORKLOAD_STREAM ^ (u64::from(id) << 32);
    let mut client = Client {
        id,
        shards: ctx.config.shards,
        ctx,
        transport,
        rng: ChaCha8Rng::seed_from_u64(seed),
    };
    client.run().await;
}

impl Client {
    async fn run(&mut self) {
        let accounts = client_accounts(&self.ctx.config, self.id);
        for (k, &account) in accounts.iter().enumerate() {
            let open = LedgerCommand::OpenAccount {
                account,
                subject: Subject::User,
            };
            let request = format!("c{}-open-{k}", self.id);
            self.execute(OpKind::OpenAccount, &request, None, account, open)
                .await;
        }
        for (k, &account) in accounts.iter().enumerate() {
            let amount = self.amount(10_000, 100_000);
            let world = AccountId::world(account.shard(self.shards));
            let request = format!("c{}-fund-{k}", self.id);
            let post = LedgerCommand::Post {
                request: RequestId::new(&request),
                legs: vec![Leg::debit(world, amount), Leg::credit(account, amount)],
            };
            self.execute(OpKind::Fund, &request, Some(amount), account, post)
                .await;
        }
        for n in 0..self.ctx.config.ops {
            // Two distinct accounts of this client on one shard.
            let shard = self.rng.gen_range(0..self.shards) as usize;
            let (a, b) = (accounts[shard], accounts[shard + self.shards as usize]);
            let (from, to) = if self.rng.gen_bool(0.5) {
                (a, b)
            } else {
                (b, a)
            };
            // Up to 500 yuan: large enough that some transfers overdraw and are refused.
            let amount = self.amount(1, 50_000);
            let request = format!("c{}-t{n}", self.id);
            let post = LedgerCommand::Post {
                request: RequestId::new(&request),
                legs: vec![Leg::debit(from, amount), Leg::credit(to, amount)],
            };
            self.execute(OpKind::Transfer, &request, Some(amount), from, post)
                .await;
        }
    }

    fn amount(&mut self, min_fen: i64, max_fen: i64) -> Amount {
        Amount::from_fen(self.rng.gen_range(min_fen..=max_fen)).expect("workload amounts are valid")
    }

    /// Sends one command until it gets a reply or the retries run out, and records it.
    async fn execute(
        &mut self,
        kind: OpKind,
        request: &str,
        amount: Option<Amount>,
        account: AccountId,
        command: LedgerCommand,
    ) -> Outcome {
        let ctx = &self.ctx;
        let op = ctx
            .history
            .invoke(self.id, request, kind, amount.map(Amount::value), now_ms());
        ctx.trace.record(TraceEvent::Invoke {
            at_ms: now_ms(),
            request: request.to_string(),
        });
        let ShardId(shard) = account.shard(self.shards);
        let retried = self
            .transport
            .call_with_retry(
                ledger_addr(shard),
                LedgerCall(command),
                RetryPolicy::default(),
            )
            .await;
        let outcome = match retried.result {
            Ok(Ok(_)) => Outcome::Ok,
            Ok(Err(refusal)) => Outcome::Fail(refusal.to_string()),
            Err(_) => {
                ctx.probes.hit(names::CLIENT_UNKNOWN);
                Outcome::Unknown
            }
        };
        ctx.history
            .complete(op, outcome.clone(), retried.attempts, now_ms());
        ctx.trace.record(TraceEvent::Complete {
            at_ms: now_ms(),
            request: request.to_string(),
            outcome: format!("{outcome:?}"),
            attempts: retried.attempts,
        });
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_accounts_are_unique_and_two_per_shard() {
        let config = RunConfig::new(1);
        let mut all = std::collections::BTreeSet::new();
        for c in 0..config.clients {
            let ids = client_accounts(&config, c);
            for (k, id) in ids.iter().enumerate() {
                assert_eq!(id.shard(config.shards).0, k as u32 % config.shards);
                assert!(id.0 >= u64::from(config.shards), "never a world account");
                assert!(all.insert(*id));
            }
        }
    }
}

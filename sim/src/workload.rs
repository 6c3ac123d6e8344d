//! The clients. Each opens its accounts (two user accounts per shard and one merchant
//! account), funds the user accounts from the world, then runs business steps: mostly trade
//! flows (a merchant creates a trade, a buyer pays it, the merchant sometimes refunds part or
//! all of it, sometimes with two refunds racing), some trades left unpaid until they close,
//! and some same-shard transfers.
//!
//! Every operation has an idempotency key that every retry reuses; a reply that never comes
//! is recorded as `Unknown`, never as a failure. Some requests are asked again after their
//! answer, to check the answer never flips.
//!
//! Each client draws its choices from its own RNG stream derived from the seed, independent of
//! the fault plan and of madsim's network randomness, so the same seed asks for the same
//! operations whatever the faults do.

use crate::cluster::{client_addr, ledger_addr, payment_addr, trade_addr};
use crate::config::RunConfig;
use crate::history::{History, OpHandle};
use crate::trace::{Trace, TraceEvent};
use paylab_invariants::{OpKind, Outcome};
use paylab_system::ledger::{LedgerCall, LedgerCommand, Leg, Subject};
use paylab_system::payment::{payment_node_for, PaymentCall, PaymentCommand, PaymentError};
use paylab_system::probes::{names, Probes};
use paylab_system::trade::{trade_shard_of, TradeCall, TradeCommand, TradeId, TradeReply};
use paylab_system::transport::{NetFaults, RetryPolicy, Transport};
use paylab_system::{AccountId, Amount, RequestId, ShardId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

const WORKLOAD_STREAM: u64 = 0x574f_524b_4c4f_4144; // "WORKLOAD"

/// How often a client asks the payment service about one key before giving up (unknown).
const PAYMENT_ATTEMPTS_MAX: u32 = 30;
const PAYMENT_TIMEOUT: Duration = Duration::from_millis(1_000);
const PAYMENT_BACKOFF: Duration = Duration::from_millis(50);
const PAYMENT_BACKOFF_MAX: Duration = Duration::from_millis(1_000);

/// The code a client records when the platform answers with a reply of the wrong kind: not a
/// platform refusal, so none of [`paylab_system::RefusalCode`]'s names.
const UNEXPECTED_REPLY: &str = "unexpected-reply";

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

/// The slot of a client's `k`-th account: each client has `accounts_per_client() + 1` slots,
/// after the world and transit accounts.
fn slot(config: &RunConfig, client: u32, k: u32) -> u64 {
    let per = u64::from(config.accounts_per_client()) + 1;
    let first = AccountId::first_customer(config.shards) / u64::from(config.shards);
    first + u64::from(client) * per + u64::from(k)
}

/// One client's user accounts: two per shard, `ids[k]` lives on shard `k % shards`.
pub fn client_accounts(config: &RunConfig, client: u32) -> Vec<AccountId> {
    let shards = u64::from(config.shards);
    (0..config.accounts_per_client())
        .map(|k| AccountId(shards * slot(config, client, k) + u64::from(k) % shards))
        .collect()
}

/// One client's merchant account, on shard `client % shards`.
pub fn merchant_account(config: &RunConfig, client: u32) -> AccountId {
    let shards = u64::from(config.shards);
    let k = config.accounts_per_client();
    AccountId(shards * slot(config, client, k) + u64::from(client) % shards)
}

/// Sends requests and records them; shared by a client's concurrent operations.
#[derive(Clone)]
struct Caller {
    id: u32,
    ctx: ClientContext,
    transport: Transport,
}

struct Client {
    caller: Caller,
    rng: ChaCha8Rng,
    shards: u32,
}

/// Runs client `id` to the end of its workload.
pub async fn run_client(id: u32, ctx: ClientContext) {
    let name = format!("client-{id}");
    let (faults, probes) = (ctx.faults.clone(), ctx.probes.clone());
    let transport = Transport::bind(client_addr(id), &name, ctx.config.seed, faults, probes)
        .await
        .expect("client binds its address");
    let seed = ctx.config.seed ^ WORKLOAD_STREAM ^ (u64::from(id) << 32);
    let mut client = Client {
        shards: ctx.config.shards,
        caller: Caller { id, ctx, transport },
        rng: ChaCha8Rng::seed_from_u64(seed),
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
        let mut opens: Vec<(AccountId, Subject)> =
            accounts.iter().map(|&a| (a, Subject::User)).collect();
        opens.push((merchant, Subject::Merchant));
        for (k, (account, subject)) in opens.into_iter().enumerate() {
            let open = LedgerCommand::OpenAccount { account, subject };
            let request = format!("c{id}-open-{k}");
            self.caller
                .ledger(OpKind::OpenAccount, &request, None, account, open)
                .await;
        }
        for (k, &account) in accounts.iter().enumerate() {
            let amount = self.amount(10_000, 100_000);
            let world = AccountId::world(account.shard(self.shards));
            let request = format!("c{id}-fund-{k}");
            let post = LedgerCommand::Post {
                request: RequestId::new(&request),
                legs: vec![Leg::debit(world, amount), Leg::credit(account, amount)],
            };
            self.caller
                .ledger(OpKind::Fund, &request, Some(amount), account, post)
                .await;
        }
        for n in 0..self.config().ops {
            match self.rng.gen_range(0..100) {
                0..=9 => self.transfer(n, &accounts).await,
                10..=19 => {
                    // Created and never paid: its trade node closes it after the timeout.
                    let merchant = self.pick_merchant();
                    let amount = self.amount(100, 30_000);
                    self.create_trade(n, merchant, amount).await;
                }
                _ => self.trade_flow(n, &accounts).await,
            }
        }
    }

    fn amount(&mut self, min_fen: i64, max_fen: i64) -> Amount {
        Amount::from_fen(self.rng.gen_range(min_fen..=max_fen)).expect("workload amounts are valid")
    }

    fn pick_merchant(&mut self) -> AccountId {
        let m = self.rng.gen_range(0..self.config().clients);
        merchant_account(self.config(), m)
    }

    /// A same-shard transfer between two of this client's accounts.
    async fn transfer(&mut self, n: u32, accounts: &[AccountId]) {
        let shard = self.rng.gen_range(0..self.shards) as usize;
        let (a, b) = (accounts[shard], accounts[shard + self.shards as usize]);
        let (from, to) = if self.rng.gen_bool(0.5) {
            (a, b)
        } else {
            (b, a)
        };
        // Up to 500 yuan: large enough that some transfers overdraw and are refused.
        let amount = self.amount(1, 50_000);
        let request = format!("c{}-t{n}", self.caller.id);
        let post = LedgerCommand::Post {
            request: RequestId::new(&request),
            legs: vec![Leg::debit(from, amount), Leg::credit(to, amount)],
        };
        self.caller
            .ledger(OpKind::Transfer, &request, Some(amount), from, post)
            .await;
    }

    async fn create_trade(
        &mut self,
        n: u32,
        merchant: AccountId,
        amount: Amount,
    ) -> Option<TradeId> {
        let out_trade_no = format!("c{}-o{n}", self.caller.id);
        self.caller
            .create_trade(&out_trade_no, merchant, amount)
            .await
    }

    /// Create, pay, maybe re-ask, maybe refund (once, fully or partly, or twice at once).
    async fn trade_flow(&mut self, n: u32, accounts: &[AccountId]) {
        let merchant = self.pick_merchant();
        let amount = self.amount(100, 30_000);
        let Some(trade) = self.create_trade(n, merchant, amount).await else {
            return;
        };
        let payer = accounts[self.rng.gen_range(0..accounts.len())];
        let key = format!("c{}-p{n}", self.caller.id);
        let pay = PaymentCommand::Pay {
            trade,
            key: key.clone(),
            payer,
        };
        let (outcome, op) = self
            .caller
            .payment(OpKind::Pay, &key, Some(amount), trade, pay.clone())
            .await;
        if outcome != Outcome::Unknown && self.rng.gen_bool(0.2) {
            self.caller.re_ask(op, &key, pay).await;
        }
        if outcome != Outcome::Ok || !self.rng.gen_bool(0.4) {
            return;
        }
        let fen = amount.fen();
        let refund = |request: String, fen: i64| PaymentCommand::Refund {
            trade,
            out_request_no: request,
            amount: Amount::from_fen(fen).expect("refund amounts are valid"),
        };
        let id = self.caller.id;
        match self.rng.gen_range(0..4) {
            0 => {
                let r = format!("c{id}-r{n}");
                let cmd = refund(r.clone(), fen);
                self.caller
                    .payment(OpKind::Refund, &r, Some(amount), trade, cmd)
                    .await;
            }
            1 => {
                // Two refunds at once, each 40-80 % of the trade: they must not both succeed.
                let (fa, fb) = (self.part(fen, 40, 80), self.part(fen, 40, 80));
                let (ra, rb) = (format!("c{id}-r{n}a"), format!("c{id}-r{n}b"));
                let (ca, cb) = (refund(ra.clone(), fa), refund(rb.clone(), fb));
                let (a, b) = (self.caller.clone(), self.caller.clone());
                let amount = |fen| Amount::from_fen(fen).ok();
                tokio::join!(
                    a.payment(OpKind::Refund, &ra, amount(fa), trade, ca),
                    b.payment(OpKind::Refund, &rb, amount(fb), trade, cb),
                );
            }
            _ => {
                let part = self.part(fen, 1, 99);
                let r = format!("c{id}-r{n}");
                let cmd = refund(r.clone(), part);
                let amount = Amount::from_fen(part).ok();
                self.caller
                    .payment(OpKind::Refund, &r, amount, trade, cmd)
                    .await;
            }
        }
    }

    /// Between `lo` and `hi` percent of `fen`, at least one fen.
    fn part(&mut self, fen: i64, lo: i64, hi: i64) -> i64 {
        (fen * self.rng.gen_range(lo..=hi) / 100).max(1)
    }
}

impl Caller {
    fn invoke(
        &self,
        kind: OpKind,
        request: &str,
        amount: Option<Amount>,
        trade: Option<String>,
    ) -> OpHandle {
        let ctx = &self.ctx;
        let op = ctx.history.invoke(
            self.id,
            request,
            kind,
            amount.map(Amount::value),
            trade,
            now_ms(),
        );
        ctx.trace.record(TraceEvent::Invoke {
            at_ms: now_ms(),
            request: request.to_string(),
        });
        op
    }

    fn complete(&self, op: OpHandle, request: &str, outcome: &Outcome, attempts: u32) {
        let ctx = &self.ctx;
        if *outcome == Outcome::Unknown {
            ctx.probes.hit(names::CLIENT_UNKNOWN);
        }
        ctx.history
            .complete(op, outcome.clone(), attempts, now_ms());
        ctx.trace.record(TraceEvent::Complete {
            at_ms: now_ms(),
            request: request.to_string(),
            outcome: format!("{outcome:?}"),
            attempts,
        });
    }

    /// Sends one ledger command until it gets a reply or the retries run out, and records it.
    async fn ledger(
        &self,
        kind: OpKind,
        request: &str,
        amount: Option<Amount>,
        account: AccountId,
        command: LedgerCommand,
    ) -> Outcome {
        let op = self.invoke(kind, request, amount, None);
        let ShardId(shard) = account.shard(self.ctx.config.shards);
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
            Ok(Err(refusal)) => Outcome::fail(refusal.code().name(), refusal.to_string()),
            Err(_) => Outcome::Unknown,
        };
        self.complete(op, request, &outcome, retried.attempts);
        outcome
    }

    /// Creates a trade (idempotent by merchant + out_trade_no) and records it.
    async fn create_trade(
        &self,
        out_trade_no: &str,
        merchant: AccountId,
        amount: Amount,
    ) -> Option<TradeId> {
        let op = self.invoke(OpKind::CreateTrade, out_trade_no, Some(amount), None);
        let shard = trade_shard_of(merchant, out_trade_no, self.ctx.config.trade_shards);
        let create = TradeCommand::Create {
            merchant,
            out_trade_no: out_trade_no.to_string(),
            amount,
        };
        let retried = self
            .transport
            .call_with_retry(
                trade_addr(shard.0),
                TradeCall(create),
                RetryPolicy::default(),
            )
            .await;
        let (outcome, trade) = match retried.result {
            Ok(Ok(TradeReply::Created { trade, .. })) => (Outcome::Ok, Some(trade)),
            Ok(Ok(other)) => {
                let detail = format!("unexpected reply {other:?}");
                (Outcome::fail(UNEXPECTED_REPLY, detail), None)
            }
            Ok(Err(refusal)) => {
                let outcome = Outcome::fail(refusal.code().name(), refusal.to_string());
                (outcome, None)
            }
            Err(_) => (Outcome::Unknown, None),
        };
        self.complete(op, out_trade_no, &outcome, retried.attempts);
        trade
    }

    /// Asks the payment service until it gives a definite answer or the attempts run out.
    async fn ask_payment(&self, command: &PaymentCommand, key: &str) -> (Outcome, u32) {
        // The first attempt goes to the key's owner; retries go round the other nodes, which
        // forward to the owner (any node serves any request).
        let nodes = self.ctx.config.payment_nodes;
        let owner = payment_node_for(key, nodes);
        let mut backoff = PAYMENT_BACKOFF;
        for attempt in 1..=PAYMENT_ATTEMPTS_MAX {
            let call = PaymentCall(command.clone());
            let node = (owner + attempt - 1) % nodes;
            match self
                .transport
                .call(payment_addr(node), call, PAYMENT_TIMEOUT)
                .await
            {
                Ok(Ok(_)) => return (Outcome::Ok, attempt),
                Ok(Err(PaymentError::Refused(refusal))) => {
                    let outcome = Outcome::fail(refusal.code.name(), refusal.detail);
                    return (outcome, attempt);
                }
                Ok(Err(PaymentError::InProgress)) | Err(_) => {
                    self.ctx.probes.hit(names::CLIENT_RETRY);
                    madsim::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(PAYMENT_BACKOFF_MAX);
                }
            }
        }
        (Outcome::Unknown, PAYMENT_ATTEMPTS_MAX)
    }

    /// Pays or refunds, records it, and returns the outcome and the operation.
    async fn payment(
        &self,
        kind: OpKind,
        key: &str,
        amount: Option<Amount>,
        trade: TradeId,
        command: PaymentCommand,
    ) -> (Outcome, OpHandle) {
        let op = self.invoke(kind, key, amount, Some(trade.to_string()));
        let (outcome, attempts) = self.ask_payment(&command, key).await;
        self.complete(op, key, &outcome, attempts);
        (outcome, op)
    }

    /// Asks the same request again after its answer: the answer must be the same.
    async fn re_ask(&self, op: OpHandle, key: &str, command: PaymentCommand) {
        let (again, _) = self.ask_payment(&command, key).await;
        if again != Outcome::Unknown {
            self.ctx.history.re_asked(op, again);
        }
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

//! Re-asks: an honest client sometimes asks a request again after it got a definite answer
//! (every kind: opening an account, a transfer, a deposit or withdrawal, creating a trade, a
//! pay, a refund), right away or a moment later, as a client that lost the reply or doubts it
//! would. The platform must give the same answer (by refusal code); the second answer goes into
//! the history beside the first, where the idempotency checker compares them. Whether and when
//! to re-ask is drawn for each request from its own stream (the client's seed and the request
//! id), before its answer is known, so the same seed re-asks the same requests whatever the
//! outcomes (only an answer that says nothing is never asked again).

use super::caller::{Answer, Caller};
use super::intent::fnv1a;
use crate::cluster::ledger_addr;
use crate::history::OpHandle;
use paylab_invariants::Outcome;
use paylab_system::ledger::{ClientLedgerCall, LedgerCommand};
use paylab_system::payment::PaymentCommand;
use paylab_system::probes::names;
use paylab_system::trade::TradeCommand;
use paylab_system::transport::RetryPolicy;
use paylab_system::{AccountId, RefusalCode, ShardId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// The share of definite answers a client asks again.
const RE_ASK_P: f64 = 0.15;

/// How long after the answer the client asks again: right away, or a moment later.
const DELAYS_MS: [u64; 3] = [0, 100, 500];

/// A request as it can be sent again.
#[derive(Debug, Clone)]
pub enum Ask {
    /// A ledger command to the shard of `account`.
    Ledger {
        account: AccountId,
        command: LedgerCommand,
    },
    /// A payment-service command under `key`.
    Payment {
        key: String,
        command: PaymentCommand,
    },
    /// A trade command to trade shard `shard`.
    Trade { shard: u32, command: TradeCommand },
}

/// A client's re-ask draws: one stream per request, from the client's seed and the request id.
#[derive(Debug, Clone, Copy)]
pub struct ReAsks {
    seed: u64,
}

impl ReAsks {
    pub fn new(seed: u64) -> ReAsks {
        ReAsks { seed }
    }

    /// Whether to ask `request` again, and after how long.
    pub fn draw(&self, request: &str) -> Option<Duration> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ fnv1a(0, request.as_bytes()));
        let delay = DELAYS_MS[rng.gen_range(0..DELAYS_MS.len())];
        rng.gen_bool(RE_ASK_P).then(|| Duration::from_millis(delay))
    }
}

/// An answer that says something about the request: not unknown, and not `unavailable` (the
/// service did nothing and the client would retry rather than re-ask).
fn says_something(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Ok => true,
        Outcome::Fail(r) => r.code != RefusalCode::Unavailable.name(),
        Outcome::Unknown => false,
    }
}

impl Caller {
    /// Sends `ask` (with the usual retries) and reads the reply as an outcome.
    pub(crate) async fn send(&self, ask: &Ask) -> (Outcome, u32) {
        match ask {
            Ask::Ledger { account, command } => {
                let ShardId(shard) = account.shard(self.ctx.config.shards);
                let call = ClientLedgerCall {
                    credential: self.credential,
                    command: command.clone(),
                };
                let retried = self
                    .transport
                    .call_with_retry(ledger_addr(shard), call, RetryPolicy::default())
                    .await;
                let outcome = retried.result.map_or(Outcome::Unknown, |r| r.outcome());
                (outcome, retried.attempts)
            }
            Ask::Payment { key, command } => self.ask_payment(command, key).await,
            Ask::Trade { shard, command } => {
                let retried = self.trade_call(*shard, command.clone()).await;
                let outcome = retried.result.map_or(Outcome::Unknown, |r| r.outcome());
                (outcome, retried.attempts)
            }
        }
    }

    /// After operation `op`'s definite answer `first`, sometimes asks `ask` again and records
    /// the second answer (if it says something) beside the first.
    pub(crate) async fn maybe_re_ask(
        &self,
        op: OpHandle,
        request: &str,
        first: &Outcome,
        ask: &Ask,
    ) {
        let Some(re_asks) = &self.re_asks else {
            return;
        };
        let Some(delay) = re_asks.draw(request) else {
            return;
        };
        if !says_something(first) {
            return;
        }
        madsim::time::sleep(delay).await;
        self.ctx.probes.hit(names::CLIENT_RE_ASK);
        let (again, _) = self.send(ask).await;
        if says_something(&again) {
            self.ctx.history.re_asked(op, again);
        }
    }
}

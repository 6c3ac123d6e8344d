//! Hostile clients: a share of the clients (`--hostile N`, drawn by the swarm, one by default)
//! that hold credentials of their own, open and fund their own accounts like anyone, and then
//! try what they may not do: move others' money, mint money, forge the platform's internal
//! steps, reuse keys with other bodies, act for other merchants, present forged or stolen
//! credentials, and ask for amounts and refunds the rules forbid. Every attempt is recorded in
//! the history as an [`OpKind::Attack`] with the refusal it must get; the
//! `no-unauthorized-effect` checker judges both the answers and the ledger's effects.
//!
//! Amounts that are not amounts (negative, zero, over-precise, above the maximum) cannot be
//! sent at all: [`paylab_system::Amount`] is validated when it is built and again when it is
//! deserialized, so the largest valid amount is the extreme a hostile client tries.

use super::caller::{Answer, Caller};
use super::{client_accounts, merchant_account};
use crate::cluster::{client_addr, ledger_addr, payment_addr, trade_addr};
use paylab_invariants::{Attack, OpKind, Outcome};
use paylab_system::auth::{Authority, Credential};
use paylab_system::ledger::{
    BranchKey, ClientLedgerCall, LedgerCall, LedgerCommand, Leg, LegAction, Subject,
};
use paylab_system::payment::{ClientPaymentCall, PaymentCommand};
use paylab_system::refusal::RefusalCode;
use paylab_system::trade::{trade_shard_of, ClientTradeCall, TradeCall, TradeCommand, TradeId};
use paylab_system::transport::Rpc;
use paylab_system::{AccountId, Amount, IdemKey, RequestId, Xid};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::time::Duration;

/// Coverage probe: one hit per hostile attempt sent.
pub const ATTEMPT: &str = "hostile.attempt";

const ATTACK_TIMEOUT: Duration = Duration::from_millis(1_000);

/// One attempt: what it is called, the refusal it must get (`None`: any refusal), whose money
/// it aims at.
struct Aim {
    name: &'static str,
    expect: Option<RefusalCode>,
    victim: Option<AccountId>,
    trade: Option<TradeId>,
    amount: Option<Amount>,
}

impl Aim {
    fn new(name: &'static str, expect: RefusalCode) -> Self {
        Aim {
            name,
            expect: Some(expect),
            victim: None,
            trade: None,
            amount: None,
        }
    }
    /// An attempt that must fail, for whatever reason: its refusal depends on the run (an
    /// overdraft may be aborted by a fault before the balance is read).
    fn any_refusal(name: &'static str) -> Self {
        Aim {
            expect: None,
            ..Aim::new(name, RefusalCode::Invalid)
        }
    }
    fn victim(mut self, account: AccountId) -> Self {
        self.victim = Some(account);
        self
    }
    fn trade(mut self, trade: TradeId) -> Self {
        self.trade = Some(trade);
        self
    }
    fn amount(mut self, amount: Amount) -> Self {
        self.amount = Some(amount);
        self
    }
}

struct Hostile {
    caller: Caller,
    rng: ChaCha8Rng,
    n: u32,
    own: Vec<AccountId>,
    merchant: AccountId,
}

/// Runs hostile client `caller.id` to the end of its attempts.
pub async fn run(caller: Caller, rng: ChaCha8Rng) {
    let config = caller.ctx.config.clone();
    let mut h = Hostile {
        own: client_accounts(&config, caller.id),
        merchant: merchant_account(&config, caller.id),
        caller,
        rng,
        n: 0,
    };
    h.set_up().await;
    for _ in 0..config.ops.div_ceil(2) {
        let pause = h.rng.gen_range(20..300);
        madsim::time::sleep(Duration::from_millis(pause)).await;
        h.n += 1;
        h.one().await;
    }
}

fn one_fen() -> Amount {
    Amount::from_fen(1).expect("a fen is an amount")
}

impl Hostile {
    fn id(&self) -> u32 {
        self.caller.id
    }

    fn request(&self, letter: &str) -> String {
        format!("c{}-{letter}{}", self.id(), self.n)
    }

    /// Opens its own accounts and funds its first, honestly: it has money and a merchant.
    async fn set_up(&mut self) {
        let id = self.id();
        self.caller
            .open_own_accounts(&self.own, self.merchant)
            .await;
        let amount = Amount::from_fen(100_000).expect("valid");
        let request = format!("c{id}-fund-0");
        self.caller.fund(&request, self.own[0], amount).await;
    }

    /// A random honest client's `k`-th user account.
    fn victim_account(&mut self) -> AccountId {
        let clients = self.caller.ctx.config.clients;
        let v = self.rng.gen_range(0..clients);
        let accounts = client_accounts(&self.caller.ctx.config, v);
        accounts[self.rng.gen_range(0..accounts.len())]
    }

    fn shards(&self) -> u32 {
        self.caller.ctx.config.shards
    }

    /// Sends one attempt once and records it with what it must get.
    async fn attempt<R: Rpc>(&self, aim: Aim, dst: SocketAddr, request: R)
    where
        R::Response: Answer,
    {
        let key = self.request("x");
        let caller = &self.caller;
        let trade = aim.trade.map(|t| t.to_string());
        let op = caller.invoke(OpKind::Attack, &key, aim.amount, trade);
        caller.ctx.history.mark_attack(
            op,
            Attack {
                name: aim.name.to_string(),
                expect: aim
                    .expect
                    .map_or(Attack::ANY_REFUSAL, RefusalCode::name)
                    .to_string(),
                victim: aim.victim.map(|a| a.0),
            },
        );
        caller.ctx.probes.hit(ATTEMPT);
        let answer = caller.transport.call(dst, request, ATTACK_TIMEOUT).await;
        let outcome = answer.map_or(Outcome::Unknown, |r| r.outcome());
        caller.complete(op, &key, &outcome, 1);
    }

    fn client_ledger(&self, command: LedgerCommand) -> ClientLedgerCall {
        ClientLedgerCall {
            credential: self.caller.credential,
            command,
        }
    }

    fn client_payment(&self, command: PaymentCommand) -> ClientPaymentCall {
        ClientPaymentCall {
            credential: self.caller.credential,
            command,
        }
    }

    fn ledger_of(&self, account: AccountId) -> SocketAddr {
        ledger_addr(account.shard(self.shards()).0)
    }

    /// One attempt, of a kind drawn from the catalogue.
    async fn one(&mut self) {
        match self.rng.gen_range(0..15) {
            0 => self.debit_another().await,
            1 => self.mint().await,
            2 => self.open_as_world().await,
            3 => self.open_another().await,
            4 => self.internal_ledger_step().await,
            5 => self.forge_end(true).await,
            6 => self.forge_end(false).await,
            7 => self.pay_from_another().await,
            8 => self.refund_another().await,
            9 => self.reuse_key_other_body().await,
            10 => self.key_of_another().await,
            11 => self.bad_credential().await,
            12 => self.for_another_merchant().await,
            13 => self.huge_pay().await,
            _ => self.refund_unpaid().await,
        }
    }
}

#[path = "hostile_attacks.rs"]
mod attacks;

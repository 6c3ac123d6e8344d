//! Sending one client request, retrying it under the same idempotency key, and recording it in
//! the history, the trace and the clients' balance estimate ([`super::money::Balances`]).

use super::reask::{Ask, ReAsks};
use super::{now_ms, ClientContext};
use crate::cluster::{payment_addr, trade_addr};
use crate::history::OpHandle;
use crate::trace::TraceEvent;
use paylab_invariants::{OpKind, Outcome};
use paylab_system::auth::Credential;
use paylab_system::ledger::{LedgerCommand, LedgerError, LedgerReply, Leg, Subject};
use paylab_system::payment::{
    payment_node_for, ClientPaymentCall, PaymentCommand, PaymentError, PaymentReceipt,
};
use paylab_system::probes::names;
use paylab_system::trade::{
    trade_shard_of, ClientTradeCall, TradeCommand, TradeError, TradeId, TradeReply,
};
use paylab_system::transport::{Retried, RetryPolicy, Transport};
use paylab_system::{AccountId, Amount, RequestId};
use std::time::Duration;

/// How often a client asks the payment service about one key before giving up (unknown).
const PAYMENT_ATTEMPTS_MAX: u32 = 30;
const PAYMENT_TIMEOUT: Duration = Duration::from_millis(1_000);
const PAYMENT_BACKOFF: Duration = Duration::from_millis(50);
const PAYMENT_BACKOFF_MAX: Duration = Duration::from_millis(1_000);

/// The code a client records when the platform answers with a reply of the wrong kind: not a
/// platform refusal, so none of [`paylab_system::RefusalCode`]'s names.
const UNEXPECTED_REPLY: &str = "unexpected-reply";

/// Coverage probes of the workload's own corners.
pub const TOP_UP: &str = "workload.top-up";
pub const SHORT_PAY: &str = "workload.short-pay-unchecked";
pub const WITHDRAWAL: &str = "workload.withdrawal";

/// How a platform reply reads as an outcome in the history: ok, or the refusal's code and
/// sentence; a payment still in progress is no outcome yet.
pub(crate) trait Answer {
    fn outcome(&self) -> Outcome;
}

impl Answer for Result<LedgerReply, LedgerError> {
    fn outcome(&self) -> Outcome {
        match self {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::fail(e.code().name(), e.to_string()),
        }
    }
}

impl Answer for Result<TradeReply, TradeError> {
    fn outcome(&self) -> Outcome {
        match self {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::fail(e.code().name(), e.to_string()),
        }
    }
}

impl Answer for Result<PaymentReceipt, PaymentError> {
    fn outcome(&self) -> Outcome {
        match self {
            Ok(_) => Outcome::Ok,
            Err(PaymentError::Refused(r)) => Outcome::fail(r.code.name(), r.detail.clone()),
            Err(PaymentError::InProgress) => Outcome::Unknown,
        }
    }
}

/// Sends requests and records them; shared by a client's concurrent operations.
#[derive(Clone)]
pub struct Caller {
    pub id: u32,
    pub ctx: ClientContext,
    pub transport: Transport,
    /// What the platform issued this client: sent with every request.
    pub credential: Credential,
    /// Its stream of re-asks after definite answers; none for a hostile client.
    pub re_asks: Option<ReAsks>,
}

/// A pay or a refund to ask: which trade, between whom, for how much.
#[derive(Debug, Clone, Copy)]
pub struct Movement {
    pub trade: TradeId,
    pub payer: AccountId,
    pub merchant: AccountId,
    pub amount: Amount,
    /// Paid from the payer's card (F3): the balance is not spent, and a refund goes back to
    /// the card.
    pub by_card: bool,
}

fn fen(amount: Amount) -> i64 {
    amount.fen()
}

fn amount_of(fen: i64) -> Amount {
    Amount::from_fen(fen).expect("workload amounts are valid")
}

impl Caller {
    pub(crate) fn invoke(
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

    pub(crate) fn complete(&self, op: OpHandle, request: &str, outcome: &Outcome, attempts: u32) {
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

    /// Sends one ledger command until it gets a reply or the retries run out, records it, and
    /// sometimes asks it again.
    pub async fn ledger(
        &self,
        kind: OpKind,
        request: &str,
        amount: Option<Amount>,
        account: AccountId,
        command: LedgerCommand,
    ) -> Outcome {
        let op = self.invoke(kind, request, amount, None);
        let ask = Ask::Ledger { account, command };
        let (outcome, attempts) = self.send(&ask).await;
        self.complete(op, request, &outcome, attempts);
        self.maybe_re_ask(op, request, &outcome, &ask).await;
        outcome
    }

    /// Opens the client's own accounts as the platform registered them: its user accounts,
    /// then its merchant account (`c{id}-open-{k}`).
    pub async fn open_own_accounts(&self, users: &[AccountId], merchant: AccountId) {
        let id = self.id;
        let opens = users.iter().map(|&a| (a, Subject::User));
        let opens = opens.chain([(merchant, Subject::Merchant)]);
        for (k, (account, subject)) in opens.enumerate() {
            let open = LedgerCommand::OpenAccount { account, subject };
            let request = format!("c{id}-open-{k}");
            self.ledger(OpKind::OpenAccount, &request, None, account, open)
                .await;
        }
    }

    /// Moves `amount` between two accounts of one shard with one voucher (a transfer), and
    /// keeps the estimate: the debit counts unless refused, the credit only once confirmed.
    pub async fn post(
        &self,
        request: &str,
        from: AccountId,
        to: AccountId,
        amount: Amount,
    ) -> Outcome {
        let post = LedgerCommand::Post {
            request: RequestId::new(request),
            legs: vec![Leg::debit(from, amount), Leg::credit(to, amount)],
        };
        let kind = OpKind::Transfer;
        let outcome = self.ledger(kind, request, Some(amount), from, post).await;
        self.moved(&outcome, Some(from), Some(to), amount);
        outcome
    }

    /// Keeps the estimate after a movement: the debit counts unless refused, the credit only
    /// once confirmed.
    fn moved(
        &self,
        outcome: &Outcome,
        from: Option<AccountId>,
        to: Option<AccountId>,
        amount: Amount,
    ) {
        if *outcome != Outcome::Ok && *outcome != Outcome::Unknown {
            return;
        }
        let balances = &self.ctx.balances;
        if let Some(from) = from {
            balances.add(from, -fen(amount));
        }
        if let (Some(to), Outcome::Ok) = (to, outcome) {
            balances.add(to, fen(amount));
        }
    }

    /// Deposits `amount` into the client's `account` through the funding path (the payment
    /// service, which posts Dr world / Cr account as the platform).
    pub async fn fund(&self, request: &str, account: AccountId, amount: Amount) -> Outcome {
        let command = PaymentCommand::Deposit {
            account,
            key: request.to_string(),
            amount,
        };
        let outcome = self
            .payment(OpKind::Fund, request, Some(amount), None, command)
            .await;
        self.moved(&outcome, None, Some(account), amount);
        outcome
    }

    /// Tops `account` up from its shard's world account if the estimate says it cannot spend
    /// `spend` (the buyer's card, in a platform without clearing); one short buyer in
    /// [`super::money::SHORT_PAYS_UNCHECKED`] pays anyway and is refused.
    pub async fn ensure_funds(&self, request: &str, account: AccountId, spend: Amount) {
        let Some(top_up) = self.ctx.balances.top_up_needed(account, fen(spend)) else {
            return;
        };
        if super::money::pays_without_looking(request) {
            self.ctx.probes.hit(SHORT_PAY);
            return;
        }
        self.ctx.probes.hit(TOP_UP);
        self.fund(request, account, amount_of(top_up)).await;
    }

    /// Withdraws what `merchant` (a merchant's takings above its float, or a user's balance)
    /// holds above `threshold` to its card (to its shard's world account without banks), if
    /// the estimate says it holds enough.
    pub async fn maybe_withdraw(
        &self,
        request: &str,
        merchant: AccountId,
        threshold: super::money::Threshold,
    ) {
        let balances = &self.ctx.balances;
        let Some(take) = balances.take_withdrawal(merchant, threshold) else {
            return;
        };
        // The reservation stands in for the debit that `moved` counts.
        balances.add(merchant, take);
        let amount = amount_of(take);
        let command = PaymentCommand::Withdraw {
            account: merchant,
            key: request.to_string(),
            amount,
        };
        let outcome = self
            .payment(OpKind::Withdraw, request, Some(amount), None, command)
            .await;
        self.moved(&outcome, Some(merchant), None, amount);
        if outcome == Outcome::Ok {
            self.ctx.probes.hit(WITHDRAWAL);
        }
    }

    /// Creates a trade (idempotent by merchant + out_trade_no) and records it.
    pub async fn create_trade(
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
        let retried = self.trade_call(shard.0, create.clone()).await;
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
        let ask = Ask::Trade {
            shard: shard.0,
            command: create,
        };
        self.maybe_re_ask(op, out_trade_no, &outcome, &ask).await;
        trade
    }

    /// Sends one trade command to trade shard `shard` with the usual retries.
    pub(crate) async fn trade_call(
        &self,
        shard: u32,
        command: TradeCommand,
    ) -> Retried<Result<TradeReply, TradeError>> {
        let call = ClientTradeCall {
            credential: self.credential,
            command,
        };
        self.transport
            .call_with_retry(trade_addr(shard), call, RetryPolicy::default())
            .await
    }

    /// Asks the payment service until it gives a definite answer or the attempts run out.
    pub(crate) async fn ask_payment(&self, command: &PaymentCommand, key: &str) -> (Outcome, u32) {
        // The first attempt goes to the key's owner; retries go round the other nodes, which
        // forward to the owner (any node serves any request).
        let nodes = self.ctx.config.payment_nodes;
        let owner = payment_node_for(key, nodes);
        let mut backoff = PAYMENT_BACKOFF;
        for attempt in 1..=PAYMENT_ATTEMPTS_MAX {
            let call = ClientPaymentCall {
                credential: self.credential,
                command: command.clone(),
            };
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

    /// Asks the payment service (a pay or a refund of `trade`, or a deposit or withdrawal),
    /// records it, and sometimes asks it again.
    async fn payment(
        &self,
        kind: OpKind,
        key: &str,
        amount: Option<Amount>,
        trade: Option<TradeId>,
        command: PaymentCommand,
    ) -> Outcome {
        let op = self.invoke(kind, key, amount, trade.map(|t| t.to_string()));
        let (outcome, attempts) = self.ask_payment(&command, key).await;
        self.complete(op, key, &outcome, attempts);
        let ask = Ask::Payment {
            key: key.to_string(),
            command,
        };
        self.maybe_re_ask(op, key, &outcome, &ask).await;
        outcome
    }

    /// The buyer `m.payer` pays trade `m.trade` under `key`.
    pub async fn pay(&self, key: &str, m: Movement) -> Outcome {
        let pay = PaymentCommand::Pay {
            trade: m.trade,
            key: key.to_string(),
            payer: m.payer,
            by_card: m.by_card,
        };
        let outcome = self
            .payment(OpKind::Pay, key, Some(m.amount), Some(m.trade), pay)
            .await;
        let balances = &self.ctx.balances;
        if !m.by_card && matches!(outcome, Outcome::Ok | Outcome::Unknown) {
            balances.add(m.payer, -fen(m.amount));
        }
        if outcome == Outcome::Ok {
            balances.add(m.merchant, fen(m.amount));
        }
        outcome
    }

    /// Refunds `m.amount` of trade `m.trade` under `out_request_no`, its merchant's side
    /// reserved in the estimate while it is asked.
    pub async fn refund(&self, out_request_no: &str, m: Movement) -> Outcome {
        let balances = &self.ctx.balances;
        balances.add(m.merchant, -fen(m.amount));
        let cmd = PaymentCommand::Refund {
            trade: m.trade,
            out_request_no: out_request_no.to_string(),
            amount: m.amount,
        };
        let trade = Some(m.trade);
        let outcome = self
            .payment(OpKind::Refund, out_request_no, Some(m.amount), trade, cmd)
            .await;
        match outcome {
            // A card-paid trade's refund goes on to the card.
            Outcome::Ok if m.by_card => {}
            Outcome::Ok => balances.add(m.payer, fen(m.amount)),
            Outcome::Fail(_) => balances.add(m.merchant, fen(m.amount)),
            Outcome::Unknown => {}
        }
        outcome
    }
}

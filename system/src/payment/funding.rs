//! The funding path: the only way money enters or leaves the platform. Without banks, a
//! deposit posts Dr world / Cr the client's account, a withdrawal the reverse, both on the
//! account's shard and as the platform: clients cannot post to a world account. Idempotent by
//! the client's key, which is the ledger request's id, so a retry reaches the ledger's own
//! record of the first answer and a key reused with another amount is refused there. With
//! banks, the clearing gateway carries it out through a channel order, idempotent by the same
//! key.

use super::types::{PaymentCommand, PaymentError, PaymentReceipt};
use crate::clearing::{ClearingCall, FundReply, FundRequest, OrderKind};
use crate::ids::{AccountId, RequestId, Xid};
use crate::ledger::{LedgerCall, LedgerCommand, Leg};
use crate::probes::{names, Probes};
use crate::refusal::Refusal;
use crate::topology::Topology;
use crate::transport::{RetryPolicy, Transport};

/// How a deposit or withdrawal asks the ledger: a few times; no answer is no outcome yet
/// (the client asks again under the same key).
const POST_POLICY: RetryPolicy = RetryPolicy {
    attempts_max: 4,
    timeout: std::time::Duration::from_millis(300),
    backoff: std::time::Duration::from_millis(20),
    backoff_max: std::time::Duration::from_millis(200),
};

/// How long a payment node waits for the gateway (which waits up to 0.6 s for the bank).
const CLEARING_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(900);

/// Carries out a deposit or a withdrawal already authorized for client `client`, the owner
/// of its account: through the clearing gateway if the platform has one, else against the
/// world account.
pub async fn carry_out(
    command: &PaymentCommand,
    client: u32,
    transport: &Transport,
    topology: &Topology,
    probes: &Probes,
) -> Result<PaymentReceipt, PaymentError> {
    let (kind, account, key, amount) = match command {
        PaymentCommand::Deposit {
            account,
            key,
            amount,
        } => (OrderKind::Deposit, account, key, amount),
        PaymentCommand::Withdraw {
            account,
            key,
            amount,
        } => (OrderKind::Withdrawal, account, key, amount),
        other => unreachable!("{other:?} is not a funding command"),
    };
    let request = FundRequest {
        client,
        key: key.to_string(),
        kind,
        account: *account,
        amount: *amount,
    };
    let done = match topology.clearing {
        Some(gateway) => through_clearing(&request, transport, gateway).await?,
        None => against_the_world(&request, transport, topology).await?,
    };
    probes.hit(match done {
        OrderKind::Deposit => names::PAYMENT_DEPOSITED,
        _ => names::PAYMENT_WITHDRAWN,
    });
    Ok(PaymentReceipt {
        xid: Xid::new(compact_str::format_compact!("fund-{key}")),
    })
}

/// Posts Dr world / Cr account (a deposit) or the reverse on the account's shard.
async fn against_the_world(
    request: &FundRequest,
    transport: &Transport,
    topology: &Topology,
) -> Result<OrderKind, PaymentError> {
    let (account, amount) = (request.account, request.amount);
    let shard = account.shard(topology.ledger_shards());
    let world = AccountId::world(shard);
    let legs = match request.kind {
        OrderKind::Deposit => vec![Leg::debit(world, amount), Leg::credit(account, amount)],
        _ => vec![Leg::debit(account, amount), Leg::credit(world, amount)],
    };
    let post = LedgerCommand::Post {
        request: RequestId::new(request.key.as_str()),
        legs,
    };
    let retried = transport
        .call_with_retry(topology.ledger(shard), LedgerCall(post), POST_POLICY)
        .await;
    match retried.result {
        Ok(Ok(_)) => Ok(request.kind),
        Ok(Err(refusal)) => Err(PaymentError::Refused(Refusal::new(
            refusal.code(),
            refusal.to_string(),
        ))),
        Err(_) => Err(PaymentError::InProgress),
    }
}

/// Asks the clearing gateway: done, refused, or not yet (the client asks again).
async fn through_clearing(
    request: &FundRequest,
    transport: &Transport,
    gateway: std::net::SocketAddr,
) -> Result<OrderKind, PaymentError> {
    let call = ClearingCall(request.clone());
    match transport.call(gateway, call, CLEARING_TIMEOUT).await {
        Ok(Ok(FundReply::Done)) => Ok(request.kind),
        Ok(Err(refusal)) => Err(PaymentError::Refused(refusal)),
        Ok(Ok(FundReply::Pending)) | Err(_) => Err(PaymentError::InProgress),
    }
}

/// F3, a payment by card: deposits the trade's `amount` from `payer`'s card under the
/// platform key of the payment's `key`, so that the payment then goes on from the balance as
/// any other. Done once per key: a repeat finds the gateway's order and its outcome.
pub async fn deposit_for_card_payment(
    key: &str,
    client: u32,
    payer: AccountId,
    amount: crate::money::Amount,
    transport: &Transport,
    topology: &Topology,
) -> Result<(), PaymentError> {
    let Some(gateway) = topology.clearing else {
        let detail = "the platform clears through no bank, so it takes no card";
        return Err(PaymentError::Refused(Refusal::new(
            crate::refusal::RefusalCode::Invalid,
            detail,
        )));
    };
    let order = (key, "card", OrderKind::Deposit);
    platform_order(order, client, payer, amount, transport, gateway).await
}

/// F4 by card: pays a refund of a card-paid trade out of the payer's balance to the payer's
/// card (充退), under the refund's platform key. `Ok` once the money is held on its way out
/// (the gateway carries it to the bank and back to the balance if the bank refuses).
pub async fn refund_to_card(
    out_request_no: &str,
    client: u32,
    payer: AccountId,
    amount: crate::money::Amount,
    transport: &Transport,
    gateway: std::net::SocketAddr,
) -> Result<(), PaymentError> {
    let order = (out_request_no, "tocard", OrderKind::RefundToCard);
    platform_order(order, client, payer, amount, transport, gateway).await
}

/// An order the platform opens itself for client request `of` (`clr:<of>.<what>`), of `kind`,
/// on `account`.
async fn platform_order(
    (of, what, kind): (&str, &str, OrderKind),
    client: u32,
    account: AccountId,
    amount: crate::money::Amount,
    transport: &Transport,
    gateway: std::net::SocketAddr,
) -> Result<(), PaymentError> {
    let request = FundRequest {
        client,
        key: crate::clearing::platform_key(of, what),
        kind,
        account,
        amount,
    };
    through_clearing(&request, transport, gateway)
        .await
        .map(|_| ())
}

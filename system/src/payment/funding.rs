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
        OrderKind::Withdrawal => names::PAYMENT_WITHDRAWN,
    });
    Ok(PaymentReceipt {
        xid: Xid::new(format!("fund-{key}")),
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
        OrderKind::Withdrawal => vec![Leg::debit(account, amount), Leg::credit(world, amount)],
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

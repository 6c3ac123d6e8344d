//! The funding path: the only way money enters or leaves the platform (until clearing through
//! banks exists). A deposit posts Dr world / Cr the client's account, a withdrawal the reverse,
//! both on the account's shard and as the platform: clients cannot post to a world account.
//! Idempotent by the client's key, which is the ledger request's id, so a retry reaches the
//! ledger's own record of the first answer and a key reused with another amount is refused
//! there.

use super::types::{PaymentCommand, PaymentError, PaymentReceipt};
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

/// Carries out a deposit or a withdrawal already authorized for its account's owner.
pub async fn carry_out(
    command: &PaymentCommand,
    transport: &Transport,
    topology: &Topology,
    probes: &Probes,
) -> Result<PaymentReceipt, PaymentError> {
    let shards = topology.ledger_shards();
    let (account, key, amount, deposit) = match command {
        PaymentCommand::Deposit {
            account,
            key,
            amount,
        } => (*account, key, *amount, true),
        PaymentCommand::Withdraw {
            account,
            key,
            amount,
        } => (*account, key, *amount, false),
        other => unreachable!("{other:?} is not a funding command"),
    };
    let shard = account.shard(shards);
    let world = AccountId::world(shard);
    let legs = if deposit {
        vec![Leg::debit(world, amount), Leg::credit(account, amount)]
    } else {
        vec![Leg::debit(account, amount), Leg::credit(world, amount)]
    };
    let post = LedgerCommand::Post {
        request: RequestId::new(key.as_str()),
        legs,
    };
    let retried = transport
        .call_with_retry(topology.ledger(shard), LedgerCall(post), POST_POLICY)
        .await;
    match retried.result {
        Ok(Ok(_)) => {
            probes.hit(if deposit {
                names::PAYMENT_DEPOSITED
            } else {
                names::PAYMENT_WITHDRAWN
            });
            Ok(PaymentReceipt {
                xid: Xid::new(format!("fund-{key}")),
            })
        }
        Ok(Err(refusal)) => Err(PaymentError::Refused(Refusal::new(
            refusal.code(),
            refusal.to_string(),
        ))),
        Err(_) => Err(PaymentError::InProgress),
    }
}

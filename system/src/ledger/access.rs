//! What a client may ask a ledger shard directly, decided before anything is read or written.
//!
//! Clients open their own accounts (as the subject the [`Directory`] registered) and post
//! vouchers that debit only accounts they own, touch no platform account, and use a request id
//! in their own namespace. Everything else (freezes, TCC branch steps, any posting to a world or
//! transit account) is the platform's: asked over [`super::LedgerCall`] by its services.

use super::types::{LedgerCommand, LedgerError, Side};
use crate::auth::{key_is_clients, Directory, Principal};

fn refuse(client: u32, step: String) -> Result<(), LedgerError> {
    Err(LedgerError::Unauthorized {
        step,
        caller: Principal::Client(client).to_string(),
    })
}

/// Whether client `client` may ask `command`.
pub fn authorize_client(
    dir: &Directory,
    client: u32,
    command: &LedgerCommand,
) -> Result<(), LedgerError> {
    match command {
        LedgerCommand::OpenAccount { account, subject } => {
            if dir.owner(*account) == Some((client, *subject)) {
                Ok(())
            } else {
                refuse(client, format!("open {account} as {subject:?}"))
            }
        }
        LedgerCommand::Post { request, legs } => {
            if !key_is_clients(client, request.as_str()) {
                return refuse(client, format!("post under request id {request}"));
            }
            for leg in legs {
                if dir.is_system(leg.account) {
                    return refuse(client, format!("post to platform account {}", leg.account));
                }
                if leg.side == Side::Debit && !dir.owns(client, leg.account) {
                    return refuse(client, format!("debit {}", leg.account));
                }
            }
            Ok(())
        }
        other => refuse(client, format!("ask the platform's step {}", other.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AccountId, RequestId, ShardId};
    use crate::ledger::{Leg, Subject};
    use crate::money::Amount;

    fn post(request: &str, from: AccountId, to: AccountId) -> LedgerCommand {
        let amount = Amount::from_fen(100).unwrap();
        LedgerCommand::Post {
            request: RequestId::new(request),
            legs: vec![Leg::debit(from, amount), Leg::credit(to, amount)],
        }
    }

    #[test]
    fn a_client_moves_only_its_own_money() {
        let dir = Directory::new(2);
        let (mine, theirs) = (dir.user_accounts(1), dir.user_accounts(2));
        let ok = |c: &LedgerCommand| authorize_client(&dir, 1, c);
        assert_eq!(ok(&post("c1-t1", mine[0], mine[2])), Ok(()));
        // A payment to someone else is a credit to them: allowed.
        assert_eq!(ok(&post("c1-t2", mine[0], theirs[0])), Ok(()));
        let code = |c: &LedgerCommand| ok(c).unwrap_err().code().name();
        assert_eq!(code(&post("c1-t3", theirs[0], mine[0])), "unauthorized");
        assert_eq!(code(&post("c2-t3", mine[0], mine[2])), "unauthorized");
        let world = AccountId::world(ShardId(0));
        assert_eq!(code(&post("c1-t4", world, mine[0])), "unauthorized");
        assert_eq!(code(&post("c1-t5", mine[0], world)), "unauthorized");
    }

    #[test]
    fn a_client_opens_only_its_own_accounts_as_registered() {
        let dir = Directory::new(2);
        let open = |account, subject| LedgerCommand::OpenAccount { account, subject };
        let m = dir.merchant_account(1);
        assert_eq!(
            authorize_client(&dir, 1, &open(m, Subject::Merchant)),
            Ok(())
        );
        assert!(authorize_client(&dir, 1, &open(m, Subject::World)).is_err());
        assert!(authorize_client(&dir, 2, &open(m, Subject::Merchant)).is_err());
        let world = AccountId::world(ShardId(1));
        assert!(authorize_client(&dir, 1, &open(world, Subject::World)).is_err());
        let unfreeze = LedgerCommand::Unfreeze { key: "c1-x".into() };
        assert!(authorize_client(&dir, 1, &unfreeze).is_err());
    }
}

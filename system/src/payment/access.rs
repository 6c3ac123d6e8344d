//! What a client may ask the payment service, decided before any order is written: keys in its
//! own namespace, payments only from its own user accounts, deposits and withdrawals only on
//! its own accounts. A refund's trade must be the caller's too; that needs the trade's
//! merchant, which the node reads first ([`super::node`]).

use super::types::PaymentCommand;
use crate::auth::{key_is_clients, Directory, Principal};
use crate::bugs::{Bug, Bugs};
use crate::ledger::Subject;
use crate::refusal::{Refusal, RefusalCode};

fn refuse(client: u32, step: String) -> Result<(), Refusal> {
    let detail = format!("{} may not {step}", Principal::Client(client));
    Err(Refusal::new(RefusalCode::Unauthorized, detail))
}

/// Whether client `client` may ask `command` (the refund's trade aside).
pub fn authorize(
    dir: &Directory,
    client: u32,
    command: &PaymentCommand,
    bugs: Bugs,
) -> Result<(), Refusal> {
    let key = command.key();
    if !key_is_clients(client, key) {
        return refuse(client, format!("use key {key}"));
    }
    match command {
        PaymentCommand::Pay { payer, .. } => {
            // The planted bug takes the body's word for whose money it is.
            let mine = dir.owner(*payer) == Some((client, Subject::User));
            if mine || bugs.is(Bug::PayerFromBody) {
                Ok(())
            } else {
                refuse(client, format!("pay from {payer}"))
            }
        }
        PaymentCommand::Deposit { account, .. } | PaymentCommand::Withdraw { account, .. } => {
            if dir.owns(client, *account) {
                Ok(())
            } else {
                refuse(client, format!("move money in or out of {account}"))
            }
        }
        PaymentCommand::Refund { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trade::TradeId;

    #[test]
    fn a_client_pays_only_from_its_own_user_accounts_under_its_own_keys() {
        let dir = Directory::new(2);
        let trade = TradeId { shard: 0, seq: 1 };
        let pay = |key: &str, payer| PaymentCommand::Pay {
            trade,
            key: key.into(),
            payer,
            by_card: false,
        };
        let none = Bugs::none();
        let mine = dir.user_accounts(1)[0];
        let theirs = dir.user_accounts(2)[0];
        assert_eq!(authorize(&dir, 1, &pay("c1-p1", mine), none), Ok(()));
        let code = |c: &PaymentCommand, bugs| authorize(&dir, 1, c, bugs).unwrap_err().code;
        assert_eq!(code(&pay("c1-p2", theirs), none), RefusalCode::Unauthorized);
        assert_eq!(code(&pay("c2-p2", mine), none), RefusalCode::Unauthorized);
        // Its own merchant account is not a purse to pay from.
        let merchant = dir.merchant_account(1);
        assert_eq!(
            code(&pay("c1-p3", merchant), none),
            RefusalCode::Unauthorized
        );
        let bug = Bugs::planted(Bug::PayerFromBody);
        assert_eq!(authorize(&dir, 1, &pay("c1-p2", theirs), bug), Ok(()));
    }
}

//! The ledger shell in the simulator: a TCC branch step is the business-activity manager's.
//! A client that sends one (a Cancel that would leave an empty-rollback fence, a Confirm that
//! would post) gets a typed refusal and the shard writes nothing; the same step from the
//! payment node is taken. A client with its credential opens its own accounts and moves only
//! its own money. Every test runs on fixed seeds.

use paylab_system::auth::{Authority, Directory};
use paylab_system::disk::Disk;
use paylab_system::ids::{AccountId, RequestId};
use paylab_system::ids::{ShardId, Xid};
use paylab_system::ledger::node::LOG_FILE;
use paylab_system::ledger::{
    BranchKey, ClientLedgerCall, LedgerCall, LedgerCommand, LedgerError, LedgerReply, Leg, Subject,
};
use paylab_system::money::Amount;
use paylab_system::refusal::RefusalCode;

use std::time::Duration;

mod common;
use common::{addr, on_fixed_seeds};

/// Calls the ledger from a caller node of its own at `from`.
async fn call_from(from: &str, command: LedgerCommand) -> Result<LedgerReply, LedgerError> {
    common::call_from(from, addr(LEDGER), LedgerCall(command)).await
}

const LEDGER: &str = "10.7.0.1:9000";
const PAYMENT: &str = "10.7.0.3:9002";

fn start_ledger(disk: &Disk) {
    common::start_ledger(LEDGER, PAYMENT, disk);
}

#[test]
fn a_client_cannot_take_a_branch_step() {
    on_fixed_seeds(|| {
        Box::pin(async move {
            let disk = Disk::new();
            start_ledger(&disk);
            madsim::time::sleep(Duration::from_millis(50)).await;
            let branch = BranchKey {
                xid: Xid::new("x-forged"),
                branch: 0,
            };
            let cancel = LedgerCommand::TccCancel {
                branch: branch.clone(),
            };
            let confirm = LedgerCommand::TccConfirm { branch };
            let forged = [
                ("10.7.0.9:9009", cancel.clone()),
                ("10.7.0.10:9009", confirm),
            ];
            for (from, step) in forged {
                let e = call_from(from, step).await.expect_err("refused");
                assert_eq!(e.code(), RefusalCode::Unauthorized, "{e}");
            }
            assert_eq!(
                disk.lengths(LOG_FILE),
                (0, 0),
                "a refused step writes nothing"
            );
            let taken = call_from(PAYMENT, cancel).await;
            assert_eq!(taken, Ok(LedgerReply::Cancelled), "the payment node's step");
            assert!(
                disk.lengths(LOG_FILE).1 > 0,
                "its empty rollback is recorded"
            );
        })
    });
}

const CLIENT: &str = "10.7.0.2:9001";

fn post(request: &str, from: AccountId, to: AccountId, fen: i64) -> LedgerCommand {
    let amount = Amount::from_fen(fen).expect("an amount");
    LedgerCommand::Post {
        request: RequestId::new(request),
        legs: vec![Leg::debit(from, amount), Leg::credit(to, amount)],
    }
}

/// Client 0 at [`CLIENT`] sends each command in turn with its credential and reports, for
/// each, the answer's refusal code (`invalid` standing for "accepted") and whether the shard's
/// log grew.
async fn client_calls(disk: Disk, commands: Vec<LedgerCommand>) -> Vec<(RefusalCode, bool)> {
    let credential = Authority::for_run(0).issue(0, addr(CLIENT));
    let calls = commands
        .into_iter()
        .map(|command| ClientLedgerCall {
            credential,
            command,
        })
        .collect();
    let lengths = common::calls_from(CLIENT, addr(LEDGER), calls, move || {
        disk.lengths(LOG_FILE).1
    })
    .await;
    let mut before = 0;
    lengths
        .into_iter()
        .map(|(answer, len)| {
            let grew = len > before;
            before = len;
            (
                answer.map_or_else(|e| e.code(), |_| RefusalCode::Invalid),
                grew,
            )
        })
        .collect()
}

/// A client opens its own accounts only as registered, posts only vouchers that debit its
/// own accounts and touch no platform account, only under its own request ids, and may not
/// reuse a request id with other legs; every refusal writes nothing.
#[test]
fn a_client_moves_only_its_own_money() {
    on_fixed_seeds(|| {
        Box::pin(async move {
            let disk = Disk::new();
            start_ledger(&disk);
            madsim::time::sleep(Duration::from_millis(50)).await;
            let dir = Directory::new(1);
            let (mine, theirs) = (dir.user_accounts(0), dir.user_accounts(1)[0]);
            let world = AccountId::world(ShardId(0));
            // The funding path (here: the payment node) funds client 0's first account.
            let open = |account| LedgerCommand::OpenAccount {
                account,
                subject: Subject::User,
            };
            let fund = post("c0-fund", world, mine[0], 10_000);
            let commands = vec![
                open(mine[0]),
                open(mine[1]),
                LedgerCommand::OpenAccount {
                    account: world,
                    subject: Subject::World,
                },
                open(theirs),
                fund.clone(),
                post("c0-t1", theirs, mine[0], 100),
                post("c1-t1", mine[0], mine[1], 100),
            ];
            let answers = client_calls(disk.clone(), commands).await;
            let accepted = RefusalCode::Invalid;
            let expected = [
                (accepted, true),
                (accepted, true),
                (RefusalCode::Unauthorized, false),
                (RefusalCode::Unauthorized, false),
                (RefusalCode::Unauthorized, false),
                (RefusalCode::Unauthorized, false),
                (RefusalCode::Unauthorized, false),
            ];
            assert_eq!(answers, expected);
            let funded = call_from(PAYMENT, fund).await;
            assert!(
                matches!(funded, Ok(LedgerReply::Posted { .. })),
                "{funded:?}"
            );
            let transfer = call_from("10.7.0.4:9004", post("c0-t2", mine[0], mine[1], 100)).await;
            let e = transfer.expect_err("a client's post over the internal call");
            assert_eq!(e.code(), RefusalCode::Unauthorized);
        })
    });
}

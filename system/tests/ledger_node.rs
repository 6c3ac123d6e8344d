//! The ledger shell in the simulator: a TCC branch step is the business-activity manager's.
//! A client that sends one (a Cancel that would leave an empty-rollback fence, a Confirm that
//! would post) gets a typed refusal and the shard writes nothing; the same step from the
//! payment node is taken. Every test runs on fixed seeds.

use madsim::runtime::Handle;
use paylab_system::disk::Disk;
use paylab_system::ids::{ShardId, Xid};
use paylab_system::ledger::node::LOG_FILE;
use paylab_system::ledger::{
    BranchKey, LedgerCall, LedgerCommand, LedgerConfig, LedgerError, LedgerNode, LedgerReply,
};
use paylab_system::refusal::RefusalCode;
use std::time::Duration;

mod common;
use common::{addr, node_env, on_fixed_seeds};

/// Calls the ledger from a caller node of its own at `from`.
async fn call_from(from: &str, command: LedgerCommand) -> Result<LedgerReply, LedgerError> {
    common::call_from(from, addr(LEDGER), LedgerCall(command)).await
}

const LEDGER: &str = "10.7.0.1:9000";
const PAYMENT: &str = "10.7.0.3:9002";

fn start_ledger(disk: &Disk) {
    let env = node_env("ledger/0", addr(LEDGER), disk);
    let config = LedgerConfig {
        shard: ShardId(0),
        shards: 1,
        fsync_latency: Duration::from_millis(1),
        step_callers: vec![addr(PAYMENT)],
    };
    Handle::current()
        .create_node()
        .name("ledger")
        .ip(env.addr.ip())
        .init(move || {
            let (env, config) = (env.clone(), config.clone());
            async move {
                let _node = LedgerNode::start(&env, config)
                    .await
                    .expect("ledger starts");
                std::future::pending::<()>().await
            }
        })
        .build();
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

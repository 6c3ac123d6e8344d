//! The saga in the simulator against a real ledger node: a step refused after an earlier one
//! was done makes the saga compensate it (the money comes back; the outcome is the refusal),
//! and a saga whose steps all go through commits. The workload never reaches compensation
//! (debits come first, and credits are not refused), so this test is what proves that path.

use madsim::runtime::Handle;
use paylab_system::disk::Disk;
use paylab_system::ids::{AccountId, RequestId, ShardId, Xid};
use paylab_system::ledger::{LedgerCall, LedgerCommand, LedgerReply, Leg, Subject};
use paylab_system::money::Amount;
use paylab_system::probes::names;
use paylab_system::refusal::RefusalCode;
use paylab_system::saga::SagaCoordinator;
use paylab_system::strategy::{Movement, MovementOutcome};
use paylab_system::topology::Topology;
use paylab_system::transport::Transport;
use std::time::Duration;

mod common;
use common::{addr, node_env, on_fixed_seeds};

const LEDGER: &str = "10.8.0.1:9000";
const PAYMENT: &str = "10.8.0.3:9002";

fn start_ledger(disk: &Disk) {
    common::start_ledger(LEDGER, PAYMENT, disk);
}

fn yuan(fen: i64) -> Amount {
    Amount::from_fen(fen).expect("an amount")
}

/// On the payment node: opens and funds the payer, runs two sagas (one to an account that
/// does not exist, one to a real one), and takes the payer's whole balance out after each.
async fn on_payment_node(payment_disk: Disk) -> (MovementOutcome, bool, MovementOutcome, u64) {
    let env = node_env("payment/0", addr(PAYMENT), &payment_disk);
    let probes = env.probes.clone();
    let t = Transport::for_node(&env).await.expect("bind");
    let (payer, payee, absent) = (AccountId(8), AccountId(12), AccountId(16));
    let ledger = addr(LEDGER);
    let ask = |command| {
        let t = t.clone();
        async move {
            t.call(ledger, LedgerCall(command), Duration::from_secs(5))
                .await
                .expect("answered")
        }
    };
    for (account, subject) in [(payer, Subject::User), (payee, Subject::Merchant)] {
        ask(LedgerCommand::OpenAccount { account, subject })
            .await
            .expect("opened");
    }
    let fund = LedgerCommand::Post {
        request: RequestId::new("fund"),
        legs: vec![
            Leg::debit(AccountId::world(ShardId(0)), yuan(1_000)),
            Leg::credit(payer, yuan(1_000)),
        ],
    };
    ask(fund).await.expect("funded");
    let topology = Topology {
        ledgers: vec![ledger],
        trades: Vec::new(),
        payments: vec![addr(PAYMENT)],
        clearing: None,
    };
    let saga = SagaCoordinator::open(&env, t.clone(), topology, Duration::from_millis(1));
    let movement = |xid: &str, to| Movement {
        xid: Xid::new(xid),
        legs: vec![Leg::debit(payer, yuan(400)), Leg::credit(to, yuan(400))],
    };
    let refused = saga.execute(movement("x-absent", absent)).await;
    let all_back = LedgerCommand::Post {
        request: RequestId::new("check-1"),
        legs: vec![
            Leg::debit(payer, yuan(1_000)),
            Leg::credit(payee, yuan(1_000)),
        ],
    };
    let back = matches!(ask(all_back).await, Ok(LedgerReply::Posted { .. }));
    let back_again = Movement {
        xid: Xid::new("x-real"),
        legs: vec![Leg::debit(payee, yuan(400)), Leg::credit(payer, yuan(400))],
    };
    let ok = saga.execute(back_again).await;
    (
        refused,
        back,
        ok,
        probes
            .snapshot()
            .get(names::SAGA_COMPENSATED)
            .copied()
            .unwrap_or(0),
    )
}

#[test]
fn a_refused_step_is_compensated_and_the_money_comes_back() {
    on_fixed_seeds(|| {
        Box::pin(async move {
            start_ledger(&Disk::new());
            madsim::time::sleep(Duration::from_millis(50)).await;
            let node = Handle::current()
                .create_node()
                .name("payment")
                .ip(addr(PAYMENT).ip())
                .build();
            let (refused, back, ok, compensated) = node
                .spawn(on_payment_node(Disk::new()))
                .await
                .expect("the node runs");
            match refused {
                MovementOutcome::Aborted(r) => {
                    assert_eq!(r.code, RefusalCode::UnknownAccount, "{r:?}")
                }
                other => panic!("the credit to an absent account is refused: {other:?}"),
            }
            assert!(
                back,
                "the compensated debit came back: the whole balance could move"
            );
            assert_eq!(compensated, 1);
            assert_eq!(
                ok,
                MovementOutcome::Committed,
                "the payee now has the money to pay back"
            );
        })
    });
}

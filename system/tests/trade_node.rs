//! The trade node shell in the simulator: nothing is acknowledged before it is durable, a
//! repeat included. A repeated command is answered from the state its first sending created;
//! while that first record's fsync is still in flight, the repeat must wait for it, or a crash
//! right after loses a trade whose creation a client holds an acknowledgement of. Every test
//! runs on fixed seeds.

use madsim::runtime::Handle;
use paylab_system::auth::{Authority, Credential, Directory};
use paylab_system::disk::Disk;
use paylab_system::ids::{AccountId, IdemKey, TradeShardId, Xid};
use paylab_system::money::Amount;
use paylab_system::probes::Probes;
use paylab_system::refusal::RefusalCode;
use paylab_system::trade::node::LOG_FILE;
use paylab_system::trade::{
    ClientTradeCall, TradeCall, TradeCommand, TradeConfig, TradeNode, TradeReply,
};
use paylab_system::transport::{NetFaults, Rpc, Transport};
use std::time::Duration;

mod common;
use common::{addr, node_env, on_fixed_seeds};

/// Calls the trade node from a caller node of its own at `from`.
async fn call_from(from: &str, call: TradeCall) -> <TradeCall as Rpc>::Response {
    common::call_from(from, addr(TRADE), call).await
}

const TRADE: &str = "10.6.0.1:9000";
const CLIENT: &str = "10.6.0.2:9001";
/// The one payment node the trade node takes its internal steps from.
const PAYMENT: &str = "10.6.0.3:9002";
/// Long enough that a repeat sent just after the first command lands inside its fsync.
const FSYNC: Duration = Duration::from_millis(200);

fn start_trade(disk: &Disk) {
    let env = node_env("trade/0", addr(TRADE), disk);
    let config = TradeConfig {
        shard: TradeShardId(0),
        fsync_latency: FSYNC,
        close_after_ms: 3_600_000,
        sweep_interval: Duration::from_secs(60),
        messages: None,
        step_callers: vec![addr(PAYMENT)],
        query_callers: Vec::new(),
        directory: Directory::new(1),
    };
    Handle::current()
        .create_node()
        .name("trade")
        .ip(env.addr.ip())
        .init(move || {
            let (env, config) = (env.clone(), config.clone());
            async move {
                let _node = TradeNode::start(&env, config).await.expect("trade starts");
                std::future::pending::<()>().await
            }
        })
        .build();
}

/// The client at [`CLIENT`]: client 0, with the credential the platform issued it there.
fn credential() -> Credential {
    Authority::for_run(0).issue(0, addr(CLIENT))
}

fn create_for(merchant: AccountId) -> ClientTradeCall {
    ClientTradeCall {
        credential: credential(),
        command: TradeCommand::Create {
            merchant,
            out_trade_no: "order-1".to_string(),
            amount: Amount::from_fen(12_345).expect("an amount"),
        },
    }
}

/// Client 0 creates a trade of its own merchant account.
fn create() -> ClientTradeCall {
    create_for(Directory::new(1).merchant_account(0))
}

/// A duplicate Create sent while the first one's record is being fsynced is answered only
/// once that record is durable: at the moment the repeat's answer arrives, the log has no
/// unsynced bytes left.
#[test]
fn a_repeat_is_not_acknowledged_before_the_record_it_repeats_is_durable() {
    on_fixed_seeds(|| {
        Box::pin(async move {
            let disk = Disk::new();
            start_trade(&disk);
            madsim::time::sleep(Duration::from_millis(50)).await;
            let client = Handle::current()
                .create_node()
                .name("client")
                .ip(addr(CLIENT).ip())
                .build();
            let disk2 = disk.clone();
            client
                .spawn(async move {
                    let t = Transport::bind(
                        addr(CLIENT),
                        "client/0",
                        0,
                        NetFaults::new(),
                        Probes::new(),
                    )
                    .await
                    .expect("bind");
                    let first = {
                        let t = t.clone();
                        madsim::task::spawn(async move {
                            t.call(addr(TRADE), create(), Duration::from_secs(5)).await
                        })
                    };
                    madsim::time::sleep(Duration::from_millis(20)).await;
                    let (durable, written) = disk2.lengths(LOG_FILE);
                    assert!(durable < written, "the first record's fsync is in flight");
                    let repeat = t.call(addr(TRADE), create(), Duration::from_secs(5)).await;
                    let (durable, written) = disk2.lengths(LOG_FILE);
                    assert_eq!(
                        durable, written,
                        "the repeat was acknowledged with the record it repeats not yet durable"
                    );
                    let first = first.await.expect("the first call finishes");
                    assert_eq!(
                        repeat.expect("the repeat is answered"),
                        first.expect("the first is answered"),
                        "both sendings get the same answer"
                    );
                })
                .await
                .expect("the client finishes");
        })
    });
}

/// Begin and end a pay are the payment service's steps: asked by a client they are refused
/// (typed `unauthorized`), nothing is written, and the same steps from the payment node work.
#[test]
fn a_client_cannot_take_a_payment_nodes_steps() {
    on_fixed_seeds(|| {
        Box::pin(async move {
            let disk = Disk::new();
            start_trade(&disk);
            madsim::time::sleep(Duration::from_millis(50)).await;
            let created = common::call_from(CLIENT, addr(TRADE), create()).await;
            let Ok(TradeReply::Created { trade, .. }) = created else {
                panic!("the client creates its trade");
            };
            let written = disk.lengths(LOG_FILE).1;
            let (key, xid) = (IdemKey::new("pay-1"), Xid::new("x-1"));
            let end = TradeCall(TradeCommand::EndPay {
                trade,
                key: key.clone(),
                xid: xid.clone(),
                payer: AccountId(2_002),
                outcome: Ok(()),
            });
            let begin = TradeCall(TradeCommand::BeginPay {
                trade,
                key,
                xid,
                payer: AccountId(2_002),
                by_card: false,
            });
            // Each caller is a node of its own (madsim gives one IP to one node).
            for (from, forged) in [("10.6.0.9:9009", end), ("10.6.0.10:9009", begin.clone())] {
                let refused = call_from(from, forged).await;
                let e = refused.expect_err("a client's internal step is refused");
                assert_eq!(e.code(), RefusalCode::Unauthorized, "{e}");
            }
            assert_eq!(
                disk.lengths(LOG_FILE).1,
                written,
                "a refused step writes nothing"
            );
            let begun = call_from(PAYMENT, begin).await;
            assert!(
                matches!(begun, Ok(TradeReply::PayBegun { .. })),
                "{begun:?}"
            );
            assert!(
                disk.lengths(LOG_FILE).1 > written,
                "the payment node's step is written"
            );
        })
    });
}

/// Calls the trade node from one caller node at [`CLIENT`] (client 0's address) with each of
/// `calls` in turn.
async fn calls_from_client(calls: Vec<ClientTradeCall>) -> Vec<<ClientTradeCall as Rpc>::Response> {
    let answers = common::calls_from(CLIENT, addr(TRADE), calls, || ()).await;
    answers.into_iter().map(|(answer, ())| answer).collect()
}

/// A client creates and reads only its own merchant's trades, and only with the credential
/// issued to it at its own address: a trade for another merchant, a read of another's trade, a
/// forged token and a credential replayed from another address are refused and write nothing.
#[test]
fn a_client_acts_only_for_its_own_merchant_and_with_its_own_credential() {
    on_fixed_seeds(|| {
        Box::pin(async move {
            let disk = Disk::new();
            start_trade(&disk);
            madsim::time::sleep(Duration::from_millis(50)).await;
            let forged = ClientTradeCall {
                credential: Credential {
                    token: credential().token ^ 1,
                    ..credential()
                },
                ..create()
            };
            // Client 0's own credential, replayed from another address (stolen).
            let e = common::call_from("10.6.0.11:9001", addr(TRADE), create()).await;
            assert_eq!(e.expect_err("stolen").code(), RefusalCode::Unauthenticated);
            let other = Directory::new(1).merchant_account(1);
            let answers = calls_from_client(vec![forged, create_for(other), create()]).await;
            assert_eq!(
                answers[0].clone().expect_err("forged").code(),
                RefusalCode::Unauthenticated
            );
            let code = answers[1]
                .clone()
                .expect_err("another merchant's trade")
                .code();
            assert_eq!(code, RefusalCode::Unauthorized);
            let Ok(TradeReply::Created { trade, .. }) = answers[2].clone() else {
                panic!(
                    "client 0 creates its own merchant's trade: {:?}",
                    answers[2]
                );
            };
            // Client 1 (at its own address, with its own credential) may not read it.
            let read = ClientTradeCall {
                credential: Authority::for_run(0).issue(1, addr("10.6.0.13:9001")),
                command: TradeCommand::Query { trade },
            };
            let e = common::call_from("10.6.0.13:9001", addr(TRADE), read).await;
            assert_eq!(e.expect_err("refused").code(), RefusalCode::Unauthorized);
        })
    });
}

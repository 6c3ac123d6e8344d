//! The trade node shell in the simulator: nothing is acknowledged before it is durable, a
//! repeat included. A repeated command is answered from the state its first sending created;
//! while that first record's fsync is still in flight, the repeat must wait for it, or a crash
//! right after loses a trade whose creation a client holds an acknowledgement of. Every test
//! runs on fixed seeds.

use madsim::runtime::Handle;
use paylab_system::disk::Disk;
use paylab_system::ids::{AccountId, IdemKey, TradeShardId, Xid};
use paylab_system::money::Amount;
use paylab_system::probes::Probes;
use paylab_system::refusal::RefusalCode;
use paylab_system::trade::node::LOG_FILE;
use paylab_system::trade::{TradeCall, TradeCommand, TradeConfig, TradeNode, TradeReply};
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

fn create() -> TradeCall {
    TradeCall(TradeCommand::Create {
        merchant: AccountId(1_001),
        out_trade_no: "order-1".to_string(),
        amount: Amount::from_fen(12_345).expect("an amount"),
    })
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
            let Ok(TradeReply::Created { trade, .. }) = call_from(CLIENT, create()).await else {
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

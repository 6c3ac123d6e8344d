//! The simulated merchant endpoint (the merchants' notify_url): it sometimes fails a callback,
//! sometimes answers too late, and otherwise acknowledges it, after asking the trade service's
//! query API for the trade's true status, as a careful merchant does before shipping.
//!
//! It is outside the platform: it keeps what it received in memory and is never crashed.

use super::types::MerchantNotifyCall;
use crate::ids::EventId;
use crate::node::NodeEnv;
use crate::topology::Topology;
use crate::trade::{TradeCall, TradeCommand, TradeId, TradeReply, TradeStatus};
use crate::transport::Transport;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The purpose of the endpoint's random stream: which callbacks fail or answer late.
const DRAW_STREAM: &str = "merchant-callbacks";

/// How long the endpoint waits for the trade query API.
const QUERY_TIMEOUT: Duration = Duration::from_millis(300);

/// How the endpoint misbehaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MerchantConfig {
    /// The chance a callback is answered with a failure.
    pub fail_rate: f64,
    /// The chance a callback is answered only after `slow_by` (the caller has given up).
    pub slow_rate: f64,
    pub slow_by: Duration,
}

/// One acknowledged callback, with the trade's status as the query API answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub event: EventId,
    pub trade: TradeId,
    pub notified: TradeStatus,
    pub queried: Option<TradeStatus>,
}

/// The running endpoint, as the harness holds it.
#[derive(Clone)]
pub struct MerchantEndpoint {
    received: Arc<Mutex<Vec<Callback>>>,
}

impl MerchantEndpoint {
    pub async fn start(
        env: &NodeEnv,
        config: MerchantConfig,
        topology: Topology,
    ) -> std::io::Result<MerchantEndpoint> {
        let transport = Transport::for_node(env).await?;
        let received: Arc<Mutex<Vec<Callback>>> = Arc::default();
        // The endpoint's own stream: its fail and slow draws never shift with other nodes'
        // randomness (it is never restarted, so one stream serves its whole life).
        let draws: Arc<Mutex<ChaCha8Rng>> = Arc::new(Mutex::new(env.rng(DRAW_STREAM)));
        {
            let (received, caller) = (received.clone(), transport.clone());
            transport.serve(move |call: MerchantNotifyCall| {
                let (received, caller, topology, draws) = (
                    received.clone(),
                    caller.clone(),
                    topology.clone(),
                    draws.clone(),
                );
                async move {
                    let (fail, slow) = {
                        let mut rng = draws.lock().unwrap_or_else(|p| p.into_inner());
                        (
                            rng.gen_bool(config.fail_rate),
                            rng.gen_bool(config.slow_rate),
                        )
                    };
                    if fail {
                        return Err("merchant busy".to_string());
                    }
                    if slow {
                        madsim::time::sleep(config.slow_by).await;
                    }
                    let query = TradeCall(TradeCommand::Query { trade: call.trade });
                    let answer = caller
                        .call(topology.trade(call.trade.shard), query, QUERY_TIMEOUT)
                        .await;
                    let queried = match answer {
                        Ok(Ok(TradeReply::Trade(trade))) => Some(trade.status),
                        _ => None,
                    };
                    received
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Callback {
                            event: call.event,
                            trade: call.trade,
                            notified: call.status,
                            queried,
                        });
                    Ok(())
                }
            });
        }
        Ok(MerchantEndpoint { received })
    }

    /// Every callback acknowledged so far, in arrival order.
    pub fn received(&self) -> Vec<Callback> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

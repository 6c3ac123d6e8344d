//! The trade node shell: serves [`TradeCall`]s durably, closes unpaid trades on a timer, and
//! rebuilds its core from the log on every start.

use super::core::{TradeCore, TradeDecision, TradeRecord};
use super::types::{TradeCall, TradeCommand};
use crate::bugs::Bug;
use crate::log::DurableLog;
use crate::node::NodeEnv;
use crate::probes::names;
use crate::transport::Transport;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The log file of a trade shard on its node's disk.
pub const LOG_FILE: &str = "trade.log";

/// How long the planted check-then-act bug waits between its check and its write.
const CHECK_THEN_ACT_GAP: Duration = Duration::from_millis(5);

/// How a trade node is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeConfig {
    pub shard: u32,
    pub fsync_latency: Duration,
    /// A trade still unpaid this long after creation (by the node's clock) is closed.
    pub close_after_ms: u64,
    /// How often the node looks for trades to close.
    pub sweep_interval: Duration,
}

/// A running trade node, as the harness holds it.
#[derive(Clone)]
pub struct TradeNode {
    core: Arc<Mutex<TradeCore>>,
}

fn lock(core: &Mutex<TradeCore>) -> MutexGuard<'_, TradeCore> {
    core.lock().unwrap_or_else(|p| p.into_inner())
}

impl TradeNode {
    /// Recovers the shard from its log, starts serving and starts the closing timer.
    pub async fn start(env: &NodeEnv, config: TradeConfig) -> std::io::Result<TradeNode> {
        let log = DurableLog::<TradeRecord>::open(env.disk.clone(), LOG_FILE, config.fsync_latency);
        let (records, report) = log.replay();
        if report.records > 0 {
            env.probes.hit(names::TRADE_RECOVERED);
        }
        if report.torn_bytes > 0 {
            env.probes.hit(names::RECOVERY_TORN_TAIL_CUT);
        }
        tracing::info!(
            shard = config.shard,
            records = report.records,
            "trade recovered"
        );
        let core = Arc::new(Mutex::new(TradeCore::recover(
            config.shard,
            env.bugs,
            &records,
        )));
        let transport = Transport::bind(env.addr, env.faults.clone(), env.probes.clone()).await?;
        let (clock, bugs, probes) = (env.clock.clone(), env.bugs, env.probes.clone());
        {
            let (core, log) = (core.clone(), log.clone());
            transport.serve(move |TradeCall(command)| {
                let (core, log, clock, probes) =
                    (core.clone(), log.clone(), clock.clone(), probes.clone());
                async move {
                    let is_create = matches!(command, TradeCommand::Create { .. });
                    // Decide, write and apply under one lock, except where the planted bug
                    // defers the write of a refund it has already judged.
                    let decided = {
                        let mut core = lock(&core);
                        match core.decide(&command, clock.now_ms()) {
                            TradeDecision::Reply(reply) => {
                                if is_create && reply.is_ok() {
                                    probes.hit(names::TRADE_DUPLICATE_CREATE);
                                }
                                Ok(reply)
                            }
                            TradeDecision::Write(record @ TradeRecord::RefundBegun { .. })
                                if bugs.is(Bug::RefundCheckThenAct) =>
                            {
                                Err(record)
                            }
                            TradeDecision::Write(record) => {
                                if matches!(record, TradeRecord::RefundRefused { .. }) {
                                    probes.hit(names::TRADE_REFUND_BOUND_REFUSED);
                                }
                                log.append(&record);
                                Ok(core.apply(record))
                            }
                        }
                    };
                    let reply = match decided {
                        Ok(reply) => reply,
                        Err(record) => {
                            madsim::time::sleep(CHECK_THEN_ACT_GAP).await;
                            let mut core = lock(&core);
                            log.append(&record);
                            core.apply(record)
                        }
                    };
                    log.sync().await;
                    reply
                }
            });
        }
        madsim::task::spawn(close_unpaid(core.clone(), log, env.clone(), config));
        Ok(TradeNode { core })
    }

    /// Reads the live state (the harness's god's-eye view).
    pub fn read<T>(&self, f: impl FnOnce(&TradeCore) -> T) -> T {
        f(&lock(&self.core))
    }

    /// What a trade shard whose node is down would recover from its disk.
    pub fn durable_state(env: &NodeEnv, config: TradeConfig) -> TradeCore {
        let log = DurableLog::<TradeRecord>::open(env.disk.clone(), LOG_FILE, config.fsync_latency);
        TradeCore::recover(config.shard, env.bugs, &log.read_durable())
    }
}

/// Closes trades left unpaid past their timeout, by this node's (possibly skewed) clock.
async fn close_unpaid(
    core: Arc<Mutex<TradeCore>>,
    log: DurableLog<TradeRecord>,
    env: NodeEnv,
    config: TradeConfig,
) {
    loop {
        madsim::time::sleep(config.sweep_interval).await;
        let now_ms = env.clock.now_ms();
        let expired = lock(&core).expired(now_ms, config.close_after_ms);
        if expired.is_empty() {
            continue;
        }
        {
            let mut core = lock(&core);
            for id in expired {
                // Judged again under the lock: a BeginPay may have won the race.
                if let Some(record) = core.decide_close(id) {
                    log.append(&record);
                    let _ = core.apply(record);
                    env.probes.hit(names::TRADE_CLOSED_BY_TIMEOUT);
                }
            }
        }
        log.sync().await;
    }
}

//! The notification node shell (最大努力通知): consumes trade events as the `notify` group,
//! schedules one merchant callback per event durably, and calls the merchant's endpoint on the
//! schedule until it answers "success" or the schedule is exhausted (recorded as given up).
//! After a crash the schedule resumes from the node's log.

use super::core::{NotifyCore, NotifyRecord};
use super::types::{MerchantNotifyCall, MAX_ATTEMPTS};
use crate::broker::consumer::{self, Handler};
use crate::broker::Delivery;
use crate::log::DurableLog;
use crate::node::NodeEnv;
use crate::probes::names;
use crate::replica::node::trade_events_consumer;
use crate::trade::TradeEvent;
use crate::transport::Transport;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The log file of the notification node.
pub const LOG_FILE: &str = "notify.log";

/// The consumer group of the notification node.
pub const GROUP: &str = "notify";

/// How long a callback waits for the merchant.
const CALLBACK_TIMEOUT: Duration = Duration::from_millis(300);

/// How often the node looks for due callbacks.
const TICK: Duration = Duration::from_millis(50);

/// How a notification node is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyConfig {
    pub broker: SocketAddr,
    /// The merchants' callback endpoint (one simulated endpoint serves every merchant).
    pub merchant: SocketAddr,
    pub fsync_latency: Duration,
    /// The waits after failed attempts 1..7.
    pub schedule: [u64; 7],
    pub commit_interval: Duration,
}

/// A running notification node, as the harness holds it.
#[derive(Clone)]
pub struct NotifyNode {
    shell: Arc<Shell>,
}

struct Shell {
    core: Mutex<NotifyCore>,
    log: DurableLog<NotifyRecord>,
    env: NodeEnv,
    config: NotifyConfig,
    transport: Transport,
    /// Callbacks on their way (memory only).
    calling: Mutex<BTreeSet<String>>,
}

impl Shell {
    fn core(&self) -> MutexGuard<'_, NotifyCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn calling(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.calling.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Schedules the event's notification (once per event id), durably.
    async fn consume(&self, delivery: Delivery) -> Result<(), String> {
        let event = TradeEvent::decode(&delivery.message.payload)?;
        let now_ms = self.env.clock.now_ms();
        {
            let mut core = self.core();
            match core.decide_schedule(&event, now_ms) {
                Some(record) => {
                    self.log.append(&record);
                    core.apply(record);
                }
                None => self.env.probes.hit(names::CONSUMER_DUPLICATE_SKIPPED),
            }
        }
        self.log.sync().await;
        Ok(())
    }

    /// Makes attempt `attempt` of `event`'s callback and records its result.
    async fn call(self: Arc<Self>, event: String, attempt: u32) {
        let Some(n) = self.core().notification(&event).cloned() else {
            self.calling().remove(&event);
            return;
        };
        let call = MerchantNotifyCall {
            event: event.clone(),
            trade: n.trade,
            merchant: n.merchant,
            status: n.status,
            version: n.version,
            attempt,
        };
        let answer = self
            .transport
            .call(self.config.merchant, call, CALLBACK_TIMEOUT)
            .await;
        let acked = matches!(answer, Ok(Ok(())));
        let now_ms = self.env.clock.now_ms();
        {
            let mut core = self.core();
            if let Some(record) = core.decide_result(&event, attempt, acked, now_ms) {
                let probe = match (&record, acked) {
                    (_, true) => names::NOTIFY_ACKED,
                    (
                        NotifyRecord::Attempted {
                            next_due_ms: None, ..
                        },
                        false,
                    ) => names::NOTIFY_EXHAUSTED,
                    _ => names::NOTIFY_RETRIED,
                };
                self.env.probes.hit(probe);
                if probe == names::NOTIFY_EXHAUSTED {
                    tracing::warn!(%event, attempts = MAX_ATTEMPTS, "merchant notification given up");
                }
                self.log.append(&record);
                core.apply(record);
            }
        }
        self.log.sync().await;
        self.calling().remove(&event);
    }
}

impl NotifyNode {
    /// Recovers the schedule from the log, resumes it and starts consuming.
    pub async fn start(env: &NodeEnv, config: NotifyConfig) -> std::io::Result<NotifyNode> {
        let log = DurableLog::<NotifyRecord>::open(env, LOG_FILE, config.fsync_latency);
        let (records, report) = log.replay();
        if report.torn_bytes > 0 {
            env.probes.hit(names::RECOVERY_TORN_TAIL_CUT);
        }
        let transport = Transport::for_node(env).await?;
        let shell = Arc::new(Shell {
            core: Mutex::new(NotifyCore::recover(config.schedule, &records)),
            log,
            env: env.clone(),
            config,
            transport: transport.clone(),
            calling: Mutex::default(),
        });
        let handler: Handler = {
            let shell = shell.clone();
            Arc::new(move |delivery: Delivery| {
                let shell = shell.clone();
                Box::pin(async move { shell.consume(delivery).await })
            })
        };
        let consumer =
            trade_events_consumer(GROUP, &env.name, config.broker, config.commit_interval);
        madsim::task::spawn(consumer::run(env.clone(), transport, consumer, handler));
        madsim::task::spawn(callbacks(shell.clone()));
        Ok(NotifyNode { shell })
    }

    /// Reads the live schedule (the harness's god's-eye view).
    pub fn read<T>(&self, f: impl FnOnce(&NotifyCore) -> T) -> T {
        f(&self.shell.core())
    }

    /// What a notification node that is down would recover from its disk.
    pub fn durable_state(env: &NodeEnv, config: NotifyConfig) -> NotifyCore {
        let log = DurableLog::<NotifyRecord>::open(env, LOG_FILE, config.fsync_latency);
        NotifyCore::recover(config.schedule, &log.read_durable())
    }
}

/// Starts every due callback that is not already on its way.
async fn callbacks(shell: Arc<Shell>) {
    loop {
        madsim::time::sleep(TICK).await;
        let due = shell.core().due(shell.env.clock.now_ms());
        for (event, attempt) in due {
            if shell.calling().insert(event.clone()) {
                madsim::task::spawn(shell.clone().call(event, attempt));
            }
        }
    }
}

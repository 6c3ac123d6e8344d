//! The notification node shell (最大努力通知): consumes trade events as the `notify` group,
//! schedules one merchant callback per event durably, and calls the merchant's endpoint on the
//! schedule until it answers "success" or the schedule is exhausted (recorded as given up).
//! After a crash the schedule resumes from the node's log. The decisions are the
//! [`NotifyEngine`]'s (see `engine.rs`); this shell reads the clock, appends and syncs, calls
//! the merchant and feeds the answers back.

use super::core::{NotifyCore, NotifyRecord};
use super::engine::{NotifyEngine, NotifyInput, NotifyOutput};
use super::types::MerchantNotifyCall;
use crate::broker::consumer::{self, BatchHandler};
use crate::broker::Delivery;
use crate::buggify::Point;
use crate::log::DurableLog;
use crate::node::NodeEnv;
use crate::probes::names;
use crate::replica::node::{trade_events_consumer, Consuming};
use crate::transport::Transport;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The log file of the notification node.
pub const LOG_FILE: &str = "notify.log";

/// The consumer group of the notification node: the one place its name is spelled.
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
    /// Batch consumption and group members.
    pub consuming: Consuming,
}

/// A running notification node, as the harness holds it.
#[derive(Clone)]
pub struct NotifyNode {
    shell: Arc<Shell>,
}

/// The notifier's I/O: what performs the engine's outputs.
struct Shell {
    engine: Mutex<NotifyEngine>,
    log: DurableLog<NotifyRecord>,
    env: NodeEnv,
    config: NotifyConfig,
    transport: Transport,
}

impl Shell {
    fn engine(&self) -> MutexGuard<'_, NotifyEngine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Steps the engine and appends its records under the lock, so that no reader sees a
    /// record applied but not written; returns the outputs still to perform.
    fn step(&self, input: NotifyInput) -> Vec<NotifyOutput> {
        let mut engine = self.engine();
        let outputs = engine.step(input);
        for output in &outputs {
            if let NotifyOutput::Append(record) = output {
                self.log.append(record);
            }
        }
        outputs
    }

    /// Performs probes and syncs; returns the delivery's result if the outputs carry one.
    async fn perform(&self, outputs: Vec<NotifyOutput>) -> Option<Result<(), String>> {
        for output in outputs {
            match output {
                NotifyOutput::Probe(name) => self.env.probes.hit(name),
                NotifyOutput::Append(_) => {}
                NotifyOutput::Sync => self.log.sync().await,
                NotifyOutput::Done(result) => return Some(result),
                NotifyOutput::Call(_) => panic!("only a tick calls merchants"),
            }
        }
        None
    }

    /// Schedules the events' notifications, in order, then makes them durable with one sync
    /// (batch consumption); a delivery's `Ok` leaves only once its schedule is durable.
    async fn consume(self: &Arc<Self>, deliveries: Vec<Delivery>) -> Vec<Result<(), String>> {
        let now_ms = self.env.clock.now_ms();
        let mut sync = false;
        let mut verdicts = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let outputs = self.step(NotifyInput::Delivered { delivery, now_ms });
            let mark = self.log.mark();
            for output in outputs {
                match output {
                    NotifyOutput::Probe(name) => self.env.probes.hit(name),
                    NotifyOutput::Append(_) => {}
                    NotifyOutput::Sync => sync = true,
                    NotifyOutput::Done(result) => {
                        verdicts.push((result, mark));
                        break;
                    }
                    NotifyOutput::Call(_) => panic!("only a tick calls merchants"),
                }
            }
        }
        if sync {
            self.log.sync().await;
        }
        // Invariant 19, reply form: a delivery acknowledged as consumed leaves with its
        // schedule durable.
        self.log.witness_verdicts(verdicts)
    }

    /// Makes one callback, records its result, and lets the event be called again.
    async fn call(self: Arc<Self>, call: MerchantNotifyCall) {
        let (event, attempt) = (call.event.clone(), call.attempt);
        let answer = self
            .transport
            .call(self.config.merchant, call, CALLBACK_TIMEOUT)
            .await;
        // The planted bug takes a callback that got no answer in time for an acknowledgement:
        // the notifier's own record then says the merchant acknowledged what it never did.
        let timed_out = answer.is_err() && self.env.bugs.is(crate::bugs::Bug::NotifierTimeoutAsAck);
        let acked = matches!(answer, Ok(Ok(()))) || timed_out;
        let env = &self.env;
        env.buggify
            .window(Point::CallbackToRecord, &env.probes)
            .await;
        let now_ms = self.env.clock.now_ms();
        let outputs = self.step(NotifyInput::Answered {
            event: event.clone(),
            attempt,
            acked,
            now_ms,
        });
        self.perform(outputs).await;
        self.step(NotifyInput::CallEnded { event });
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
            engine: Mutex::new(NotifyEngine::recover(config.schedule, &records)),
            log,
            env: env.clone(),
            config,
            transport: transport.clone(),
        });
        let handler: BatchHandler = {
            let shell = shell.clone();
            Arc::new(move |deliveries: Vec<Delivery>| {
                let shell = shell.clone();
                Box::pin(async move { shell.consume(deliveries).await })
            })
        };
        let consumer = trade_events_consumer(
            GROUP,
            &env.name.to_string(),
            config.broker,
            config.commit_interval,
            config.consuming,
        );
        madsim::task::spawn(consumer::run_batched(
            env.clone(),
            transport,
            consumer,
            handler,
        ));
        madsim::task::spawn(callbacks(shell.clone()));
        Ok(NotifyNode { shell })
    }

    /// Reads the live schedule (the harness's god's-eye view).
    pub fn read<T>(&self, f: impl FnOnce(&NotifyCore) -> T) -> T {
        f(self.shell.engine().core())
    }

    /// What a notification node that is down would recover from its disk.
    pub fn durable_state(env: &NodeEnv, config: NotifyConfig) -> NotifyCore {
        let log = DurableLog::<NotifyRecord>::open(env, LOG_FILE, config.fsync_latency);
        NotifyCore::recover(config.schedule, &log.read_durable())
    }
}

/// Every tick, starts the callbacks the engine finds due.
async fn callbacks(shell: Arc<Shell>) {
    loop {
        madsim::time::sleep(TICK).await;
        let now_ms = shell.env.clock.now_ms();
        for output in shell.step(NotifyInput::Tick { now_ms }) {
            let NotifyOutput::Call(call) = output else {
                panic!("a tick only calls merchants: {output:?}");
            };
            madsim::task::spawn(shell.clone().call(call));
        }
    }
}

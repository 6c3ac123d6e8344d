//! A simulated bank's node shell: serves the gateway's [`BankCall`]s, writes every decision
//! durably before answering, decides PROCESSING instructions when they are due, and notifies
//! the gateway of final statuses (late, sometimes twice, never retried). Rebuilds its books
//! from its log when (re)started.

use super::core::{BankCore, BankRecord, Decision, Draw};
use super::types::{BankCall, BankCommand, BankConfig, BankError, BankNotifyCall, BankReply};
use super::types::{InstrStatus, Instruction, InterbankCall};
use crate::buggify::Point;
use crate::ids::InstrId;
use crate::log::DurableLog;
use crate::node::NodeEnv;
use crate::probes::names;
use crate::transport::Transport;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The log file of a bank node.
pub const LOG_FILE: &str = "bank.log";

/// How often the bank decides the PROCESSING instructions that are due.
const TICK: Duration = Duration::from_millis(100);

/// How long a notification waits for the gateway's acknowledgement (it is not retried).
const NOTIFY_TIMEOUT: Duration = Duration::from_millis(300);

/// How long a transfer's delivery waits for the receiving bank (it is sent again next tick).
const INTERBANK_TIMEOUT: Duration = Duration::from_millis(300);

/// A running bank, as the harness holds it.
#[derive(Clone)]
pub struct BankNode {
    shell: Arc<Shell>,
}

struct Shell {
    core: Mutex<BankCore>,
    log: DurableLog<BankRecord>,
    env: NodeEnv,
    config: BankConfig,
    transport: Transport,
    /// The bank's own draws: PROCESSING or not, delays, double notifications.
    rng: Mutex<ChaCha8Rng>,
}

impl Shell {
    fn core(&self) -> MutexGuard<'_, BankCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rng(&self) -> MutexGuard<'_, ChaCha8Rng> {
        self.rng.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves one call from `from`: only the platform's gateway may ask.
    async fn serve(
        self: Arc<Self>,
        command: BankCommand,
        from: std::net::SocketAddr,
    ) -> Result<BankReply, BankError> {
        let gateway = crate::transport::sent_by(from, &[self.config.gateway]);
        let reader = crate::transport::sent_by(from, &self.config.readers);
        let allowed = match command {
            BankCommand::Submit(_) => gateway,
            BankCommand::Query(_) | BankCommand::Statement { .. } => gateway || reader,
        };
        if !allowed {
            return Err(BankError::Unauthorized(from.to_string()));
        }
        match command {
            BankCommand::Submit(instruction) => {
                let reply = self.submit(instruction).await;
                // A slow bank: the instruction is taken (and durable), its answer late.
                let env = &self.env;
                env.buggify
                    .window(Point::InstructionToReply, &env.probes)
                    .await;
                reply
            }
            BankCommand::Query(id) => Ok(self.core().query(&id)),
            BankCommand::Statement { date } => Ok(self.statement(date)),
        }
    }

    /// A statement is published `statement_lag_ms` after its day ends.
    fn statement(&self, date: u32) -> BankReply {
        let b = self.config.behaviour;
        let published = (u64::from(date) + 1) * b.day_ms + b.statement_lag_ms;
        if self.env.clock.now_ms() < published {
            return BankReply::NotYet;
        }
        BankReply::Statement(self.core().statement(date))
    }

    /// Takes an instruction: decided now, or PROCESSING until a drawn due time.
    async fn submit(self: &Arc<Self>, instruction: Instruction) -> Result<BankReply, BankError> {
        let now_ms = self.env.clock.now_ms();
        let draw = self.draw(now_ms);
        let (reply, mark) = {
            let mut core = self.core();
            let reply = match core.decide(&instruction, now_ms, draw) {
                Decision::Reply(reply) => reply,
                Decision::Write(records) => {
                    for r in records {
                        self.log.append(&r);
                        core.apply(r);
                    }
                    Ok(core.query(&instruction.id))
                }
            };
            (reply, self.log.mark())
        };
        self.log.sync().await;
        self.log.witness_reply(mark);
        if let Ok(BankReply::Status(status)) = &reply {
            self.on_status(&instruction.id, *status);
        }
        reply
    }

    /// The bank's draws for a new instruction: PROCESSING or not, refused by its checks or
    /// not, and when a payout would bounce.
    fn draw(&self, now_ms: u64) -> Draw {
        let b = self.config.behaviour;
        let mut rng = self.rng();
        let late = rng.gen_bool(b.processing_rate);
        let ms = rng.gen_range(b.processing_ms.0..=b.processing_ms.1);
        let reject = rng.gen_bool(b.reject_rate);
        let bounce = rng.gen_bool(b.bounce_rate);
        let bounce_in = rng.gen_range(b.notify_delay_ms.0..=b.notify_delay_ms.1 * 2);
        Draw {
            late: late.then_some(now_ms + ms),
            reject,
            bounce_at: bounce.then_some(now_ms + bounce_in),
        }
    }

    /// After an answer: a final status is notified; PROCESSING is counted.
    fn on_status(self: &Arc<Self>, id: &InstrId, status: InstrStatus) {
        if status.is_final() {
            madsim::task::spawn(self.clone().notify(id.clone(), status));
        } else {
            self.env.probes.hit(names::BANK_PROCESSING);
        }
    }

    /// Notifies the gateway of a final status, late, once or twice.
    async fn notify(self: Arc<Self>, instr: InstrId, status: InstrStatus) {
        let b = self.config.behaviour;
        let (delays, twice) = {
            let mut rng = self.rng();
            let mut d = || rng.gen_range(b.notify_delay_ms.0..=b.notify_delay_ms.1);
            let delays = [d(), d()];
            (delays, rng.gen_bool(b.notify_twice_rate))
        };
        let times = if twice { 2 } else { 1 };
        for delay in &delays[..times] {
            madsim::time::sleep(Duration::from_millis(*delay)).await;
            let call = BankNotifyCall {
                bank: self.config.bank,
                instr: instr.clone(),
                status,
            };
            let _ = self
                .transport
                .call(self.config.gateway, call, NOTIFY_TIMEOUT)
                .await;
        }
        if twice {
            self.env.probes.hit(names::BANK_NOTIFIED_TWICE);
        }
    }

    /// A transfer arriving from another bank: taken once, durably, then acknowledged.
    async fn receive(
        self: Arc<Self>,
        call: InterbankCall,
        from: std::net::SocketAddr,
    ) -> Result<(), BankError> {
        if !crate::transport::sent_by(from, &self.config.peers) {
            return Err(BankError::Unauthorized(from.to_string()));
        }
        let now_ms = self.env.clock.now_ms();
        let mark = {
            let mut core = self.core();
            let taken = core.receive(&call.instr, call.from_bank, call.amount, now_ms)?;
            match taken {
                Some(record) => {
                    self.log.append(&record);
                    core.apply(record);
                    self.env.probes.hit(names::BANK_TRANSFER_RECEIVED);
                }
                None => self.env.probes.hit(names::BANK_TRANSFER_REPEAT_ABSORBED),
            }
            self.log.mark()
        };
        self.log.sync().await;
        self.log.witness_reply(mark);
        Ok(())
    }

    /// Sends every transfer not yet acknowledged to its receiving bank; an acknowledged one is
    /// recorded delivered (a lost record only sends it again, which the receiver absorbs).
    async fn deliver(&self) {
        let pending = self.core().to_deliver();
        for (instr, to, amount) in pending {
            let call = InterbankCall {
                from_bank: self.config.bank,
                instr: instr.clone(),
                amount,
            };
            let dst = self.config.peers[to as usize];
            if let Ok(Ok(())) = self.transport.call(dst, call, INTERBANK_TIMEOUT).await {
                let record = BankRecord::Delivered { instr };
                let mut core = self.core();
                self.log.append(&record);
                core.apply(record);
            }
        }
    }

    /// Decides every PROCESSING instruction that is due, durably, and notifies.
    async fn decide_due(self: &Arc<Self>) {
        let now_ms = self.env.clock.now_ms();
        let mut bounced = false;
        let decided: Vec<(InstrId, InstrStatus)> = {
            let mut core = self.core();
            let due = core.due(now_ms);
            let bounces = core.bounces_due(now_ms);
            for id in bounces {
                bounced = true;
                let record = BankRecord::Bounced { instr: id };
                self.log.append(&record);
                core.apply(record);
            }
            due.into_iter()
                .filter_map(|id| {
                    let reject = self.rng().gen_bool(self.config.behaviour.reject_rate);
                    let record = core.decide_late(&id, now_ms, reject)?;
                    self.log.append(&record);
                    core.apply(record);
                    let BankReply::Status(status) = core.query(&id) else {
                        unreachable!("a decided instruction exists")
                    };
                    Some((id, status))
                })
                .collect()
        };
        if decided.is_empty() && !bounced {
            return;
        }
        self.log.sync().await;
        for (id, status) in decided {
            self.on_status(&id, status);
        }
    }
}

impl BankNode {
    /// Recovers the books from the log and starts serving.
    pub async fn start(env: &NodeEnv, config: BankConfig) -> std::io::Result<BankNode> {
        let log = DurableLog::<BankRecord>::open(env, LOG_FILE, config.fsync_latency);
        let (records, report) = log.replay();
        if report.torn_bytes > 0 {
            env.probes.hit(names::RECOVERY_TORN_TAIL_CUT);
        }
        if !records.is_empty() {
            env.probes.hit(names::BANK_RECOVERED);
        }
        let core = BankCore::recover(config.bank, config.behaviour.day_ms, &records);
        let transport = Transport::for_node(env).await?;
        let shell = Arc::new(Shell {
            core: Mutex::new(core),
            log,
            env: env.clone(),
            rng: Mutex::new(env.rng("bank")),
            config,
            transport: transport.clone(),
        });
        let serving = shell.clone();
        transport.serve_from(move |BankCall(command), from| serving.clone().serve(command, from));
        let receiving = shell.clone();
        transport
            .serve_from(move |call: InterbankCall, from| receiving.clone().receive(call, from));
        madsim::task::spawn(ticks(shell.clone()));
        Ok(BankNode { shell })
    }

    /// Reads the live books (the harness's god's-eye view).
    pub fn read<T>(&self, f: impl FnOnce(&BankCore) -> T) -> T {
        f(&self.shell.core())
    }

    /// What a bank that is down would recover from its disk.
    pub fn durable_state(env: &NodeEnv, config: &BankConfig) -> BankCore {
        let log = DurableLog::<BankRecord>::open(env, LOG_FILE, config.fsync_latency);
        BankCore::recover(config.bank, config.behaviour.day_ms, &log.read_durable())
    }
}

async fn ticks(shell: Arc<Shell>) {
    loop {
        madsim::time::sleep(TICK).await;
        shell.decide_due().await;
        shell.deliver().await;
    }
}

//! The reconciliation node: on a schedule, for every bank, reconciles each published bank
//! date in order against the gateway's channel orders, asks the gateway for the repairs, and
//! records the date durably. A pass interrupted by a crash or an unanswered call is redone
//! from the same date (every repair is idempotent at the gateway).

use super::core::{ReconCore, ReconRecord};
use crate::bank::{BankCall, BankCommand, BankReply, InstrStatus, StatementLine};
use crate::clearing::{OrderStatus, OrderView, ReconCall, ReconCommand, ReconReply};
use crate::ids::InstrId;
use crate::log::DurableLog;
use crate::node::NodeEnv;
use crate::probes::names;
use crate::transport::Transport;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The log file of the reconciliation node.
pub const LOG_FILE: &str = "recon.log";

/// How often reconciliation looks for newly published statements.
const TICK: Duration = Duration::from_millis(1_000);

const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// How the reconciliation node is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconConfig {
    pub fsync_latency: Duration,
    /// Bank `b` at index `b`.
    pub banks: Vec<SocketAddr>,
    pub gateway: SocketAddr,
}

/// A running reconciliation node, as the harness holds it.
#[derive(Clone)]
pub struct ReconNode {
    shell: Arc<Shell>,
}

struct Shell {
    core: Mutex<ReconCore>,
    log: DurableLog<ReconRecord>,
    env: NodeEnv,
    config: ReconConfig,
    transport: Transport,
    /// Per bank, the successful orders followed for 短款 (in memory: a restart reads them all
    /// again).
    successes: Mutex<BTreeMap<u32, Successes>>,
}

/// A bank's successful orders as reconciliation follows them: where it read the gateway's
/// list to (and in which incarnation of the gateway), and the orders no statement has listed
/// yet, whose views every date's ask refreshes. An order leaves once a statement listed it
/// or it was corrected, neither of which is ever undone.
#[derive(Debug, Default)]
struct Successes {
    boot: Option<u64>,
    next: u64,
    open: BTreeMap<InstrId, OrderView>,
}

/// What one date's pass found so far.
#[derive(Default)]
struct Tally {
    matched: u32,
    long: u32,
    short: u32,
    held: Vec<InstrId>,
}

impl Shell {
    fn core(&self) -> MutexGuard<'_, ReconCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn bank(&self, bank: u32, command: BankCommand) -> Option<BankReply> {
        let dst = self.config.banks[bank as usize];
        let reply = self
            .transport
            .call(dst, BankCall(command), CALL_TIMEOUT)
            .await;
        reply.ok()?.ok()
    }

    async fn gateway(&self, command: ReconCommand) -> Option<ReconReply> {
        let reply = self
            .transport
            .call(self.config.gateway, ReconCall(command), CALL_TIMEOUT);
        reply.await.ok()?.ok()
    }

    async fn orders(&self, command: ReconCommand) -> Option<BTreeMap<InstrId, OrderView>> {
        match self.gateway(command).await? {
            ReconReply::Orders(views) => {
                Some(views.into_iter().map(|v| (v.instr.clone(), v)).collect())
            }
            _ => None,
        }
    }

    /// Reconciles every published date of every bank, in order; stops at the first date whose
    /// statement is not out yet or whose pass could not finish.
    async fn pass(&self) {
        for bank in 0..self.config.banks.len() as u32 {
            while self.date(bank).await {}
        }
        self.treasury().await;
    }

    /// After a bank date every bank has reconciled: orders the treasury's transfer if the
    /// reserves drifted apart, then records the date looked at (a crash in between asks the
    /// gateway again under the same key, which answers from its order).
    async fn treasury(&self) {
        let banks = self.config.banks.len() as u32;
        self.forget_failed_transfer().await;
        let Some(rebalance) = self.core().rebalance(banks) else {
            let due = (0..banks).map(|b| self.core().next_date(b)).min();
            let looked = self.core().rebalanced;
            let waiting = due.and_then(|d| d.checked_sub(1)).is_some_and(|date| {
                looked.is_none_or(|r| r < date) && self.core().waits_for_transfer(date)
            });
            if waiting {
                self.env.probes.hit(names::RECON_TRANSFER_AWAITED);
            }
            return;
        };
        if let Some((from, to, amount)) = rebalance.transfer {
            let key = crate::clearing::transfer_key(rebalance.date);
            let command = ReconCommand::Transfer {
                key,
                from,
                to,
                amount,
            };
            if self.gateway(command).await != Some(ReconReply::Done) {
                return;
            }
            self.env.probes.hit(names::RECON_REBALANCED);
        }
        self.record(ReconRecord::Rebalanced {
            date: rebalance.date,
            to: rebalance.transfer.map(|(_, to, _)| to),
        })
        .await;
    }

    /// The treasury's transfer still on its way, if its order failed: it never lands, so
    /// the treasury stops waiting for it (recorded).
    async fn forget_failed_transfer(&self) {
        let Some(instr) = self.core().in_flight.as_ref().map(|f| f.instr.clone()) else {
            return;
        };
        let Some(orders) = self.orders(ReconCommand::Lookup(vec![instr.clone()])).await else {
            return;
        };
        if orders
            .get(&instr)
            .is_some_and(|v| v.status == OrderStatus::Fail)
        {
            self.record(ReconRecord::TransferFailed { instr }).await;
        }
    }

    /// Reconciles bank `bank`'s next date; whether it did.
    async fn date(&self, bank: u32) -> bool {
        let date = self.core().next_date(bank);
        let Some(BankReply::Statement(statement)) =
            self.bank(bank, BankCommand::Statement { date }).await
        else {
            return false;
        };
        let lines = statement.lines;
        let Some(tally) = self.match_lines(bank, date, &lines).await else {
            return false;
        };
        let Some(tally) = self.find_short(bank, &lines, tally).await else {
            return false;
        };
        if tally.long + tally.short == 0 && tally.held.is_empty() {
            self.env.probes.hit(names::RECON_DATE_MATCHED);
        }
        let record = ReconRecord::Reconciled {
            bank,
            date,
            lines: lines.iter().map(|l| l.instr.clone()).collect(),
            matched: tally.matched,
            long: tally.long,
            short: tally.short,
            held: tally.held,
            closing_fen: fen(statement.closing),
        };
        self.record(record).await;
        true
    }

    /// The statement's lines (and the lines held from before) against their orders: matched,
    /// resolved by statement, corrected, or held.
    async fn match_lines(&self, bank: u32, date: u32, lines: &[StatementLine]) -> Option<Tally> {
        let held: Vec<InstrId> = self
            .core()
            .held
            .get(&bank)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let mut amounts: BTreeMap<InstrId, crate::money::Amount> =
            lines.iter().map(|l| (l.instr.clone(), l.amount)).collect();
        let into: BTreeMap<&InstrId, bool> = lines
            .iter()
            .map(|l| (&l.instr, l.direction.into_reserve()))
            .collect();
        let instrs: Vec<InstrId> = amounts.keys().chain(&held).cloned().collect();
        let orders = self.orders(ReconCommand::Lookup(instrs.clone())).await?;
        let mut tally = Tally::default();
        for instr in instrs {
            let amount = amounts.remove(&instr);
            match orders.get(&instr) {
                Some(v)
                    if v.status == OrderStatus::Success && amount.is_none_or(|a| a == v.amount) =>
                {
                    self.release(&instr).await?;
                    tally.matched += 1
                }
                Some(v) if !v.status.is_final() => {
                    let reply = self.gateway(ReconCommand::Resolve { instr, date }).await?;
                    if reply == ReconReply::Done {
                        self.env.probes.hit(names::RECON_LONG_REPAIRED);
                    }
                    tally.long += 1;
                }
                Some(v) if v.status == OrderStatus::Fail => {
                    self.gateway(ReconCommand::Correct {
                        instr,
                        bank_success: true,
                    })
                    .await?;
                    tally.long += 1;
                }
                found => {
                    if let (None, Some(amount)) = (found, amount) {
                        self.suspend(bank, &instr, amount, into[&instr]).await?;
                    }
                    self.env.probes.hit(names::RECON_UNMATCHED_HELD);
                    tally.held.push(instr);
                }
            }
        }
        Some(tally)
    }

    /// A line no order explains: its money is held in suspense (so the reserve agrees with the
    /// bank) until an order explains it; recorded once posted.
    async fn suspend(
        &self,
        bank: u32,
        instr: &InstrId,
        amount: crate::money::Amount,
        into_reserve: bool,
    ) -> Option<()> {
        if self.core().suspended.contains_key(instr) {
            return Some(());
        }
        self.suspense(instr, bank, (amount, into_reserve), false)
            .await?;
        self.env.probes.hit(names::RECON_SUSPENDED);
        self.record(ReconRecord::Suspended {
            bank,
            instr: instr.clone(),
            into_reserve,
            amount_fen: amount.fen(),
        })
        .await;
        Some(())
    }

    /// A suspended line whose order turned up is taken out of suspense.
    async fn release(&self, instr: &InstrId) -> Option<()> {
        let Some(line) = self.core().suspended.get(instr).copied() else {
            return Some(());
        };
        let amount = crate::money::Amount::from_fen(line.amount_fen).ok()?;
        self.suspense(instr, line.bank, (amount, line.into_reserve), true)
            .await?;
        self.env.probes.hit(names::RECON_RELEASED);
        self.record(ReconRecord::Released {
            instr: instr.clone(),
        })
        .await;
        Some(())
    }

    /// Asks the gateway to post line `instr` into suspense or (`release`) out of it.
    async fn suspense(
        &self,
        instr: &InstrId,
        bank: u32,
        (amount, into_reserve): (crate::money::Amount, bool),
        release: bool,
    ) -> Option<()> {
        let command = ReconCommand::Suspense {
            instr: instr.clone(),
            bank,
            amount,
            into_reserve,
            release,
        };
        (self.gateway(command).await? == ReconReply::Done).then_some(())
    }

    /// The bank's successful orders that no earlier statement listed and none corrected, as
    /// the gateway has them now: one ask for the views of those followed and for the orders
    /// that succeeded since the last ask (all of them after either side restarted). Orders a
    /// statement listed or a correction settled are no longer followed. Returns the ids of
    /// those still followed, in order; `None`: unanswered (what was followed is then asked
    /// for whole next time).
    async fn follow_successes(&self, bank: u32) -> Option<Vec<InstrId>> {
        let ask = {
            let known = self.successes();
            let k = known.get(&bank);
            ReconCommand::Succeeded {
                bank,
                boot: k.and_then(|k| k.boot),
                from: k.map_or(0, |k| k.next),
                recheck: k.map_or(Vec::new(), |k| k.open.keys().cloned().collect()),
            }
        };
        let answer = self.gateway(ask).await;
        let mut known = self.successes();
        let Some(ReconReply::Successes {
            boot,
            from,
            next,
            orders,
        }) = answer
        else {
            known.remove(&bank);
            return None;
        };
        let core = self.core();
        let open: BTreeMap<InstrId, OrderView> = orders
            .into_iter()
            .filter(|v| !v.corrected && !core.was_seen(bank, &v.instr))
            .map(|v| (v.instr.clone(), v))
            .collect();
        debug_assert!(from == 0 || known.get(&bank).is_some_and(|k| k.boot == Some(boot)));
        let followed = Successes {
            boot: Some(boot),
            next,
            open,
        };
        let ids = followed.open.keys().cloned().collect();
        known.insert(bank, followed);
        Some(ids)
    }

    fn successes(&self) -> MutexGuard<'_, BTreeMap<u32, Successes>> {
        self.successes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes a record durably.
    async fn record(&self, record: ReconRecord) {
        {
            let mut core = self.core();
            self.log.append(&record);
            core.apply(record);
        }
        self.log.sync().await;
    }

    /// 短款: successful orders no statement has listed, confirmed by a query before their
    /// correction (an order decided after the statement's day shows as carried out and waits
    /// for its own statement).
    async fn find_short(
        &self,
        bank: u32,
        lines: &[StatementLine],
        mut tally: Tally,
    ) -> Option<Tally> {
        let listed: BTreeSet<&InstrId> = lines.iter().map(|l| &l.instr).collect();
        let followed = self.follow_successes(bank).await?;
        let unlisted: Vec<InstrId> = followed
            .into_iter()
            .filter(|instr| !listed.contains(instr))
            .collect();
        for instr in unlisted {
            match self.bank(bank, BankCommand::Query(instr.clone())).await? {
                BankReply::Status(InstrStatus::Success | InstrStatus::Processing) => {}
                _ => {
                    self.gateway(ReconCommand::Correct {
                        instr,
                        bank_success: false,
                    })
                    .await?;
                    tally.short += 1;
                }
            }
        }
        Some(tally)
    }
}

impl ReconNode {
    /// Recovers its cursor from the log and starts its schedule.
    pub async fn start(env: &NodeEnv, config: ReconConfig) -> std::io::Result<ReconNode> {
        let log = DurableLog::<ReconRecord>::open(env, LOG_FILE, config.fsync_latency);
        let (records, report) = log.replay();
        if report.torn_bytes > 0 {
            env.probes.hit(names::RECOVERY_TORN_TAIL_CUT);
        }
        if !records.is_empty() {
            env.probes.hit(names::RECON_RECOVERED);
        }
        let transport = Transport::for_node(env).await?;
        let shell = Arc::new(Shell {
            core: Mutex::new(ReconCore::recover(&records)),
            log,
            env: env.clone(),
            config,
            transport,
            successes: Mutex::new(BTreeMap::new()),
        });
        madsim::task::spawn(schedule(shell.clone()));
        Ok(ReconNode { shell })
    }

    /// Reads the live state (the harness's god's-eye view).
    pub fn read<T>(&self, f: impl FnOnce(&ReconCore) -> T) -> T {
        f(&self.shell.core())
    }

    /// What a reconciliation node that is down would recover from its disk.
    pub fn durable_state(env: &NodeEnv, config: &ReconConfig) -> ReconCore {
        let log = DurableLog::<ReconRecord>::open(env, LOG_FILE, config.fsync_latency);
        ReconCore::recover(&log.read_durable())
    }
}

async fn schedule(shell: Arc<Shell>) {
    loop {
        madsim::time::sleep(TICK).await;
        shell.pass().await;
    }
}

/// A statement's balance in fen (a bank's books hold whole fen).
fn fen(yuan: rust_decimal::Decimal) -> i64 {
    use rust_decimal::prelude::ToPrimitive;
    (yuan * rust_decimal::Decimal::ONE_HUNDRED)
        .to_i64()
        .expect("a reserve fits in i64 fen")
}

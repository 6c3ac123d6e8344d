//! The gateway's side of reconciliation (核算中心 → 银行网关): the orders a statement names,
//! the successful ones of a bank, the resolution of an order by statement, and the
//! correction of a final status at odds with the bank's, each idempotent.

use super::super::types::{
    instr_of, legs, recon_request, settle_request, ChannelOrder, OrderKind, OrderStatus, OrderView,
    ReconCommand, ReconReply, PLATFORM_CLIENT,
};
use super::{ClearingRecord, Shell};
use crate::bugs::Bug;
use crate::ids::{AccountId, ShardId};
use crate::ids::{InstrId, RequestId};
use crate::probes::names;
use crate::refusal::{Refusal, RefusalCode};
use std::net::SocketAddr;
use std::sync::Arc;

impl Shell {
    /// Serves reconciliation (only from the reconciliation node).
    pub(super) async fn reconcile(
        self: Arc<Self>,
        command: ReconCommand,
        from: SocketAddr,
    ) -> Result<ReconReply, Refusal> {
        let recon: Vec<SocketAddr> = self.config.recon.into_iter().collect();
        if !crate::transport::sent_by(from, &recon) {
            let detail = format!("{from} is not the platform's reconciliation");
            return Err(Refusal::new(RefusalCode::Unauthorized, detail));
        }
        Ok(match command {
            ReconCommand::Lookup(instrs) => ReconReply::Orders(self.lookup(&instrs)),
            ReconCommand::Succeeded {
                bank,
                boot,
                from,
                recheck,
            } => self.succeeded(bank, boot, from, &recheck),
            ReconCommand::Resolve { instr, date } => self.clone().resolve(&instr, date).await,
            ReconCommand::Correct {
                instr,
                bank_success,
            } => self.correct(&instr, bank_success).await,
            ReconCommand::Transfer {
                key,
                from,
                to,
                amount,
            } => self.clone().transfer(key, (from, to), amount).await,
            ReconCommand::Suspense {
                instr,
                bank,
                amount,
                into_reserve,
                release,
            } => {
                self.suspense(&instr, bank, amount, (into_reserve, release))
                    .await
            }
        })
    }

    /// Holds a statement line no order explains in suspense (Dr reserve / Cr suspense for
    /// money in, the reverse for money out), or takes it out again (`release`), on shard 0;
    /// idempotent by its request.
    async fn suspense(
        &self,
        instr: &InstrId,
        bank: u32,
        amount: crate::money::Amount,
        (into_reserve, release): (bool, bool),
    ) -> ReconReply {
        if bank as usize >= self.config.banks.len() {
            return ReconReply::Nothing;
        }
        let shards = self.config.topology.ledger_shards();
        let reserve = AccountId::reserve(bank, ShardId(0), shards);
        let suspense = AccountId::suspense(bank, ShardId(0), shards);
        let (from, to) = if into_reserve != release {
            (reserve, suspense)
        } else {
            (suspense, reserve)
        };
        let request = super::super::types::suspense_request(instr, release);
        match self
            .post_on(ShardId(0), request, legs(from, to, amount))
            .await
        {
            Some(Ok(())) => ReconReply::Done,
            _ => ReconReply::Nothing,
        }
    }

    /// The treasury's transfer between two of the platform's reserves (内转): a new order,
    /// durable before it is driven; a key already used answers from its order.
    async fn transfer(
        self: Arc<Self>,
        key: String,
        (from, to): (u32, u32),
        amount: crate::money::Amount,
    ) -> ReconReply {
        let instr = instr_of(&key);
        let banks = self.config.banks.len() as u32;
        if from == to || from.max(to) >= banks {
            return ReconReply::Nothing;
        }
        let shards = self.config.topology.ledger_shards();
        let record = {
            let core = self.core();
            if let Some(known) = core.get(&instr) {
                let same = known.kind == (OrderKind::Transfer { to }) && known.amount == amount;
                return if same {
                    ReconReply::Done
                } else {
                    ReconReply::Nothing
                };
            }
            let account = AccountId::reserve(from, ShardId(0), shards);
            ClearingRecord::Created(ChannelOrder::new(
                key,
                PLATFORM_CLIENT,
                OrderKind::Transfer { to },
                (account, from, 0),
                amount,
            ))
        };
        self.write(record).await;
        self.env.probes.hit(names::CLEARING_TRANSFER_ORDERED);
        self.clone().drive(instr);
        ReconReply::Done
    }

    fn lookup(&self, instrs: &[InstrId]) -> Vec<OrderView> {
        let core = self.core();
        instrs
            .iter()
            .filter_map(|i| core.get(i))
            .map(view)
            .collect()
    }

    /// The bank's successful orders: those to recheck and those from position `from` of this
    /// incarnation's list, or the whole list if the caller's `boot` is another incarnation's.
    fn succeeded(
        &self,
        bank: u32,
        boot: Option<u64>,
        from: u64,
        recheck: &[InstrId],
    ) -> ReconReply {
        let core = self.core();
        let list = core.successes.get(&bank).map_or(&[][..], Vec::as_slice);
        let same = boot == Some(self.boot);
        let start = if same {
            usize::try_from(from).unwrap_or(usize::MAX).min(list.len())
        } else {
            0
        };
        let rechecked = recheck
            .iter()
            .filter(|_| same)
            .filter_map(|i| core.orders.get(i));
        let rechecked = rechecked.filter(|o| o.bank == bank && o.status == OrderStatus::Success);
        let listed = list[start..].iter().map(|instr| &core.orders[instr]);
        let orders = rechecked.chain(listed).map(view).collect();
        ReconReply::Successes {
            boot: self.boot,
            from: start as u64,
            next: list.len() as u64,
            orders,
        }
    }

    /// The statement says the bank carried the instruction out while the order is not final:
    /// the order succeeds (resolved by statement) and its driver posts it.
    async fn resolve(self: Arc<Self>, instr: &InstrId, date: u32) -> ReconReply {
        let record = self.core().move_to(instr, OrderStatus::Success, None);
        let Some(record) = record else {
            return ReconReply::Nothing;
        };
        self.env.probes.hit(names::CLEARING_RESOLVED_BY_STATEMENT);
        self.write(record).await;
        if self.env.bugs.is(Bug::ReconRepairNotIdempotent) {
            self.repair_posting(instr, date).await;
        }
        self.clone().drive(instr.clone());
        ReconReply::Done
    }

    /// The planted bug: the repair posts the order's effect itself, under its own request.
    async fn repair_posting(&self, instr: &InstrId, date: u32) {
        let Some(order) = self.core().get(instr).cloned() else {
            return;
        };
        let (reserve, transit) = self.accounts(&order);
        let legs = match order.kind {
            OrderKind::Deposit => legs(reserve, order.account, order.amount),
            OrderKind::Withdrawal | OrderKind::RefundToCard | OrderKind::Transfer { .. } => {
                legs(transit, reserve, order.amount)
            }
        };
        let request = RequestId::new(compact_str::format_compact!(
            "{}:repair-{date}",
            settle_request(&order.key)
        ));
        let _ = self.post(&order, request, legs).await;
    }

    /// A final status at odds with the bank's: post what makes the books agree, once.
    async fn correct(&self, instr: &InstrId, bank_success: bool) -> ReconReply {
        let Some(order) = self.core().get(instr).cloned() else {
            return ReconReply::Nothing;
        };
        let Some((from, to, probe)) = self.correction(&order, bank_success) else {
            return ReconReply::Nothing;
        };
        if order.corrected {
            return ReconReply::Done;
        }
        match self
            .post(
                &order,
                recon_request(&order.key),
                legs(from, to, order.amount),
            )
            .await
        {
            Some(Ok(())) => {
                // Another ask of the same correction may have finished while this one waited
                // on the ledger (the posting is idempotent by its request): recorded once.
                let first = {
                    let mut core = self.core();
                    let first = core.get(instr).is_some_and(|o| !o.corrected);
                    if first {
                        let record = ClearingRecord::Corrected {
                            instr: instr.clone(),
                        };
                        self.log.append(&record);
                        core.apply(record);
                    }
                    first
                };
                if first {
                    self.env.probes.hit(probe);
                }
                self.log.sync().await;
                ReconReply::Done
            }
            _ => ReconReply::Nothing,
        }
    }

    /// The correcting movement (debited, credited) of an order whose final posted effect
    /// disagrees with the bank's, and which difference it repairs.
    fn correction(
        &self,
        order: &ChannelOrder,
        bank_success: bool,
    ) -> Option<(crate::ids::AccountId, crate::ids::AccountId, &'static str)> {
        let (reserve, _) = self.accounts(order);
        let user = order.account;
        let (short, long) = (names::RECON_SHORT_REPAIRED, names::RECON_LONG_REPAIRED);
        let (_, other) = self.accounts(order);
        if let OrderKind::Transfer { .. } = order.kind {
            // `other` is the receiving bank's reserve.
            return match (order.status, bank_success) {
                (OrderStatus::Success, false) => Some((reserve, other, short)),
                (OrderStatus::Fail, true) => Some((other, reserve, long)),
                _ => None,
            };
        }
        match (order.kind, order.status, bank_success) {
            // 短款: we credited (or paid out) what the bank never moved.
            (OrderKind::Deposit, OrderStatus::Success, false) => Some((user, reserve, short)),
            (kind, OrderStatus::Success, false) if kind.holds() => Some((reserve, user, short)),
            // 长款: the bank moved what we took as refused.
            (OrderKind::Deposit, OrderStatus::Fail, true) => Some((reserve, user, long)),
            (kind, OrderStatus::Fail, true) if kind.holds() && order.held => {
                Some((user, reserve, long))
            }
            _ => None,
        }
    }
}

fn view(o: &ChannelOrder) -> OrderView {
    OrderView {
        instr: o.instr.clone(),
        kind: o.kind,
        amount: o.amount,
        status: o.status,
        corrected: o.corrected,
    }
}

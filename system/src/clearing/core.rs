//! The gateway's state machine: channel orders by `instr_id`, admitted idempotently by the
//! client's key, moved only along their legal edges (a second final status is no edge, so a
//! reply, a notification and a query of one instruction take effect once), folded from the
//! gateway's log. Pure: the shell calls the bank and the ledger and writes the records.

use super::types::{bank_of, instr_of};
use super::types::{ChannelOrder, FailCause, FundReply, FundRequest, OrderKind, OrderStatus};
use crate::ids::InstrId;
use crate::refusal::{Refusal, RefusalCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the gateway's log holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClearingRecord {
    /// A new order, INIT.
    Created(ChannelOrder),
    /// A withdrawal's hold is posted.
    Held { instr: InstrId },
    /// A status change along a legal edge.
    Moved {
        instr: InstrId,
        status: OrderStatus,
        fail: Option<FailCause>,
    },
    /// The order's final posting is made.
    Settled { instr: InstrId },
    /// Reconciliation's correction is posted.
    Corrected { instr: InstrId },
}

/// What to do with a client's request.
#[derive(Debug, PartialEq)]
pub enum Admission {
    /// A new order: write it, then drive it.
    Create(ClearingRecord),
    /// The key's order exists: answer from it.
    Existing(InstrId),
    /// The key was used with another body.
    Mismatch(Refusal),
}

/// Every channel order of the gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClearingCore {
    pub orders: BTreeMap<InstrId, ChannelOrder>,
    /// Each bank's orders in the order they succeeded (a success is final): what
    /// reconciliation reads from where it left off.
    pub successes: BTreeMap<u32, Vec<InstrId>>,
}

impl ClearingCore {
    pub fn recover(records: &[ClearingRecord]) -> Self {
        let mut core = ClearingCore::default();
        for r in records {
            core.apply(r.clone());
        }
        core
    }

    pub fn get(&self, instr: &InstrId) -> Option<&ChannelOrder> {
        self.orders.get(instr)
    }

    /// A request under a key: its existing order, a refusal of a reused key, or a new order.
    pub fn admit(&self, request: &FundRequest, banks: u32) -> Admission {
        let instr = instr_of(&request.key);
        if let Some(order) = self.orders.get(&instr) {
            let same = order.kind == request.kind
                && order.account == request.account
                && order.amount == request.amount
                && order.client == request.client;
            return if same {
                Admission::Existing(instr)
            } else {
                let detail = format!("key {} was used for another order", request.key);
                Admission::Mismatch(Refusal::new(RefusalCode::KeyReused, detail))
            };
        }
        let (bank, card) = bank_of(request.account, banks);
        Admission::Create(ClearingRecord::Created(ChannelOrder::new(
            request.key.clone(),
            request.client,
            request.kind,
            (request.account, bank, card),
            request.amount,
        )))
    }

    /// What the client is told about its order now: a deposit is done once credited, a
    /// withdrawal once its money is held; a definitive refusal is final; anything else is
    /// pending.
    pub fn answer(&self, instr: &InstrId) -> Result<FundReply, Refusal> {
        let order = &self.orders[instr];
        match (order.kind, order.fail) {
            (_, Some(FailCause::Hold(code))) => Err(Refusal::new(code, "the hold was refused")),
            (OrderKind::Deposit, Some(FailCause::Bank(reason))) => Err(Refusal::new(
                RefusalCode::BankDeclined,
                format!("the bank declined: {reason:?}"),
            )),
            (OrderKind::Deposit, Some(FailCause::TimedOut)) => Err(Refusal::new(
                RefusalCode::BankDeclined,
                "the bank did not answer in time",
            )),
            (OrderKind::Deposit, None) if order.status == OrderStatus::Success && order.settled => {
                Ok(FundReply::Done)
            }
            (kind, _) if kind.holds() && order.held => Ok(FundReply::Done),
            _ => Ok(FundReply::Pending),
        }
    }

    /// The record moving `instr` to `status`, if that is one of its legal edges now.
    pub fn move_to(
        &self,
        instr: &InstrId,
        status: OrderStatus,
        fail: Option<FailCause>,
    ) -> Option<ClearingRecord> {
        let order = self.orders.get(instr)?;
        order
            .status
            .may_become(status)
            .then(|| ClearingRecord::Moved {
                instr: instr.clone(),
                status,
                fail,
            })
    }

    /// Orders not finished: not final, or final without their posting.
    pub fn unfinished(&self) -> Vec<InstrId> {
        let open = self
            .orders
            .values()
            .filter(|o| !(o.status.is_final() && o.settled));
        open.map(|o| o.instr.clone()).collect()
    }

    /// Applies one record, asserting the order's legal edges.
    pub fn apply(&mut self, record: ClearingRecord) {
        match record {
            ClearingRecord::Created(order) => {
                assert_eq!(order.status, OrderStatus::Init, "an order is created INIT");
                let fresh = self.orders.insert(order.instr.clone(), order).is_none();
                assert!(fresh, "an instr_id is created once");
            }
            ClearingRecord::Held { instr } => {
                let order = self.order_mut(&instr);
                assert!(order.kind.holds() && !order.held, "{instr} held once");
                order.held = true;
            }
            ClearingRecord::Moved {
                instr,
                status,
                fail,
            } => {
                let order = self.order_mut(&instr);
                assert!(
                    order.status.may_become(status),
                    "{instr}: {:?} → {status:?}",
                    order.status
                );
                order.status = status;
                order.history.push(status);
                order.fail = fail;
                if status == OrderStatus::Success {
                    let bank = order.bank;
                    self.successes.entry(bank).or_default().push(instr);
                }
            }
            ClearingRecord::Corrected { instr } => {
                let order = self.order_mut(&instr);
                assert!(
                    order.status.is_final() && !order.corrected,
                    "{instr} corrected once"
                );
                order.corrected = true;
            }
            ClearingRecord::Settled { instr } => {
                let order = self.order_mut(&instr);
                assert!(
                    order.status.is_final() && !order.settled,
                    "{instr} settles once, final"
                );
                order.settled = true;
            }
        }
    }

    fn order_mut(&mut self, instr: &InstrId) -> &mut ChannelOrder {
        self.orders
            .get_mut(instr)
            .expect("records name existing orders")
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;

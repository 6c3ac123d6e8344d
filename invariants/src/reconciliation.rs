//! Invariant 15, bank reconciliation (对账) at rest: the platform's channel orders and reserve
//! accounts against each bank's own books, instruction by instruction, as an accounting
//! centre matches a bank's statement by `instr_id`:
//!
//! - every final order's outcome is its bank's: SUCCESS ⇔ the bank carried out an instruction
//!   of the same direction and amount (or it bounced and reconciliation corrected the order);
//!   FAIL by the bank ⇔ the bank refused it; a withdrawal whose hold the ledger refused sent
//!   nothing;
//! - every instruction at a bank has its channel order (长款: the bank has it, we do not);
//! - every statement line matches exactly one successful order, and every successful order has
//!   exactly one line (短款: we have it, the bank does not);
//! - each bank's reserve in the ledger (Σ of its sub-accounts, an asset so credit-negative)
//!   equals the bank's balance for the platform; withdrawals in transit net to zero.

use crate::{
    BankInstruction, BankState, BankStatus, ChannelOrderState, ChannelStatus, FundKind, Invariant,
    Observation, Violation,
};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

fn violation(bank: u32, message: String) -> Violation {
    Violation::new(Invariant::Reconciliation, message).with("bank", bank)
}

pub fn check(obs: &Observation) -> Vec<Violation> {
    let c = &obs.clearing;
    let mut out = Vec::new();
    let orders: BTreeMap<&str, &ChannelOrderState> =
        c.orders.iter().map(|o| (o.instr.as_str(), o)).collect();
    for bank in &c.banks {
        let at_bank: BTreeMap<&str, &BankInstruction> = bank
            .instructions
            .iter()
            .map(|i| (i.instr.as_str(), i))
            .collect();
        let of_bank = c.orders.iter().filter(|o| o.bank == bank.bank);
        for o in of_bank.filter(|o| o.status.is_final()) {
            out.extend(outcome(o, at_bank.get(o.instr.as_str()).copied()));
        }
        for i in &bank.instructions {
            if !orders.contains_key(i.instr.as_str()) {
                let msg = format!(
                    "bank {} has instruction {} that no channel order sent (长款)",
                    bank.bank, i.instr
                );
                let date = i.date.map_or("none".to_string(), |d| d.to_string());
                out.push(
                    violation(bank.bank, msg)
                        .with("instr", &i.instr)
                        .with("date", date)
                        .with("amount", i.amount),
                );
            }
        }
        out.extend(statement(bank, &orders));
        out.extend(reserve(obs, bank));
    }
    out.extend(in_transit(obs));
    out.extend(arrivals(obs));
    out.extend(suspense(obs));
    out
}

/// Money held in suspense (挂账: statement lines no order explains), per bank: zero at rest.
fn suspense(obs: &Observation) -> Vec<Violation> {
    let accounts = &obs.clearing.suspense_accounts;
    let mut per_bank: BTreeMap<u32, Decimal> = BTreeMap::new();
    for a in obs.shards.iter().flat_map(|s| &s.accounts) {
        if let Some(bank) = accounts.get(&a.account) {
            *per_bank.entry(*bank).or_default() += a.available + a.frozen;
        }
    }
    let held = per_bank.into_iter().filter(|(_, total)| !total.is_zero());
    held.map(|(bank, total)| {
        let msg = format!(
            "{total} at bank {bank} is still held in suspense at rest: a statement line no \
             channel order explains (长款)"
        );
        violation(bank, msg).with("suspense", total)
    })
    .collect()
}

/// Every successful transfer between reserves (内转) arrived at its receiving bank, once, with
/// its amount.
fn arrivals(obs: &Observation) -> Vec<Violation> {
    let c = &obs.clearing;
    let transfers = c.orders.iter().filter_map(|o| match o.kind {
        FundKind::Transfer { to } if o.status == ChannelStatus::Success => Some((o, to)),
        _ => None,
    });
    let mut out = Vec::new();
    for (o, to) in transfers {
        let bank = c.banks.iter().find(|b| b.bank == to);
        let arrived = bank.and_then(|b| b.instructions.iter().find(|i| i.instr == o.instr));
        if arrived.is_some_and(|i| i.debit && i.amount == o.amount) {
            continue;
        }
        let msg = format!(
            "transfer {} of {} from bank {} never arrived at bank {to}",
            o.instr, o.amount, o.bank
        );
        out.push(
            violation(to, msg)
                .with("instr", &o.instr)
                .with("from", o.bank)
                .with("amount", o.amount),
        );
    }
    out
}

/// An order's outcome against its instruction at the bank.
fn outcome(o: &ChannelOrderState, at_bank: Option<&BankInstruction>) -> Option<Violation> {
    let debit = o.kind == FundKind::Deposit;
    let sent = !o.fail.as_deref().is_some_and(|f| f.starts_with("hold:"));
    let fault = match (o.status, at_bank) {
        (ChannelStatus::Success, Some(i)) if i.status == BankStatus::Success => {
            (i.debit != debit || i.amount != o.amount).then(|| {
                format!(
                    "the bank carried out {} {} (amount mismatch)",
                    direction(i.debit),
                    i.amount
                )
            })
        }
        (ChannelStatus::Fail, Some(i)) if sent && i.status == BankStatus::Fail => None,
        // A payout that bounced after its success (退票): reconciliation found the 短款 and
        // corrected it.
        (ChannelStatus::Success, Some(i)) if o.corrected && i.status == BankStatus::Fail => None,
        (ChannelStatus::Fail, None) if !sent => None,
        (_, Some(i)) => Some(format!("the bank says {:?}", i.status)),
        (_, None) => Some("the bank has no such instruction (短款)".to_string()),
    }?;
    let msg = format!("channel order {} is {:?} but {fault}", o.instr, o.status);
    let date = at_bank
        .and_then(|i| i.date)
        .map_or("none".to_string(), |d| d.to_string());
    Some(
        violation(o.bank, msg)
            .with("instr", &o.instr)
            .with("date", date)
            .with("amount", o.amount)
            .with("status", format!("{:?}", o.status))
            .with("fail", o.fail.as_deref().unwrap_or("none")),
    )
}

fn direction(debit: bool) -> &'static str {
    if debit {
        "a debit of"
    } else {
        "a credit of"
    }
}

/// Statement lines against successful orders, both ways.
fn statement(bank: &BankState, orders: &BTreeMap<&str, &ChannelOrderState>) -> Vec<Violation> {
    let mut lines: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for l in &bank.lines {
        lines.entry(l.instr.as_str()).or_default().push(l.date);
    }
    let mut out = Vec::new();
    for (instr, dates) in &lines {
        let ok = orders
            .get(instr)
            .is_some_and(|o| o.status == ChannelStatus::Success);
        if !ok || dates.len() != 1 {
            let msg = format!(
                "bank {} lists {instr} {} times on its statement, but no single successful order matches it",
                bank.bank,
                dates.len()
            );
            let dates: Vec<String> = dates.iter().map(u32::to_string).collect();
            out.push(
                violation(bank.bank, msg)
                    .with("instr", instr)
                    .with("date", &dates[0])
                    .with("dates", dates.join(",")),
            );
        }
    }
    let succeeded = orders
        .values()
        .filter(|o| o.bank == bank.bank && o.status == ChannelStatus::Success);
    for o in succeeded.filter(|o| !o.corrected && !lines.contains_key(o.instr.as_str())) {
        let msg = format!(
            "channel order {} succeeded but is on no statement of bank {} (短款)",
            o.instr, bank.bank
        );
        out.push(
            violation(bank.bank, msg)
                .with("instr", &o.instr)
                .with("amount", o.amount),
        );
    }
    out
}

/// The bank's reserve in the ledger against the bank's balance for the platform.
fn reserve(obs: &Observation, bank: &BankState) -> Option<Violation> {
    let accounts = &obs.clearing.reserve_accounts;
    let ledger: Decimal = obs
        .shards
        .iter()
        .flat_map(|s| &s.accounts)
        .filter(|a| accounts.get(&a.account) == Some(&bank.bank))
        .map(|a| a.available + a.frozen)
        .sum();
    if -ledger == bank.reserve {
        return None;
    }
    let msg = format!(
        "the ledger holds {} as the reserve at bank {}, but the bank owes the platform {}",
        -ledger, bank.bank, bank.reserve
    );
    Some(
        violation(bank.bank, msg)
            .with("ledger", -ledger)
            .with("statement", bank.reserve),
    )
}

/// Withdrawals in transit, per bank: zero once every order is settled.
fn in_transit(obs: &Observation) -> Vec<Violation> {
    let accounts = &obs.clearing.transit_accounts;
    let mut per_bank: BTreeMap<u32, Decimal> = BTreeMap::new();
    for a in obs.shards.iter().flat_map(|s| &s.accounts) {
        if let Some(bank) = accounts.get(&a.account) {
            *per_bank.entry(*bank).or_default() += a.available + a.frozen;
        }
    }
    per_bank
        .into_iter()
        .filter(|(_, total)| !total.is_zero())
        .map(|(bank, total)| {
            let msg = format!("withdrawals to bank {bank} still hold {total} in transit at rest");
            violation(bank, msg).with("in_transit", total)
        })
        .collect()
}

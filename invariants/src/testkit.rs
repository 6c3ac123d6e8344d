//! Builders for hand-made observations, shared by the checkers' unit tests.
//!
//! [`valid`] is one small but complete run that satisfies every invariant, so each failing test
//! can break exactly one thing in it and know that any violation comes from that change.

use crate::{
    AccountState, FreezeState, Invariant, JournalEntry, Leg, Observation, OpKind, Operation,
    Outcome, ShardSnapshot, Side, Subject, Violation, VoucherRecord,
};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

pub fn account(
    account: u64,
    subject: Subject,
    available: Decimal,
    frozen: Decimal,
) -> AccountState {
    AccountState {
        account,
        subject,
        available,
        frozen,
    }
}

pub fn leg(account: u64, side: Side, amount: Decimal) -> Leg {
    Leg {
        account,
        side,
        amount,
    }
}

/// A two-leg CNY voucher moving `amount` from `from` (debited) to `to` (credited).
pub fn voucher(id: &str, request: &str, from: u64, to: u64, amount: Decimal) -> VoucherRecord {
    VoucherRecord {
        voucher: id.to_string(),
        request: request.to_string(),
        currency: "CNY".to_string(),
        legs: vec![
            leg(from, Side::Debit, amount),
            leg(to, Side::Credit, amount),
        ],
    }
}

/// The journal entries that applying `v` writes, numbered from `first_seq`.
pub fn entries(v: &VoucherRecord, first_seq: u64) -> Vec<JournalEntry> {
    (first_seq..)
        .zip(&v.legs)
        .map(|(seq, l)| JournalEntry {
            seq,
            voucher: v.voucher.clone(),
            account: l.account,
            side: l.side,
            amount: l.amount,
        })
        .collect()
}

pub fn freeze(key: &str, account: u64, amount: Decimal) -> FreezeState {
    FreezeState {
        key: key.to_string(),
        account,
        amount,
    }
}

pub fn op(request: &str, kind: OpKind, amount: Option<Decimal>, outcome: Outcome) -> Operation {
    Operation {
        client: 1,
        request: request.to_string(),
        kind,
        amount,
        invoke_ms: 10,
        complete_ms: 20,
        attempts: 1,
        outcome,
    }
}

/// A shard whose journal is exactly the application of `vouchers`, in order.
fn shard(
    shard: u32,
    accounts: Vec<AccountState>,
    freezes: Vec<FreezeState>,
    vouchers: Vec<VoucherRecord>,
) -> ShardSnapshot {
    let mut journal = Vec::new();
    for v in &vouchers {
        let next = journal.len() as u64 + 1;
        journal.extend(entries(v, next));
    }
    ShardSnapshot {
        shard,
        accounts,
        freezes,
        vouchers,
        journal,
    }
}

/// Shard 0: world 1 funds user 2 with 100; user 2 pays user 3 30, of which 3 has frozen 10.
fn shard_0() -> ShardSnapshot {
    shard(
        0,
        vec![
            account(1, Subject::World, dec!(-100), dec!(0)),
            account(2, Subject::User, dec!(70), dec!(0)),
            account(3, Subject::User, dec!(20), dec!(10)),
        ],
        vec![freeze("f-1", 3, dec!(10))],
        vec![
            voucher("v0-1", "c1-1", 1, 2, dec!(100)),
            voucher("v0-2", "c1-2", 2, 3, dec!(30)),
        ],
    )
}

/// Shard 1: world 11 funds merchant 12 with 50; the platform sweeps 5 into transit 13.
fn shard_1() -> ShardSnapshot {
    shard(
        1,
        vec![
            account(11, Subject::World, dec!(-50), dec!(0)),
            account(12, Subject::Merchant, dec!(45), dec!(0)),
            account(13, Subject::Transit, dec!(5), dec!(0)),
        ],
        vec![],
        vec![
            voucher("v1-1", "c2-1", 11, 12, dec!(50)),
            voucher("v1-2", "sys:sweep-1", 12, 13, dec!(5)),
        ],
    )
}

/// A run that satisfies every invariant, with every outcome represented in its history.
pub fn valid() -> Observation {
    Observation {
        at_ms: 1_000,
        shards: vec![shard_0(), shard_1()],
        history: vec![
            op("c1-0", OpKind::OpenAccount, None, Outcome::Ok),
            op("c1-1", OpKind::Fund, Some(dec!(100)), Outcome::Ok),
            op("c1-2", OpKind::Transfer, Some(dec!(30)), Outcome::Ok),
            op("c2-1", OpKind::Fund, Some(dec!(50)), Outcome::Ok),
            op(
                "c1-3",
                OpKind::Transfer,
                Some(dec!(500)),
                Outcome::Fail("insufficient funds".to_string()),
            ),
            op("c2-2", OpKind::Transfer, Some(dec!(10)), Outcome::Unknown),
        ],
    }
}

/// The single violation in `found`, after checking that it names `invariant`.
pub fn single(mut found: Vec<Violation>, invariant: Invariant) -> Violation {
    assert_eq!(found.len(), 1, "expected one violation, got {found:#?}");
    let only = found.remove(0);
    assert_eq!(only.invariant, invariant);
    only
}

/// One piece of evidence, or "" when it is missing, so that assertions show what was there.
pub fn ev<'a>(v: &'a Violation, key: &str) -> &'a str {
    v.evidence.get(key).map_or("", String::as_str)
}

mod tests {
    use super::valid;

    #[test]
    fn valid_run_passes_every_checker() {
        let found = crate::check_all(&valid());
        assert!(found.is_empty(), "{found:#?}");
    }
}

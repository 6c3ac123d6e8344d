//! Turns the platform's state into the checkers' [`Observation`] vocabulary.

use paylab_invariants as inv;
use paylab_system::ledger::{self, LedgerCore};

fn side(s: ledger::Side) -> inv::Side {
    match s {
        ledger::Side::Debit => inv::Side::Debit,
        ledger::Side::Credit => inv::Side::Credit,
    }
}

fn subject(s: ledger::Subject) -> inv::Subject {
    match s {
        ledger::Subject::User => inv::Subject::User,
        ledger::Subject::Merchant => inv::Subject::Merchant,
        ledger::Subject::Transit => inv::Subject::Transit,
        ledger::Subject::World => inv::Subject::World,
    }
}

/// A god's-eye snapshot of one ledger shard.
pub fn shard_snapshot(core: &LedgerCore) -> inv::ShardSnapshot {
    inv::ShardSnapshot {
        shard: core.shard().0,
        accounts: core
            .accounts()
            .map(|a| inv::AccountState {
                account: a.id.0,
                subject: subject(a.subject),
                available: a.available,
                frozen: a.frozen,
            })
            .collect(),
        freezes: core
            .freezes()
            .map(|f| inv::FreezeState {
                key: f.key.clone(),
                account: f.account.0,
                amount: f.amount.value(),
            })
            .collect(),
        vouchers: core
            .vouchers()
            .iter()
            .map(|v| inv::VoucherRecord {
                voucher: v.id.to_string(),
                request: v.request.to_string(),
                currency: paylab_system::money::CURRENCY.to_string(),
                legs: v
                    .legs
                    .iter()
                    .map(|l| inv::Leg {
                        account: l.account.0,
                        side: side(l.side),
                        amount: l.amount.value(),
                    })
                    .collect(),
            })
            .collect(),
        journal: core
            .journal()
            .iter()
            .map(|e| inv::JournalEntry {
                seq: e.seq,
                voucher: e.voucher.to_string(),
                account: e.account.0,
                side: side(e.side),
                amount: e.amount.value(),
            })
            .collect(),
    }
}

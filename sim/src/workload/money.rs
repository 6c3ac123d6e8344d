//! Money that keeps flowing: the clients' own estimate of every customer balance they
//! touch, and the thresholds at which a buyer tops up from the world account or a merchant
//! withdraws to it.
//!
//! The estimate is deliberately pessimistic, so that acting on it never overdraws: a debit
//! whose answer is unknown counts as applied, a credit whose answer is unknown as not applied,
//! and a refund's debit of its merchant is reserved from the moment it is asked. It is shared
//! by every client of a run (a merchant is paid by everyone) and only read or written between
//! two awaits, so the single-threaded simulator orders every access deterministically.

use paylab_system::AccountId;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A buyer about to spend more than its estimated balance first tops up this much on top of
/// what it is about to spend (500 yuan, in fen).
pub const TOP_UP_FEN: i64 = 50_000;

/// A merchant whose estimated balance grows beyond this (20,000 yuan) withdraws down to
/// [`MERCHANT_KEEP_FEN`]. High enough that the default run (100 steps per client) never
/// withdraws and so asks the operations it always asked.
pub const WITHDRAW_ABOVE_FEN: i64 = 2_000_000;

/// What a merchant keeps after a withdrawal (5,000 yuan): the float its refunds come from.
pub const MERCHANT_KEEP_FEN: i64 = 500_000;

/// When a withdrawal is taken, and what is kept: (above, keep), in fen.
pub type Threshold = (i64, i64);

/// With banks, money leaves through them in every run: a merchant withdraws its takings above
/// 6,000 yuan down to 2,000, and a user its balance above 1,000 yuan (refunds, transfers
/// received) down to 200, each to its card.
pub fn withdrawal_thresholds(banks: u32) -> (Threshold, Option<Threshold>) {
    if banks == 0 {
        ((WITHDRAW_ABOVE_FEN, MERCHANT_KEEP_FEN), None)
    } else {
        ((600_000, 200_000), Some((100_000, 20_000)))
    }
}

/// One short buyer in this many pays without looking at its balance (no top-up), so that
/// refused payments (a TCC Try refused, its activity rolled back) stay part of every run.
pub const SHORT_PAYS_UNCHECKED: u64 = 3;

/// Whether the short buyer of `request` pays without topping up first: a hash of the request
/// id, so the choice draws nothing from any stream and the same request always decides alike.
pub fn pays_without_looking(request: &str) -> bool {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    h.write(request.as_bytes());
    h.finish() % SHORT_PAYS_UNCHECKED == 0
}

/// The clients' estimates of the balances they touch, in fen.
#[derive(Debug, Clone, Default)]
pub struct Balances(Arc<Mutex<BTreeMap<AccountId, i64>>>);

impl Balances {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<AccountId, i64>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The estimated balance of `account` (0 if never touched).
    pub fn get(&self, account: AccountId) -> i64 {
        self.lock().get(&account).copied().unwrap_or(0)
    }

    /// Adds `fen` (negative: subtracts) to the estimate of `account`.
    pub fn add(&self, account: AccountId, fen: i64) {
        *self.lock().entry(account).or_insert(0) += fen;
    }

    /// How much a buyer must top up before spending `spend_fen`, if anything.
    pub fn top_up_needed(&self, account: AccountId, spend_fen: i64) -> Option<i64> {
        (self.get(account) < spend_fen).then_some(spend_fen + TOP_UP_FEN)
    }

    /// How much a merchant should withdraw now, if anything. The amount is reserved (taken
    /// off the estimate) at once, so that a second look before the answer withdraws nothing.
    pub fn take_withdrawal(&self, account: AccountId, (above, keep): Threshold) -> Option<i64> {
        let mut map = self.lock();
        let balance = map.entry(account).or_insert(0);
        if *balance <= above {
            return None;
        }
        let amount = *balance - keep;
        *balance -= amount;
        Some(amount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buyer_tops_up_only_when_short_and_a_merchant_withdraws_once() {
        let (buyer, merchant) = (AccountId(10), AccountId(11));
        let b = Balances::default();
        b.add(buyer, 1_000);
        assert_eq!(b.top_up_needed(buyer, 1_000), None);
        assert_eq!(b.top_up_needed(buyer, 1_001), Some(1_001 + TOP_UP_FEN));
        b.add(merchant, WITHDRAW_ABOVE_FEN);
        assert_eq!(
            b.take_withdrawal(merchant, (WITHDRAW_ABOVE_FEN, MERCHANT_KEEP_FEN)),
            None
        );
        b.add(merchant, 1);
        let amount = WITHDRAW_ABOVE_FEN + 1 - MERCHANT_KEEP_FEN;
        assert_eq!(
            b.take_withdrawal(merchant, (WITHDRAW_ABOVE_FEN, MERCHANT_KEEP_FEN)),
            Some(amount)
        );
        assert_eq!(
            b.take_withdrawal(merchant, (WITHDRAW_ABOVE_FEN, MERCHANT_KEEP_FEN)),
            None
        );
        assert_eq!(b.get(merchant), MERCHANT_KEEP_FEN);
    }
}

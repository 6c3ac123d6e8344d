//! Overflow-safe arithmetic on amounts, shared by the checkers.
//!
//! `Decimal`'s operators panic when a result leaves its range, and a checker must never panic
//! on any input, however absurd. So every sum here is checked: `None` means "overflowed", and
//! an overflowed quantity never counts as equal to anything, because it cannot be verified.

use crate::{AccountState, Leg, Side};
use rust_decimal::Decimal;

/// Sums amounts, or `None` if the sum leaves `Decimal`'s range.
pub(crate) fn checked_sum<I: IntoIterator<Item = Decimal>>(amounts: I) -> Option<Decimal> {
    amounts
        .into_iter()
        .try_fold(Decimal::ZERO, |acc, x| acc.checked_add(x))
}

/// Σ of the amounts of the legs on one side of a voucher.
pub(crate) fn side_total(legs: &[Leg], side: Side) -> Option<Decimal> {
    checked_sum(legs.iter().filter(|l| l.side == side).map(|l| l.amount))
}

/// An account's whole balance: what it may spend plus what is reserved.
pub(crate) fn balance(account: &AccountState) -> Option<Decimal> {
    account.available.checked_add(account.frozen)
}

/// A journal entry's effect on its account's balance, which is credit-positive.
pub(crate) fn signed(side: Side, amount: Decimal) -> Decimal {
    match side {
        Side::Credit => amount,
        Side::Debit => -amount,
    }
}

/// Whether two checked quantities are known to be equal; an overflow is never equal.
pub(crate) fn same(a: Option<Decimal>, b: Option<Decimal>) -> bool {
    matches!((a, b), (Some(x), Some(y)) if x == y)
}

/// Renders a checked quantity for messages and evidence.
pub(crate) fn show(amount: Option<Decimal>) -> String {
    amount.map_or_else(|| "overflow".to_string(), |a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn sums_and_compares_within_range() {
        assert_eq!(checked_sum([dec!(1.5), dec!(2)]), Some(dec!(3.5)));
        assert!(same(Some(dec!(1.0)), Some(dec!(1.00))));
        assert_eq!(show(Some(dec!(7))), "7");
    }

    #[test]
    fn overflow_is_none_and_never_equal() {
        let sum = checked_sum([Decimal::MAX, Decimal::MAX]);
        assert_eq!(sum, None);
        assert!(!same(sum, sum));
        assert_eq!(show(sum), "overflow");
    }
}

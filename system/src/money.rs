//! Money: a positive CNY amount with exactly two decimals and a stated maximum.
//!
//! Every way of building an [`Amount`] validates: negative, zero, more than two decimals, or
//! above [`Amount::MAX_YUAN`] are typed errors, never a panic and never silent rounding.
//! Balances (which may be negative, e.g. the world account) are plain `Decimal`s at scale 2.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The only currency the platform books.
pub const CURRENCY: &str = "CNY";

/// Decimal places of a CNY amount (fen).
pub const SCALE: u32 = 2;

/// Why a value is not a valid amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount {0} is negative")]
    Negative(String),
    #[error("amount must be greater than zero")]
    Zero,
    #[error("amount {0} has more than {SCALE} decimal places")]
    TooPrecise(String),
    #[error("amount {0} is above the maximum of {max} CNY", max = Amount::MAX_YUAN)]
    TooLarge(String),
    #[error("'{0}' is not a decimal amount")]
    Malformed(String),
    #[error("amount arithmetic overflowed")]
    Overflow,
}

/// A strictly positive amount of CNY with at most two decimals, at most [`Amount::MAX_YUAN`].
///
/// Serialized as an integer number of fen so that logs are compact and exact; deserializing
/// validates again, so a corrupt log cannot smuggle in an invalid amount.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Amount(Decimal);

impl Amount {
    /// The largest single amount the platform accepts: ten billion yuan.
    pub const MAX_YUAN: i64 = 10_000_000_000;

    /// Validates a decimal as an amount.
    pub fn new(value: Decimal) -> Result<Self, MoneyError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MoneyError::Negative(value.to_string()));
        }
        if value.is_zero() {
            return Err(MoneyError::Zero);
        }
        if value.normalize().scale() > SCALE {
            return Err(MoneyError::TooPrecise(value.to_string()));
        }
        if value > Decimal::from(Self::MAX_YUAN) {
            return Err(MoneyError::TooLarge(value.to_string()));
        }
        let mut v = value;
        v.rescale(SCALE);
        Ok(Amount(v))
    }

    /// Builds an amount from an integer number of fen (1 fen = 0.01 CNY).
    pub fn from_fen(fen: i64) -> Result<Self, MoneyError> {
        Self::new(Decimal::new(fen, SCALE))
    }

    /// The amount in fen; exact because the scale is fixed at two.
    pub fn fen(self) -> i64 {
        let m = self.0.mantissa();
        debug_assert_eq!(self.0.scale(), SCALE);
        // Bounded by MAX_YUAN * 100, so it always fits.
        m as i64
    }

    pub fn value(self) -> Decimal {
        self.0
    }

    /// Adds two amounts, refusing to exceed the maximum.
    pub fn checked_add(self, other: Amount) -> Result<Amount, MoneyError> {
        let sum = self.0.checked_add(other.0).ok_or(MoneyError::Overflow)?;
        Amount::new(sum)
    }
}

impl FromStr for Amount {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        let value = Decimal::from_str_exact(trimmed).map_err(|e| match e {
            rust_decimal::Error::Underflow => MoneyError::TooPrecise(trimmed.to_string()),
            rust_decimal::Error::ExceedsMaximumPossibleValue
            | rust_decimal::Error::LessThanMinimumPossibleValue => {
                MoneyError::TooLarge(trimmed.to_string())
            }
            // Anything else that still looks like a number is too long to represent.
            _ if looks_numeric(trimmed) => match trimmed.starts_with('-') {
                true => MoneyError::Negative(trimmed.to_string()),
                false => MoneyError::TooLarge(trimmed.to_string()),
            },
            _ => MoneyError::Malformed(trimmed.to_string()),
        })?;
        Amount::new(value)
    }
}

/// `[+-]digits[.digits]`: the shape of a plain decimal literal.
fn looks_numeric(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let mut parts = body.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

impl TryFrom<i64> for Amount {
    type Error = MoneyError;
    fn try_from(fen: i64) -> Result<Self, Self::Error> {
        Amount::from_fen(fen)
    }
}

impl From<Amount> for i64 {
    fn from(a: Amount) -> i64 {
        a.fen()
    }
}

impl From<Amount> for Decimal {
    fn from(a: Amount) -> Decimal {
        a.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {CURRENCY}", self.0)
    }
}

/// A zero balance at the money scale.
pub fn zero() -> Decimal {
    Decimal::new(0, SCALE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    #[test]
    fn accepts_valid_amounts_at_scale_two() {
        let a: Amount = "12.3".parse().unwrap();
        assert_eq!(a.to_string(), "12.30");
        assert_eq!(a.fen(), 1230);
        assert_eq!(Amount::new(dec!(0.01)).unwrap().fen(), 1);
        assert_eq!(
            Amount::new(Decimal::from(Amount::MAX_YUAN)).unwrap().fen(),
            Amount::MAX_YUAN * 100
        );
    }

    #[test]
    fn rejects_each_kind_of_bad_amount_with_its_own_error() {
        assert!(matches!(
            "-1".parse::<Amount>(),
            Err(MoneyError::Negative(_))
        ));
        assert_eq!("0".parse::<Amount>(), Err(MoneyError::Zero));
        assert_eq!("0.00".parse::<Amount>(), Err(MoneyError::Zero));
        assert!(matches!(
            "1.001".parse::<Amount>(),
            Err(MoneyError::TooPrecise(_))
        ));
        assert!(matches!(
            "10000000000.01".parse::<Amount>(),
            Err(MoneyError::TooLarge(_))
        ));
        assert!(matches!(
            "99999999999999999999999999999999".parse::<Amount>(),
            Err(MoneyError::TooLarge(_))
        ));
        assert!(matches!(
            "abc".parse::<Amount>(),
            Err(MoneyError::Malformed(_))
        ));
        assert!(matches!(Amount::from_fen(-5), Err(MoneyError::Negative(_))));
    }

    #[test]
    fn trailing_zeros_beyond_two_places_are_not_extra_precision() {
        assert_eq!("1.2300".parse::<Amount>().unwrap().fen(), 123);
    }

    #[test]
    fn addition_refuses_to_pass_the_maximum() {
        let max = Amount::new(Decimal::from(Amount::MAX_YUAN)).unwrap();
        let one = Amount::from_fen(1).unwrap();
        assert!(matches!(max.checked_add(one), Err(MoneyError::TooLarge(_))));
    }

    #[test]
    fn deserializing_validates_again() {
        let bytes = bincode::serialize(&-3i64).unwrap();
        assert!(bincode::deserialize::<Amount>(&bytes).is_err());
    }

    proptest! {
        #[test]
        fn fen_round_trips(fen in 1i64..=Amount::MAX_YUAN * 100) {
            let a = Amount::from_fen(fen).unwrap();
            prop_assert_eq!(a.fen(), fen);
            let back: Amount = bincode::deserialize(&bincode::serialize(&a).unwrap()).unwrap();
            prop_assert_eq!(back, a);
            prop_assert_eq!(a.to_string().parse::<Amount>().unwrap(), a);
        }
    }
}

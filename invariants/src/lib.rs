//! paylab's invariants: pure functions from an [`Observation`] to [`Violation`]s.
//!
//! One file per invariant family. No simulator, no clock, no I/O: every checker can be (and is)
//! unit-tested on hand-built observations, with at least one case that passes and one that fails.

pub mod conservation;
pub mod derivation;
pub mod exactly_once;
mod money;
pub mod non_negativity;
pub mod observation;
pub mod violation;
pub mod voucher_balance;

#[cfg(test)]
mod testkit;

pub use observation::*;
pub use violation::{Invariant, Violation};

/// Runs every checker on one observation, in a fixed order.
pub fn check_all(obs: &Observation) -> Vec<Violation> {
    let mut out = Vec::new();
    out.extend(voucher_balance::check(obs));
    out.extend(conservation::check(obs));
    out.extend(derivation::check(obs));
    out.extend(non_negativity::check(obs));
    out.extend(exactly_once::check(obs));
    out
}

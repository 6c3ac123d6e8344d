//! paylab's invariants: pure functions from an [`Observation`] to [`Violation`]s.
//!
//! One file per invariant family (numbered as in `docs/DOMAIN.md`). No simulator, no clock, no
//! I/O: every checker can be (and is) unit-tested on hand-built observations, with at least one
//! case that passes and one that fails; the tests live in a sibling `<family>/tests.rs`.
//!
//! Two families, by when they hold:
//!
//! - **always** ([`check_always`]), at every god's-eye snapshot, even mid-flight:
//!   1 [`voucher_balance`], 2 [`conservation`], 3 [`derivation`], 4 [`non_negativity`],
//!   6 [`exactly_once`] (its per-request rules hold at any time, since an operation still in
//!   flight is recorded as unknown), 7 [`idempotency`], 8 [`refund_bound`],
//!   10 [`transitions`] (legal transitions);
//! - **quiescent** ([`check_quiescent`]), only once faults are healed and every flow drained:
//!   9 [`trade_ledger`] (trade–ledger agreement), 11 [`atomicity`],
//!   12 [`reservation_release`], 13 [`message_completeness`], 14 [`replicas`] (read replicas
//!   agree with the committed events and never move backwards), and the merchant
//!   [`notification`] outcome, and 21 [`authorization`] (no unauthorized effect: its rules
//!   hold at any time, but effects only accumulate, so judging once at rest sees them all, in
//!   one linear pass), and the [`clearing`] layer (channel orders' transitions and postings,
//!   each bank's books, and 15 [`reconciliation`] against every bank's statement). Mid-flight
//!   the others would report work in progress. The message-layer and clearing ones say
//!   nothing about a run without them.
//!
//! [`check_all`] runs both, for a snapshot taken at rest.
//!
//! One checker reads no snapshot: 19 [`durability`] (group-commit form) judges the breaches the
//! platform's logs record as each sync returns, handed over by the harness at every check.
//!
//! Liveness ([`liveness`]) is not a violation but a list of what is still unfinished; the
//! harness drains until it is empty and fails the run on liveness if it never is.

pub mod atomicity;
pub mod authorization;
pub mod clearing;
pub mod compensation;
pub mod conservation;
pub mod delta;
pub mod derivation;
pub mod durability;
pub mod exactly_once;
mod fences;
pub mod idempotency;
pub mod incremental;
mod index;
pub mod isolation;
pub mod journal;
pub mod kept;
pub mod liveness;
pub mod message_completeness;
mod money;
pub mod non_negativity;
pub mod notification;
pub mod observation;
pub mod reconciliation;
pub mod refund_bound;
pub mod replicas;
pub mod reservation_release;
pub mod small_set;
pub mod trade_ledger;
pub mod transitions;
pub mod violation;
pub mod voucher_balance;
pub mod world;

#[cfg(test)]
mod testkit;

pub use delta::{Changes, Delta, OpChange, ShardDelta};
pub use durability::SyncBreach;
pub use incremental::IncrementalChecker;
pub use liveness::Unfinished;
pub use observation::*;
pub use violation::{Invariant, Violation};

/// Runs the checkers that hold at every snapshot, in a fixed order.
pub fn check_always(obs: &Observation) -> Vec<Violation> {
    let mut out = Vec::new();
    out.extend(voucher_balance::check(obs));
    out.extend(conservation::check(obs));
    out.extend(derivation::check(obs));
    out.extend(non_negativity::check(obs));
    out.extend(exactly_once::check(obs));
    out.extend(idempotency::check(obs));
    out.extend(refund_bound::check(obs));
    out.extend(transitions::check(obs));
    out
}

/// Runs the checkers that hold only at rest (after heal and drain), in a fixed order.
pub fn check_quiescent(obs: &Observation) -> Vec<Violation> {
    let mut out = Vec::new();
    out.extend(trade_ledger::check(obs));
    out.extend(atomicity::check(obs));
    out.extend(reservation_release::check(obs));
    out.extend(message_completeness::check(obs));
    out.extend(replicas::check(obs));
    out.extend(notification::check(obs));
    out.extend(authorization::check(obs));
    out.extend(clearing::check(obs));
    out.extend(isolation::check(obs));
    out.extend(compensation::check(obs));
    out
}

/// Runs every checker, the always ones first: for an observation taken at rest.
pub fn check_all(obs: &Observation) -> Vec<Violation> {
    let mut out = check_always(obs);
    out.extend(check_quiescent(obs));
    out
}

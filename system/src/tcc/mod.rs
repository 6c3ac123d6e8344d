//! TCC flexible transactions (柔性事务): the business-activity manager and its participant.
//!
//! - [`manager`] and [`engine`]: the manager that drives Try, the decision, and
//!   Confirm/Cancel, and resumes after a restart; its business-activity log is a
//!   [`crate::movement::MovementLog`].
//! - [`fence`] and [`participant`]: the ledger side: Try/Confirm/Cancel with a fence row per
//!   (xid, branch), a pure sub-state machine the ledger core hosts.

pub mod engine;
pub mod fence;
pub mod manager;
pub mod participant;

pub use crate::movement::{Branch, MovementLog, MovementRecord, MovementView, Phase};
pub use manager::{TccConfig, TccManager};

//! TCC flexible transactions (柔性事务): the business-activity manager and its log.
//!
//! - [`activity`]: the activity log's records and their fold (statuses and legal edges).
//! - [`manager`]: the manager that drives Try, the decision, and Confirm/Cancel, and resumes
//!   after a restart.
//!
//! The participant side (Try/Confirm/Cancel with the fence) lives in the ledger
//! (`ledger::core` and `ledger::fence`).

pub mod activity;
pub mod engine;
pub mod manager;

pub use activity::{Activity, ActivityLog, ActivityRecord, ActivityStatus, Branch};
pub use manager::{TccConfig, TccManager};

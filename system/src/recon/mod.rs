//! Reconciliation (核算中心 / 对账): after each bank date's statement is published, matches it
//! line by line with the gateway's channel orders by `instr_id` and repairs what differs,
//! idempotently and durably: an order not final that the statement shows carried out is
//! resolved by the statement (长款 by timing), a final status at odds with the bank's is
//! corrected (长款 / 短款, a short confirmed by query first), a line no order knows is held
//! as a difference for the next statement. Its cursor (the last reconciled date per bank) and
//! the lines it has seen are in its log, so a crash mid-run resumes at the same date.

pub mod core;
pub mod node;

pub use self::core::{ReconCore, ReconRecord};
pub use node::{ReconConfig, ReconNode};

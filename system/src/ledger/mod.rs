//! The account ledger (账务): sharded double-entry bookkeeping.
//!
//! - [`types`]: subjects, legs, vouchers, journal entries, the RPC's commands and replies.
//! - [`core`]: one shard's deterministic state machine (decide → record → apply).
//! - [`fence`]: the TCC fence rules per (xid, branch), to be written with each branch's effect.
//! - [`node`]: the node shell: RPC, durable log, recovery after a crash.

pub mod access;
pub mod changes;
pub mod core;
mod credits;
pub mod fence;
pub mod node;
pub mod types;

pub use self::changes::LedgerChanges;
pub use self::core::{Decision, LedgerCore, LedgerRecord};
pub use fence::{BranchKey, FenceRefusal, FenceState};
pub use node::{LedgerConfig, LedgerNode};
pub use types::*;

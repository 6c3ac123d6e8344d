//! The account ledger (账务): sharded double-entry bookkeeping.
//!
//! - [`types`]: subjects, legs, vouchers, journal entries, the RPC's commands and replies.
//! - [`books`]: a shard's books: accounts, freezes, vouchers, journal, idempotency.
//! - [`participant`]: the seam the strategies' participants plug into (one trait, one record
//!   variant); the participants live in their strategies' folders.
//! - [`core`]: one shard's deterministic state machine (decide → record → apply): the books
//!   and the participants they host.
//! - [`node`]: the node shell: RPC, durable log, recovery after a crash.

pub mod access;
pub mod books;
pub mod changes;
pub mod core;
mod credits;
pub mod node;
pub mod participant;
pub mod types;

pub use self::books::{Books, Decision, Outcome};
pub use self::changes::LedgerChanges;
pub use self::core::{LedgerCore, LedgerRecord};
pub use crate::tcc::fence::{self, BranchKey, FenceRefusal, FenceState};
pub use node::{LedgerConfig, LedgerNode};
pub use participant::{LedgerParticipant, ParticipantRecord};
pub use types::*;

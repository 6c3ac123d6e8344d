//! Durability (invariant 19), in three forms, each checked at the moment it happens:
//!
//! - **group commit**: every sync of a node's log that returns has made durable every byte the
//!   log held when that call began;
//! - **reply**: every reply the ledger, trade, broker, payment, replica and notifier shells
//!   send (to a client, another service, or the consumer runtime that then commits an offset)
//!   leaves with every byte its log held at the reply's decision point durable (the reply's
//!   own record, or the earlier record a repeat answers from, both appended before that point);
//! - **recovery** (crash-time): after every restart, the replayed log holds every byte some
//!   sync or reply had promised before the crash.
//!
//! Not from a snapshot: the platform's log compares, as each sync returns, each reply leaves or
//! each replay ends, what was promised with what the disk holds, and the harness hands every
//! breach over as a [`SyncBreach`] (`call` says which form). A breach is an acknowledgement
//! that a power loss right then could take back, whether or not a crash comes to prove it. The
//! broker under async flush is unsafe by design and not witnessed.

use crate::{Invariant, Violation};
use serde::{Deserialize, Serialize};

/// A sync that returned before the bytes it promised were durable, as the harness saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncBreach {
    /// The node whose log it is (`role/index`).
    pub node: String,
    /// The log's file on the node's disk.
    pub file: String,
    /// Which call returned (`sync`, `sync_unshared`), `reply` for a reply that left the node,
    /// or `recovery` for a replay after a restart.
    pub call: String,
    /// The file's length when the call began: what its return promised durable.
    pub promised_len: u64,
    /// The file's durable length when it returned.
    pub durable_len: u64,
    /// When it returned: simulated ms since the run began.
    pub at_ms: u64,
}

/// One violation per breach, in the order they happened.
pub fn check(breaches: &[SyncBreach]) -> Vec<Violation> {
    breaches.iter().map(violation).collect()
}

fn violation(b: &SyncBreach) -> Violation {
    let msg = if b.call == "reply" {
        format!(
            "a reply left {} at {} ms with {} of the {} bytes of {} it depends on durable",
            b.node, b.at_ms, b.durable_len, b.promised_len, b.file
        )
    } else if b.call == "recovery" {
        format!(
            "{} recovered {} of the {} bytes of {} acknowledged before its restart at {} ms",
            b.node, b.durable_len, b.promised_len, b.file, b.at_ms
        )
    } else {
        format!(
            "{} of {} on {} returned at {} ms with {} of the {} bytes it promised durable",
            b.call, b.file, b.node, b.at_ms, b.durable_len, b.promised_len
        )
    };
    Violation::new(Invariant::Durability, msg)
        .with("node", &b.node)
        .with("file", &b.file)
        .with("call", &b.call)
        .with("promised_len", b.promised_len)
        .with("durable_len", b.durable_len)
        .with("at_ms", b.at_ms)
}

#[cfg(test)]
mod tests;

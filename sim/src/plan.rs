//! The fault plan of a run, derived from the seed on its own RNG stream.
//!
//! The plan is data: printed first, saved in reports, and (in a later step) replayable as is.
//! It is drawn from a stream separate from the workload's, so changing the faults does not
//! change what the clients do.

use crate::config::RunConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Mixed into the seed to give the plan its own stream.
const PLAN_STREAM: u64 = 0x5041_594c_4142_504c; // "PAYLABPL"

/// One crash of one node: killed once `after_ops` client operations have completed (so it
/// always lands mid-load, whatever the load's size), its unsynced writes lost (a torn tail left
/// behind when `torn_keep` is set), restarted `down_ms` later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crash {
    pub node: String,
    pub after_ops: u64,
    pub down_ms: u64,
    /// Fraction of the unsynced tail that survives as a torn write, if any.
    pub torn_keep: Option<f64>,
}

/// The faults of the faulted phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    /// madsim packet loss on every datagram (requests and replies).
    pub packet_loss_rate: f64,
    /// Probability that the transport delivers a request twice.
    pub duplicate_rate: f64,
    /// Probability that the transport holds a request back, for `delay_ms` (a range).
    pub delay_rate: f64,
    pub delay_ms: (u64, u64),
    pub crashes: Vec<Crash>,
}

impl FaultPlan {
    /// Draws the plan for a run. Every run crashes one to three nodes (ledger, trade or
    /// payment) mid-load; the first crash is always a ledger node.
    pub fn generate(config: &RunConfig) -> FaultPlan {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ PLAN_STREAM);
        let packet_loss_rate = [0.0, 0.005, 0.01, 0.02][rng.gen_range(0..4)];
        let duplicate_rate = [0.0, 0.01, 0.03][rng.gen_range(0..3)];
        // Held back longer than a Try's timeout, so that a Try can arrive after its Cancel.
        let delay_rate = [0.0, 0.01, 0.03][rng.gen_range(0..3)];
        let delay_ms = (100, 2_000);
        let crash_count = rng.gen_range(1..=3);
        let total = config.total_ops();
        let crashes = (0..crash_count)
            .map(|i| {
                let node = match if i == 0 { 0 } else { rng.gen_range(0..3) } {
                    0 => format!("ledger-{}", rng.gen_range(0..config.shards)),
                    1 => format!("trade-{}", rng.gen_range(0..config.trade_shards)),
                    _ => format!("payment-{}", rng.gen_range(0..config.payment_nodes)),
                };
                Crash {
                    node,
                    after_ops: rng.gen_range(total / 10..=total * 7 / 10),
                    down_ms: rng.gen_range(50..2_000),
                    torn_keep: rng.gen_bool(0.5).then(|| rng.gen_range(0.0..1.0)),
                }
            })
            .collect();
        FaultPlan {
            packet_loss_rate,
            duplicate_rate,
            delay_rate,
            delay_ms,
            crashes,
        }
    }
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loss={:.1}% duplicate={:.0}% delay={:.0}%",
            self.packet_loss_rate * 100.0,
            self.duplicate_rate * 100.0,
            self.delay_rate * 100.0
        )?;
        for c in &self.crashes {
            write!(
                f,
                " crash({} after {} ops for {}ms{})",
                c.node,
                c.after_ops,
                c.down_ms,
                if c.torn_keep.is_some() { ", torn" } else { "" }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_a_function_of_the_seed_and_always_crashes_a_ledger_first() {
        let a = FaultPlan::generate(&RunConfig::new(7));
        assert_eq!(a, FaultPlan::generate(&RunConfig::new(7)));
        assert_ne!(a, FaultPlan::generate(&RunConfig::new(8)));
        for seed in 0..100 {
            let p = FaultPlan::generate(&RunConfig::new(seed));
            assert!(!p.crashes.is_empty());
            assert!(p.crashes[0].node.starts_with("ledger-"));
        }
    }
}

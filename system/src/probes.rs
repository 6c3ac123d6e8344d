//! Coverage probes: named counters of the fault kinds and protocol corners a run reached.
//!
//! A scenario test asserts its probe fired, so it proves it reached its corner rather than
//! merely not breaking. Each simulation owns its own [`Probes`] (no global state).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A cloneable handle to one run's probe counters.
#[derive(Debug, Default, Clone)]
pub struct Probes {
    counts: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    /// RPC sends (every attempt), kept apart from the probes: it is on the hot path.
    rpc_calls: Arc<AtomicU64>,
}

impl Probes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that the corner `name` was reached once more.
    pub fn hit(&self, name: &'static str) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry(name).or_insert(0) += 1;
    }

    /// Counts one RPC send.
    pub fn rpc_call(&self) {
        self.rpc_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// RPC sends so far.
    pub fn rpc_calls(&self) -> u64 {
        self.rpc_calls.load(Ordering::Relaxed)
    }

    pub fn count(&self, name: &str) -> u64 {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.get(name).copied().unwrap_or(0)
    }

    /// Every probe that fired, in name order.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }
}

/// The names of the probes the platform and harness fire, in one place.
pub mod names {
    pub const NODE_CRASH: &str = "fault.crash";
    pub const POWER_LOSS_DROPPED: &str = "fault.power-loss-dropped-writes";
    pub const TORN_TAIL: &str = "fault.torn-tail";
    pub const DUPLICATE_DELIVERED: &str = "fault.duplicate-delivered";
    pub const MESSAGE_DELAYED: &str = "fault.message-delayed";
    pub const RPC_TIMEOUT: &str = "rpc.timeout";
    pub const LEDGER_RECOVERED: &str = "ledger.recovered-from-log";
    pub const LEDGER_TORN_TAIL_CUT: &str = "ledger.torn-tail-cut";
    /// Any node's log replay cut a torn tail (ledger, trade, payment order or activity log).
    pub const RECOVERY_TORN_TAIL_CUT: &str = "recovery.torn-tail-cut";
    pub const LEDGER_IDEMPOTENT_REPLAY: &str = "ledger.idempotent-replay";
    pub const LEDGER_INSUFFICIENT_FUNDS: &str = "ledger.insufficient-funds";
    pub const TCC_EMPTY_ROLLBACK: &str = "tcc.empty-rollback";
    pub const TCC_LATE_TRY_REFUSED: &str = "tcc.late-try-refused";
    pub const TCC_CONFIRM_REPEAT_ABSORBED: &str = "tcc.confirm-repeat-absorbed";
    pub const TCC_CANCEL_REPEAT_ABSORBED: &str = "tcc.cancel-repeat-absorbed";
    pub const TCC_TRY_TIMEOUT: &str = "tcc.try-timed-out";
    pub const TCC_TRY_REFUSED: &str = "tcc.try-refused";
    pub const TCC_PHASE_TWO_RETRY: &str = "tcc.phase-two-retry";
    pub const TCC_RESUMED_COMMIT: &str = "tcc.manager-resumed-commit";
    pub const TCC_RESUMED_ROLLBACK: &str = "tcc.manager-resumed-rollback";
    pub const TCC_HEURISTIC: &str = "tcc.heuristic-outcome";
    pub const TRADE_RECOVERED: &str = "trade.recovered-from-log";
    pub const TRADE_CLOSED_BY_TIMEOUT: &str = "trade.closed-by-timeout";
    pub const TRADE_REFUND_BOUND_REFUSED: &str = "trade.refund-over-bound-refused";
    pub const TRADE_DUPLICATE_CREATE: &str = "trade.duplicate-create-absorbed";
    pub const PAYMENT_RECOVERED: &str = "payment.recovered-from-log";
    pub const PAYMENT_ORDER_RESUMED: &str = "payment.order-resumed";
    pub const PAYMENT_FORWARDED: &str = "payment.forwarded-to-owner";
    pub const PAYMENT_REPLAYED_OUTCOME: &str = "payment.replayed-outcome";
    pub const CLIENT_RETRY: &str = "client.retry";
    pub const CLIENT_UNKNOWN: &str = "client.unknown-outcome";
}

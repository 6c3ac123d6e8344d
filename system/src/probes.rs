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
    pub const BROKER_RECOVERED: &str = "broker.recovered-from-log";
    /// A broker restart found fewer records than it had written: unsynced writes were lost.
    pub const BROKER_LOST_UNSYNCED: &str = "broker.lost-unsynced-writes";
    pub const BROKER_CHECK_SENT: &str = "broker.check-back-sent";
    pub const BROKER_HALF_COMMITTED_BY_CHECK: &str = "broker.half-committed-by-check";
    pub const BROKER_HALF_ROLLED_BACK_BY_CHECK: &str = "broker.half-rolled-back-by-check";
    pub const BROKER_HALF_DISCARDED: &str = "broker.half-discarded";
    pub const BROKER_RETRY_SCHEDULED: &str = "broker.retry-scheduled";
    pub const BROKER_DEAD_LETTERED: &str = "broker.dead-lettered";
    pub const OUTBOX_RELAYED: &str = "outbox.relayed";
    pub const OUTBOX_RESENT: &str = "outbox.resent-by-scan";
    /// The resender sent a row that was committed before the node's last restart.
    pub const OUTBOX_RESENT_AFTER_RESTART: &str = "outbox.resent-after-restart";
    pub const TXMSG_HALF_SENT: &str = "txmsg.half-sent";
    pub const TXMSG_LOCAL_ABORTED: &str = "txmsg.local-transaction-aborted";
    pub const TXMSG_CHECK_COMMIT: &str = "txmsg.check-answered-commit";
    pub const TXMSG_CHECK_ROLLBACK: &str = "txmsg.check-answered-rollback";
    pub const TXMSG_CHECK_UNKNOWN: &str = "txmsg.check-answered-unknown";
    /// A check-back after a restart found the local commit in the durable state and
    /// committed the half: the producer crashed between local commit and message commit.
    pub const TXMSG_COMMITTED_AFTER_RESTART: &str = "txmsg.committed-after-restart";
    pub const CONSUMER_DUPLICATE_SKIPPED: &str = "consumer.duplicate-skipped";
    pub const CONSUMER_STALE_VERSION_SKIPPED: &str = "consumer.stale-version-skipped";
    /// A consumer restart replayed messages it had processed but whose offset it had not
    /// committed.
    pub const CONSUMER_REPLAYED_AFTER_RESTART: &str = "consumer.replayed-after-restart";
    pub const CONSUMER_PROCESSING_FAILED: &str = "consumer.processing-failed";
    pub const CONSUMER_RETRY_DELIVERED: &str = "consumer.retry-delivered";
    pub const NOTIFY_ACKED: &str = "notify.acknowledged";
    pub const NOTIFY_RETRIED: &str = "notify.retried";
    pub const NOTIFY_EXHAUSTED: &str = "notify.schedule-exhausted";
    pub const CLIENT_RETRY: &str = "client.retry";
    pub const CLIENT_UNKNOWN: &str = "client.unknown-outcome";
}

//! Coverage probes: named counters of the fault kinds and protocol corners a run reached.
//!
//! A scenario test asserts its probe fired, so it proves it reached its corner rather than
//! merely not breaking. Each simulation owns its own [`Probes`] (no global state).
//!
//! The same handle carries the run's platform digest ([`Probes::platform_digest`]): a running
//! fold of every durable record any node appends and every RPC reply any node sends. The
//! harness folds it into the trace hash, so platform-internal nondeterminism that moves no
//! client's timing (a record written with other content, a reply worded otherwise) still
//! changes the run's fingerprint. It lives here because every node already holds its run's
//! probes; so do the run's durability breaches ([`Probes::durability`], invariant 19), for the
//! same reason.

use crate::durability::Breaches;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A cloneable handle to one run's probe counters and platform digest.
#[derive(Debug, Default, Clone)]
pub struct Probes {
    counts: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    /// RPC sends (every attempt), kept apart from the probes: it is on the hot path.
    rpc_calls: Arc<AtomicU64>,
    /// Simulated fsyncs issued by every node's logs.
    fsyncs: Arc<AtomicU64>,
    /// Locks held by prepared 2PC branches: how many were released, their total and longest
    /// hold in simulated ms.
    locks: Arc<Mutex<(u64, u64, u64)>>,
    digest: Arc<PlatformDigest>,
    /// Syncs that returned before what they promised was durable (invariant 19).
    durability: Breaches,
}

/// The running fold of the platform's own events: an FNV-1a style fold of fixed-size words,
/// with no allocation per event. A simulation is one thread, so a load and a store in order
/// are enough; the order of the events is the simulation's, hence deterministic.
#[derive(Debug)]
struct PlatformDigest {
    state: AtomicU64,
    events: AtomicU64,
}

impl Default for PlatformDigest {
    fn default() -> Self {
        PlatformDigest {
            state: AtomicU64::new(FNV_OFFSET),
            events: AtomicU64::new(0),
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// What kind of platform event a word of the digest stands for.
const KIND_RECORD: u64 = 1;
const KIND_REPLY: u64 = 2;

impl PlatformDigest {
    fn fold(&self, words: [u64; 4]) {
        let mut h = self.state.load(Ordering::Relaxed);
        for w in words {
            for b in w.to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(FNV_PRIME);
            }
        }
        self.state.store(h, Ordering::Relaxed);
        self.events.fetch_add(1, Ordering::Relaxed);
    }
}

/// FNV-1a over some strings, each followed by a separator: the stable key of an event's
/// origin (a node's name and a file, or a node's name alone), computed once per log or
/// transport and reused for every event.
pub fn origin_key(parts: &[&str]) -> u64 {
    let mut h = FNV_OFFSET;
    for part in parts {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
    }
    h
}

/// An `io::Write` that hashes what is written into it (FNV-1a) and keeps nothing: serialize a
/// value into it to hash its bytes without allocating them.
#[derive(Debug)]
pub struct HashWriter(u64);

impl Default for HashWriter {
    fn default() -> Self {
        HashWriter(FNV_OFFSET)
    }
}

impl HashWriter {
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for b in buf {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Probes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that the corner `name` was reached once more.
    pub fn hit(&self, name: &'static str) {
        self.hit_n(name, 1);
    }

    /// Counts `n` hits of probe `name` at once (none: the probe stays unfired).
    pub fn hit_n(&self, name: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry(name).or_insert(0) += n;
    }

    /// Counts one RPC send.
    pub fn rpc_call(&self) {
        self.rpc_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// RPC sends so far.
    pub fn rpc_calls(&self) -> u64 {
        self.rpc_calls.load(Ordering::Relaxed)
    }

    /// Counts one fsync a node's log issued.
    pub fn fsync(&self) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
    }

    /// A prepared branch's lock was released after `ms` simulated milliseconds.
    pub fn lock_held(&self, ms: u64) {
        let mut l = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        *l = (l.0 + 1, l.1 + ms, l.2.max(ms));
    }

    /// Locks released so far: (count, total ms, longest ms).
    pub fn locks(&self) -> (u64, u64, u64) {
        *self.locks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fsyncs issued so far.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Folds one durable record into the platform digest: `origin` is the [`origin_key`] of
    /// (node, file), `content` a hash of the record's bytes, `len` their length.
    pub fn digest_record(&self, origin: u64, content: u64, len: u64) {
        self.digest.fold([KIND_RECORD, origin, content, len]);
    }

    /// Folds one RPC reply into the platform digest: `origin` is the [`origin_key`] of the
    /// replying node, `tag` the RPC's tag, `content` a hash of the reply's bytes.
    pub fn digest_reply(&self, origin: u64, tag: u64, content: u64) {
        self.digest.fold([KIND_REPLY, origin, tag, content]);
    }

    /// The fold of every platform event so far (records appended, replies sent), in order.
    pub fn platform_digest(&self) -> u64 {
        self.digest.state.load(Ordering::Relaxed)
    }

    /// How many platform events the digest has folded.
    pub fn platform_events(&self) -> u64 {
        self.digest.events.load(Ordering::Relaxed)
    }

    /// The run's durability breaches: every node's logs record into it, the harness takes
    /// from it at every check.
    pub fn durability(&self) -> &Breaches {
        &self.durability
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
    /// A planned fault named a node slot this run lacks (the plan is the same for every
    /// strategy and message mode), so the run skipped it.
    pub const FAULT_SKIPPED: &str = "fault.skipped-no-such-node";
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
    /// A begin of a pay whose key had already ended failed (ended without having begun, or
    /// begun again after its end): answered with the pinned failure, nothing moves
    /// (anti-hanging, the trade's side).
    pub const TRADE_BEGIN_AFTER_END: &str = "trade.begin-after-end-settled";
    /// A pay ended at the trade before it began there (its begins lost): the key is pinned.
    pub const TRADE_END_BEFORE_BEGIN: &str = "trade.end-before-begin";
    /// A trade request the caller may not make (an internal step from a client, another
    /// merchant's trade, a forged credential), refused.
    pub const TRADE_UNAUTHORIZED_REFUSED: &str = "trade.unauthorized-refused";
    /// A ledger request the caller may not make (an internal step from a client, another's
    /// account, a platform account, a forged credential), refused.
    pub const LEDGER_UNAUTHORIZED_REFUSED: &str = "ledger.unauthorized-refused";
    /// A post under a used request id with other legs, refused.
    pub const LEDGER_REQUEST_REUSED_REFUSED: &str = "ledger.request-reused-refused";
    /// A payment request the caller may not make (another's account or trade, a key outside
    /// its namespace, a forged credential, a forwarded request from a non-payment node).
    pub const PAYMENT_UNAUTHORIZED_REFUSED: &str = "payment.unauthorized-refused";
    /// Money entered a customer account through the funding path (a deposit).
    pub const PAYMENT_DEPOSITED: &str = "payment.deposited";
    /// A merchant's takings left through the funding path (a withdrawal).
    pub const PAYMENT_WITHDRAWN: &str = "payment.withdrawn";
    /// A payment by card (F3) deposited the trade's amount from the payer's card first.
    pub const PAYMENT_CARD_DEPOSITED: &str = "payment.card-deposited";
    /// A refund of a card-paid trade went on to the card (充退): the money is on its way.
    pub const PAYMENT_REFUNDED_TO_CARD: &str = "payment.refunded-to-card";
    /// A refund of a card-paid trade could not go to the card (the payer had spent it, say):
    /// it stays in the payer's balance.
    pub const PAYMENT_REFUND_KEPT_IN_BALANCE: &str = "payment.refund-kept-in-balance";
    pub const PAYMENT_RECOVERED: &str = "payment.recovered-from-log";
    pub const PAYMENT_ORDER_RESUMED: &str = "payment.order-resumed";
    /// A resumed order had given up on its begin before the crash: it tells the trade the
    /// same failure again instead of beginning anew (seed 75's trap).
    pub const PAYMENT_GAVE_UP_RETOLD: &str = "payment.gave-up-retold";
    pub const PAYMENT_FORWARDED: &str = "payment.forwarded-to-owner";
    pub const PAYMENT_REPLAYED_OUTCOME: &str = "payment.replayed-outcome";
    /// A pay order finished paid (what `paylab bench --parts peak` counts as payments; an
    /// order redone after a crash lost its unsynced end counts again).
    pub const PAYMENT_PAID: &str = "payment.paid";
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
    /// Batch consumption handed the handler more than one delivery at once.
    pub const CONSUMER_BATCH_HANDED: &str = "consumer.batch-handed";
    pub const NOTIFY_ACKED: &str = "notify.acknowledged";
    pub const NOTIFY_RETRIED: &str = "notify.retried";
    pub const NOTIFY_EXHAUSTED: &str = "notify.schedule-exhausted";
    pub const BANK_RECOVERED: &str = "bank.recovered-from-log";
    /// A bank answered PROCESSING and decided the instruction later.
    pub const BANK_PROCESSING: &str = "bank.processing";
    pub const BANK_NOTIFIED_TWICE: &str = "bank.notified-twice";
    pub const CLEARING_RECOVERED: &str = "clearing.recovered-from-log";
    /// A channel order whose instruction got no answer in time became UNKNOWN.
    pub const CLEARING_UNKNOWN: &str = "clearing.unknown";
    pub const CLEARING_RESOLVED_BY_QUERY: &str = "clearing.unknown-resolved-by-query";
    pub const CLEARING_RESOLVED_BY_NOTIFY: &str = "clearing.unknown-resolved-by-notify";
    /// A bank notification about an order already final changed nothing.
    /// A transfer between the platform's reserves (内转) arrived at its receiving bank.
    pub const BANK_TRANSFER_RECEIVED: &str = "bank.transfer-received";
    /// A transfer's delivery came again (its acknowledgement was lost) and was absorbed.
    pub const BANK_TRANSFER_REPEAT_ABSORBED: &str = "bank.transfer-repeat-absorbed";
    /// The treasury ordered a transfer between two of the platform's reserves (内转).
    pub const CLEARING_TRANSFER_ORDERED: &str = "clearing.transfer-ordered";
    /// The treasury moved money between two banks' reserves after a reconciled bank date.
    pub const RECON_REBALANCED: &str = "recon.reserves-rebalanced";
    /// The `outbox` strategy's consumer posted a credit row on its payee's shard.
    pub const OUTBOX_CREDIT_APPLIED: &str = "outbox.credit-applied";
    /// The `txmsg` strategy stored a credit's half message before its debit.
    pub const TXMSG_CREDIT_HALF_STORED: &str = "txmsg.credit-half-stored";
    /// A check-back about a credit's half, answered from the ledger: the debit was posted.
    pub const TXMSG_CREDIT_CHECK_COMMIT: &str = "txmsg.credit-check-commit";
    /// … the debit was never posted, and is now settled as never to be.
    pub const TXMSG_CREDIT_CHECK_ROLLBACK: &str = "txmsg.credit-check-rollback";
    /// … the movement is still running here, or the shard did not answer: ask again.
    pub const TXMSG_CREDIT_CHECK_UNKNOWN: &str = "txmsg.credit-check-unknown";
    /// A ledger shard restarted with credit rows its debits wrote and the broker had not
    /// acknowledged: its resender sent them.
    pub const CREDIT_RESENT_AFTER_RESTART: &str = "outbox.credit-resent-after-restart";
    /// A saga step was refused after earlier steps were done: they were compensated.
    pub const SAGA_COMPENSATED: &str = "saga.compensated";
    /// A saga's compensation was refused (the money was spent): it ended heuristic.
    pub const SAGA_COMPENSATION_REFUSED: &str = "saga.compensation-refused";
    /// A restarted payment node carried an unfinished saga on from its log.
    pub const SAGA_RESUMED: &str = "saga.resumed-after-restart";
    /// The ledger refused a channel order's final posting (its account does not exist): the
    /// money was held in suspense instead.
    pub const CLEARING_FINAL_HELD: &str = "clearing.final-posting-held-in-suspense";
    /// The treasury held off because its last transfer had not landed on a reconciled
    /// statement yet (ordering on that gap would overshoot).
    pub const RECON_TRANSFER_AWAITED: &str = "recon.transfer-awaited";
    pub const CLEARING_DUPLICATE_NOTIFY: &str = "clearing.duplicate-notify-absorbed";
    /// A query found no instruction at the bank: the gateway sent it again, same instr_id.
    pub const CLEARING_RESENT: &str = "clearing.resent-after-not-found";
    /// A withdrawal the bank refused for good was credited back to its user.
    pub const CLEARING_REVERSED: &str = "clearing.definitive-failure-reversed";
    /// A refund to card the bank refused for good went back to the payer's balance.
    pub const CLEARING_REFUND_TO_CARD_REVERSED: &str = "clearing.refund-to-card-reversed";
    pub const CLEARING_DECLINED: &str = "clearing.deposit-declined";
    pub const CLEARING_RESUMED: &str = "clearing.order-resumed";
    /// Reconciliation found an order not final that its bank's statement shows carried out.
    pub const CLEARING_RESOLVED_BY_STATEMENT: &str = "clearing.unknown-resolved-by-statement";
    pub const RECON_RECOVERED: &str = "recon.recovered-from-log";
    /// A bank date's statement matched line for line.
    pub const RECON_DATE_MATCHED: &str = "recon.date-matched";
    /// 长款 (the bank has it, our order does not say so) repaired: resolved by the statement,
    /// or corrected.
    pub const RECON_LONG_REPAIRED: &str = "recon.long-repaired";
    /// 短款 (our order says done, the bank does not: a payout that bounced) confirmed by query
    /// and corrected.
    pub const RECON_SHORT_REPAIRED: &str = "recon.short-repaired";
    /// A statement line no channel order knows: held as a difference for the next statement.
    pub const RECON_UNMATCHED_HELD: &str = "recon.unmatched-line-held";
    /// A line no order explains was posted to suspense (挂账) so the reserve agrees with the
    /// bank; and one whose order turned up later was taken out again.
    pub const RECON_SUSPENDED: &str = "recon.line-suspended";
    pub const RECON_RELEASED: &str = "recon.suspense-released";
    pub const CLIENT_RETRY: &str = "client.retry";
    pub const CLIENT_UNKNOWN: &str = "client.unknown-outcome";
    /// A violation the run's own unsafe configuration explains (the broker's async flush lost
    /// acknowledged writes in a crash), reported as an expected anomaly, not a failure.
    pub const EXPECTED_ANOMALY: &str = "run.expected-anomaly";
    /// Lock events of locking (2PC) participants the isolation checker judged at rest.
    pub const CHECKED_LOCK_EVENTS: &str = "run.checked-lock-events";
    /// Saga-log entries the compensation checker judged at rest.
    pub const CHECKED_SAGAS: &str = "run.checked-sagas";
    /// An honest client asked a request again after its definite answer.
    pub const CLIENT_RE_ASK: &str = "client.re-ask";
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_digest_depends_on_every_event_its_content_and_its_order() {
        let digest = |events: &[(u64, u64)]| {
            let p = Probes::new();
            for (origin, content) in events {
                p.digest_record(*origin, *content, 8);
            }
            p.platform_digest()
        };
        let a = origin_key(&["ledger/0", "ledger.log"]);
        let b = origin_key(&["ledger/1", "ledger.log"]);
        assert_eq!(digest(&[(a, 1), (b, 2)]), digest(&[(a, 1), (b, 2)]));
        assert_ne!(
            digest(&[(a, 1), (b, 2)]),
            digest(&[(a, 1), (b, 3)]),
            "content"
        );
        assert_ne!(
            digest(&[(a, 1), (b, 2)]),
            digest(&[(b, 2), (a, 1)]),
            "order"
        );
        assert_ne!(digest(&[(a, 1)]), digest(&[(b, 1)]), "origin");
        assert_ne!(digest(&[]), digest(&[(a, 1)]), "one more event");
    }

    #[test]
    fn a_record_and_a_reply_of_the_same_words_differ_and_clones_share_the_digest() {
        let p = Probes::new();
        let q = p.clone();
        q.digest_record(1, 2, 3);
        assert_eq!(p.platform_events(), 1);
        let r = Probes::new();
        r.digest_reply(1, 2, 3);
        assert_ne!(p.platform_digest(), r.platform_digest());
    }

    #[test]
    fn origin_keys_keep_their_parts_apart_and_the_hash_writer_hashes_bytes() {
        assert_ne!(origin_key(&["ab", "c"]), origin_key(&["a", "bc"]));
        let mut w = HashWriter::default();
        w.write_all(b"abc").unwrap();
        let mut v = HashWriter::default();
        v.write_all(b"ab").unwrap();
        v.write_all(b"c").unwrap();
        assert_eq!(w.finish(), v.finish());
        let mut x = HashWriter::default();
        x.write_all(b"abd").unwrap();
        assert_ne!(w.finish(), x.finish());
    }
}

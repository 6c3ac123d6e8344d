//! Planted bugs: deliberate defects compiled into the platform behind a runtime switch.
//!
//! They are how paylab proves its checkers can fail: each bug names the invariant that must
//! catch it, and a test or campaign shows that it does. All are off unless a run selects one.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One deliberate defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// The ledger forgets its idempotency check: a retried post applies again.
    LedgerRetryAppliesTwice,
    /// The TCC participant keeps no fence row for an empty rollback, so a Try that arrives
    /// after its Cancel reserves money that nobody will ever release (hanging).
    TccNoFence,
    /// A repeated Confirm posts the branch again.
    TccConfirmNotIdempotent,
    /// A repeated Cancel releases the branch's reservation again.
    TccCancelNotIdempotent,
    /// The manager sends Confirm before its COMMIT decision is durable; a crash in between
    /// makes recovery cancel branches that were already confirmed.
    TccDecisionNotDurable,
    /// The trade checks the refund bound, then waits, then writes: concurrent refunds both
    /// pass the check.
    RefundCheckThenAct,
    /// The payment manager does not resume its unfinished orders and activities after a
    /// restart: they stay pending for ever.
    ManagerNoRecovery,
    /// Mode 1 (outbox): the trade node relays each event once after its commit but never scans
    /// for unsent rows, neither periodically nor after a restart.
    OutboxNoResender,
    /// Mode 2 (half messages): the trade node answers check-backs from an in-memory map of its
    /// local transactions, which a restart empties (RocketMQ's sample listener).
    CheckbackFromMemory,
    /// Mode 2: a check-back about a local transaction the trade node cannot find in its durable
    /// state is answered COMMIT instead of ROLLBACK.
    CheckbackDefaultsCommit,
    /// The consumer-record replica appends every delivery, without its dedup table.
    ConsumerNoDedup,
    /// Consumers commit a pulled batch's offset before processing it; a crash in between loses
    /// the batch.
    OffsetBeforeProcessing,
    /// The merchant-query replica overwrites its row with whatever event arrives, without
    /// comparing versions.
    ReplicaNoVersion,
    /// The trade core takes a late failed refund end on a fully refunded trade as a reason to
    /// reopen it: REFUNDED goes back to PARTIALLY_REFUNDED, an edge the domain forbids.
    TradeRefundedReopens,
    /// The payment service debits the payer the request body names without checking that the
    /// caller owns that account: a client pays with another user's balance.
    PayerFromBody,
    /// The trade node takes `EndPay` from any caller, not only from payment nodes: a client
    /// forges the end of a payment.
    EndPayUnauthenticated,
    /// The ledger answers a repeated request id that comes with other legs with the first
    /// request's outcome instead of refusing it.
    PostSameKeyOtherBody,
    /// Group commit: a caller that waited on an fsync already in flight returns as soon as
    /// that fsync ends, without checking that it covered the caller's own bytes (appended
    /// after the fsync was issued, so not covered): it acknowledges a write that is not durable.
    GroupCommitEarlyAck,
    /// A replica acknowledges a delivery (so its consumer commits the offset) before the
    /// projection record's fsync: a crash in between loses a consumption the broker will not
    /// deliver again.
    ReplicaAckBeforeFsync,
    /// A rare window: when the trade never answers a pay's begin (every attempt of its budget
    /// lost), the payment node fails the order without telling the trade, taking the silence
    /// for "it never began". If the trade did begin (a long pause or partition swallowed only
    /// the answers), it stays PAYING for ever. Only an outage longer than the begin budget
    /// reaches it.
    BeginTimeoutNotEnded,
    /// The notifier records a callback that got no answer in time as acknowledged: its own
    /// bookkeeping says the merchant acknowledged what the merchant never received.
    NotifierTimeoutAsAck,
    /// A ledger shard answers a fresh write before the write's fsync (the fsync runs behind
    /// the reply): a crash in between loses a post or a refusal its caller holds an answer of.
    LedgerAckBeforeFsync,
    /// A trade node answers a fresh change (create, begin or end of a pay or a refund) before
    /// its record's fsync.
    TradeAckBeforeFsync,
    /// The broker answers a fresh write (a send, an offset commit, a half message or its
    /// decision) under group commit before the write's fsync.
    BrokerAckBeforeFsync,
    /// The gateway reads a withdrawal whose instruction got no answer in time as refused by the
    /// bank and credits the user back: if the bank did pay, the money left twice.
    WithdrawalReversedOnTimeout,
    /// A bank's notification of a successful deposit credits the user itself, under its own
    /// request, besides the gateway's own credit once the reply (or a query) said the same.
    DepositCreditedOnReplyAndNotify,
    /// The gateway reads any instruction that got no answer in time (a deposit or a
    /// withdrawal) as a definitive failure.
    UnknownTreatedAsFail,
    /// Reconciliation's repair of an order its statement shows carried out posts the order's
    /// effect under a request of the repair's own (one per statement date), without looking
    /// whether the gateway already posted it.
    ReconRepairNotIdempotent,
    /// The gateway answers and sends a channel order's instruction before the order's record
    /// is durable: a crash then forgets an order the bank carries out.
    ChannelOrderNotDurableBeforeSend,
    /// `2pc` only: a participant's prepared credit does not lock its account (the money is
    /// in no balance yet, so the lock "protects nothing"), and another movement prepares on
    /// the account while the credit is in doubt: the strategy's isolation is gone.
    #[serde(rename = "2pc-lock-ignores-credits")]
    TwoPcLockIgnoresCredits,
    /// Test-only, hidden from `paylab bugs` (not in [`Bug::ALL`]): the platform takes the
    /// commit-before-durable shortcut of `tcc-decision-not-durable` at random moments, by a
    /// coin that depends on the process and on how often it was tossed, so one seed gives
    /// different traces in two processes. It exists to prove that a campaign's determinism
    /// check (`paylab campaign --check-determinism`) catches nondeterminism.
    TestNondeterminism,
}

impl Bug {
    pub const ALL: &'static [Bug] = &[
        Bug::LedgerRetryAppliesTwice,
        Bug::TccNoFence,
        Bug::TccConfirmNotIdempotent,
        Bug::TccCancelNotIdempotent,
        Bug::TccDecisionNotDurable,
        Bug::RefundCheckThenAct,
        Bug::ManagerNoRecovery,
        Bug::OutboxNoResender,
        Bug::CheckbackFromMemory,
        Bug::CheckbackDefaultsCommit,
        Bug::ConsumerNoDedup,
        Bug::OffsetBeforeProcessing,
        Bug::ReplicaNoVersion,
        Bug::TradeRefundedReopens,
        Bug::PayerFromBody,
        Bug::EndPayUnauthenticated,
        Bug::PostSameKeyOtherBody,
        Bug::GroupCommitEarlyAck,
        Bug::BeginTimeoutNotEnded,
        Bug::NotifierTimeoutAsAck,
        Bug::LedgerAckBeforeFsync,
        Bug::TradeAckBeforeFsync,
        Bug::BrokerAckBeforeFsync,
        Bug::ReplicaAckBeforeFsync,
        Bug::WithdrawalReversedOnTimeout,
        Bug::DepositCreditedOnReplyAndNotify,
        Bug::UnknownTreatedAsFail,
        Bug::ReconRepairNotIdempotent,
        Bug::ChannelOrderNotDurableBeforeSend,
        Bug::TwoPcLockIgnoresCredits,
    ];

    /// Planted bugs for the harness's own tests, accepted by name but listed nowhere.
    pub const HIDDEN: &'static [Bug] = &[Bug::TestNondeterminism];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Bug::LedgerRetryAppliesTwice => "ledger-retry-applies-twice",
            Bug::TccNoFence => "tcc-no-fence",
            Bug::TccConfirmNotIdempotent => "tcc-confirm-not-idempotent",
            Bug::TccCancelNotIdempotent => "tcc-cancel-not-idempotent",
            Bug::TccDecisionNotDurable => "tcc-decision-not-durable",
            Bug::RefundCheckThenAct => "refund-check-then-act",
            Bug::ManagerNoRecovery => "manager-no-recovery",
            Bug::OutboxNoResender => "outbox-no-resender",
            Bug::CheckbackFromMemory => "checkback-from-memory",
            Bug::CheckbackDefaultsCommit => "checkback-defaults-commit",
            Bug::ConsumerNoDedup => "consumer-no-dedup",
            Bug::OffsetBeforeProcessing => "offset-before-processing",
            Bug::ReplicaNoVersion => "replica-no-version",
            Bug::TradeRefundedReopens => "trade-refunded-reopens",
            Bug::PayerFromBody => "payer-from-body",
            Bug::EndPayUnauthenticated => "end-pay-unauthenticated",
            Bug::PostSameKeyOtherBody => "post-same-key-other-body",
            Bug::GroupCommitEarlyAck => "group-commit-early-ack",
            Bug::BeginTimeoutNotEnded => "begin-timeout-not-ended",
            Bug::ReplicaAckBeforeFsync => "replica-ack-before-fsync",
            Bug::NotifierTimeoutAsAck => "notifier-timeout-as-ack",
            Bug::LedgerAckBeforeFsync => "ledger-ack-before-fsync",
            Bug::TradeAckBeforeFsync => "trade-ack-before-fsync",
            Bug::BrokerAckBeforeFsync => "broker-ack-before-fsync",
            Bug::WithdrawalReversedOnTimeout => "withdrawal-reversed-on-timeout",
            Bug::DepositCreditedOnReplyAndNotify => "deposit-credited-on-reply-and-notify",
            Bug::UnknownTreatedAsFail => "unknown-treated-as-fail",
            Bug::ReconRepairNotIdempotent => "recon-repair-not-idempotent",
            Bug::ChannelOrderNotDurableBeforeSend => "channel-order-not-durable-before-send",
            Bug::TwoPcLockIgnoresCredits => "2pc-lock-ignores-credits",
            Bug::TestNondeterminism => "test-nondeterminism",
        }
    }

    /// What the defect breaks, in one line.
    pub fn breaks(self) -> &'static str {
        match self {
            Bug::LedgerRetryAppliesTwice => {
                "a retried or duplicated post is applied again, moving the money twice"
            }
            Bug::TccNoFence => {
                "an empty rollback leaves no fence row, so a late Try freezes money forever"
            }
            Bug::TccConfirmNotIdempotent => "a repeated Confirm posts the branch a second time",
            Bug::TccCancelNotIdempotent => "a repeated Cancel releases the reservation twice",
            Bug::TccDecisionNotDurable => {
                "Confirm goes out before COMMIT is durable; a crash makes recovery cancel"
            }
            Bug::RefundCheckThenAct => {
                "the refund bound is checked outside the write, so concurrent refunds overshoot"
            }
            Bug::ManagerNoRecovery => {
                "a restarted payment node never resumes its unfinished orders and activities"
            }
            Bug::OutboxNoResender => {
                "an outbox row whose first relay failed, or whose node crashed, is never sent"
            }
            Bug::CheckbackFromMemory => {
                "check-backs read a map a restart empties, so a committed event is discarded"
            }
            Bug::CheckbackDefaultsCommit => {
                "a check-back about an aborted local transaction commits its half message"
            }
            Bug::ConsumerNoDedup => "a redelivered event adds a second consumption record",
            Bug::OffsetBeforeProcessing => {
                "a consumer crash after the offset commit loses the batch it had not processed"
            }
            Bug::ReplicaNoVersion => "an old event redelivered late rolls a merchant row back",
            Bug::TradeRefundedReopens => {
                "a fully refunded trade moves back to partially refunded, a forbidden edge"
            }
            Bug::PayerFromBody => "a client pays from another user's account by naming it",
            Bug::EndPayUnauthenticated => {
                "anyone may end a pay at the trade, so a client marks a trade paid with no money"
            }
            Bug::PostSameKeyOtherBody => {
                "a request id reused with other legs gets the first answer, not a refusal"
            }
            Bug::GroupCommitEarlyAck => {
                "a write appended during an in-flight fsync is acknowledged when that fsync ends"
            }
            Bug::BeginTimeoutNotEnded => {
                "a begin that got no answer is failed without telling the trade, left paying"
            }
            Bug::NotifierTimeoutAsAck => {
                "a callback that timed out is recorded as acknowledged by the merchant"
            }
            Bug::LedgerAckBeforeFsync => "a ledger write is answered before its fsync",
            Bug::TradeAckBeforeFsync => "a trade change is answered before its fsync",
            Bug::BrokerAckBeforeFsync => "a broker write is acknowledged before its fsync",
            Bug::ReplicaAckBeforeFsync => "a replica acknowledges a delivery before its fsync",
            Bug::WithdrawalReversedOnTimeout => {
                "a withdrawal the bank did not answer in time is credited back, though paid"
            }
            Bug::DepositCreditedOnReplyAndNotify => {
                "a deposit is credited once for the reply and once more for the notification"
            }
            Bug::UnknownTreatedAsFail => "an instruction without an answer is taken as refused",
            Bug::ReconRepairNotIdempotent => {
                "a reconciliation repair posts again what the gateway already posted"
            }
            Bug::ChannelOrderNotDurableBeforeSend => {
                "a channel order is answered and sent before it is durable"
            }
            Bug::TwoPcLockIgnoresCredits => {
                "a prepared 2PC credit leaves its account unlocked while it is in doubt"
            }
            Bug::TestNondeterminism => {
                "one seed gives different traces in different processes (test-only)"
            }
        }
    }

    /// The invariant that must catch it.
    pub fn caught_by(self) -> &'static str {
        match self {
            Bug::LedgerRetryAppliesTwice => "exactly-once",
            Bug::TccNoFence => "reservation-release",
            Bug::TccConfirmNotIdempotent => "exactly-once",
            Bug::TccCancelNotIdempotent => "non-negativity",
            Bug::TccDecisionNotDurable => "atomicity",
            Bug::RefundCheckThenAct => "refund-bound",
            Bug::ManagerNoRecovery | Bug::BeginTimeoutNotEnded => "liveness",
            Bug::OutboxNoResender => "message-completeness",
            Bug::CheckbackFromMemory => "message-completeness",
            Bug::CheckbackDefaultsCommit => "message-completeness",
            Bug::ConsumerNoDedup => "replicas",
            Bug::OffsetBeforeProcessing => "message-completeness",
            Bug::ReplicaNoVersion => "replicas",
            Bug::TradeRefundedReopens => "legal-transitions",
            Bug::PayerFromBody | Bug::EndPayUnauthenticated | Bug::PostSameKeyOtherBody => {
                "no-unauthorized-effect"
            }
            Bug::GroupCommitEarlyAck => "durability",
            Bug::NotifierTimeoutAsAck => "notification-outcome",
            Bug::LedgerAckBeforeFsync
            | Bug::TradeAckBeforeFsync
            | Bug::BrokerAckBeforeFsync
            | Bug::ReplicaAckBeforeFsync => "durability",
            Bug::WithdrawalReversedOnTimeout | Bug::UnknownTreatedAsFail => "reconciliation",
            Bug::DepositCreditedOnReplyAndNotify | Bug::ReconRepairNotIdempotent => "exactly-once",
            Bug::ChannelOrderNotDurableBeforeSend => "durability",
            Bug::TwoPcLockIgnoresCredits => "isolation",
            Bug::TestNondeterminism => "determinism-check",
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for an unknown bug name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown bug '{0}' (see `paylab bugs` for the catalogue)")]
pub struct UnknownBug(pub String);

impl FromStr for Bug {
    type Err = UnknownBug;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bug::ALL
            .iter()
            .chain(Bug::HIDDEN)
            .copied()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownBug(s.to_string()))
    }
}

/// A safety check the platform asserts inside its own code (TIGER_STYLE assertions). A planted
/// bug that breaks a property on purpose relaxes exactly the checks it needs, so that the run
/// goes on and the harness's checker, not the platform's assertion, reports it; every other
/// check stays on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// Ledger: available and frozen balances of customer accounts never go negative.
    NonNegative,
    /// Ledger: a TCC branch's repeated phase two changes nothing (fence state unchanged).
    PhaseTwoIdempotent,
    /// Trade: refunded + refunding <= paid.
    RefundBound,
    /// Trade: statuses move only along their legal edges.
    TradeTransitions,
}

impl Bug {
    /// The in-code checks this bug needs relaxed to show its effect.
    pub fn relaxes(self) -> &'static [Check] {
        match self {
            Bug::TccConfirmNotIdempotent => &[Check::PhaseTwoIdempotent],
            // A second release drives the frozen balance below zero.
            Bug::TccCancelNotIdempotent => &[Check::PhaseTwoIdempotent, Check::NonNegative],
            // A retried post is validated again against the current balances before it is
            // written, so applying it twice never overdraws: no assertion stands in its way.
            Bug::RefundCheckThenAct => &[Check::RefundBound],
            Bug::TradeRefundedReopens => &[Check::TradeTransitions],
            _ => &[],
        }
    }
}

/// The switch: which bug, if any, this run planted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bugs(Option<Bug>);

impl Bugs {
    pub fn none() -> Self {
        Bugs(None)
    }
    pub fn planted(bug: Bug) -> Self {
        Bugs(Some(bug))
    }
    pub fn is(&self, bug: Bug) -> bool {
        if self.0 == Some(Bug::TestNondeterminism) && bug == Bug::TccDecisionNotDurable {
            return process_coin();
        }
        self.0 == Some(bug)
    }
    pub fn get(&self) -> Option<Bug> {
        self.0
    }
    /// Whether the planted bug (if any) relaxes the in-code check `check`.
    pub fn relaxes(&self, check: Check) -> bool {
        self.0.is_some_and(|bug| bug.relaxes().contains(&check))
    }
}

/// The coin of [`Bug::TestNondeterminism`]: the process id and the number of tosses so far in
/// this process, mixed (splitmix64). Deliberately outside the simulation's control.
fn process_coin() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static TOSSES: AtomicU64 = AtomicU64::new(0);
    let n = TOSSES.fetch_add(1, Ordering::Relaxed);
    let mut z = (u64::from(std::process::id()) << 32 ^ n).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) & 1 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for b in Bug::ALL {
            assert_eq!(b.name().parse::<Bug>().unwrap(), *b);
        }
        assert!("no-such-bug".parse::<Bug>().is_err());
        for b in Bug::HIDDEN {
            assert_eq!(b.name().parse::<Bug>().unwrap(), *b);
            assert!(!Bug::ALL.contains(b), "{b} is hidden from the catalogue");
        }
    }

    #[test]
    fn json_spells_each_bug_as_the_command_line_does() {
        for b in Bug::ALL {
            let json = serde_json::to_string(b).unwrap();
            assert_eq!(json, format!("\"{}\"", b.name()));
            assert_eq!(serde_json::from_str::<Bug>(&json).unwrap(), *b);
        }
        let tcc = crate::strategy::StrategyKind::Tcc;
        assert_eq!(serde_json::to_string(&tcc).unwrap(), format!("\"{tcc}\""));
    }

    #[test]
    fn only_the_bugs_that_need_a_check_relax_it() {
        assert!(!Bugs::none().relaxes(Check::RefundBound));
        assert!(Bugs::planted(Bug::RefundCheckThenAct).relaxes(Check::RefundBound));
        assert!(!Bugs::planted(Bug::RefundCheckThenAct).relaxes(Check::NonNegative));
        assert!(!Bugs::planted(Bug::ReplicaNoVersion).relaxes(Check::RefundBound));
    }

    #[test]
    fn the_ledger_and_tcc_bugs_relax_exactly_what_their_records_break() {
        use Check::*;
        let table: &[(Bug, &[Check])] = &[
            (Bug::LedgerRetryAppliesTwice, &[]),
            (Bug::TccNoFence, &[]),
            (Bug::TccConfirmNotIdempotent, &[PhaseTwoIdempotent]),
            (
                Bug::TccCancelNotIdempotent,
                &[PhaseTwoIdempotent, NonNegative],
            ),
            (Bug::TccDecisionNotDurable, &[]),
            (Bug::ManagerNoRecovery, &[]),
            (Bug::ReplicaNoVersion, &[]),
        ];
        for (bug, checks) in table {
            assert_eq!(bug.relaxes(), *checks, "{bug}");
        }
        for check in [NonNegative, PhaseTwoIdempotent] {
            assert!(!Bugs::none().relaxes(check));
            assert!(!Bugs::planted(Bug::ReplicaNoVersion).relaxes(check));
        }
    }

    #[test]
    fn the_switch_is_off_by_default() {
        assert!(!Bugs::default().is(Bug::LedgerRetryAppliesTwice));
        assert!(Bugs::planted(Bug::LedgerRetryAppliesTwice).is(Bug::LedgerRetryAppliesTwice));
    }
}

//! Each planted bug must be caught by the invariant the catalogue names, within the first
//! 200 seeds: proof that the checkers can fail. The violation must name its evidence (the
//! request, activity or trade), and the report must say how to replay it.

use paylab_sim::{run, RunConfig, RunReport, Verdict};
use paylab_system::bugs::Bug;

const SEEDS: u64 = 200;

/// The first run among the first 200 seeds that the planted bug makes fail.
fn first_caught(bug: Bug) -> RunReport {
    (0..SEEDS)
        .map(|seed| {
            run(RunConfig {
                bug: Some(bug),
                ..RunConfig::new(seed)
            })
        })
        .find(|r| r.verdict == Verdict::Violation)
        .unwrap_or_else(|| panic!("no seed in 0..{SEEDS} catches {bug}"))
}

/// Asserts that `bug` is caught by the invariant the catalogue names, and returns the
/// evidence of that violation under `key`.
fn caught_naming(bug: Bug, key: &str) -> String {
    let report = first_caught(bug);
    assert_eq!(report.verdict.exit_code(), 1);
    assert!(report.repro().contains(&format!("--bug {bug}")));
    let v = report
        .violations
        .iter()
        .find(|v| v.invariant.name() == bug.caught_by())
        .unwrap_or_else(|| {
            panic!(
                "seed {}: {bug} is not caught by {}: {:#?}",
                report.config.seed,
                bug.caught_by(),
                report.violations
            )
        });
    let named = v
        .evidence
        .get(key)
        .unwrap_or_else(|| panic!("{v} names no {key}"))
        .clone();
    assert!(v.message.contains(&named), "the message names {named}: {v}");
    named
}

#[test]
fn ledger_retry_applies_twice_is_caught_by_exactly_once() {
    caught_naming(Bug::LedgerRetryAppliesTwice, "request");
}

#[test]
fn tcc_no_fence_is_caught_by_reservation_release() {
    caught_naming(Bug::TccNoFence, "xid");
}

#[test]
fn tcc_confirm_not_idempotent_is_caught_by_exactly_once() {
    caught_naming(Bug::TccConfirmNotIdempotent, "xid");
}

#[test]
fn tcc_cancel_not_idempotent_is_caught_by_non_negativity() {
    caught_naming(Bug::TccCancelNotIdempotent, "account");
}

#[test]
fn tcc_decision_not_durable_is_caught_by_atomicity() {
    caught_naming(Bug::TccDecisionNotDurable, "xid");
}

#[test]
fn refund_check_then_act_is_caught_by_refund_bound() {
    caught_naming(Bug::RefundCheckThenAct, "trade");
}

/// The manager that never resumes leaves work pending for ever: the run fails on liveness
/// (exit 3), listing the stuck orders and activities.
#[test]
fn manager_no_recovery_is_caught_by_liveness() {
    let bug = Bug::ManagerNoRecovery;
    assert_eq!(bug.caught_by(), "liveness");
    let report = (0..SEEDS)
        .map(|seed| {
            run(RunConfig {
                bug: Some(bug),
                ..RunConfig::new(seed)
            })
        })
        .find(|r| r.verdict.exit_code() == 3)
        .unwrap_or_else(|| panic!("no seed in 0..{SEEDS} makes {bug} exit 3"));
    let Verdict::Liveness(stuck) = &report.verdict else {
        unreachable!("exit 3 is liveness");
    };
    assert!(
        stuck
            .iter()
            .any(|s| s.contains("payment-") && (s.contains("order") || s.contains("activity"))),
        "names the stuck work: {stuck:?}"
    );
}

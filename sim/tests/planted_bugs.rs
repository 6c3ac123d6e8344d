//! Each planted bug must be caught by the invariant the catalogue names: proof that the
//! checkers can fail.

use paylab_invariants::Invariant;
use paylab_sim::{run, RunConfig, Verdict};
use paylab_system::bugs::Bug;

#[test]
fn ledger_retry_applies_twice_is_caught_by_exactly_once_within_50_seeds() {
    let bug = Bug::LedgerRetryAppliesTwice;
    let caught = (0..50).find_map(|seed| {
        let report = run(RunConfig {
            bug: Some(bug),
            ..RunConfig::new(seed)
        });
        (report.verdict == Verdict::Violation).then_some(report)
    });
    let report = caught.expect("some seed within the first 50 catches the bug");
    assert_eq!(report.verdict.exit_code(), 1);
    let v = report
        .violations
        .iter()
        .find(|v| v.invariant == Invariant::ExactlyOnce)
        .expect("the violation is exactly-once");
    let request = v.evidence.get("request").expect("names the request id");
    assert!(v.message.contains(request.as_str()));
    assert!(report.repro().contains("--bug ledger-retry-applies-twice"));
}

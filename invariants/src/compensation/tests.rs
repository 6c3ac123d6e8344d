use super::*;
use crate::testkit::voucher;
use crate::{MovementStep, ShardSnapshot};
use rust_decimal_macros::dec;

/// A saga of two steps (debit 1, credit 2) as its log says it stands, and its vouchers: each
/// `(step, undo)` posted once.
fn saga(end: Option<SagaEnd>, failed: Option<u32>, posted: &[(u32, bool)]) -> Observation {
    let mut obs = Observation::default();
    obs.strategy.sagas.push(SagaLogEntry {
        node: "payment/0".into(),
        xid: "x1".into(),
        steps: 2,
        failed,
        end,
    });
    let vouchers = posted
        .iter()
        .enumerate()
        .map(|(i, &(index, undo))| {
            let mut v = voucher(&format!("0:{i}"), &format!("r{i}"), 1, 2, dec!(5));
            v.xid = Some("x1".into());
            v.step = Some(MovementStep { index, undo });
            v
        })
        .collect();
    obs.shards.push(ShardSnapshot {
        shard: 0,
        vouchers,
        ..ShardSnapshot::default()
    });
    obs
}

#[test]
fn a_completed_saga_posted_every_step_once() {
    let obs = saga(Some(SagaEnd::Completed), None, &[(0, false), (1, false)]);
    assert!(check(&obs).is_empty());
}

#[test]
fn a_compensated_saga_undid_every_step_before_the_refused_one() {
    let obs = saga(
        Some(SagaEnd::Compensated),
        Some(1),
        &[(0, false), (0, true)],
    );
    assert!(check(&obs).is_empty());
    let first_refused = saga(Some(SagaEnd::Compensated), Some(0), &[]);
    assert!(check(&first_refused).is_empty());
}

#[test]
fn a_completed_saga_missing_a_step_fails() {
    let obs = saga(Some(SagaEnd::Completed), None, &[(0, false)]);
    let v = check(&obs);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].invariant, Invariant::Compensation);
    assert_eq!(
        v[0].message,
        "saga x1 (Completed in its log): step 1 posted 0 time(s) and undone 0 time(s), \
         where its log's end asks 1 and 0"
    );
}

#[test]
fn a_compensated_saga_that_did_not_undo_a_step_fails() {
    let obs = saga(Some(SagaEnd::Compensated), Some(1), &[(0, false)]);
    let v = check(&obs);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].evidence["step"], "0");
    assert_eq!(v[0].evidence["failed_step"], "1");
}

#[test]
fn a_refused_step_that_posted_anyway_fails() {
    let obs = saga(
        Some(SagaEnd::Compensated),
        Some(1),
        &[(0, false), (0, true), (1, false)],
    );
    assert_eq!(check(&obs).len(), 1);
}

#[test]
fn a_step_undone_twice_fails() {
    let obs = saga(
        Some(SagaEnd::Compensated),
        Some(1),
        &[(0, false), (0, true), (0, true)],
    );
    assert_eq!(check(&obs).len(), 1);
}

#[test]
fn an_unfinished_saga_is_judged_only_for_undoing_what_it_never_posted() {
    let running = saga(None, None, &[(0, false)]);
    assert!(check(&running).is_empty());
    let undo_first = saga(None, Some(1), &[(0, true)]);
    let v = check(&undo_first);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(
        v[0].message,
        "saga x1 (none in its log): step 0 undone 1 time(s) but posted 0"
    );
}

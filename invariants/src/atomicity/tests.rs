use super::*;
use crate::testkit::{branch_voucher, ev, single, valid};
use crate::FenceState;
use rust_decimal_macros::dec;
use Phase::*;

#[test]
fn valid_observation_passes() {
    // Two committed activities and one rolled back with an empty rollback on one branch.
    assert!(check(&valid()).is_empty());
}

#[test]
fn activity_left_in_try_fails() {
    let mut obs = valid();
    obs.activities[2].status = Running;
    let v = &single(check(&obs), Invariant::Atomicity);
    assert_eq!(v.message, "activity x0.3 was left in Try (Running at rest)");
    assert_eq!(ev(v, "xid"), "x0.3");
    assert_eq!(ev(v, "fences"), "0/0:RolledBack,1/1:Suspended");
}

#[test]
fn unfinished_phase_two_fails() {
    let mut obs = valid();
    obs.activities[1].status = Committing;
    let v = &single(check(&obs), Invariant::Atomicity);
    assert!(v.message.contains("x0.2 has its phase two unfinished"));
    assert_eq!(ev(v, "status"), "Committing");
    assert_eq!(ev(v, "vouchers"), "v0-6,v1-6");
}

#[test]
fn heuristic_activity_fails() {
    let mut obs = valid();
    obs.activities[0].status = Heuristic;
    let v = &single(check(&obs), Invariant::Atomicity);
    assert!(v.message.contains("x0.1 ended Heuristic"));
    assert_eq!(ev(v, "trade"), "T0-1");
}

#[test]
fn committed_activity_with_branch_still_tried_fails() {
    let mut obs = valid();
    obs.shards[1].fences[0].state = FenceState::Tried;
    let v = &single(check(&obs), Invariant::Atomicity);
    assert_eq!(
        v.message,
        "activity x0.1 is Committed but branch 1 on shard 1 is fenced [Tried]"
    );
    assert_eq!(ev(v, "branch"), "1");
    assert_eq!(ev(v, "fences"), "0/0:Committed,1/1:Tried");
}

#[test]
fn shard_without_fences_is_not_judged_by_fence() {
    let mut obs = valid();
    obs.shards[1].fences.remove(0);
    assert!(check(&obs).is_empty());
}

#[test]
fn committed_branch_never_posted_fails() {
    let mut obs = valid();
    obs.shards[0].vouchers.remove(2);
    let v = &single(check(&obs), Invariant::Atomicity);
    assert_eq!(
        v.message,
        "activity x0.1 is Committed but branch 0 (D2:20 on shard 0) was never posted"
    );
    assert_eq!(ev(v, "vouchers"), "v1-5");
    assert_eq!(ev(v, "branch_vouchers"), "none");
}

#[test]
fn committed_branch_posted_twice_fails() {
    let mut obs = valid();
    // A non-idempotent Confirm posted branch 1 again.
    obs.shards[1]
        .vouchers
        .push(branch_voucher("v1-3", "x0.1", 1, 13, 12, dec!(20)));
    let v = &single(check(&obs), Invariant::Atomicity);
    assert!(v
        .message
        .contains("branch 1 (C12:20 on shard 1) was posted 2 times"));
    assert_eq!(ev(v, "branch_vouchers"), "v1-5,v1-3");
}

#[test]
fn committed_branch_posted_with_other_amount_fails() {
    let mut obs = valid();
    for l in &mut obs.shards[0].vouchers[2].legs {
        l.amount = dec!(19);
    }
    let v = &single(check(&obs), Invariant::Atomicity);
    assert!(v
        .message
        .contains("(D2:20 on shard 0) was posted as 19 by v0-5"));
}

#[test]
fn committed_activity_with_foreign_voucher_fails() {
    let mut obs = valid();
    obs.shards[0]
        .vouchers
        .push(branch_voucher("v0-3", "x0.1", 2, 3, 5, dec!(1)));
    let v = &single(check(&obs), Invariant::Atomicity);
    assert_eq!(ev(v, "extra"), "v0-3");
    assert_eq!(ev(v, "xid"), "x0.1");
}

#[test]
fn rolled_back_activity_with_branch_still_tried_fails() {
    let mut obs = valid();
    // The Cancel of branch 0 never ran: its Try still holds.
    obs.shards[0].fences[2].state = FenceState::Tried;
    let v = &single(check(&obs), Invariant::Atomicity);
    assert_eq!(
        v.message,
        "activity x0.3 is Aborted but branches 0/0:Tried were not cancelled"
    );
}

#[test]
fn rolled_back_activity_that_posted_fails() {
    let mut obs = valid();
    obs.shards[0]
        .vouchers
        .push(branch_voucher("v0-3", "x0.3", 0, 2, 5, dec!(8)));
    let v = &single(check(&obs), Invariant::Atomicity);
    assert!(v
        .message
        .contains("x0.3 is Aborted but posted 1 voucher(s): v0-3"));
}

#[test]
fn rolled_back_activity_whose_vouchers_net_out_passes() {
    // A compensated saga: the step posted and its undoing took it back.
    let mut obs = valid();
    let vouchers = &mut obs.shards[0].vouchers;
    vouchers.push(branch_voucher("v0-3", "x0.3", 0, 2, 5, dec!(8)));
    vouchers.push(branch_voucher("v0-4", "x0.3", 0, 5, 2, dec!(8)));
    assert!(check(&obs).is_empty(), "{:#?}", check(&obs));
    // Undone only in part: it does not net out.
    let undo = obs.shards[0].vouchers.last_mut().expect("the undoing");
    undo.legs[0].amount = dec!(5);
    undo.legs[1].amount = dec!(5);
    let v = &single(check(&obs), Invariant::Atomicity);
    assert!(v
        .message
        .contains("x0.3 is Aborted but posted 2 voucher(s)"));
}

#[test]
fn mixed_fences_fail_without_activity() {
    let mut obs = valid();
    // A timeout rollback raced the commit and the manager's log lost the activity.
    obs.activities.remove(2);
    obs.shards[1].fences[2].state = FenceState::Committed;
    let v = &single(check(&obs), Invariant::Atomicity);
    assert_eq!(
        v.message,
        "activity x0.3 has branches both committed and cancelled: 0/0:RolledBack,1/1:Committed"
    );
    assert_eq!(ev(v, "xid"), "x0.3");
}

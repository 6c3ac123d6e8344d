use super::*;

fn ev(seq: u64, account: u64, xid: &str, branch: u32, acquire: bool) -> LockEvent {
    LockEvent {
        shard: 1,
        seq,
        account,
        xid: xid.to_string(),
        branch,
        acquire,
    }
}

fn observe(locks: Vec<LockEvent>) -> Observation {
    let mut obs = Observation::default();
    obs.strategy.locks = locks;
    obs
}

#[test]
fn locks_taken_one_after_another_pass() {
    let obs = observe(vec![
        ev(0, 7, "x1", 0, true),
        ev(1, 8, "x2", 0, true),
        ev(2, 7, "x1", 0, false),
        ev(3, 7, "x3", 1, true),
        ev(4, 7, "x3", 1, false),
        ev(5, 8, "x2", 0, false),
    ]);
    assert!(check(&obs).is_empty());
}

#[test]
fn a_repeated_acquire_by_the_holder_and_a_stray_release_pass() {
    // A retried prepare of the same branch, and the release of a branch that never locked
    // (a Cancel of an empty rollback): neither is a second holder.
    let obs = observe(vec![
        ev(0, 7, "x1", 0, true),
        ev(1, 7, "x1", 0, true),
        ev(2, 7, "x9", 0, false),
        ev(3, 7, "x1", 0, false),
    ]);
    assert!(check(&obs).is_empty());
}

#[test]
fn a_second_movement_locking_a_held_account_fails() {
    let obs = observe(vec![
        ev(0, 7, "x1", 0, true),
        ev(1, 7, "x2", 1, true),
        ev(2, 7, "x1", 0, false),
    ]);
    let v = check(&obs);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].invariant, Invariant::Isolation);
    assert_eq!(
        v[0].message,
        "account 7 on shard 1 was locked by x2#1 while x1#0 held it"
    );
    assert_eq!(v[0].evidence["held_since_seq"], "0");
}

#[test]
fn history_is_judged_in_log_order_not_listing_order() {
    // Listed out of order: the release (seq 1) came before the second lock (seq 2).
    let obs = observe(vec![
        ev(2, 7, "x2", 0, true),
        ev(0, 7, "x1", 0, true),
        ev(1, 7, "x1", 0, false),
    ]);
    assert!(check(&obs).is_empty());
}

#[test]
fn another_branch_of_the_same_movement_is_another_holder() {
    let obs = observe(vec![ev(0, 7, "x1", 0, true), ev(1, 7, "x1", 1, true)]);
    assert_eq!(check(&obs).len(), 1);
}

#[test]
fn shards_are_judged_apart() {
    let mut other = ev(1, 7, "x2", 0, true);
    other.shard = 2;
    let obs = observe(vec![ev(0, 7, "x1", 0, true), other]);
    assert!(check(&obs).is_empty());
}

//! The incremental checker against its oracle, the batch checkers: on random sequences of
//! observations, on every failing case of the always-families' unit tests (through
//! [`crate::testkit::agreeing`]), and with a checker that forgets an update, which must break
//! the agreement.

use super::*;
use crate::testkit::valid;
use crate::{
    AccountState, ActivityKind, ActivityState, AttemptStatus, FreezeState, Invariant, JournalEntry,
    Leg, Observation, OpKind, Operation, Outcome, Phase, RefundState, ShardSnapshot, Side, Subject,
    TradeState, TradeStatus, VoucherRecord,
};
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::sync::Arc;

type Sightings = BTreeMap<(Invariant, String), Violation>;

fn sight(found: Vec<Violation>, into: &mut Sightings) {
    for v in found {
        into.entry((v.invariant, v.message.clone())).or_insert(v);
    }
}

/// The observation as the world sees it: keyed (one entity per key) and in key order.
fn canonical(obs: &Observation) -> Observation {
    let mut w = World::default();
    w.apply(&Delta::between(&Observation::default(), obs));
    Observation {
        trades: crate::delta::keyed_trades(&obs.trades)
            .into_values()
            .collect(),
        activities: crate::delta::keyed_activities(&obs.activities)
            .into_values()
            .collect(),
        ..w.observation()
    }
}

/// Runs the batch checkers on every observation of `seq` and the incremental checker on the
/// deltas between them (stepping with `step`); returns the first sightings of each, after
/// every observation.
fn both(
    seq: &[Observation],
    step: impl Fn(&mut IncrementalChecker, &Delta) -> Vec<Violation>,
) -> Vec<(Sightings, Sightings)> {
    let (mut batch, mut incremental) = (Sightings::new(), Sightings::new());
    let mut checker = IncrementalChecker::new();
    let mut previous = Observation::default();
    let mut after_each = Vec::new();
    for obs in seq {
        sight(crate::check_always(&canonical(obs)), &mut batch);
        sight(
            step(&mut checker, &Delta::between(&previous, obs)),
            &mut incremental,
        );
        after_each.push((batch.clone(), incremental.clone()));
        previous = obs.clone();
    }
    after_each
}

/// Asserts that after every observation of `seq` both checkers have seen the same violations.
pub(crate) fn assert_agrees(seq: &[Observation]) {
    for (i, (batch, incremental)) in both(seq, IncrementalChecker::step).iter().enumerate() {
        assert_eq!(batch, incremental, "after observation {i} of {}", seq.len());
    }
}

#[test]
fn agrees_on_the_valid_run_and_back_to_empty() {
    assert_agrees(&[valid(), Observation::default(), valid()]);
    assert!(both(&[valid()], IncrementalChecker::step)[0].1.is_empty());
}

#[test]
fn a_checker_that_forgets_touched_accounts_disagrees() {
    // An account goes negative in the second snapshot. A checker that drops the accounts a
    // delta touched never judges it again, and misses the violation.
    let mut overdrawn = valid();
    overdrawn.shards[0].accounts[1].available = Decimal::new(-1, 0);
    let seq = [valid(), overdrawn];
    let forgetful = |c: &mut IncrementalChecker, d: &Delta| {
        let mut dirty = c.world.apply(d);
        dirty.accounts.clear();
        c.judge(&dirty, d)
    };
    let last = both(&seq, forgetful).pop().expect("two observations");
    assert_ne!(last.0, last.1, "the forgetful checker must disagree");
    assert!(last.0.keys().any(|(i, _)| *i == Invariant::NonNegativity));
}

#[test]
fn a_checker_that_forgets_touched_operations_disagrees() {
    // A reply flips in the second snapshot: only the touched operation shows it.
    let mut flipped = valid();
    Arc::make_mut(&mut flipped.history[9])
        .replies
        .push(Outcome::fail("unavailable", "late"));
    let seq = [valid(), flipped];
    let forgetful = |c: &mut IncrementalChecker, d: &Delta| {
        let mut dirty = c.world.apply(d);
        dirty.ops.clear();
        dirty.requests.clear();
        c.judge(&dirty, d)
    };
    let last = both(&seq, forgetful).pop().expect("two observations");
    assert_ne!(last.0, last.1, "the forgetful checker must disagree");
}

// ---- Random sequences -------------------------------------------------------------------

/// Small key spaces, so that random changes collide, overwrite and break rules.
const ACCOUNTS: u64 = 6;
const REQUESTS: &[&str] = &["r0", "r1", "r2", "sys:s", "k0", "k1"];
const XIDS: &[&str] = &["x0", "x1", "x2"];
const TRADES: &[&str] = &["T0", "T1", "T2"];

fn cents() -> impl Strategy<Value = Decimal> {
    prop_oneof![4 => 1i64..3_000, 1 => -200i64..=0].prop_map(|c| Decimal::new(c, 2))
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Debit), Just(Side::Credit)]
}

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = String> {
    (0..list.len()).prop_map(move |i| list[i].to_string())
}

fn subject() -> impl Strategy<Value = Subject> {
    prop_oneof![
        Just(Subject::User),
        Just(Subject::Merchant),
        Just(Subject::Transit),
        Just(Subject::World)
    ]
}

fn account_state() -> impl Strategy<Value = AccountState> {
    (0..ACCOUNTS, subject(), cents(), cents(), any::<bool>()).prop_map(|(id, s, a, f, zero)| {
        AccountState {
            account: id,
            subject: s,
            available: a,
            frozen: if zero { Decimal::ZERO } else { f },
        }
    })
}

fn voucher_record(shard: u32) -> impl Strategy<Value = VoucherRecord> {
    let leg = (0..ACCOUNTS, side(), cents()).prop_map(|(account, side, amount)| Leg {
        account,
        side,
        amount,
    });
    let xid = prop::option::of(pick(XIDS));
    (
        0u32..5,
        pick(REQUESTS),
        xid,
        prop::collection::vec(leg, 1..4),
    )
        .prop_map(move |(k, request, xid, legs)| VoucherRecord {
            voucher: format!("v{shard}-{k}").into(),
            request: request.into(),
            currency: "CNY".into(),
            legs,
            xid: xid.map(Into::into),
            step: None,
        })
}

fn journal_entry(shard: u32) -> impl Strategy<Value = JournalEntry> {
    (0u64..10, 0u32..5, 0..ACCOUNTS, side(), cents()).prop_map(
        move |(seq, k, account, side, amount)| JournalEntry {
            seq,
            voucher: format!("v{shard}-{k}").into(),
            account,
            side,
            amount,
        },
    )
}

fn freeze_state() -> impl Strategy<Value = FreezeState> {
    (0u32..3, 0..ACCOUNTS, cents()).prop_map(|(k, account, amount)| FreezeState {
        key: format!("f{k}").into(),
        account,
        amount,
        xid: None,
    })
}

fn trade_status() -> impl Strategy<Value = TradeStatus> {
    use TradeStatus::*;
    prop::sample::select(vec![
        WaitPay,
        Paying,
        Paid,
        PartiallyRefunded,
        Refunded,
        Closed,
    ])
}

fn attempt_status() -> impl Strategy<Value = AttemptStatus> {
    use AttemptStatus::*;
    prop::sample::select(vec![Pending, Succeeded, Failed])
}

fn trade_state() -> impl Strategy<Value = TradeState> {
    let refund =
        (pick(REQUESTS), cents(), attempt_status()).prop_map(|(no, amount, status)| RefundState {
            out_request_no: no.into(),
            xid: "x0".into(),
            amount,
            status,
        });
    let history = prop::collection::vec(trade_status(), 0..4);
    let refunds = prop::collection::vec(refund, 0..3);
    let money = (cents(), cents(), cents());
    (pick(TRADES), 12u64..14, 0u32..2, money, history, refunds).prop_map(
        |(id, merchant, no, (paid, refunded, refunding), mut history, refunds)| {
            history.insert(0, TradeStatus::WaitPay);
            TradeState {
                trade: id.into(),
                merchant,
                out_trade_no: format!("o{no}").into(),
                amount: paid,
                paid,
                refunded,
                refunding,
                status: *history.last().expect("non-empty"),
                status_history: history,
                pays: Vec::new(),
                refunds,
            }
        },
    )
}

fn activity_state() -> impl Strategy<Value = ActivityState> {
    use Phase::*;
    let status = prop::sample::select(vec![
        Running, Committing, Aborting, Committed, Aborted, Heuristic,
    ]);
    let kind = prop_oneof![Just(ActivityKind::Pay), Just(ActivityKind::Refund)];
    let history = prop::collection::vec(status, 1..4);
    (pick(XIDS), kind, pick(REQUESTS), pick(TRADES), history).prop_map(
        |(xid, kind, key, trade, history)| ActivityState {
            xid: xid.into(),
            node: "payment/0".into(),
            kind,
            key: key.into(),
            trade: trade.into(),
            status: *history.last().expect("non-empty"),
            status_history: history,
            legs: Vec::new(),
        },
    )
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Ok),
        Just(Outcome::Unknown),
        Just(Outcome::fail("insufficient-funds", "short")),
        Just(Outcome::fail("unavailable", "down")),
    ]
}

fn operation() -> impl Strategy<Value = Operation> {
    use OpKind::*;
    let kind = prop::sample::select(vec![Fund, Transfer, Pay, Refund, CreateTrade]);
    let replies = prop::collection::vec(outcome(), 0..3);
    (
        pick(REQUESTS),
        kind,
        prop::option::of(cents()),
        outcome(),
        replies,
    )
        .prop_map(|(request, kind, amount, outcome, replies)| Operation {
            client: 1,
            request: request.into(),
            kind,
            amount,
            invoke_ms: 0,
            complete_ms: 0,
            attempts: 1,
            outcome,
            trade: None,
            replies,
            attack: None,
        })
}

/// One random change to an observation.
#[derive(Debug, Clone)]
enum Change {
    Account(u32, AccountState),
    DropAccount(u32, u64),
    Voucher(VoucherRecord),
    DropVoucher(u32, String),
    Entry(u32, JournalEntry),
    DropEntry(u32, u64),
    Freeze(u32, FreezeState),
    DropFreeze(u32, String),
    Trade(TradeState),
    DropTrade(String),
    Activity(ActivityState),
    DropActivity(String),
    /// Replaces the operation at that position (modulo the length), or appends.
    Op(usize, Operation),
}

fn change() -> impl Strategy<Value = Change> {
    let shard = 0u32..2;
    prop_oneof![
        4 => (shard.clone(), account_state()).prop_map(|(s, a)| Change::Account(s, a)),
        1 => (shard.clone(), 0..ACCOUNTS).prop_map(|(s, a)| Change::DropAccount(s, a)),
        3 => shard.clone().prop_flat_map(voucher_record).prop_map(Change::Voucher),
        1 => (shard.clone(), 0u32..5).prop_map(|(s, k)| Change::DropVoucher(s, format!("v{s}-{k}"))),
        4 => shard.clone().prop_flat_map(|s| (Just(s), journal_entry(s)))
            .prop_map(|(s, e)| Change::Entry(s, e)),
        1 => (shard.clone(), 0u64..10).prop_map(|(s, q)| Change::DropEntry(s, q)),
        2 => (shard.clone(), freeze_state()).prop_map(|(s, f)| Change::Freeze(s, f)),
        1 => (shard, 0u32..3).prop_map(|(s, k)| Change::DropFreeze(s, format!("f{k}"))),
        3 => trade_state().prop_map(Change::Trade),
        1 => pick(TRADES).prop_map(Change::DropTrade),
        3 => activity_state().prop_map(Change::Activity),
        1 => pick(XIDS).prop_map(Change::DropActivity),
        4 => (0usize..8, operation()).prop_map(|(i, op)| Change::Op(i, op)),
    ]
}

fn shard_mut(obs: &mut Observation, n: u32) -> &mut ShardSnapshot {
    if let Some(i) = obs.shards.iter().position(|s| s.shard == n) {
        return &mut obs.shards[i];
    }
    obs.shards.push(ShardSnapshot {
        shard: n,
        ..ShardSnapshot::default()
    });
    obs.shards.last_mut().expect("just pushed")
}

/// Replaces the entry of `list` with `key`, or appends `value`.
fn upsert<T>(list: &mut Vec<T>, value: T, key: impl Fn(&T) -> bool) {
    match list.iter().position(key) {
        Some(i) => list[i] = value,
        None => list.push(value),
    }
}

fn apply(obs: &mut Observation, c: Change) {
    match c {
        Change::Account(n, a) => {
            let id = a.account;
            upsert(&mut shard_mut(obs, n).accounts, a, |x| x.account == id)
        }
        Change::DropAccount(n, id) => shard_mut(obs, n).accounts.retain(|a| a.account != id),
        Change::Voucher(v) => {
            let n = v.voucher[1..2].parse().expect("v{shard}-{k}");
            let id = v.voucher.clone();
            upsert(&mut shard_mut(obs, n).vouchers, v, |x| x.voucher == id)
        }
        Change::DropVoucher(n, id) => shard_mut(obs, n).vouchers.retain(|v| v.voucher != id),
        Change::Entry(n, e) => {
            let seq = e.seq;
            upsert(&mut shard_mut(obs, n).journal, e, |x| x.seq == seq)
        }
        Change::DropEntry(n, seq) => shard_mut(obs, n).journal.retain(|e| e.seq != seq),
        Change::Freeze(n, f) => {
            let key = f.key.clone();
            upsert(&mut shard_mut(obs, n).freezes, f, |x| x.key == key)
        }
        Change::DropFreeze(n, key) => shard_mut(obs, n).freezes.retain(|f| f.key != key),
        Change::Trade(t) => {
            let id = t.trade.clone();
            upsert(&mut obs.trades, t, |x| x.trade == id)
        }
        Change::DropTrade(id) => obs.trades.retain(|t| t.trade != id),
        Change::Activity(a) => {
            let xid = a.xid.clone();
            upsert(&mut obs.activities, a, |x| x.xid == xid)
        }
        Change::DropActivity(xid) => obs.activities.retain(|a| a.xid != xid),
        Change::Op(i, op) if i < obs.history.len() => obs.history[i] = op.into(),
        Change::Op(_, op) => obs.history.push(op.into()),
    }
}

/// A sequence of observations, each a few random changes away from the one before.
fn sequences() -> impl Strategy<Value = Vec<Observation>> {
    let step = prop::collection::vec(change(), 1..5);
    (any::<bool>(), prop::collection::vec(step, 1..8)).prop_map(|(from_valid, steps)| {
        let mut obs = if from_valid {
            valid()
        } else {
            Observation::default()
        };
        let mut seq = Vec::new();
        for (i, changes) in steps.into_iter().enumerate() {
            for c in changes {
                apply(&mut obs, c);
            }
            obs.at_ms = i as u64;
            seq.push(obs.clone());
        }
        seq
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn incremental_verdicts_equal_batch_verdicts(seq in sequences()) {
        for (i, (batch, incremental)) in both(&seq, IncrementalChecker::step).iter().enumerate() {
            prop_assert_eq!(batch, incremental, "after observation {}", i);
        }
    }
}

// ---- Sealing: the journal folded away once final ----------------------------------------

/// The highest bound shard `n`'s journal can be sealed below after observation `i` of `seq`:
/// no later observation changes an entry below it, a voucher such an entry names, any entry
/// naming such a voucher, or whether an account such an entry names exists. (The platform's
/// durable journal keeps this promise: a synced record never changes, and it holds a voucher
/// with all its entries.)
fn seal_bound(seq: &[Observation], i: usize, n: u32) -> u64 {
    let shard = |obs: &Observation| obs.shards.iter().find(|s| s.shard == n).cloned();
    let now = shard(&seq[i]).unwrap_or_default();
    let top = now.journal.iter().map(|e| e.seq + 1).max().unwrap_or(0);
    let sealable = |b: u64| {
        let below = |s: &ShardSnapshot| -> Vec<JournalEntry> {
            let mut e: Vec<_> = s.journal.iter().filter(|e| e.seq < b).cloned().collect();
            e.sort_by_key(|e| e.seq);
            e
        };
        let sealed = below(&now);
        let vouchers: Vec<&str> = sealed.iter().map(|e| e.voucher.as_str()).collect();
        let accounts: Vec<u64> = sealed.iter().map(|e| e.account).collect();
        let about = |s: &ShardSnapshot| {
            let named = |v: &str| {
                let record = s.vouchers.iter().find(|r| r.voucher == v).cloned();
                let mut entries: Vec<_> = s
                    .journal
                    .iter()
                    .filter(|e| e.voucher == v)
                    .cloned()
                    .collect();
                entries.sort_by_key(|e| e.seq);
                (record, entries)
            };
            let present = |a: &u64| s.accounts.iter().any(|x| x.account == *a);
            let v: Vec<_> = vouchers.iter().map(|v| named(v)).collect();
            (
                below(s),
                v,
                accounts.iter().map(present).collect::<Vec<_>>(),
            )
        };
        let then = about(&now);
        seq[i + 1..]
            .iter()
            .all(|o| about(&shard(o).unwrap_or_default()) == then)
    };
    (0..=top).rev().find(|b| sealable(*b)).unwrap_or(0)
}

/// Runs the batch checkers and a sealing incremental checker (each delta sealing every shard
/// as far as [`seal_bound`] allows) over `seq`: the first sightings must agree after every
/// observation. Returns how many journal entries the checker had sealed at the end.
fn sealing_agrees(seq: &[Observation]) -> Result<u64, String> {
    let (mut batch, mut sealing) = (Sightings::new(), Sightings::new());
    let mut checker = IncrementalChecker::new();
    let mut previous = Observation::default();
    for (i, obs) in seq.iter().enumerate() {
        sight(crate::check_always(&canonical(obs)), &mut batch);
        let mut delta = Delta::between(&previous, obs);
        delta.seals = obs
            .shards
            .iter()
            .map(|s| (s.shard, seal_bound(seq, i, s.shard)))
            .collect();
        sight(checker.step(&delta), &mut sealing);
        if batch != sealing {
            return Err(format!("after observation {i}: {batch:?}\n != {sealing:?}"));
        }
        previous = obs.clone();
    }
    Ok(checker.world().seals().values().sum())
}

#[test]
fn sealing_agrees_on_the_valid_run_and_seals_it() {
    let mut later = valid();
    // A later snapshot: an account's balance breaks after its entries were sealed, so that the
    // violation's evidence (the exact fold) needs what the sealed entries summed to.
    later.shards[0].accounts[1].available += Decimal::ONE;
    let sealed = sealing_agrees(&[valid(), valid(), later]).expect("agrees");
    assert!(sealed > 0, "the journal was sealed");
}

#[test]
fn a_sealed_voucher_still_answers_for_its_request() {
    // A voucher is posted, sealed, and only then does its client operation appear, asking for
    // another amount: exactly-once judges the operation against what the sealed voucher
    // debited (the voucher is unbalanced, so its debit and credit totals differ).
    let mut posted = valid();
    let mut v = crate::testkit::voucher("v0-3", "c9-1", 1, 2, Decimal::new(5, 0));
    v.legs[1].amount = Decimal::new(3, 0);
    let first = posted.shards[0].journal.len() as u64;
    posted.shards[0]
        .journal
        .extend(crate::testkit::entries(&v, first));
    posted.shards[0].vouchers.push(v);
    let mut asked = posted.clone();
    let op = crate::testkit::op("c9-1", OpKind::Fund, Some(Decimal::new(7, 0)), Outcome::Ok);
    asked.history.push(Arc::new(op));
    assert!(sealing_agrees(&[posted.clone(), asked.clone()]).expect("agrees") > 0);
    let batch = crate::check_always(&canonical(&asked));
    assert!(
        batch
            .iter()
            .any(|v| v.invariant == Invariant::ExactlyOnce && v.message.contains("moved 5")),
        "{batch:?}"
    );
}

#[test]
fn sealing_entries_that_change_later_breaks_the_agreement() {
    // The contract the capture keeps (what is sealed never changes) is what makes sealing
    // sound: seal everything, then drop an entry, and the sealed checker misses the break.
    let mut dropped = valid();
    dropped.shards[0].journal.pop();
    let seq = [valid(), dropped];
    let mut checker = IncrementalChecker::new();
    let mut delta = Delta::between(&Observation::default(), &seq[0]);
    delta.seals = vec![(0, u64::MAX), (1, u64::MAX)];
    let mut sealing = Sightings::new();
    sight(checker.step(&delta), &mut sealing);
    sight(
        checker.step(&Delta::between(&seq[0], &seq[1])),
        &mut sealing,
    );
    let batch = both(&seq, IncrementalChecker::step).pop().expect("two").0;
    assert_ne!(batch, sealing, "a wrong seal must show as a disagreement");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sealing_verdicts_equal_batch_verdicts(seq in sequences()) {
        prop_assert!(sealing_agrees(&seq).is_ok(), "{}", sealing_agrees(&seq).unwrap_err());
    }
}

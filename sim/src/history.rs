//! The clients' history: every operation with its invoke time, completion time and outcome.
//!
//! Operations still in flight are visible too, as `Unknown`, so that a snapshot taken mid-run
//! can be judged against everything a client had asked for by then.

use paylab_invariants::delta::OpChange;
use paylab_invariants::{OpKind, Operation, Outcome};
use rust_decimal::Decimal;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A cloneable handle to the run's history, shared by every client.
#[derive(Debug, Default, Clone)]
pub struct History {
    ops: Arc<Mutex<Ops>>,
    /// Completed operations, kept apart so the nemesis can watch progress cheaply.
    completed: Arc<AtomicUsize>,
}

#[derive(Debug, Default)]
struct Ops {
    entries: Vec<Entry>,
    /// Positions invoked, completed or re-asked since the last [`History::take_changes`].
    changed: BTreeSet<usize>,
}

impl Ops {
    fn touch(&mut self, i: usize) -> &mut Entry {
        self.changed.insert(i);
        &mut self.entries[i]
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// Shared with the checker's world until the operation changes again (then copied once).
    op: Arc<Operation>,
    done: bool,
}

/// Adds a reply to an operation's list, growing it by one: most operations get one or two, and
/// a vector's first push would reserve four.
fn record_reply(replies: &mut Vec<Outcome>, reply: Outcome) {
    replies.reserve_exact(1);
    replies.push(reply);
}

/// The index of an operation in the history, returned by [`History::invoke`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpHandle(usize);

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ops> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks operation `op` as a hostile client's attempt and what it must be answered with.
    pub fn mark_attack(&self, op: OpHandle, attack: paylab_invariants::Attack) {
        let mut ops = self.lock();
        Arc::make_mut(&mut ops.touch(op.0).op).attack = Some(Box::new(attack));
    }

    /// Records that a client started an operation.
    pub fn invoke(
        &self,
        client: u32,
        request: &str,
        kind: OpKind,
        amount: Option<Decimal>,
        trade: Option<String>,
        now_ms: u64,
    ) -> OpHandle {
        let mut ops = self.lock();
        let i = ops.entries.len();
        ops.changed.insert(i);
        ops.entries.push(Entry {
            op: Arc::new(Operation {
                client,
                request: request.into(),
                kind,
                amount,
                invoke_ms: now_ms,
                complete_ms: now_ms,
                attempts: 0,
                outcome: Outcome::Unknown,
                trade: trade.map(Into::into),
                replies: Vec::new(),
                attack: None,
            }),
            done: false,
        });
        OpHandle(i)
    }

    /// Records how the operation ended, after `attempts` sends.
    pub fn complete(&self, handle: OpHandle, outcome: Outcome, attempts: u32, now_ms: u64) {
        let mut ops = self.lock();
        let e = ops.touch(handle.0);
        assert!(!e.done, "operation {} completed twice", e.op.request);
        e.done = true;
        let op = Arc::make_mut(&mut e.op);
        if outcome != Outcome::Unknown {
            record_reply(&mut op.replies, outcome.clone());
        }
        op.outcome = outcome;
        op.attempts = attempts;
        op.complete_ms = now_ms;
        self.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the definite reply to a later re-ask of a completed operation's request.
    pub fn re_asked(&self, handle: OpHandle, reply: Outcome) {
        assert!(
            reply != Outcome::Unknown,
            "only definite replies are recorded"
        );
        let mut ops = self.lock();
        record_reply(
            &mut Arc::make_mut(&mut ops.touch(handle.0).op).replies,
            reply,
        );
    }

    /// Every operation so far, shared rather than copied (what an observation holds).
    pub fn shared(&self) -> Vec<Arc<Operation>> {
        self.lock().entries.iter().map(|e| e.op.clone()).collect()
    }

    /// Every operation so far; those in flight appear as `Unknown`.
    pub fn operations(&self) -> Vec<Operation> {
        self.lock()
            .entries
            .iter()
            .map(|e| (*e.op).clone())
            .collect()
    }

    /// The operations invoked, completed or re-asked since the last call, by position (the
    /// periodic check's share of the history, instead of a copy of all of it).
    pub fn take_changes(&self) -> Vec<OpChange> {
        let mut ops = self.lock();
        let changed = std::mem::take(&mut ops.changed);
        changed
            .into_iter()
            .map(|i| OpChange {
                index: i as u64,
                op: ops.entries[i].op.clone(),
            })
            .collect()
    }

    /// A trade some client other than `not_by` paid, among the latest pays (`pick` chooses
    /// which): what a hostile client learns of others' trades (trade ids are no secret).
    pub fn paid_trade(&self, not_by: u32, pick: u64) -> Option<(u32, String)> {
        const RECENT: usize = 500;
        let ops = self.lock();
        let from = ops.entries.len().saturating_sub(RECENT);
        let paid: Vec<(u32, &paylab_invariants::Id)> = ops.entries[from..]
            .iter()
            .filter(|e| e.op.kind == OpKind::Pay && e.op.outcome == Outcome::Ok)
            .filter(|e| e.op.client != not_by)
            .filter_map(|e| e.op.trade.as_ref().map(|t| (e.op.client, t)))
            .collect();
        let n = paid.len() as u64;
        (n > 0).then(|| {
            let (client, trade) = paid[(pick % n) as usize];
            (client, trade.to_string())
        })
    }

    /// How many operations have been invoked so far.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no operation has been invoked yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many operations have completed so far.
    pub fn completed(&self) -> usize {
        self.completed.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> usize {
        self.lock().entries.iter().filter(|e| !e.done).count()
    }
}

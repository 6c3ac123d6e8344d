//! Invariant 23: at rest, the ledger did what each saga's log says (the `saga` strategy).
//!
//! A saga posts its steps in order and, once a step is refused, compensates the steps before
//! it. Its log records where it failed and how it ended; the vouchers carry their movement's
//! step (and whether they undo it). So at rest: a saga the log says **completed** posted each
//! step exactly once and undid none; one it says **compensated** after step `k` was refused
//! posted and undid each step before `k` exactly once, and never posted step `k` or a later
//! one. Independently of the log's end, no step is undone that was never posted. Atomicity
//! (11) judges the net effect of any strategy; this judges the saga's own protocol, step by
//! step. A saga not ended, or ended heuristically, is atomicity's and liveness's to report.

use crate::index::{vouchers_by_xid, Posted};
use crate::{Invariant, Observation, SagaEnd, SagaLogEntry, Violation};
use std::collections::BTreeMap;

pub fn check(obs: &Observation) -> Vec<Violation> {
    if obs.strategy.sagas.is_empty() {
        return Vec::new();
    }
    let vouchers = vouchers_by_xid(obs);
    let mut out = Vec::new();
    for saga in &obs.strategy.sagas {
        let posted = vouchers
            .get(saga.xid.as_str())
            .map_or(&[][..], Vec::as_slice);
        out.extend(judge(saga, &counts(posted)));
    }
    out
}

/// How many vouchers posted each (step, undo).
type Counts = BTreeMap<(u32, bool), usize>;

fn counts(posted: &[Posted<'_>]) -> Counts {
    let mut counts = Counts::new();
    for (_, v) in posted {
        if let Some(step) = v.step {
            *counts.entry((step.index, step.undo)).or_default() += 1;
        }
    }
    counts
}

/// What each step must show, by the log's word, and what it shows.
fn judge(saga: &SagaLogEntry, counts: &Counts) -> Vec<Violation> {
    let n = |step: u32, undo: bool| counts.get(&(step, undo)).copied().unwrap_or(0);
    let mut out = Vec::new();
    for step in 0..saga.steps {
        let (forward, undone) = (n(step, false), n(step, true));
        let expected = match (saga.end, saga.failed) {
            (Some(SagaEnd::Completed), _) => Some((1, 0)),
            (Some(SagaEnd::Compensated), Some(k)) if step < k => Some((1, 1)),
            (Some(SagaEnd::Compensated), Some(_)) => Some((0, 0)),
            _ => None,
        };
        if let Some((want_forward, want_undone)) = expected {
            if (forward, undone) != (want_forward, want_undone) {
                let why = format!(
                    "step {step} posted {forward} time(s) and undone {undone} time(s), \
                     where its log's end asks {want_forward} and {want_undone}"
                );
                out.push(about(saga, why, step));
            }
        } else if undone > forward {
            let why = format!("step {step} undone {undone} time(s) but posted {forward}");
            out.push(about(saga, why, step));
        }
    }
    out
}

fn about(saga: &SagaLogEntry, why: String, step: u32) -> Violation {
    let end = saga.end.map_or("none".to_string(), |e| format!("{e:?}"));
    let failed = saga.failed.map_or("none".to_string(), |k| k.to_string());
    let msg = format!("saga {} ({end} in its log): {why}", saga.xid);
    Violation::new(Invariant::Compensation, msg)
        .with("xid", &saga.xid)
        .with("node", &saga.node)
        .with("end", end)
        .with("failed_step", failed)
        .with("step", step)
}

#[cfg(test)]
#[path = "compensation/tests.rs"]
mod tests;

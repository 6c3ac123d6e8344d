//! The TCC business-activity manager as a pure protocol engine: plain state, no clock, no RNG,
//! no sockets, no async. The runtime ([`super::manager`]) feeds it [`Input`]s (a request, a
//! resumption, a completed fsync, a branch's answer) and performs the [`Output`]s it returns
//! (append a record, sync the log, call a branch, open the buggify window, finish), feeding
//! each effect's result back as an input.
//!
//! The rules it keeps, each for a reason:
//! - `Begun` is durable before any Try, so after a crash the manager knows every branch it may
//!   have reserved, and can cancel it.
//! - Try is sent once per branch, with a timeout; no answer means rollback. The activity never
//!   waits on a Try, and a Try that arrives after its Cancel is refused by the fence. The
//!   reason given is the refusal of the lowest-numbered branch, whatever order answers came in.
//! - The decision is durable before phase two: once one branch is confirmed, recovery must never
//!   roll the others back (the planted bug `tcc-decision-not-durable` sends Confirm first). A
//!   rollback is made durable too, because its reason (and so its refusal code) is what the
//!   client is told, and recovery of an undecided activity would give another reason.
//! - Phase two is sent again until every branch answers, because the participants are
//!   idempotent.
//! - Every unfinished activity is resumed after a restart: an undecided one rolls back, a
//!   decided one finishes its phase two, an ended one reports its outcome.
//!
//! Answers that no longer matter (a duplicate, a reply to a phase already left) are ignored.

use crate::buggify::Point;
use crate::bugs::{Bug, Bugs};
use crate::ids::{ShardId, Xid};
use crate::ledger::LegAction;
use crate::movement::{Branch, MovementLog, MovementRecord, MovementView, Phase};
use crate::probes::names;
use crate::refusal::{Refusal, RefusalCode};
use crate::strategy::MovementOutcome;
use std::collections::BTreeMap;

/// How a branch answered its Try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TryAnswer {
    /// The reservation is made.
    Reserved,
    /// The participant refused (its code and detail, e.g. insufficient funds).
    Refused(Refusal),
    /// No answer within the Try timeout: the branch may or may not have reserved.
    NoAnswer,
}

/// How a branch answered Confirm or Cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseTwoAnswer {
    /// Confirmed or cancelled (a repeat included).
    Done,
    /// The participant refused phase two: the branches will not end the same way.
    Refused(String),
    /// The retried call gave up without an answer: it is sent again.
    NoAnswer,
}

/// What the runtime tells the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Move the money of a new activity over these branches.
    Begin { xid: Xid, branches: Vec<Branch> },
    /// Finish an activity found in the log after a restart (or report how it ended).
    Resume { xid: Xid },
    /// The fsync asked for by [`Output::Sync`] has completed.
    Synced { xid: Xid },
    /// The buggify window asked for by [`Output::Window`] has passed.
    WindowPassed { xid: Xid },
    TryAnswered {
        xid: Xid,
        branch: u32,
        answer: TryAnswer,
    },
    PhaseTwoAnswered {
        xid: Xid,
        branch: u32,
        answer: PhaseTwoAnswer,
        /// How many attempts the call took (more than one is a retry worth a probe).
        attempts: u32,
    },
}

/// What the engine asks the runtime to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Append this record to the activity log (the engine has already folded it).
    Append(MovementRecord),
    /// Make everything appended so far durable, then feed [`Input::Synced`].
    Sync { xid: Xid },
    /// Send Try once, with the Try timeout, then feed [`Input::TryAnswered`].
    Try {
        xid: Xid,
        branch: u32,
        shard: ShardId,
        action: LegAction,
    },
    /// Open the buggify window `point` (between COMMIT and the first Confirm, or between the
    /// last phase-two answer and the end), then feed [`Input::WindowPassed`].
    Window { xid: Xid, point: Point },
    /// Send Confirm (`commit`) or Cancel, retried, then feed [`Input::PhaseTwoAnswered`].
    PhaseTwo {
        xid: Xid,
        branch: u32,
        shard: ShardId,
        commit: bool,
    },
    /// Count a coverage probe.
    Probe(&'static str),
    /// The activity has ended: hand its outcome to the caller.
    Finish { xid: Xid, outcome: MovementOutcome },
}

/// Where a running activity stands (in memory only: the log says the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Run {
    /// `Begun` appended; waiting for its fsync.
    Beginning,
    /// Tries sent; one slot per branch.
    Trying { answers: Vec<Option<TryAnswer>> },
    /// The decision appended; waiting for its fsync.
    Deciding { commit: bool },
    /// COMMIT durable; waiting for the buggify window.
    Window,
    /// Phase two sent; one slot per branch (`Ok` or the refusal's text). `undecided` only under
    /// the planted bug: COMMIT is not even written yet.
    PhaseTwo {
        commit: bool,
        answers: Vec<Option<Result<(), String>>>,
        undecided: bool,
    },
}

/// The reason recovery gives for rolling back an activity it found undecided.
pub const RESTART_REASON: &str = "the manager restarted before deciding";

/// The manager's protocol state: the activity log's fold and the activities in flight.
#[derive(Debug, Clone)]
pub struct TccEngine {
    log: MovementLog,
    runs: BTreeMap<Xid, Run>,
    bugs: Bugs,
}

impl TccEngine {
    /// An engine over a recovered log; nothing is running until it is begun or resumed.
    pub fn new(log: MovementLog, bugs: Bugs) -> Self {
        TccEngine {
            log,
            runs: BTreeMap::new(),
            bugs,
        }
    }

    pub fn log(&self) -> &MovementLog {
        &self.log
    }

    /// The activity log, for the harness's incremental capture to take its changes.
    pub fn log_mut(&mut self) -> &mut MovementLog {
        &mut self.log
    }

    /// Whether an activity is being driven right now.
    pub fn is_running(&self, xid: &Xid) -> bool {
        self.runs.contains_key(xid)
    }

    pub fn step(&mut self, input: Input) -> Vec<Output> {
        match input {
            Input::Begin { xid, branches } => self.begin(xid, branches),
            Input::Resume { xid } => self.resume(xid),
            Input::Synced { xid } => self.synced(xid),
            Input::WindowPassed { xid } => match self.runs.get(&xid) {
                Some(Run::Window) => self.start_phase_two(xid, true, false),
                Some(Run::PhaseTwo { answers, .. }) if answers.iter().all(Option::is_some) => {
                    self.end(xid)
                }
                _ => Vec::new(),
            },
            Input::TryAnswered {
                xid,
                branch,
                answer,
            } => self.try_answered(xid, branch, answer),
            Input::PhaseTwoAnswered {
                xid,
                branch,
                answer,
                attempts,
            } => self.phase_two_answered(xid, branch, answer, attempts),
        }
    }

    fn append(&mut self, record: MovementRecord, out: &mut Vec<Output>) {
        self.log.apply(record.clone());
        out.push(Output::Append(record));
    }

    fn activity(&self, xid: &Xid) -> &MovementView {
        self.log
            .get(xid)
            .unwrap_or_else(|| panic!("activity {xid} exists"))
    }

    fn begin(&mut self, xid: Xid, branches: Vec<Branch>) -> Vec<Output> {
        assert!(!self.is_running(&xid), "activity {xid} begun while running");
        let mut out = Vec::new();
        let begun = MovementRecord::Begun {
            xid: xid.clone(),
            branches,
        };
        self.append(begun, &mut out);
        out.push(Output::Sync { xid: xid.clone() });
        self.runs.insert(xid, Run::Beginning);
        out
    }

    fn resume(&mut self, xid: Xid) -> Vec<Output> {
        assert!(!self.is_running(&xid), "activity {xid} resumed twice");
        let status = self.activity(&xid).status;
        let mut out = Vec::new();
        let commit = match status {
            Phase::Running => {
                out.push(Output::Probe(names::TCC_RESUMED_ROLLBACK));
                // Not synced: recovery would choose this rollback, with this reason, again.
                let decided = MovementRecord::Decided {
                    xid: xid.clone(),
                    commit: false,
                    reason: Some(Refusal::new(RefusalCode::Aborted, RESTART_REASON)),
                };
                self.append(decided, &mut out);
                false
            }
            Phase::Committing => {
                out.push(Output::Probe(names::TCC_RESUMED_COMMIT));
                true
            }
            Phase::Aborting => {
                out.push(Output::Probe(names::TCC_RESUMED_ROLLBACK));
                false
            }
            _ => {
                let outcome = outcome_of(self.activity(&xid));
                return vec![Output::Finish { xid, outcome }];
            }
        };
        out.extend(self.start_phase_two(xid, commit, false));
        out
    }

    fn synced(&mut self, xid: Xid) -> Vec<Output> {
        match self.runs.get(&xid) {
            Some(Run::Beginning) => {
                let branches = self.activity(&xid).branches.clone();
                let answers = vec![None; branches.len()];
                self.runs.insert(xid.clone(), Run::Trying { answers });
                let tries = branches.iter().enumerate().map(|(i, b)| Output::Try {
                    xid: xid.clone(),
                    branch: i as u32,
                    shard: b.shard,
                    action: b.action,
                });
                tries.collect()
            }
            Some(Run::Deciding { commit: true }) => {
                self.runs.insert(xid.clone(), Run::Window);
                vec![Output::Window {
                    xid,
                    point: Point::CommitToPhaseTwo,
                }]
            }
            Some(Run::Deciding { commit: false }) => self.start_phase_two(xid, false, false),
            _ => Vec::new(),
        }
    }

    fn try_answered(&mut self, xid: Xid, branch: u32, answer: TryAnswer) -> Vec<Output> {
        let Some(Run::Trying { answers }) = self.runs.get_mut(&xid) else {
            return Vec::new(); // late: the activity has moved on
        };
        let Some(slot @ None) = answers.get_mut(branch as usize) else {
            return Vec::new(); // duplicate
        };
        let mut out = Vec::new();
        match &answer {
            TryAnswer::Reserved => {}
            TryAnswer::Refused(_) => out.push(Output::Probe(names::TCC_TRY_REFUSED)),
            TryAnswer::NoAnswer => out.push(Output::Probe(names::TCC_TRY_TIMEOUT)),
        }
        *slot = Some(answer);
        if answers.iter().all(Option::is_some) {
            let refusal = first_refusal(answers);
            out.extend(self.decide(xid, refusal));
        }
        out
    }

    /// Every Try has answered: COMMIT if all reserved, else ROLLBACK with the first refusal.
    fn decide(&mut self, xid: Xid, refusal: Option<Refusal>) -> Vec<Output> {
        let commit = refusal.is_none();
        if commit && self.bugs.is(Bug::TccDecisionNotDurable) {
            // The planted bug: phase two starts before COMMIT is even written.
            return self.start_phase_two(xid, true, true);
        }
        let mut out = Vec::new();
        let decided = MovementRecord::Decided {
            xid: xid.clone(),
            commit,
            reason: refusal,
        };
        self.append(decided, &mut out);
        out.push(Output::Sync { xid: xid.clone() });
        self.runs.insert(xid, Run::Deciding { commit });
        out
    }

    fn start_phase_two(&mut self, xid: Xid, commit: bool, undecided: bool) -> Vec<Output> {
        let branches = self.activity(&xid).branches.clone();
        let run = Run::PhaseTwo {
            commit,
            answers: vec![None; branches.len()],
            undecided,
        };
        self.runs.insert(xid.clone(), run);
        let calls = branches.iter().enumerate().map(|(i, b)| Output::PhaseTwo {
            xid: xid.clone(),
            branch: i as u32,
            shard: b.shard,
            commit,
        });
        calls.collect()
    }

    fn phase_two_answered(
        &mut self,
        xid: Xid,
        branch: u32,
        answer: PhaseTwoAnswer,
        attempts: u32,
    ) -> Vec<Output> {
        let Some(Run::PhaseTwo {
            commit, answers, ..
        }) = self.runs.get_mut(&xid)
        else {
            return Vec::new(); // late: the activity has ended
        };
        let commit = *commit;
        let Some(slot @ None) = answers.get_mut(branch as usize) else {
            return Vec::new(); // duplicate
        };
        let mut out = Vec::new();
        if attempts > 1 {
            out.push(Output::Probe(names::TCC_PHASE_TWO_RETRY));
        }
        match answer {
            PhaseTwoAnswer::NoAnswer => {
                let shard = self.activity(&xid).branches[branch as usize].shard;
                out.push(Output::PhaseTwo {
                    xid,
                    branch,
                    shard,
                    commit,
                });
                return out;
            }
            PhaseTwoAnswer::Done => *slot = Some(Ok(())),
            PhaseTwoAnswer::Refused(why) => *slot = Some(Err(why)),
        }
        if answers.iter().all(Option::is_some) {
            let point = if commit {
                Point::ConfirmToEnd
            } else {
                Point::CancelToEnd
            };
            out.push(Output::Window { xid, point });
        }
        out
    }

    /// Every branch has answered phase two and the window after it has passed: write the end (not synced: a lost end is redone
    /// idempotently) and finish.
    fn end(&mut self, xid: Xid) -> Vec<Output> {
        let Some(Run::PhaseTwo {
            answers, undecided, ..
        }) = self.runs.remove(&xid)
        else {
            unreachable!("only a running phase two ends");
        };
        let mut out = Vec::new();
        if undecided {
            let decided = MovementRecord::Decided {
                xid: xid.clone(),
                commit: true,
                reason: None,
            };
            self.append(decided, &mut out);
        }
        let refusals: Vec<String> = answers
            .into_iter()
            .enumerate()
            .filter_map(|(i, a)| match a {
                Some(Err(why)) => Some(format!("branch {i} {why}")),
                _ => None,
            })
            .collect();
        let status = match (self.activity(&xid).status, refusals.is_empty()) {
            (Phase::Committing, true) => Phase::Committed,
            (Phase::Aborting, true) => Phase::Aborted,
            _ => {
                out.push(Output::Probe(names::TCC_HEURISTIC));
                Phase::Heuristic
            }
        };
        let ended = MovementRecord::Ended {
            xid: xid.clone(),
            status,
            heuristic: (!refusals.is_empty()).then(|| refusals.join("; ")),
        };
        self.append(ended, &mut out);
        let outcome = outcome_of(self.activity(&xid));
        out.push(Output::Finish { xid, outcome });
        out
    }
}

/// The refusal of the lowest-numbered branch that did not reserve, if any.
fn first_refusal(answers: &[Option<TryAnswer>]) -> Option<Refusal> {
    answers.iter().enumerate().find_map(|(i, a)| match a {
        Some(TryAnswer::Refused(r)) => Some(Refusal::new(
            r.code,
            format!("branch {i} refused Try: {}", r.detail),
        )),
        Some(TryAnswer::NoAnswer) => Some(Refusal::new(
            RefusalCode::Aborted,
            format!("branch {i} did not answer Try"),
        )),
        _ => None,
    })
}

/// How an ended activity ended, as its caller is told.
pub fn outcome_of(a: &MovementView) -> MovementOutcome {
    match a.status {
        Phase::Committed => MovementOutcome::Committed,
        Phase::Aborted => MovementOutcome::Aborted(
            a.reason
                .clone()
                .unwrap_or_else(|| Refusal::new(RefusalCode::Aborted, "rolled back")),
        ),
        Phase::Heuristic => MovementOutcome::Heuristic(a.heuristic.clone().unwrap_or_default()),
        other => unreachable!("outcome of an unfinished activity ({other:?})"),
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;

//! Table tests of the TCC engine: each case is a recovered log, the planted bug if any, and a
//! table of (input, expected outputs) steps. Between them they cover every rule in the engine's
//! module comment: Begun durable before Try, one Try per branch, no answer = rollback, the
//! decision durable before phase two, phase two sent until every branch answers, resumption
//! after a crash after each durable step, late and duplicated answers, and the planted
//! `tcc-decision-not-durable`.

use super::*;
use crate::ids::AccountId;
use crate::money::Amount;

const X: &str = "x0.1";

fn xid() -> Xid {
    Xid::from(X)
}

fn amount() -> Amount {
    Amount::from_fen(3_000).unwrap()
}

/// Branch 0 debits the payer on shard 0, branch 1 credits the merchant on shard 1.
fn branches() -> Vec<Branch> {
    vec![
        Branch {
            shard: ShardId(0),
            action: LegAction::Debit {
                account: AccountId(4),
                amount: amount(),
            },
        },
        Branch {
            shard: ShardId(1),
            action: LegAction::Credit {
                account: AccountId(5),
                amount: amount(),
            },
        },
    ]
}

// ---- inputs ----

fn begin() -> Input {
    Input::Begin {
        xid: xid(),
        branches: branches(),
    }
}

fn resume() -> Input {
    Input::Resume { xid: xid() }
}

fn synced() -> Input {
    Input::Synced { xid: xid() }
}

fn window_passed() -> Input {
    Input::WindowPassed { xid: xid() }
}

fn tried(branch: u32, answer: TryAnswer) -> Input {
    Input::TryAnswered {
        xid: xid(),
        branch,
        answer,
    }
}

fn answered(branch: u32, answer: PhaseTwoAnswer, attempts: u32) -> Input {
    Input::PhaseTwoAnswered {
        xid: xid(),
        branch,
        answer,
        attempts,
    }
}

fn done(branch: u32) -> Input {
    answered(branch, PhaseTwoAnswer::Done, 1)
}

fn insufficient() -> Refusal {
    Refusal::new(
        RefusalCode::InsufficientFunds,
        "acct-4 has 10.00 available, 30.00 needed",
    )
}

// ---- records and outputs ----

fn begun_record() -> MovementRecord {
    MovementRecord::Begun {
        xid: xid(),
        branches: branches(),
    }
}

fn decided_record(reason: Option<Refusal>) -> MovementRecord {
    MovementRecord::Decided {
        xid: xid(),
        commit: reason.is_none(),
        reason,
    }
}

fn ended_record(status: Phase, heuristic: Option<&str>) -> MovementRecord {
    MovementRecord::Ended {
        xid: xid(),
        status,
        heuristic: heuristic.map(str::to_string),
    }
}

/// The buggify window between COMMIT and the first Confirm.
fn commit_window() -> Output {
    Output::Window {
        xid: xid(),
        point: Point::CommitToPhaseTwo,
    }
}

/// The buggify window between the last Confirm (or Cancel) answer and the end.
fn end_window(commit: bool) -> Output {
    Output::Window {
        xid: xid(),
        point: if commit {
            Point::ConfirmToEnd
        } else {
            Point::CancelToEnd
        },
    }
}

fn append(record: MovementRecord) -> Output {
    Output::Append(record)
}

fn sync() -> Output {
    Output::Sync { xid: xid() }
}

fn tries() -> Vec<Output> {
    branches()
        .iter()
        .enumerate()
        .map(|(i, b)| Output::Try {
            xid: xid(),
            branch: i as u32,
            shard: b.shard,
            action: b.action,
        })
        .collect()
}

fn phase_two(branch: u32, commit: bool) -> Output {
    Output::PhaseTwo {
        xid: xid(),
        branch,
        shard: ShardId(branch),
        commit,
    }
}

fn phase_twos(commit: bool) -> Vec<Output> {
    vec![phase_two(0, commit), phase_two(1, commit)]
}

fn finish(outcome: MovementOutcome) -> Output {
    Output::Finish {
        xid: xid(),
        outcome,
    }
}

fn aborted(code: RefusalCode, detail: &str) -> Refusal {
    Refusal::new(code, detail)
}

fn cat<T: Clone>(parts: Vec<Vec<T>>) -> Vec<T> {
    parts.concat()
}

/// One table row: an input and the outputs it must produce, in order.
type Step = (Input, Vec<Output>);

struct Case {
    name: &'static str,
    bugs: Bugs,
    /// The durable log the engine starts from (a restart), empty for a fresh manager.
    log: Vec<MovementRecord>,
    steps: Vec<Step>,
    /// The activity's status history at the end.
    history: Vec<Phase>,
}

fn run_case(case: &Case) -> TccEngine {
    let mut engine = TccEngine::new(MovementLog::recover(&case.log), case.bugs);
    for (i, (input, expected)) in case.steps.iter().enumerate() {
        let got = engine.step(input.clone());
        assert_eq!(&got, expected, "case '{}', step {i}: {input:?}", case.name);
    }
    let history = &engine
        .log()
        .get(&xid())
        .expect("the activity exists")
        .history;
    assert_eq!(history, &case.history, "case '{}': history", case.name);
    engine
}

use Phase::{Aborted, Aborting, Committed, Committing, Heuristic, Running};

/// The steps of a Begin up to every Try sent.
fn up_to_tries() -> Vec<Step> {
    vec![
        // Begun is appended and synced; no Try leaves before the fsync completes.
        (begin(), vec![append(begun_record()), sync()]),
        (synced(), tries()),
    ]
}

/// A clean commit after both Tries reserved, answers arriving out of branch order.
fn commit_steps() -> Vec<Step> {
    let mut steps = up_to_tries();
    steps.extend([
        (tried(1, TryAnswer::Reserved), vec![]),
        (
            tried(0, TryAnswer::Reserved),
            vec![append(decided_record(None)), sync()],
        ),
        // COMMIT durable; the buggify window; only then the Confirms.
        (synced(), vec![commit_window()]),
        (window_passed(), phase_twos(true)),
        (done(1), vec![]),
        (done(0), vec![end_window(true)]),
        (
            window_passed(),
            vec![
                append(ended_record(Committed, None)),
                finish(MovementOutcome::Committed),
            ],
        ),
    ]);
    steps
}

fn cases() -> Vec<Case> {
    let refused_try = format!("branch 0 refused Try: {}", insufficient().detail);
    let no_funds = aborted(RefusalCode::InsufficientFunds, &refused_try);
    let restarted = aborted(RefusalCode::Aborted, RESTART_REASON);
    vec![
        Case {
            name: "both branches reserve: commit, durable before Confirm",
            bugs: Bugs::none(),
            log: vec![],
            steps: commit_steps(),
            history: vec![Running, Committing, Committed],
        },
        Case {
            name: "an unrelated bug changes nothing",
            bugs: Bugs::planted(Bug::ReplicaNoVersion),
            log: vec![],
            steps: commit_steps(),
            history: vec![Running, Committing, Committed],
        },
        Case {
            name: "insufficient funds: rollback keeps the code, durable, Cancel without window",
            bugs: Bugs::none(),
            log: vec![],
            steps: cat(vec![
                up_to_tries(),
                vec![
                    (
                        tried(0, TryAnswer::Refused(insufficient())),
                        vec![Output::Probe(names::TCC_TRY_REFUSED)],
                    ),
                    (
                        tried(1, TryAnswer::Reserved),
                        vec![append(decided_record(Some(no_funds.clone()))), sync()],
                    ),
                    (synced(), phase_twos(false)),
                    (done(0), vec![]),
                    (done(1), vec![end_window(false)]),
                    (
                        window_passed(),
                        vec![
                            append(ended_record(Aborted, None)),
                            finish(MovementOutcome::Aborted(no_funds.clone())),
                        ],
                    ),
                ],
            ]),
            history: vec![Running, Aborting, Aborted],
        },
        Case {
            name: "a Try without an answer rolls back as aborted",
            bugs: Bugs::none(),
            log: vec![],
            steps: cat(vec![
                up_to_tries(),
                vec![
                    (tried(0, TryAnswer::Reserved), vec![]),
                    (
                        tried(1, TryAnswer::NoAnswer),
                        vec![
                            Output::Probe(names::TCC_TRY_TIMEOUT),
                            append(decided_record(Some(aborted(
                                RefusalCode::Aborted,
                                "branch 1 did not answer Try",
                            )))),
                            sync(),
                        ],
                    ),
                    (synced(), phase_twos(false)),
                ],
            ]),
            history: vec![Running, Aborting],
        },
        Case {
            name: "the lowest-numbered branch's refusal is the reason, whatever the order",
            bugs: Bugs::none(),
            log: vec![],
            steps: cat(vec![
                up_to_tries(),
                vec![
                    (
                        tried(1, TryAnswer::Refused(aborted(RefusalCode::Fence, "late"))),
                        vec![Output::Probe(names::TCC_TRY_REFUSED)],
                    ),
                    (
                        tried(0, TryAnswer::Refused(insufficient())),
                        vec![
                            Output::Probe(names::TCC_TRY_REFUSED),
                            append(decided_record(Some(no_funds.clone()))),
                            sync(),
                        ],
                    ),
                ],
            ]),
            history: vec![Running, Aborting],
        },
        Case {
            name: "duplicated and late Try answers are ignored",
            bugs: Bugs::none(),
            log: vec![],
            steps: cat(vec![
                up_to_tries(),
                vec![
                    (tried(0, TryAnswer::Reserved), vec![]),
                    // A duplicate answer, even a different one, changes nothing.
                    (tried(0, TryAnswer::Refused(insufficient())), vec![]),
                    (
                        tried(1, TryAnswer::Reserved),
                        vec![append(decided_record(None)), sync()],
                    ),
                    // Late: the activity has decided already.
                    (tried(1, TryAnswer::NoAnswer), vec![]),
                    (synced(), vec![commit_window()]),
                    // A Synced nobody waits for is ignored too.
                    (synced(), vec![]),
                ],
            ]),
            history: vec![Running, Committing],
        },
        Case {
            name: "phase two without an answer is sent again until it answers",
            bugs: Bugs::none(),
            log: vec![begun_record(), decided_record(None)],
            steps: vec![
                (
                    resume(),
                    cat(vec![
                        vec![Output::Probe(names::TCC_RESUMED_COMMIT)],
                        phase_twos(true),
                    ]),
                ),
                (
                    answered(0, PhaseTwoAnswer::NoAnswer, 7),
                    vec![
                        Output::Probe(names::TCC_PHASE_TWO_RETRY),
                        phase_two(0, true),
                    ],
                ),
                (done(1), vec![]),
                (
                    answered(0, PhaseTwoAnswer::Done, 3),
                    vec![Output::Probe(names::TCC_PHASE_TWO_RETRY), end_window(true)],
                ),
                (
                    window_passed(),
                    vec![
                        append(ended_record(Committed, None)),
                        finish(MovementOutcome::Committed),
                    ],
                ),
                // After the end: a duplicated answer is ignored.
                (done(0), vec![]),
            ],
            history: vec![Running, Committing, Committed],
        },
        Case {
            name: "a branch refusing phase two ends heuristic",
            bugs: Bugs::none(),
            log: vec![begun_record(), decided_record(Some(no_funds.clone()))],
            steps: vec![
                (
                    resume(),
                    cat(vec![
                        vec![Output::Probe(names::TCC_RESUMED_ROLLBACK)],
                        phase_twos(false),
                    ]),
                ),
                (
                    answered(
                        0,
                        PhaseTwoAnswer::Refused("refused: Cancel after Confirm".into()),
                        1,
                    ),
                    vec![],
                ),
                (done(1), vec![end_window(false)]),
                (
                    window_passed(),
                    vec![
                        Output::Probe(names::TCC_HEURISTIC),
                        append(ended_record(
                            Heuristic,
                            Some("branch 0 refused: Cancel after Confirm"),
                        )),
                        finish(MovementOutcome::Heuristic(
                            "branch 0 refused: Cancel after Confirm".into(),
                        )),
                    ],
                ),
            ],
            history: vec![Running, Aborting, Heuristic],
        },
        // Crash after each durable step, then resume.
        Case {
            name: "crash after Begun: recovery rolls back as aborted and cancels every branch",
            bugs: Bugs::none(),
            log: vec![begun_record()],
            steps: vec![
                (
                    resume(),
                    cat(vec![
                        vec![
                            Output::Probe(names::TCC_RESUMED_ROLLBACK),
                            append(decided_record(Some(restarted.clone()))),
                        ],
                        phase_twos(false),
                    ]),
                ),
                (done(0), vec![]),
                (done(1), vec![end_window(false)]),
                (
                    window_passed(),
                    vec![
                        append(ended_record(Aborted, None)),
                        finish(MovementOutcome::Aborted(restarted.clone())),
                    ],
                ),
            ],
            history: vec![Running, Aborting, Aborted],
        },
        Case {
            name: "crash after a durable rollback: the refusal keeps its code",
            bugs: Bugs::none(),
            log: vec![begun_record(), decided_record(Some(no_funds.clone()))],
            steps: vec![
                (
                    resume(),
                    cat(vec![
                        vec![Output::Probe(names::TCC_RESUMED_ROLLBACK)],
                        phase_twos(false),
                    ]),
                ),
                (done(0), vec![]),
                (done(1), vec![end_window(false)]),
                (
                    window_passed(),
                    vec![
                        append(ended_record(Aborted, None)),
                        finish(MovementOutcome::Aborted(no_funds.clone())),
                    ],
                ),
            ],
            history: vec![Running, Aborting, Aborted],
        },
        Case {
            name: "crash after a durable COMMIT: recovery confirms, never cancels",
            bugs: Bugs::none(),
            log: vec![begun_record(), decided_record(None)],
            steps: vec![(
                resume(),
                cat(vec![
                    vec![Output::Probe(names::TCC_RESUMED_COMMIT)],
                    phase_twos(true),
                ]),
            )],
            history: vec![Running, Committing],
        },
        Case {
            name: "crash after the end: resume only reports the outcome",
            bugs: Bugs::none(),
            log: vec![
                begun_record(),
                decided_record(Some(no_funds.clone())),
                ended_record(Aborted, None),
            ],
            steps: vec![(resume(), vec![finish(MovementOutcome::Aborted(no_funds))])],
            history: vec![Running, Aborting, Aborted],
        },
        // The planted bug.
        Case {
            name: "tcc-decision-not-durable: Confirm leaves before COMMIT is written",
            bugs: Bugs::planted(Bug::TccDecisionNotDurable),
            log: vec![],
            steps: cat(vec![
                up_to_tries(),
                vec![
                    (tried(0, TryAnswer::Reserved), vec![]),
                    // No Decided, no sync, no window: straight to the Confirms.
                    (tried(1, TryAnswer::Reserved), phase_twos(true)),
                    (done(0), vec![]),
                    (done(1), vec![end_window(true)]),
                    (
                        window_passed(),
                        vec![
                            append(decided_record(None)),
                            append(ended_record(Committed, None)),
                            finish(MovementOutcome::Committed),
                        ],
                    ),
                ],
            ]),
            history: vec![Running, Committing, Committed],
        },
        Case {
            name: "tcc-decision-not-durable still rolls back durably",
            bugs: Bugs::planted(Bug::TccDecisionNotDurable),
            log: vec![],
            steps: cat(vec![
                up_to_tries(),
                vec![
                    (tried(0, TryAnswer::Reserved), vec![]),
                    (
                        tried(1, TryAnswer::NoAnswer),
                        vec![
                            Output::Probe(names::TCC_TRY_TIMEOUT),
                            append(decided_record(Some(aborted(
                                RefusalCode::Aborted,
                                "branch 1 did not answer Try",
                            )))),
                            sync(),
                        ],
                    ),
                ],
            ]),
            history: vec![Running, Aborting],
        },
    ]
}

#[test]
fn the_engine_follows_its_table() {
    for case in cases() {
        run_case(&case);
    }
}

/// The rule behind the planted bug, checked over whole runs: between the `Decided` append and
/// the first phase-two call there is a completed fsync.
fn decision_durable_before_phase_two(steps: &[Step]) -> bool {
    let (mut decided, mut durable) = (false, false);
    for (input, outputs) in steps {
        if decided && matches!(input, Input::Synced { .. }) {
            durable = true;
        }
        for o in outputs {
            match o {
                Output::Append(MovementRecord::Decided { .. }) => decided = true,
                Output::PhaseTwo { .. } if !(decided && durable) => return false,
                _ => {}
            }
        }
    }
    true
}

#[test]
fn phase_two_never_precedes_a_durable_decision_unless_the_bug_is_planted() {
    for case in cases().iter().filter(|c| c.log.is_empty()) {
        let breaks_the_rule = case.name.contains("Confirm leaves before COMMIT");
        let holds = decision_durable_before_phase_two(&case.steps);
        assert_eq!(holds, !breaks_the_rule, "case '{}'", case.name);
    }
}

#[test]
fn a_crash_during_the_planted_bugs_phase_two_makes_recovery_cancel_a_confirmed_branch() {
    // The live run confirmed branch 0, then the node died: only Begun was durable.
    let mut engine = TccEngine::new(
        MovementLog::recover(&[begun_record()]),
        Bugs::planted(Bug::TccDecisionNotDurable),
    );
    let out = engine.step(resume());
    assert!(
        out.contains(&phase_two(0, false)),
        "recovery cancels: {out:?}"
    );
}

#[test]
fn an_answer_survives_a_crash_after_each_durable_step_with_its_code() {
    // Run the insufficient-funds rollback live, cutting the log after each record; resuming
    // from any cut that holds the decision gives the same outcome, to the code.
    let mut engine = TccEngine::new(MovementLog::default(), Bugs::none());
    let mut records = Vec::new();
    let mut live = None;
    let script = [
        begin(),
        synced(),
        tried(0, TryAnswer::Refused(insufficient())),
        tried(1, TryAnswer::Reserved),
        synced(),
        done(0),
        done(1),
        window_passed(),
    ];
    for input in script {
        for o in engine.step(input) {
            match o {
                Output::Append(r) => records.push(r),
                Output::Finish { outcome, .. } => live = Some(outcome),
                _ => {}
            }
        }
    }
    let live = live.expect("the live run finished");
    for cut in 2..=records.len() {
        let mut resumed = TccEngine::new(MovementLog::recover(&records[..cut]), Bugs::none());
        let mut outs = resumed.step(resume());
        for b in 0..2 {
            outs.extend(resumed.step(done(b)));
        }
        outs.extend(resumed.step(window_passed()));
        let got = outs.into_iter().find_map(|o| match o {
            Output::Finish { outcome, .. } => Some(outcome),
            _ => None,
        });
        assert_eq!(got.as_ref(), Some(&live), "cut after {cut} records");
    }
    // Why the rollback is made durable before phase two: had only Begun survived, recovery
    // would roll back for another reason, and the client's answer would change code.
    let mut undecided = TccEngine::new(MovementLog::recover(&records[..1]), Bugs::none());
    undecided.step(resume());
    undecided.step(done(0));
    undecided.step(done(1));
    let out = undecided.step(window_passed());
    let Some(Output::Finish {
        outcome: MovementOutcome::Aborted(r),
        ..
    }) = out.last()
    else {
        panic!("recovery finishes: {out:?}");
    };
    assert_eq!(
        (r.code, live_code(&live)),
        (RefusalCode::Aborted, RefusalCode::InsufficientFunds)
    );
}

fn live_code(outcome: &MovementOutcome) -> RefusalCode {
    match outcome {
        MovementOutcome::Aborted(r) => r.code,
        other => panic!("not aborted: {other:?}"),
    }
}

#[test]
#[should_panic(expected = "resumed twice")]
fn an_activity_is_never_driven_twice_at_once() {
    let mut engine = TccEngine::new(MovementLog::default(), Bugs::none());
    engine.step(begin());
    engine.step(resume());
}

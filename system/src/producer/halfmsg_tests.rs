//! Table tests of the half-message engine: each case is a start (planted bug, events found
//! durable) and a sequence of inputs, each with the outputs it must give. Producer message ids
//! are `{event}#{incarnation:x}-{n}`; the cases run with incarnation 0xa.

use super::*;
use CheckAnswer::{Commit, Rollback, Unknown};

fn msg(id: &str) -> Message {
    Message::new(id, "key", payload(id))
}

fn payload(id: &str) -> String {
    format!("payload-{id}")
}

#[derive(Debug, Clone)]
enum In {
    Begin(u64, &'static str),
    Stored(u64, u64),
    HalfFailed(u64),
    Committed(u64),
    Aborted(u64, Option<&'static str>),
    /// A check-back: producer message id, event id (None: not ours), payload.
    Check(&'static str, Option<&'static str>, String),
}

/// A check-back about the half of `event` under `pmid`, carrying `event`'s own payload.
fn check(pmid: &'static str, event: &'static str) -> In {
    In::Check(pmid, Some(event), payload(event))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Half(u64, &'static str, &'static str),
    Run(u64),
    End(u64, bool),
    Finish(u64, TxOutcome),
    Answer(CheckAnswer),
    AnswerAfterRestart(CheckAnswer),
}

fn short(o: &HalfOutput) -> Out {
    // Leaks are fine in a test: they turn the engine's Strings into the table's &'static str.
    let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
    match o {
        HalfOutput::SendHalf {
            tx,
            producer_msg_id,
            message,
        } => {
            assert_eq!(message.payload, payload(message.id.as_str()));
            Out::Half(tx.0, leak(producer_msg_id), leak(message.id.as_str()))
        }
        HalfOutput::RunLocal { tx } => Out::Run(tx.0),
        HalfOutput::End { half, commit } => Out::End(half.0, *commit),
        HalfOutput::Finish { tx, outcome } => Out::Finish(tx.0, *outcome),
        HalfOutput::Answer {
            answer,
            after_restart: false,
        } => Out::Answer(*answer),
        HalfOutput::Answer {
            answer,
            after_restart: true,
        } => Out::AnswerAfterRestart(*answer),
    }
}

struct Case {
    name: &'static str,
    bugs: Bugs,
    durable: &'static [&'static str],
    steps: Vec<(In, Vec<Out>)>,
}

fn run(case: &Case) {
    let mut engine = HalfMsg::recovered(case.bugs, 0xa, case.durable.iter().map(|id| msg(id)));
    for (i, (input, want)) in case.steps.iter().enumerate() {
        let got = match input {
            In::Begin(tx, id) => engine.begin(TxId(*tx), msg(id)),
            In::Stored(tx, half) => engine.half_stored(TxId(*tx), HalfId(*half)),
            In::HalfFailed(tx) => engine.half_failed(TxId(*tx)),
            In::Committed(tx) => engine.local_committed(TxId(*tx)),
            In::Aborted(tx, instead) => engine.local_aborted(TxId(*tx), instead.map(msg)),
            In::Check(pmid, id, payload) => {
                let id = id.map(EventId::from);
                engine.check_back(pmid, id.as_ref(), payload)
            }
        };
        let got: Vec<Out> = got.iter().map(short).collect();
        assert_eq!(&got, want, "case '{}', step {i} ({input:?})", case.name);
    }
}

fn cases() -> Vec<Case> {
    let none = Bugs::none();
    let from_memory = Bugs::planted(Bug::CheckbackFromMemory);
    let defaults_commit = Bugs::planted(Bug::CheckbackDefaultsCommit);
    vec![
        Case {
            name: "half, local commit, commit; a later check-back commits from the durable state",
            bugs: none,
            durable: &[],
            steps: vec![
                (In::Begin(1, "e1"), vec![Out::Half(1, "e1#a-1", "e1")]),
                (In::Stored(1, 7), vec![Out::Run(1)]),
                (
                    In::Committed(1),
                    vec![Out::End(7, true), Out::Finish(1, TxOutcome::Committed)],
                ),
                (check("e1#a-1", "e1"), vec![Out::Answer(Commit)]),
            ],
        },
        Case {
            name: "seed 70: a check-back overtaking the SendHalf reply is answered UNKNOWN",
            bugs: none,
            durable: &[],
            steps: vec![
                (In::Begin(1, "e1"), vec![Out::Half(1, "e1#a-1", "e1")]),
                // The broker stored the half and checks back before its reply reached us.
                (check("e1#a-1", "e1"), vec![Out::Answer(Unknown)]),
                (In::Stored(1, 7), vec![Out::Run(1)]),
                (check("e1#a-1", "e1"), vec![Out::Answer(Unknown)]),
                (
                    In::Committed(1),
                    vec![Out::End(7, true), Out::Finish(1, TxOutcome::Committed)],
                ),
                (check("e1#a-1", "e1"), vec![Out::Answer(Commit)]),
            ],
        },
        Case {
            name: "half stored but the local transaction aborted: rollback, and check-backs agree",
            bugs: none,
            durable: &[],
            steps: vec![
                (In::Begin(1, "e1"), vec![Out::Half(1, "e1#a-1", "e1")]),
                (In::Stored(1, 7), vec![Out::Run(1)]),
                (
                    In::Aborted(1, None),
                    vec![Out::End(7, false), Out::Finish(1, TxOutcome::Aborted)],
                ),
                (check("e1#a-1", "e1"), vec![Out::Answer(Rollback)]),
            ],
        },
        Case {
            name: "the half is not stored: the change is refused and no longer running",
            bugs: none,
            durable: &[],
            steps: vec![
                (In::Begin(1, "e1"), vec![Out::Half(1, "e1#a-1", "e1")]),
                (
                    In::HalfFailed(1),
                    vec![Out::Finish(1, TxOutcome::HalfNotStored)],
                ),
                // The broker had stored it after all (its reply was lost): roll it back.
                (check("e1#a-1", "e1"), vec![Out::Answer(Rollback)]),
            ],
        },
        Case {
            name: "the change moved meanwhile: roll back, try the new message, give up after three",
            bugs: none,
            durable: &[],
            steps: vec![
                (In::Begin(1, "e1"), vec![Out::Half(1, "e1#a-1", "e1")]),
                (In::Stored(1, 7), vec![Out::Run(1)]),
                (
                    In::Aborted(1, Some("e2")),
                    vec![Out::End(7, false), Out::Half(1, "e2#a-2", "e2")],
                ),
                (check("e1#a-1", "e1"), vec![Out::Answer(Rollback)]),
                (check("e2#a-2", "e2"), vec![Out::Answer(Unknown)]),
                (In::Stored(1, 8), vec![Out::Run(1)]),
                (
                    In::Aborted(1, Some("e3")),
                    vec![Out::End(8, false), Out::Half(1, "e3#a-3", "e3")],
                ),
                (In::Stored(1, 9), vec![Out::Run(1)]),
                (
                    In::Aborted(1, Some("e4")),
                    vec![Out::End(9, false), Out::Finish(1, TxOutcome::GaveUp)],
                ),
                (check("e3#a-3", "e3"), vec![Out::Answer(Rollback)]),
            ],
        },
        Case {
            name: "the second message commits after the first was rolled back",
            bugs: none,
            durable: &[],
            steps: vec![
                (In::Begin(1, "e1"), vec![Out::Half(1, "e1#a-1", "e1")]),
                (In::Stored(1, 7), vec![Out::Run(1)]),
                (
                    In::Aborted(1, Some("e2")),
                    vec![Out::End(7, false), Out::Half(1, "e2#a-2", "e2")],
                ),
                (In::Stored(1, 8), vec![Out::Run(1)]),
                (
                    In::Committed(1),
                    vec![Out::End(8, true), Out::Finish(1, TxOutcome::Committed)],
                ),
                (check("e2#a-2", "e2"), vec![Out::Answer(Commit)]),
                (check("e1#a-1", "e1"), vec![Out::Answer(Rollback)]),
            ],
        },
        Case {
            name: "a check-back for an unknown event, or a payload that is not ours, rolls back",
            bugs: none,
            durable: &["e1"],
            steps: vec![
                (check("e9#a-1", "e9"), vec![Out::Answer(Rollback)]),
                (
                    In::Check("x#a-1", None, "garbage".into()),
                    vec![Out::Answer(Rollback)],
                ),
            ],
        },
        Case {
            name: "a durable event with another payload than the half's is not committed",
            bugs: none,
            durable: &["e1"],
            steps: vec![(
                In::Check("e1#b-4", Some("e1"), "another payload".into()),
                vec![Out::Answer(Rollback)],
            )],
        },
        Case {
            name: "after a restart, an event found durable is committed (a lost commit)",
            bugs: none,
            durable: &["e1"],
            steps: vec![(
                check("e1#old-3", "e1"),
                vec![Out::AnswerAfterRestart(Commit)],
            )],
        },
        Case {
            name: "two changes running for one event: unknown until both have ended",
            bugs: none,
            durable: &[],
            steps: vec![
                (In::Begin(1, "e1"), vec![Out::Half(1, "e1#a-1", "e1")]),
                (In::Begin(2, "e1"), vec![Out::Half(2, "e1#a-2", "e1")]),
                (
                    In::HalfFailed(1),
                    vec![Out::Finish(1, TxOutcome::HalfNotStored)],
                ),
                (check("e1#a-1", "e1"), vec![Out::Answer(Unknown)]),
                (
                    In::HalfFailed(2),
                    vec![Out::Finish(2, TxOutcome::HalfNotStored)],
                ),
                (check("e1#a-1", "e1"), vec![Out::Answer(Rollback)]),
            ],
        },
        Case {
            name: "late and duplicated reports about a finished change are ignored",
            bugs: none,
            durable: &[],
            steps: vec![
                (In::Begin(1, "e1"), vec![Out::Half(1, "e1#a-1", "e1")]),
                (In::Stored(1, 7), vec![Out::Run(1)]),
                (
                    In::Committed(1),
                    vec![Out::End(7, true), Out::Finish(1, TxOutcome::Committed)],
                ),
                (In::Committed(1), vec![]),
                (In::Stored(1, 7), vec![]),
                (In::Aborted(1, None), vec![]),
                (In::HalfFailed(1), vec![]),
            ],
        },
        Case {
            name: "checkback-from-memory: a restart forgets a commit, so the half is unknown",
            bugs: from_memory,
            durable: &["e1"],
            steps: vec![(check("e1#old-3", "e1"), vec![Out::Answer(Unknown)])],
        },
        Case {
            name: "checkback-from-memory: within one incarnation it answers from its memory",
            bugs: from_memory,
            durable: &[],
            steps: vec![
                (In::Begin(1, "e1"), vec![Out::Half(1, "e1#a-1", "e1")]),
                (check("e1#a-1", "e1"), vec![Out::Answer(Unknown)]),
                (In::Stored(1, 7), vec![Out::Run(1)]),
                (
                    In::Committed(1),
                    vec![Out::End(7, true), Out::Finish(1, TxOutcome::Committed)],
                ),
                (check("e1#a-1", "e1"), vec![Out::Answer(Commit)]),
                (In::Begin(2, "e2"), vec![Out::Half(2, "e2#a-2", "e2")]),
                (In::Stored(2, 8), vec![Out::Run(2)]),
                (
                    In::Aborted(2, None),
                    vec![Out::End(8, false), Out::Finish(2, TxOutcome::Aborted)],
                ),
                (check("e2#a-2", "e2"), vec![Out::Answer(Rollback)]),
            ],
        },
        Case {
            name: "checkback-defaults-commit: an aborted local transaction's half is committed",
            bugs: defaults_commit,
            durable: &[],
            steps: vec![
                (In::Begin(1, "e1"), vec![Out::Half(1, "e1#a-1", "e1")]),
                (check("e1#a-1", "e1"), vec![Out::Answer(Commit)]),
                (In::Stored(1, 7), vec![Out::Run(1)]),
                (
                    In::Aborted(1, None),
                    vec![Out::End(7, false), Out::Finish(1, TxOutcome::Aborted)],
                ),
                (check("e1#a-1", "e1"), vec![Out::Answer(Commit)]),
                (check("e9#a-9", "e9"), vec![Out::Answer(Commit)]),
            ],
        },
    ]
}

#[test]
fn halfmsg_table() {
    for case in cases() {
        run(&case);
    }
}

#[test]
fn producer_message_ids_differ_across_incarnations() {
    let mut first = HalfMsg::recovered(Bugs::none(), 1, []);
    let mut second = HalfMsg::recovered(Bugs::none(), 2, []);
    assert_ne!(
        first.begin(TxId(1), msg("e1")),
        second.begin(TxId(1), msg("e1"))
    );
}

#[test]
fn recovered_events_are_durable() {
    let engine = HalfMsg::recovered(Bugs::none(), 1, [msg("e2"), msg("e1")]);
    let ids: Vec<String> = engine.durable_ids().map(|id| id.to_string()).collect();
    assert_eq!(ids, ["e1", "e2"]);
}

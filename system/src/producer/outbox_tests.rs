//! Table tests of the outbox engine: each case is a start (planted bug, rows found unsent) and
//! a sequence of inputs, each with the outputs it must give.

use super::*;

fn msg(id: &str) -> Message {
    Message::new(id, format!("key-{id}"), format!("payload-{id}"))
}

#[derive(Debug, Clone)]
enum In {
    Append(&'static str),
    Durable(&'static [&'static str]),
    Tick,
    Ack(&'static str),
    Fail(&'static str),
}

/// An expected output, short.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Send(&'static str, Origin),
    Mark(&'static str, Origin),
}

fn short(o: &OutboxOutput) -> (String, Origin, bool) {
    match o {
        OutboxOutput::Send { message, origin } => {
            assert_eq!(
                *message,
                msg(message.id.as_str()),
                "a row is sent as appended"
            );
            (message.id.to_string(), *origin, true)
        }
        OutboxOutput::MarkSent { id, origin } => (id.to_string(), *origin, false),
    }
}

fn expect(o: &Out) -> (String, Origin, bool) {
    match o {
        Out::Send(id, origin) => (id.to_string(), *origin, true),
        Out::Mark(id, origin) => (id.to_string(), *origin, false),
    }
}

struct Case {
    name: &'static str,
    bugs: Bugs,
    recovered: &'static [&'static str],
    steps: Vec<(In, Vec<Out>)>,
    /// What is still unsent at the end.
    unsent: &'static [&'static str],
}

fn run(case: &Case) {
    let mut engine = Outbox::recovered(case.bugs, case.recovered.iter().map(|id| msg(id)));
    for (i, (input, want)) in case.steps.iter().enumerate() {
        let got = match input {
            In::Append(id) => engine.appended(msg(id)),
            In::Durable(ids) => {
                let ids: Vec<EventId> = ids.iter().map(|id| EventId::from(*id)).collect();
                engine.durable(&ids)
            }
            In::Tick => engine.tick(),
            In::Ack(id) => engine.acked(&EventId::from(*id)),
            In::Fail(id) => engine.failed(&EventId::from(*id)),
        };
        let got: Vec<_> = got.iter().map(short).collect();
        let want: Vec<_> = want.iter().map(expect).collect();
        assert_eq!(got, want, "case '{}', step {i} ({input:?})", case.name);
    }
    let unsent: Vec<String> = engine.unsent().map(|id| id.to_string()).collect();
    assert_eq!(
        unsent, case.unsent,
        "case '{}': rows left unsent",
        case.name
    );
}

use Origin::{Relay, Resend, ResendAfterRestart};

fn cases() -> Vec<Case> {
    let none = Bugs::none();
    let no_resender = Bugs::planted(Bug::OutboxNoResender);
    vec![
        Case {
            name: "a row is relayed once its record is durable and marked sent on the ack",
            bugs: none,
            recovered: &[],
            steps: vec![
                (In::Append("e1"), vec![]),
                (In::Durable(&["e1"]), vec![Out::Send("e1", Relay)]),
                (In::Ack("e1"), vec![Out::Mark("e1", Relay)]),
                (In::Tick, vec![]),
            ],
            unsent: &[],
        },
        Case {
            name: "only durable rows are sendable: the resender skips a row not yet synced",
            bugs: none,
            recovered: &[],
            steps: vec![
                (In::Append("e1"), vec![]),
                (In::Tick, vec![]),
                (In::Tick, vec![]),
                (In::Durable(&["e1"]), vec![Out::Send("e1", Relay)]),
            ],
            unsent: &["e1"],
        },
        Case {
            name: "a row is relayed once, even if its durability is reported twice",
            bugs: none,
            recovered: &[],
            steps: vec![
                (In::Append("e1"), vec![]),
                (In::Durable(&["e1"]), vec![Out::Send("e1", Relay)]),
                (In::Durable(&["e1"]), vec![]),
                (In::Fail("e1"), vec![]),
                (In::Durable(&["e1"]), vec![]),
            ],
            unsent: &["e1"],
        },
        Case {
            name: "a row in flight is not sent again by the resender",
            bugs: none,
            recovered: &[],
            steps: vec![
                (In::Append("e1"), vec![]),
                (In::Durable(&["e1"]), vec![Out::Send("e1", Relay)]),
                (In::Tick, vec![]),
                (In::Ack("e1"), vec![Out::Mark("e1", Relay)]),
            ],
            unsent: &[],
        },
        Case {
            name: "a failed relay is resent by the next scan",
            bugs: none,
            recovered: &[],
            steps: vec![
                (In::Append("e1"), vec![]),
                (In::Durable(&["e1"]), vec![Out::Send("e1", Relay)]),
                (In::Fail("e1"), vec![]),
                (In::Tick, vec![Out::Send("e1", Resend)]),
                (In::Ack("e1"), vec![Out::Mark("e1", Resend)]),
                (In::Tick, vec![]),
            ],
            unsent: &[],
        },
        Case {
            name: "ack lost: the resend carries the same event id and is marked sent once",
            bugs: none,
            recovered: &[],
            steps: vec![
                (In::Append("e1"), vec![]),
                (In::Durable(&["e1"]), vec![Out::Send("e1", Relay)]),
                // The broker stored it, but its acknowledgement was lost: a timeout.
                (In::Fail("e1"), vec![]),
                (In::Tick, vec![Out::Send("e1", Resend)]),
                (In::Fail("e1"), vec![]),
                (In::Tick, vec![Out::Send("e1", Resend)]),
                (In::Ack("e1"), vec![Out::Mark("e1", Resend)]),
                // A duplicated acknowledgement changes nothing.
                (In::Ack("e1"), vec![]),
            ],
            unsent: &[],
        },
        Case {
            name: "rows found unsent at start are resent by the first scan",
            bugs: none,
            recovered: &["e1", "e2"],
            steps: vec![
                (
                    In::Tick,
                    vec![
                        Out::Send("e1", ResendAfterRestart),
                        Out::Send("e2", ResendAfterRestart),
                    ],
                ),
                (In::Ack("e2"), vec![Out::Mark("e2", ResendAfterRestart)]),
                (In::Fail("e1"), vec![]),
                (In::Tick, vec![Out::Send("e1", ResendAfterRestart)]),
            ],
            unsent: &["e1"],
        },
        Case {
            name: "recovered and new rows are scanned together, new ones only once durable",
            bugs: none,
            recovered: &["e1"],
            steps: vec![
                (In::Append("e2"), vec![]),
                (In::Tick, vec![Out::Send("e1", ResendAfterRestart)]),
                (In::Durable(&["e2"]), vec![Out::Send("e2", Relay)]),
                (In::Fail("e2"), vec![]),
                (In::Ack("e1"), vec![Out::Mark("e1", ResendAfterRestart)]),
                (In::Tick, vec![Out::Send("e2", Resend)]),
            ],
            unsent: &["e2"],
        },
        Case {
            name: "durability of a row the engine never saw appended is ignored",
            bugs: none,
            recovered: &[],
            steps: vec![(In::Durable(&["ghost"]), vec![]), (In::Tick, vec![])],
            unsent: &[],
        },
        Case {
            name: "outbox-no-resender: the relay still runs once, but a failed row is never resent",
            bugs: no_resender,
            recovered: &[],
            steps: vec![
                (In::Append("e1"), vec![]),
                (In::Durable(&["e1"]), vec![Out::Send("e1", Relay)]),
                (In::Fail("e1"), vec![]),
                (In::Tick, vec![]),
                (In::Tick, vec![]),
            ],
            unsent: &["e1"],
        },
        Case {
            name: "outbox-no-resender: rows found unsent at start are never sent",
            bugs: no_resender,
            recovered: &["e1"],
            steps: vec![(In::Tick, vec![]), (In::Tick, vec![])],
            unsent: &["e1"],
        },
    ]
}

#[test]
fn outbox_table() {
    for case in cases() {
        run(&case);
    }
}

#[test]
fn pending_rows_are_the_unsent_ones_only_when_a_resender_runs() {
    let mut on = Outbox::recovered(Bugs::none(), [msg("e1")]);
    on.appended(msg("e2"));
    let pending: Vec<_> = on.pending().map(|id| id.to_string()).collect();
    assert_eq!(pending, ["e1", "e2"]);
    let off = Outbox::recovered(Bugs::planted(Bug::OutboxNoResender), [msg("e1")]);
    assert_eq!(off.pending().count(), 0);
    assert_eq!(off.unsent().count(), 1);
}

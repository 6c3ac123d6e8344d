//! Table tests of the payment order flow and its admission: each case is an order, whether it
//! starts fresh or is resumed after a restart, and a table of (input, expected outputs) steps.
//! They cover every step of the flow, the trade refusing or settling a key itself, no answer
//! from the trade, the trade unavailable, resumption after a crash after each durable step, and
//! refusal codes kept end to end.

use super::*;
use crate::ids::AccountId;
use crate::money::Amount;
use crate::trade::{TradeId, TradeStatus};

const PAYER: AccountId = AccountId(4);
const MERCHANT: AccountId = AccountId(5);

fn amount() -> Amount {
    Amount::from_fen(3_000).unwrap()
}

fn trade() -> TradeId {
    TradeId { shard: 1, seq: 7 }
}

fn pay_order() -> Order {
    Order {
        key: IdemKey::from("k1"),
        trade: trade(),
        xid: Xid::from("x0.1"),
        kind: OrderKind::Pay {
            payer: PAYER,
            by_card: false,
        },
        outcome: None,
        gave_up: None,
        to_card: None,
    }
}

fn refund_order() -> Order {
    Order {
        key: IdemKey::from("r1"),
        kind: OrderKind::Refund { amount: amount() },
        ..pay_order()
    }
}

fn begin_pay() -> TradeCommand {
    TradeCommand::BeginPay {
        trade: trade(),
        key: "k1".into(),
        xid: "x0.1".into(),
        payer: PAYER,
        by_card: false,
    }
}

fn end_pay(outcome: Result<(), Refusal>) -> TradeCommand {
    TradeCommand::EndPay {
        trade: trade(),
        key: "k1".into(),
        xid: "x0.1".into(),
        payer: PAYER,
        outcome,
    }
}

fn begin_refund() -> TradeCommand {
    TradeCommand::BeginRefund {
        trade: trade(),
        out_request_no: "r1".into(),
        xid: "x0.1".into(),
        amount: amount(),
    }
}

fn end_refund(outcome: Result<(), Refusal>) -> TradeCommand {
    TradeCommand::EndRefund {
        trade: trade(),
        out_request_no: "r1".into(),
        xid: "x0.1".into(),
        amount: amount(),
        outcome,
    }
}

fn refund_movement() -> Movement {
    Movement {
        xid: Xid::from("x0.1"),
        legs: vec![Leg::debit(MERCHANT, amount()), Leg::credit(PAYER, amount())],
    }
}

fn pay_movement() -> Movement {
    Movement {
        xid: Xid::from("x0.1"),
        legs: vec![Leg::debit(PAYER, amount()), Leg::credit(MERCHANT, amount())],
    }
}

fn no_funds() -> Refusal {
    Refusal::new(
        RefusalCode::InsufficientFunds,
        "branch 0 refused Try: acct-4 has 10.00 available, 30.00 needed",
    )
}

fn finished(key: &str, outcome: Result<(), Refusal>) -> Vec<FlowOutput> {
    vec![
        FlowOutput::Append(OrderRecord::Finished {
            key: key.into(),
            outcome: outcome.clone(),
        }),
        FlowOutput::Finish(outcome),
    ]
}

use FlowInput as I;
use FlowOutput as O;

type Step = (FlowInput, Vec<FlowOutput>);

/// A fresh pay order up to its movement.
fn up_to_move() -> Vec<Step> {
    vec![
        (I::Start, vec![O::Window(Point::OrderToTrade)]),
        (I::WindowPassed, vec![O::BeginAtTrade(begin_pay())]),
        (
            I::BeginAnswered(BeginAnswer::Reply(TradeReply::PayBegun {
                amount: amount(),
                merchant: MERCHANT,
            })),
            vec![O::Move(pay_movement())],
        ),
    ]
}

/// The outcome known: the window, the trade told, the order finished.
fn tell_and_finish(outcome: Result<(), Refusal>) -> Vec<Step> {
    vec![
        (
            I::WindowPassed,
            vec![O::EndAtTrade(end_pay(outcome.clone()))],
        ),
        (I::EndAnswered(EndAnswer::Ended), finish_window()),
        (I::WindowPassed, finished("k1", outcome)),
    ]
}

/// A successful refund of a card-paid trade from its outcome on: the trade told, the window,
/// the payout to the card, the order finished.
fn refund_told_and_paid_out() -> Vec<Step> {
    vec![
        (I::WindowPassed, vec![O::EndAtTrade(end_refund(Ok(())))]),
        (I::EndAnswered(EndAnswer::Ended), finish_window()),
        (
            I::WindowPassed,
            vec![O::PayOutToCard {
                payer: PAYER,
                amount: amount(),
            }],
        ),
        (I::PaidOut, finished("r1", Ok(()))),
    ]
}

/// The window between the trade's answer and the order's end.
fn finish_window() -> Vec<FlowOutput> {
    vec![O::Window(Point::TradeToFinish)]
}

fn settle_window() -> Vec<FlowOutput> {
    vec![O::Window(Point::OutcomeToTrade)]
}

struct Case {
    name: &'static str,
    order: Order,
    steps: Vec<Step>,
}

fn cases() -> Vec<Case> {
    let no_answer = Refusal::new(RefusalCode::Aborted, "the trade did not answer: timeout");
    let not_payable = TradeError::NotPayable {
        trade: trade(),
        status: TradeStatus::Paid,
    };
    vec![
        Case {
            name: "a pay moves the money, tells the trade, finishes",
            order: pay_order(),
            steps: [
                up_to_move(),
                vec![(I::Moved(MovementOutcome::Committed), settle_window())],
                tell_and_finish(Ok(())),
            ]
            .concat(),
        },
        Case {
            name: "a refund moves the money back from the merchant",
            order: refund_order(),
            steps: vec![
                (I::Start, vec![O::Window(Point::OrderToTrade)]),
                (
                    I::WindowPassed,
                    vec![O::BeginAtTrade(TradeCommand::BeginRefund {
                        trade: trade(),
                        out_request_no: "r1".into(),
                        xid: "x0.1".into(),
                        amount: amount(),
                    })],
                ),
                (
                    I::BeginAnswered(BeginAnswer::Reply(TradeReply::RefundBegun {
                        merchant: MERCHANT,
                        payer: PAYER,
                        to_card: false,
                    })),
                    vec![O::Move(Movement {
                        xid: Xid::from("x0.1"),
                        legs: vec![Leg::debit(MERCHANT, amount()), Leg::credit(PAYER, amount())],
                    })],
                ),
            ],
        },
        Case {
            name: "a refund of a card-paid trade records its way to the card before the money \
                   moves, and pays out to the card before it finishes",
            order: refund_order(),
            steps: vec![
                (I::Start, vec![O::Window(Point::OrderToTrade)]),
                (I::WindowPassed, vec![O::BeginAtTrade(begin_refund())]),
                (
                    I::BeginAnswered(BeginAnswer::Reply(TradeReply::RefundBegun {
                        merchant: MERCHANT,
                        payer: PAYER,
                        to_card: true,
                    })),
                    vec![
                        O::Append(OrderRecord::ToCard {
                            key: "r1".into(),
                            payer: PAYER,
                        }),
                        O::Move(refund_movement()),
                    ],
                ),
                (I::Moved(MovementOutcome::Committed), settle_window()),
            ]
            .into_iter()
            .chain(refund_told_and_paid_out())
            .collect(),
        },
        Case {
            name: "a resumed card refund that had succeeded pays out to the card again (the \
                   gateway's key makes it once)",
            order: Order {
                to_card: Some(PAYER),
                ..refund_order()
            },
            steps: vec![
                (I::Resume, vec![O::ResumeMovement(Xid::from("x0.1"))]),
                (
                    I::MovementResumed(Some(MovementOutcome::Committed)),
                    settle_window(),
                ),
            ]
            .into_iter()
            .chain(refund_told_and_paid_out())
            .collect(),
        },
        Case {
            name: "a resumed card refund whose money never moved pays nothing out",
            order: Order {
                to_card: Some(PAYER),
                ..refund_order()
            },
            steps: vec![
                (I::Resume, vec![O::ResumeMovement(Xid::from("x0.1"))]),
                (
                    I::MovementResumed(Some(MovementOutcome::Aborted(no_funds()))),
                    settle_window(),
                ),
                (
                    I::WindowPassed,
                    vec![O::EndAtTrade(end_refund(Err(no_funds())))],
                ),
                (I::EndAnswered(EndAnswer::Ended), finish_window()),
                (I::WindowPassed, finished("r1", Err(no_funds()))),
            ],
        },
        Case {
            name: "insufficient funds stays insufficient-funds to the trade and the client",
            order: pay_order(),
            steps: [
                up_to_move(),
                vec![(
                    I::Moved(MovementOutcome::Aborted(no_funds())),
                    settle_window(),
                )],
                tell_and_finish(Err(no_funds())),
            ]
            .concat(),
        },
        Case {
            name: "a heuristic movement fails the order as aborted",
            order: pay_order(),
            steps: [
                up_to_move(),
                vec![(
                    I::Moved(MovementOutcome::Heuristic("branch 0 refused".into())),
                    settle_window(),
                )],
                tell_and_finish(Err(Refusal::new(
                    RefusalCode::Aborted,
                    "heuristic outcome: branch 0 refused",
                ))),
            ]
            .concat(),
        },
        Case {
            name: "the trade refuses the begin: its code, nothing moved, the trade not told",
            order: pay_order(),
            steps: vec![
                (I::Start, vec![O::Window(Point::OrderToTrade)]),
                (I::WindowPassed, vec![O::BeginAtTrade(begin_pay())]),
                (
                    I::BeginAnswered(BeginAnswer::Refused(TradeError::UnknownTrade(trade()))),
                    settle_window(),
                ),
                (
                    I::WindowPassed,
                    finished(
                        "k1",
                        Err(Refusal::new(
                            RefusalCode::UnknownTrade,
                            TradeError::UnknownTrade(trade()).to_string(),
                        )),
                    ),
                ),
            ],
        },
        Case {
            name: "the trade settled the key itself as not payable",
            order: pay_order(),
            steps: vec![
                (I::Start, vec![O::Window(Point::OrderToTrade)]),
                (I::WindowPassed, vec![O::BeginAtTrade(begin_pay())]),
                (
                    I::BeginAnswered(BeginAnswer::Reply(TradeReply::Settled(
                        AttemptStatus::Failed(Refusal::new(
                            RefusalCode::NotPayable,
                            not_payable.to_string(),
                        )),
                    ))),
                    settle_window(),
                ),
                (
                    I::WindowPassed,
                    finished(
                        "k1",
                        Err(Refusal::new(
                            RefusalCode::NotPayable,
                            not_payable.to_string(),
                        )),
                    ),
                ),
            ],
        },
        Case {
            name: "the trade settled the key with the outcome this node told it, code and all",
            order: pay_order(),
            steps: vec![
                (I::Start, vec![O::Window(Point::OrderToTrade)]),
                (I::WindowPassed, vec![O::BeginAtTrade(begin_pay())]),
                (
                    I::BeginAnswered(BeginAnswer::Reply(TradeReply::Settled(
                        AttemptStatus::Failed(no_funds()),
                    ))),
                    settle_window(),
                ),
                (I::WindowPassed, finished("k1", Err(no_funds()))),
            ],
        },
        Case {
            name: "the trade settled the key as paid",
            order: pay_order(),
            steps: vec![
                (I::Start, vec![O::Window(Point::OrderToTrade)]),
                (I::WindowPassed, vec![O::BeginAtTrade(begin_pay())]),
                (
                    I::BeginAnswered(BeginAnswer::Reply(TradeReply::Settled(
                        AttemptStatus::Succeeded,
                    ))),
                    settle_window(),
                ),
                (I::WindowPassed, finished("k1", Ok(()))),
            ],
        },
        Case {
            name: "no answer to the begin fails the order, recorded before the end pins it",
            order: pay_order(),
            steps: [
                vec![
                    (I::Start, vec![O::Window(Point::OrderToTrade)]),
                    (I::WindowPassed, vec![O::BeginAtTrade(begin_pay())]),
                    (
                        I::BeginAnswered(BeginAnswer::NoAnswer("timeout".into())),
                        [
                            vec![O::Append(OrderRecord::GaveUp {
                                key: "k1".into(),
                                refusal: no_answer.clone(),
                            })],
                            settle_window(),
                        ]
                        .concat(),
                    ),
                ],
                tell_and_finish(Err(no_answer.clone())),
            ]
            .concat(),
        },
        // Seed 75 with two banks, before the fix: the flow gave up, told the trade (the end
        // delayed in the network), crashed before finishing; the resumed flow began again,
        // the trade (not yet holding the end) answered begun, and the money moved for a pay
        // the trade then recorded as failed.
        Case {
            name:
                "an order that gave up before a crash tells the trade the same, never begins again",
            order: Order {
                gave_up: Some(no_answer.clone()),
                ..pay_order()
            },
            steps: [
                vec![(I::Resume, settle_window())],
                tell_and_finish(Err(no_answer.clone())),
            ]
            .concat(),
        },
        Case {
            name: "a trade that cannot take the end yet is told again after a pause",
            order: pay_order(),
            steps: [
                up_to_move(),
                vec![
                    (I::Moved(MovementOutcome::Committed), settle_window()),
                    (I::WindowPassed, vec![O::EndAtTrade(end_pay(Ok(())))]),
                    (
                        I::EndAnswered(EndAnswer::Refused(TradeError::Unavailable("half".into()))),
                        vec![O::Pause(Duration::from_millis(UNAVAILABLE_BACKOFF_MS))],
                    ),
                    (I::Paused, vec![O::EndAtTrade(end_pay(Ok(())))]),
                    // The retried call gave up: sent again.
                    (
                        I::EndAnswered(EndAnswer::NoAnswer),
                        vec![O::EndAtTrade(end_pay(Ok(())))],
                    ),
                    (I::EndAnswered(EndAnswer::Ended), finish_window()),
                    (I::WindowPassed, finished("k1", Ok(()))),
                ],
            ]
            .concat(),
        },
        Case {
            name: "a trade refusing the end is logged and the order still finishes",
            order: pay_order(),
            steps: [
                up_to_move(),
                vec![
                    (I::Moved(MovementOutcome::Committed), settle_window()),
                    (I::WindowPassed, vec![O::EndAtTrade(end_pay(Ok(())))]),
                    (
                        I::EndAnswered(EndAnswer::Refused(TradeError::KeyReused("k1".into()))),
                        [
                            vec![O::TradeRefusedEnd(TradeError::KeyReused("k1".into()))],
                            finished("k1", Ok(())),
                        ]
                        .concat(),
                    ),
                ],
            ]
            .concat(),
        },
        // Crash after each durable step, then resume.
        Case {
            name: "crash after the order was durable: no movement yet, so it begins again",
            order: pay_order(),
            steps: [
                vec![
                    (I::Resume, vec![O::ResumeMovement(Xid::from("x0.1"))]),
                    (
                        I::MovementResumed(None),
                        vec![O::Window(Point::OrderToTrade)],
                    ),
                    (I::WindowPassed, vec![O::BeginAtTrade(begin_pay())]),
                ],
                up_to_move()[2..].to_vec(),
            ]
            .concat(),
        },
        Case {
            name: "crash after the movement began: its outcome is told to the trade",
            order: pay_order(),
            steps: [
                vec![
                    (I::Resume, vec![O::ResumeMovement(Xid::from("x0.1"))]),
                    (
                        I::MovementResumed(Some(MovementOutcome::Aborted(no_funds()))),
                        settle_window(),
                    ),
                ],
                tell_and_finish(Err(no_funds())),
            ]
            .concat(),
        },
        Case {
            name: "crash after the trade was told: told again (idempotent), same outcome",
            order: pay_order(),
            steps: [
                vec![
                    (I::Resume, vec![O::ResumeMovement(Xid::from("x0.1"))]),
                    (
                        I::MovementResumed(Some(MovementOutcome::Committed)),
                        settle_window(),
                    ),
                ],
                tell_and_finish(Ok(())),
            ]
            .concat(),
        },
    ]
}

#[test]
fn the_flow_follows_its_table() {
    for case in cases() {
        let mut flow = OrderFlow::new(case.order.clone(), Bugs::none());
        for (i, (input, expected)) in case.steps.into_iter().enumerate() {
            let got = flow.step(input.clone());
            assert_eq!(got, expected, "case '{}', step {i}: {input:?}", case.name);
        }
    }
}

#[test]
fn the_planted_begin_timeout_not_ended_fails_the_order_without_telling_the_trade() {
    let mut flow = OrderFlow::new(pay_order(), Bugs::planted(Bug::BeginTimeoutNotEnded));
    flow.step(FlowInput::Start);
    flow.step(FlowInput::WindowPassed);
    let silent = BeginAnswer::NoAnswer("timeout".into());
    assert_eq!(flow.step(FlowInput::BeginAnswered(silent)), settle_window());
    let out = flow.step(FlowInput::WindowPassed);
    assert!(
        !out.iter().any(|o| matches!(o, FlowOutput::EndAtTrade(_))),
        "the trade is never told: {out:?}"
    );
    assert!(matches!(out.last(), Some(FlowOutput::Finish(Err(_)))));
}

#[test]
#[should_panic(expected = "unexpected")]
fn an_answer_the_flow_does_not_wait_for_is_asserted() {
    let mut flow = OrderFlow::new(pay_order(), Bugs::none());
    flow.step(FlowInput::Start);
    flow.step(FlowInput::Moved(MovementOutcome::Committed));
}

// ---- Admission ----

fn pay_command(key: &str) -> PaymentCommand {
    PaymentCommand::Pay {
        trade: trade(),
        key: key.into(),
        payer: PAYER,
        by_card: false,
    }
}

/// A book on node 0 of 1 with order `k1` created (and finished with `outcome`, if given).
fn book_with(outcome: Option<Result<(), Refusal>>) -> OrderBook {
    let mut book = OrderBook::recover(0, &[]);
    let Admission::Create(record) = admit(&book, 0, 1, pay_command("k1")) else {
        panic!("a new key creates an order");
    };
    book.apply(record);
    if let Some(outcome) = outcome {
        book.apply(OrderRecord::Finished {
            key: "k1".into(),
            outcome,
        });
    }
    book
}

#[test]
fn admission_follows_its_table() {
    let reused = PaymentCommand::Pay {
        trade: TradeId { shard: 0, seq: 9 },
        key: "k1".into(),
        payer: PAYER,
        by_card: false,
    };
    let table: Vec<(&str, OrderBook, PaymentCommand, Admission)> = vec![
        (
            "a new key creates its order with this node's next activity id",
            OrderBook::recover(0, &[]),
            pay_command("k1"),
            Admission::Create(OrderRecord::Created {
                key: "k1".into(),
                trade: trade(),
                xid: "x0.1".into(),
                kind: OrderKind::Pay {
                    payer: PAYER,
                    by_card: false,
                },
            }),
        ),
        (
            "a key in progress is not an outcome",
            book_with(None),
            pay_command("k1"),
            Admission::Answer {
                reply: Err(PaymentError::InProgress),
                replayed: false,
            },
        ),
        (
            "a finished key replays its outcome, code and all",
            book_with(Some(Err(no_funds()))),
            pay_command("k1"),
            Admission::Answer {
                reply: Err(PaymentError::Refused(no_funds())),
                replayed: true,
            },
        ),
        (
            "a paid key replays its receipt",
            book_with(Some(Ok(()))),
            pay_command("k1"),
            Admission::Answer {
                reply: Ok(PaymentReceipt { xid: "x0.1".into() }),
                replayed: true,
            },
        ),
        (
            "a key reused for another request is refused as key-reused",
            book_with(None),
            reused,
            Admission::Answer {
                reply: Err(PaymentError::Refused(Refusal::new(
                    RefusalCode::KeyReused,
                    "key k1 was already used for another request",
                ))),
                replayed: false,
            },
        ),
    ];
    for (name, book, command, expected) in table {
        assert_eq!(admit(&book, 0, 1, command), expected, "{name}");
    }
}

#[test]
fn a_key_another_node_owns_is_forwarded_to_it() {
    let book = OrderBook::recover(0, &[]);
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| payment_node_for(k, 3) == 2)
        .unwrap();
    assert_eq!(
        admit(&book, 0, 3, pay_command(&key)),
        Admission::Forward { owner: 2 }
    );
    assert!(matches!(
        admit(&book, 2, 3, pay_command(&key)),
        Admission::Create(_)
    ));
}

#[test]
fn a_restart_resumes_every_unfinished_order_and_uncovered_movement_unless_the_bug_is_planted() {
    let order = pay_order();
    let movements = vec![Xid::from("x0.1"), Xid::from("x0.2")];
    let expected = vec![
        Resumption::Order(order.clone()),
        Resumption::Movement(Xid::from("x0.2")),
    ];
    let table = [
        (Bugs::none(), expected.clone()),
        (Bugs::planted(Bug::ReplicaNoVersion), expected),
        (Bugs::planted(Bug::ManagerNoRecovery), vec![]),
    ];
    for (bugs, want) in table {
        let got = resumptions(vec![order.clone()], movements.clone(), bugs);
        assert_eq!(got, want, "{bugs:?}");
    }
}

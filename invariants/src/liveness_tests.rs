use super::*;
use crate::observation::*;
use crate::testkit::{notification, pay_attempt, refund, valid, valid_with_messages};
use rust_decimal_macros::dec;

#[test]
fn a_valid_observation_at_rest_has_nothing_unfinished_or_settling() {
    assert_eq!(unfinished(&valid()), Vec::new());
    assert_eq!(settling(&valid_with_messages()), Vec::new());
}

#[test]
fn a_down_node_and_an_open_order_are_unfinished() {
    let mut obs = valid();
    obs.progress.down.push("ledger/1".into());
    obs.progress.orders.push(OrderState {
        node: "payment/0".into(),
        key: "c1-p9".into(),
        xid: "x0.9".into(),
        trade: "T0-9".into(),
        ended: false,
    });
    obs.progress.orders.push(OrderState {
        node: "payment/0".into(),
        key: "c1-p1".into(),
        xid: "x0.1".into(),
        trade: "T0-1".into(),
        ended: true,
    });
    let items = unfinished(&obs);
    assert_eq!(
        items,
        vec![
            Unfinished::Down {
                node: "ledger/1".into()
            },
            Unfinished::Order {
                node: "payment/0".into(),
                key: "c1-p9".into(),
                xid: "x0.9".into()
            },
        ]
    );
    assert_eq!(items[0].to_string(), "ledger/1 is down");
    assert_eq!(items[1].to_string(), "payment/0: order c1-p9 (x0.9)");
}

#[test]
fn an_activity_not_terminal_and_pending_attempts_are_unfinished() {
    let mut obs = valid();
    obs.activities[0].status = Phase::Committing;
    obs.trades[0]
        .pays
        .push(pay_attempt("c1-p3", "x0.4", 2, AttemptStatus::Pending));
    obs.trades[0]
        .refunds
        .push(refund("c1-r2", "x0.5", dec!(1), AttemptStatus::Pending));
    let shown: Vec<String> = unfinished(&obs).iter().map(|u| u.to_string()).collect();
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert!(shown[0].ends_with(": activity x0.1"), "{shown:?}");
    assert_eq!(shown[1], "T0-1 pay c1-p3 (x0.4)");
    assert_eq!(shown[2], "T0-1 refund c1-r2 (x0.5)");
}

#[test]
fn the_message_layer_in_flight_is_unfinished() {
    let mut obs = valid_with_messages();
    obs.progress.halves.push(HalfPending {
        half: "h3".into(),
        topic: "trade-events".into(),
    });
    obs.progress.lag.push(QueueLag {
        group: "notify".into(),
        topic: "trade-events".into(),
        queue: 2,
        committed: 4,
        end: 5,
    });
    obs.progress.retries.push(RetryScheduled {
        message: "m7".into(),
        group: "merchant-query".into(),
        attempt: 1,
    });
    obs.messages.notifications.insert(
        "T0-1:v9:paid".into(),
        notification("T0-1:v9:paid", NotificationStatus::Pending, 2),
    );
    let items = unfinished(&obs);
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(matches!(items[0], Unfinished::Half { .. }));
    assert_eq!(
        items[1].to_string(),
        "group notify behind on trade-events:2 (committed 4 of end 5)"
    );
    assert!(matches!(items[2], Unfinished::Retry { attempt: 1, .. }));
    assert!(matches!(
        items[3],
        Unfinished::Notification { attempts: 2, .. }
    ));
}

#[test]
fn an_unsent_outbox_row_is_settling_but_not_unfinished() {
    let mut obs = valid_with_messages();
    obs.progress.unsent.push(UnsentRow {
        node: "trade/0".into(),
        event: "T0-1:v1:paid".into(),
    });
    assert_eq!(unfinished(&obs), Vec::new());
    assert_eq!(
        settling(&obs),
        vec![Unfinished::Unsent {
            node: "trade/0".into(),
            event: "T0-1:v1:paid".into()
        }]
    );
}

/// The clearing layer's unfinished work: an order not final, one final but not posted, an
/// instruction a bank still processes, and a bank date on which money moved that
/// reconciliation has not reached; an order done and a date reconciled are not.
#[test]
fn open_channel_orders_processing_instructions_and_unreconciled_dates_are_unfinished() {
    let order = |instr: &str, status, settled| ChannelOrderState {
        instr: instr.into(),
        key: instr.trim_start_matches("i:").into(),
        client: 1,
        kind: FundKind::Deposit,
        account: 2,
        bank: 0,
        amount: dec!(5),
        status,
        history: vec![ChannelStatus::Init, status],
        held: false,
        settled,
        corrected: false,
        fail: None,
    };
    let instruction = |instr: &str, status| BankInstruction {
        instr: instr.into(),
        debit: true,
        card: 2,
        amount: dec!(5),
        status,
        date: None,
    };
    let bank = |bank, last_date| BankState {
        bank,
        reserve: dec!(0),
        cards: dec!(0),
        openings: dec!(0),
        instructions: vec![
            instruction("i:a", BankStatus::Processing),
            instruction("i:b", BankStatus::Success),
        ],
        lines: Vec::new(),
        last_date,
        sent: dec!(0),
        received: dec!(0),
        undelivered: if bank == 1 {
            vec!["i:t".into()]
        } else {
            Vec::new()
        },
    };
    let mut obs = valid();
    obs.clearing = ClearingSnapshot {
        orders: vec![
            order("i:a", ChannelStatus::Unknown, false),
            order("i:b", ChannelStatus::Success, false),
            order("i:c", ChannelStatus::Success, true),
        ],
        banks: vec![bank(0, Some(3)), bank(1, Some(2))],
        reconciled: [(0, 3), (1, 3)].into(),
        ..ClearingSnapshot::default()
    };
    let items: Vec<String> = unfinished(&obs).iter().map(|u| u.to_string()).collect();
    assert_eq!(
        items,
        [
            "channel order i:a UNKNOWN",
            "channel order i:b SUCCESS",
            "bank 0: instruction i:a processing",
            "bank 0: date 3 not reconciled",
            "bank 1: instruction i:a processing",
            "bank 1: transfer i:t not delivered",
        ]
    );
}

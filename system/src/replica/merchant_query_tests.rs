//! Unit tests of the merchant-query DB: versions, staleness, recovery and the planted bug.

use super::*;
use crate::ids::EventId;
use crate::money::Amount;
use crate::trade::TradeEventKind;

const MERCHANT: AccountId = AccountId(5);
const T1: TradeId = TradeId { shard: 0, seq: 1 };
const T2: TradeId = TradeId { shard: 1, seq: 1 };

fn d(fen: i64) -> Decimal {
    Decimal::new(fen, 2)
}

fn paid(trade: TradeId) -> TradeEvent {
    TradeEvent {
        trade,
        version: 1,
        kind: TradeEventKind::Paid,
        status: TradeStatus::Paid,
        merchant: MERCHANT,
        payer: Some(AccountId(9)),
        amount: Amount::from_fen(1_000).unwrap(),
        paid: d(1_000),
        refunded: d(0),
        refund: None,
    }
}

fn refunded(trade: TradeId, version: u32, no: &str, fen: i64, total_fen: i64) -> TradeEvent {
    TradeEvent {
        version,
        kind: TradeEventKind::Refunded,
        status: if total_fen == 1_000 {
            TradeStatus::Refunded
        } else {
            TradeStatus::PartiallyRefunded
        },
        refunded: d(total_fen),
        refund: Some((no.into(), Amount::from_fen(fen).unwrap())),
        ..paid(trade)
    }
}

/// Decides and applies like the shell does; the record written, if any.
fn consume(c: &mut MerchantQueryCore, event: &TradeEvent) -> Option<MerchantQueryRecord> {
    let record = c.decide(event)?;
    c.apply(record.clone());
    Some(record)
}

#[test]
fn events_in_order_advance_the_row() {
    let mut c = MerchantQueryCore::new(Bugs::none());
    let v2 = refunded(T1, 2, "R1", 300, 300);
    let v3 = refunded(T1, 3, "R2", 700, 1_000);
    for e in [paid(T1), paid(T2), v2.clone(), v3.clone()] {
        assert!(matches!(
            consume(&mut c, &e),
            Some(MerchantQueryRecord::Applied { .. })
        ));
    }
    assert_eq!(c.query(T1), Some(&MerchantRow::of(&v3)));
    assert_eq!(
        c.query(T1)
            .map(|r| (r.status, r.paid, r.refunded, r.version)),
        Some((TradeStatus::Refunded, d(1_000), d(1_000), 3))
    );
    assert_eq!(c.query(T2), Some(&MerchantRow::of(&paid(T2))));
    assert_eq!(c.query(TradeId { shard: 9, seq: 9 }), None);
    assert_eq!(c.rows().len(), 2);
    assert_eq!(
        c.history(),
        &[
            MerchantRow::of(&paid(T1)),
            MerchantRow::of(&paid(T2)),
            MerchantRow::of(&v2),
            MerchantRow::of(&v3),
        ]
    );
    assert_eq!(c.consumed().len(), 4);
}

#[test]
fn an_older_version_after_a_newer_one_is_stale_and_changes_nothing() {
    let mut c = MerchantQueryCore::new(Bugs::none());
    let v2 = refunded(T1, 2, "R1", 300, 300);
    consume(&mut c, &v2).unwrap();
    let before = c.clone();
    assert_eq!(
        consume(&mut c, &paid(T1)),
        Some(MerchantQueryRecord::Stale {
            event: "T0-1:v1:paid".into(),
            version: 1,
            row_version: 2,
        })
    );
    assert_eq!(c.rows(), before.rows());
    assert_eq!(c.history(), before.history());
    assert_eq!(c.consumed().get(&EventId::from("T0-1:v1:paid")), Some(&1));
    // A second refund racing for the same version is stale too.
    let rival = refunded(T1, 2, "R9", 100, 100);
    assert!(matches!(
        consume(&mut c, &rival),
        Some(MerchantQueryRecord::Stale { row_version: 2, .. })
    ));
    assert_eq!(c.query(T1), Some(&MerchantRow::of(&v2)));
}

#[test]
fn a_consumed_event_id_is_skipped() {
    let mut c = MerchantQueryCore::new(Bugs::none());
    consume(&mut c, &paid(T1)).unwrap();
    assert_eq!(c.decide(&paid(T1)), None);
    // Whether it had been applied or found stale.
    consume(&mut c, &refunded(T1, 2, "R1", 300, 300)).unwrap();
    let late = paid(T2);
    consume(&mut c, &refunded(T2, 2, "R1", 300, 300)).unwrap();
    assert!(matches!(
        consume(&mut c, &late),
        Some(MerchantQueryRecord::Stale { .. })
    ));
    assert_eq!(c.decide(&late), None);
    let mut c = MerchantQueryCore::new(Bugs::planted(Bug::ReplicaNoVersion));
    consume(&mut c, &paid(T1)).unwrap();
    assert_eq!(
        c.decide(&paid(T1)),
        None,
        "the bug skips versions, not dedup"
    );
}

#[test]
fn without_versions_an_older_event_rolls_the_row_back() {
    let mut c = MerchantQueryCore::new(Bugs::planted(Bug::ReplicaNoVersion));
    let v2 = refunded(T1, 2, "R1", 1_000, 1_000);
    consume(&mut c, &v2).unwrap();
    assert_eq!(
        consume(&mut c, &paid(T1)),
        Some(MerchantQueryRecord::Applied {
            event: "T0-1:v1:paid".into(),
            row: MerchantRow::of(&paid(T1)),
        })
    );
    assert_eq!(
        c.query(T1).map(|r| (r.status, r.version)),
        Some((TradeStatus::Paid, 1))
    );
    let versions: Vec<u32> = c.history().iter().map(|r| r.version).collect();
    assert_eq!(versions, vec![2, 1]);
}

#[test]
#[should_panic(expected = "event T0-1:v1:paid regresses T0-1 from version 2 to 1")]
fn an_applied_row_that_regresses_is_asserted() {
    let mut c = MerchantQueryCore::new(Bugs::none());
    consume(&mut c, &refunded(T1, 2, "R1", 300, 300)).unwrap();
    c.apply(MerchantQueryRecord::Applied {
        event: paid(T1).id(),
        row: MerchantRow::of(&paid(T1)),
    });
}

#[test]
#[should_panic(expected = "event T0-1:v1:paid consumed 2 times")]
fn an_event_consumed_twice_is_asserted() {
    let mut c = MerchantQueryCore::new(Bugs::none());
    consume(&mut c, &refunded(T1, 2, "R1", 300, 300)).unwrap();
    let stale = c.decide(&paid(T1)).unwrap();
    c.apply(stale.clone());
    c.apply(stale);
}

#[test]
fn recovery_from_the_log_rebuilds_the_same_db() {
    for bugs in [Bugs::none(), Bugs::planted(Bug::ReplicaNoVersion)] {
        let mut c = MerchantQueryCore::new(bugs);
        let mut log = Vec::new();
        let deliveries = [
            paid(T1),
            refunded(T1, 3, "R2", 200, 500),
            paid(T2),
            refunded(T1, 2, "R1", 300, 300),
            paid(T1),
            refunded(T2, 2, "R1", 1_000, 1_000),
            paid(T2),
        ];
        for e in &deliveries {
            if let Some(record) = consume(&mut c, e) {
                log.push(record);
            }
        }
        assert_eq!(log.len(), 5);
        let bytes: Vec<Vec<u8>> = log.iter().map(|r| bincode::serialize(r).unwrap()).collect();
        let decoded: Vec<MerchantQueryRecord> = bytes
            .iter()
            .map(|b| bincode::deserialize(b).unwrap())
            .collect();
        assert_eq!(decoded, log);
        let r = MerchantQueryCore::recover(bugs, &decoded);
        assert_eq!(r.rows(), c.rows());
        assert_eq!(r.history(), c.history());
        assert_eq!(r.consumed(), c.consumed());
        assert_eq!(r, c);
        assert_eq!(r.decide(&paid(T1)), None);
        // Decimals keep their scale through the log; without versions, v2 (refunded 3.00)
        // arrived after v3 (5.00) and overwrote it.
        let row = r.query(T1).unwrap();
        let refunded = if bugs == Bugs::none() { "5.00" } else { "3.00" };
        assert_eq!(
            (row.paid.to_string(), row.refunded.to_string()),
            ("10.00".into(), refunded.into())
        );
    }
}

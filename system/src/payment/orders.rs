//! The pay-order book (支付单) of one payment node: a deterministic fold of its order log.
//!
//! An order is created (with its activity id) before anything else happens, and finished with
//! its outcome once the trade has been told. An order's key is its idempotency key: the first
//! outcome is pinned and every retry gets it.

use crate::ids::{AccountId, IdemKey, Xid};
use crate::money::Amount;
use crate::refusal::Refusal;
use crate::trade::TradeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What an order does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderKind {
    Pay { payer: AccountId, by_card: bool },
    Refund { amount: Amount },
}

/// One pay or refund order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub key: IdemKey,
    pub trade: TradeId,
    pub xid: Xid,
    pub kind: OrderKind,
    /// `None` while it is being carried out.
    pub outcome: Option<Result<(), Refusal>>,
    /// The failure the flow decided on its own (the trade never answered the begin), durable
    /// before the trade is told it: after a crash the order tells the trade the same again
    /// instead of beginning anew.
    pub gave_up: Option<Refusal>,
    /// A refund of a trade paid by card: once the refund succeeds, its amount is paid out
    /// from this payer's balance to the payer's card (durable before the money moves).
    #[serde(default)]
    pub to_card: Option<AccountId>,
}

/// One durable change to the order book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderRecord {
    Created {
        key: IdemKey,
        trade: TradeId,
        xid: Xid,
        kind: OrderKind,
    },
    Finished {
        key: IdemKey,
        outcome: Result<(), Refusal>,
    },
    /// The flow gave up on the begin: the order will fail with `refusal`.
    GaveUp { key: IdemKey, refusal: Refusal },
    /// The refund's trade was paid by card: a success goes on to the payer's card.
    ToCard { key: IdemKey, payer: AccountId },
}

impl OrderRecord {
    /// Whether the record is a decision of the flow's own that must be durable before the
    /// flow's next effect (the others are made durable by what follows them).
    pub fn syncs(&self) -> bool {
        matches!(
            self,
            OrderRecord::GaveUp { .. } | OrderRecord::ToCard { .. }
        )
    }
}

/// What a new request for `key` means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderDecision {
    /// A new order: write this record, then carry it out.
    Create(OrderRecord),
    /// The key is already known with this order.
    Known(Order),
}

/// Every order of one payment node.
#[derive(Debug, Clone)]
pub struct OrderBook {
    node: u32,
    orders: BTreeMap<IdemKey, Order>,
    by_xid: BTreeMap<Xid, IdemKey>,
    /// Orders created and not finished, so progress reads touch only those (derived from
    /// `orders`; kept by `apply`).
    open: BTreeSet<IdemKey>,
}

impl OrderBook {
    pub fn recover(node: u32, records: &[OrderRecord]) -> Self {
        let mut book = OrderBook {
            node,
            orders: BTreeMap::new(),
            by_xid: BTreeMap::new(),
            open: BTreeSet::new(),
        };
        for r in records {
            book.apply(r.clone());
        }
        book
    }

    pub fn orders(&self) -> impl Iterator<Item = &Order> {
        self.orders.values()
    }

    pub fn by_xid(&self, xid: &Xid) -> Option<&Order> {
        self.orders.get(self.by_xid.get(xid)?)
    }

    /// Whether `key` has an order.
    pub fn knows(&self, key: &IdemKey) -> bool {
        self.orders.contains_key(key)
    }

    /// The order of `key`; it must exist.
    pub fn get(&self, key: &IdemKey) -> Order {
        self.orders[key].clone()
    }

    /// Orders created and not finished, in key order.
    pub fn unfinished(&self) -> Vec<Order> {
        self.open
            .iter()
            .map(|key| self.orders[key].clone())
            .collect()
    }

    /// Decides what a request for `key` means. The activity id is this node's next one: unique
    /// because orders are never forgotten once their id has been used (the record is durable
    /// before the id leaves the node).
    pub fn decide(&self, key: &IdemKey, trade: TradeId, kind: OrderKind) -> OrderDecision {
        if let Some(order) = self.orders.get(key) {
            return OrderDecision::Known(order.clone());
        }
        OrderDecision::Create(OrderRecord::Created {
            key: key.clone(),
            trade,
            xid: Xid::new(compact_str::format_compact!(
                "x{}.{}",
                self.node,
                self.orders.len() + 1
            )),
            kind,
        })
    }

    pub fn apply(&mut self, record: OrderRecord) {
        match record {
            OrderRecord::Created {
                key,
                trade,
                xid,
                kind,
            } => {
                assert!(!self.by_xid.contains_key(&xid), "activity id {xid} reused");
                self.by_xid.insert(xid.clone(), key.clone());
                self.open.insert(key.clone());
                let previous = self.orders.insert(
                    key.clone(),
                    Order {
                        key,
                        trade,
                        xid,
                        kind,
                        outcome: None,
                        gave_up: None,
                        to_card: None,
                    },
                );
                assert!(previous.is_none(), "order created twice");
            }
            OrderRecord::Finished { key, outcome } => {
                let order = self
                    .orders
                    .get_mut(&key)
                    .unwrap_or_else(|| panic!("order {key} exists"));
                match &order.outcome {
                    // Finishing is redone after a crash; it must reach the same outcome, to the
                    // refusal's code (the detail is for people, and nothing compares it).
                    Some(first) => assert_eq!(
                        first.as_ref().map_err(|r| r.code),
                        outcome.as_ref().map_err(|r| r.code),
                        "order {key} outcome flipped"
                    ),
                    None => order.outcome = Some(outcome),
                }
                self.open.remove(&key);
            }
            OrderRecord::GaveUp { key, refusal } => {
                let order = self
                    .orders
                    .get_mut(&key)
                    .unwrap_or_else(|| panic!("order {key} exists"));
                assert!(
                    order.outcome.is_none(),
                    "order {key} gives up before it finishes"
                );
                order.gave_up.get_or_insert(refusal);
            }
            OrderRecord::ToCard { key, payer } => {
                let order = self
                    .orders
                    .get_mut(&key)
                    .unwrap_or_else(|| panic!("order {key} exists"));
                assert!(
                    matches!(order.kind, OrderKind::Refund { .. }),
                    "only a refund goes back to a card"
                );
                order.to_card = Some(payer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusal::RefusalCode;

    #[test]
    fn a_give_up_is_kept_for_the_resumed_order_and_its_finish_agrees() {
        let mut book = OrderBook::recover(0, &[]);
        let key: IdemKey = "c1-p1".into();
        let OrderDecision::Create(created) = book.decide(&key, trade(), pay()) else {
            panic!("a new key creates")
        };
        book.apply(created);
        let refusal = Refusal::new(RefusalCode::Aborted, "the trade did not answer");
        let gave_up = OrderRecord::GaveUp {
            key: key.clone(),
            refusal: refusal.clone(),
        };
        book.apply(gave_up.clone());
        // Replayed after a crash: the first give-up stays.
        book.apply(gave_up);
        assert_eq!(book.get(&key).gave_up, Some(refusal.clone()));
        assert_eq!(
            book.unfinished().len(),
            1,
            "not finished until the trade is told"
        );
        book.apply(OrderRecord::Finished {
            key: key.clone(),
            outcome: Err(refusal),
        });
        assert!(book.unfinished().is_empty());
    }

    fn no(code: RefusalCode) -> Result<(), Refusal> {
        Err(Refusal::new(code, "no"))
    }

    fn trade() -> TradeId {
        TradeId { shard: 0, seq: 1 }
    }

    fn pay() -> OrderKind {
        OrderKind::Pay {
            payer: AccountId(9),
            by_card: false,
        }
    }

    #[test]
    fn a_key_is_created_once_and_its_outcome_pinned() {
        let mut book = OrderBook::recover(2, &[]);
        let OrderDecision::Create(record) = book.decide(&"k".into(), trade(), pay()) else {
            panic!("a new key creates an order");
        };
        book.apply(record);
        let OrderDecision::Known(order) = book.decide(&"k".into(), trade(), pay()) else {
            panic!("a known key is known");
        };
        assert_eq!(order.xid, Xid::from("x2.1"));
        assert_eq!(book.unfinished().len(), 1);
        let no_funds = no(RefusalCode::InsufficientFunds);
        book.apply(OrderRecord::Finished {
            key: "k".into(),
            outcome: no_funds.clone(),
        });
        assert!(book.unfinished().is_empty());
        assert_eq!(book.by_xid(&"x2.1".into()).unwrap().outcome, Some(no_funds));
    }

    #[test]
    #[should_panic(expected = "outcome flipped")]
    fn a_finished_refusal_never_changes_code() {
        let mut book = OrderBook::recover(0, &[]);
        if let OrderDecision::Create(r) = book.decide(&"k".into(), trade(), pay()) {
            book.apply(r);
        }
        for code in [RefusalCode::InsufficientFunds, RefusalCode::Aborted] {
            book.apply(OrderRecord::Finished {
                key: "k".into(),
                outcome: no(code),
            });
        }
    }

    #[test]
    #[should_panic(expected = "outcome flipped")]
    fn a_finished_outcome_never_flips() {
        let mut book = OrderBook::recover(0, &[]);
        if let OrderDecision::Create(r) = book.decide(&"k".into(), trade(), pay()) {
            book.apply(r);
        }
        for outcome in [Ok(()), no(RefusalCode::Aborted)] {
            book.apply(OrderRecord::Finished {
                key: "k".into(),
                outcome,
            });
        }
    }
}

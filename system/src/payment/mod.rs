//! The cashier / payment service (收银台/支付): pay and refund orders, each carried out as one
//! business activity whose money movement the run's consistency strategy makes atomic.
//!
//! - [`types`]: the API (pay, refund), its replies, and routing of keys to nodes.
//! - [`orders`]: the order book, a fold of the node's order log.
//! - [`flow`]: the order flow as a pure engine (admission, begin, move, end, finish).
//! - [`node`]: the node runtime: performs the flow's effects, resumes unfinished orders.
//!
//! Orders are partitioned across payment nodes by idempotency key, so that one node's order
//! log pins each key's outcome; any node accepts any request and forwards it to the key's
//! owner, and every node serves any trade, buyer or merchant.

pub mod access;
pub mod flow;
pub mod funding;
pub mod node;
pub mod orders;
pub mod types;

pub use node::{PaymentConfig, PaymentNode, PaymentView};
pub use orders::{Order, OrderBook, OrderKind, OrderRecord};
pub use types::*;

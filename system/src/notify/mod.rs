//! Best-effort merchant notification (最大努力通知): every trade event is called back to its
//! merchant's notify_url until the merchant answers success, on Alipay's schedule of 8 attempts
//! within 25 hours, then given up.
//!
//! - [`types`]: the retry schedules (Alipay's and a 1000x faster simulation one), the attempt
//!   limit, and the `MerchantNotifyCall` RPC.
//! - [`core`]: the notifier's deterministic state machine (decide → record → apply): one
//!   notification per event id, due attempts, acknowledged / retried / exhausted; every due
//!   time is written into its record, so recovery never consults the schedule.
//!
//! - [`engine`]: the notifier's protocol engine: deliveries scheduled durably, due attempts
//!   called once at a time, results recorded; pure, with table tests.
//! - [`node`]: the notifier node shell: consumes trade events as the `notify` group, calls
//!   merchants back on the schedule, resumes after a crash.
//! - [`merchant`]: the simulated merchant endpoint, which fails or answers late at random and
//!   asks the trade query API for the true status.
//!
//! Delivery to the merchant is at-least-once (an attempt whose reply is lost is retried), so the
//! merchant deduplicates by the event id each call carries.

pub mod core;
pub mod engine;
pub mod merchant;
pub mod node;
pub mod types;

pub use self::core::{Notification, NotifyCore, NotifyRecord, NotifyState};
pub use engine::{NotifyEngine, NotifyInput, NotifyOutput};
pub use merchant::{Callback, MerchantConfig, MerchantEndpoint};
pub use node::{NotifyConfig, NotifyNode, GROUP, LOG_FILE};
pub use types::*;

//! Merchant-notification vocabulary: the retry schedule and the callback RPC.

use crate::ids::{AccountId, EventId};
use crate::trade::{TradeId, TradeStatus};
use crate::transport::Rpc;
use serde::{Deserialize, Serialize};

/// Alipay's schedule: 8 attempts within 25 h; the waits after failed attempts 1..7.
pub const NOTIFY_SCHEDULE_MS: [u64; 7] = [
    240_000, 600_000, 600_000, 3_600_000, 7_200_000, 21_600_000, 54_000_000,
];

/// The same, 1000x faster (attempt 8 comes 87.84 simulated seconds after attempt 1).
pub const SIMULATION_NOTIFY_SCHEDULE_MS: [u64; 7] = [240, 600, 600, 3_600, 7_200, 21_600, 54_000];

/// Attempts in all, the first included; after the last one fails the notification is given up.
pub const ATTEMPTS_MAX: u32 = 8;

/// The former name of [`ATTEMPTS_MAX`], kept while the harness still uses it.
pub const MAX_ATTEMPTS: u32 = ATTEMPTS_MAX;

/// The callback to a merchant's notify_url. `Ok(())` is the merchant's "success"; anything
/// else (an error, or no reply) is a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantNotifyCall {
    /// The id of the trade event being notified: the merchant's idempotency key.
    pub event: EventId,
    pub trade: TradeId,
    pub merchant: AccountId,
    pub status: TradeStatus,
    pub version: u32,
    /// Which attempt this is, from 1.
    pub attempt: u32,
}

impl Rpc for MerchantNotifyCall {
    type Response = Result<(), String>;
    const TAG: u64 = 0x4e54_4659_0001;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedules_fit_eight_attempts_into_a_day() {
        assert_eq!(NOTIFY_SCHEDULE_MS.len() as u32, ATTEMPTS_MAX - 1);
        let real: u64 = NOTIFY_SCHEDULE_MS.iter().sum();
        assert_eq!(real, 87_840_000);
        assert!(real < 25 * 3_600_000);
        for (r, s) in NOTIFY_SCHEDULE_MS.iter().zip(SIMULATION_NOTIFY_SCHEDULE_MS) {
            assert_eq!(*r, s * 1_000);
        }
    }
}

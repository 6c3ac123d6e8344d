//! Intents: what one business step will ask, drawn whole from the client's stream before any
//! of it is asked. Executing a step never draws, so the same seed asks for the same operations
//! (payer, amount, card or balance, refund plan) whatever the outcomes, the strategy or the
//! message mode; only the reactions to the money (a top-up before a pay the estimate says the
//! payer cannot afford, a withdrawal of grown takings) follow the answers.
//!
//! Every drawn intent is folded into the run's [`IntentLog`], whose hash a test compares across
//! strategies and message modes of one seed.

use super::flows::amount;
use paylab_system::{AccountId, Amount};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

/// The share of trade flows paid by card (F3) when the platform clears through banks.
const CARD_PAY_P: f64 = 0.2;
/// The share of trade flows whose pay is aimed at the moment the trade closes unpaid.
const PAY_AT_CLOSE_P: f64 = 0.02;
/// The share of paid trades refunded (only a pay that succeeded is refunded).
const REFUND_P: f64 = 0.4;

/// How a paid trade is refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundIntent {
    /// Once, in full.
    Full,
    /// Twice at once, these two parts (they may exceed the trade: not both may succeed).
    Race { a_fen: i64, b_fen: i64 },
    /// Once, this part.
    Part { fen: i64 },
}

/// A trade created, paid and maybe refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowIntent {
    pub amount: Amount,
    pub payer: AccountId,
    pub by_card: bool,
    /// Aimed at the trade's close: the pay is sent this long after the trade was created.
    pub pay_at_ms: Option<u64>,
    pub refund: Option<RefundIntent>,
}

impl FlowIntent {
    /// Draws a flow of `amount` whose payer `pick_payer` draws.
    pub fn draw(
        rng: &mut ChaCha8Rng,
        amount: Amount,
        banks: u32,
        close_after_ms: u64,
        pick_payer: impl FnOnce(&mut ChaCha8Rng) -> AccountId,
    ) -> FlowIntent {
        let payer = pick_payer(rng);
        let by_card = banks > 0 && rng.gen_bool(CARD_PAY_P);
        let pay_at_ms = rng
            .gen_bool(PAY_AT_CLOSE_P)
            .then(|| close_after_ms.saturating_sub(150) + rng.gen_range(0..=300));
        let refund = rng
            .gen_bool(REFUND_P)
            .then(|| RefundIntent::draw(rng, amount.fen()));
        FlowIntent {
            amount,
            payer,
            by_card,
            pay_at_ms,
            refund,
        }
    }
}

impl RefundIntent {
    fn draw(rng: &mut ChaCha8Rng, fen: i64) -> RefundIntent {
        match rng.gen_range(0..3) {
            0 => RefundIntent::Full,
            1 => {
                // Each 40-80 % of the trade, or, half the time, two parts that make up the
                // whole trade exactly (both succeed, racing to the fully refunded end).
                let a_fen = part(rng, fen, 40, 80);
                let b_fen = if rng.gen_bool(0.5) {
                    (fen - a_fen).max(1)
                } else {
                    part(rng, fen, 40, 80)
                };
                RefundIntent::Race { a_fen, b_fen }
            }
            _ => RefundIntent::Part {
                fen: part(rng, fen, 1, 99),
            },
        }
    }
}

/// Between `lo` and `hi` percent of `fen`, at least one fen.
fn part(rng: &mut ChaCha8Rng, fen: i64, lo: i64, hi: i64) -> i64 {
    (fen * rng.gen_range(lo..=hi) / 100).max(1)
}

/// A transfer between two accounts of one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferIntent {
    pub from: AccountId,
    pub to: AccountId,
    pub amount: Amount,
}

impl TransferIntent {
    /// Up to 500 yuan: large enough that some overdraw and are refused (transfers never top
    /// up first).
    pub fn draw(rng: &mut ChaCha8Rng, from: AccountId, to: AccountId) -> TransferIntent {
        TransferIntent {
            from,
            to,
            amount: amount(rng, 1, 50_000),
        }
    }
}

/// One closed-loop client step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Transfer(TransferIntent),
    /// A trade created and never paid: its trade node closes it after the timeout.
    Unpaid {
        amount: Amount,
    },
    Flow(FlowIntent),
}

/// Every intent the run's clients drew, as one hash per client (the order within a client is
/// its own; clients interleave differently under different strategies).
#[derive(Debug, Clone, Default)]
pub struct IntentLog {
    by_client: Arc<Mutex<BTreeMap<u32, (u64, u64)>>>,
}

impl IntentLog {
    /// Folds one intent of `client` into its hash.
    pub fn record(&self, client: u32, intent: &impl Debug) {
        let text = format!("{intent:?}");
        let mut map = self.by_client.lock().unwrap_or_else(|p| p.into_inner());
        let (count, hash) = map.entry(client).or_insert((0, FNV_OFFSET));
        *count += 1;
        *hash = fnv1a(*hash, text.as_bytes());
    }

    /// How many intents were drawn, and one hash of them all.
    pub fn digest(&self) -> (u64, u64) {
        let map = self.by_client.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .fold((0, FNV_OFFSET), |(n, h), (client, (count, hash))| {
                let h = fnv1a(h, &client.to_le_bytes());
                (
                    n + count,
                    fnv1a(fnv1a(h, &count.to_le_bytes()), &hash.to_le_bytes()),
                )
            })
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, continued from `h` (std's hasher is not promised stable across releases).
pub fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

//! The business flows both workloads ask (the closed-loop clients of [`super`] and the
//! open-loop arrivals of [`crate::openloop`]): a trade paid and maybe refunded, a trade left
//! unpaid, a same-shard transfer. Every choice is drawn from the caller's own stream.

use super::caller::{Caller, Movement};
use paylab_invariants::Outcome;
use paylab_system::{AccountId, Amount};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The request ids of one business step `n` of client `client`: `c{client}-o{n}` for the
/// trade, `-p` for its payment, `-r` for refunds, `-t` for a transfer, `-f` for a top-up.
pub struct Names {
    pub client: u32,
    pub n: String,
}

impl Names {
    pub fn new(client: u32, n: impl ToString) -> Self {
        Names {
            client,
            n: n.to_string(),
        }
    }

    pub fn id(&self, letter: &str) -> String {
        format!("c{}-{letter}{}", self.client, self.n)
    }
}

/// The share of trade flows paid by card (F3) when the platform clears through banks.
const CARD_PAY_P: f64 = 0.2;

/// A trade flow paid by card.
pub const CARD_PAY: &str = "workload.card-pay";

/// The share of trade flows whose pay is aimed at the moment the trade closes unpaid.
const PAY_AT_CLOSE_P: f64 = 0.02;

/// Coverage probe: a pay was aimed at its trade's close.
pub const PAY_AT_CLOSE: &str = "workload.pay-at-close";

pub fn amount(rng: &mut ChaCha8Rng, min_fen: i64, max_fen: i64) -> Amount {
    Amount::from_fen(rng.gen_range(min_fen..=max_fen)).expect("workload amounts are valid")
}

/// Between `lo` and `hi` percent of `fen`, at least one fen.
fn part(rng: &mut ChaCha8Rng, fen: i64, lo: i64, hi: i64) -> i64 {
    (fen * rng.gen_range(lo..=hi) / 100).max(1)
}

/// A transfer of up to 500 yuan between two accounts of one shard: large enough that some
/// overdraw and are refused (transfers never top up first).
pub async fn transfer(
    caller: &Caller,
    rng: &mut ChaCha8Rng,
    names: &Names,
    from: AccountId,
    to: AccountId,
) -> Outcome {
    let amount = amount(rng, 1, 50_000);
    let request = names.id("t");
    caller.post(&request, from, to, amount).await
}

/// Create a trade of `amount` with `merchant`, have the payer `pick_payer` draws pay it (after
/// a top-up if the estimate says the payer is short), maybe refund (once, fully
/// or partly, or twice at once).
pub async fn trade_flow(
    caller: &Caller,
    rng: &mut ChaCha8Rng,
    names: &Names,
    merchant: AccountId,
    amount: Amount,
    pick_payer: impl FnOnce(&mut ChaCha8Rng) -> AccountId,
) {
    let Some(trade) = caller.create_trade(&names.id("o"), merchant, amount).await else {
        return;
    };
    let payer = pick_payer(rng);
    let by_card = caller.ctx.config.banks > 0 && rng.gen_bool(CARD_PAY_P);
    if by_card {
        caller.ctx.probes.hit(CARD_PAY);
    } else {
        caller.ensure_funds(&names.id("f"), payer, amount).await;
    }
    if rng.gen_bool(PAY_AT_CLOSE_P) {
        // Aimed at a window: the pay lands just before or after the trade node closes the
        // unpaid trade, so the close and the pay race.
        let close_ms = caller.ctx.config.close_after_ms;
        let at_ms = close_ms.saturating_sub(150) + rng.gen_range(0..=300);
        madsim::time::sleep(std::time::Duration::from_millis(at_ms)).await;
        caller.ctx.probes.hit(PAY_AT_CLOSE);
    }
    let key = names.id("p");
    let m = Movement {
        trade,
        payer,
        merchant,
        amount,
        by_card,
    };
    let outcome = caller.pay(&key, m).await;
    if outcome != Outcome::Ok || !rng.gen_bool(0.4) {
        return;
    }
    let fen = amount.fen();
    let of = |fen: i64| Movement {
        amount: Amount::from_fen(fen).expect("refund amounts are valid"),
        ..m
    };
    match rng.gen_range(0..3) {
        0 => {
            caller.refund(&names.id("r"), m).await;
        }
        1 => {
            // Two refunds at once, each 40-80 % of the trade (they must not both succeed if
            // they exceed it), or, half the time, two parts that make up the whole trade
            // exactly (both succeed, racing to the fully refunded end).
            let fa = part(rng, fen, 40, 80);
            let fb = if rng.gen_bool(0.5) {
                (fen - fa).max(1)
            } else {
                part(rng, fen, 40, 80)
            };
            let (ra, rb) = (format!("{}a", names.id("r")), format!("{}b", names.id("r")));
            tokio::join!(caller.refund(&ra, of(fa)), caller.refund(&rb, of(fb)));
        }
        _ => {
            let part = part(rng, fen, 1, 99);
            caller.refund(&names.id("r"), of(part)).await;
        }
    }
}

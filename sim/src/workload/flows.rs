//! The business flows both workloads ask (the closed-loop clients of [`super`] and the
//! open-loop arrivals of [`crate::openloop`]): a trade paid and maybe refunded, a trade left
//! unpaid, a same-shard transfer, each executing an intent drawn before it ([`super::intent`]).

use super::caller::{Caller, Movement};
use super::intent::{FlowIntent, RefundIntent, TransferIntent};
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

/// A trade flow paid by card.
pub const CARD_PAY: &str = "workload.card-pay";

/// Coverage probe: a pay was aimed at its trade's close.
pub const PAY_AT_CLOSE: &str = "workload.pay-at-close";

pub fn amount(rng: &mut ChaCha8Rng, min_fen: i64, max_fen: i64) -> Amount {
    Amount::from_fen(rng.gen_range(min_fen..=max_fen)).expect("workload amounts are valid")
}

/// A transfer between two accounts of one shard, as drawn.
pub async fn transfer(caller: &Caller, names: &Names, t: TransferIntent) -> Outcome {
    caller.post(&names.id("t"), t.from, t.to, t.amount).await
}

/// Create a trade with `merchant`, have the intent's payer pay it (after a top-up if the
/// estimate says the payer is short, unless it pays by card), and refund it as the intent says
/// if the pay succeeded (once, fully or partly, or twice at once).
pub async fn trade_flow(caller: &Caller, names: &Names, merchant: AccountId, f: FlowIntent) {
    let Some(trade) = caller
        .create_trade(&names.id("o"), merchant, f.amount)
        .await
    else {
        return;
    };
    if f.by_card {
        caller.ctx.probes.hit(CARD_PAY);
    } else {
        caller.ensure_funds(&names.id("f"), f.payer, f.amount).await;
    }
    if let Some(at_ms) = f.pay_at_ms {
        // Aimed at a window: the pay lands just before or after the trade node closes the
        // unpaid trade, so the close and the pay race.
        madsim::time::sleep(std::time::Duration::from_millis(at_ms)).await;
        caller.ctx.probes.hit(PAY_AT_CLOSE);
    }
    let m = Movement {
        trade,
        payer: f.payer,
        merchant,
        amount: f.amount,
        by_card: f.by_card,
    };
    let outcome = caller.pay(&names.id("p"), m).await;
    let (Outcome::Ok, Some(refund)) = (outcome, f.refund) else {
        return;
    };
    let of = |fen: i64| Movement {
        amount: Amount::from_fen(fen).expect("refund amounts are valid"),
        ..m
    };
    match refund {
        RefundIntent::Full => {
            caller.refund(&names.id("r"), m).await;
        }
        RefundIntent::Race { a_fen, b_fen } => {
            let (ra, rb) = (format!("{}a", names.id("r")), format!("{}b", names.id("r")));
            tokio::join!(caller.refund(&ra, of(a_fen)), caller.refund(&rb, of(b_fen)));
        }
        RefundIntent::Part { fen } => {
            caller.refund(&names.id("r"), of(fen)).await;
        }
    }
}

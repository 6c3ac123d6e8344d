//! Buggify points: places in platform code where the harness can widen a critical window, so
//! that a crash or a message lands inside it far more often than chance would allow
//! (FoundationDB's BUGGIFY). Off unless the run's fault plan opens a point, for a stretch of
//! time and with a chance of firing drawn for the run; a passage through an open point fires
//! with that chance (drawn from the node's own stream), and a firing costs a fixed pause of
//! simulated time, never a change of behaviour.

use crate::probes::Probes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a widened window lasts.
pub const WINDOW: Duration = Duration::from_millis(300);

/// The widened window of the points around a half message ([`Point::HalfToLocal`],
/// [`Point::CommitToMessage`], [`Point::AbortToMessage`]): past the broker's first check-back.
pub const CHECK_BACK_WINDOW: Duration = Duration::from_millis(800);

/// The widened window of [`Point::BeginToReply`]: past the payment node's begin budget (8
/// attempts, about 7.5 s), so that the caller gives up on a begin the trade has taken.
pub const PAST_BEGIN_BUDGET_WINDOW: Duration = Duration::from_millis(8_000);

/// The widened window of [`Point::TryToReply`]: past the TCC manager's Try timeout (500 ms),
/// so that the manager rolls back an activity whose Try the shard has taken.
pub const PAST_TRY_TIMEOUT_WINDOW: Duration = Duration::from_millis(1_000);

/// The widened window of [`Point::InstructionToReply`]: past the gateway's bank timeout
/// (300 ms), so that the gateway holds an instruction UNKNOWN that the bank carried out.
pub const PAST_BANK_TIMEOUT_WINDOW: Duration = Duration::from_millis(1_500);

/// A critical window in platform code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Point {
    /// TCC manager: between the durable COMMIT decision and the first Confirm.
    CommitToPhaseTwo,
    /// Ledger shard: between a durable Try and its answer, widened past the manager's Try
    /// timeout (a stalled shard): the activity rolls back a branch that did reserve.
    TryToReply,
    /// Payment node: between the movement's outcome and telling the trade.
    OutcomeToTrade,
    /// Payment node: between the durable order and asking the trade to begin.
    OrderToTrade,
    /// Trade node: between a durable local commit and its message (outbox relay, or the
    /// half message's commit).
    CommitToMessage,
    /// Trade node, mode 2: between storing the half message and the local transaction.
    HalfToLocal,
    /// Trade node: between a durable begin of a pay and its answer, widened past the payment
    /// node's retry budget (a stalled node): the caller gives up on a begin that was taken.
    BeginToReply,
    /// Consumer: between processing a batch and committing its offset (the reverse order under
    /// the planted `offset-before-processing`).
    ConsumeToOffset,
    /// Trade node, mode 2: between a local transaction that aborted and its half message's
    /// rollback (a crash here leaves the half to the check-back).
    AbortToMessage,
    /// TCC manager: between the last Confirm answer and the activity's durable end (a crash
    /// here makes recovery confirm again).
    ConfirmToEnd,
    /// TCC manager: between the last Cancel answer and the activity's durable end (a crash
    /// here makes recovery cancel again).
    CancelToEnd,
    /// Payment node: between the trade's answer to the end and the order's end record (a crash
    /// here makes the resumed order tell the trade again).
    TradeToFinish,
    /// Notifier: between the merchant's acknowledgement and its durable record (a crash here
    /// makes the notifier call again).
    CallbackToRecord,
    /// Bank: between a durable instruction and its answer, widened past the gateway's bank
    /// timeout (a slow bank): the gateway holds UNKNOWN an instruction the bank took.
    InstructionToReply,
    /// Gateway: between the bank's answer and the order's durable status (a crash here makes
    /// the resumed order ask the bank again).
    AnswerToRecord,
}

impl Point {
    pub const ALL: &'static [Point] = &[
        Point::CommitToPhaseTwo,
        Point::TryToReply,
        Point::OutcomeToTrade,
        Point::OrderToTrade,
        Point::CommitToMessage,
        Point::HalfToLocal,
        Point::BeginToReply,
        Point::ConsumeToOffset,
        Point::AbortToMessage,
        Point::ConfirmToEnd,
        Point::CancelToEnd,
        Point::TradeToFinish,
        Point::CallbackToRecord,
        Point::InstructionToReply,
        Point::AnswerToRecord,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Point::CommitToPhaseTwo => "commit-to-phase-two",
            Point::TryToReply => "try-to-reply",
            Point::OutcomeToTrade => "outcome-to-trade",
            Point::OrderToTrade => "order-to-trade",
            Point::CommitToMessage => "commit-to-message",
            Point::HalfToLocal => "half-to-local",
            Point::BeginToReply => "begin-to-reply",
            Point::ConsumeToOffset => "consume-to-offset",
            Point::AbortToMessage => "abort-to-message",
            Point::ConfirmToEnd => "confirm-to-end",
            Point::CancelToEnd => "cancel-to-end",
            Point::TradeToFinish => "trade-to-finish",
            Point::CallbackToRecord => "callback-to-record",
            Point::InstructionToReply => "instruction-to-reply",
            Point::AnswerToRecord => "answer-to-record",
        }
    }

    /// How long the widened window lasts: [`WINDOW`], except a begin's or a Try's answer,
    /// widened past its caller's budget or timeout, and around a half message, widened past
    /// the broker's first check-back (600 ms in a run) so that the check races the window: it
    /// arrives while the local transaction is still running, or before the one-way commit or
    /// rollback that follows it.
    pub fn window(self) -> Duration {
        match self {
            Point::HalfToLocal | Point::CommitToMessage | Point::AbortToMessage => {
                CHECK_BACK_WINDOW
            }
            Point::BeginToReply => PAST_BEGIN_BUDGET_WINDOW,
            Point::TryToReply => PAST_TRY_TIMEOUT_WINDOW,
            Point::InstructionToReply => PAST_BANK_TIMEOUT_WINDOW,
            _ => WINDOW,
        }
    }

    /// Whether a firing stalls the node at this point for the whole window (every passage
    /// until it ends waits too), rather than delaying one passage.
    pub fn stalls(self) -> bool {
        matches!(
            self,
            Point::BeginToReply | Point::TryToReply | Point::InstructionToReply
        )
    }

    /// The coverage probe fired each time the widened window is taken.
    pub fn probe(self) -> &'static str {
        match self {
            Point::CommitToPhaseTwo => "buggify.commit-to-phase-two",
            Point::TryToReply => "buggify.try-to-reply",
            Point::OutcomeToTrade => "buggify.outcome-to-trade",
            Point::OrderToTrade => "buggify.order-to-trade",
            Point::CommitToMessage => "buggify.commit-to-message",
            Point::HalfToLocal => "buggify.half-to-local",
            Point::BeginToReply => "buggify.begin-to-reply",
            Point::ConsumeToOffset => "buggify.consume-to-offset",
            Point::AbortToMessage => "buggify.abort-to-message",
            Point::ConfirmToEnd => "buggify.confirm-to-end",
            Point::CancelToEnd => "buggify.cancel-to-end",
            Point::TradeToFinish => "buggify.trade-to-finish",
            Point::CallbackToRecord => "buggify.callback-to-record",
            Point::InstructionToReply => "buggify.instruction-to-reply",
            Point::AnswerToRecord => "buggify.answer-to-record",
        }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Point {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Point::ALL
            .iter()
            .copied()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown buggify point '{s}'"))
    }
}

/// The run's switchboard of open buggify points (each with its chance of firing), shared by
/// every node, and the node's own stream for the firing draws.
#[derive(Debug, Clone)]
pub struct Buggify {
    open: Arc<Mutex<BTreeMap<Point, f64>>>,
    /// How many times each point fired on each node, for the harness (a crash aimed at a
    /// window waits for its node to fire the point).
    fired: Arc<Mutex<BTreeMap<(Point, String), u64>>>,
    /// The node this handle belongs to (empty for the run's own handle).
    node: String,
    draws: Arc<Mutex<ChaCha8Rng>>,
    /// Until when a stall point ([`Point::stalls`]) that fired holds every passage of this
    /// node (simulated time).
    stalled: Arc<Mutex<BTreeMap<Point, madsim::time::Instant>>>,
}

impl Default for Buggify {
    fn default() -> Self {
        Buggify {
            open: Arc::default(),
            fired: Arc::default(),
            node: String::new(),
            draws: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(0))),
            stalled: Arc::default(),
        }
    }
}

impl Buggify {
    /// The same switchboard for node `node`, with its own stream of firing draws (seeded by
    /// the caller from the run seed and the node's name).
    pub fn for_node(&self, node: &str, stream: u64) -> Buggify {
        Buggify {
            open: self.open.clone(),
            fired: self.fired.clone(),
            node: node.to_string(),
            draws: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(stream))),
            stalled: Arc::default(),
        }
    }

    /// How many times `point` has fired on `node` so far.
    pub fn fired(&self, point: Point, node: &str) -> u64 {
        let fired = self.fired.lock().unwrap_or_else(|p| p.into_inner());
        fired.get(&(point, node.to_string())).copied().unwrap_or(0)
    }

    /// Opens `point`, each passage firing with `chance` (clamped to 0..=1).
    pub fn open(&self, point: Point, chance: f64) {
        let chance = chance.clamp(0.0, 1.0);
        self.board().insert(point, chance);
    }

    /// Closes `point`.
    pub fn close(&self, point: Point) {
        self.board().remove(&point);
    }

    pub fn clear(&self) {
        self.board().clear();
    }

    pub fn is_on(&self, point: Point) -> bool {
        self.board().contains_key(&point)
    }

    fn board(&self) -> std::sync::MutexGuard<'_, BTreeMap<Point, f64>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this passage through `point` fires: never while it is closed, always at chance
    /// 1, otherwise a draw from the node's stream.
    fn fires(&self, point: Point) -> bool {
        let Some(chance) = self.board().get(&point).copied() else {
            return false;
        };
        chance >= 1.0
            || self
                .draws
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .gen_bool(chance)
    }

    /// Pauses for the point's window if this passage through `point` fires. A stall point
    /// that fired holds every later passage of the node until its window ends, as a stalled
    /// node would.
    pub async fn window(&self, point: Point, probes: &Probes) {
        // The common passage (a point that is not a stall) costs one lookup of the board.
        if point.stalls() {
            if let Some(end) = self.stall_end(point) {
                madsim::time::sleep_until(end).await;
                return;
            }
        }
        if !self.fires(point) {
            return;
        }
        probes.hit(point.probe());
        *self
            .fired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((point, self.node.clone()))
            .or_default() += 1;
        if point.stalls() {
            let end = madsim::time::Instant::now() + point.window();
            let mut stalled = self.stalled.lock().unwrap_or_else(|p| p.into_inner());
            stalled.insert(point, end);
        }
        madsim::time::sleep(point.window()).await;
    }

    /// When the node's stall at `point` ends, if it is stalled there now.
    fn stall_end(&self, point: Point) -> Option<madsim::time::Instant> {
        let stalled = self.stalled.lock().unwrap_or_else(|p| p.into_inner());
        let now = madsim::time::Instant::now();
        stalled.get(&point).copied().filter(|end| *end > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_fires_only_while_open_and_about_as_often_as_its_chance() {
        let board = Buggify::default().for_node("trade/0", 7);
        assert!(!board.fires(Point::AbortToMessage));
        board.open(Point::AbortToMessage, 1.0);
        assert!((0..50).all(|_| board.fires(Point::AbortToMessage)));
        board.open(Point::AbortToMessage, 0.25);
        let fired = (0..4000)
            .filter(|_| board.fires(Point::AbortToMessage))
            .count();
        assert!((800..1200).contains(&fired), "{fired}");
        board.close(Point::AbortToMessage);
        assert!(!board.fires(Point::AbortToMessage));
    }

    #[test]
    fn nodes_share_the_switchboard_but_not_the_stream() {
        let run = Buggify::default();
        let (a, b) = (run.for_node("a/0", 1), run.for_node("b/0", 2));
        run.open(Point::ConsumeToOffset, 0.5);
        assert!(a.is_on(Point::ConsumeToOffset) && b.is_on(Point::ConsumeToOffset));
        let draws = |n: &Buggify| {
            (0..64)
                .map(|_| n.fires(Point::ConsumeToOffset))
                .collect::<Vec<_>>()
        };
        assert_ne!(draws(&a), draws(&b));
        assert_eq!(
            draws(&run.for_node("a/0", 1)),
            draws(&run.for_node("a/0", 1))
        );
    }
}

//! Buggify points: places in platform code where the harness can widen a critical window, so
//! that a crash or a message lands inside it far more often than chance would allow
//! (FoundationDB's BUGGIFY). Off unless the run's fault plan switches a point on; a point that
//! is on costs a fixed pause of simulated time, never a change of behaviour.

use crate::probes::Probes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a widened window lasts.
pub const WINDOW: Duration = Duration::from_millis(300);

/// The widened window of [`Point::HalfToLocal`].
pub const HALF_TO_LOCAL_WINDOW: Duration = Duration::from_millis(800);

/// A critical window in platform code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Point {
    /// TCC manager: between the durable COMMIT decision and the first Confirm.
    CommitToPhaseTwo,
    /// Payment node: between the movement's outcome and telling the trade.
    OutcomeToTrade,
    /// Payment node: between the durable order and asking the trade to begin.
    OrderToTrade,
    /// Trade node: between a durable local commit and its message (outbox relay, or the
    /// half message's commit).
    CommitToMessage,
    /// Trade node, mode 2: between storing the half message and the local transaction.
    HalfToLocal,
    /// Consumer: between processing a batch and committing its offset (the reverse order under
    /// the planted `offset-before-processing`).
    ConsumeToOffset,
}

impl Point {
    pub const ALL: &'static [Point] = &[
        Point::CommitToPhaseTwo,
        Point::OutcomeToTrade,
        Point::OrderToTrade,
        Point::CommitToMessage,
        Point::HalfToLocal,
        Point::ConsumeToOffset,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Point::CommitToPhaseTwo => "commit-to-phase-two",
            Point::OutcomeToTrade => "outcome-to-trade",
            Point::OrderToTrade => "order-to-trade",
            Point::CommitToMessage => "commit-to-message",
            Point::HalfToLocal => "half-to-local",
            Point::ConsumeToOffset => "consume-to-offset",
        }
    }

    /// How long the widened window lasts: [`WINDOW`], except between a half message and its
    /// local transaction, which is widened past the broker's first check-back (600 ms in a
    /// run), so that the check arrives while the local transaction is still running.
    pub fn window(self) -> Duration {
        match self {
            Point::HalfToLocal => HALF_TO_LOCAL_WINDOW,
            _ => WINDOW,
        }
    }

    /// The coverage probe fired each time the widened window is taken.
    pub fn probe(self) -> &'static str {
        match self {
            Point::CommitToPhaseTwo => "buggify.commit-to-phase-two",
            Point::OutcomeToTrade => "buggify.outcome-to-trade",
            Point::OrderToTrade => "buggify.order-to-trade",
            Point::CommitToMessage => "buggify.commit-to-message",
            Point::HalfToLocal => "buggify.half-to-local",
            Point::ConsumeToOffset => "buggify.consume-to-offset",
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

/// The run's switchboard of buggify points, shared by every node.
#[derive(Debug, Clone, Default)]
pub struct Buggify {
    on: Arc<Mutex<BTreeSet<Point>>>,
}

impl Buggify {
    pub fn set(&self, point: Point, on: bool) {
        let mut points = self.on.lock().unwrap_or_else(|p| p.into_inner());
        if on {
            points.insert(point);
        } else {
            points.remove(&point);
        }
    }

    pub fn clear(&self) {
        self.on.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn is_on(&self, point: Point) -> bool {
        self.on
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&point)
    }

    /// Pauses for the point's window if `point` is on.
    pub async fn window(&self, point: Point, probes: &Probes) {
        if self.is_on(point) {
            probes.hit(point.probe());
            madsim::time::sleep(point.window()).await;
        }
    }
}

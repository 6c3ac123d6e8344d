//! The fault plan of a run: data (serde, JSON or TOML), drawn from the seed by swarm testing on
//! its own RNG stream, printed first, saved in failure reports and replayable as is.
//!
//! Swarm testing: each run enables a random subset of the fault kinds, each with random
//! intensities, so that across seeds every combination gets its turn, including runs quiet
//! enough for a rare corner to show. Every fault is bounded (a duration, a restart delay, a
//! jump size), so a correct platform can always recover once the plan is over and the run
//! heals.
//!
//! Events are placed by workload progress (after so many completed client operations), not by
//! simulated time, so a saved plan still lands mid-load after the code changed speed.

use crate::config::RunConfig;
use crate::services;
use paylab_system::buggify::Point;
use paylab_system::node::NodeName;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// Mixed into the seed to give the plan its own stream.
const PLAN_STREAM: u64 = 0x5041_594c_4142_504c; // "PAYLABPL"

/// The plan's sub-streams (ChaCha stream numbers): the kinds, each kind's event count, each
/// event, each buggify site and the crash correlation draw from their own, so that one draw
/// never shifts another.
mod streams {
    pub const KINDS: u64 = 1;
    pub const CORRELATE: u64 = 2;
    pub const SITES: u64 = 3;
    /// Kind `k`'s event count.
    pub fn count(kind: usize) -> u64 {
        (10 + kind as u64) << 32
    }
    /// Event `j` of kind `k`.
    pub fn event(kind: usize, j: u64) -> u64 {
        count(kind) | (j + 1)
    }
    /// Buggify site `p`.
    pub fn site(point: usize) -> u64 {
        (100 << 32) | point as u64
    }
}

/// The plan's sub-stream `stream` for the seed.
fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ PLAN_STREAM);
    rng.set_stream(stream);
    rng
}

/// Bounds every fault respects, so that healing always has something to recover from.
pub const DURATION_MS_MAX: u64 = 20_000;
pub const CLOCK_JUMP_MS_MAX: i64 = 10_000;
pub const FSYNC_SLOW_MS_MAX: u64 = 200;
pub const LATENCY_MS_MAX: u64 = 1_000;
/// Fault events in one plan: a drawn plan has at most a few dozen; a saved one may have more,
/// but not so many that applying them is what the run spends its time on.
pub const PLAN_EVENTS_MAX: usize = 1_000;
/// How long a crash aimed at a buggify window waits for its node to fire the point before it
/// crashes the node anyway.
pub const IN_WINDOW_WAIT_MS: u64 = 10_000;

/// The kinds of fault a plan can contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Crash,
    Pause,
    Partition,
    OneWay,
    Loss,
    Latency,
    Duplicate,
    Delay,
    ClockJump,
    SlowDisk,
    Buggify,
}

impl FaultKind {
    pub const ALL: &'static [FaultKind] = &[
        FaultKind::Crash,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::OneWay,
        FaultKind::Loss,
        FaultKind::Latency,
        FaultKind::Duplicate,
        FaultKind::Delay,
        FaultKind::ClockJump,
        FaultKind::SlowDisk,
        FaultKind::Buggify,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::OneWay => "one-way",
            FaultKind::Loss => "loss",
            FaultKind::Latency => "latency",
            FaultKind::Duplicate => "duplicate",
            FaultKind::Delay => "delay",
            FaultKind::ClockJump => "clock-jump",
            FaultKind::SlowDisk => "slow-disk",
            FaultKind::Buggify => "buggify",
        }
    }

    /// The coverage probe fired when a fault of this kind is applied.
    pub fn probe(self) -> &'static str {
        match self {
            FaultKind::Crash => "fault.crash",
            FaultKind::Pause => "fault.pause",
            FaultKind::Partition => "fault.partition",
            FaultKind::OneWay => "fault.one-way",
            FaultKind::Loss => "fault.loss",
            FaultKind::Latency => "fault.latency",
            FaultKind::Duplicate => "fault.duplicate",
            FaultKind::Delay => "fault.delay",
            FaultKind::ClockJump => "fault.clock-jump",
            FaultKind::SlowDisk => "fault.slow-disk",
            FaultKind::Buggify => "fault.buggify",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown fault kind '{s}' (known: {})", known.join(", "))
            })
    }
}

/// One fault, with its bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// Kill the node and cut its power (unsynced writes lost; with `torn_keep`, that fraction
    /// of the unsynced tail survives as a torn write); restart it `down_ms` later.
    Crash {
        node: NodeName,
        down_ms: u64,
        torn_keep: Option<f64>,
        /// Aimed at a buggify window: the crash waits (at most [`IN_WINDOW_WAIT_MS`]) until
        /// the node fires this point, so that it dies with work paused inside the window.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_window: Option<Point>,
    },
    /// Freeze every task of the node for `for_ms` (a long GC pause, a stuck VM).
    Pause { node: NodeName, for_ms: u64 },
    /// Cut every link between `side` and `other`, both ways, for `for_ms`. Isolating a node,
    /// a random split, one clogged link and a bridge (a node left in neither list talks to
    /// both) are all this.
    Partition {
        side: Vec<NodeName>,
        other: Vec<NodeName>,
        for_ms: u64,
    },
    /// Drop everything `from` sends to `to` (but not the way back), for `for_ms`.
    OneWay {
        from: NodeName,
        to: NodeName,
        for_ms: u64,
    },
    /// Lose each datagram with probability `rate`, for `for_ms`.
    Loss { rate: f64, for_ms: u64 },
    /// Every datagram takes `min_ms..max_ms` to arrive, for `for_ms`.
    Latency {
        min_ms: u64,
        max_ms: u64,
        for_ms: u64,
    },
    /// Deliver each request twice with probability `rate`, for `for_ms`.
    Duplicate { rate: f64, for_ms: u64 },
    /// Hold each request back `min_ms..max_ms` with probability `rate` (it still arrives,
    /// late, even if its sender gave up), for `for_ms`.
    Delay {
        rate: f64,
        min_ms: u64,
        max_ms: u64,
        for_ms: u64,
    },
    /// Move the node's clock by `by_ms` (forward or back).
    ClockJump { node: NodeName, by_ms: i64 },
    /// Every fsync on the node takes `fsync_ms`, for `for_ms`: unsynced writes linger, so a
    /// crash is far likelier to lose some.
    SlowDisk {
        node: NodeName,
        fsync_ms: u64,
        for_ms: u64,
    },
    /// Open a buggify point in platform code for `for_ms`: each passage through it widens the
    /// critical window with probability `chance` (1 when a saved plan leaves it out).
    Buggify {
        point: Point,
        for_ms: u64,
        #[serde(default = "always", skip_serializing_if = "is_always")]
        chance: f64,
    },
}

/// A buggify point that fires on every passage.
fn always() -> f64 {
    1.0
}

fn is_always(chance: &f64) -> bool {
    *chance >= 1.0
}

impl Fault {
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Crash { .. } => FaultKind::Crash,
            Fault::Pause { .. } => FaultKind::Pause,
            Fault::Partition { .. } => FaultKind::Partition,
            Fault::OneWay { .. } => FaultKind::OneWay,
            Fault::Loss { .. } => FaultKind::Loss,
            Fault::Latency { .. } => FaultKind::Latency,
            Fault::Duplicate { .. } => FaultKind::Duplicate,
            Fault::Delay { .. } => FaultKind::Delay,
            Fault::ClockJump { .. } => FaultKind::ClockJump,
            Fault::SlowDisk { .. } => FaultKind::SlowDisk,
            Fault::Buggify { .. } => FaultKind::Buggify,
        }
    }

    /// The fault as it applies to a run whose nodes are those `has` accepts: a partition
    /// loses the slots the run lacks from each side; `None` when the fault names a slot the
    /// run lacks (or a partition keeps no node on one side), and the run skips it.
    pub fn on_nodes(&self, has: impl Fn(&NodeName) -> bool) -> Option<Fault> {
        match self {
            Fault::Partition {
                side,
                other,
                for_ms,
            } => {
                let keep = |v: &[NodeName]| -> Vec<NodeName> {
                    v.iter().filter(|n| has(n)).cloned().collect()
                };
                let (side, other) = (keep(side), keep(other));
                (!side.is_empty() && !other.is_empty()).then_some(Fault::Partition {
                    side,
                    other,
                    for_ms: *for_ms,
                })
            }
            _ => self.nodes().into_iter().all(has).then(|| self.clone()),
        }
    }

    /// Every node the fault names.
    fn nodes(&self) -> Vec<&NodeName> {
        match self {
            Fault::Crash { node, .. }
            | Fault::Pause { node, .. }
            | Fault::ClockJump { node, .. }
            | Fault::SlowDisk { node, .. } => vec![node],
            Fault::Partition { side, other, .. } => side.iter().chain(other).collect(),
            Fault::OneWay { from, to, .. } => vec![from, to],
            _ => Vec::new(),
        }
    }

    /// Why the fault is out of bounds, if it is.
    fn check_bounds(&self) -> Result<(), String> {
        match self {
            Fault::Crash {
                down_ms, torn_keep, ..
            } => {
                bound_duration(*down_ms, "downtime")?;
                match torn_keep {
                    Some(k) if !(0.0..=1.0).contains(k) => {
                        Err(format!("torn_keep {k} is outside 0..=1"))
                    }
                    _ => Ok(()),
                }
            }
            Fault::Pause { for_ms, .. } | Fault::OneWay { for_ms, .. } => {
                bound_duration(*for_ms, "duration")
            }
            Fault::Buggify { for_ms, chance, .. } => {
                if !(*chance > 0.0 && *chance <= 1.0) {
                    return Err(format!("buggify chance {chance} is outside (0, 1]"));
                }
                bound_duration(*for_ms, "duration")
            }
            Fault::Partition {
                side,
                other,
                for_ms,
            } => {
                if side.is_empty() || other.is_empty() {
                    return Err("a partition needs a node on each side".into());
                }
                bound_duration(*for_ms, "duration")
            }
            Fault::Loss { rate: r, for_ms } | Fault::Duplicate { rate: r, for_ms } => {
                bound_rate(*r)?;
                bound_duration(*for_ms, "duration")
            }
            Fault::Latency {
                min_ms,
                max_ms,
                for_ms,
            } => {
                bound_latency(*min_ms, *max_ms)?;
                bound_duration(*for_ms, "duration")
            }
            Fault::Delay {
                rate: r,
                min_ms,
                max_ms,
                for_ms,
            } => {
                bound_rate(*r)?;
                if min_ms > max_ms || *max_ms > DURATION_MS_MAX {
                    return Err(format!("delay {min_ms}..{max_ms} ms is out of bounds"));
                }
                bound_duration(*for_ms, "duration")
            }
            Fault::ClockJump { by_ms, .. } => bound_clock_jump(*by_ms),
            Fault::SlowDisk {
                fsync_ms, for_ms, ..
            } => {
                if *fsync_ms > FSYNC_SLOW_MS_MAX {
                    return Err(format!(
                        "fsync {fsync_ms} ms exceeds {FSYNC_SLOW_MS_MAX} ms"
                    ));
                }
                bound_duration(*for_ms, "duration")
            }
        }
    }
}

fn bound_duration(ms: u64, what: &str) -> Result<(), String> {
    if ms > DURATION_MS_MAX {
        Err(format!("{what} {ms} ms exceeds {DURATION_MS_MAX} ms"))
    } else {
        Ok(())
    }
}

fn bound_rate(r: f64) -> Result<(), String> {
    if (0.0..=0.5).contains(&r) {
        Ok(())
    } else {
        Err(format!("rate {r} is outside 0..=0.5"))
    }
}

fn bound_latency(min: u64, max: u64) -> Result<(), String> {
    if min <= max && max <= LATENCY_MS_MAX {
        Ok(())
    } else {
        Err(format!(
            "{min}..{max} ms is not a range within 0..={LATENCY_MS_MAX} ms"
        ))
    }
}

fn bound_clock_jump(by_ms: i64) -> Result<(), String> {
    if by_ms.abs() > CLOCK_JUMP_MS_MAX {
        Err(format!(
            "clock jump {by_ms} ms exceeds ±{CLOCK_JUMP_MS_MAX} ms"
        ))
    } else {
        Ok(())
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Crash {
                node,
                down_ms,
                torn_keep,
                in_window,
            } => write!(
                f,
                "crash {node}{} for {down_ms}ms{}",
                in_window.map_or(String::new(), |p| format!(" in {p}")),
                if torn_keep.is_some() { " (torn)" } else { "" }
            ),
            Fault::Pause { node, for_ms } => write!(f, "pause {node} for {for_ms}ms"),
            Fault::Partition {
                side,
                other,
                for_ms,
            } => write!(
                f,
                "partition [{}] | [{}] for {for_ms}ms",
                join(side),
                join(other)
            ),
            Fault::OneWay { from, to, for_ms } => write!(f, "one-way {from}->{to} for {for_ms}ms"),
            Fault::Loss { rate, for_ms } => write!(f, "loss {:.1}% for {for_ms}ms", rate * 100.0),
            Fault::Latency {
                min_ms,
                max_ms,
                for_ms,
            } => write!(f, "latency {min_ms}-{max_ms}ms for {for_ms}ms"),
            Fault::Duplicate { rate, for_ms } => {
                write!(f, "duplicate {:.1}% for {for_ms}ms", rate * 100.0)
            }
            Fault::Delay {
                rate,
                min_ms,
                max_ms,
                for_ms,
            } => write!(
                f,
                "delay {:.1}% by {min_ms}-{max_ms}ms for {for_ms}ms",
                rate * 100.0
            ),
            Fault::ClockJump { node, by_ms } => write!(f, "clock {node} {by_ms:+}ms"),
            Fault::SlowDisk {
                node,
                fsync_ms,
                for_ms,
            } => write!(f, "slow-disk {node} fsync {fsync_ms}ms for {for_ms}ms"),
            Fault::Buggify {
                point,
                for_ms,
                chance,
            } if is_always(chance) => write!(f, "buggify {point} for {for_ms}ms"),
            Fault::Buggify {
                point,
                for_ms,
                chance,
            } => write!(f, "buggify {point} for {for_ms}ms at {chance}"),
        }
    }
}

/// Node names, comma-separated.
fn join(nodes: &[NodeName]) -> String {
    let names: Vec<String> = nodes.iter().map(NodeName::to_string).collect();
    names.join(",")
}

/// One fault, applied once `after_ops` client operations have completed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    pub after_ops: u64,
    pub fault: Fault,
}

/// The faults of the faulted phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    /// The kinds this plan enabled (swarm testing), for the summary and coverage.
    pub kinds: Vec<FaultKind>,
    /// In order of `after_ops`.
    pub events: Vec<FaultEvent>,
}

/// Why a saved plan cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read the plan {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("the plan {path} is not a valid fault plan: {reason}")]
    Parse { path: String, reason: String },
    #[error("the plan's event {index} names node '{node}', which this configuration does not have (its nodes: {known})")]
    UnknownNode {
        index: usize,
        node: NodeName,
        known: String,
    },
    #[error("the plan's event {index} is out of bounds: {reason}")]
    OutOfBounds { index: usize, reason: String },
    #[error("the plan has {0} fault events; at most {PLAN_EVENTS_MAX}")]
    TooManyEvents(usize),
}

impl FaultPlan {
    /// No faults at all.
    pub fn none() -> Self {
        FaultPlan {
            kinds: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Draws the plan for a run from its seed. `kinds` narrows the choice: `None` lets swarm
    /// testing pick a random non-empty subset of every kind; `Some(list)` enables exactly the
    /// listed kinds (an empty list means no faults).
    ///
    /// Faults target node slots ([`RunConfig::slot_nodes`]), not this run's nodes, and every
    /// event draws from its own sub-stream: the plan of a seed is the same for every strategy
    /// and message mode (a fault on a slot the run lacks is skipped when applied).
    pub fn generate(config: &RunConfig) -> FaultPlan {
        let kinds = draw_kinds(config, &mut stream(config.seed, streams::KINDS));
        let nodes = config.slot_nodes();
        let total = config.total_ops();
        let mut events = Vec::new();
        for &kind in &kinds {
            if kind == FaultKind::Buggify {
                events.extend(draw_sites(config.seed, &nodes, total));
                continue;
            }
            let k = FaultKind::ALL
                .iter()
                .position(|x| *x == kind)
                .expect("a kind");
            let mut counter = stream(config.seed, streams::count(k));
            let count = if kind == FaultKind::Crash {
                counter.gen_range(1..=3)
            } else {
                counter.gen_range(1..=2)
            };
            for j in 0..count {
                let rng = &mut stream(config.seed, streams::event(k, j));
                let after_ops = rng.gen_range(total / 20..=total * 7 / 10);
                let fault = draw(kind, &nodes, rng);
                events.push(FaultEvent { after_ops, fault });
            }
        }
        let rng = &mut stream(config.seed, streams::CORRELATE);
        correlate_crashes(&mut events, &nodes, rng);
        events.sort_by_key(|e| e.after_ops);
        FaultPlan { kinds, events }
    }

    /// Reads a saved plan (JSON, or TOML if the file name ends in `.toml`; a failure report's
    /// JSON works too, for its plan) and checks it against the configuration it will run with.
    pub fn load(path: &str, config: &RunConfig) -> Result<FaultPlan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlanError::Read {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        let parsed = if path.ends_with(".toml") {
            toml::from_str::<FaultPlan>(&text).map_err(|e| e.message().to_string())
        } else {
            // A failure report carries its plan under "plan": it runs as the plan itself.
            #[derive(Deserialize)]
            struct Report {
                plan: FaultPlan,
            }
            serde_json::from_str::<FaultPlan>(&text)
                .or_else(|e| {
                    serde_json::from_str::<Report>(&text)
                        .map(|r| r.plan)
                        .map_err(|_| e)
                })
                .map_err(|e| e.to_string())
        };
        let plan = parsed.map_err(|reason| PlanError::Parse {
            path: path.to_string(),
            reason,
        })?;
        plan.validate(config)?;
        Ok(plan)
    }

    /// Every node the plan names is a slot of the configuration (a slot this run lacks, like
    /// the broker of a run without messages, is skipped when applied), and every fault is
    /// within its bounds.
    pub fn validate(&self, config: &RunConfig) -> Result<(), PlanError> {
        if self.events.len() > PLAN_EVENTS_MAX {
            return Err(PlanError::TooManyEvents(self.events.len()));
        }
        let nodes = config.slot_nodes();
        for (index, event) in self.events.iter().enumerate() {
            if let Some(node) = event.fault.nodes().into_iter().find(|n| !nodes.contains(n)) {
                return Err(PlanError::UnknownNode {
                    index,
                    node: node.clone(),
                    known: join(&nodes),
                });
            }
            event
                .fault
                .check_bounds()
                .map_err(|reason| PlanError::OutOfBounds { index, reason })?;
        }
        Ok(())
    }
}

/// The kinds a plan enables: exactly the configured ones, or (swarm testing) a random
/// non-empty subset of every kind.
fn draw_kinds(config: &RunConfig, rng: &mut ChaCha8Rng) -> Vec<FaultKind> {
    match &config.faults {
        Some(list) => list
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        None => {
            let mut picked: Vec<FaultKind> = FaultKind::ALL
                .iter()
                .copied()
                .filter(|k| rng.gen_bool(swarm_p(*k)))
                .collect();
            if picked.is_empty() {
                picked.push(*FaultKind::ALL.choose(rng).expect("kinds exist"));
            }
            picked
        }
    }
}

/// How likely swarm testing is to enable a kind: one in two, except crashes and buggify sites,
/// which find the most (every durability and recovery defect needs a crash, and the sites are
/// where crashes are aimed), so that runs with both are common rather than one in four.
fn swarm_p(kind: FaultKind) -> f64 {
    match kind {
        FaultKind::Crash => 0.7,
        FaultKind::Buggify => 0.6,
        _ => 0.5,
    }
}

/// Moves crashes to where they are most telling. A crash is most telling while a disk is slow
/// (writes linger unsynced): usually one crash lands on a slow disk's node shortly after its
/// slowness began. Likewise a buggify window exists to be crashed in: usually a crash lands on
/// a node that runs an open site, just after it opened, the sites taken in random order and a
/// crash added for a site the drawn ones did not reach (at most [`CORRELATED_CRASHES_MAX`] in
/// all). Only a plan whose kinds include crashes gets any.
fn correlate_crashes(events: &mut Vec<FaultEvent>, nodes: &[NodeName], rng: &mut ChaCha8Rng) {
    let mut crashes: Vec<usize> = (0..events.len())
        .filter(|&i| matches!(events[i].fault, Fault::Crash { .. }))
        .collect();
    if crashes.is_empty() {
        return;
    }
    let slow = events.iter().find_map(|e| match &e.fault {
        Fault::SlowDisk { node, .. } => Some((e.after_ops, vec![node.clone()], None)),
        _ => None,
    });
    let mut windows: Vec<(u64, Vec<NodeName>, Option<Point>)> = events
        .iter()
        .filter_map(|e| match &e.fault {
            // A stall exists to outlast its caller's budget, not to be crashed in.
            Fault::Buggify { point, .. } if !point.stalls() => {
                let runs = point_nodes(*point, nodes);
                (!runs.is_empty()).then_some((e.after_ops, runs, Some(*point)))
            }
            _ => None,
        })
        .collect();
    windows.shuffle(rng);
    crashes.reverse();
    for (after_ops, candidates, point) in slow.into_iter().chain(windows) {
        if !rng.gen_bool(0.75) {
            continue;
        }
        let index = match crashes.pop() {
            Some(i) => i,
            None if crash_count(events) < CORRELATED_CRASHES_MAX => {
                events.push(FaultEvent {
                    after_ops,
                    fault: draw(FaultKind::Crash, nodes, rng),
                });
                events.len() - 1
            }
            None => break,
        };
        let crash = &mut events[index];
        if let Fault::Crash {
            node: target,
            in_window,
            ..
        } = &mut crash.fault
        {
            *target = candidates.choose(rng).expect("candidates exist").clone();
            *in_window = point;
        }
        // Some operations in, so that work is inside the window when the node dies.
        crash.after_ops = after_ops + rng.gen_range(4..=12);
    }
}

/// At most this many crashes in a drawn plan once they are correlated with windows.
const CORRELATED_CRASHES_MAX: usize = 8;

fn crash_count(events: &[FaultEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e.fault, Fault::Crash { .. }))
        .count()
}

/// The nodes that run the code behind buggify point `point` (their kind lists the point).
fn point_nodes(point: Point, nodes: &[NodeName]) -> Vec<NodeName> {
    nodes
        .iter()
        .filter(|n| services::runs_point(n, point))
        .cloned()
        .collect()
}

/// The share of outages (crash downtime, pauses, partitions, one-way cuts) drawn long.
const LONG_OUTAGE_P: f64 = 0.15;
/// A long outage: past every retry budget of the platform (`BeginPay`'s 8 attempts take about
/// 7.5 s), so that the paths taken only after a budget runs out (a key ended without having
/// begun, then a late begin; an order failed for want of an answer) run too.
const LONG_OUTAGE_MS: std::ops::RangeInclusive<u64> = 8_000..=15_000;

/// How long an outage lasts: usually drawn from `usual`, sometimes long ([`LONG_OUTAGE_MS`]).
fn outage_ms(rng: &mut ChaCha8Rng, usual: std::ops::RangeInclusive<u64>) -> u64 {
    if rng.gen_bool(LONG_OUTAGE_P) {
        rng.gen_range(LONG_OUTAGE_MS)
    } else {
        rng.gen_range(usual)
    }
}

/// One fault of `kind` with random targets and intensity.
fn draw(kind: FaultKind, nodes: &[NodeName], rng: &mut ChaCha8Rng) -> Fault {
    let node = |rng: &mut ChaCha8Rng| any_role_node(nodes, rng);
    let for_ms = |rng: &mut ChaCha8Rng| rng.gen_range(200..=3_000);
    match kind {
        FaultKind::Crash => Fault::Crash {
            node: node(rng),
            down_ms: outage_ms(rng, 50..=1_999),
            torn_keep: rng.gen_bool(0.5).then(|| rng.gen_range(0.0..1.0)),
            in_window: None,
        },
        FaultKind::Pause => Fault::Pause {
            node: node(rng),
            for_ms: outage_ms(rng, 100..=2_000),
        },
        FaultKind::Partition => draw_partition(nodes, rng),
        FaultKind::OneWay => draw_one_way(nodes, rng),
        FaultKind::Loss => Fault::Loss {
            rate: [0.005, 0.01, 0.02, 0.05][rng.gen_range(0..4)],
            for_ms: for_ms(rng),
        },
        FaultKind::Latency => {
            let min_ms = rng.gen_range(5..=50);
            Fault::Latency {
                min_ms,
                max_ms: min_ms + rng.gen_range(10..=300),
                for_ms: for_ms(rng),
            }
        }
        FaultKind::Duplicate => Fault::Duplicate {
            rate: [0.01, 0.03, 0.1][rng.gen_range(0..3)],
            for_ms: for_ms(rng),
        },
        FaultKind::Delay => Fault::Delay {
            rate: [0.01, 0.03, 0.1][rng.gen_range(0..3)],
            min_ms: 100,
            max_ms: 2_000,
            for_ms: for_ms(rng),
        },
        FaultKind::ClockJump => Fault::ClockJump {
            node: node(rng),
            by_ms: rng.gen_range(-CLOCK_JUMP_MS_MAX / 2..=CLOCK_JUMP_MS_MAX / 2),
        },
        FaultKind::SlowDisk => Fault::SlowDisk {
            node: node(rng),
            fsync_ms: rng.gen_range(20..=FSYNC_SLOW_MS_MAX),
            for_ms: for_ms(rng),
        },
        FaultKind::Buggify => Fault::Buggify {
            point: *Point::ALL.choose(rng).expect("points exist"),
            for_ms: for_ms(rng),
            chance: 1.0,
        },
    }
}

/// The buggify sites of a run (FoundationDB's BUGGIFY): the run draws how likely a site is to
/// be enabled at all, then each point whose code runs on some node of the configuration is
/// enabled with that probability, open for a long stretch of the faulted phase and firing with
/// a chance of its own. At least one site is enabled.
fn draw_sites(seed: u64, nodes: &[NodeName], total: u64) -> Vec<FaultEvent> {
    let rng = &mut stream(seed, streams::SITES);
    let enabled_p = [0.5, 0.75, 1.0][rng.gen_range(0..3)];
    let runnable: Vec<Point> = Point::ALL
        .iter()
        .copied()
        .filter(|p| !point_nodes(*p, nodes).is_empty())
        .collect();
    let mut sites: Vec<Point> = runnable
        .iter()
        .copied()
        .filter(|_| rng.gen_bool(enabled_p))
        .collect();
    if sites.is_empty() {
        sites.extend(runnable.choose(rng));
    }
    sites
        .into_iter()
        .map(|point| {
            let index = Point::ALL
                .iter()
                .position(|p| *p == point)
                .expect("a point");
            let rng = &mut stream(seed, streams::site(index));
            FaultEvent {
                after_ops: rng.gen_range(total / 20..=total / 2),
                fault: Fault::Buggify {
                    point,
                    for_ms: rng.gen_range(2_000..=DURATION_MS_MAX),
                    chance: [0.05, 0.2, 0.5, 1.0][rng.gen_range(0..4)],
                },
            }
        })
        .collect()
}

/// A node for a one-node fault: a role first, each equally likely, then one of its nodes, so
/// that a role with many nodes (the ledger's shards) does not take most of the faults and a
/// role with one node (a replica) still gets its share.
fn any_role_node(nodes: &[NodeName], rng: &mut ChaCha8Rng) -> NodeName {
    let roles: BTreeSet<&str> = nodes.iter().map(|n| n.role.as_str()).collect();
    let role: &str = roles
        .iter()
        .collect::<Vec<_>>()
        .choose(rng)
        .expect("a run has nodes");
    let of_role: Vec<&NodeName> = nodes.iter().filter(|n| n.role.as_str() == role).collect();
    (*of_role.choose(rng).expect("the role has nodes")).clone()
}

/// A partition: one node isolated, a random split, one clogged link, or a bridge.
fn draw_partition(nodes: &[NodeName], rng: &mut ChaCha8Rng) -> Fault {
    let mut shuffled = nodes.to_vec();
    shuffled.shuffle(rng);
    let (side, other) = match rng.gen_range(0..4) {
        // Isolate one node from all the others.
        0 => (vec![shuffled[0].clone()], shuffled[1..].to_vec()),
        // A random split.
        1 => {
            let cut = rng.gen_range(1..shuffled.len());
            (shuffled[..cut].to_vec(), shuffled[cut..].to_vec())
        }
        // One clogged link between two nodes, both ways.
        2 => (vec![shuffled[0].clone()], vec![shuffled[1].clone()]),
        // A bridge: the first node stays connected to both halves.
        _ => {
            let rest = &shuffled[1..];
            let cut = rng.gen_range(1..rest.len());
            (rest[..cut].to_vec(), rest[cut..].to_vec())
        }
    };
    Fault::Partition {
        side,
        other,
        for_ms: outage_ms(rng, 200..=3_000),
    }
}

/// Everything one node sends to another dropped, one way.
fn draw_one_way(nodes: &[NodeName], rng: &mut ChaCha8Rng) -> Fault {
    let from = nodes.choose(rng).expect("a run has nodes").clone();
    let to = nodes
        .iter()
        .filter(|n| **n != from)
        .collect::<Vec<_>>()
        .choose(rng)
        .map(|n| (*n).clone())
        .unwrap_or_else(|| from.clone());
    Fault::OneWay {
        from,
        to,
        for_ms: outage_ms(rng, 200..=3_000),
    }
}

impl fmt::Display for FaultPlan {
    /// A short summary: how many faults of each kind.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.events.is_empty() {
            return f.write_str("no faults");
        }
        let mut counts: std::collections::BTreeMap<FaultKind, usize> = Default::default();
        for e in &self.events {
            *counts.entry(e.fault.kind()).or_default() += 1;
        }
        let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k}x{n}")).collect();
        write!(f, "{} faults: {}", self.events.len(), parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_a_function_of_the_seed() {
        let a = FaultPlan::generate(&RunConfig::new(7));
        assert_eq!(a, FaultPlan::generate(&RunConfig::new(7)));
        assert_ne!(a, FaultPlan::generate(&RunConfig::new(8)));
    }

    #[test]
    fn swarm_testing_enables_every_kind_somewhere_and_never_all_everywhere() {
        let mut seen = BTreeSet::new();
        let mut all_on = 0;
        for seed in 0..200 {
            let plan = FaultPlan::generate(&RunConfig::new(seed));
            assert!(!plan.events.is_empty(), "seed {seed} has no fault");
            plan.validate(&RunConfig::new(seed))
                .expect("generated plans are valid");
            seen.extend(plan.events.iter().map(|e| e.fault.kind()));
            all_on += usize::from(plan.kinds.len() == FaultKind::ALL.len());
        }
        assert_eq!(seen.len(), FaultKind::ALL.len(), "{seen:?}");
        assert!(all_on < 10, "most runs enable a subset");
    }

    #[test]
    fn narrowed_kinds_and_no_faults() {
        let mut config = RunConfig::new(3);
        config.faults = Some(vec![FaultKind::Partition]);
        let plan = FaultPlan::generate(&config);
        assert!(plan
            .events
            .iter()
            .all(|e| e.fault.kind() == FaultKind::Partition));
        assert!(!plan.events.is_empty());
        config.faults = Some(Vec::new());
        assert!(FaultPlan::generate(&config).events.is_empty());
    }

    #[test]
    fn a_plan_round_trips_through_json_and_toml() {
        let plan = FaultPlan::generate(&RunConfig::new(11));
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<FaultPlan>(&json).unwrap(), plan);
        let toml_text = toml::to_string(&plan).unwrap();
        assert_eq!(toml::from_str::<FaultPlan>(&toml_text).unwrap(), plan);
    }

    #[test]
    fn unknown_nodes_and_unbounded_faults_are_refused() {
        let config = RunConfig::new(1);
        let crash = |node: &str, down_ms| FaultPlan {
            kinds: vec![FaultKind::Crash],
            events: vec![FaultEvent {
                after_ops: 1,
                fault: Fault::Crash {
                    node: node.parse().expect("a node name"),
                    down_ms,
                    torn_keep: None,
                    in_window: None,
                },
            }],
        };
        assert!(matches!(
            crash("ledger/99", 10).validate(&config),
            Err(PlanError::UnknownNode { .. })
        ));
        assert!(matches!(
            crash("ledger/0", 60_000).validate(&config),
            Err(PlanError::OutOfBounds { .. })
        ));
        assert!(crash("ledger/0", 10).validate(&config).is_ok());
    }
}

//! Which seeds a campaign runs: a range (`--seeds A..B`), a count (`--count N [--from S]`) or
//! a time budget (`--time 10m`, seeds from `--from` upward until it is spent); the shard
//! (`--shard K/N`) that keeps one of N disjoint slices; the seeds whose determinism is
//! re-checked; and the swarm configuration a seed draws for itself (`--swarm-config`).

use crate::RunConfig;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// `--seeds A..B`: the seeds from A up to B, B excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRange {
    pub start: u64,
    pub end: u64,
}

impl FromStr for SeedRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a seed range; write it A..B, e.g. 0..400");
        let (a, b) = s.split_once("..").ok_or_else(bad)?;
        let start: u64 = a.trim().parse().map_err(|_| bad())?;
        let end: u64 = b.trim().parse().map_err(|_| bad())?;
        if end <= start {
            return Err(format!(
                "the seed range '{s}' is empty; its end must exceed its start"
            ));
        }
        Ok(SeedRange { start, end })
    }
}

impl fmt::Display for SeedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// `--shard K/N`: the K-th (1-based) of N disjoint slices; seed `s` belongs to slice
/// `s % N + 1`, so every shard of every campaign over the same seeds agrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a shard; write it K/N with 1 <= K <= N, e.g. 2/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = k.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    pub fn owns(&self, seed: u64) -> bool {
        seed % self.count + 1 == self.index
    }
}

/// The seeds of a campaign before sharding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// Exactly these seeds.
    Range(SeedRange),
    /// From `from` upward, while the wall-time budget lasts.
    Time { from: u64, budget_s: u64 },
}

impl Selection {
    /// The seeds this shard runs, in order: finite for a range, endless for a time budget.
    pub fn seeds(self, shard: Option<Shard>) -> Box<dyn Iterator<Item = u64> + Send> {
        let owned = move |s: &u64| shard.is_none_or(|sh| sh.owns(*s));
        match self {
            Selection::Range(r) => Box::new((r.start..r.end).filter(owned)),
            Selection::Time { from, .. } => Box::new((from..).filter(owned)),
        }
    }

    /// How many seeds this shard runs, if known in advance.
    pub fn len(self, shard: Option<Shard>) -> Option<u64> {
        match self {
            Selection::Range(_) => Some(self.seeds(shard).count() as u64),
            Selection::Time { .. } => None,
        }
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selection::Range(r) => write!(f, "seeds {r}"),
            Selection::Time { from, budget_s } => {
                write!(f, "seeds from {from} for {budget_s} s of wall time")
            }
        }
    }
}

/// A fixed mix of a seed, so that each purpose below draws from a stream of its own.
fn mix(seed: u64, purpose: u64) -> u64 {
    let mut z = seed ^ purpose.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const DETERMINISM_STREAM: u64 = 0xde7e_4411;
const SWARM_STREAM: u64 = 0x5a42_3c0f;

/// Whether `seed` is among the `percent` share whose determinism is re-checked: chosen by the
/// seed alone, so every shard and every resume picks the same seeds.
pub fn checks_determinism(seed: u64, percent: f64) -> bool {
    let draw = mix(seed, DETERMINISM_STREAM) % 10_000;
    (draw as f64) < percent * 100.0
}

/// `--swarm-config`: the seed's own topology and workload size, drawn on a stream of its own
/// (the run's plan and workload streams are unaffected): 1–8 ledger shards, 1–8 clients, 1–4
/// trade shards, 1–4 payment nodes, and between a quarter of `--ops` and `--ops` steps per
/// client.
pub fn swarm(base: &RunConfig) -> RunConfig {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(mix(base.seed, SWARM_STREAM));
    let ops_max = base.ops.max(1);
    RunConfig {
        shards: rng.gen_range(1..=8),
        clients: rng.gen_range(1..=8),
        trade_shards: rng.gen_range(1..=4),
        payment_nodes: rng.gen_range(1..=4),
        ops: rng.gen_range((ops_max / 4).max(1)..=ops_max),
        ..base.clone()
    }
}

/// `--time 10m`: a wall-time budget in whole seconds (humantime: `90s`, `10m`, `1h 30m`).
pub fn parse_budget(s: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(s)
        .map_err(|_| format!("'{s}' is not a duration; write e.g. 90s, 10m or 1h"))?;
    if d.as_secs() == 0 {
        return Err(format!("the time budget '{s}' is under a second"));
    }
    Ok(d.as_secs())
}

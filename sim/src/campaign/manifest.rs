//! `DIR/campaign.json`: what a campaign is (its seeds, shard and every flag that shapes its
//! runs), written before the first run. `--resume DIR` reads it back instead of flags, and
//! `paylab report merge` checks that the shards it merges belong to one campaign.

use super::seeds::{Selection, Shard};
use crate::RunConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const FILE: &str = "campaign.json";
/// A saved `--plan`, copied into the campaign folder so that resume and repro need nothing
/// else.
pub const PLAN_FILE: &str = "plan.json";

/// The format of `campaign.json`.
const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The format version; its presence marks a folder as a paylab campaign.
    pub paylab_campaign: u32,
    pub selection: Selection,
    pub shard: Option<Shard>,
    /// The configuration every run starts from (its seed is replaced by each run's).
    pub config: RunConfig,
    pub swarm_config: bool,
    /// Whether the runs use the saved plan `plan.json` instead of their seeds' own.
    pub plan: bool,
    /// The percentage of seeds whose determinism is re-checked.
    pub check_determinism: f64,
    pub run_timeout_s: u64,
}

impl Manifest {
    pub fn new(selection: Selection, shard: Option<Shard>, config: RunConfig) -> Self {
        Manifest {
            paylab_campaign: FORMAT,
            selection,
            shard,
            config: RunConfig { seed: 0, ..config },
            swarm_config: false,
            plan: false,
            check_determinism: 5.0,
            run_timeout_s: 300,
        }
    }

    /// The campaign in one line, the shard left out (so that every shard, and their merge,
    /// describe the same campaign).
    pub fn describe(&self) -> String {
        let flags: Vec<String> = self.config.to_args().into_iter().skip(2).collect();
        let mut parts = vec![self.selection.to_string()];
        if !flags.is_empty() {
            parts.push(flags.join(" "));
        }
        if self.swarm_config {
            parts.push("--swarm-config".into());
        }
        if self.plan {
            parts.push("--plan plan.json".into());
        }
        parts.push(format!("--check-determinism {}", self.check_determinism));
        parts.join(" ")
    }

    /// Whether two manifests describe the same campaign, shard aside.
    pub fn same_campaign(&self, other: &Manifest) -> bool {
        Manifest {
            shard: None,
            ..self.clone()
        } == Manifest {
            shard: None,
            ..other.clone()
        }
    }

    /// Writes the manifest atomically.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).expect("a manifest serializes");
        write_atomic(&dir.join(FILE), json.as_bytes())
    }

    /// Reads `DIR/campaign.json`, or says in one sentence why `dir` is not a campaign.
    pub fn read(dir: &Path) -> Result<Manifest, String> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|_| format!("{} is not a paylab campaign (no {FILE})", dir.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a paylab campaign manifest: {e}", path.display()))
    }
}

/// Writes a file whole or not at all: a temporary file, fsynced, renamed over the target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let partial = path.with_extension("partial");
    let mut file = std::fs::File::create(&partial)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}

//! `DIR/results.jsonl`: one line per finished run, appended, flushed and fsynced as the run
//! ends, so a campaign killed at any moment loses no finished run. Reading it back repairs a
//! torn last line (a write cut by the kill) by truncating the file to its last whole line.

use crate::RunConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const FILE: &str = "results.jsonl";

/// A campaign's verdict of one seed: a run's own verdict, or what the campaign found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CampaignVerdict {
    Pass,
    Violation,
    Liveness,
    Crash,
    /// The run exceeded `--run-timeout` of wall time and was killed.
    Hang,
    /// A re-run of the seed gave another trace hash.
    Nondeterminism,
}

impl CampaignVerdict {
    pub const ALL: &'static [CampaignVerdict] = &[
        CampaignVerdict::Pass,
        CampaignVerdict::Violation,
        CampaignVerdict::Liveness,
        CampaignVerdict::Crash,
        CampaignVerdict::Hang,
        CampaignVerdict::Nondeterminism,
    ];

    pub fn word(self) -> &'static str {
        match self {
            CampaignVerdict::Pass => "PASS",
            CampaignVerdict::Violation => "VIOLATION",
            CampaignVerdict::Liveness => "LIVENESS",
            CampaignVerdict::Crash => "CRASH",
            CampaignVerdict::Hang => "HANG",
            CampaignVerdict::Nondeterminism => "NONDETERMINISM",
        }
    }

    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.word() == word)
    }
}

/// One finished run, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub seed: u64,
    /// The run's whole configuration (with `--swarm-config`, the one the seed drew).
    pub config: RunConfig,
    pub verdict: CampaignVerdict,
    /// The invariants the run broke, by name, sorted.
    pub invariants: Vec<String>,
    /// What else the verdict needs: the crash message, the pending items, both hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub probes: BTreeMap<String, u64>,
    /// The trace hash (hex); empty for a hang or a run that produced no report.
    pub trace_hash: String,
    /// The re-run's trace hash, for a seed whose determinism was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_hash: Option<String>,
    pub sim_ms: u64,
    pub wall_ms: u64,
    /// The command that replays the run.
    pub repro: String,
    /// The failure report, relative to the campaign folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

impl RunRecord {
    pub fn failed(&self) -> bool {
        self.verdict != CampaignVerdict::Pass
    }
}

/// The append-only log of a campaign.
pub struct ResultLog {
    file: File,
}

impl ResultLog {
    /// Opens `DIR/results.jsonl` for appending (creating it).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(FILE))?;
        Ok(ResultLog { file })
    }

    /// Appends one record as one line, then flushes and fsyncs it.
    pub fn append(&mut self, record: &RunRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_string(record).expect("a record serializes");
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.file.flush()?;
        self.file.sync_data()
    }
}

/// Why a results file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{path} line {line} is not a run record: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Reads every record of `DIR/results.jsonl` (none if the file is absent). A last line
/// without its newline was torn by a kill: with `repair`, the file is cut back to the last
/// whole line; without, it is skipped. A malformed whole line is an error.
pub fn read(dir: &Path, repair: bool) -> Result<Vec<RunRecord>, ReadError> {
    let path = dir.join(FILE);
    let io = |e: std::io::Error| ReadError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let whole = text.rfind('\n').map_or(0, |i| i + 1);
    if whole < text.len() && repair {
        let file = OpenOptions::new().write(true).open(&path).map_err(io)?;
        file.set_len(whole as u64).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    text[..whole]
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| ReadError::Parse {
                path: path.clone(),
                line: i + 1,
                reason: e.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "results_tests.rs"]
mod tests;

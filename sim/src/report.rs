//! Failure reports: everything needed to understand and replay a failed run, as one JSON file.
//!
//! Written atomically (to a temporary file, then renamed), so a report is whole or absent.
//! `paylab replay FILE` reads one back and re-runs its exact configuration and plan.

use crate::plan::FaultPlan;
use crate::run::{RunReport, Verdict};
use crate::RunConfig;
use paylab_invariants::{Operation, Violation};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where failure reports go unless the user says otherwise.
pub const DEFAULT_DIR: &str = "reports/failures";

/// What a failure report holds.
#[derive(Debug, Clone, Serialize)]
pub struct FailureReport<'a> {
    pub seed: u64,
    pub config: &'a RunConfig,
    pub plan: &'a FaultPlan,
    pub verdict: &'a Verdict,
    pub violations: &'a [Violation],
    pub history_excerpt: &'a [Operation],
    pub trace_tail: &'a [crate::trace::TraceEvent],
    pub probes: &'a std::collections::BTreeMap<String, u64>,
    pub trace_hash: String,
    pub repro: String,
}

/// The part of a report that replay needs.
#[derive(Debug, Clone, Deserialize)]
pub struct SavedRun {
    pub config: RunConfig,
    pub plan: FaultPlan,
    pub verdict: Verdict,
    #[serde(default)]
    pub violations: Vec<Violation>,
    /// The run's trace hash (16 hex digits), which a replay of the same run reproduces.
    #[serde(default)]
    pub trace_hash: Option<String>,
}

/// Why a report could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write the failure report in {dir}: {reason}")]
    Write { dir: String, reason: String },
    #[error("cannot read the report {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} is not a paylab failure report: {reason}")]
    Parse { path: String, reason: String },
}

/// The file name of a run's report: its seed, its planted bug if any, and 8 hex digits of a
/// hash of its whole configuration and plan, so that runs of one seed with other flags or
/// another plan never overwrite each other's reports.
pub fn file_name(config: &RunConfig, plan: &FaultPlan) -> String {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    h.write(config.to_args().join(" ").as_bytes());
    h.write(
        serde_json::to_string(plan)
            .expect("a plan serializes")
            .as_bytes(),
    );
    let tag = h.finish() as u32;
    match config.bug {
        Some(bug) => format!("seed-{}-{bug}-{tag:08x}.json", config.seed),
        None => format!("seed-{}-{tag:08x}.json", config.seed),
    }
}

/// Checks that a report could be written in `dir`, before a run whose failure would be
/// reported there: an unwritable folder is found before the run, not after it. It creates
/// nothing: a probe file (named after this process) is written and removed in `dir`, or in
/// its nearest existing ancestor when `dir` does not exist yet (the report's write creates
/// it). Creating and removing `dir` itself would race with other runs sharing it, as a
/// campaign's do.
pub fn check_dir(dir: &Path) -> Result<(), ReportError> {
    let error = |e: std::io::Error| ReportError::Write {
        dir: dir.display().to_string(),
        reason: e.to_string(),
    };
    let existing = dir
        .ancestors()
        .map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        })
        .find(|d| d.exists())
        .unwrap_or(Path::new("."));
    if !existing.is_dir() {
        let why = format!("{} is not a folder", existing.display());
        return Err(error(std::io::Error::other(why)));
    }
    let probe = existing.join(format!(".paylab-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(error)
}

/// Writes the report of a failed run into `dir` and returns its path.
pub fn write(dir: &Path, report: &RunReport) -> Result<PathBuf, ReportError> {
    let error = |e: std::io::Error| ReportError::Write {
        dir: dir.display().to_string(),
        reason: e.to_string(),
    };
    let path = dir.join(file_name(&report.config, &report.plan));
    let failure = FailureReport {
        seed: report.config.seed,
        config: &report.config,
        plan: &report.plan,
        verdict: &report.verdict,
        violations: &report.violations,
        history_excerpt: &report.history_excerpt,
        trace_tail: &report.trace_tail,
        probes: &report.probes,
        trace_hash: format!("{:016x}", report.trace_hash),
        repro: format!("cargo run --release -- replay {}", path.display()),
    };
    let json = serde_json::to_string_pretty(&failure).expect("a report serializes");
    std::fs::create_dir_all(dir).map_err(error)?;
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, json).map_err(error)?;
    std::fs::rename(&partial, &path).map_err(error)?;
    Ok(path)
}

/// Reads a report back for replay.
pub fn load(path: &Path) -> Result<SavedRun, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| ReportError::Parse {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

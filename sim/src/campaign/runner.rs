//! One seed in a child process: `paylab run <flags> --json --report-dir DIR/failures`,
//! re-invoking the current executable. A child process, not a thread, because a hung
//! simulation thread cannot be stopped but a process can be killed: a run past
//! `--run-timeout` is killed and recorded as a hang, and the campaign goes on. A child that
//! dies without a report (a signal, an abort) is recorded as a crash with its stderr's end.

use super::results::CampaignVerdict;
use crate::{RunConfig, Verdict};
use paylab_invariants::Violation;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What to run for one seed.
#[derive(Debug, Clone)]
pub struct Job {
    pub exe: PathBuf,
    pub config: RunConfig,
    /// A saved fault plan to run instead of the seed's own.
    pub plan: Option<PathBuf>,
    /// Where the child writes a failure report.
    pub report_dir: PathBuf,
    pub timeout: Duration,
}

/// What the campaign keeps of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub verdict: CampaignVerdict,
    pub invariants: Vec<String>,
    pub detail: Option<String>,
    pub probes: BTreeMap<String, u64>,
    /// Hex; empty when the run gave no report.
    pub trace_hash: String,
    pub sim_ms: u64,
    /// Wall time of the whole child process, start-up included.
    pub wall_ms: u64,
}

/// The part of `paylab run --json` the campaign reads.
#[derive(Deserialize)]
struct ChildReport {
    verdict: Verdict,
    violations: Vec<Violation>,
    probes: BTreeMap<String, u64>,
    sim_ms: u64,
    /// 16 hex digits, as `paylab run --json` prints it.
    trace_hash: String,
}

impl Job {
    /// The `paylab run` arguments of this job.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["run".to_string()];
        args.extend(self.config.to_args());
        if let Some(plan) = &self.plan {
            args.push("--plan".into());
            args.push(plan.display().to_string());
        }
        args.extend(["--json".into(), "--report-dir".into()]);
        args.push(self.report_dir.display().to_string());
        args
    }

    /// Runs the job to its end, or kills it at its timeout.
    pub fn run(&self) -> Outcome {
        let started = Instant::now();
        let child = Command::new(&self.exe)
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => return no_report(format!("cannot start {}: {e}", self.exe.display()), 0),
        };
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let out = match stdout.recv_timeout(self.timeout) {
            Ok(out) => out,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let wall_ms = started.elapsed().as_millis() as u64;
                return Outcome {
                    verdict: CampaignVerdict::Hang,
                    detail: Some(format!(
                        "killed after {} s of wall time (--run-timeout)",
                        self.timeout.as_secs()
                    )),
                    ..no_report(String::new(), wall_ms)
                };
            }
        };
        let status = child.wait();
        let err = stderr.recv().unwrap_or_default();
        let wall_ms = started.elapsed().as_millis() as u64;
        match parse(&out) {
            Some(report) => Outcome {
                wall_ms,
                ..outcome(report)
            },
            None => no_report(
                format!(
                    "the run gave no report ({}): {}",
                    status.map_or("not waited".to_string(), |s| s.to_string()),
                    tail(&err)
                ),
                wall_ms,
            ),
        }
    }
}

/// Reads a pipe to its end on a thread of its own; the text arrives on the channel.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        let _ = tx.send(text);
    });
    rx
}

/// The first JSON value of the child's stdout (the report; lines about it may follow).
fn parse(out: &str) -> Option<ChildReport> {
    serde_json::Deserializer::from_str(out)
        .into_iter::<ChildReport>()
        .next()?
        .ok()
}

fn outcome(r: ChildReport) -> Outcome {
    let mut invariants: Vec<String> = r
        .violations
        .iter()
        .map(|v| v.invariant.name().to_string())
        .collect();
    invariants.sort();
    invariants.dedup();
    let (verdict, detail) = match r.verdict {
        Verdict::Pass => (CampaignVerdict::Pass, None),
        Verdict::Violation => (CampaignVerdict::Violation, None),
        Verdict::Liveness(stuck) => {
            invariants.push("liveness".to_string());
            let shown: Vec<&str> = stuck.iter().take(5).map(String::as_str).collect();
            let more = stuck.len().saturating_sub(5);
            let detail = format!("{} pending: {}", stuck.len(), shown.join("; "));
            let detail = if more > 0 {
                format!("{detail}; ...")
            } else {
                detail
            };
            (CampaignVerdict::Liveness, Some(detail))
        }
        Verdict::Crash(message) => (CampaignVerdict::Crash, Some(message)),
    };
    Outcome {
        verdict,
        invariants,
        detail,
        probes: r.probes,
        trace_hash: r.trace_hash,
        sim_ms: r.sim_ms,
        wall_ms: 0,
    }
}

fn no_report(detail: String, wall_ms: u64) -> Outcome {
    Outcome {
        verdict: CampaignVerdict::Crash,
        invariants: Vec::new(),
        detail: Some(detail),
        probes: BTreeMap::new(),
        trace_hash: String::new(),
        sim_ms: 0,
        wall_ms,
    }
}

/// The last few lines of a text, for a crash without a report.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

/// The path of `path` relative to `base`, if it lies inside it.
pub fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

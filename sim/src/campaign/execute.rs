//! Running a prepared campaign: J workers take seeds in order, each seed in a child process
//! (and, for the determinism share, a second one); the main thread appends each finished run
//! to the log, reports progress, and at the end writes the reports.

use super::manifest::{Manifest, PLAN_FILE};
use super::progress::Progress;
use super::results::{self, CampaignVerdict, ResultLog, RunRecord};
use super::runner::{self, Job};
use super::seeds::{self, Selection};
use super::{corpus, junit, summary, Setup, FAILURES_DIR};
use crate::plan::FaultPlan;
use crate::report;
use crate::RunConfig;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

/// Where determinism re-runs write their (discarded) failure reports.
const RERUN_DIR: &str = ".rerun";

pub fn execute(setup: Setup, args: &super::CampaignArgs) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: cannot find the paylab executable to run seeds with: {e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let ran = match run_seeds(&setup, &exe, args.quiet) {
        Ok(ran) => ran,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let _ = std::fs::remove_dir_all(setup.dir.join(RERUN_DIR));
    let wall = started.elapsed();
    let records = match results::read(&setup.dir, false) {
        Ok(records) => records,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let summary = match write_reports(&setup.dir, &setup.manifest, &records) {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(corpus_dir) = &args.save_failures {
        save_failures(corpus_dir, &records);
    }
    print_summary(&setup.dir, &summary);
    let minutes = wall.as_secs_f64() / 60.0;
    say!(
        "throughput: {ran} runs in {:.1} s with {} jobs: {:.0} runs per minute",
        wall.as_secs_f64(),
        setup.jobs,
        if minutes > 0.0 {
            ran as f64 / minutes
        } else {
            0.0
        }
    );
    ExitCode::from(if summary.passed() { 0 } else { 1 })
}

/// Runs every seed not yet in the log; returns how many ran.
fn run_seeds(setup: &Setup, exe: &Path, quiet: bool) -> Result<u64, String> {
    let m = &setup.manifest;
    let done: BTreeSet<u64> = setup.records.iter().map(|r| r.seed).collect();
    let (total, budget) = match m.selection {
        Selection::Range(_) => {
            let all = m.selection.len(m.shard).unwrap_or(0);
            (Some(all.saturating_sub(done.len() as u64)), None)
        }
        Selection::Time { budget_s, .. } => {
            // A resumed time campaign gets what its finished runs have not used.
            let used: u64 = setup.records.iter().map(|r| r.wall_ms).sum();
            let used_s = used / 1000 / setup.jobs as u64;
            (
                None,
                Some(Duration::from_secs(budget_s.saturating_sub(used_s))),
            )
        }
    };
    let deadline = budget.map(|b| Instant::now() + b);
    let pending = Mutex::new(
        m.selection
            .seeds(m.shard)
            .filter(move |s| !done.contains(s)),
    );
    let mut log = ResultLog::open(&setup.dir).map_err(|e| {
        format!(
            "cannot open {}: {e}",
            setup.dir.join(results::FILE).display()
        )
    })?;
    let mut progress = Progress::new(quiet, total, budget);
    let (tx, rx) = mpsc::channel::<RunRecord>();
    let mut outcome = Ok(0);
    std::thread::scope(|scope| {
        for _ in 0..setup.jobs {
            let tx = tx.clone();
            let pending = &pending;
            scope.spawn(move || loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let next = pending.lock().unwrap_or_else(|p| p.into_inner()).next();
                let Some(seed) = next else { break };
                if tx
                    .send(run_seed(seed, &setup.manifest, &setup.dir, exe))
                    .is_err()
                {
                    break;
                }
            });
        }
        drop(tx);
        outcome = collect(rx, &mut log, &mut progress, setup);
    });
    progress.finish();
    outcome
}

/// Appends each finished run to the log as it arrives. A log that cannot be written stops
/// the campaign (the workers see the closed channel and stop after their current run).
fn collect(
    rx: mpsc::Receiver<RunRecord>,
    log: &mut ResultLog,
    progress: &mut Progress,
    setup: &Setup,
) -> Result<u64, String> {
    let (mut ran, mut failed) = (0, 0);
    for record in rx {
        log.append(&record).map_err(|e| {
            format!(
                "cannot append to {}: {e}",
                setup.dir.join(results::FILE).display()
            )
        })?;
        ran += 1;
        if record.failed() {
            failed += 1;
            progress.line(&failure_line(&record));
        } else if setup.manifest.swarm_config {
            progress.line(&format!("seed {} PASS: {}", record.seed, record.repro));
        }
        progress.tick(ran, failed);
    }
    Ok(ran)
}

fn failure_line(r: &RunRecord) -> String {
    let broken = if r.invariants.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.invariants.join(", "))
    };
    format!(
        "FAIL seed {} {}{broken}\n  repro: {}",
        r.seed,
        r.verdict.word(),
        r.repro
    )
}

/// One seed: its run, and for the determinism share a second run in another process.
fn run_seed(seed: u64, m: &Manifest, dir: &Path, exe: &Path) -> RunRecord {
    let base = RunConfig {
        seed,
        ..m.config.clone()
    };
    let config = if m.swarm_config {
        seeds::swarm(&base)
    } else {
        base
    };
    let plan = m.plan.then(|| dir.join(PLAN_FILE));
    let job = Job {
        exe: exe.to_path_buf(),
        config: config.clone(),
        plan: plan.clone(),
        report_dir: dir.join(FAILURES_DIR),
        timeout: Duration::from_secs(m.run_timeout_s),
    };
    let first = job.run();
    let mut record = RunRecord {
        seed,
        config: config.clone(),
        verdict: first.verdict,
        invariants: first.invariants,
        detail: first.detail,
        probes: first.probes,
        trace_hash: first.trace_hash,
        rerun_hash: None,
        sim_ms: first.sim_ms,
        wall_ms: first.wall_ms,
        repro: repro(&config, plan.as_deref()),
        report: None,
    };
    // The child names its report after its configuration and the plan it ran.
    let ran = plan
        .as_ref()
        .and_then(|p| FaultPlan::load(&p.display().to_string(), &config).ok())
        .unwrap_or_else(|| FaultPlan::generate(&config));
    let report = dir
        .join(FAILURES_DIR)
        .join(report::file_name(&config, &ran));
    if record.failed() && report.exists() {
        record.report = Some(runner::relative(&report, dir));
    }
    if seeds::checks_determinism(seed, m.check_determinism) && !record.trace_hash.is_empty() {
        check_determinism(&mut record, job, first.verdict, dir);
    }
    if record.failed() && record.report.is_none() {
        record.report = write_record(dir, &record, &ran);
    }
    record
}

/// Runs the seed again in another process and compares trace hashes: a mismatch makes the
/// record's verdict `NONDETERMINISM`, with both hashes.
fn check_determinism(record: &mut RunRecord, job: Job, first: CampaignVerdict, dir: &Path) {
    let rerun = Job {
        report_dir: dir.join(RERUN_DIR),
        ..job
    }
    .run();
    record.wall_ms += rerun.wall_ms;
    if rerun.trace_hash != record.trace_hash {
        record.verdict = CampaignVerdict::Nondeterminism;
        record.detail = Some(format!(
            "trace hash {} in one process, {} in another (first verdict {}, then {})",
            record.trace_hash,
            if rerun.trace_hash.is_empty() {
                "none"
            } else {
                &rerun.trace_hash
            },
            first.word(),
            rerun.verdict.word()
        ));
    }
    record.rerun_hash = Some(rerun.trace_hash);
}

/// A failing seed that left no failure report of `paylab run` (a hang, a child that died, a
/// nondeterministic pass): its record, configuration, plan and repro command as a JSON file in
/// `failures/`, so that every failing seed has one. Best effort: `None` if it cannot be
/// written (the results line still holds everything).
fn write_record(dir: &Path, record: &RunRecord, plan: &FaultPlan) -> Option<String> {
    let name = report::file_name(&record.config, plan);
    let stem = name.trim_end_matches(".json");
    let word = record.verdict.word().to_lowercase();
    let path = dir.join(FAILURES_DIR).join(format!("{stem}-{word}.json"));
    let doc = serde_json::json!({
        "what": "a paylab campaign's record of a failing seed that left no run report",
        "record": record,
        "plan": plan,
    });
    let text = serde_json::to_string_pretty(&doc).ok()?;
    std::fs::create_dir_all(dir.join(FAILURES_DIR)).ok()?;
    super::manifest::write_atomic(&path, text.as_bytes()).ok()?;
    Some(runner::relative(&path, dir))
}

/// The command that replays a run of the campaign.
pub fn repro(config: &RunConfig, plan: Option<&Path>) -> String {
    let mut cmd = format!("cargo run --release -- run {}", config.to_args().join(" "));
    if let Some(plan) = plan {
        cmd.push_str(&format!(" --plan {}", plan.display()));
    }
    cmd
}

/// Writes `summary.json`, `summary.md`, `junit.xml` and the campaign page `summary.html` into
/// `dir`, each atomically.
pub fn write_reports(
    dir: &Path,
    manifest: &Manifest,
    records: &[RunRecord],
) -> Result<summary::Summary, String> {
    let summary = summary::summarize(manifest, records);
    let json = serde_json::to_string_pretty(&summary).expect("a summary serializes");
    let write = |name: &str, bytes: &[u8]| {
        super::manifest::write_atomic(&dir.join(name), bytes)
            .map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))
    };
    write(summary::JSON_FILE, json.as_bytes())?;
    write(summary::MD_FILE, summary.markdown().as_bytes())?;
    write(
        junit::FILE,
        junit::render(&summary.campaign, records).as_bytes(),
    )?;
    crate::explore::campaign::write(dir, &summary, records)?;
    Ok(summary)
}

fn save_failures(corpus_dir: &Path, records: &[RunRecord]) {
    for r in records.iter().filter(|r| r.failed()) {
        match corpus::save(corpus_dir, r) {
            Ok(path) => say!("saved: {}", path.display()),
            Err(e) => eprintln!("error: {e}"),
        }
    }
}

/// The summary on stdout: counts, the failing seeds (the first 20) and where the reports are.
pub fn print_summary(dir: &Path, s: &summary::Summary) {
    let counts: Vec<String> = s
        .verdicts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(v, n)| format!("{v} {n}"))
        .collect();
    say!("campaign: {} runs: {}", s.runs, counts.join(", "));
    for f in s.failures.iter().take(20) {
        let mut line = format!("FAIL seed {} {}", f.seed, f.verdict.word());
        if !f.invariants.is_empty() {
            line.push_str(&format!(" ({})", f.invariants.join(", ")));
        }
        if let Some(detail) = &f.detail {
            let short: String = detail.chars().take(300).collect();
            line.push_str(&format!(": {short}"));
        }
        say!("{line}\n  repro: {}", f.repro);
    }
    if s.failures.len() > 20 {
        say!(
            "... and {} more failing seeds (see summary.md)",
            s.failures.len() - 20
        );
    }
    if !s.untested.is_empty() {
        say!("untested (never fired): {}", s.untested.join(", "));
    }
    let show = |name: &str| PathBuf::from(dir).join(name).display().to_string();
    say!(
        "reports: {} {} {} {}",
        show(summary::MD_FILE),
        show(crate::explore::campaign::HTML_FILE),
        show(summary::JSON_FILE),
        show(junit::FILE)
    );
}

//! `paylab campaign`: many seeds, J at a time, each in a child process, every finished run
//! appended to `DIR/results.jsonl` at once (so a killed campaign resumes where it was), with
//! a determinism re-check of a share of the seeds, and reports CI reads (`summary.json`,
//! `summary.md`, `junit.xml`, a failure report per failing seed).
//!
//! - [`seeds`]: ranges, time budgets, shards, the determinism share, swarm configurations.
//! - [`manifest`]: `campaign.json`, what a campaign is; resume and merge read it.
//! - [`runner`]: one seed in a child process, killed at its timeout.
//! - [`results`]: the append-only `results.jsonl` and its verdicts.
//! - [`summary`], [`junit`]: the reports.
//! - [`progress`]: the bar, the plain lines, or nothing.
//! - [`merge`]: `paylab report merge`, shards into one campaign.
//! - [`corpus`]: the regression corpus `seeds/*.toml` (`paylab replay seeds/`).

/// Prints a line to stdout, ignoring a closed pipe (`paylab campaign | head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod corpus;
pub mod junit;
pub mod manifest;
pub mod merge;
pub mod progress;
pub mod results;
pub mod runner;
pub mod seeds;
pub mod summary;

mod execute;

use crate::plan::FaultPlan;
use crate::RunConfig;
use manifest::Manifest;
use seeds::{SeedRange, Selection, Shard};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where campaigns go unless `--out` says otherwise (in a folder named by the start time).
pub const DEFAULT_DIR: &str = "reports/campaigns";
/// Failure reports, inside the campaign folder.
pub const FAILURES_DIR: &str = "failures";

/// The flags of `paylab campaign`.
#[derive(Debug, Clone, clap::Args)]
pub struct CampaignArgs {
    /// Every flag of `paylab run` that shapes a run; each seed's run starts from it.
    #[command(flatten)]
    pub config: RunConfig,
    /// Run the seeds A..B (B excluded).
    #[arg(long, value_name = "A..B", conflicts_with_all = ["count", "time", "from"])]
    pub seeds: Option<SeedRange>,
    /// Run N seeds, from `--from` (default 0).
    #[arg(long, value_name = "N", conflicts_with = "time", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// The first seed of `--count` or `--time`.
    #[arg(long, value_name = "S")]
    pub from: Option<u64>,
    /// Run seeds from `--from` upward until this much wall time is spent (e.g. 90s, 10m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = seeds::parse_budget)]
    pub time: Option<u64>,
    /// Runs at once (default: the machine's cores).
    #[arg(long, value_name = "J", value_parser = clap::value_parser!(u64).range(1..=256))]
    pub jobs: Option<u64>,
    /// The campaign folder (default: reports/campaigns/<start time>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Finish the campaign in DIR (killed or stopped before its end) with its own flags.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Run only the K-th of N disjoint slices of the seeds (seed s is in slice s % N + 1).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Each seed also draws its own topology and workload size (shards, clients, trade
    /// shards, payment nodes, ops up to --ops), printed with its run.
    #[arg(long)]
    pub swarm_config: bool,
    /// Every run uses this saved fault plan instead of its seed's own.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["faults", "no_faults", "swarm_config"])]
    pub plan: Option<PathBuf>,
    /// Re-run this percentage of the seeds (chosen by seed) in another process and compare
    /// trace hashes; a mismatch is the verdict NONDETERMINISM.
    #[arg(long, value_name = "PERCENT", default_value_t = 5.0, value_parser = parse_percent)]
    pub check_determinism: f64,
    /// Kill a run after this many wall seconds and record it as a hang.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub run_timeout: u64,
    /// Print nothing but the summary.
    #[arg(long)]
    pub quiet: bool,
    /// Write each failing seed as a regression-corpus entry (TOML) into this folder.
    #[arg(long, value_name = "DIR")]
    pub save_failures: Option<PathBuf>,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    match s.trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("'{s}' is not a percentage between 0 and 100")),
    }
}

/// Runs `paylab campaign`: exit 0 if every run passed, 1 if any failed, 2 on bad input.
pub fn campaign(args: CampaignArgs) -> ExitCode {
    match prepare(&args) {
        Ok(setup) => execute::execute(setup, &args),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// A campaign ready to run: its folder exists with its manifest.
pub struct Setup {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub records: Vec<results::RunRecord>,
    pub jobs: usize,
}

/// Checks every flag, then creates (or, with `--resume`, reopens) the campaign folder.
/// Nothing is written before every check has passed.
fn prepare(args: &CampaignArgs) -> Result<Setup, String> {
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |j| j as usize,
    );
    let (selection, asked) = requested(args)?;
    if let Some(dir) = &args.resume {
        let manifest = Manifest::read(dir)?;
        let default = selection.is_none() && asked == defaults();
        let same = selection.is_some_and(|s| {
            Manifest {
                selection: s,
                ..asked.clone()
            } == manifest
        });
        let other_out = args.out.as_ref().is_some_and(|o| o != dir);
        if !(default || same) || other_out {
            return Err(format!(
                "{} was made with other flags; resume it with --resume {} alone (plus --jobs, --quiet or --save-failures)",
                dir.display(),
                dir.display()
            ));
        }
        let records = results::read(dir, true).map_err(|e| e.to_string())?;
        return Ok(Setup {
            dir: dir.clone(),
            manifest,
            records,
            jobs,
        });
    }
    let selection =
        selection.ok_or("give the seeds to run: --seeds A..B, --count N or --time DURATION")?;
    let manifest = Manifest { selection, ..asked };
    let plan = match &args.plan {
        Some(path) => Some(
            FaultPlan::load(&path.display().to_string(), &manifest.config)
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let dir = args.out.clone().unwrap_or_else(default_dir);
    create(&dir, &manifest, plan.as_ref())?;
    Ok(Setup {
        dir,
        manifest,
        records: Vec::new(),
        jobs,
    })
}

/// The manifest the flags ask for (with a placeholder selection) and the selection, if any.
fn requested(args: &CampaignArgs) -> Result<(Option<Selection>, Manifest), String> {
    let config = args.config.clone().resolve();
    config.validate().map_err(|e| e.to_string())?;
    if config.seed != 0 {
        return Err(
            "a campaign takes its seeds from --seeds, --count or --time, not --seed".into(),
        );
    }
    if args.swarm_config && (config.rate.is_some() || config.scenario.is_some()) {
        return Err("--swarm-config draws closed-loop sizes; it cannot be combined with --rate or --scenario".into());
    }
    let from = args.from.unwrap_or(0);
    let selection = match (args.seeds, args.count, args.time) {
        (Some(range), _, _) => Some(Selection::Range(range)),
        (None, Some(n), _) => {
            let end = from
                .checked_add(n)
                .ok_or("--from plus --count passes the last seed")?;
            Some(Selection::Range(SeedRange { start: from, end }))
        }
        (None, None, Some(budget_s)) => Some(Selection::Time { from, budget_s }),
        (None, None, None) if args.from.is_some() => {
            return Err("--from needs --count or --time".into())
        }
        (None, None, None) => None,
    };
    let placeholder = Selection::Range(SeedRange { start: 0, end: 1 });
    let manifest = Manifest {
        swarm_config: args.swarm_config,
        plan: args.plan.is_some(),
        check_determinism: args.check_determinism,
        run_timeout_s: args.run_timeout,
        ..Manifest::new(placeholder, args.shard, config)
    };
    Ok((selection, manifest))
}

/// What `requested` gives when no flag shaping the campaign was given.
fn defaults() -> Manifest {
    let placeholder = Selection::Range(SeedRange { start: 0, end: 1 });
    Manifest::new(placeholder, None, RunConfig::new(0))
}

/// Creates the campaign folder with its manifest (and saved plan); refuses a folder that
/// already holds a campaign.
fn create(dir: &Path, manifest: &Manifest, plan: Option<&FaultPlan>) -> Result<(), String> {
    if dir.join(manifest::FILE).exists() || dir.join(results::FILE).exists() {
        return Err(format!(
            "{} already holds a campaign; resume it with --resume {}",
            dir.display(),
            dir.display()
        ));
    }
    let cannot = |e: std::io::Error| format!("cannot write the campaign in {}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(cannot)?;
    if let Some(plan) = plan {
        let json = serde_json::to_string_pretty(plan).expect("a plan serializes");
        manifest::write_atomic(&dir.join(manifest::PLAN_FILE), json.as_bytes()).map_err(cannot)?;
    }
    manifest.write(dir).map_err(cannot)
}

/// `reports/campaigns/<UTC start time>`.
fn default_dir() -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "-");
    Path::new(DEFAULT_DIR).join(stamp)
}

//! `paylab compare`: consistency strategies side by side. Every strategy runs every seed of a
//! range with the same fault plan and the same client intents; per strategy, the runs that
//! passed, each invariant broken (as a finding when the strategy claims it, as its expected
//! anomaly when it does not) with its first seed and repro, the money at risk, pay latency,
//! payments per simulated second, RPCs and fsyncs per payment, and the time from the heal to
//! convergence. Written as `compare.md`, `compare.json` and a self-contained `compare.html`.
//!
//! - [`measure`]: the runs and each strategy's figures.
//! - [`render`]: Markdown and JSON.

pub mod measure;
pub mod render;

use crate::campaign::seeds::SeedRange;
use crate::explore;
use crate::RunConfig;
use paylab_system::strategy::StrategyKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const JS: &str = include_str!("page.js");

/// The flags of `paylab compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Every flag of `paylab run` that shapes a run (its `--strategy` and `--seed` are
    /// replaced by `--strategies` and `--seeds`).
    #[command(flatten)]
    pub config: RunConfig,
    /// The strategies, comma-separated, or `all`.
    #[arg(long, value_name = "LIST", default_value = "all", value_parser = parse_strategies)]
    pub strategies: Strategies,
    /// The seeds A..B (B excluded).
    #[arg(long, value_name = "A..B", default_value = "0..50")]
    pub seeds: SeedRange,
    /// Runs at once (default: the machine's cores).
    #[arg(long, value_name = "J", value_parser = clap::value_parser!(u64).range(1..=256))]
    pub jobs: Option<u64>,
    /// Where compare.md, compare.json and compare.html go (the default keeps clear of the
    /// committed reference comparison in reports/compare/).
    #[arg(long, value_name = "DIR", default_value = "reports/compare/latest")]
    pub out: PathBuf,
}

/// A list of strategies, each once, in the catalogue's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strategies(pub Vec<StrategyKind>);

/// Parses `all` or a comma-separated list of strategy names.
pub fn parse_strategies(text: &str) -> Result<Strategies, String> {
    if text.trim() == "all" {
        return Ok(Strategies(StrategyKind::ALL.to_vec()));
    }
    let mut picked = std::collections::BTreeSet::new();
    for name in text.split(',').map(str::trim) {
        picked.insert(name.parse::<StrategyKind>().map_err(|e| e.to_string())?);
    }
    if picked.is_empty() {
        return Err("--strategies needs at least one strategy".to_string());
    }
    Ok(Strategies(picked.into_iter().collect()))
}

/// Runs the comparison and writes its three files; exit 0, or 2 on bad input or an
/// unwritable folder.
pub fn compare(args: CompareArgs) -> ExitCode {
    match try_compare(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn try_compare(args: &CompareArgs) -> Result<(), String> {
    let base = args.config.clone().resolve();
    base.validate().map_err(|e| e.to_string())?;
    let seeds = args.seeds.start..args.seeds.end;
    if seeds.is_empty() {
        return Err(format!(
            "the seed range {}..{} is empty",
            seeds.start, seeds.end
        ));
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |j| j as usize,
    );
    let strategies = &args.strategies.0;
    let runs = strategies.len() as u64 * (seeds.end - seeds.start);
    eprintln!(
        "paylab compare: {} strategies x seeds {}..{} ({runs} runs) on {jobs} jobs",
        strategies.len(),
        seeds.start,
        seeds.end
    );
    let progress = |done: usize, all: usize| {
        if done.is_multiple_of((all / 10).max(1)) || done == all {
            eprintln!("compared {done} of {all} runs");
        }
    };
    let figures = measure::measure(strategies, seeds.clone(), &base, jobs, &progress);
    let header = render::Header {
        seeds,
        config: shared_config(&base),
    };
    let markdown = render::to_markdown(&header, &figures);
    let json = render::to_json(&header, &figures);
    write(&args.out, "compare.md", &markdown)?;
    let text = serde_json::to_string_pretty(&json).expect("the comparison serializes");
    write(&args.out, "compare.json", &text)?;
    write(&args.out, "compare.html", &page(&json))?;
    print!("{markdown}");
    for name in ["compare.md", "compare.json", "compare.html"] {
        println!("wrote {}", args.out.join(name).display());
    }
    Ok(())
}

/// The shared configuration's flags, without the seed and the strategy.
fn shared_config(base: &RunConfig) -> String {
    base.to_string()
        .split(' ')
        .filter(|f| !f.starts_with("strategy="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes a file whole or not at all.
fn write(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    let path = dir.join(name);
    explore::write_atomic(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The self-contained page: the shared explorer shell with the comparison's charts.
pub fn page(data: &serde_json::Value) -> String {
    let title = format!(
        "paylab compare: seeds {}",
        data["seeds"].as_str().unwrap_or("")
    );
    explore::shell(&title, BODY, "compare-data", data, JS)
}

/// The page's fixed skeleton; the script fills it from the data.
const BODY: &str = r#"<header><h1 id="headline"></h1><p id="summary"></p></header>
<section><h2>Figures</h2><table id="figures"></table></section>
<section><h2>Invariants broken (runs out of each strategy's runs)</h2><div id="chart-broken" class="chart"></div></section>
<section><h2>Pay latency, median of each run's p50 and p99 (simulated ms)</h2><div id="chart-latency" class="chart"></div></section>
<section><h2>Money at risk (CNY)</h2><div id="chart-money" class="chart"></div></section>
<section><h2>What each strategy broke</h2><div id="details"></div></section>
<div id="selftest" data-ready="0" data-errors="0" data-charts="0" data-strategies="0"></div>"#;

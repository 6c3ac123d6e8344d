//! `paylab report merge DIR... --out DIR`: the shards of one campaign (run on many machines)
//! merged into one campaign folder whose summary equals that of one machine running every
//! seed: the records of all shards, their failure reports, and the reports rebuilt.

use super::execute::{print_summary, write_reports};
use super::manifest::{self, Manifest};
use super::results::{self, RunRecord};
use super::FAILURES_DIR;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The flags of `paylab report merge`.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// The campaign folders to merge (the shards of one campaign).
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// The merged campaign folder (must not hold a campaign yet).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Runs the merge: exit 0 if every merged run passed, 1 if any failed, 2 on bad input.
pub fn merge(args: MergeArgs) -> ExitCode {
    let merged = read_all(&args.dirs).and_then(|(m, records)| {
        write_merged(&args.out, &args.dirs, &m, &records)?;
        write_reports(&args.out, &m, &records)
    });
    match merged {
        Ok(summary) => {
            print_summary(&args.out, &summary);
            ExitCode::from(if summary.passed() { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Every folder's manifest (one campaign, distinct shards) and records (each seed once).
fn read_all(dirs: &[PathBuf]) -> Result<(Manifest, Vec<RunRecord>), String> {
    let mut first: Option<Manifest> = None;
    let mut shards = BTreeSet::new();
    let mut seeds = BTreeSet::new();
    let mut records = Vec::new();
    for dir in dirs {
        let m = Manifest::read(dir)?;
        if let Some(f) = &first {
            if !f.same_campaign(&m) {
                return Err(format!(
                    "{} is another campaign ({}) than {} ({})",
                    dir.display(),
                    m.describe(),
                    dirs[0].display(),
                    f.describe()
                ));
            }
        }
        if !shards.insert(m.shard.map(|s| s.to_string())) {
            return Err(format!("{} repeats a shard already merged", dir.display()));
        }
        for r in results::read(dir, false).map_err(|e| e.to_string())? {
            if !seeds.insert(r.seed) {
                return Err(format!("seed {} is in two of the folders", r.seed));
            }
            records.push(r);
        }
        first.get_or_insert(m);
    }
    let m = first.ok_or("give the campaign folders to merge")?;
    records.sort_by_key(|r| r.seed);
    Ok((Manifest { shard: None, ..m }, records))
}

/// Creates the merged folder: manifest, plan, records in seed order, failure reports.
fn write_merged(
    out: &Path,
    dirs: &[PathBuf],
    m: &Manifest,
    records: &[RunRecord],
) -> Result<(), String> {
    if out.join(manifest::FILE).exists() || out.join(results::FILE).exists() {
        return Err(format!("{} already holds a campaign", out.display()));
    }
    let cannot =
        |e: std::io::Error| format!("cannot write the merged campaign in {}: {e}", out.display());
    std::fs::create_dir_all(out.join(FAILURES_DIR)).map_err(cannot)?;
    if m.plan {
        std::fs::copy(
            dirs[0].join(manifest::PLAN_FILE),
            out.join(manifest::PLAN_FILE),
        )
        .map_err(cannot)?;
    }
    for r in records {
        if let Some(report) = &r.report {
            let from = dirs.iter().map(|d| d.join(report)).find(|p| p.exists());
            if let Some(from) = from {
                std::fs::copy(&from, out.join(report)).map_err(cannot)?;
                // The report's explorer page, where the run wrote one, goes along with it.
                let page = from.with_extension("html");
                if page.exists() {
                    let to = out.join(report).with_extension("html");
                    std::fs::copy(page, to).map_err(cannot)?;
                }
            }
        }
    }
    let mut lines = String::new();
    for r in records {
        lines.push_str(&serde_json::to_string(r).expect("a record serializes"));
        lines.push('\n');
    }
    manifest::write_atomic(&out.join(results::FILE), lines.as_bytes()).map_err(cannot)?;
    m.write(out).map_err(cannot)
}

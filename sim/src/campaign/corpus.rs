//! The regression corpus: `seeds/*.toml`, one pinned case per file (the seed, the `paylab
//! run` flags, optionally a saved plan, the expected verdict and invariant, the probes it must
//! reach, and one sentence of why). `paylab replay seeds/` replays every entry and fails if
//! any verdict changed; `paylab campaign --save-failures seeds/` writes new entries.

use super::results::RunRecord;
use crate::plan::FaultPlan;
use crate::{run_with_plan, RunConfig, RunReport, Verdict};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// One pinned case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// One sentence: what this case pins and why it matters.
    pub why: String,
    pub seed: u64,
    /// The `paylab run` flags besides the seed (as a failure's `repro:` line has them).
    #[serde(default)]
    pub args: Vec<String>,
    /// A saved fault plan (JSON or TOML), relative to the entry's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_file: Option<String>,
    /// A fault plan written inline instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<FaultPlan>,
    /// The verdict: PASS, VIOLATION, LIVENESS or CRASH.
    pub expect: String,
    /// For a failure, the invariant that must be among those broken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invariant: Option<String>,
    /// Probes the run must fire (the corner a passing case pins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<String>,
}

/// An entry ready to run.
struct Loaded {
    name: String,
    entry: Entry,
    config: RunConfig,
    plan: FaultPlan,
}

/// The configuration and plan of one corpus entry (`seeds/*.toml`), validated: what
/// `paylab shrink` starts from when given an entry instead of a failure report.
pub fn case_of(path: &Path) -> Result<(RunConfig, FaultPlan), String> {
    load(path).map(|l| (l.config, l.plan))
}

/// Reads one entry and resolves its configuration and plan, or says why it cannot run.
fn load(path: &Path) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let entry: Entry = toml::from_str(&text)
        .map_err(|e| format!("{} is not a corpus entry: {}", path.display(), e.message()))?;
    let mut args = vec!["--seed".to_string(), entry.seed.to_string()];
    args.extend(entry.args.iter().cloned());
    let config = RunConfig::from_args(&args).map_err(|e| {
        format!(
            "{}: bad flags: {}",
            path.display(),
            first_line(&e.to_string())
        )
    })?;
    config
        .validate()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let plan = match (&entry.plan_file, &entry.plan) {
        (Some(file), _) => {
            let file = path.parent().unwrap_or(Path::new(".")).join(file);
            FaultPlan::load(&file.display().to_string(), &config).map_err(|e| e.to_string())?
        }
        (None, Some(plan)) => {
            plan.validate(&config)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            plan.clone()
        }
        (None, None) => FaultPlan::generate(&config),
    };
    if super::results::CampaignVerdict::from_word(&entry.expect).is_none() {
        return Err(format!(
            "{}: expect = '{}' is not a verdict",
            path.display(),
            entry.expect
        ));
    }
    let name = path
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    Ok(Loaded {
        name,
        entry,
        config,
        plan,
    })
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// The entries of a corpus folder (every `*.toml` in it, by name), or one entry file.
pub fn entries(path: &Path) -> Result<Vec<PathBuf>, String> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let dir =
        std::fs::read_dir(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut files: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{} holds no corpus entry (*.toml)", path.display()));
    }
    Ok(files)
}

/// How a replayed entry differs from what it expects (`None`: as expected).
fn difference(entry: &Entry, report: &RunReport) -> Option<String> {
    let mut broken: Vec<&str> = report
        .violations
        .iter()
        .map(|v| v.invariant.name())
        .collect();
    if matches!(report.verdict, Verdict::Liveness(_)) {
        broken.push("liveness");
    }
    if report.verdict.word() != entry.expect {
        return Some(format!(
            "expected {}, got {} ({})",
            entry.expect,
            report.verdict.word(),
            broken.join(", ")
        ));
    }
    if let Some(inv) = &entry.invariant {
        if !broken.contains(&inv.as_str()) {
            return Some(format!(
                "expected {inv} among the broken invariants, got {}",
                broken.join(", ")
            ));
        }
    }
    let missed: Vec<&str> = entry
        .probes
        .iter()
        .filter(|p| report.probe(p) == 0)
        .map(String::as_str)
        .collect();
    (!missed.is_empty()).then(|| format!("probes never fired: {}", missed.join(", ")))
}

/// `paylab replay DIR|FILE.toml`: every entry replayed (two at a time on two cores), one line
/// each; exit 0 if every verdict is as expected, 1 if any changed, 2 on a bad entry.
pub fn replay(path: &Path) -> ExitCode {
    let loaded: Result<Vec<Loaded>, String> =
        entries(path).and_then(|files| files.iter().map(|f| load(f)).collect());
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let diffs = crate::pool::run_all(
        &loaded,
        jobs,
        |l| difference(&l.entry, &run_with_plan(l.config.clone(), l.plan.clone())),
        &|_, _| {},
    );
    let mut changed = 0;
    for (l, diff) in loaded.iter().zip(diffs) {
        match diff {
            None => say!("same     {}: {}", l.name, l.entry.expect),
            Some(d) => {
                changed += 1;
                say!(
                    "CHANGED  {}: {d}\n  repro: cargo run --release -- run {}",
                    l.name,
                    l.config.to_args().join(" ")
                );
            }
        }
    }
    say!(
        "replay: {} entries, {} as expected, {changed} changed",
        loaded.len(),
        loaded.len() - changed
    );
    ExitCode::from(if changed == 0 { 0 } else { 1 })
}

/// Writes a failing run as a new entry (with its seed's plan saved beside it, so it replays
/// the same faults after the plan generator changed); an entry already there is kept.
pub fn save(dir: &Path, r: &RunRecord) -> Result<PathBuf, String> {
    let word = r.verdict.word();
    if !matches!(word, "VIOLATION" | "LIVENESS" | "CRASH") {
        return Err(format!(
            "seed {}: a {word} verdict does not replay in one process; not saved",
            r.seed
        ));
    }
    let generated = FaultPlan::generate(&r.config);
    let stem = crate::report::file_name(&r.config, &generated)
        .trim_end_matches(".json")
        .to_string();
    let path = dir.join(format!("{stem}.toml"));
    if path.exists() {
        return Err(format!("{} already exists; kept as it is", path.display()));
    }
    let plan_name = format!("{stem}.plan.json");
    let entry = Entry {
        why: format!(
            "A campaign found seed {} failing {word} ({}); pinned so that the fix stays fixed.",
            r.seed,
            r.invariants.join(", ")
        ),
        seed: r.seed,
        args: r.config.to_args().into_iter().skip(2).collect(),
        plan_file: Some(plan_name.clone()),
        plan: None,
        expect: word.to_string(),
        invariant: r.invariants.first().cloned(),
        probes: Vec::new(),
    };
    let cannot = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    std::fs::create_dir_all(dir).map_err(cannot)?;
    let plan = serde_json::to_string_pretty(&generated).expect("a plan serializes");
    super::manifest::write_atomic(&dir.join(plan_name), plan.as_bytes()).map_err(cannot)?;
    let text =
        toml::to_string(&entry).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    super::manifest::write_atomic(&path, text.as_bytes()).map_err(cannot)?;
    Ok(path)
}

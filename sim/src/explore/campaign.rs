//! The campaign page: `DIR/summary.html`, made by the explorer's renderer (the same shell,
//! stylesheet and self-test) from the campaign's summary and its per-run records. It shows the
//! campaign's flags and seeds, the runs per verdict, every failing seed with its broken
//! invariants, repro command and a link to its failure report's explorer page, the coverage
//! table (never-fired fault kinds and probes marked untested) and a strip of one cell per seed
//! coloured by verdict (a canvas: 10,000 seeds draw at once; hover or click shows a seed).

use crate::campaign::manifest;
use crate::campaign::results::{self, CampaignVerdict, RunRecord};
use crate::campaign::summary::{self, Summary};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const JS: &str = include_str!("campaign.js");

/// The page, beside `summary.md` in the campaign folder.
pub const HTML_FILE: &str = "summary.html";

/// Whether `dir` holds a campaign (its manifest or its summary).
pub fn is_campaign(dir: &Path) -> bool {
    dir.join(manifest::FILE).is_file() || dir.join(summary::JSON_FILE).is_file()
}

/// The page's data. Links to explorer pages are `link_base` joined to the report's path
/// inside the campaign folder `dir` (empty: relative to a page in `dir`), and only for a page
/// that exists.
pub fn data(summary: &Summary, records: &[RunRecord], dir: &Path, link_base: &str) -> Value {
    let failures: Vec<Value> = summary
        .failures
        .iter()
        .map(|f| {
            let page = f
                .report
                .as_deref()
                .map(|r| Path::new(r).with_extension("html"))
                .filter(|p| dir.join(p).is_file())
                .map(|p| format!("{link_base}{}", p.display()));
            json!({
                "seed": f.seed, "verdict": f.verdict.word(), "invariants": f.invariants,
                "detail": f.detail, "repro": f.repro, "report": f.report, "page": page,
            })
        })
        .collect();
    let coverage: Vec<Value> = summary
        .coverage
        .iter()
        .map(|c| json!({"name": c.name, "kind": c.kind, "runs": c.runs, "untested": c.runs == 0}))
        .collect();
    json!({
        "campaign": summary.campaign,
        "runs": summary.runs,
        "simulated_ms": summary.simulated_ms,
        "verdict_words": CampaignVerdict::ALL.iter().map(|v| v.word()).collect::<Vec<_>>(),
        "verdicts": summary.verdicts,
        "failures": failures,
        "coverage": coverage,
        "untested": summary.untested,
        "seeds": strip(records),
    })
}

/// One cell per run in seed order: seeds, verdicts (indices into `CampaignVerdict::ALL`) and
/// repro commands as parallel arrays (a page of 10,000 seeds stays about a megabyte).
fn strip(records: &[RunRecord]) -> Value {
    let mut sorted: Vec<&RunRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.seed);
    let index = |v: CampaignVerdict| CampaignVerdict::ALL.iter().position(|w| *w == v);
    json!({
        "seed": sorted.iter().map(|r| r.seed).collect::<Vec<_>>(),
        "verdict": sorted.iter().map(|r| index(r.verdict)).collect::<Vec<_>>(),
        "repro": sorted.iter().map(|r| r.repro.as_str()).collect::<Vec<_>>(),
    })
}

/// The whole page.
pub fn page(summary: &Summary, records: &[RunRecord], dir: &Path, link_base: &str) -> String {
    let failing = summary.failures.len();
    let title = format!("paylab campaign: {} runs, {failing} failing", summary.runs);
    let blob = data(summary, records, dir, link_base);
    super::shell(&title, BODY, "campaign-data", &blob, JS)
}

/// The page's fixed skeleton; the script fills it from the data.
const BODY: &str = r#"<header><h1 id="headline"></h1><p id="summary"></p><p id="subtitle"></p></header>
<section id="counts-box"><h2>Runs per verdict</h2><table id="counts"></table></section>
<section id="strip-box"><h2 id="strip-title">Every seed</h2><div id="strip-legend"></div>
<div id="strip-wrap"><canvas id="strip"></canvas><div id="tip" hidden></div></div>
<pre id="cell-detail">Hover over a cell to see its seed; click to keep it here.</pre></section>
<section id="failures-box"><h2 id="failures-title">Failing seeds</h2><table id="failures"></table></section>
<section id="coverage-box"><h2>Coverage</h2><p id="coverage-note"></p><table id="coverage"></table></section>
<div id="selftest" data-ready="0" data-errors="0" data-failures="0" data-untested="0" data-cells="0"></div>"#;

/// Writes the page of the campaign in `dir` as `DIR/summary.html`, whole or not at all.
pub fn write(dir: &Path, summary: &Summary, records: &[RunRecord]) -> Result<PathBuf, String> {
    let path = dir.join(HTML_FILE);
    super::write_atomic(&path, &page(summary, records, dir, ""))
        .map(|()| path.clone())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The summary and records of the campaign in `dir`: its `summary.json` (or, for a campaign
/// stopped before writing one, the summary of its records) and its `results.jsonl`. The error
/// is one sentence.
pub fn load(dir: &Path) -> Result<(Summary, Vec<RunRecord>), String> {
    if !is_campaign(dir) {
        return Err(format!(
            "{} is a folder but not a paylab campaign (no {} or {})",
            dir.display(),
            manifest::FILE,
            summary::JSON_FILE
        ));
    }
    let records = results::read(dir, false).map_err(|e| e.to_string())?;
    let path = dir.join(summary::JSON_FILE);
    let summary = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a campaign summary: {e}", path.display()))?,
        Err(_) => summary::summarize(&manifest::Manifest::read(dir)?, &records),
    };
    Ok((summary, records))
}

/// Where links to the explorer pages of the failure reports point from a page written at
/// `out`: nothing (relative) when the page is in the campaign folder, else the folder's path.
pub fn link_base(dir: &Path, out: &Path) -> String {
    let folder = |p: &Path| std::fs::canonicalize(p).ok();
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
    let here = folder(parent.unwrap_or(Path::new(".")));
    match folder(dir) {
        Some(d) if here.as_ref() == Some(&d) => String::new(),
        Some(d) => format!("{}/", d.display()),
        None => format!("{}/", dir.display()),
    }
}

#[cfg(test)]
#[path = "campaign_tests.rs"]
mod tests;

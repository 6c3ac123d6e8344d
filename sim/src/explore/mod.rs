//! The failure explorer: one self-contained HTML page per failed run (no network: its CSS and
//! script are inlined from `page.css` and `page.js`, its data is a JSON blob in the page).
//!
//! The page says the verdict and the broken invariant with its evidence in plain words, draws a
//! timeline (a lane for the cluster-wide faults, one per serving node, one per client:
//! operations as bars from invoke to completion coloured by outcome, faults as shaded windows,
//! the operations the violations name highlighted), lists the named operations and the probes,
//! and gives the exact repro command. A canvas with zoom and pan keeps 10,000 operations
//! readable.
//!
//! [`campaign`] makes the campaign page with the same shell, stylesheet and self-test.

pub mod campaign;
pub mod cli;
pub mod data;
mod words;

use crate::run::{run_recorded, RecordedRun};
use serde_json::json;
use std::path::{Path, PathBuf};

const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");
/// The self-test every page shares (`window.paylabFail`), inlined before the page's script.
const SELFTEST: &str = include_str!("selftest.js");

/// The page of a recorded run, with `repro` as the command that replays it.
pub fn page(run: &RecordedRun, repro: &str) -> String {
    let lanes = data::lanes(run);
    let named = data::named(run);
    let r = &run.report;
    let blob = json!({
        "verdict": r.verdict.word(),
        "headline": words::headline(r),
        "explanations": words::explanations(r),
        "bug": r.config.bug.map(|b| json!({"name": b.name(), "breaks": b.breaks(), "caught_by": b.caught_by()})),
        "seed": r.config.seed,
        "config": r.config.to_string(),
        "plan": r.plan.events.iter().map(|e| format!("after {} ops: {}", e.after_ops, e.fault)).collect::<Vec<_>>(),
        "repro": repro,
        "sim_ms": r.sim_ms,
        "healed_ms": data::healed_ms(run),
        "ops_total": run.history.len(),
        "lanes": lanes,
        "ops": data::op_rows(run, &lanes, &named),
        "windows": data::windows(run, &lanes),
        "named": named,
        "seen": data::seen(run),
        "probes": r.probes,
    });
    let title = format!("paylab seed {}: {}", r.config.seed, words::headline(r));
    shell(&title, BODY, "run-data", &blob, JS)
}

/// The HTML shell every page shares: the title, the shared stylesheet, the page's fixed
/// skeleton `body`, its data as JSON in a `<script type="application/json" id=data_id>`, and
/// its script `js`, after the self-test script every page shares.
pub(crate) fn shell(
    title: &str,
    body: &str,
    data_id: &str,
    data: &serde_json::Value,
    js: &str,
) -> String {
    // Inside a <script> element nothing may read as a tag: `<` only appears in JSON strings,
    // where its escape means the same.
    let blob = serde_json::to_string(data)
        .expect("the page data serializes")
        .replace('<', "\\u003c");
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title}</title><style>{CSS}</style></head>\n<body>\n{body}\n\
         <script type=\"application/json\" id=\"{data_id}\">{blob}</script>\n\
         <script>{SELFTEST}</script>\n<script>{js}</script>\n</body></html>\n",
        title = escape(title),
    )
}

/// The page's fixed skeleton; the script fills it from the data.
const BODY: &str = r#"<header><h1 id="headline"></h1><p id="summary"></p><p id="subtitle"></p>
<pre id="repro"></pre></header>
<section id="timeline-box"><div id="controls"><b>Timeline</b><button id="zoom-in">zoom in</button>
<button id="zoom-out">zoom out</button><button id="zoom-fit">fit</button>
<button id="zoom-named">zoom to the named operations</button><span id="legend"></span><span id="range"></span></div>
<div id="timeline"><div id="lane-labels"></div><div id="canvas-box"><canvas id="canvas"></canvas>
<div id="tip" hidden></div></div></div></section>
<section id="what"><h2>What broke</h2><div id="explanations"></div></section>
<section id="named-box"><h2>The operations the violations name</h2><table id="named-ops"></table></section>
<section id="faults-box"><h2>Faults</h2><table id="faults"></table></section>
<section id="probes-box"><h2>Probes</h2><table id="probes"></table></section>
<div id="selftest" data-ready="0" data-errors="0" data-lanes="0" data-highlighted="0"></div>"#;

/// Text made safe inside HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page's file next to a failure report: the same name, ending in `.html`.
pub fn html_path(report: &Path) -> PathBuf {
    report.with_extension("html")
}

/// Writes `html` to `path` whole or not at all (a temporary file, then a rename).
pub fn write_atomic(path: &Path, html: &str) -> std::io::Result<()> {
    let partial = path.with_extension("html.partial");
    let written = std::fs::write(&partial, html).and_then(|()| std::fs::rename(&partial, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// The most operations a page draws: beyond, the page would weigh more than a browser holds.
pub const OPS_MAX: usize = 200_000;

/// Writes the page of a recorded run next to its failure report at `report_path`.
pub fn write_recorded(report_path: &Path, run: &RecordedRun) -> Result<PathBuf, String> {
    let repro = format!("cargo run --release -- replay {}", report_path.display());
    let path = html_path(report_path);
    write_atomic(&path, &page(run, &repro))
        .map(|()| path.clone())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The largest failed run whose page is drawn as soon as its report is written: drawing a page
/// re-runs the run, so a larger one would cost its failure twice (a failed peak run of 0.4
/// simulated seconds spent 34 s running and 47 s more on its page). Its page is one command
/// away (`paylab report html`), up to [`OPS_MAX`].
pub const AUTO_OPS_MAX: usize = 20_000;

/// Re-runs a failed run (runs are deterministic) to record it whole, and writes its page next
/// to its failure report; a run of more than [`AUTO_OPS_MAX`] operations gets no page here.
pub fn write_next_to(report_path: &Path, report: &crate::RunReport) -> Result<PathBuf, String> {
    let ops = report.ops.ok + report.ops.fail + report.ops.unknown;
    drawn_at_once(ops, report_path)?;
    let run = run_recorded(report.config.clone(), report.plan.clone());
    write_recorded(report_path, &run)
}

/// Whether a failed run of `ops` operations gets its page with its report; if not, why, and
/// how to draw it.
fn drawn_at_once(ops: usize, report_path: &Path) -> Result<(), String> {
    if ops > OPS_MAX {
        return Err(format!("{ops} operations; a page draws at most {OPS_MAX}"));
    }
    if ops > AUTO_OPS_MAX {
        return Err(format!(
            "{ops} operations: the page re-runs the run; `paylab report html {}` draws it",
            report_path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_failed_run_names_the_command_that_draws_its_page() {
        let report = Path::new("reports/failures/seed-0-x.json");
        assert_eq!(drawn_at_once(AUTO_OPS_MAX, report), Ok(()));
        let why = drawn_at_once(AUTO_OPS_MAX + 1, report).unwrap_err();
        assert!(
            why.contains("paylab report html reports/failures/seed-0-x.json"),
            "{why}"
        );
        let why = drawn_at_once(OPS_MAX + 1, report).unwrap_err();
        assert!(why.contains("at most"), "{why}");
    }
}

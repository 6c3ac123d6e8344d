//! `paylab report html REPORT [--out FILE]`, and `paylab report html DIR [--out FILE]` for
//! a campaign folder (its page, `DIR/summary.html` unless `--out` says otherwise).

use super::{campaign, html_path, page, write_atomic};
use crate::report;
use crate::run::run_recorded;
use std::path::Path;

/// Re-runs the report's case, writes its page; returns the exit code (0 written, 2 bad input
/// or an unwritable page).
pub fn html(file: &Path, out: Option<&Path>) -> u8 {
    if file.is_dir() {
        return campaign_html(file, out);
    }
    let saved = match report::load(file) {
        Ok(saved) => saved,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let valid = saved.config.validate().map_err(|e| e.to_string());
    if let Err(e) = valid.and_then(|()| {
        saved
            .plan
            .validate(&saved.config)
            .map_err(|e| e.to_string())
    }) {
        eprintln!("error: the report's run cannot be replayed: {e}");
        return 2;
    }
    let run = run_recorded(saved.config, saved.plan);
    if run.history.len() > super::OPS_MAX {
        eprintln!(
            "error: the run has {} operations; a page draws at most {}",
            run.history.len(),
            super::OPS_MAX
        );
        return 2;
    }
    if run.report.verdict.word() != saved.verdict.word() {
        eprintln!(
            "warning: the report says {}, the run now gives {}: the page shows the run as it is now",
            saved.verdict.word(),
            run.report.verdict.word()
        );
    }
    let repro = format!("cargo run --release -- replay {}", file.display());
    let path = out.map_or_else(|| html_path(file), Path::to_path_buf);
    match write_atomic(&path, &page(&run, &repro)) {
        Ok(()) => {
            println!(
                "explorer: {} ({} operations, {} fault events, {})",
                path.display(),
                run.history.len(),
                run.faults.len(),
                run.report.verdict.word()
            );
            0
        }
        Err(e) => {
            eprintln!("error: cannot write the page {}: {e}", path.display());
            2
        }
    }
}

/// The campaign page of the folder `dir`; returns the exit code (0 written, 2 not a campaign,
/// unreadable or unwritable). Nothing is written on an error.
fn campaign_html(dir: &Path, out: Option<&Path>) -> u8 {
    let (summary, records) = match campaign::load(dir) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let path = out.map_or_else(|| dir.join(campaign::HTML_FILE), Path::to_path_buf);
    let base = campaign::link_base(dir, &path);
    match write_atomic(&path, &campaign::page(&summary, &records, dir, &base)) {
        Ok(()) => {
            println!(
                "campaign page: {} ({} runs, {} failing, {} untested)",
                path.display(),
                summary.runs,
                summary.failures.len(),
                summary.untested.len()
            );
            0
        }
        Err(e) => {
            eprintln!("error: cannot write the page {}: {e}", path.display());
            2
        }
    }
}

//! `paylab report html REPORT [--out FILE]`.

use super::{html_path, page, write_atomic};
use crate::report;
use crate::run::run_recorded;
use std::path::Path;

/// Re-runs the report's case, writes its page; returns the exit code (0 written, 2 bad input
/// or an unwritable page).
pub fn html(file: &Path, out: Option<&Path>) -> u8 {
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

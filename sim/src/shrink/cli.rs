//! The `paylab shrink` command: reads a failure report or a corpus entry (`seeds/*.toml`), shrinks it, prints each accepted step,
//! writes the shrunk case as a failure report (with its explorer page) and a `repro:` line.

use super::candidates::Case;
use super::{ops_of, shrink, Options, Shrunk, Step};
use crate::report;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `--budget`: a wall-time budget such as `60s`, `2m`, `1500ms` or `90` (seconds).
pub fn parse_budget(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => s.split_at(at),
        None => (s, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 60s, 2m or 1500ms"))?;
    let secs = match unit {
        "ms" => value / 1_000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3_600.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (ms, s, m or h)")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!("'{s}' must be more than zero and at most a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Prints a line, ignoring a closed pipe (`paylab shrink ... | head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Runs the command; returns the exit code (0 shrunk, 2 bad input).
pub fn run(file: &Path, options: Options, out_dir: Option<PathBuf>) -> u8 {
    let case = match load(file) {
        Ok(case) => case,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    say!(
        "paylab shrink {} (seed={} {}), budget {:.0}s, {} jobs",
        file.display(),
        case.config.seed,
        case.config,
        options.budget.as_secs_f64(),
        options.jobs
    );
    let mut print = |s: &Step| {
        say!(
            "step: {:<48} -> {} faults, {} operations  (run {}, {:.1}s)",
            s.what,
            s.faults,
            s.ops,
            s.runs,
            s.wall.as_secs_f64()
        )
    };
    let shrunk = match shrink(case, options, &mut print) {
        Ok(shrunk) => shrunk,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    print_result(&shrunk);
    let dir = out_dir.unwrap_or_else(|| default_dir(file));
    match report::write(&dir, &shrunk.report) {
        Ok(path) => {
            say!("report: {}", path.display());
            match crate::explore::write_next_to(&path, &shrunk.report) {
                Ok(html) => say!("explorer: {}", html.display()),
                Err(why) => say!("explorer: none ({why})"),
            }
            say!("repro: cargo run --release -- replay {}", path.display());
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

/// The report's case, if it is a report whose run can be replayed.
fn load(file: &Path) -> Result<Case, String> {
    if file.extension().is_some_and(|x| x == "toml") {
        let (config, plan) = crate::campaign::corpus::case_of(file)?;
        return Ok(Case { config, plan });
    }
    let saved = report::load(file).map_err(|e| e.to_string())?;
    let replayable = |e: String| format!("the report's run cannot be replayed: {e}");
    saved
        .config
        .validate()
        .map_err(|e| replayable(e.to_string()))?;
    saved
        .plan
        .validate(&saved.config)
        .map_err(|e| replayable(e.to_string()))?;
    Ok(Case {
        config: saved.config,
        plan: saved.plan,
    })
}

/// What the search found: the sizes before and after, the case, its violations, the cost.
fn print_result(shrunk: &Shrunk) {
    let r = &shrunk.report;
    say!("target: {}", shrunk.target.describe());
    let ending = if shrunk.exhausted {
        "budget spent"
    } else {
        "nothing smaller fails"
    };
    say!(
        "shrunk: {} faults, {} operations -> {} faults, {} operations ({} steps, {ending})",
        shrunk.original.plan.events.len(),
        ops_of(&shrunk.original),
        r.plan.events.len(),
        ops_of(r),
        shrunk.steps.len(),
    );
    if r.config.seed != shrunk.original.config.seed {
        say!(
            "note: the smallest case found runs seed {} (the report's seed {} needed more operations)",
            r.config.seed,
            shrunk.original.config.seed
        );
    }
    say!("config: {}", r.config);
    for e in &r.plan.events {
        say!("fault: after {} ops: {}", e.after_ops, e.fault);
    }
    for v in r.violations.iter().take(5) {
        say!("violation: {v}");
    }
    say!(
        "runs: {}  wall: {:.1}s",
        shrunk.runs,
        shrunk.wall.as_secs_f64()
    );
}

/// Next to the input: its folder's `shrunk/` subfolder.
fn default_dir(file: &Path) -> PathBuf {
    file.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("shrunk")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_with_units_and_bad_ones_are_refused() {
        assert_eq!(parse_budget("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_budget("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_budget("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_budget("90"), Ok(Duration::from_secs(90)));
        for bad in ["", "0s", "-3s", "ten", "5 parsecs", "2d"] {
            assert!(parse_budget(bad).is_err(), "{bad}");
        }
    }
}

//! A campaign's progress: an indicatif bar on a terminal (runs done of the total, or time
//! left of a `--time` budget; runs per second; failures so far), a plain line every few
//! seconds when stdout is not a terminal, nothing with `--quiet`. Lines about single runs
//! (a failure, a swarm configuration) go above the bar.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often a plain progress line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    mode: Mode,
    started: Instant,
    total: Option<u64>,
    budget: Option<Duration>,
}

enum Mode {
    Bar(ProgressBar),
    Plain { last: Instant },
    Quiet,
}

impl Progress {
    /// `total`: runs to do, if known; `budget`: the wall-time budget of a `--time` campaign.
    pub fn new(quiet: bool, total: Option<u64>, budget: Option<Duration>) -> Self {
        let started = Instant::now();
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stdout().is_terminal() {
            let bar = match total {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::new(budget.map_or(0, |b| b.as_secs())),
            };
            let template = match total {
                Some(_) => "{bar:40} {pos}/{len} runs, eta {eta}, {msg}",
                None => "{bar:40} {elapsed} of the budget, {msg}",
            };
            bar.set_style(ProgressStyle::with_template(template).expect("a valid template"));
            Mode::Bar(bar)
        } else {
            Mode::Plain { last: started }
        };
        Progress {
            mode,
            started,
            total,
            budget,
        }
    }

    /// A line about one run, above the bar.
    pub fn line(&self, text: &str) {
        match &self.mode {
            Mode::Bar(bar) => bar.println(text),
            Mode::Plain { .. } => {
                let _ = writeln!(std::io::stdout(), "{text}");
            }
            Mode::Quiet => {}
        }
    }

    /// One more run finished; `done` and `failed` count every run so far.
    pub fn tick(&mut self, done: u64, failed: u64) {
        let elapsed = self.started.elapsed();
        let per_s = done as f64 / elapsed.as_secs_f64().max(1e-3);
        match &mut self.mode {
            Mode::Bar(bar) => {
                let msg = match self.total {
                    Some(_) => {
                        bar.set_position(done);
                        format!("{per_s:.1} runs/s, {failed} failed")
                    }
                    None => {
                        bar.set_position(elapsed.as_secs());
                        format!("{done} runs, {per_s:.1} runs/s, {failed} failed")
                    }
                };
                bar.set_message(msg);
            }
            Mode::Plain { last } => {
                if last.elapsed() >= PLAIN_EVERY {
                    *last = Instant::now();
                    let of = match (self.total, self.budget) {
                        (Some(n), _) => format!("{done}/{n} runs"),
                        (None, Some(b)) => {
                            format!("{done} runs, {} s of {} s", elapsed.as_secs(), b.as_secs())
                        }
                        (None, None) => format!("{done} runs"),
                    };
                    let _ = writeln!(
                        std::io::stdout(),
                        "progress: {of}, {per_s:.1} runs/s, {failed} failed"
                    );
                }
            }
            Mode::Quiet => {}
        }
    }

    pub fn finish(&self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}

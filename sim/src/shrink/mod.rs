//! `paylab shrink`: from a failing run to a smaller one that fails the same way.
//!
//! A case is a configuration and a fault plan. The search keeps the seed (which fixes every
//! client's stream, so fewer operations per client is a prefix of the same workload) and tries,
//! in rounds until nothing more helps or the budget is spent: no faults at all; each fault
//! alone; delta debugging over the fault list ([`ddmin`]); fewer operations, clients, shards
//! and nodes ([`candidates::config_knobs`]); a simpler mix; simpler faults (shorter windows,
//! clean crashes, narrower partitions, faults moved later); once, as a last resort, other
//! seeds. A second search does the same with the configuration first; the smaller result wins. A candidate is accepted when its run fails with
//! the same verdict and the same broken invariant ([`eval::Target`]). Candidates run `jobs` at
//! a time; the first acceptable one in a fixed order wins, so the result does not depend on
//! the number of jobs.

pub mod candidates;
pub mod cli;
pub mod ddmin;
pub mod eval;

use crate::plan::FaultEvent;
use crate::run::{run_with_plan, RunReport};
use crate::RunConfig;
use candidates::{Candidate, Case};
use eval::{Evaluator, Target};
use std::time::{Duration, Instant};

/// How far the search may go.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub budget: Duration,
    pub jobs: usize,
    /// Whether the search may, as a last resort, try other seeds (another workload stream)
    /// in the smallest topology.
    pub reseed: bool,
}

/// How many other seeds the last resort tries.
pub const RESEEDS: u64 = 64;

/// One accepted simplification and the size of the case after it.
#[derive(Debug, Clone)]
pub struct Step {
    pub what: String,
    pub faults: usize,
    pub ops: usize,
    pub runs: usize,
    pub wall: Duration,
}

/// What a search found.
#[derive(Debug, Clone)]
pub struct Shrunk {
    pub target: Target,
    /// The original run (re-run: the size it started from).
    pub original: RunReport,
    /// The smallest failing run found (the original's if nothing smaller fails).
    pub report: RunReport,
    pub steps: Vec<Step>,
    pub runs: usize,
    pub wall: Duration,
    /// Whether the budget ran out before the search had tried everything.
    pub exhausted: bool,
}

/// Why a search could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShrinkError {
    #[error("the report's run passes now (it does not reproduce): nothing to shrink")]
    Passes,
}

/// Operations a run's history holds (ok, failed and unknown, account openings included).
pub fn ops_of(report: &RunReport) -> usize {
    report.ops.ok + report.ops.fail + report.ops.unknown
}

/// The size a search minimises: operations, and ten per fault.
pub fn size(report: &RunReport) -> usize {
    ops_of(report) + 10 * report.plan.events.len()
}

/// Shrinks `start`, which must fail; calls `on_step` for each accepted simplification.
///
/// Two searches from the start, the second only if the budget allows: faults first (drop
/// them, then shrink the configuration), then the configuration first (with every fault still
/// in place). Runs are chaotic in their faults, so each order reaches cases the other cannot;
/// the smaller result ([`size`]) wins, the first on a tie.
pub fn shrink(
    start: Case,
    options: Options,
    on_step: &mut dyn FnMut(&Step),
) -> Result<Shrunk, ShrinkError> {
    let started = Instant::now();
    let original = run_with_plan(start.config.clone(), start.plan.clone());
    if original.verdict.exit_code() == 0 {
        return Err(ShrinkError::Passes);
    }
    let target = Target::of(&original);
    let mut eval = Evaluator::new(target.clone(), options.jobs, started + options.budget);
    eval.runs += 1;
    let mut best: Option<(RunReport, Vec<Step>)> = None;
    for config_first in [false, true] {
        if eval.exhausted {
            break;
        }
        let mut search = Search {
            eval: &mut eval,
            case: start.clone(),
            report: original.clone(),
            steps: Vec::new(),
            started,
            reseed: options.reseed,
            config_first,
            on_step: &mut *on_step,
        };
        search.rounds();
        let (report, steps) = (search.report, search.steps);
        if best.as_ref().is_none_or(|(b, _)| size(&report) < size(b)) {
            best = Some((report, steps));
        }
    }
    let (report, steps) = best.expect("the first search always runs");
    Ok(Shrunk {
        target,
        original,
        report,
        steps,
        runs: eval.runs,
        wall: started.elapsed(),
        exhausted: eval.exhausted,
    })
}

/// The state of one search: the smallest failing case so far and its run.
struct Search<'a> {
    eval: &'a mut Evaluator,
    case: Case,
    report: RunReport,
    steps: Vec<Step>,
    started: Instant,
    reseed: bool,
    /// The configuration's knobs before the faults in each round.
    config_first: bool,
    on_step: &'a mut dyn FnMut(&Step),
}

impl Search<'_> {
    /// Rounds of every pass until one round accepts nothing (or time is up).
    fn rounds(&mut self) {
        self.eval.ops_at_most = Some(ops_of(&self.report));
        let mut reseeded = !self.reseed;
        loop {
            let before = self.steps.len();
            if self.config_first {
                self.greedy(candidates::config_knobs);
            }
            self.no_faults();
            self.greedy(candidates::single_faults);
            self.fault_list();
            self.greedy(candidates::config_knobs);
            self.greedy(candidates::simpler_mix);
            self.greedy(candidates::simpler_faults);
            if self.eval.exhausted {
                return;
            }
            if self.steps.len() == before {
                if reseeded {
                    return;
                }
                reseeded = true;
                self.other_seed();
            }
        }
    }

    /// The last resort, once: the same plan under another seed (another workload stream) in
    /// the smallest topology, accepted only with strictly fewer operations.
    fn other_seed(&mut self) {
        let cands = candidates::other_seeds(&self.case, RESEEDS);
        let cases: Vec<Case> = cands.iter().map(|c| c.case.clone()).collect();
        self.eval.ops_below = Some(ops_of(&self.report));
        let found = self.eval.first_failing(&cases);
        self.eval.ops_below = None;
        if let Some((i, report)) = found {
            let Candidate { what, case } = cands[i].clone();
            self.accept(what, case, report);
        }
    }

    /// Accepts a candidate's run as the new smallest case.
    fn accept(&mut self, what: String, case: Case, report: RunReport) {
        self.accept_at(what, case, report, self.eval.runs);
    }

    /// Accepts a candidate found after `runs` runs.
    fn accept_at(&mut self, what: String, case: Case, report: RunReport, runs: usize) {
        self.case = case;
        self.report = report;
        self.eval.ops_at_most = Some(ops_of(&self.report));
        let step = Step {
            what: if self.config_first {
                format!("[config first] {what}")
            } else {
                what
            },
            faults: self.case.plan.events.len(),
            ops: ops_of(&self.report),
            runs,
            wall: self.started.elapsed(),
        };
        (self.on_step)(&step);
        self.steps.push(step);
    }

    /// Tries the case without any fault.
    fn no_faults(&mut self) {
        if self.case.plan.events.is_empty() {
            return;
        }
        // `--no-faults` in the configuration too, so that its own `repro:` flags say so.
        let case = Case {
            config: RunConfig {
                faults: Some(Vec::new()),
                ..self.case.config.clone()
            },
            plan: crate::plan::FaultPlan::none(),
        };
        if let Some((_, report)) = self.eval.first_failing(std::slice::from_ref(&case)) {
            let what = format!("drop all {} faults", self.case.plan.events.len());
            self.accept(what, case, report);
        }
    }

    /// Applies `pass` again and again, accepting its first failing candidate each time, until
    /// none fails.
    fn greedy(&mut self, pass: fn(&Case) -> Vec<Candidate>) {
        while !self.eval.exhausted {
            let cands = pass(&self.case);
            let cases: Vec<Case> = cands.iter().map(|c| c.case.clone()).collect();
            let Some((i, report)) = self.eval.first_failing(&cases) else {
                return;
            };
            let Candidate { what, case } = cands[i].clone();
            self.accept(what, case, report);
        }
    }

    /// Delta debugging over the fault events.
    fn fault_list(&mut self) {
        let events = self.case.plan.events.clone();
        if events.len() < 2 {
            return;
        }
        let config = self.case.config.clone();
        let base = self.case.plan.clone();
        // Each list ddmin accepts, with its run: accepted in order once the search is over.
        let mut accepted: Vec<(Vec<FaultEvent>, RunReport, usize)> = Vec::new();
        let eval = &mut *self.eval;
        let mut test = |batch: &[Vec<FaultEvent>]| {
            let cases: Vec<Case> = batch
                .iter()
                .map(|events| Case {
                    config: config.clone(),
                    plan: candidates::with_events(&base, events.clone()),
                })
                .collect();
            let (i, report) = eval.first_failing(&cases)?;
            accepted.push((batch[i].clone(), report, eval.runs));
            Some(i)
        };
        ddmin::ddmin(&events, &mut test);
        for (events, report, runs) in accepted {
            let what = format!(
                "ddmin: keep {} of {} faults",
                events.len(),
                self.case.plan.events.len()
            );
            let plan = candidates::with_events(&base, events);
            let case = Case {
                config: config.clone(),
                plan,
            };
            self.accept_at(what, case, report, runs);
        }
    }
}

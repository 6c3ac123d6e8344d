//! `paylab shrink`: every shrunk case still fails its invariant, for planted bugs of different
//! families (the ledger, TCC, trades, the message layer, replicas, liveness), and bad input is
//! refused with exit 2.

use paylab_sim::config::{mode_of_bug, strategy_of_bug};
use paylab_sim::plan::FaultPlan;
use paylab_sim::run::run_with_plan;
use paylab_sim::shrink::candidates::Case;
use paylab_sim::shrink::eval::Target;
use paylab_sim::shrink::{ops_of, shrink, Options};
use paylab_sim::{run, RunConfig};
use paylab_system::bugs::Bug;
use std::process::Command;
use std::time::Duration;

fn config(bug: Bug, seed: u64) -> RunConfig {
    let base = RunConfig::new(seed);
    RunConfig {
        bug: Some(bug),
        messages: mode_of_bug(bug).or(base.messages),
        strategy: strategy_of_bug(bug).unwrap_or(base.strategy),
        ..base
    }
}

/// Shrinks the failing run of `bug` at `seed` within `budget` and checks the result: no
/// bigger than the original, and a fresh run of it fails the same way, naming the invariant
/// the catalogue gives for the bug.
fn shrinks(bug: Bug, seed: u64, budget: Duration) -> (usize, usize) {
    let original = run(config(bug, seed));
    assert_ne!(
        original.verdict.exit_code(),
        0,
        "{bug} fails at seed {seed}"
    );
    let case = Case {
        config: original.config.clone(),
        plan: original.plan.clone(),
    };
    let options = Options {
        budget,
        jobs: 2,
        reseed: true,
    };
    let shrunk = shrink(case, options, &mut |_| {}).expect("the run fails");
    let r = &shrunk.report;
    assert!(r.plan.events.len() <= original.plan.events.len());
    assert!(ops_of(r) <= ops_of(&original), "{bug}: no more operations");
    let again = run_with_plan(r.config.clone(), r.plan.clone());
    assert!(Target::of(&original).matches(&again), "{bug}: {again:?}");
    if bug.caught_by() == "liveness" {
        assert_eq!(again.verdict.exit_code(), 3);
    } else {
        assert!(
            again
                .violations
                .iter()
                .any(|v| v.invariant.name() == bug.caught_by()),
            "{bug}: the shrunk case breaks {}",
            bug.caught_by()
        );
    }
    (r.plan.events.len(), ops_of(r))
}

#[test]
fn refund_check_then_act_at_seed_0_shrinks_to_two_faults_and_thirty_five_operations() {
    // A generous budget (the search takes about a second): the figure must not depend on the
    // machine's speed.
    let (faults, ops) = shrinks(Bug::RefundCheckThenAct, 0, Duration::from_secs(300));
    assert!(
        faults <= 2 && ops <= 35,
        "{faults} faults, {ops} operations"
    );
}

#[test]
fn shrunk_cases_of_five_families_still_fail_their_invariant() {
    for (bug, seed) in [
        (Bug::TccDecisionNotDurable, 7),
        (Bug::ManagerNoRecovery, 7),
        (Bug::OffsetBeforeProcessing, 24),
        (Bug::ReplicaNoVersion, 0),
        (Bug::LedgerRetryAppliesTwice, 2),
    ] {
        // A small budget keeps the test short; whatever the search reached must still fail.
        shrinks(bug, seed, Duration::from_secs(8));
    }
}

#[test]
fn a_passing_run_has_nothing_to_shrink() {
    let config = RunConfig {
        ops: 2,
        ..RunConfig::new(1)
    };
    let case = Case {
        config,
        plan: FaultPlan::none(),
    };
    let options = Options {
        budget: Duration::from_secs(5),
        jobs: 1,
        reseed: false,
    };
    assert!(shrink(case, options, &mut |_| {}).is_err());
}

fn paylab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_paylab"))
        .args(args)
        .output()
        .expect("paylab runs")
}

#[test]
fn bad_input_is_one_sentence_and_exit_2() {
    let dir = std::env::temp_dir().join(format!("paylab-shrink-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.json");
    std::fs::write(&junk, "{ not a report").unwrap();
    let junk = junk.to_str().unwrap();
    for args in [
        vec!["shrink", "no-such-report.json"],
        vec!["shrink", junk],
        vec!["shrink", junk, "--budget", "0s"],
        vec!["shrink", junk, "--budget", "soon"],
        vec!["report", "html", "no-such-report.json"],
        vec!["report", "html", junk],
    ] {
        let out = paylab(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(left.len(), 1, "nothing half-written beside the input");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// End to end through the binary: a failed run writes its report and its page; shrinking the
/// report prints its steps and a `repro:` line whose report replays to the same verdict.
#[test]
fn a_failure_report_shrinks_to_a_report_that_replays() {
    let dir = std::env::temp_dir().join(format!("paylab-shrink-e2e-{}", std::process::id()));
    let dir_arg = dir.to_str().unwrap();
    let args = ["run", "--seed", "0", "--bug", "refund-check-then-act"];
    let out = paylab(&[&args[..], &["--report-dir", dir_arg]].concat());
    assert_eq!(out.status.code(), Some(1));
    let printed = String::from_utf8_lossy(&out.stdout);
    let report = printed
        .lines()
        .find_map(|l| l.strip_prefix("report: "))
        .map(std::path::PathBuf::from)
        .expect("a report line");
    let name = report.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("seed-0-refund-check-then-act-"), "{name}");
    let page = std::fs::read_to_string(report.with_extension("html"))
        .expect("the page is written next to the report");
    assert!(page.contains("refund-bound") && page.contains("id=\"selftest\""));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no network"
    );

    let out = paylab(&["shrink", report.to_str().unwrap(), "--jobs", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("step: "), "{stdout}");
    assert!(
        stdout.contains("target: VIOLATION of refund-bound"),
        "{stdout}"
    );
    let repro = stdout
        .lines()
        .find_map(|l| l.strip_prefix("repro: cargo run --release -- replay "))
        .expect("a repro line");
    assert!(std::path::Path::new(repro).with_extension("html").exists());
    let out = paylab(&["replay", repro]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("replay: same verdict (VIOLATION)"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The first acceptable candidate in a fixed order wins, however many run at once: one job and
/// three give the same shrunk case.
#[test]
fn the_result_does_not_depend_on_the_number_of_jobs() {
    let original = run(config(Bug::TccDecisionNotDurable, 7));
    let shrunk = |jobs| {
        let case = Case {
            config: original.config.clone(),
            plan: original.plan.clone(),
        };
        let options = Options {
            // An hour: the search (about a second) ends long before, so the budget cannot cut
            // one of the two short.
            budget: Duration::from_secs(3_600),
            jobs,
            reseed: true,
        };
        let s = shrink(case, options, &mut |_| {}).expect("the run fails");
        (s.report.config, s.report.plan, s.steps.len())
    };
    assert_eq!(shrunk(1), shrunk(3));
}

/// A regression corpus entry shrinks as a failure report does: its configuration and plan are
/// the case.
#[test]
fn a_corpus_entry_shrinks_like_a_report() {
    let dir = std::env::temp_dir().join(format!("paylab-shrink-entry-{}", std::process::id()));
    let entry = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../seeds/bug-refund-check-then-act.toml"
    );
    let out = paylab(&[
        "shrink",
        entry,
        "--jobs",
        "2",
        "--out-dir",
        dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("target: VIOLATION of refund-bound"),
        "{stdout}"
    );
    let repro = stdout
        .lines()
        .find_map(|l| l.strip_prefix("repro: cargo run --release -- replay "))
        .expect("a repro line");
    let replay = paylab(&["replay", repro]);
    assert_eq!(replay.status.code(), Some(1), "the shrunk case still fails");
    std::fs::remove_dir_all(&dir).ok();
}

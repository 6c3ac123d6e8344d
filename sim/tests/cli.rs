//! Bad input gets one clear sentence on stderr and exit code 2, never a panic.

use std::process::{Command, Output};

fn paylab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_paylab"))
        .args(args)
        .output()
        .expect("paylab runs")
}

fn assert_usage_error(args: &[&str], mentions: &str) {
    let out = paylab(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?} must exit 2, stderr: {stderr}"
    );
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one sentence, got: {stderr}"
    );
    assert!(stderr.contains(mentions), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"));
    assert!(out.stdout.is_empty(), "nothing half-written on stdout");
}

#[test]
fn a_seed_that_is_not_a_number_is_refused() {
    assert_usage_error(&["run", "--seed", "abc"], "abc");
}

#[test]
fn zero_shards_is_refused() {
    assert_usage_error(&["run", "--shards", "0"], "0");
}

#[test]
fn out_of_range_sizes_and_unknown_bugs_are_refused() {
    assert_usage_error(&["run", "--clients", "100000"], "100000");
    assert_usage_error(&["run", "--ops", "0"], "0");
    assert_usage_error(&["run", "--bug", "no-such-bug"], "no-such-bug");
    assert_usage_error(&["frobnicate"], "frobnicate");
}

#[test]
fn the_bug_catalogue_lists_each_bug_with_its_invariant() {
    let out = paylab(&["bugs"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ledger-retry-applies-twice"));
    assert!(stdout.contains("exactly-once"));
}

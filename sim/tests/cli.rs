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
fn bad_message_options_and_bugs_outside_their_mode_are_refused() {
    assert_usage_error(&["run", "--messages", "kafka"], "kafka");
    assert_usage_error(&["run", "--broker-flush", "sometimes"], "sometimes");
    assert_usage_error(&["run", "--broker-flush", "async:0"], "async:0");
    assert_usage_error(
        &[
            "run",
            "--bug",
            "checkback-from-memory",
            "--messages",
            "outbox",
        ],
        "--messages txmsg",
    );
    assert_usage_error(
        &["run", "--bug", "consumer-no-dedup", "--messages", "off"],
        "messages on",
    );
}

#[test]
fn bad_open_loop_flags_are_refused() {
    assert_usage_error(&["run", "--rate", "0"], "--rate");
    assert_usage_error(&["run", "--rate", "-3"], "-3");
    assert_usage_error(&["run", "--rate", "10", "--duration", "-1"], "-1");
    assert_usage_error(&["run", "--rate", "10", "--duration", "0"], "at least");
    assert_usage_error(&["run", "--rate", "10", "--duration", "1e12"], "at most");
    assert_usage_error(&["run", "--rate", "10", "--duration", "soon"], "soon");
    assert_usage_error(&["run", "--rate", "10", "--users", "2000001"], "2000001");
    assert_usage_error(&["run", "--rate", "10", "--ops", "5"], "--ops");
    assert_usage_error(&["run", "--duration", "5"], "--rate");
    assert_usage_error(&["run", "--merchants", "5"], "--rate");
    assert_usage_error(
        &["run", "--rate", "200000", "--duration", "3600"],
        "at most 10000000",
    );
    assert_usage_error(&["run", "--rate", "10", "--users", "2"], "--clients");
    assert_usage_error(
        &["run", "--scenario", "peak-2015", "--shards", "4"],
        "--shards",
    );
    assert_usage_error(&["run", "--scenario", "peak-2015", "--rate", "5"], "--rate");
    assert_usage_error(&["run", "--scenario", "peak-2016"], "peak-2016");
}

#[test]
fn the_bug_catalogue_lists_each_bug_with_its_invariant() {
    let out = paylab(&["bugs"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ledger-retry-applies-twice"));
    assert!(stdout.contains("exactly-once"));
}

#[test]
fn bad_fault_selections_and_plans_are_refused() {
    assert_usage_error(&["run", "--faults", "earthquake"], "earthquake");
    assert_usage_error(&["run", "--faults", "crash", "--no-faults"], "--no-faults");
    assert_usage_error(
        &["run", "--plan", "/nonexistent/plan.json"],
        "/nonexistent/plan.json",
    );
    let dir = std::env::temp_dir().join(format!("paylab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "{ not a plan").expect("write");
    assert_usage_error(
        &["run", "--plan", garbage.to_str().unwrap()],
        "not a valid fault plan",
    );
    let foreign = dir.join("foreign.json");
    let plan = r#"{"kinds":["crash"],"events":[{"after_ops":5,"fault":{"kind":"crash","node":"ledger-9","down_ms":10,"torn_keep":null}}]}"#;
    std::fs::write(&foreign, plan).expect("write");
    assert_usage_error(&["run", "--plan", foreign.to_str().unwrap()], "ledger-9");
    assert_usage_error(
        &["replay", garbage.to_str().unwrap()],
        "not a paylab failure report",
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_failed_run_writes_a_report_that_replays_to_the_same_verdict() {
    let dir = std::env::temp_dir().join(format!("paylab-report-{}", std::process::id()));
    let run_bugged = |extra: &[&str]| {
        let mut args = vec!["run", "--seed", "3", "--bug", "tcc-no-fence"];
        args.extend_from_slice(extra);
        paylab(&args)
    };
    let out = run_bugged(&["--report-dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("replay: cargo run --release -- replay"),
        "{stdout}"
    );
    let report = stdout
        .lines()
        .find_map(|l| l.strip_prefix("report: "))
        .map(std::path::PathBuf::from)
        .expect("a report line");
    let name = report.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("seed-3-tcc-no-fence-"), "{name}");
    let text = std::fs::read_to_string(&report).expect("the report exists");
    for field in [
        "\"plan\"",
        "\"violations\"",
        "\"history_excerpt\"",
        "\"trace_tail\"",
        "\"repro\"",
    ] {
        assert!(text.contains(field), "the report has {field}");
    }
    let replay = paylab(&["replay", report.to_str().unwrap()]);
    let replayed = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(replay.status.code(), Some(1), "{replayed}");
    assert!(
        replayed.contains("replay: same verdict (VIOLATION) and trace hash"),
        "{replayed}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_measure_flags_are_refused_and_missing_arguments_are_named() {
    assert_usage_error(&["bugs", "--seeds", "0..3"], "--measure");
    assert_usage_error(&["bugs", "--measure", "--seeds", "5..3"], "--seeds");
    assert_usage_error(&["bugs", "--measure", "--seeds", "x"], "--seeds");
    assert_usage_error(
        &["bugs", "--measure", "--only", "nope"],
        "unknown bug 'nope'",
    );
    assert_usage_error(&["bugs", "--measure", "--jobs", "0"], "--jobs");
    assert_usage_error(&["replay"], "<FILE>");
}

#[test]
fn paylab_alone_prints_its_usage_on_stderr_and_exits_2() {
    let out = paylab(&[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Usage: paylab <COMMAND>"), "{stderr}");
    assert!(stderr.contains("bugs"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn measuring_the_catalogue_prints_a_line_and_a_table_row_per_bug() {
    let out = paylab(&[
        "bugs",
        "--measure",
        "--seeds",
        "0..=1",
        "--only",
        "refund-check-then-act,trade-refunded-reopens",
        "--jobs",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("(4 runs)"), "{stdout}");
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| `")).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(
        rows[0].starts_with("| `refund-check-then-act` | refund-bound | 2 of 2 (100.0 %) | 0 |"),
        "{stdout}"
    );
}

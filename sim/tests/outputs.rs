//! Outputs that never lie: `--json` is one JSON document, a lost write is an error, reports
//! are checked and named per configuration, replay compares the trace hash, and every bad
//! input (the battery below) gets one sentence on stderr, exit 2, and writes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn paylab_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_paylab"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("paylab runs")
}

/// A fresh, empty folder of this test process.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("paylab-out-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn json_is_one_document_with_the_command_lines_names_and_a_hex_trace_hash() {
    let cwd = fresh_dir("json-pass");
    let pass = paylab_in(&cwd, &["run", "--seed", "1", "--ops", "10", "--json"]);
    assert_eq!(pass.status.code(), Some(0));
    let doc = json_of(&pass);
    let hash = doc["trace_hash"].as_str().expect("the hash is a string");
    assert!(
        hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{hash}"
    );
    assert_eq!(doc["config"]["strategy"], "tcc");

    let fail = paylab_in(
        &cwd,
        &[
            "run",
            "--seed",
            "3",
            "--bug",
            "tcc-no-fence",
            "--json",
            "--trace",
        ],
    );
    assert_eq!(fail.status.code(), Some(1));
    let doc = json_of(&fail);
    assert_eq!(doc["config"]["bug"], "tcc-no-fence");
    assert_eq!(doc["verdict"], "Violation");
    let stderr = String::from_utf8_lossy(&fail.stderr);
    assert!(
        stderr.contains("report: reports/failures/seed-3-tcc-no-fence-"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "no colours into a file");
    std::fs::remove_dir_all(&cwd).ok();
}

#[test]
fn output_lost_to_a_full_disk_is_an_error() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full exists on Linux");
    let out = Command::new(env!("CARGO_BIN_EXE_paylab"))
        .args(["run", "--seed", "1", "--ops", "5"])
        .current_dir(fresh_dir("full"))
        .stdout(Stdio::from(full))
        .output()
        .expect("paylab runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot write to standard output"),
        "{stderr}"
    );
}

#[test]
fn runs_of_one_seed_with_other_flags_keep_their_own_reports() {
    let cwd = fresh_dir("names");
    for ops in ["30", "40"] {
        let args = [
            "run",
            "--seed",
            "0",
            "--bug",
            "refund-check-then-act",
            "--ops",
            ops,
        ];
        let out = paylab_in(&cwd, &args);
        assert_eq!(out.status.code(), Some(1));
    }
    let reports = std::fs::read_dir(cwd.join("reports/failures"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .count();
    assert_eq!(reports, 2, "two configurations, two reports");
    std::fs::remove_dir_all(&cwd).ok();
}

/// Writes a failing run's report, then a copy with `edit` applied to its JSON.
fn edited_report(cwd: &Path, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let out = paylab_in(
        cwd,
        &[
            "run",
            "--seed",
            "0",
            "--bug",
            "refund-check-then-act",
            "--ops",
            "30",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "refund-check-then-act fails every seed"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout
        .lines()
        .find_map(|l| l.strip_prefix("report: "))
        .expect("a report line");
    let mut report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cwd.join(path)).unwrap()).unwrap();
    edit(&mut report);
    let edited = cwd.join("edited.json");
    std::fs::write(&edited, report.to_string()).unwrap();
    edited
}

#[test]
fn a_replay_compares_the_trace_hash_and_names_what_differs() {
    let cwd = fresh_dir("replay");
    let edited = edited_report(&cwd, |r| r["config"]["seed"] = 5.into());
    let out = paylab_in(&cwd, &["replay", edited.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("replay: DIFFERENT") && stdout.contains("the trace hash"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&cwd).ok();
}

/// One malformed input: what to run, and what its one sentence must mention.
struct Bad {
    args: Vec<String>,
    mentions: &'static str,
}

fn bad(args: &[&str], mentions: &'static str) -> Bad {
    Bad {
        args: args.iter().map(|a| a.to_string()).collect(),
        mentions,
    }
}

/// Input files for the battery, in their own folder (the runs happen elsewhere).
fn fixtures() -> PathBuf {
    let dir = fresh_dir("fixtures");
    let crash = |node: &str, down_ms: u64| {
        format!(
            r#"{{"after_ops":5,"fault":{{"kind":"crash","node":"{node}","down_ms":{down_ms},"torn_keep":null}}}}"#
        )
    };
    let plan =
        |events: Vec<String>| format!(r#"{{"kinds":["crash"],"events":[{}]}}"#, events.join(","));
    let files = [
        ("garbage.json", "{ not json".to_string()),
        ("garbage.toml", "kinds = [".to_string()),
        ("foreign.json", plan(vec![crash("ledger/9", 10)])),
        ("huge.json", plan(vec![crash("ledger/0", 10); 1_001])),
        ("long-crash.json", plan(vec![crash("ledger/0", 10_000_000)])),
        ("empty.json", String::new()),
        ("a-file", "not a folder".to_string()),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

/// At least sixty malformed inputs: flags, plans, reports and destinations.
fn battery(fx: &Path, reports: &Path) -> Vec<Bad> {
    let f = |name: &str| fx.join(name).display().to_string();
    let r = |name: &str| reports.join(name).display().to_string();
    let (garbage, gtoml, foreign, huge, long) = (
        f("garbage.json"),
        f("garbage.toml"),
        f("foreign.json"),
        f("huge.json"),
        f("long-crash.json"),
    );
    let (empty, afile) = (f("empty.json"), f("a-file"));
    let (big_fsync, zero_shards, bad_node, other_bug, rate_zero) = (
        r("fsync.json"),
        r("shards.json"),
        r("node.json"),
        r("bug.json"),
        r("rate.json"),
    );
    let mut all = vec![
        bad(&["frobnicate"], "frobnicate"),
        bad(&["run", "--bogus"], "--bogus"),
        bad(&["run", "7"], "7"),
        bad(&["run", "--seed", "x"], "--seed"),
        bad(&["run", "--seed", "-1"], "-1"),
        bad(&["run", "--seed", "18446744073709551616"], "--seed"),
        bad(&["run", "--shards", "0"], "--shards"),
        bad(&["run", "--shards", "65"], "--shards"),
        bad(&["run", "--clients", "0"], "--clients"),
        bad(&["run", "--clients", "257"], "--clients"),
        bad(&["run", "--ops", "0"], "--ops"),
        bad(&["run", "--ops", "100001"], "--ops"),
        bad(&["run", "--hostile", "9"], "--hostile"),
        bad(&["run", "--hostile", "-1"], "--hostile"),
        bad(
            &["run", "--clients", "256", "--ops", "100000"],
            "at most 1000000",
        ),
        bad(&["run", "--trade-shards", "0"], "--trade-shards"),
        bad(&["run", "--trade-shards", "17"], "--trade-shards"),
        bad(&["run", "--payment-nodes", "0"], "--payment-nodes"),
        bad(&["run", "--payment-nodes", "17"], "--payment-nodes"),
        bad(&["run", "--strategy", "paxos"], "paxos"),
        bad(
            &["run", "--strategy", "outbox", "--messages", "off"],
            "--messages",
        ),
        bad(&["run", "--messages", "kafka"], "kafka"),
        bad(&["run", "--broker-flush", "fast"], "fast"),
        bad(&["run", "--broker-flush", "async:0"], "between 1 and"),
        bad(&["run", "--broker-flush", "async:x"], "async:<ms>"),
        bad(&["run", "--broker-flush", "async:60001"], "between 1 and"),
        bad(&["run", "--bug", "nope"], "nope"),
        bad(
            &[
                "run",
                "--bug",
                "checkback-from-memory",
                "--messages",
                "outbox",
            ],
            "txmsg",
        ),
        bad(
            &["run", "--bug", "consumer-no-dedup", "--messages", "off"],
            "messages on",
        ),
        bad(&["run", "--faults", "earthquake"], "earthquake"),
        bad(&["run", "--faults", "crash", "--no-faults"], "--no-faults"),
        bad(&["run", "--close-after-ms", "0"], "--close-after-ms"),
        bad(&["run", "--close-after-ms", "3600001"], "--close-after-ms"),
        bad(&["run", "--fsync-latency-ms", "1001"], "--fsync-latency-ms"),
        bad(&["run", "--fsync-latency-ms", "-1"], "-1"),
        bad(
            &["run", "--snapshot-interval-ms", "0"],
            "--snapshot-interval-ms",
        ),
        bad(
            &["run", "--snapshot-interval-ms", "60001"],
            "--snapshot-interval-ms",
        ),
        bad(&["run", "--rate", "0"], "--rate"),
        bad(&["run", "--rate", "200001"], "--rate"),
        bad(&["run", "--duration", "1"], "--rate"),
        bad(&["run", "--users", "10"], "--rate"),
        bad(&["run", "--merchants", "10"], "--rate"),
        bad(&["run", "--rate", "10", "--duration", "0"], "duration"),
        bad(&["run", "--rate", "10", "--duration", "-5"], "duration"),
        bad(&["run", "--rate", "10", "--duration", "3601"], "duration"),
        bad(&["run", "--rate", "10", "--duration", "abc"], "duration"),
        bad(
            &["run", "--rate", "200000", "--duration", "3600"],
            "at most",
        ),
        bad(&["run", "--rate", "10", "--users", "2"], "--users"),
        bad(&["run", "--rate", "10", "--merchants", "2"], "--merchants"),
        bad(&["run", "--rate", "10", "--ops", "5"], "--ops"),
        bad(&["run", "--scenario", "peak-2016"], "peak-2016"),
        bad(&["run", "--consume-batch", "0"], "--consume-batch"),
        bad(&["run", "--consume-batch", "17"], "--consume-batch"),
        bad(&["run", "--consume-batch", "-1"], "--consume-batch"),
        bad(&["run", "--serve-loops", "0"], "--serve-loops"),
        bad(&["run", "--serve-loops", "257"], "--serve-loops"),
        bad(&["run", "--event-consumers", "0"], "--event-consumers"),
        bad(&["run", "--event-consumers", "5"], "--event-consumers"),
        bad(
            &["run", "--scenario", "peak-2015", "--shards", "4"],
            "--shards",
        ),
        bad(
            &["run", "--plan", "/nonexistent/plan.json"],
            "/nonexistent/plan.json",
        ),
        bad(&["run", "--plan", &garbage], "not a valid fault plan"),
        bad(&["run", "--plan", &gtoml], "not a valid fault plan"),
        bad(&["run", "--plan", &empty], "not a valid fault plan"),
        bad(&["run", "--plan", &foreign], "ledger/9"),
        bad(&["run", "--plan", &huge], "at most 1000"),
        bad(&["run", "--plan", &long], "out of bounds"),
        bad(
            &["run", "--plan", &garbage, "--faults", "crash"],
            "--faults",
        ),
        bad(&["run", "--report-dir", "/proc/x"], "/proc/x"),
        bad(&["run", "--report-dir", &afile], "a-file"),
        bad(
            &["run", "--save-plan", "/proc/x/plan.json"],
            "/proc/x/plan.json",
        ),
        bad(&["replay"], "<FILE>"),
        bad(
            &["replay", "/nonexistent/report.json"],
            "/nonexistent/report.json",
        ),
        bad(&["replay", &garbage], "not a paylab failure report"),
        bad(&["replay", &foreign], "not a paylab failure report"),
        bad(&["replay", &big_fsync], "--fsync-latency-ms"),
        bad(&["replay", &zero_shards], "--shards"),
        bad(&["replay", &bad_node], "ledger/9"),
        bad(&["replay", &other_bug], "not a paylab failure report"),
        bad(&["replay", &rate_zero], "--rate"),
        bad(&["replay", &r("hostile.json")], "--hostile"),
        bad(&["replay", &r("batch.json")], "consume-batch"),
        bad(&["replay", &r("loops.json")], "serve-loops"),
        bad(&["replay", &r("members.json")], "event-consumers"),
        bad(&["bugs", "--seeds", "0..3"], "--measure"),
        bad(&["bugs", "--measure", "--seeds", "5..3"], "--seeds"),
        bad(&["bugs", "--measure", "--only", "nope"], "nope"),
        bad(&["bugs", "--measure", "--jobs", "0"], "--jobs"),
        bad(&["bench", "--clients", "0"], "--clients"),
        bad(&["bench", "--parts", "nothing"], "nothing"),
        bad(&["bench", "--rounds", "0"], "--rounds"),
        bad(
            &["bench", "--parts", "peak", "--peak-durations", "0.1,abc"],
            "abc",
        ),
        bad(
            &["bench", "--parts", "peak", "--peak-durations", "0"],
            "--peak-durations",
        ),
        bad(
            &["bench", "--parts", "peak", "--peak-durations", "4000"],
            "4000",
        ),
        bad(
            &["bench", "--clients", "256", "--per-client", "1000000"],
            "at most 4000000",
        ),
    ];
    all.retain(|b| !b.args.is_empty());
    all
}

/// A named edit of a report's JSON.
type Edit = (&'static str, fn(&mut serde_json::Value));

/// The hand-edited reports the battery replays.
fn edited_reports(dir: &Path) {
    let edits: [Edit; 9] = [
        ("fsync.json", |r| {
            r["config"]["fsync_latency_ms"] = 1_000_000_000_000u64.into()
        }),
        ("shards.json", |r| r["config"]["shards"] = 0.into()),
        (
            "node.json",
            |r| r["plan"]["events"] = serde_json::json!([{"after_ops": 5, "fault": {"kind": "crash", "node": "ledger/9", "down_ms": 10, "torn_keep": null}}]),
        ),
        ("bug.json", |r| r["config"]["bug"] = "TccNoFence".into()),
        ("rate.json", |r| r["config"]["rate"] = 0.into()),
        ("hostile.json", |r| r["config"]["hostile"] = 100.into()),
        ("batch.json", |r| r["config"]["consume_batch"] = 0.into()),
        ("loops.json", |r| {
            r["config"]["serve_loops"] = 100_000.into()
        }),
        ("members.json", |r| {
            r["config"]["event_consumers"] = 9.into()
        }),
    ];
    for (name, edit) in edits {
        let path = edited_report(dir, edit);
        std::fs::rename(path, dir.join(name)).unwrap();
    }
}

#[test]
fn every_bad_input_gets_one_sentence_exit_2_and_writes_nothing() {
    let fx = fixtures();
    let reports = fresh_dir("edited");
    edited_reports(&reports);
    let cases = battery(&fx, &reports);
    assert!(cases.len() >= 60, "the battery has {} inputs", cases.len());
    for case in cases {
        let cwd = fresh_dir("battery-cwd");
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let out = paylab_in(&cwd, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} must exit 2: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{args:?}: one sentence, got: {stderr}"
        );
        assert!(
            stderr.contains(case.mentions),
            "{args:?} must mention {}: {stderr}",
            case.mentions
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
        let left: Vec<_> = std::fs::read_dir(&cwd).unwrap().collect();
        assert!(left.is_empty(), "{args:?} wrote {left:?}");
    }
    for dir in [fx, reports] {
        std::fs::remove_dir_all(dir).ok();
    }
}

/// Checking the report folder creates nothing (a passing run leaves no folder behind): a check
/// that created and removed the folder raced with the other runs of a campaign sharing it.
#[test]
fn checking_the_report_folder_creates_nothing() {
    let cwd = fresh_dir("check-dir");
    let out = paylab_in(
        &cwd,
        &[
            "run",
            "--seed",
            "1",
            "--ops",
            "5",
            "--report-dir",
            "new/nested",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let left: Vec<_> = std::fs::read_dir(&cwd).unwrap().collect();
    assert!(left.is_empty(), "a passing run wrote {left:?}");
    std::fs::remove_dir_all(&cwd).ok();
}

//! `paylab campaign`, `paylab report merge` and `paylab replay seeds/`, end to end through
//! the binary: reports written and valid, failures named with their repro commands, a killed
//! campaign resumed to the same results, shards merged into the single-machine summary, the
//! determinism check firing on a nondeterministic run, hangs killed, bad input refused.
//! Small campaigns (`--ops 10`, a few dozen seeds) keep the whole file well under a minute.

use paylab_sim::campaign::results::{self, CampaignVerdict, RunRecord};
use paylab_sim::campaign::seeds::{self, SeedRange, Shard};
use paylab_sim::RunConfig;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn paylab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_paylab"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("paylab runs")
}

/// A fresh folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("paylab-campaign-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `paylab campaign` with small runs, two jobs, quiet, into `out`.
fn campaign(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "campaign",
        "--ops",
        "10",
        "--jobs",
        "2",
        "--quiet",
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    paylab(&args)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn records(dir: &Path) -> Vec<RunRecord> {
    let mut r = results::read(dir, false).expect("results.jsonl reads");
    r.sort_by_key(|r| r.seed);
    r
}

fn summary_json(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// Validates `file` against the vendored JUnit schema with python's xmlschema; a missing
/// validator fails the test under CI (which installs it) and is reported elsewhere.
fn junit_valid(file: &Path) -> Result<(), String> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let out = Command::new("python3")
        .arg(data.join("validate_junit.py"))
        .arg(data.join("junit.xsd"))
        .arg(file)
        .output()
        .map_err(|e| format!("python3 does not run: {e}"))?;
    match out.status.code() {
        Some(0) => Ok(()),
        Some(3) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "warning: xmlschema missing, junit.xml not validated (pip install xmlschema)"
            );
            Ok(())
        }
        _ => Err(text(&out)),
    }
}

#[test]
fn a_passing_campaign_writes_every_report_and_a_valid_junit_file() {
    let dir = scratch("pass");
    let out = campaign(&dir, &["--count", "24", "--from", "100"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let recs = records(&dir);
    assert_eq!(recs.len(), 24);
    let seeds: BTreeSet<u64> = recs.iter().map(|r| r.seed).collect();
    assert_eq!(seeds, (100..124).collect(), "each seed once");
    assert!(recs
        .iter()
        .all(|r| r.verdict == CampaignVerdict::Pass && r.trace_hash.len() == 16));
    let md = std::fs::read_to_string(dir.join("summary.md")).expect("summary.md");
    assert!(md.contains("| PASS | 24 |"), "{md}");
    assert!(
        md.contains("| `fault.crash` | fault |"),
        "the coverage table lists fault kinds"
    );
    assert!(
        md.contains("**untested**"),
        "a small campaign leaves corners untested: {md}"
    );
    let summary = summary_json(&dir);
    assert_eq!(summary["runs"], 24);
    junit_valid(&dir.join("junit.xml")).expect("junit.xml is schema-valid");
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 24);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_junit_schema_check_rejects_a_broken_file() {
    let dir = scratch("junit-bad");
    let bad = dir.join("bad.xml");
    std::fs::write(
        &bad,
        r#"<testsuites><testsuite name="x" tests="one" failures="0" errors="0"/></testsuites>"#,
    )
    .unwrap();
    if std::env::var_os("CI").is_some() || junit_valid(&dir.join("missing.xml")).is_err() {
        assert!(junit_valid(&bad).is_err(), "tests=\"one\" must be refused");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_planted_bug_fails_the_campaign_naming_seeds_invariants_and_repro_commands() {
    let dir = scratch("bug");
    let out = campaign(
        &dir,
        &["--seeds", "0..24", "--bug", "tcc-confirm-not-idempotent"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failing: Vec<RunRecord> = records(&dir).into_iter().filter(|r| r.failed()).collect();
    assert!(
        !failing.is_empty(),
        "tcc-confirm-not-idempotent is caught within 24 seeds"
    );
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    for r in &failing {
        assert!(r.invariants.iter().any(|i| i == "exactly-once"), "{r:?}");
        let repro = format!("cargo run --release -- run --seed {} ", r.seed);
        assert!(
            r.repro.starts_with(&repro) && r.repro.contains("--bug tcc-confirm-not-idempotent")
        );
        assert!(
            md.contains(&format!("- seed {}: **VIOLATION**", r.seed)),
            "{md}"
        );
        assert!(md.contains(&r.repro) && stdout.contains(&r.repro));
        let report = r.report.as_ref().expect("a failure report");
        assert!(dir.join(report).exists(), "{report}");
    }
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert_eq!(xml.matches("<failure ").count(), failing.len());
    junit_valid(&dir.join("junit.xml")).expect("junit.xml is schema-valid");
    std::fs::remove_dir_all(&dir).ok();
}

/// Kill -9 halfway (and a torn last line), then `--resume`: the same seeds with the same
/// verdicts as a campaign never interrupted, none run twice.
#[test]
fn a_campaign_killed_and_resumed_ends_like_one_never_interrupted() {
    let dir = scratch("resume");
    let (killed, whole) = (dir.join("killed"), dir.join("whole"));
    let flags = [
        "--seeds",
        "0..40",
        "--bug",
        "tcc-confirm-not-idempotent",
        "--check-determinism",
        "10",
    ];
    let mut args = vec![
        "campaign",
        "--ops",
        "10",
        "--jobs",
        "2",
        "--quiet",
        "--out",
        s(&killed),
    ];
    args.extend_from_slice(&flags);
    let mut child = Command::new(env!("CARGO_BIN_EXE_paylab"))
        .args(&args)
        .stdout(Stdio::null())
        .spawn()
        .expect("paylab starts");
    let log = killed.join("results.jsonl");
    let lines = || std::fs::read_to_string(&log).map_or(0, |t| t.lines().count());
    while lines() < 10 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the campaign ended before it was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    child.wait().unwrap();
    let before = lines();
    assert!(before < 40, "killed halfway ({before} runs done)");
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(br#"{"seed":39,"config":{"se"#).unwrap();
    let resumed = paylab(&["campaign", "--resume", s(&killed), "--jobs", "2", "--quiet"]);
    assert_eq!(resumed.status.code(), Some(1), "{}", text(&resumed));
    let again = campaign(&whole, &flags);
    assert_eq!(again.status.code(), Some(1));
    let verdicts = |d: &Path| -> Vec<(u64, CampaignVerdict, Vec<String>, String)> {
        records(d)
            .into_iter()
            .map(|r| (r.seed, r.verdict, r.invariants, r.trace_hash))
            .collect()
    };
    let resumed_runs = verdicts(&killed);
    assert_eq!(
        resumed_runs.len(),
        40,
        "every seed once, the torn line repaired"
    );
    assert_eq!(resumed_runs, verdicts(&whole));
    assert_eq!(summary_json(&killed), summary_json(&whole));
    std::fs::remove_dir_all(&dir).ok();
}

/// Three shards run separately and merged give the summary of one campaign over every seed.
#[test]
fn three_shards_merged_equal_one_campaign_over_the_same_seeds() {
    let dir = scratch("shards");
    let flags = ["--seeds", "0..30", "--bug", "tcc-confirm-not-idempotent"];
    let mut shard_dirs = Vec::new();
    for k in 1..=3 {
        let d = dir.join(format!("shard-{k}"));
        let shard = format!("{k}/3");
        let mut extra = flags.to_vec();
        extra.extend(["--shard", shard.as_str()]);
        let out = campaign(&d, &extra);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
        assert!(
            records(&d).iter().all(|r| r.seed % 3 + 1 == k),
            "shard {k} runs its slice"
        );
        shard_dirs.push(d);
    }
    let merged = dir.join("merged");
    let mut args = vec!["report", "merge"];
    args.extend(shard_dirs.iter().map(|d| s(d)));
    args.extend(["--out", s(&merged)]);
    let out = paylab(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let single = dir.join("single");
    assert_eq!(campaign(&single, &flags).status.code(), Some(1));
    assert_eq!(summary_json(&merged), summary_json(&single));
    assert_eq!(
        std::fs::read_to_string(merged.join("summary.md")).unwrap(),
        std::fs::read_to_string(single.join("summary.md")).unwrap()
    );
    assert_eq!(records(&merged).len(), 30);
    // Every failure report comes with its explorer page, as in a campaign that never split.
    let failures: Vec<PathBuf> = std::fs::read_dir(merged.join("failures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert!(
        !failures.is_empty(),
        "tcc-confirm-not-idempotent fails some of 30 seeds"
    );
    for report in failures {
        assert!(
            report.with_extension("html").is_file(),
            "{report:?} has its page"
        );
    }
    let again = paylab(&[
        "report",
        "merge",
        s(&shard_dirs[0]),
        s(&shard_dirs[0]),
        "--out",
        s(&dir.join("twice")),
    ]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "a shard merged twice is refused"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A planted source of nondeterminism (decisions that depend on the process) is caught by the
/// determinism check; the same check passes a deterministic campaign.
#[test]
fn the_determinism_check_catches_a_run_that_differs_between_processes() {
    let dir = scratch("determinism");
    let bad = dir.join("bad");
    let out = campaign(
        &bad,
        &[
            "--count",
            "4",
            "--bug",
            "test-nondeterminism",
            "--check-determinism",
            "100",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    for r in records(&bad) {
        assert_eq!(r.verdict, CampaignVerdict::Nondeterminism, "{r:?}");
        let rerun = r.rerun_hash.as_deref().expect("re-run");
        assert_ne!(rerun, r.trace_hash);
        let detail = r.detail.as_deref().unwrap();
        assert!(
            detail.contains(&r.trace_hash) && detail.contains(rerun),
            "{detail}"
        );
    }
    let good = dir.join("good");
    let out = campaign(&good, &["--count", "6", "--check-determinism", "100"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for r in records(&good) {
        assert_eq!(
            r.rerun_hash.as_deref(),
            Some(r.trace_hash.as_str()),
            "seed {}",
            r.seed
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A run past `--run-timeout` is killed and recorded as a hang; the others go on.
#[test]
fn a_run_past_its_timeout_is_a_hang_and_the_campaign_goes_on() {
    let dir = scratch("hang");
    let out = paylab(&[
        "campaign",
        "--seeds",
        "0..2",
        "--ops",
        "50000",
        "--run-timeout",
        "1",
        "--jobs",
        "2",
        "--quiet",
        "--check-determinism",
        "0",
        "--out",
        s(&dir),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let recs = records(&dir);
    assert_eq!(recs.len(), 2);
    assert!(
        recs.iter().all(|r| r.verdict == CampaignVerdict::Hang),
        "{recs:?}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL seed 0 HANG"));
    for r in &recs {
        // A hang leaves no run report: the campaign writes the seed's record in its place.
        let report = r.report.as_ref().expect("every failing seed has a report");
        let text = std::fs::read_to_string(dir.join(report)).expect("the record is written");
        assert!(
            text.contains("\"HANG\"") && text.contains(&r.repro),
            "{text}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn swarm_configurations_are_drawn_per_seed_and_replay_from_their_repro_line() {
    let base = RunConfig::new(5);
    assert_eq!(
        seeds::swarm(&base),
        seeds::swarm(&base),
        "the same seed draws the same"
    );
    let drawn: BTreeSet<(u32, u32, u32, u32, u32)> = (0..20)
        .map(|seed| {
            let c = seeds::swarm(&RunConfig::new(seed));
            c.validate().expect("a valid configuration");
            (c.shards, c.clients, c.trade_shards, c.payment_nodes, c.ops)
        })
        .collect();
    assert!(drawn.len() > 10, "seeds draw different sizes: {drawn:?}");
    let dir = scratch("swarm");
    let out = paylab(&[
        "campaign",
        "--count",
        "6",
        "--swarm-config",
        "--ops",
        "10",
        "--jobs",
        "2",
        "--out",
        s(&dir),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for r in records(&dir) {
        assert_eq!(
            r.config,
            seeds::swarm(&RunConfig {
                ops: 10,
                ..RunConfig::new(r.seed)
            })
        );
        assert!(
            stdout.contains(&format!("seed {} PASS: {}", r.seed, r.repro)),
            "{stdout}"
        );
        let args: Vec<&str> = r.repro.split(' ').skip(5).collect();
        assert_eq!(
            RunConfig::from_args(&args).unwrap(),
            r.config,
            "the repro line is the run"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `--time`: seeds from `--from` upward, in this shard's slice, until the budget is spent.
#[test]
fn a_time_budget_runs_consecutive_seeds_of_its_shard_until_it_is_spent() {
    let dir = scratch("time");
    let out = campaign(&dir, &["--time", "2s", "--from", "50", "--shard", "2/2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let seeds: Vec<u64> = records(&dir).iter().map(|r| r.seed).collect();
    assert!(!seeds.is_empty());
    let expected: Vec<u64> = (50..).filter(|s| s % 2 == 1).take(seeds.len()).collect();
    assert_eq!(seeds, expected, "consecutive seeds of slice 2/2 from 50");
    assert!(summary_json(&dir)["campaign"]
        .as_str()
        .unwrap()
        .contains("seeds from 50"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn seed_ranges_and_shards_parse_and_slice_disjointly() {
    assert_eq!(
        "3..7".parse::<SeedRange>(),
        Ok(SeedRange { start: 3, end: 7 })
    );
    for bad in ["x", "7..3", "3..3", "1-4", "..4"] {
        assert!(bad.parse::<SeedRange>().is_err(), "{bad}");
    }
    for bad in ["0/4", "5/4", "x", "1/0", "2"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
    let shards: Vec<Shard> = (1..=4).map(|k| format!("{k}/4").parse().unwrap()).collect();
    for seed in 0..100 {
        assert_eq!(
            shards.iter().filter(|s| s.owns(seed)).count(),
            1,
            "seed {seed}"
        );
    }
    let share = (0..10_000)
        .filter(|s| seeds::checks_determinism(*s, 5.0))
        .count();
    assert!((400..600).contains(&share), "about 5 %: {share}");
}

fn assert_refused(args: &[&str], mentions: &str, out_dir: &Path) {
    let out = paylab(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    assert_eq!(stderr.trim().lines().count(), 1, "one sentence: {stderr}");
    assert!(stderr.contains(mentions), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"));
    assert!(!out_dir.exists(), "{args:?} wrote {}", out_dir.display());
}

#[test]
fn bad_input_is_refused_in_one_sentence_with_nothing_written() {
    let dir = scratch("bad");
    let out = dir.join("out");
    let o = s(&out);
    for shard in ["0/4", "5/4", "x"] {
        assert_refused(
            &["campaign", "--count", "4", "--shard", shard, "--out", o],
            shard,
            &out,
        );
    }
    assert_refused(&["campaign", "--seeds", "x", "--out", o], "x", &out);
    assert_refused(&["campaign", "--seeds", "9..2", "--out", o], "9..2", &out);
    assert_refused(&["campaign", "--time", "soon", "--out", o], "soon", &out);
    assert_refused(&["campaign", "--out", o], "--seeds", &out);
    assert_refused(
        &["campaign", "--resume", s(&dir)],
        "not a paylab campaign",
        &out,
    );
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let under_file = file.join("campaign");
    assert_refused(
        &["campaign", "--count", "2", "--out", s(&under_file)],
        "cannot write",
        &under_file,
    );
    let real = dir.join("real");
    assert_eq!(campaign(&real, &["--count", "2"]).status.code(), Some(0));
    let resume = |extra: &[&str]| {
        let mut args = vec!["campaign", "--resume", s(&real)];
        args.extend_from_slice(extra);
        paylab(&args)
    };
    let other = resume(&["--count", "3"]);
    assert_eq!(other.status.code(), Some(2), "{}", text(&other));
    assert!(text(&other).contains("other flags"));
    assert_eq!(
        resume(&["--bug", "tcc-confirm-not-idempotent"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        resume(&["--jobs", "1", "--quiet"]).status.code(),
        Some(0),
        "nothing left to run"
    );
    let again = campaign(&real, &["--count", "2"]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "an existing campaign is not overwritten"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The corpus replays as pinned, a changed expectation fails the replay, and
/// `--save-failures` turns a campaign's failures into entries that replay to their verdict.
#[test]
fn the_corpus_replays_and_saved_failures_become_entries() {
    let dir = scratch("corpus");
    let corpus = dir.join("seeds");
    let run = dir.join("run");
    let out = campaign(
        &run,
        &[
            "--seeds",
            "0..12",
            "--bug",
            "tcc-confirm-not-idempotent",
            "--save-failures",
            s(&corpus),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failing: Vec<RunRecord> = records(&run).into_iter().filter(|r| r.failed()).collect();
    let saved = std::fs::read_dir(&corpus)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert_eq!(saved, failing.len());
    let out = paylab(&["replay", s(&corpus)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let hand = dir.join("hand");
    std::fs::create_dir_all(&hand).unwrap();
    let seed = failing[0].seed;
    let entry = |expect: &str| {
        format!("why = \"A test entry.\"\nseed = {seed}\nargs = [\"--bug\", \"tcc-confirm-not-idempotent\", \"--ops\", \"10\"]\nexpect = \"{expect}\"\ninvariant = \"exactly-once\"\n")
    };
    std::fs::write(hand.join("fence.toml"), entry("VIOLATION")).unwrap();
    let out = paylab(&["replay", s(&hand)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::write(hand.join("fence.toml"), entry("PASS")).unwrap();
    let out = paylab(&["replay", s(&hand)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("CHANGED  fence.toml"));
    std::fs::write(hand.join("fence.toml"), "seed = \"zero\"").unwrap();
    assert_eq!(
        paylab(&["replay", s(&hand)]).status.code(),
        Some(2),
        "a bad entry"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The coverage table lists every probe the platform declares: the campaign's list is checked
/// against the source of `paylab_system::probes::names`.
#[test]
fn the_coverage_list_names_every_declared_probe() {
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../system/src/probes.rs"),
    )
    .expect("probes.rs");
    let names = source
        .split("pub mod names")
        .nth(1)
        .expect("the names module");
    let declared: BTreeSet<&str> = names
        .lines()
        .filter(|l| l.trim_start().starts_with("pub const"))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    let listed: BTreeSet<&str> = paylab_sim::campaign::summary::PROBES
        .iter()
        .copied()
        .collect();
    assert_eq!(listed, declared);
}

/// A child that panicked reports a CRASH verdict, which the campaign keeps with its message;
/// a child that dies without a report (killed by a signal, aborted) is a crash too.
#[test]
fn a_crashed_or_silent_child_is_recorded_as_a_crash() {
    use paylab_sim::campaign::runner::Job;
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("crash");
    let script = |name: &str, body: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let job = |exe: PathBuf| Job {
        exe,
        config: RunConfig::new(3),
        plan: None,
        report_dir: dir.join("failures"),
        timeout: std::time::Duration::from_secs(60),
    };
    let report = r#"{"verdict":{"Crash":"boom in ledger/1"},"violations":[],"probes":{"fault.crash":1},"sim_ms":5,"trace_hash":"00000000000000ff"}"#;
    let panicked = script("panicked", &format!("echo '{report}'; exit 4"));
    let out = job(panicked).run();
    assert_eq!(out.verdict, CampaignVerdict::Crash);
    assert_eq!(out.detail.as_deref(), Some("boom in ledger/1"));
    assert_eq!(out.trace_hash, "00000000000000ff");
    let aborted = script("aborted", "echo 'fatal runtime error' >&2; kill -ABRT $$");
    let out = job(aborted).run();
    assert_eq!(out.verdict, CampaignVerdict::Crash);
    let detail = out.detail.unwrap();
    assert!(
        detail.contains("no report") && detail.contains("fatal runtime error"),
        "{detail}"
    );
    assert!(out.trace_hash.is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

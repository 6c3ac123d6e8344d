//! The failure explorer in a real browser: Debian's chromium renders the page of a known
//! failing seed headless; the page's script reports into a `#selftest` element (script errors,
//! lanes drawn, operations highlighted), which `--dump-dom` shows after the load. A screenshot
//! is kept under `target/tmp/explorer/` (a CI artifact). The campaign page is tested the same
//! way, on a small real campaign with failing seeds and on ten thousand seeds.
//!
//! Without chromium the browser tests skip loudly, unless `CI` is set: there, its absence is a
//! failure.

use paylab_sim::explore;
use paylab_sim::run::run_recorded;
use paylab_sim::{services, RunConfig};
use paylab_system::bugs::Bug;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The browser, or `None` (after saying so) when the test may skip.
fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but chromium is not installed: .ci/run installs it"
        );
        eprintln!("\n*** SKIPPED: chromium is not installed (apt-get install chromium); the explorer's browser test did not run ***\n");
    }
    found
}

fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer");
    std::fs::create_dir_all(&dir).expect("a test output folder");
    dir
}

/// Runs chromium headless on `page` with `args` and returns its stdout; kills it after two
/// minutes (a frozen page), which fails the test.
fn headless(browser: &str, page: &Path, args: &[&str]) -> String {
    // A profile of its own (tests run in parallel) and stdout to a file (a page's DOM is
    // larger than a pipe's buffer).
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, Ordering::SeqCst);
    let stem = page.file_stem().and_then(|s| s.to_str()).unwrap_or("page");
    let profile = out_dir().join(format!("profile-{}-{stem}-{n}", std::process::id()));
    let stdout_path = profile.with_extension("out");
    let stdout = std::fs::File::create(&stdout_path).expect("a file for chromium's output");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    while child.try_wait().expect("chromium runs").is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish with {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&profile);
    let out = std::fs::read(&stdout_path).expect("chromium's output");
    let _ = std::fs::remove_file(&stdout_path);
    String::from_utf8_lossy(&out).into_owned()
}

/// The `data-NAME` attribute of the page's `#selftest` element, from the dumped DOM.
fn selftest(dom: &str, name: &str) -> String {
    let at = dom
        .find("id=\"selftest\"")
        .unwrap_or_else(|| panic!("no #selftest in the DOM:\n{dom}"));
    let tag = &dom[dom[..at].rfind('<').expect("a tag")..];
    let tag = &tag[..tag.find('>').expect("the tag ends")];
    let key = format!("data-{name}=\"");
    let start = tag
        .find(&key)
        .unwrap_or_else(|| panic!("#selftest has no data-{name}: {tag}"))
        + key.len();
    tag[start..start + tag[start..].find('"').expect("closing quote")].to_string()
}

fn config() -> RunConfig {
    RunConfig {
        bug: Some(Bug::RefundCheckThenAct),
        ..RunConfig::new(0)
    }
}

#[test]
fn the_explorer_of_a_failing_seed_renders_its_lanes_and_the_named_operation() {
    let Some(browser) = chromium() else { return };
    let run = run_recorded(config(), paylab_sim::plan::FaultPlan::generate(&config()));
    assert_eq!(run.report.verdict.exit_code(), 1, "seed 0 fails");
    let violation = run
        .report
        .violations
        .iter()
        .find(|v| v.invariant.name() == "refund-bound")
        .expect("refund-bound broke");
    let named = violation.evidence["refunds"]
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let page = out_dir().join("refund-check-then-act-seed-0.html");
    std::fs::write(&page, explore::page(&run, &run.report.repro())).expect("the page");

    let dom = headless(browser, &page, &["--dump-dom"]);
    assert_eq!(selftest(&dom, "errors"), "0", "script errors on the page");
    assert_eq!(selftest(&dom, "ready"), "1", "the script finished");
    let config = &run.report.config;
    let clients = config.clients + config.hostile_clients();
    let lanes = 1 + services::nodes(config).len() + clients as usize;
    assert_eq!(selftest(&dom, "lanes"), lanes.to_string());
    assert_eq!(selftest(&dom, "ops"), run.history.len().to_string());
    assert!(selftest(&dom, "highlighted").parse::<usize>().unwrap() > 0);
    let row = format!("class=\"highlighted\" data-request=\"{named}\"");
    assert!(
        dom.contains(&row),
        "the named operation {named} is highlighted in the DOM"
    );
    assert!(dom.contains("refund-bound"), "the broken rule is named");

    let shot = out_dir().join("refund-check-then-act-seed-0.png");
    let _ = std::fs::remove_file(&shot);
    headless(
        browser,
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,900",
        ],
    );
    assert!(shot.exists(), "a screenshot at {}", shot.display());
}

/// The self-test can fail: a page whose data does not parse reports the error.
#[test]
fn a_broken_page_reports_its_script_error() {
    let Some(browser) = chromium() else { return };
    let run = run_recorded(config(), paylab_sim::plan::FaultPlan::none());
    let html = explore::page(&run, "repro").replacen("\"lanes\":", "\"lanes\":x", 1);
    let page = out_dir().join("broken.html");
    std::fs::write(&page, html).expect("the page");
    let dom = headless(browser, &page, &["--dump-dom"]);
    assert_eq!(selftest(&dom, "errors"), "1");
    assert_eq!(selftest(&dom, "ready"), "0");
}

/// Ten thousand operations: the page still finishes drawing (no frozen tab) and keeps every
/// operation.
#[test]
fn a_ten_thousand_operation_run_renders() {
    let Some(browser) = chromium() else { return };
    let config = RunConfig {
        ops: 1_200,
        ..RunConfig::new(5)
    };
    let run = run_recorded(
        config.clone(),
        paylab_sim::plan::FaultPlan::generate(&config),
    );
    assert!(
        run.history.len() >= 10_000,
        "{} operations",
        run.history.len()
    );
    let page = out_dir().join("ten-thousand.html");
    std::fs::write(&page, explore::page(&run, "repro")).expect("the page");
    let dom = headless(browser, &page, &["--dump-dom"]);
    assert_eq!(selftest(&dom, "errors"), "0");
    assert_eq!(selftest(&dom, "ops"), run.history.len().to_string());
}

fn paylab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_paylab"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("paylab runs")
}

/// A fresh campaign folder's path (the folder itself not created).
fn campaign_dir(name: &str) -> PathBuf {
    let dir = out_dir().join(format!("campaign-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A small real campaign with failing seeds: `summary.html` is written beside `summary.md`,
/// loads without script errors, lists every failing seed with a link to its explorer page, and
/// marks the corners no run reached as untested.
#[test]
fn the_campaign_page_lists_its_failing_seeds_and_untested_corners() {
    let Some(browser) = chromium() else { return };
    let dir = campaign_dir("tcc");
    let d = dir.to_str().expect("a UTF-8 path");
    let out = paylab(&[
        "campaign",
        "--seeds",
        "10..22",
        "--bug",
        "tcc-no-fence",
        "--jobs",
        "2",
        "--ops",
        "40",
        "--quiet",
        "--out",
        d,
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    let summary: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let failures = summary["failures"].as_array().expect("failures");
    let untested = summary["untested"].as_array().expect("untested").len();
    assert!(!failures.is_empty() && untested > 0, "{text}");
    let page = dir.join("summary.html");
    let dom = headless(browser, &page, &["--dump-dom"]);
    assert_eq!(selftest(&dom, "errors"), "0", "script errors on the page");
    assert_eq!(selftest(&dom, "ready"), "1", "the script finished");
    assert_eq!(selftest(&dom, "runs"), "12");
    assert_eq!(selftest(&dom, "cells"), "12", "one cell per seed");
    assert_eq!(selftest(&dom, "failures"), failures.len().to_string());
    assert_eq!(selftest(&dom, "untested"), untested.to_string());
    assert_eq!(dom.matches("class=\"untested-mark\"").count(), untested);
    for f in failures {
        let seed = f["seed"].as_u64().unwrap();
        assert!(
            dom.contains(&format!("id=\"seed-{seed}\"")),
            "seed {seed} listed"
        );
        let report = f["report"].as_str().expect("a failure report");
        let html = Path::new(report).with_extension("html");
        assert!(
            dir.join(&html).exists(),
            "{} next to its report",
            html.display()
        );
        let link = format!("href=\"{}\"", html.display());
        assert!(dom.contains(&link), "{link} on the page");
    }
    let shot = out_dir().join("campaign-tcc-no-fence.png");
    let _ = std::fs::remove_file(&shot);
    let window = "--window-size=1400,1100";
    headless(
        browser,
        &page,
        &[&format!("--screenshot={}", shot.display()), window],
    );
    assert!(shot.exists(), "a screenshot at {}", shot.display());
    std::fs::remove_dir_all(&dir).ok();
}

/// `paylab report html DIR` remakes a campaign's page (the same bytes the campaign wrote) or
/// writes it where `--out` says; a folder that is no campaign, or an unwritable page, is one
/// sentence on stderr, exit 2 and nothing written. Needs no browser.
#[test]
fn report_html_of_a_campaign_folder_writes_its_page_or_refuses_in_one_sentence() {
    let dir = campaign_dir("cli");
    let d = dir.to_str().expect("a UTF-8 path");
    let out = paylab(&[
        "campaign", "--count", "3", "--ops", "10", "--quiet", "--out", d,
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let page = dir.join("summary.html");
    let written = std::fs::read(&page).expect("the campaign wrote its page");
    std::fs::remove_file(&page).unwrap();
    let out = paylab(&["report", "html", d]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read(&page).expect("remade"),
        written,
        "the same page"
    );
    let other = out_dir().join(format!("campaign-cli-{}.html", std::process::id()));
    let o = other.to_str().unwrap();
    let out = paylab(&["report", "html", d, "--out", o]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&std::fs::read(&other).unwrap()).contains("campaign-data"));
    std::fs::remove_file(&other).ok();
    std::fs::remove_file(&page).unwrap();
    let out = paylab(&["campaign", "--resume", d, "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(std::fs::read(&page).expect("--resume writes it"), written);
    let merged = campaign_dir("cli-merged");
    let out = paylab(&["report", "merge", d, "--out", merged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        merged.join("summary.html").is_file(),
        "report merge writes it"
    );
    std::fs::remove_dir_all(&merged).ok();

    let empty = campaign_dir("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let missing = empty.join("no-such-folder").join("page.html");
    for (folder, out_flag) in [(empty.as_path(), None), (dir.as_path(), Some(&missing))] {
        let mut args = vec!["report", "html", folder.to_str().unwrap()];
        if let Some(m) = out_flag {
            args.extend(["--out", m.to_str().unwrap()]);
        }
        let out = paylab(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one sentence: {err}");
        assert!(err.starts_with("error: "), "{err}");
    }
    let left: Vec<_> = std::fs::read_dir(&empty).unwrap().collect();
    assert!(left.is_empty(), "nothing written: {left:?}");
    std::fs::remove_dir_all(&empty).ok();
    std::fs::remove_dir_all(&dir).ok();
}

/// Ten thousand seeds: the strip draws a cell per seed and the page finishes (no frozen tab).
#[test]
fn a_ten_thousand_seed_campaign_page_renders() {
    use paylab_sim::campaign::manifest::Manifest;
    use paylab_sim::campaign::results::{CampaignVerdict, RunRecord};
    use paylab_sim::campaign::seeds::{SeedRange, Selection};
    let Some(browser) = chromium() else { return };
    let records: Vec<RunRecord> = (0..10_000u64)
        .map(|seed| RunRecord {
            seed,
            config: RunConfig::new(seed),
            verdict: if seed % 97 == 3 {
                CampaignVerdict::Violation
            } else {
                CampaignVerdict::Pass
            },
            invariants: Vec::new(),
            detail: None,
            probes: Default::default(),
            trace_hash: String::new(),
            rerun_hash: None,
            sim_ms: 1,
            wall_ms: 1,
            repro: format!("cargo run --release -- run --seed {seed}"),
            report: None,
        })
        .collect();
    let selection = Selection::Range(SeedRange {
        start: 0,
        end: 10_000,
    });
    let manifest = Manifest::new(selection, None, RunConfig::new(0));
    let summary = paylab_sim::campaign::summary::summarize(&manifest, &records);
    let dir = campaign_dir("ten-thousand");
    std::fs::create_dir_all(&dir).unwrap();
    let page = explore::campaign::write(&dir, &summary, &records).expect("the page");
    let dom = headless(browser, &page, &["--dump-dom"]);
    assert_eq!(selftest(&dom, "errors"), "0");
    assert_eq!(selftest(&dom, "cells"), "10000");
    assert_eq!(
        selftest(&dom, "failures"),
        summary.failures.len().to_string()
    );
    let shot = out_dir().join("campaign-ten-thousand.png");
    let _ = std::fs::remove_file(&shot);
    let window = "--window-size=1400,900";
    headless(
        browser,
        &page,
        &[&format!("--screenshot={}", shot.display()), window],
    );
    assert!(shot.exists(), "a screenshot at {}", shot.display());
    std::fs::remove_dir_all(&dir).ok();
}

/// The comparison page renders in a real browser: every strategy's row, the three charts with
/// bars, no script error.
#[test]
fn the_compare_page_renders_its_table_and_charts() {
    let Some(browser) = chromium() else { return };
    let dir = out_dir().join(format!("compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().expect("a UTF-8 path");
    let out = paylab(&[
        "compare",
        "--strategies",
        "all",
        "--seeds",
        "0..2",
        "--ops",
        "30",
        "--jobs",
        "2",
        "--out",
        d,
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let dom = headless(browser, &dir.join("compare.html"), &["--dump-dom"]);
    assert_eq!(selftest(&dom, "errors"), "0", "script errors on the page");
    assert_eq!(selftest(&dom, "ready"), "1");
    assert_eq!(selftest(&dom, "charts"), "3", "three charts with bars");
    let strategies = paylab_system::strategy::StrategyKind::ALL;
    assert_eq!(selftest(&dom, "strategies"), strategies.len().to_string());
    for s in strategies {
        assert!(
            dom.contains(&format!("data-strategy=\"{}\"", s.name())),
            "{s} row"
        );
    }
}

//! The failure explorer in a real browser: Debian's chromium renders the page of a known
//! failing seed headless; the page's script reports into a `#selftest` element (script errors,
//! lanes drawn, operations highlighted), which `--dump-dom` shows after the load. A screenshot
//! is kept under `target/tmp/explorer/` (a CI artifact).
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
    let lanes = 1 + services::nodes(&run.report.config).len() + run.report.config.clients as usize;
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

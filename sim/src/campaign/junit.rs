//! `DIR/junit.xml`: one test case per seed (`seed-N`, in seed order), a failing seed as a
//! `<failure>` whose type is its verdict, whose message names the broken invariants and
//! whose text holds the repro command; the form GitHub, GitLab and Jenkins ingest.

use super::results::RunRecord;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

pub const FILE: &str = "junit.xml";

/// The JUnit XML of a campaign's records.
pub fn render(name: &str, records: &[RunRecord]) -> String {
    let mut sorted: Vec<&RunRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.seed);
    let mut suite = TestSuite::new("paylab campaign");
    suite.add_property(("campaign", name));
    let mut total = Duration::ZERO;
    for r in sorted {
        let time = Duration::from_millis(r.wall_ms);
        total += time;
        let mut case = TestCase::new(format!("seed-{}", r.seed), status(r));
        case.set_classname("paylab.campaign").set_time(time);
        suite.add_test_case(case);
    }
    suite.set_time(total);
    let mut report = Report::new("paylab");
    report.set_time(total).add_test_suite(suite);
    report.to_string().expect("a JUnit report serializes")
}

fn status(r: &RunRecord) -> TestCaseStatus {
    if !r.failed() {
        return TestCaseStatus::success();
    }
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
    let broken = if r.invariants.is_empty() {
        String::new()
    } else {
        format!(": {}", r.invariants.join(", "))
    };
    let mut text = format!("repro: {}", r.repro);
    if let Some(detail) = &r.detail {
        text.push_str(&format!("\n{detail}"));
    }
    if let Some(report) = &r.report {
        text.push_str(&format!("\nreport: {report}"));
    }
    status
        .set_type(r.verdict.word())
        .set_message(format!("seed {} {}{broken}", r.seed, r.verdict.word()))
        .set_description(text);
    status
}

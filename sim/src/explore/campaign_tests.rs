use super::*;
use crate::campaign::manifest::Manifest;
use crate::campaign::seeds::{SeedRange, Selection};
use crate::campaign::summary::summarize;
use crate::RunConfig;

fn record(seed: u64, verdict: CampaignVerdict, probes: &[&str]) -> RunRecord {
    let failed = verdict != CampaignVerdict::Pass;
    RunRecord {
        seed,
        config: RunConfig::new(seed),
        verdict,
        invariants: if failed {
            vec!["reservation-release".into()]
        } else {
            Vec::new()
        },
        detail: None,
        probes: probes.iter().map(|p| (p.to_string(), 1)).collect(),
        trace_hash: format!("{seed:016x}"),
        rerun_hash: None,
        sim_ms: 100,
        wall_ms: 5,
        repro: format!("cargo run --release -- run --seed {seed}"),
        report: failed.then(|| format!("failures/seed-{seed}.json")),
    }
}

/// Six seeds (two failing, one of them with an explorer page on disk), one probe fired.
fn fixture(dir: &Path) -> (Summary, Vec<RunRecord>) {
    let records: Vec<RunRecord> = (0..6)
        .rev()
        .map(|s| match s {
            1 => record(s, CampaignVerdict::Violation, &["fault.crash"]),
            4 => record(s, CampaignVerdict::Hang, &[]),
            _ => record(s, CampaignVerdict::Pass, &["fault.crash"]),
        })
        .collect();
    std::fs::create_dir_all(dir.join("failures")).unwrap();
    std::fs::write(dir.join("failures/seed-1.html"), "page").unwrap();
    let _ = std::fs::remove_file(dir.join("failures/seed-4.html"));
    let selection = Selection::Range(SeedRange { start: 0, end: 6 });
    let manifest = Manifest::new(selection, None, RunConfig::new(0));
    (summarize(&manifest, &records), records)
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("paylab-page-{name}-{}", std::process::id()))
}

#[test]
fn the_page_data_counts_verdicts_lists_failing_seeds_and_flags_untested() {
    let dir = scratch("data");
    let (summary, records) = fixture(&dir);
    let d = data(&summary, &records, &dir, "");
    assert_eq!(d["runs"], 6);
    assert_eq!(d["verdicts"]["PASS"], 4);
    assert_eq!(d["verdicts"]["VIOLATION"], 1);
    assert_eq!(d["verdicts"]["HANG"], 1);
    assert_eq!(d["verdicts"]["CRASH"], 0);
    let failures = d["failures"].as_array().unwrap();
    let seeds: Vec<u64> = failures
        .iter()
        .map(|f| f["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, [1, 4]);
    assert_eq!(failures[0]["verdict"], "VIOLATION");
    assert_eq!(failures[0]["invariants"][0], "reservation-release");
    assert_eq!(
        failures[0]["page"], "failures/seed-1.html",
        "the page exists"
    );
    assert!(failures[1]["page"].is_null(), "no page on disk, no link");
    let coverage = d["coverage"].as_array().unwrap();
    let row = |name: &str| coverage.iter().find(|c| c["name"] == name).unwrap().clone();
    assert_eq!(row("fault.crash")["runs"], 5);
    assert_eq!(row("fault.crash")["untested"], false);
    let untested: Vec<&Value> = coverage.iter().filter(|c| c["untested"] == true).collect();
    assert_eq!(untested.len(), summary.untested.len());
    assert!(
        untested.len() + 1 == coverage.len(),
        "only fault.crash fired"
    );
    assert_eq!(
        d["seeds"]["seed"],
        json!([0, 1, 2, 3, 4, 5]),
        "in seed order"
    );
    assert_eq!(d["seeds"]["verdict"], json!([0, 1, 0, 0, 4, 0]));
    assert_eq!(
        d["seeds"]["repro"][4],
        "cargo run --release -- run --seed 4"
    );
    let d = data(&summary, &records, &dir, "/elsewhere/");
    assert_eq!(d["failures"][0]["page"], "/elsewhere/failures/seed-1.html");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_page_embeds_its_data_without_closing_its_script() {
    let dir = scratch("page");
    let (mut summary, records) = fixture(&dir);
    summary.campaign = "--seeds 0..6 </script><b>".into();
    let html = page(&summary, &records, &dir, "");
    assert_eq!(
        html.matches("</script>").count(),
        3,
        "the data, the shared self-test and the page's script"
    );
    assert!(html.contains("id=\"campaign-data\"") && html.contains("--seeds 0..6 \\u003c/script>"));
    assert!(html.contains("<title>paylab campaign: 6 runs, 2 failing</title>"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no network"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_folder_without_a_campaign_is_refused_in_one_sentence() {
    let dir = scratch("empty");
    std::fs::create_dir_all(&dir).unwrap();
    let e = load(&dir).unwrap_err();
    assert!(
        e.contains("not a paylab campaign") && !e.contains('\n'),
        "{e}"
    );
    std::fs::write(dir.join(summary::JSON_FILE), "{ not json").unwrap();
    let e = load(&dir).unwrap_err();
    assert!(
        e.contains("is not a campaign summary") && !e.contains('\n'),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

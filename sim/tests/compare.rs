//! `paylab compare`: the three files, valid JSON with every strategy asked for, the Markdown
//! table; bad input gets one sentence and exit 2. (The page's browser test is in
//! `explorer.rs`, beside the other pages'.)

use std::path::PathBuf;
use std::process::Command;

fn paylab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_paylab"))
        .args(args)
        .output()
        .expect("paylab runs")
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("compare-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn compare_writes_markdown_json_and_html_for_every_strategy() {
    let dir = out_dir("files");
    let d = dir.to_str().expect("a UTF-8 path");
    let out = paylab(&[
        "compare",
        "--strategies",
        "tcc,naive",
        "--seeds",
        "0..3",
        "--ops",
        "30",
        "--jobs",
        "2",
        "--out",
        d,
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let md = std::fs::read_to_string(dir.join("compare.md")).expect("compare.md");
    assert!(
        md.contains("| `tcc` |") && md.contains("| `naive` |"),
        "{md}"
    );
    assert!(md.contains("| strategy | claims | runs passing |"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("compare.json")).expect("json"))
            .expect("valid JSON");
    let names: Vec<&str> = json["strategies"]
        .as_array()
        .expect("strategies")
        .iter()
        .map(|s| s["strategy"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["tcc", "naive"]);
    for s in json["strategies"].as_array().expect("strategies") {
        assert_eq!(s["runs"], 3);
        assert_eq!(s["per_run"].as_array().expect("runs").len(), 3);
    }
    let html = std::fs::read_to_string(dir.join("compare.html")).expect("compare.html");
    assert!(html.contains("id=\"compare-data\"") && html.contains("id=\"selftest\""));
}

#[test]
fn bad_input_is_one_sentence_and_exit_2() {
    for args in [
        &["compare", "--strategies", "bogus", "--seeds", "0..2"][..],
        &["compare", "--seeds", "5..5"][..],
        &["compare", "--seeds", "banana"][..],
        &[
            "compare",
            "--strategies",
            "tcc",
            "--seeds",
            "0..2",
            "--shards",
            "0",
        ][..],
    ] {
        let out = paylab(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

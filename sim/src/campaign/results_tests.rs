use super::*;

fn record(seed: u64, verdict: CampaignVerdict) -> RunRecord {
    RunRecord {
        seed,
        config: RunConfig::new(seed),
        verdict,
        invariants: Vec::new(),
        detail: None,
        probes: BTreeMap::new(),
        trace_hash: format!("{seed:016x}"),
        rerun_hash: None,
        sim_ms: 1,
        wall_ms: 2,
        repro: format!("run --seed {seed}"),
        report: None,
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("paylab-results-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn appended_records_read_back_and_a_torn_last_line_is_cut_off() {
    let dir = scratch("torn");
    assert!(
        read(&dir, true).unwrap().is_empty(),
        "no log yet: no records"
    );
    let mut log = ResultLog::open(&dir).unwrap();
    let (a, b) = (
        record(1, CampaignVerdict::Pass),
        record(2, CampaignVerdict::Hang),
    );
    log.append(&a).unwrap();
    log.append(&b).unwrap();
    let whole = std::fs::read_to_string(dir.join(FILE)).unwrap();
    std::fs::write(dir.join(FILE), format!("{whole}{{\"seed\":3,\"conf")).unwrap();
    assert_eq!(
        read(&dir, false).unwrap(),
        [a.clone(), b.clone()],
        "skipped"
    );
    assert_ne!(std::fs::read_to_string(dir.join(FILE)).unwrap(), whole);
    assert_eq!(read(&dir, true).unwrap(), [a, b], "repaired");
    assert_eq!(
        std::fs::read_to_string(dir.join(FILE)).unwrap(),
        whole,
        "cut back"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_malformed_whole_line_is_an_error_naming_it() {
    let dir = scratch("malformed");
    std::fs::write(dir.join(FILE), "{\"seed\":1}\n").unwrap();
    let err = read(&dir, true).unwrap_err().to_string();
    assert!(err.contains("line 1"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn verdict_words_round_trip() {
    for v in CampaignVerdict::ALL {
        assert_eq!(CampaignVerdict::from_word(v.word()), Some(*v));
        let json = serde_json::to_string(v).unwrap();
        assert_eq!(json, format!("\"{}\"", v.word()));
    }
    assert_eq!(CampaignVerdict::from_word("MAYBE"), None);
}

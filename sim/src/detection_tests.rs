use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn seed_ranges_parse_half_open_or_inclusive_and_bad_ones_are_refused() {
    assert_eq!(parse_seeds("0..100").unwrap(), 0..100);
    assert_eq!(parse_seeds("0..=99").unwrap(), 0..100);
    assert_eq!(parse_seeds(" 5 .. 7 ").unwrap(), 5..7);
    for bad in [
        "",
        "5",
        "7..5",
        "5..5",
        "x..9",
        "0..y",
        "0..=18446744073709551615",
        "-1..3",
    ] {
        let e = parse_seeds(bad).unwrap_err();
        assert!(e.contains("--seeds") && !e.contains('\n'), "{bad:?}: {e}");
    }
}

#[test]
fn a_detection_counts_failures_the_named_invariant_and_its_first_seed() {
    let mut d = Detection::new(Bug::RefundCheckThenAct);
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
    d.add(4, &set(&[]));
    d.add(7, &set(&["exactly-once"]));
    d.add(9, &set(&["refund-bound", "exactly-once"]));
    d.add(8, &set(&["refund-bound"]));
    assert_eq!((d.runs, d.failing, d.named), (4, 3, 2));
    assert_eq!(d.first_named, Some(8));
    assert_eq!(d.fired["exactly-once"], 2);
    assert!((d.named_percent() - 50.0).abs() < 1e-9);
    // The named invariant comes first in what the table lists.
    assert_eq!(fired_list(&d), "refund-bound 2, exactly-once 2");
    let table = render_markdown(&[d]);
    assert_eq!(table.len(), 3);
    assert!(
        table[2].contains("| 2 of 4 (50.0 %) | 8 | 3 |"),
        "{}",
        table[2]
    );
}

#[test]
fn a_bug_is_run_in_its_message_mode_with_the_faults_asked_for() {
    use paylab_system::trade::events::MessageMode;
    let c = config(Bug::CheckbackFromMemory, 3, None);
    assert_eq!(c.messages, Some(MessageMode::Txmsg));
    assert_eq!((c.seed, c.bug), (3, Some(Bug::CheckbackFromMemory)));
    let c = config(Bug::TccNoFence, 3, Some(vec![FaultKind::Crash]));
    assert_eq!(c.faults, Some(vec![FaultKind::Crash]));
}

/// Real runs: a bug every seed shows, counted the same on one worker or two.
#[test]
fn measuring_finds_a_planted_bug_and_does_not_depend_on_the_worker_count() {
    let bugs = [Bug::RefundCheckThenAct];
    let heard = AtomicUsize::new(0);
    let one = measure(&bugs, 0..3, 1, None, &|done, all| {
        assert_eq!(all, 3);
        heard.fetch_max(done, Ordering::Relaxed);
    });
    assert_eq!(heard.load(Ordering::Relaxed), 3, "every run is reported");
    assert_eq!(one, measure(&bugs, 0..3, 2, None, &|_, _| {}));
    let d = &one[0];
    assert_eq!(d.runs, 3);
    assert!(d.named >= 1, "{d:?}");
    assert_eq!(d.first_named, Some(0), "{d:?}");
}

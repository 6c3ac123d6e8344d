use super::*;

fn breach(node: &str, promised_len: u64, durable_len: u64) -> SyncBreach {
    SyncBreach {
        node: node.into(),
        file: "ledger.log".into(),
        call: "sync".into(),
        promised_len,
        durable_len,
        at_ms: 1_234,
    }
}

#[test]
fn no_breach_no_violation() {
    assert!(check(&[]).is_empty());
}

#[test]
fn each_breach_is_a_violation_naming_node_file_and_both_lengths() {
    let found = check(&[breach("ledger/1", 300, 120), breach("broker/0", 80, 40)]);
    assert_eq!(found.len(), 2);
    let v = &found[0];
    assert_eq!(v.invariant, Invariant::Durability);
    assert_eq!(v.invariant.name(), "durability");
    for (key, value) in [
        ("node", "ledger/1"),
        ("file", "ledger.log"),
        ("call", "sync"),
        ("promised_len", "300"),
        ("durable_len", "120"),
        ("at_ms", "1234"),
    ] {
        assert_eq!(v.evidence.get(key).map(String::as_str), Some(value), "{v}");
    }
    assert!(
        v.message.contains("ledger/1") && v.message.contains("ledger.log"),
        "{v}"
    );
    assert_eq!(found[1].evidence["node"], "broker/0");
    assert_ne!(
        found[0].message, found[1].message,
        "two breaches, two violations"
    );
}

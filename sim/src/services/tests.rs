use super::*;
use paylab_system::trade::MessageMode;
use std::collections::BTreeSet;

#[test]
fn every_kind_has_its_own_role_subnet_and_addresses() {
    let roles: BTreeSet<String> = KINDS.iter().map(|k| k.role().to_string()).collect();
    assert_eq!(roles.len(), KINDS.len(), "roles are unique: {roles:?}");
    let config = RunConfig::new(1);
    let addrs: BTreeSet<SocketAddr> = nodes(&config)
        .iter()
        .map(|(name, kind)| kind.addr(name.index))
        .chain((0..config.clients).map(client_addr))
        .collect();
    assert_eq!(
        addrs.len(),
        nodes(&config).len() + config.clients as usize,
        "one address per node"
    );
}

#[test]
fn the_default_run_has_the_nodes_it_always_had_in_the_same_order() {
    let names: Vec<String> = nodes(&RunConfig::new(1))
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    let expected = [
        "ledger/0",
        "ledger/1",
        "ledger/2",
        "ledger/3",
        "trade/0",
        "trade/1",
        "payment/0",
        "payment/1",
        "broker/0",
        "consumer-records/0",
        "merchant-query/0",
        "notify/0",
        "merchant/0",
        "bank/0",
        "bank/1",
        "clearing/0",
        "recon/0",
    ];
    assert_eq!(names, expected);
    for name in &names {
        let parsed: NodeName = name.parse().expect("a node name parses");
        assert!(kind_of(&parsed.role).is_some(), "{name} has a kind");
    }
}

#[test]
fn plans_target_the_platform_not_the_merchant_and_not_an_absent_message_layer() {
    let config = RunConfig::new(1);
    let targets = fault_targets(&config);
    assert_eq!(targets.len(), 16);
    assert!(targets.iter().all(|n| n.role != merchant::ROLE));
    let quiet = RunConfig {
        messages: None,
        banks: 0,
        ..RunConfig::new(1)
    };
    assert_eq!(fault_targets(&quiet).len(), 8, "ledgers, trades, payments");
    let no_banks = RunConfig {
        banks: 0,
        ..RunConfig::new(1)
    };
    assert_eq!(
        fault_targets(&no_banks).len(),
        12,
        "no banks, no gateway, no reconciliation"
    );
    let txmsg = RunConfig {
        messages: Some(MessageMode::Txmsg),
        ..RunConfig::new(1)
    };
    assert_eq!(fault_targets(&txmsg), targets);
}

#[test]
fn buggify_points_run_where_their_code_runs() {
    let on = |point: Point| -> Vec<String> {
        fault_targets(&RunConfig::new(1))
            .into_iter()
            .filter(|n| runs_point(n, point))
            .map(|n| n.role.to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    assert_eq!(on(Point::CommitToPhaseTwo), ["payment"]);
    assert_eq!(on(Point::TryToReply), ["ledger"]);
    assert_eq!(on(Point::OutcomeToTrade), ["payment"]);
    assert_eq!(on(Point::OrderToTrade), ["payment"]);
    assert_eq!(on(Point::CommitToMessage), ["trade"]);
    assert_eq!(on(Point::HalfToLocal), ["trade"]);
    assert_eq!(on(Point::AbortToMessage), ["trade"]);
    assert_eq!(on(Point::BeginToReply), ["trade"]);
    assert_eq!(on(Point::ConfirmToEnd), ["payment"]);
    assert_eq!(on(Point::CancelToEnd), ["payment"]);
    assert_eq!(on(Point::TradeToFinish), ["payment"]);
    assert_eq!(on(Point::CallbackToRecord), ["notify"]);
    assert_eq!(on(Point::InstructionToReply), ["bank"]);
    assert_eq!(on(Point::AnswerToRecord), ["clearing"]);
    assert_eq!(
        on(Point::ConsumeToOffset),
        ["consumer-records", "merchant-query", "notify"]
    );
    for point in Point::ALL {
        assert!(!on(*point).is_empty(), "{point} runs somewhere");
    }
}

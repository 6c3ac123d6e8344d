//! A comparison is only fair if every configuration of a seed meets the same faults and the
//! same requests: for every strategy and message mode, a seed's fault plan and the intents its
//! clients draw must be the same. These tests fail if either comes to depend on the strategy,
//! the message mode or the outcomes.

use paylab_sim::plan::FaultPlan;
use paylab_sim::{run, RunConfig, RunReport};
use paylab_system::probes::names;
use paylab_system::strategy::StrategyKind;
use paylab_system::trade::MessageMode;

/// Every message mode, `None` being `--messages off`.
const MODES: [Option<MessageMode>; 3] = [None, Some(MessageMode::Outbox), Some(MessageMode::Txmsg)];

fn configs(seed: u64) -> Vec<RunConfig> {
    let mut out = Vec::new();
    for &strategy in StrategyKind::ALL {
        for messages in MODES {
            let config = RunConfig {
                strategy,
                messages,
                ..RunConfig::new(seed)
            };
            // A strategy that needs the message layer has no run without it.
            if config.validate().is_ok() {
                out.push(config);
            }
        }
    }
    out
}

#[test]
fn a_seeds_plan_is_the_same_for_every_strategy_and_message_mode() {
    for seed in 0..50 {
        let plans: Vec<FaultPlan> = configs(seed).iter().map(FaultPlan::generate).collect();
        for (config, plan) in configs(seed).iter().zip(&plans) {
            assert_eq!(
                plan,
                &plans[0],
                "seed {seed}: the plan of {config} differs from that of {}",
                configs(seed)[0]
            );
        }
    }
}

#[test]
fn a_seeds_runs_meet_the_same_faults_and_ask_the_same_intents() {
    let mut skipped = 0;
    for seed in 0..6 {
        let reports: Vec<RunReport> = configs(seed).into_iter().map(run).collect();
        let first = &reports[0];
        assert!(first.intents.count > 0, "seed {seed}: no intent recorded");
        for r in &reports {
            assert_eq!(
                r.plan, first.plan,
                "seed {seed}: {} met other faults",
                r.config
            );
            assert_eq!(
                r.intents, first.intents,
                "seed {seed}: {} asked other operations than {}",
                r.config, first.config
            );
        }
        // The run without a message layer skips the faults aimed at its broker, replica and
        // notifier slots; the others apply them.
        skipped += reports
            .iter()
            .filter(|r| r.config.messages.is_none())
            .map(|r| r.probe(names::FAULT_SKIPPED))
            .sum::<u64>();
        for r in reports.iter().filter(|r| r.config.messages.is_some()) {
            assert_eq!(
                r.probe(names::FAULT_SKIPPED),
                0,
                "{} has every slot",
                r.config
            );
        }
    }
    assert!(skipped > 0, "no seed aimed a fault at a message-layer slot");
}

#[test]
fn different_seeds_draw_different_plans_and_intents() {
    let a = run(RunConfig::new(1));
    let b = run(RunConfig::new(2));
    assert_ne!(a.plan, b.plan);
    assert_ne!(a.intents, b.intents);
}

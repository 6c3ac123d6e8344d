//! The smaller cases a shrinker tries next: each function takes the current case and returns
//! candidates, most aggressive first, each one a single simplification of it.

use crate::config::{bug_needs_messages, RunConfig};
use crate::plan::{Fault, FaultEvent, FaultKind, FaultPlan};
use paylab_system::node::NodeName;
use std::collections::BTreeSet;

/// One configuration and fault plan: what a run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub config: RunConfig,
    pub plan: FaultPlan,
}

/// A candidate and the words for it, printed when it is accepted.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub what: String,
    pub case: Case,
}

/// Smaller values of a knob, most aggressive first: the minimum, a quarter, a half, three
/// quarters, one less; each below `now`, at least `min`, no repeats.
pub fn smaller(now: u32, min: u32) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for v in [min, now / 4, now / 2, now - now / 4, now.saturating_sub(1)] {
        if v >= min && v < now && !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Fewer business steps per client, fewer clients, fewer ledger shards, trade shards and
/// payment nodes (each candidate changes one knob; faults that name a node which no longer
/// exists move to a sibling of the same role), a shorter open-loop run.
pub fn config_knobs(case: &Case) -> Vec<Candidate> {
    type Knob = (&'static str, fn(&mut RunConfig) -> &mut u32);
    let knobs: [Knob; 5] = [
        ("ops", |c| &mut c.ops),
        ("clients", |c| &mut c.clients),
        ("shards", |c| &mut c.shards),
        ("trade-shards", |c| &mut c.trade_shards),
        ("payment-nodes", |c| &mut c.payment_nodes),
    ];
    let open_loop = case.config.rate.is_some();
    let mut out = Vec::new();
    for (name, knob) in knobs {
        if open_loop && name == "ops" {
            continue;
        }
        let mut probe = case.config.clone();
        let now = *knob(&mut probe);
        for value in smaller(now, 1) {
            let mut config = case.config.clone();
            *knob(&mut config) = value;
            let what = format!("--{name} {now} -> {value}");
            out.extend(refit_both(config, case, &what));
        }
    }
    if let Some(ms) = case.config.duration_ms {
        for value in smaller(ms.min(u64::from(u32::MAX)) as u32, 100) {
            let mut config = case.config.clone();
            config.duration_ms = Some(u64::from(value));
            let what = format!("--duration {ms}ms -> {value}ms");
            out.extend(refit_both(config, case, &what));
        }
    }
    out
}

/// The case under a smaller `config`, twice: with every fault moved to the same fraction of
/// the (shorter) workload, then with the faults where they were.
fn refit_both(config: RunConfig, case: &Case, what: &str) -> Vec<Candidate> {
    let scaled = scale_faults(&case.plan, case.config.total_ops(), config.total_ops());
    let mut out = Vec::new();
    if scaled != case.plan {
        if let Some(c) = refit(config.clone(), &scaled) {
            let what = format!("{what}, faults kept at their share of the workload");
            out.push(Candidate { what, case: c });
        }
    }
    if let Some(c) = refit(config, &case.plan) {
        out.push(Candidate {
            what: what.to_string(),
            case: c,
        });
    }
    out
}

/// The plan with each fault's `after_ops` scaled from a workload of `from` operations to one
/// of `to`.
pub fn scale_faults(plan: &FaultPlan, from: u64, to: u64) -> FaultPlan {
    let events = plan
        .events
        .iter()
        .map(|e| FaultEvent {
            after_ops: e.after_ops.min(from) * to / from.max(1),
            fault: e.fault.clone(),
        })
        .collect();
    with_events(plan, events)
}

/// A simpler mix: no message layer when the planted bug does not live in it.
pub fn simpler_mix(case: &Case) -> Vec<Candidate> {
    let config = &case.config;
    let needs = config.bug.is_some_and(bug_needs_messages);
    if config.messages.is_none() || needs {
        return Vec::new();
    }
    let off = RunConfig {
        messages: None,
        ..config.clone()
    };
    refit(off, &case.plan)
        .map(|case| Candidate {
            what: "--messages off".to_string(),
            case,
        })
        .into_iter()
        .collect()
}

/// The plan refitted to `config`: every node a fault names that `config` lacks is replaced by
/// the node of the same role at its index modulo the role's count; a fault whose role is gone
/// entirely, or a partition left without a node on a side, is dropped. `None` if the config or
/// the refitted plan is invalid.
pub fn refit(config: RunConfig, plan: &FaultPlan) -> Option<Case> {
    config.validate().ok()?;
    let nodes = config.server_nodes();
    let events: Vec<FaultEvent> = plan
        .events
        .iter()
        .filter_map(|e| {
            let fault = refit_fault(&e.fault, &nodes)?;
            Some(FaultEvent {
                after_ops: e.after_ops,
                fault,
            })
        })
        .collect();
    let plan = with_events(plan, events);
    plan.validate(&config).ok()?;
    Some(Case { config, plan })
}

/// A plan with these events, its kinds narrowed to those the events use.
pub fn with_events(plan: &FaultPlan, events: Vec<FaultEvent>) -> FaultPlan {
    let used: BTreeSet<FaultKind> = events.iter().map(|e| e.fault.kind()).collect();
    FaultPlan {
        kinds: plan
            .kinds
            .iter()
            .copied()
            .filter(|k| used.contains(k))
            .collect(),
        events,
    }
}

fn refit_node(node: &NodeName, nodes: &[NodeName]) -> Option<NodeName> {
    if nodes.contains(node) {
        return Some(node.clone());
    }
    let siblings: Vec<&NodeName> = nodes.iter().filter(|n| n.role == node.role).collect();
    if siblings.is_empty() {
        return None;
    }
    Some(siblings[node.index as usize % siblings.len()].clone())
}

fn refit_fault(fault: &Fault, nodes: &[NodeName]) -> Option<Fault> {
    let mut fault = fault.clone();
    match &mut fault {
        Fault::Crash { node, .. }
        | Fault::Pause { node, .. }
        | Fault::ClockJump { node, .. }
        | Fault::SlowDisk { node, .. } => *node = refit_node(node, nodes)?,
        Fault::OneWay { from, to, .. } => {
            *from = refit_node(from, nodes)?;
            *to = refit_node(to, nodes)?;
            if from == to {
                return None;
            }
        }
        Fault::Partition { side, other, .. } => {
            let fit = |list: &[NodeName]| -> BTreeSet<NodeName> {
                list.iter().filter_map(|n| refit_node(n, nodes)).collect()
            };
            let new_side = fit(side);
            let new_other: BTreeSet<NodeName> = fit(other).difference(&new_side).cloned().collect();
            if new_side.is_empty() || new_other.is_empty() {
                return None;
            }
            *side = new_side.into_iter().collect();
            *other = new_other.into_iter().collect();
        }
        _ => {}
    }
    Some(fault)
}

/// Each fault alone, in plan order.
pub fn single_faults(case: &Case) -> Vec<Candidate> {
    let events = &case.plan.events;
    if events.len() < 2 {
        return Vec::new();
    }
    events
        .iter()
        .map(|e| Candidate {
            what: format!("keep only '{}'", e.fault),
            case: Case {
                config: case.config.clone(),
                plan: with_events(&case.plan, vec![e.clone()]),
            },
        })
        .collect()
}

/// The case under the next `count` seeds, each in the smallest topology (one client, one node
/// of each kind) with at most 8, then at most 24 business steps: another workload stream, for
/// when the original seed's streams need more operations than that to reach the failure.
pub fn other_seeds(case: &Case, count: u64) -> Vec<Candidate> {
    [8, 24]
        .into_iter()
        .filter(|&steps| steps == 8 || case.config.ops > 8)
        .flat_map(|steps| (1..=count).map(move |k| (steps, k)))
        .filter_map(|(steps, k)| {
            let seed = case.config.seed.wrapping_add(k);
            let config = RunConfig {
                seed,
                clients: 1,
                shards: 1,
                trade_shards: 1,
                payment_nodes: 1,
                ops: case.config.ops.min(steps),
                ..case.config.clone()
            };
            let what = format!(
                "seed {} -> {seed} (another workload stream), one client and one node a kind",
                case.config.seed
            );
            let plan = scale_faults(&case.plan, case.config.total_ops(), config.total_ops());
            refit(config, &plan).map(|case| Candidate { what, case })
        })
        .collect()
}

/// Simpler faults, one event changed per candidate: a window halved, a torn write made clean,
/// a partition narrowed to one node a side, the fault moved later (halfway to the end of the
/// workload).
pub fn simpler_faults(case: &Case) -> Vec<Candidate> {
    let total = case.config.total_ops();
    let mut out = Vec::new();
    for (i, event) in case.plan.events.iter().enumerate() {
        let mut variants: Vec<(String, FaultEvent)> = simpler(&event.fault)
            .into_iter()
            .map(|(what, fault)| {
                let after_ops = event.after_ops;
                (what, FaultEvent { after_ops, fault })
            })
            .collect();
        let later = event.after_ops + (total.saturating_sub(event.after_ops)) / 2;
        if later > event.after_ops && total.saturating_sub(event.after_ops) >= 4 {
            let moved = FaultEvent {
                after_ops: later,
                fault: event.fault.clone(),
            };
            variants.push((format!("later: after {later} ops"), moved));
        }
        for (what, changed) in variants {
            let mut events = case.plan.events.clone();
            events[i] = changed;
            events.sort_by_key(|e| e.after_ops);
            let plan = with_events(&case.plan, events);
            if plan.validate(&case.config).is_ok() {
                let what = format!("fault '{}': {what}", event.fault);
                let config = case.config.clone();
                out.push(Candidate {
                    what,
                    case: Case { config, plan },
                });
            }
        }
    }
    out
}

/// The simpler versions of one fault.
fn simpler(fault: &Fault) -> Vec<(String, Fault)> {
    let mut out = Vec::new();
    if let Some(ms) = window(fault) {
        for shorter in [ms / 8, ms / 2] {
            if shorter >= 10 {
                let mut f = fault.clone();
                set_window(&mut f, shorter);
                out.push((format!("{ms}ms -> {shorter}ms"), f));
            }
        }
    }
    match fault {
        Fault::Crash {
            node,
            down_ms,
            torn_keep: Some(_),
            in_window,
        } => out.push((
            "no torn write".to_string(),
            Fault::Crash {
                node: node.clone(),
                down_ms: *down_ms,
                torn_keep: None,
                in_window: *in_window,
            },
        )),
        Fault::Partition {
            side,
            other,
            for_ms,
        } if side.len() + other.len() > 2 => out.push((
            format!("only {} | {}", side[0], other[0]),
            Fault::Partition {
                side: vec![side[0].clone()],
                other: vec![other[0].clone()],
                for_ms: *for_ms,
            },
        )),
        _ => {}
    }
    out
}

/// How long the fault lasts (a crash: its downtime), if it has a window.
fn window(fault: &Fault) -> Option<u64> {
    match fault {
        Fault::Crash { down_ms, .. } => Some(*down_ms),
        Fault::ClockJump { .. } => None,
        Fault::Pause { for_ms, .. }
        | Fault::Partition { for_ms, .. }
        | Fault::OneWay { for_ms, .. }
        | Fault::Loss { for_ms, .. }
        | Fault::Latency { for_ms, .. }
        | Fault::Duplicate { for_ms, .. }
        | Fault::Delay { for_ms, .. }
        | Fault::SlowDisk { for_ms, .. }
        | Fault::Buggify { for_ms, .. } => Some(*for_ms),
    }
}

fn set_window(fault: &mut Fault, ms: u64) {
    match fault {
        Fault::Crash { down_ms, .. } => *down_ms = ms,
        Fault::ClockJump { .. } => {}
        Fault::Pause { for_ms, .. }
        | Fault::Partition { for_ms, .. }
        | Fault::OneWay { for_ms, .. }
        | Fault::Loss { for_ms, .. }
        | Fault::Latency { for_ms, .. }
        | Fault::Duplicate { for_ms, .. }
        | Fault::Delay { for_ms, .. }
        | Fault::SlowDisk { for_ms, .. }
        | Fault::Buggify { for_ms, .. } => *for_ms = ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(s: &str) -> NodeName {
        s.parse().expect("a node name")
    }

    fn plan(events: Vec<(u64, Fault)>) -> FaultPlan {
        let events = events
            .into_iter()
            .map(|(after_ops, fault)| FaultEvent { after_ops, fault })
            .collect();
        with_events(
            &FaultPlan {
                kinds: FaultKind::ALL.to_vec(),
                events: Vec::new(),
            },
            events,
        )
    }

    #[test]
    fn smaller_values_go_from_the_minimum_up_and_stay_below() {
        assert_eq!(smaller(100, 1), vec![1, 25, 50, 75, 99]);
        assert_eq!(smaller(2, 1), vec![1]);
        assert!(smaller(1, 1).is_empty());
    }

    #[test]
    fn a_smaller_topology_moves_faults_to_siblings_and_drops_empty_partitions() {
        let crash = Fault::Crash {
            node: node("ledger/3"),
            down_ms: 100,
            torn_keep: None,
            in_window: None,
        };
        let cut = Fault::Partition {
            side: vec![node("ledger/1")],
            other: vec![node("ledger/2")],
            for_ms: 100,
        };
        let config = RunConfig {
            shards: 1,
            ..RunConfig::new(1)
        };
        let case = refit(config, &plan(vec![(5, crash), (6, cut)])).expect("valid");
        assert_eq!(case.plan.events.len(), 1, "both sides became ledger/0");
        assert!(
            matches!(&case.plan.events[0].fault, Fault::Crash { node: n, .. } if *n == node("ledger/0"))
        );
        assert_eq!(case.plan.kinds, vec![FaultKind::Crash]);
    }

    #[test]
    fn faults_keep_their_share_of_a_shorter_workload() {
        let pause = Fault::Pause {
            node: node("trade/0"),
            for_ms: 10,
        };
        let scaled = scale_faults(&plan(vec![(400, pause.clone()), (900, pause)]), 800, 80);
        let at: Vec<u64> = scaled.events.iter().map(|e| e.after_ops).collect();
        assert_eq!(at, vec![40, 80], "past the end stays at the end");
    }

    #[test]
    fn every_candidate_is_a_valid_smaller_case() {
        let config = RunConfig::new(3);
        let case = Case {
            plan: FaultPlan::generate(&config),
            config,
        };
        let all = [
            config_knobs(&case),
            single_faults(&case),
            simpler_faults(&case),
            simpler_mix(&case),
            other_seeds(&case, 4),
        ];
        for c in all.iter().flatten() {
            c.case.config.validate().expect("a valid config");
            c.case.plan.validate(&c.case.config).expect("a valid plan");
            assert_ne!(c.case, case, "{}", c.what);
        }
        assert_eq!(single_faults(&case).len(), case.plan.events.len());
        assert!(other_seeds(&case, 4)
            .iter()
            .all(|c| c.case.config.clients == 1));
    }
}

//! The explorer's data: a run's lanes, operations, fault windows, violations and probes, as the
//! JSON blob the page's script draws from.

use crate::plan::{Fault, FaultPlan};
use crate::run::RecordedRun;
use crate::services;
use crate::trace::TraceEvent;
use paylab_invariants::{Operation, Outcome};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A lane of the timeline: the cluster-wide faults, one per serving node, one per client.
#[derive(Debug, Clone, Serialize)]
pub struct Lane {
    pub name: String,
    pub kind: &'static str,
}

/// A shaded window on one or more lanes.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub lanes: Vec<usize>,
    pub start: u64,
    pub end: u64,
    pub kind: String,
    pub label: String,
}

/// The lanes of a run: `cluster`, then every serving node in start order, then every client.
pub fn lanes(run: &RecordedRun) -> Vec<Lane> {
    let config = &run.report.config;
    let nodes = services::nodes(config).into_iter().map(|(n, _)| Lane {
        name: n.to_string(),
        kind: "node",
    });
    // The hostile clients come after the honest ones.
    let hostile = config.clients..config.clients + config.hostile_clients();
    let clients = (0..config.clients).map(|c| Lane {
        name: services::CLIENT.at(c).to_string(),
        kind: "client",
    });
    let clients = clients.chain(hostile.map(|c| Lane {
        name: services::CLIENT.at(c).to_string(),
        kind: "client",
    }));
    let cluster = Lane {
        name: "cluster".to_string(),
        kind: "cluster",
    };
    std::iter::once(cluster)
        .chain(nodes)
        .chain(clients)
        .collect()
}

/// Every request id, trade id, account, activity and event the violations name (a list of
/// them, comma-separated, names each).
/// A liveness verdict names its stuck work in words (`payment/0: order c0-p5 (x0.19)`): each
/// word counts.
pub fn named(run: &RecordedRun) -> BTreeSet<String> {
    let stuck: &[String] = match &run.report.verdict {
        crate::run::Verdict::Liveness(stuck) => stuck,
        _ => &[],
    };
    let words = stuck.iter().flat_map(|s| s.split_whitespace());
    run.report
        .violations
        .iter()
        .flat_map(|v| v.evidence.values())
        .flat_map(|value| value.split(','))
        .chain(words)
        .map(|s| s.trim_matches(|c: char| "():, ".contains(c)).to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether a violation names the operation (its request or its trade).
pub fn is_named(op: &Operation, named: &BTreeSet<String>) -> bool {
    named.contains(op.request.as_str())
        || op
            .trade
            .as_ref()
            .is_some_and(|t| named.contains(t.as_str()))
}

/// The operations as compact rows: `[lane, invoke, complete, outcome (0 ok, 1 fail,
/// 2 unknown), kind, request, trade, amount, named (0/1), fail code]`.
pub fn op_rows(run: &RecordedRun, lanes: &[Lane], named: &BTreeSet<String>) -> Vec<Value> {
    let lane_of: BTreeMap<&str, usize> = lanes
        .iter()
        .enumerate()
        .map(|(i, l)| (l.name.as_str(), i))
        .collect();
    run.history
        .iter()
        .map(|op| {
            let client = services::CLIENT.at(op.client).to_string();
            let lane = lane_of.get(client.as_str()).copied().unwrap_or(0);
            let (outcome, code) = match &op.outcome {
                Outcome::Ok => (0, String::new()),
                Outcome::Fail(r) => (1, r.code.clone()),
                Outcome::Unknown => (2, String::new()),
            };
            json!([
                lane,
                op.invoke_ms,
                op.complete_ms.max(op.invoke_ms),
                outcome,
                op.kind.to_string(),
                op.request,
                op.trade,
                op.amount.map(|a| a.to_string()),
                u8::from(is_named(op, named)),
                code
            ])
        })
        .collect()
}

/// The fault windows: each crash until its node's restart, each fault from its start to its
/// end (a clock jump is an instant), on the lanes of the nodes it names (cluster-wide faults on
/// the `cluster` lane).
pub fn windows(run: &RecordedRun, lanes: &[Lane]) -> Vec<Window> {
    let lane = |name: &str| lanes.iter().position(|l| l.name == name).unwrap_or(0);
    let end_of_run = run.report.sim_ms;
    let mut out = Vec::new();
    let mut open: Vec<(String, u64)> = Vec::new();
    let mut down: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for event in &run.faults {
        match event {
            TraceEvent::Crash {
                at_ms,
                node,
                lost_bytes,
                torn_bytes,
            } => {
                let label =
                    format!("{node} down (lost {lost_bytes} B unsynced, {torn_bytes} B torn)");
                down.insert(node.clone(), (*at_ms, label));
            }
            TraceEvent::Restart { at_ms, node } => {
                if let Some((start, label)) = down.remove(node) {
                    out.push(window(vec![lane(node)], start, *at_ms, "crash", label));
                }
            }
            TraceEvent::Fault { at_ms, fault } => open.push((fault.clone(), *at_ms)),
            TraceEvent::FaultEnd { at_ms, fault } => {
                if let Some(i) = open.iter().position(|(f, _)| f == fault) {
                    let (f, start) = open.remove(i);
                    out.push(fault_window(&run.report.plan, &f, start, *at_ms, &lane));
                }
            }
            TraceEvent::Healed { .. } | TraceEvent::Invoke { .. } => {}
            TraceEvent::Complete { .. } | TraceEvent::Snapshot { .. } => {}
        }
    }
    for (node, (start, label)) in down {
        out.push(window(vec![lane(&node)], start, end_of_run, "crash", label));
    }
    for (f, start) in open {
        // Crashes are drawn from their crash and restart; what is left is an instant.
        if !f.starts_with("crash ") {
            out.push(fault_window(&run.report.plan, &f, start, start, &lane));
        }
    }
    out
}

fn window(lanes: Vec<usize>, start: u64, end: u64, kind: &str, label: String) -> Window {
    Window {
        lanes,
        start,
        end,
        kind: kind.to_string(),
        label,
    }
}

/// The window of the plan's fault whose description is `text`.
fn fault_window(
    plan: &FaultPlan,
    text: &str,
    start: u64,
    end: u64,
    lane: &dyn Fn(&str) -> usize,
) -> Window {
    let fault = plan
        .events
        .iter()
        .map(|e| &e.fault)
        .find(|f| f.to_string() == text);
    let (kind, nodes) = match fault {
        Some(f) => (f.kind().name().to_string(), fault_nodes(f)),
        None => ("fault".to_string(), Vec::new()),
    };
    let lanes = if nodes.is_empty() {
        vec![0]
    } else {
        nodes.iter().map(|n| lane(n)).collect()
    };
    window(lanes, start, end, &kind, text.to_string())
}

/// The nodes a fault names, as lane names.
fn fault_nodes(fault: &Fault) -> Vec<String> {
    match fault {
        Fault::Crash { node, .. }
        | Fault::Pause { node, .. }
        | Fault::ClockJump { node, .. }
        | Fault::SlowDisk { node, .. } => vec![node.to_string()],
        Fault::Partition { side, other, .. } => {
            side.iter().chain(other).map(|n| n.to_string()).collect()
        }
        Fault::OneWay { from, to, .. } => vec![from.to_string(), to.to_string()],
        _ => Vec::new(),
    }
}

/// When the run healed, if it got there.
pub fn healed_ms(run: &RecordedRun) -> Option<u64> {
    run.faults.iter().find_map(|e| match e {
        TraceEvent::Healed { at_ms } => Some(*at_ms),
        _ => None,
    })
}

/// When each broken invariant was first seen (its earliest violation's snapshot), in time
/// order: `[invariant, at_ms]`.
pub fn seen(run: &RecordedRun) -> Vec<(String, u64)> {
    let mut first: BTreeMap<&str, u64> = BTreeMap::new();
    for v in &run.report.violations {
        let Some(at) = v.evidence.get("snapshot_ms").and_then(|s| s.parse().ok()) else {
            continue;
        };
        let entry = first.entry(v.invariant.name()).or_insert(at);
        *entry = (*entry).min(at);
    }
    let mut out: Vec<(String, u64)> = first
        .into_iter()
        .map(|(i, at)| (i.to_string(), at))
        .collect();
    out.sort_by_key(|(_, at)| *at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{FaultEvent, FaultKind};
    use crate::RunConfig;

    fn crashed_run() -> RecordedRun {
        let config = RunConfig {
            shards: 1,
            clients: 2,
            ops: 3,
            ..RunConfig::new(4)
        };
        let event = |after_ops, fault| FaultEvent { after_ops, fault };
        let plan = FaultPlan {
            kinds: vec![FaultKind::Crash, FaultKind::Pause],
            events: vec![
                event(
                    4,
                    Fault::Crash {
                        node: "ledger/0".parse().unwrap(),
                        down_ms: 300,
                        torn_keep: None,
                        in_window: None,
                    },
                ),
                event(
                    6,
                    Fault::Pause {
                        node: "trade/1".parse().unwrap(),
                        for_ms: 200,
                    },
                ),
            ],
        };
        crate::run::run_recorded(config, plan)
    }

    #[test]
    fn lanes_and_windows_follow_the_nodes_and_the_fault_events() {
        let run = crashed_run();
        let lanes = lanes(&run);
        let nodes = services::nodes(&run.report.config).len();
        let hostile = run.report.config.hostile_clients() as usize;
        assert_eq!(lanes.len(), 1 + nodes + 2 + hostile);
        assert_eq!(lanes[0].kind, "cluster");
        let lane = |name: &str| lanes.iter().position(|l| l.name == name).unwrap();
        let windows = windows(&run, &lanes);
        let crash = windows.iter().find(|w| w.kind == "crash").expect("a crash");
        assert_eq!(crash.lanes, vec![lane("ledger/0")]);
        assert!(crash.end > crash.start, "down until its restart");
        let pause = windows.iter().find(|w| w.kind == "pause").expect("a pause");
        assert_eq!(pause.lanes, vec![lane("trade/1")]);
        assert_eq!(pause.end - pause.start, 200);
        let rows = op_rows(&run, &lanes, &BTreeSet::new());
        assert_eq!(rows.len(), run.history.len());
        assert!(rows.iter().all(|r| r[0].as_u64().unwrap() as usize > nodes));
    }
}

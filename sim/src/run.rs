//! One run: a fresh OS thread, a fresh madsim runtime, the faulted phase (load + fault plan,
//! with god's-eye snapshots checked as it goes), the healed phase, and the final check.

use crate::capture::{self, Capture, CaptureStats, WorldView};
use crate::cluster::{client_addr, kill_node, lock, node_at, Cluster};
use crate::config::RunConfig;
use crate::history::History;
use crate::nemesis::Nemesis;
use crate::plan::FaultPlan;
use crate::services::{self, Scope};
use crate::trace::{Trace, TraceEvent};
use crate::workload::{now_ms, run_client, ClientContext};
use madsim::runtime::{Handle, NodeHandle};
use paylab_invariants::liveness::Unfinished;
use paylab_invariants::{
    check_all, check_always, durability, IncrementalChecker, Invariant, Observation, Operation,
    Outcome, SyncBreach, Violation,
};
use paylab_system::broker::FlushPolicy;
use paylab_system::durability::Breaches;
use paylab_system::probes::Probes;
use paylab_system::transport::NetFaults;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A run that takes longer than this in simulated time is stuck: the runtime panics. The
/// workload's own length adds to it (a closed-loop step takes about a third of a simulated
/// second with clearing), so a long run is not mistaken for a stuck one.
const SIM_TIME_LIMIT: Duration = Duration::from_secs(3_600);

/// Simulated time a run may take per business step of one client, beyond [`SIM_TIME_LIMIT`].
const SIM_TIME_PER_STEP: Duration = Duration::from_secs(1);

/// The simulated-time limit of a run of `config`.
fn time_limit(config: &RunConfig) -> Duration {
    SIM_TIME_LIMIT + SIM_TIME_PER_STEP * config.ops
}

/// How the operations ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    pub ok: usize,
    pub fail: usize,
    pub unknown: usize,
}

/// The verdict of a run and the exit code it maps to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Every invariant held (exit 0).
    Pass,
    /// A safety invariant broke (exit 1).
    Violation,
    /// The platform did not converge after healing (exit 3): what stayed unfinished, one
    /// rendered [`Unfinished`] item each.
    Liveness(Vec<String>),
    /// Platform code panicked (exit 4); the message says where.
    Crash(String),
}

impl Verdict {
    pub fn exit_code(&self) -> i32 {
        match self {
            Verdict::Pass => 0,
            Verdict::Violation => 1,
            Verdict::Liveness(_) => 3,
            Verdict::Crash(_) => 4,
        }
    }

    /// One word for the verdict.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Violation => "VIOLATION",
            Verdict::Liveness(_) => "LIVENESS",
            Verdict::Crash(_) => "CRASH",
        }
    }
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub config: RunConfig,
    pub plan: FaultPlan,
    pub verdict: Verdict,
    pub ops: OpCounts,
    pub violations: Vec<Violation>,
    /// Anomalies the configuration chose to risk (`--broker-flush async`, unsafe by design),
    /// each naming the loss that explains it: reported, counted, not a failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_anomalies: Vec<Violation>,
    pub snapshots_checked: u32,
    pub probes: BTreeMap<String, u64>,
    pub sim_ms: u64,
    /// Simulated milliseconds from the heal to the end of the drain, when everything in
    /// flight finished (`None`: it never converged within the horizon).
    pub converge_ms: Option<u64>,
    pub wall_ms: u64,
    /// In JSON, 16 hex digits as everywhere else (a JSON number would lose precision in
    /// JavaScript).
    #[serde(serialize_with = "crate::trace::serialize_hex")]
    pub trace_hash: u64,
    pub trace_events: usize,
    /// For failure reports: the operations the violations name, and the last ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history_excerpt: Vec<Operation>,
    /// For failure reports: the last trace events.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trace_tail: Vec<TraceEvent>,
    /// Failures by reason and pay latency, from the history.
    pub summary: crate::summary::RunSummary,
    /// With banks: channel orders, unknowns and their resolution, reconciliation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clearing: Option<crate::clearing_figures::ClearingFigures>,
    /// The intents the clients drew (`crate::workload::intent`): how many, and their hash,
    /// the same for every strategy and message mode of a seed.
    pub intents: Intents,
    /// RPC sends and fsyncs of the whole run (every node, the clients' RPCs included).
    pub rpcs: u64,
    pub fsyncs: u64,
    /// Locks prepared 2PC branches held (`--strategy 2pc`; zero otherwise).
    pub locks: Locks,
}

/// The locks prepared branches held in a run: how many were released, their total and their
/// longest hold, in simulated ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Locks {
    pub released: u64,
    pub total_ms: u64,
    pub longest_ms: u64,
}

/// The intents a run's clients drew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Intents {
    pub count: u64,
    #[serde(serialize_with = "crate::trace::serialize_hex")]
    pub hash: u64,
}

/// How many trace events and recent operations a failure report keeps.
const TRACE_TAIL: usize = 200;
const RECENT_OPS: usize = 30;

impl RunReport {
    /// How often the coverage probe `name` fired (0 if never).
    pub fn probe(&self, name: &str) -> u64 {
        self.probes.get(name).copied().unwrap_or(0)
    }

    /// The command that replays this run exactly, from its configuration's own flags.
    pub fn repro(&self) -> String {
        format!(
            "cargo run --release -- run {}",
            self.config.to_args().join(" ")
        )
    }
}

/// Runs one simulation on a fresh OS thread (madsim's determinism needs a thread per run) and
/// turns a panic inside it into a `Crash` verdict instead of taking the caller down.
pub fn run(config: RunConfig) -> RunReport {
    let plan = FaultPlan::generate(&config);
    run_with_plan(config, plan)
}

/// Runs one simulation with an exact fault plan (a saved one, or the seed's own).
///
/// The run's evidence (history, probes, trace) is created here, outside the simulation
/// thread, so that a panic inside it still leaves a failure report with what led up to it.
pub fn run_with_plan(config: RunConfig, plan: FaultPlan) -> RunReport {
    run_inner(config, plan, None).0
}

/// A run with everything a timeline of it needs: the report, every operation of the history,
/// and every fault, crash, restart and heal event (for failure explorers and shrinkers, which
/// re-run a report's exact configuration and plan to get them).
#[derive(Debug, Clone)]
pub struct RecordedRun {
    pub report: RunReport,
    pub history: Vec<Operation>,
    pub faults: Vec<TraceEvent>,
}

/// Runs one simulation with an exact fault plan and keeps its whole history and fault events.
pub fn run_recorded(config: RunConfig, plan: FaultPlan) -> RecordedRun {
    let (report, evidence) = run_inner(config, plan, None);
    RecordedRun {
        report,
        history: evidence.history.operations(),
        faults: evidence.trace.fault_events(),
    }
}

/// Runs one simulation of the seed's own plan, comparing at every periodic snapshot the
/// capture's delta and the world built from the deltas with a whole read of the cluster (a
/// mismatch panics: a `Crash` verdict that says where). For the tests that prove the capture.
pub fn run_verifying_capture(config: RunConfig) -> (RunReport, CaptureStats) {
    let plan = FaultPlan::generate(&config);
    let stats = Arc::new(Mutex::new(CaptureStats::default()));
    let (report, _) = run_inner(config, plan, Some(stats.clone()));
    let stats = *stats.lock().unwrap_or_else(|p| p.into_inner());
    (report, stats)
}

fn run_inner(
    config: RunConfig,
    plan: FaultPlan,
    verify: Option<Arc<Mutex<CaptureStats>>>,
) -> (RunReport, Evidence) {
    let probes = Probes::new();
    let evidence = Evidence {
        history: History::new(),
        trace: Trace::new(&probes),
        probes,
        verify,
        found: Found::default(),
    };
    let (cfg, pln, ev) = (config.clone(), plan.clone(), evidence.clone());
    let started = Instant::now();
    let joined = std::thread::Builder::new()
        .name(format!("paylab-seed-{}", config.seed))
        .spawn(move || simulate(cfg, pln, ev))
        .expect("spawn the simulation thread")
        .join();
    let report = match joined {
        Ok(report) => report,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            let wall_ms = started.elapsed().as_millis() as u64;
            let out = evidence.found_before_crash(&config);
            evidence.report(config, plan, Verdict::Crash(message), out, wall_ms)
        }
    };
    (report, evidence)
}

/// The handles a run records its evidence into; `Send`, so they outlive a panicking
/// simulation thread.
#[derive(Clone)]
struct Evidence {
    history: History,
    probes: Probes,
    trace: Trace,
    /// Set for a run that verifies its capture: what the verification found.
    verify: Option<Arc<Mutex<CaptureStats>>>,
    /// The violations the checks found so far, kept here so that a crash still reports them.
    found: Found,
}

/// The violations found so far, by invariant and message (the first occurrence of each).
type Found = Arc<Mutex<BTreeMap<String, Violation>>>;

impl Evidence {
    /// What a crashed run had found: the violations its checks saw before the panic, and the
    /// durability breaches the logs recorded since its last check (a planted durability bug
    /// can make the platform's own consistency checks panic before the next check runs).
    fn found_before_crash(&self, config: &RunConfig) -> Outcomes {
        let mut checker = Checker {
            seen: self.found.clone(),
            durability: self.probes.durability().clone(),
            ..Checker::default()
        };
        let breaches = checker.durability_breaches();
        checker.note(breaches, None);
        let (violations, expected) = checker.into_violations(config);
        Outcomes {
            violations,
            expected,
            ..Outcomes::default()
        }
    }

    /// The run's report: the verdict, what the harness found, and the evidence (a failure
    /// keeps the operations it names and the trace's tail; a pass keeps neither).
    fn report(
        &self,
        config: RunConfig,
        plan: FaultPlan,
        verdict: Verdict,
        out: Outcomes,
        wall_ms: u64,
    ) -> RunReport {
        let history = self.history.operations();
        let (history_excerpt, trace_tail) = if verdict == Verdict::Pass {
            (Vec::new(), Vec::new())
        } else {
            (
                excerpt(&history, &out.violations),
                self.trace.tail(TRACE_TAIL),
            )
        };
        let clearing = (config.banks > 0).then(|| {
            crate::clearing_figures::ClearingFigures::new(out.orders, &self.probes.snapshot())
        });
        RunReport {
            config,
            plan,
            verdict,
            ops: count(&history),
            violations: out.violations,
            expected_anomalies: out.expected,
            snapshots_checked: out.snapshots_checked,
            probes: self.probes.snapshot(),
            sim_ms: out.sim_ms,
            converge_ms: out.converge_ms,
            wall_ms,
            trace_hash: self.trace.hash(),
            trace_events: self.trace.len(),
            summary: crate::summary::summarize(&history),
            clearing,
            intents: Intents {
                count: out.intents.0,
                hash: out.intents.1,
            },
            rpcs: self.probes.rpc_calls(),
            fsyncs: self.probes.fsyncs(),
            locks: {
                let (released, total_ms, longest_ms) = self.probes.locks();
                Locks {
                    released,
                    total_ms,
                    longest_ms,
                }
            },
            history_excerpt,
            trace_tail,
        }
    }
}

/// What the harness returns from inside the runtime (nothing, for a run that panicked).
#[derive(Default)]
struct Outcomes {
    /// What stayed unfinished past the drain horizon (empty if the platform converged).
    stuck: Vec<Unfinished>,
    violations: Vec<Violation>,
    /// Violations the run's own unsafe configuration explains (see `Checker::into_violations`).
    expected: Vec<Violation>,
    snapshots_checked: u32,
    /// Channel orders by kind and outcome at the final read.
    orders: BTreeMap<String, usize>,
    sim_ms: u64,
    converge_ms: Option<u64>,
    /// How many intents the clients drew, and their hash.
    intents: (u64, u64),
}

fn simulate(config: RunConfig, plan: FaultPlan, evidence: Evidence) -> RunReport {
    let mut runtime =
        madsim::runtime::Runtime::with_seed_and_config(config.seed, madsim::Config::default());
    runtime.set_time_limit(time_limit(&config));
    // Wall time is read outside the runtime: inside it, time is simulated.
    let started = Instant::now();
    let out = runtime.block_on(harness(config.clone(), plan.clone(), evidence.clone()));
    let wall_ms = started.elapsed().as_millis() as u64;
    let verdict = if !out.violations.is_empty() {
        Verdict::Violation
    } else if !out.stuck.is_empty() {
        Verdict::Liveness(out.stuck.iter().map(Unfinished::to_string).collect())
    } else {
        Verdict::Pass
    };
    evidence.report(config, plan, verdict, out, wall_ms)
}

/// The operations a failure report keeps: those whose request or trade a violation names,
/// and the last few.
fn excerpt(history: &[Operation], violations: &[Violation]) -> Vec<Operation> {
    let named: std::collections::BTreeSet<&str> = violations
        .iter()
        .flat_map(|v| v.evidence.values().map(String::as_str))
        .collect();
    let recent = history.len().saturating_sub(RECENT_OPS);
    history
        .iter()
        .enumerate()
        .filter(|(i, op)| {
            *i >= recent
                || named.contains(op.request.as_str())
                || op.trade.as_deref().is_some_and(|t| named.contains(t))
        })
        .map(|(_, op)| op.clone())
        .collect()
}

/// Collects violations over many snapshots, keeping the first sighting of each.
#[derive(Default)]
struct Checker {
    /// The registration of accounts to clients, which the authorization checker judges by.
    directory: Option<paylab_system::auth::Directory>,
    seen: Found,
    snapshots: u32,
    capture: Capture,
    incremental: IncrementalChecker,
    /// Set for a run that verifies its capture.
    verify: Option<Arc<Mutex<CaptureStats>>>,
    /// The run's durability breaches, recorded by the nodes' logs as each sync returns.
    durability: Breaches,
    /// The logs (node, file) whose first breach is already a violation: one per log is
    /// evidence enough, and a planted bug may breach on every other sync.
    breached: BTreeSet<(String, String)>,
    /// Acknowledged writes a crash took back that the configuration chose to risk (the
    /// broker's async flush): expected losses, not breaches.
    lost_by_design: Vec<String>,
    /// Channel orders by kind and outcome at the final read.
    orders: BTreeMap<String, usize>,
    /// The strategy-specific history the final read judged: lock events, saga-log entries.
    strategy_read: (u64, u64),
}

impl Checker {
    /// Checks one periodic snapshot incrementally: the capture's delta (what changed on every
    /// node since the previous snapshot) against the invariants that hold at every instant.
    fn step(&mut self, cluster: &Cluster, history: &History, trace: &Trace) {
        let before = self
            .verify
            .as_ref()
            .map(|_| WorldView::of(self.incremental.world()));
        let delta = self
            .capture
            .snapshot(cluster, history, self.incremental.world());
        let found = self.incremental.step(&delta);
        if let (Some(stats), Some(before)) = (&self.verify, before) {
            let after = WorldView::of(self.incremental.world());
            if let Err(e) = capture::verify(&before, &delta, &after, cluster, history) {
                panic!("{e}");
            }
            let mut stats = lock(stats);
            stats.verified += 1;
            stats.resyncs = self.capture.resyncs();
            stats.removed += capture::removals(&delta);
            let journal = delta.shards.iter().map(|d| d.journal.removed.len() as u64);
            stats.removed_journal += journal.sum::<u64>();
            stats.sealed = after.sealed();
        }
        let vouchers = self
            .incremental
            .world()
            .shards
            .values()
            .map(|s| s.voucher_count())
            .sum();
        self.record(trace, delta.at_ms, vouchers, found);
    }

    /// Ends the periodic checks: the incremental world (a copy of every entity the
    /// always-invariants read, with its indexes) is let go before the final read builds its
    /// own whole observation, so that the two are never in memory at once.
    fn end_periodic(&mut self) {
        self.incremental = IncrementalChecker::default();
        self.capture = Capture::default();
    }

    /// The final read, once per run and whole: every node at this instant (at rest, with
    /// what only the at-rest invariants read), with the history. Each node is let go once it
    /// is read ([`Cluster::observe_releasing`]): nothing reads the platform after this.
    fn final_read(&mut self, cluster: &Cluster, history: &History, at_rest: bool) -> Observation {
        let scope = if at_rest { Scope::Rest } else { Scope::Instant };
        // Verified (capture tests): letting each node go as it is read changes no later read.
        let plain = self.verify.as_ref().map(|_| cluster.observe(scope));
        let mut obs = Observation {
            at_ms: now_ms(),
            history: history.shared(),
            ..cluster.observe_releasing(scope)
        };
        if let (Some(stats), Some(plain)) = (&self.verify, plain) {
            let released = Observation {
                at_ms: plain.at_ms,
                history: plain.history.clone(),
                ..obs.clone()
            };
            assert!(
                released == plain,
                "the final read that lets each node go differs from a plain read"
            );
            lock(stats).final_read_verified = true;
        }
        obs.owners = self.directory.map(|dir| registered_owners(&dir, &obs));
        self.orders = crate::clearing_figures::orders(&obs.clearing);
        let strategy = &obs.strategy;
        self.strategy_read = (strategy.locks.len() as u64, strategy.sagas.len() as u64);
        obs
    }

    /// The final check of the final read: the invariants that hold at every instant, plus,
    /// once the platform is at rest, those that hold only then.
    fn last(&mut self, obs: &Observation, trace: &Trace, at_rest: bool) {
        let found = if at_rest {
            check_all(obs)
        } else {
            check_always(obs)
        };
        let vouchers = obs.shards.iter().map(|s| s.vouchers.len()).sum();
        self.record(trace, obs.at_ms, vouchers, found);
    }

    fn record(&mut self, trace: &Trace, at_ms: u64, vouchers: usize, mut found: Vec<Violation>) {
        found.extend(self.durability_breaches());
        trace.record(TraceEvent::Snapshot {
            at_ms,
            vouchers,
            violations: found.len(),
        });
        self.snapshots += 1;
        self.note(found, Some(at_ms));
    }

    /// Keeps the first occurrence of each violation, marked with the check that saw it (none
    /// for the breaches a crashed run's logs recorded after its last check).
    fn note(&self, found: Vec<Violation>, at_ms: Option<u64>) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for v in found {
            seen.entry(format!("{}|{}", v.invariant, v.message))
                .or_insert_with(|| match at_ms {
                    Some(at_ms) => v.with("snapshot_ms", at_ms),
                    None => v,
                });
        }
    }

    /// Invariant 19 (group-commit form): the breaches recorded since the last check, the first
    /// of each log only.
    fn durability_breaches(&mut self) -> Vec<Violation> {
        let (by_design, breaches): (Vec<_>, Vec<_>) = self
            .durability
            .take()
            .into_iter()
            .partition(|b| b.by_design);
        self.lost_by_design.extend(by_design.into_iter().map(|b| {
            format!(
                "{} lost {} acknowledged bytes of {} in a crash ({} recovered)",
                b.node,
                b.promised_len - b.durable_len,
                b.file,
                b.durable_len
            )
        }));
        let fresh: Vec<SyncBreach> = breaches
            .into_iter()
            .filter(|b| self.breached.insert((b.node.clone(), b.file.clone())))
            .map(|b| SyncBreach {
                node: b.node,
                file: b.file,
                call: b.call.to_string(),
                promised_len: b.promised_len,
                durable_len: b.durable_len,
                at_ms: b.at_ms,
            })
            .collect();
        durability::check(&fresh)
    }

    /// What the run found: the violations (and the expected anomalies, each counted in the
    /// probes), what stayed unfinished, and the times.
    fn outcomes(
        mut self,
        config: &RunConfig,
        probes: &Probes,
        stuck: Vec<Unfinished>,
        converge_ms: Option<u64>,
        sim_ms: u64,
    ) -> Outcomes {
        let snapshots_checked = self.snapshots;
        let orders = std::mem::take(&mut self.orders);
        let (locks, sagas) = self.strategy_read;
        let (violations, expected) = self.into_violations(config);
        use paylab_system::probes::names;
        for _ in &expected {
            probes.hit(names::EXPECTED_ANOMALY);
        }
        probes.hit_n(names::CHECKED_LOCK_EVENTS, locks);
        probes.hit_n(names::CHECKED_SAGAS, sagas);
        Outcomes {
            stuck,
            violations,
            expected,
            snapshots_checked,
            orders,
            sim_ms,
            converge_ms,
            intents: (0, 0),
        }
    }

    /// The violations, and those of them the configuration's own unsafe choice explains:
    /// under `--broker-flush async`, once a crash took back acknowledged broker writes, the
    /// families a lost message breaks (message completeness, the replicas, notification) are
    /// expected anomalies, each marked with the loss that explains it.
    fn into_violations(self, config: &RunConfig) -> (Vec<Violation>, Vec<Violation>) {
        let claims = config.strategy.claims();
        let seen = std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()));
        let (mut expected, all): (Vec<_>, Vec<_>) = seen
            .into_values()
            .partition(|v| claims.not_claimed.contains(&v.invariant.name()));
        for v in &mut expected {
            let why = format!("--strategy {}: {}", config.strategy, claims.weakness);
            *v = v.clone().with("expected_because", why);
        }
        let chosen = matches!(config.broker_flush, FlushPolicy::Async { .. });
        if !chosen || self.lost_by_design.is_empty() {
            return (all, expected);
        }
        let loss = self.lost_by_design.join("; ");
        let (lost, violations): (Vec<_>, Vec<_>) = all.into_iter().partition(|v| {
            matches!(
                v.invariant,
                Invariant::MessageCompleteness
                    | Invariant::Replicas
                    | Invariant::NotificationOutcome
            )
        });
        let lost = lost
            .into_iter()
            .map(|v| v.with("expected_because", format!("--broker-flush async: {loss}")));
        expected.extend(lost);
        (violations, expected)
    }
}

async fn harness(config: RunConfig, plan: FaultPlan, evidence: Evidence) -> Outcomes {
    let handle = Handle::current();
    let Evidence {
        history,
        probes,
        trace,
        verify,
        found,
    } = evidence;
    let faults = NetFaults::new();
    let cluster = Arc::new(Cluster::start(&config, probes.clone(), faults.clone()));
    cluster.wait_ready().await;
    plan.validate(&config)
        .expect("a plan is validated before its run starts");
    let durability = probes.durability().clone();
    let ctx = ClientContext {
        config: config.clone(),
        history: history.clone(),
        trace: trace.clone(),
        faults,
        probes,
        balances: Default::default(),
        intents: Default::default(),
    };
    let (client_nodes, done) = start_clients(&handle, &ctx);
    let nemesis = Nemesis::new(
        cluster.clone(),
        history.clone(),
        trace.clone(),
        done.clone(),
    );
    let faulted = {
        let (nemesis, plan) = (nemesis.clone(), plan.clone());
        madsim::task::spawn(async move { nemesis.run(&plan).await })
    };
    let mut checker = Checker {
        verify,
        seen: found,
        directory: Some(config.directory()),
        durability,
        ..Checker::default()
    };
    while !done.load(Ordering::SeqCst) {
        madsim::time::sleep(Duration::from_millis(config.snapshot_interval_ms)).await;
        checker.step(&cluster, &history, &trace);
        crate::cluster::forget_finished_tasks();
    }
    checker.end_periodic();
    faulted.await.expect("the nemesis finishes");

    // Healed phase: every fault removed, every node up, everything in flight finished within
    // the horizon; then the final check, including the invariants that hold only at rest.
    let healed_ms = now_ms();
    nemesis.heal();
    cluster.wait_ready().await;
    trace.record(TraceEvent::Healed { at_ms: now_ms() });
    let (stuck, settled_ms) = crate::drain::drain(&cluster).await;
    crate::cluster::forget_finished_tasks();
    let obs = checker.final_read(&cluster, &history, stuck.is_empty());

    // Every node was let go as it was read (killed, its disk discarded); its tasks, and with
    // them the platform's state, go before the batch checkers build their indexes, so that
    // the two are never in memory at once.
    let sim_ms = now_ms();
    for (c, node) in client_nodes.iter().enumerate() {
        kill_node(&handle, node, client_addr(c as u32).ip());
    }
    let_killed_tasks_go().await;
    checker.last(&obs, &trace, stuck.is_empty());
    drop(obs);
    let converge_ms = settled_ms
        .filter(|_| stuck.is_empty())
        .map(|at| at - healed_ms);
    let mut out = checker.outcomes(&config, &cluster.probes, stuck, converge_ms, sim_ms);
    out.intents = ctx.intents.digest();
    out
}

/// Returns to the executor until it has dropped the tasks of the nodes just killed (and with
/// them the platform's state), at the same simulated instant. Killing wakes every task of a
/// node, and the executor drops a killed node's task when it comes to it; it takes the ready
/// tasks in a random order, so each return leaves about half of those still waiting behind
/// this one: sixteen leave one in 65,536.
async fn let_killed_tasks_go() {
    for _ in 0..16 {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if std::mem::replace(&mut yielded, true) {
                return std::task::Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
        .await
    }
}

/// The registered owner of every account the shards hold that the platform assigned to a
/// client (the others are the platform's).
fn registered_owners(
    dir: &paylab_system::auth::Directory,
    obs: &Observation,
) -> BTreeMap<u64, paylab_invariants::Owner> {
    let accounts = obs.shards.iter().flat_map(|s| &s.accounts);
    accounts
        .filter_map(|a| {
            let (client, subject) = dir.owner(paylab_system::AccountId(a.account))?;
            let subject = crate::observe::subject(subject);
            Some((a.account, paylab_invariants::Owner { client, subject }))
        })
        .collect()
}

/// Starts one node per client, each running its share of the workload; the flag is set once
/// every client has finished.
fn start_clients(handle: &Handle, ctx: &ClientContext) -> (Vec<NodeHandle>, Arc<AtomicBool>) {
    // The hostile clients come after the honest ones: ids `clients..`.
    let all = ctx.config.clients + ctx.config.hostile_clients();
    let client_nodes: Vec<_> = (0..all)
        .map(|c| {
            node_at(handle, client_addr(c).ip())
                .name(services::CLIENT.at(c))
                .build()
        })
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = client_nodes
        .iter()
        .enumerate()
        .map(|(c, node)| node.spawn(run_client(c as u32, ctx.clone())))
        .collect();
    let done_flag = done.clone();
    madsim::task::spawn(async move {
        for c in clients {
            c.await.expect("client task finishes");
        }
        done_flag.store(true, Ordering::SeqCst);
    });
    (client_nodes, done)
}

fn count(history: &[Operation]) -> OpCounts {
    let mut c = OpCounts::default();
    for op in history {
        match op.outcome {
            Outcome::Ok => c.ok += 1,
            Outcome::Fail(_) => c.fail += 1,
            Outcome::Unknown => c.unknown += 1,
        }
    }
    c
}

//! The paylab harness: builds the simulated platform, drives the workload, injects faults,
//! checks invariants, and reports. The `paylab` binary (`main.rs`) is its command line.
//!
//! - [`config`]: a run's validated configuration.
//! - [`plan`]: the fault plan as data, drawn from the seed by swarm testing on its own stream.
//! - [`nemesis`]: executes a fault plan against the cluster.
//! - [`services`]: the service registry, one kind of node per file, all in one list.
//! - [`cluster`]: the registry's nodes, their lifecycles (crash, restart), god's-eye reads.
//! - [`workload`]: the clients and their operations.
//! - [`openloop`]: open-loop load: Poisson arrivals of business flows (`--rate`).
//! - [`summary`]: a run's failures by reason and pay latency percentiles.
//! - [`history`]: what the clients asked and what they were told.
//! - [`observe`]: platform state → the checkers' observation.
//! - [`trace`]: the event log and the trace hash.
//! - [`report`]: failure reports (JSON) and reading them back for replay.
//! - [`run`]: one run on a fresh thread: phases, checks, verdict.
//! - [`detection`]: how often each planted bug is caught over a range of seeds.
//! - [`bench`]: throughput against a calibration run in the same process.
//! - [`campaign`]: many seeds in parallel, resumable and sharded, with CI reports, and the
//!   regression corpus.
//! - [`shrink`]: from a failing case to a smaller one that fails the same way.
//! - [`explore`]: the failure explorer, one self-contained HTML page per failed run.

pub mod bench;
pub mod campaign;
pub mod capture;
pub mod clearing_figures;
pub mod cluster;
pub mod compare;
pub mod config;
pub mod detection;
pub mod drain;
pub mod explore;
pub mod history;
pub mod nemesis;
pub mod observe;
pub mod openloop;
pub mod plan;
pub mod pool;
pub mod report;
pub mod run;
pub mod services;
pub mod shrink;
pub mod summary;
pub mod trace;
pub mod workload;

pub use config::RunConfig;
pub use run::{run, run_recorded, run_with_plan, RecordedRun, RunReport, Verdict};

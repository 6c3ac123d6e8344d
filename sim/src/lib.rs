//! The paylab harness: builds the simulated platform, drives the workload, injects faults,
//! checks invariants, and reports. The `paylab` binary (`main.rs`) is its command line.
//!
//! - [`config`]: a run's validated configuration.
//! - [`plan`]: the fault plan, drawn from the seed on its own stream.
//! - [`cluster`]: the topology, node lifecycles (crash, restart), god's-eye snapshots.
//! - [`workload`]: the clients and their operations.
//! - [`history`]: what the clients asked and what they were told.
//! - [`observe`]: platform state → the checkers' observation.
//! - [`trace`]: the event log and the trace hash.
//! - [`run`]: one run on a fresh thread: phases, checks, verdict.
//! - [`bench`]: throughput against a calibration run in the same process.

pub mod bench;
pub mod cluster;
pub mod config;
pub mod history;
pub mod observe;
pub mod plan;
pub mod run;
pub mod trace;
pub mod workload;

pub use config::RunConfig;
pub use run::{run, RunReport, Verdict};

//! The floor under a whole run's wall time: what its RPCs alone would cost on this machine.
//!
//! A run's wall time cannot drop below the cost of the round trips it sends, whatever the
//! platform and the checkers do around them. The floor prices each RPC a run counts
//! ([`crate::run::RunReport::rpcs`]: every send, retries and clients' calls included) at the
//! faster of two bare round trips measured in the same process: madsim's raw `Endpoint::call`
//! (the calibration) and paylab's own transport calling an echo handler (the same wire, tags,
//! timeout and reply digest every service's RPC goes through, with no work in the handler).
//! Fsyncs, timers, the broker's polls and the checkers come on top, so a run cannot go below
//! its floor unless it sends fewer RPCs or an RPC gets cheaper than the cheapest round trip
//! measured here (madsim's own, whose jitter sleeps, timers and scheduling every simulated
//! message pays).

use super::{best, calibration, echo_round_trips, timed, BenchSize, Figure};
use crate::cluster::{client_addr, ledger_addr};
use paylab_system::probes::Probes;
use paylab_system::transport::{NetFaults, Rpc, Transport};
use serde::Serialize;
use std::time::Duration;

/// A request the echo node answers with its own number.
#[derive(Debug, Clone)]
struct Echo(u64);

impl Rpc for Echo {
    type Response = u64;
    const TAG: u64 = 0x4543_484f_0001;
}

/// The two bare round trips, each the best of the rounds measured.
#[derive(Debug, Clone, Serialize)]
pub struct Floor {
    /// madsim's raw `Endpoint::call` round trips (the calibration).
    pub raw: Figure,
    /// paylab's transport calling a handler that does nothing.
    pub bare: Figure,
}

impl Floor {
    /// Round trips per wall second at the faster of the two.
    pub fn per_sec(&self) -> f64 {
        self.raw.per_sec().max(self.bare.per_sec())
    }

    /// Wall seconds that `rpcs` round trips take at the floor's rate.
    pub fn seconds(&self, rpcs: f64) -> f64 {
        rpcs / self.per_sec().max(1e-9)
    }

    /// How many times the floor `wall_s` is for a run that sent `rpcs` (`-` without RPCs).
    pub fn times(&self, wall_s: f64, rpcs: u64) -> String {
        if rpcs == 0 {
            return "-".to_string();
        }
        format!("{:.1}x", wall_s / self.seconds(rpcs as f64).max(1e-12))
    }
}

/// Measures both round trips `rounds` times, interleaved, keeping the best of each.
pub fn measure(size: BenchSize, rounds: u32) -> Floor {
    let mut floor = Floor {
        raw: calibration(size),
        bare: bare_rpcs(size),
    };
    for _ in 1..rounds {
        floor.raw = best(floor.raw, calibration(size));
        floor.bare = best(floor.bare, bare_rpcs(size));
    }
    floor
}

/// paylab transport round trips per wall second: `size.clients` clients each call an echo node
/// `size.per_client` times, one call at a time.
pub fn bare_rpcs(size: BenchSize) -> Figure {
    timed(
        "floor: paylab transport round trips (echo)",
        size,
        |size| async move {
            let serve = |server| async move {
                let t = Transport::bind(server, "echo", 0, NetFaults::new(), Probes::new())
                    .await
                    .expect("bind echo");
                t.serve(|Echo(x)| async move { x });
                std::future::pending::<()>().await;
            };
            echo_round_trips(size, serve, echo_client).await;
        },
    )
}

async fn echo_client(c: u32, calls: u32) {
    let name = format!("bench-client-{c}");
    let t = Transport::bind(client_addr(c), &name, 0, NetFaults::new(), Probes::new())
        .await
        .expect("bind client");
    for i in 0..calls {
        let reply = t
            .call(ledger_addr(0), Echo(u64::from(i)), Duration::from_secs(1))
            .await;
        assert_eq!(reply, Ok(u64::from(i)), "the echo answers every call");
    }
}

/// The floor's lines, as `paylab bench` prints them before the parts that use it.
pub fn render(floor: &Floor) -> Vec<String> {
    let line = |f: &Figure| {
        format!(
            "{:<48} {:>12.0} /s  ({} in {:.3}s)",
            f.name,
            f.per_sec(),
            f.count,
            f.wall_s
        )
    };
    vec![
        line(&floor.raw),
        line(&floor.bare),
        format!(
            "floor: a run's RPCs priced at {:.0} round trips a second (the faster above): what they cost here even if nothing else did",
            floor.per_sec()
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(count: u64, wall_s: f64) -> Figure {
        Figure {
            name: "f",
            count,
            wall_s,
        }
    }

    #[test]
    fn the_floor_prices_rpcs_at_the_faster_round_trip() {
        let floor = Floor {
            raw: figure(100_000, 0.5),
            bare: figure(100_000, 0.25),
        };
        assert_eq!(floor.per_sec(), 400_000.0);
        assert!((floor.seconds(40_000.0) - 0.1).abs() < 1e-12);
        assert_eq!(floor.times(0.35, 40_000), "3.5x");
        assert_eq!(floor.times(0.35, 0), "-");
    }

    #[test]
    fn the_bare_round_trip_answers_every_call() {
        let f = bare_rpcs(BenchSize {
            clients: 2,
            per_client: 50,
        });
        assert_eq!(f.count, 100);
        assert!(f.per_sec() > 0.0);
    }
}
